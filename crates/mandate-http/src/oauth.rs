//! The OAuth 2.0 endpoints: token (RFC 6749 client credentials; client authentication by
//! `client_secret_basic`, `client_secret_post`, RFC 7523 `private_key_jwt`, and RFC 8705
//! `tls_client_auth` / `self_signed_tls_client_auth`: a `client_id` alone over a TLS
//! connection that carried a client certificate),
//! introspection (RFC 7662) and revocation (RFC 7009).
//!
//! Client authentication fails with one indistinguishable `invalid_client` ("client
//! authentication failed") whether the client is unknown, the secret wrong, or no
//! registered key verifies an assertion; secrets are compared by Argon2id verification
//! (constant time), and an unknown client costs the same Argon2id work. A refused client
//! assertion otherwise says why in `error_description` (expired, wrong audience,
//! unsupported alg, replayed …): those reasons depend on the assertion alone or reach
//! only the holder of a registered key (reasoning in mandate_token::assertion). The
//! texts never tell an unknown client, an unregistered key and a bad signature apart;
//! the timing can (an unknown client is refused without a store read, a header naming
//! no registered key without a signature check: tens of microseconds sooner). That is
//! accepted: client ids (RFC 6749 §2.2) and key ids name public things, and knowing
//! them helps nobody forge an assertion; the text is kept uniform so that logs, clients
//! and proxies do not spell it out.
//!
//! `GET`/`POST /oauth/authorize` exists because RFC 8414 metadata clients (the MCP SDKs)
//! require an `authorization_endpoint`; Mandate has no authorization-code flow, so it
//! answers every request with `unsupported_response_type` and never redirects.
//!
//! The use cases behind these endpoints live in `mandate_service::tokens`; the handlers
//! here read the form and the client's credentials, check their syntax, call one of them
//! and render the result as mandate-api's types, mapping [`TokenError`] to an RFC 6749
//! §5.2 error. The forms are read as pairs (`Params`), not as mandate-api's request
//! types: a repeated parameter must be refused, and an empty value counts as absent.

use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use mandate_api as api;
use mandate_service::tokens::{self, ClientAuth, Requester, TokenError};
use mandate_token::access::{AccessClaims, Actor, Audience};
use serde_json::Value;

use crate::Node;
use crate::error::OAuthError;
use crate::extract::{bearer, is_form, looks_like_jwt, parse_pairs, read_body};
use crate::throttle::{Gate, Outcome};

const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

impl From<TokenError> for OAuthError {
    /// Each refusal with the RFC 6749 §5.2 code [`TokenError::code`] names and its
    /// message; failures of the node are `server_error` (the cause logged) or, when
    /// retrying helps, `temporarily_unavailable`.
    fn from(e: TokenError) -> Self {
        use TokenError as E;
        match e {
            E::Stale(e) => e.into(),
            E::Saturated | E::IssuanceUnrecorded => Self::temporarily_unavailable(e.to_string()),
            E::Assertion(a) => Self::invalid_client(a.description()),
            E::AuthenticationFailed
            | E::ClientCertificate(_)
            | E::AssertionOfAnotherClient
            | E::AssertionReplayed
            | E::Inactive(_) => Self::invalid_client(e.to_string()),
            E::ScopeOutsideBoundary(_) => Self::invalid_scope(e.to_string()),
            E::TargetOutsideBoundary { .. } | E::MixedAudience { .. } => {
                Self::invalid_target(e.to_string())
            }
            E::UnknownAdminToken => Self::invalid_token(e.to_string()),
            E::ReadOnly => Self::insufficient_scope(e.to_string()),
            E::AnotherClientsToken => Self::unauthorized_client(e.to_string()),
            E::Dpop(d) => Self::dpop(d.oauth_error(), format!("{d} ({})", d.code()), None),
            E::DpopRequired => {
                Self::dpop("invalid_dpop_proof", format!("{e} (dpop_required)"), None)
            }
            E::Random(_)
            | E::Signing(_)
            | E::RevocationUnrecorded(_)
            | E::Store(_)
            | E::Task(_) => Self::server_error(e),
        }
    }
}

/// Form parameters, with RFC 6749 §3.2's rule that none (but `resource`) repeats, the
/// request's view of the failed-authentication throttle (throttle.rs), and the client
/// certificate chain of its connection (`conn::Peer`), if it presented one.
pub(crate) struct Params(
    Vec<(String, String)>,
    pub(crate) Option<Gate>,
    Option<Arc<[rustls_pki_types::CertificateDer<'static>]>>,
);

impl Params {
    pub(crate) async fn read(
        state: &Node,
        req: Request<Body>,
    ) -> Result<(HeaderMap, Self), OAuthError> {
        let (parts, body) = req.into_parts();
        if !is_form(&parts.headers) {
            return Err(OAuthError::invalid_request(
                "expected Content-Type: application/x-www-form-urlencoded",
            ));
        }
        let gate = Gate::of(&parts.extensions);
        let chain = parts
            .extensions
            .get::<crate::conn::Peer>()
            .and_then(|p| p.certificates.clone())
            .filter(|c| !c.is_empty());
        let bytes = read_body(body, state.config.max_body_bytes)
            .await
            // RFC 6749 has no timeout error: a late body is `invalid_request` (with 408),
            // said so.
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::REQUEST_TIMEOUT {
                    OAuthError::request_timeout(e.detail().to_owned())
                } else {
                    OAuthError::invalid_request(e.detail().to_owned())
                }
            })?;
        let pairs = parse_pairs(&bytes);
        let mut seen = HashSet::new();
        for (k, _) in &pairs {
            if k != "resource" && !seen.insert(k.as_str()) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{k}` repeated"
                )));
            }
        }
        Ok((parts.headers, Self(pairs, gate, chain)))
    }

    /// The value of `k`; an empty value counts as absent (RFC 6749 §3.1).
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == k && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let v = v.to_str().map_err(|_| bad())?;
    let Some((scheme, rest)) = v.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    // Percent-decoding with `+` as space; `&` is escaped first so it is not a separator.
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={}", s.replace('&', "%26")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// Which single client authentication method the request uses (RFC 6749 §2.3: at most
/// one). A `client_id` with no secret and no assertion, on a connection that presented a
/// client certificate, is RFC 8705 §2 client authentication by that certificate.
pub(crate) fn client_auth(
    headers: &HeaderMap,
    p: &Params,
) -> Result<Option<ClientAuth>, OAuthError> {
    let basic = basic_credentials(headers)?;
    let post = p.get("client_secret");
    let assertion = match (p.get("client_assertion_type"), p.get("client_assertion")) {
        (Some(JWT_BEARER_ASSERTION), Some(a)) => Some(a),
        (None, None) => None,
        (Some(t), _) if t != JWT_BEARER_ASSERTION => {
            return Err(OAuthError::invalid_client(format!(
                "unsupported client_assertion_type `{t}`"
            )));
        }
        _ => {
            return Err(OAuthError::invalid_request(
                "client_assertion and client_assertion_type go together",
            ));
        }
    };
    let methods = usize::from(basic.is_some())
        + usize::from(post.is_some())
        + usize::from(assertion.is_some());
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "use exactly one client authentication method",
        ));
    }
    let client_id = p.get("client_id").map(str::to_owned);
    Ok(if let Some((id, s)) = basic {
        if client_id.as_ref().is_some_and(|c| *c != id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the Basic credentials",
            ));
        }
        Some(ClientAuth::Secret {
            client_id: id,
            secret: s,
        })
    } else if let Some(s) = post {
        let id = client_id
            .ok_or_else(|| OAuthError::invalid_request("client_secret needs client_id"))?;
        Some(ClientAuth::Secret {
            client_id: id,
            secret: s.to_owned(),
        })
    } else if let Some(a) = assertion {
        Some(ClientAuth::Assertion {
            client_id,
            assertion: a.to_owned(),
        })
    } else {
        client_id
            .zip(p.2.clone())
            .map(|(client_id, chain)| ClientAuth::Certificate { client_id, chain })
    })
}
/// RFC 6749 §3.3 scope syntax: space-separated tokens of `%x21 / %x23-5B / %x5D-7E`.
pub(crate) fn check_scope(scope: &str) -> Result<String, OAuthError> {
    let nqchar = |c: char| matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E');
    if scope.len() > 1024 {
        return Err(OAuthError::invalid_scope(
            "scope longer than 1024 characters",
        ));
    }
    let mut tokens: Vec<&str> = Vec::new();
    for t in scope.split(' ') {
        if t.is_empty() || !t.chars().all(nqchar) {
            return Err(OAuthError::invalid_scope(
                "scope must be space-separated tokens of printable ASCII",
            ));
        }
        if !tokens.contains(&t) {
            tokens.push(t);
        }
    }
    Ok(tokens.join(" "))
}

/// RFC 8707 §2: a resource is an absolute URI without a fragment.
pub(crate) fn check_resource(r: &str) -> Result<(), OAuthError> {
    if !mandate_core::uri::is_absolute_uri(r) {
        return Err(OAuthError::invalid_target(format!(
            "resource `{}` is not an absolute URI without a fragment",
            r.escape_debug()
        )));
    }
    Ok(())
}

pub(crate) fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// `GET`/`POST /oauth/authorize` (RFC 6749 §3.1): published in the RFC 8414 metadata
/// because metadata clients require an `authorization_endpoint`, but Mandate has no flow
/// through a user agent, so every request is refused with `unsupported_response_type`.
///
/// INVARIANT (no redirect): this endpoint never redirects. No client registers a
/// redirection URI with Mandate, so any `redirect_uri` is unregistered, and RFC 6749
/// §4.1.2.1 forbids redirecting to one: the error is the response itself (400, JSON).
pub(crate) async fn authorize() -> Response {
    no_store(
        OAuthError::unsupported_response_type(
            "Mandate has no authorization-code or implicit flow; agents get tokens at the token endpoint (client_credentials or token exchange)",
        )
        .into_response(),
    )
}
/// `POST /oauth/token` for every grant but token exchange (`token_endpoint.rs` routes
/// the grants): client credentials, and a clear refusal of any other grant type.
pub(crate) async fn client_credentials(
    state: &Arc<Node>,
    headers: &HeaderMap,
    p: &Params,
    certificate: Option<String>,
) -> Result<Response, OAuthError> {
    let auth = client_auth(headers, p)?
        .ok_or_else(|| OAuthError::invalid_client("client authentication required"))?;
    // Syntax first: a malformed request costs no Argon2id.
    match p.get("grant_type") {
        None => return Err(OAuthError::invalid_request("grant_type is required")),
        Some("client_credentials") => {}
        Some(other) => {
            // Echoed escaped, and at most 64 characters of it: the form may be 64 KiB.
            let shown: String = other.chars().take(64).collect();
            return Err(OAuthError::unsupported_grant_type(format!(
                "grant_type `{}` is not supported",
                shown.escape_debug()
            )));
        }
    }
    let scope = p.get("scope").map(check_scope).transpose()?;
    let resources = p.all("resource");
    if resources.len() > 8 {
        return Err(OAuthError::invalid_target("at most 8 resource parameters"));
    }
    for r in &resources {
        check_resource(r)?;
    }
    let proofs = crate::dpop::token_request_proofs(headers)?;
    let issued =
        tokens::issue_client_credentials_over(state, auth, scope, &resources, &proofs, certificate)
            .await
            .map_err(|e| token_refusal(state, e))?;
    Ok(no_store(
        Json(api::TokenResponse {
            access_token: issued.token,
            token_type: if issued.bound { "DPoP" } else { "Bearer" }.to_owned(),
            expires_in: u64::from(issued.expires_in),
            scope: issued.scope,
        })
        .into_response(),
    ))
}

/// A refused token request as answered: a `use_dpop_nonce` carries this server's
/// current nonce in `DPoP-Nonce` (RFC 9449 §8); every other refusal as mapped above.
pub(crate) fn token_refusal(state: &Node, e: TokenError) -> OAuthError {
    match e {
        TokenError::Dpop(d @ mandate_token::dpop::DpopError::Nonce) => OAuthError::dpop(
            d.oauth_error(),
            format!("{d} ({})", d.code()),
            state.dpop().nonce(state.clock.now()),
        ),
        other => other.into(),
    }
}

/// Who is calling introspection or revocation: an admin bearer token, or a client
/// authenticating as at the token endpoint (never both, never an agent's access token).
async fn requester(
    state: &Arc<Node>,
    headers: &HeaderMap,
    p: &Params,
    endpoint: &str,
) -> Result<Requester, OAuthError> {
    if let Some(t) = bearer(headers) {
        if looks_like_jwt(t) {
            return Err(OAuthError::invalid_client(
                "agent access tokens cannot authenticate here",
            ));
        }
        // A client certificate on the connection is no second method beside an admin
        // bearer: the bearer was chosen (a `client_id` in the form then names nothing).
        if matches!(
            client_auth(headers, p)?,
            Some(ClientAuth::Secret { .. } | ClientAuth::Assertion { .. })
        ) {
            return Err(OAuthError::invalid_request(
                "use exactly one authentication method",
            ));
        }
        return Ok(tokens::admin_requester(state, t).await?);
    }
    let auth = client_auth(headers, p)?
        .ok_or_else(|| OAuthError::invalid_client("authentication required"))?;
    let endpoint = format!("{}{endpoint}", state.config.issuer);
    let claimed = auth.claimed();
    if let Some(g) = &p.1 {
        g.check_client(claimed.as_deref())?;
    }
    let answer = tokens::authenticate(state, auth, endpoint)
        .await
        .map_err(OAuthError::from);
    if let Some(g) = &p.1 {
        g.client_outcome(claimed.as_deref(), Outcome::of(&answer));
    }
    Ok(Requester::Agent(answer?.id))
}

/// The client a token request claims to be, unverified (for the throttle): `None` when
/// its credentials cannot be read or name none.
pub(crate) fn claimed_client(headers: &HeaderMap, p: &Params) -> Option<String> {
    client_auth(headers, p).ok().flatten()?.claimed()
}

/// `POST /oauth/introspect` (RFC 7662).
pub(crate) async fn introspect(
    State(state): State<Arc<Node>>,
    req: Request<Body>,
) -> Result<Response, OAuthError> {
    let (headers, p) = Params::read(&state, req).await?;
    let who = requester(&state, &headers, &p, "/oauth/introspect").await?;
    let token = p
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?
        .to_owned();
    let body = match tokens::introspect(&state, &who, token).await? {
        None => api::IntrospectionResponse::inactive(),
        Some(c) => introspection(c),
    };
    Ok(no_store(Json(body).into_response()))
}

/// An active token's introspection answer (RFC 7662 §2.2): its claims, `active` and
/// `token_type` `Bearer`. Every claim is answered, the RFC 8693 ones of an exchanged
/// token (`act`, `mandate`, `parents`) too; `introspection_answers_every_claim` checks
/// that against the claims' own JSON.
fn introspection(c: AccessClaims) -> api::IntrospectionResponse {
    fn actor(a: Actor) -> api::TokenActor {
        api::TokenActor {
            sub: a.sub,
            act: a.act.map(|a| Box::new(actor(*a))),
        }
    }
    api::IntrospectionResponse {
        active: true,
        // RFC 9449 §6.2: a DPoP-bound token is of type `DPoP` (a certificate-bound one
        // alone stays `Bearer`, RFC 8705 §3).
        token_type: Some(if c.jkt().is_some() { "DPoP" } else { "Bearer" }.to_owned()),
        iss: Some(c.iss),
        sub: Some(c.sub),
        aud: Some(match c.aud {
            Audience::One(a) => Value::String(a),
            Audience::Many(l) => Value::Array(l.into_iter().map(Value::String).collect()),
        }),
        exp: Some(c.exp),
        iat: Some(c.iat),
        nbf: Some(c.nbf),
        jti: Some(c.jti),
        client_id: Some(c.client_id),
        scope: c.scope,
        act: c.act.map(actor),
        mandate: c.mandate,
        parents: c
            .parents
            .into_iter()
            .map(|p| api::ParentToken {
                jti: p.jti,
                iat: p.iat,
            })
            .collect(),
        cnf: c.cnf.map(|c| api::TokenConfirmation {
            jkt: c.jkt,
            x5t_s256: c.x5t_s256,
        }),
    }
}

/// `POST /oauth/revoke` (RFC 7009). Answers 200 for tokens that are already invalid.
pub(crate) async fn revoke(
    State(state): State<Arc<Node>>,
    req: Request<Body>,
) -> Result<Response, OAuthError> {
    let (headers, p) = Params::read(&state, req).await?;
    let who = requester(&state, &headers, &p, "/oauth/revoke").await?;
    let token = p
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?
        .to_owned();
    tokens::revoke(&state, who, token).await?;
    Ok(no_store(axum::http::StatusCode::OK.into_response()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mandate_core::agent::AgentStatus;
    use mandate_service::StaleSnapshot;
    use mandate_service::audit::AuditError;
    use mandate_store::StoreError;
    use mandate_token::assertion::AssertionError;

    /// `e` as an endpoint answers it: status, `error`, `error_description`.
    pub(crate) async fn answer(e: OAuthError) -> (u16, String, String) {
        let res = e.into_response();
        let status = res.status().as_u16();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        (status, text("error"), text("error_description"))
    }

    /// Every refusal answers with the status, code and text the handlers gave before the
    /// use cases moved to mandate-service, and `token.refused` records the code answered.
    #[tokio::test]
    async fn token_errors_answer_as_they_did() {
        use TokenError as E;
        let cases = [
            (
                E::Stale(StaleSnapshot),
                503,
                "temporarily_unavailable",
                "decisions are held until the decision snapshot is refreshed",
            ),
            (
                E::Saturated,
                503,
                "temporarily_unavailable",
                "too many concurrent client authentications; retry shortly",
            ),
            (
                E::AuthenticationFailed,
                401,
                "invalid_client",
                "client authentication failed",
            ),
            (
                E::Assertion(AssertionError::Expired),
                401,
                "invalid_client",
                "client assertion expired (it is usable until exp, and at most 600 s after iat)",
            ),
            (
                E::Assertion(AssertionError::Signature),
                401,
                "invalid_client",
                "client authentication failed",
            ),
            (
                E::AssertionOfAnotherClient,
                401,
                "invalid_client",
                "client_id does not match the client assertion's sub",
            ),
            (
                E::AssertionReplayed,
                401,
                "invalid_client",
                "client assertion already used",
            ),
            (
                E::Inactive(AgentStatus::Suspended),
                401,
                "invalid_client",
                "client is suspended",
            ),
            (
                E::ScopeOutsideBoundary("crm:write".into()),
                400,
                "invalid_scope",
                "scope `crm:write` is outside the agent's boundary",
            ),
            (
                E::TargetOutsideBoundary {
                    what: "resource",
                    target: "https://mail.example/".into(),
                },
                400,
                "invalid_target",
                "resource `https://mail.example/` is outside the agent's boundary",
            ),
            (
                E::MixedAudience { what: "audience" },
                400,
                "invalid_target",
                "a token for Mandate is for Mandate only: ask for the audiences of other services in a token of their own",
            ),
            (
                E::IssuanceUnrecorded,
                503,
                "temporarily_unavailable",
                "the audit log cannot be written; retry shortly",
            ),
            (
                E::UnknownAdminToken,
                401,
                "invalid_token",
                "unknown or revoked admin token",
            ),
            (
                E::ReadOnly,
                403,
                "insufficient_scope",
                "read-only admin tokens cannot revoke",
            ),
            (
                E::AnotherClientsToken,
                400,
                "unauthorized_client",
                "the token was issued to another client",
            ),
            (
                E::RevocationUnrecorded(AuditError::Unavailable),
                500,
                "server_error",
                "internal error",
            ),
            (
                E::Store(StoreError::Corrupt("row".into())),
                500,
                "server_error",
                "internal error",
            ),
        ];
        for (e, status, error, description) in cases {
            let code = e.code();
            let got = answer(OAuthError::from(e)).await;
            assert_eq!(got, (status, error.to_owned(), description.to_owned()));
            assert_eq!(code, error, "recorded as answered");
        }
    }

    /// The introspection answer is the claims' own JSON with `active` and `token_type`
    /// added, for a client-credentials token and for a delegated one with every claim.
    #[test]
    fn introspection_answers_every_claim() {
        use mandate_token::access::ParentToken;
        let plain = AccessClaims {
            iss: "https://mandate.example".into(),
            sub: "agt_01J00000000000000000000000".into(),
            aud: Audience::One("https://mandate.example".into()),
            exp: 2_000,
            iat: 1_000,
            nbf: 1_000,
            jti: "tok_01J00000000000000000000000".into(),
            client_id: "agt_01J00000000000000000000000".into(),
            scope: None,
            act: None,
            mandate: None,
            parents: vec![],
            cnf: None,
        };
        let delegated = AccessClaims {
            aud: Audience::Many(vec!["https://a.example".into(), "https://b.example".into()]),
            scope: Some("crm:read".into()),
            act: Some(Actor {
                sub: "agt_01J00000000000000000000001".into(),
                act: Some(Box::new(Actor {
                    sub: "agt_01J00000000000000000000002".into(),
                    act: None,
                })),
            }),
            mandate: Some("mdt_01J00000000000000000000000".into()),
            parents: vec![ParentToken {
                jti: "tok_01J00000000000000000000001".into(),
                iat: 900,
            }],
            ..plain.clone()
        };
        for c in [plain, delegated] {
            let mut want = serde_json::to_value(&c).unwrap();
            if let Some(m) = want.as_object_mut() {
                m.insert("active".into(), Value::Bool(true));
                m.insert("token_type".into(), Value::String("Bearer".into()));
            }
            assert_eq!(serde_json::to_value(introspection(c)).unwrap(), want);
        }
        assert_eq!(
            serde_json::to_value(api::IntrospectionResponse::inactive()).unwrap(),
            serde_json::json!({"active": false})
        );
    }

    #[test]
    fn scope_syntax() {
        assert_eq!(check_scope("a b a").unwrap(), "a b");
        assert!(check_scope("a  b").is_err());
        assert!(check_scope("a\"b").is_err());
        assert!(check_scope("é").is_err());
    }
}
