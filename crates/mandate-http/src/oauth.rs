//! The OAuth 2.0 endpoints: token (RFC 6749 client credentials; client authentication by
//! `client_secret_basic`, `client_secret_post` and RFC 7523 `private_key_jwt`),
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

use mandate_store::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use mandate_audit::event::AuditEvent;
use mandate_core::agent::{Agent, AgentStatus};
use mandate_core::credential::CredentialKind;
use mandate_core::id::{AgentId, TokenId};
use mandate_core::time::Timestamp;
use mandate_token::access::{self, AccessClaims, Audience};
use mandate_token::assertion;
use mandate_token::jwk::PublicJwk;
use mandate_token::secret;
use serde_json::{Value, json};

use crate::Node;
use crate::error::{ApiError, OAuthError};
use crate::extract::{bearer, is_form, looks_like_jwt, parse_pairs, read_body};
use mandate_service::cache::Remembered;

/// How long a client-secret check may wait for an Argon2id slot before a 503.
const ARGON2_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Form parameters, with RFC 6749 §3.2's rule that none (but `resource`) repeats.
pub(crate) struct Params(Vec<(String, String)>);

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
        let bytes = read_body(body, state.config.max_body_bytes)
            .await
            // RFC 6749 has no timeout error: a late body is `invalid_request` too, said so.
            .map_err(|e| OAuthError::invalid_request(e.detail().to_owned()))?;
        let pairs = parse_pairs(&bytes);
        let mut seen = HashSet::new();
        for (k, _) in &pairs {
            if k != "resource" && !seen.insert(k.as_str()) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{k}` repeated"
                )));
            }
        }
        Ok((parts.headers, Self(pairs)))
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

pub(crate) enum ClientAuth {
    Secret {
        client_id: String,
        secret: String,
    },
    Assertion {
        client_id: Option<String>,
        assertion: String,
    },
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

/// Which single client authentication method the request uses (RFC 6749 §2.3: at most one).
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
    } else {
        assertion.map(|a| ClientAuth::Assertion {
            client_id,
            assertion: a.to_owned(),
        })
    })
}

/// The refusal that says nothing about which of unknown client, unknown key, bad
/// signature or wrong secret it was.
fn failed() -> OAuthError {
    OAuthError::invalid_client(assertion::AUTH_FAILED)
}

/// The issuer written with the root path `/` when it has no path: RFC 3986 §6.2.3 makes
/// `http://host` and `http://host/` the same URI, and URL parsers (pydantic's, WHATWG's,
/// used by the MCP SDKs to derive the assertion `aud` from the metadata's `issuer`)
/// write the slash. `None` when the issuer has a path, whose trailing slash would make
/// another URI.
fn issuer_root_slash(issuer: &str) -> Option<String> {
    let (_, rest) = issuer.split_once("://")?;
    (!rest.contains('/')).then(|| format!("{issuer}/"))
}

/// The agent named by a client id, as the current snapshot holds it.
///
/// The snapshot, not the store: every change to an agent (status, boundary, a
/// decommission) refreshes the snapshot before it answers (`INVARIANT (snapshot)`), so
/// this sees a suspension as soon as decisions do, without a store read per request.
/// While the snapshot is stale, no client authenticates (503).
fn snapshot_agent(state: &Node, client_id: &str) -> Result<Option<Agent>, OAuthError> {
    let snapshot = state.snapshot()?;
    Ok(AgentId::parse(client_id)
        .ok()
        .and_then(|id| snapshot.agents.get(&id).cloned()))
}

/// The client-secret check against the stored credentials (Argon2id unless `remembered`
/// names a credential that is still usable), remembering a match under the credentials
/// generation read before the credentials were.
async fn secret_from_store(
    state: &Arc<Node>,
    client_id: String,
    secret: String,
    agent: Option<Agent>,
    remembered: Option<Remembered>,
    now: Timestamp,
) -> Result<Option<Agent>, OAuthError> {
    // A remembered secret needs no Argon2id, so no permit either.
    let permit = if remembered.is_some() {
        None
    } else {
        let wait = Arc::clone(state.argon2_permits()).acquire_owned();
        let Ok(Ok(permit)) = tokio::time::timeout(ARGON2_QUEUE_WAIT, wait).await else {
            tracing::warn!("client-secret checks saturated; refusing with 503");
            return Err(OAuthError::temporarily_unavailable(
                "too many concurrent client authentications; retry shortly",
            ));
        };
        Some(permit)
    };
    crate::blocking(state, move |s| -> Result<Option<Agent>, OAuthError> {
        let _permit = permit;
        let Some(agent) = agent else {
            secret::verify_against_dummy(&secret);
            return Ok(None);
        };
        let id = &agent.id;
        // Before the read: see `StoreExt::credentials_generation`.
        let generation = s.store().credentials_generation();
        let creds = s.store().credentials(id)?;
        let usable: Vec<_> = creds
            .iter()
            .filter(|c| {
                c.credential.kind == CredentialKind::ClientSecret && c.credential.usable_at(now)
            })
            .collect();
        // INVARIANT (caches only spare work): the remembered credential must still
        // be usable now.
        let remembered = remembered.and_then(|r| {
            let c = usable.iter().find(|c| c.credential.id == r.credential)?;
            Some((*c, r.until))
        });
        let (m, limit) = if let Some(found) = remembered {
            found
        } else {
            if usable.is_empty() {
                secret::verify_against_dummy(&secret);
                return Ok(None);
            }
            // Which candidate matched is no secret; stop at the first (during a
            // rotation overlap this halves the Argon2id cost of the new secret).
            let matched = usable.iter().find(|c| {
                c.secret_hash
                    .as_deref()
                    .is_some_and(|h| secret::verify_client_secret(&secret, h))
            });
            let Some(m) = matched else {
                tracing::info!(client_id = %id, "client secret refused");
                return Ok(None);
            };
            (*m, now.plus_secs(mandate_service::cache::SECRET_MEMO_SECS))
        };
        // The memo (new or renewed) ends no later than the credential does now: a
        // rotation may have brought its expiry forward since a memo was made.
        let until = m.credential.expires_at.map_or(limit, |e| e.min(limit));
        let memo = Remembered {
            credential: m.credential.id.clone(),
            until,
            generation,
        };
        s.verified_secrets().insert(&client_id, &secret, memo);
        Ok(Some(agent))
    })
    .await
    .map_err(|e| OAuthError::server_error(e.code()))?
}

/// Authenticates the calling client and returns its agent, which must be active.
/// `endpoint` is the URL being called (an accepted assertion audience).
pub(crate) async fn authenticate(
    state: &Arc<Node>,
    auth: ClientAuth,
    endpoint: String,
) -> Result<Agent, OAuthError> {
    let agent = match auth {
        ClientAuth::Secret { client_id, secret } => {
            let now = state.clock.now();
            let agent = snapshot_agent(state, &client_id)?;
            let remembered = state.verified_secrets().get(&client_id, &secret, now);
            match (agent, remembered) {
                // The secret matched a credential found usable under the store's current
                // credentials generation, and the memo (never past that credential's
                // expiry) holds: no credential has changed since, so it is still usable.
                // The agent's status is checked below, from the snapshot.
                (Some(agent), Some(r))
                    if r.generation == state.store().credentials_generation() =>
                {
                    Some(agent)
                }
                (agent, remembered) => {
                    secret_from_store(state, client_id, secret, agent, remembered, now).await?
                }
            }
        }
        ClientAuth::Assertion {
            client_id,
            assertion: jwt,
        } => {
            // What needs no key is described exactly (it depends on the bytes sent
            // alone); an unknown client reads like a bad signature (`failed`). See the
            // module doc of mandate_token::assertion.
            let sub = assertion::peek_subject(&jwt)
                .map_err(|e| OAuthError::invalid_client(e.description()))?;
            if client_id.as_ref().is_some_and(|c| *c != sub) {
                return Err(OAuthError::invalid_client(
                    "client_id does not match the client assertion's sub",
                ));
            }
            let agent = snapshot_agent(state, &sub)?.ok_or_else(failed)?;
            let id = agent.id.clone();
            let issuer = state.config.issuer.clone();
            let token_endpoint = state.config.token_endpoint();
            crate::blocking(state, move |s| -> Result<Option<Agent>, OAuthError> {
                let now = s.clock.now();
                let keys: Vec<PublicJwk> = s
                    .store()
                    .credentials(&id)?
                    .iter()
                    .filter(|c| {
                        c.credential.kind == CredentialKind::PublicKey
                            && c.credential.usable_at(now)
                    })
                    .filter_map(|c| {
                        c.credential
                            .public_jwk
                            .as_ref()
                            .and_then(|j| PublicJwk::parse(j).ok())
                    })
                    .collect();
                let refs: Vec<&PublicJwk> = keys.iter().collect();
                let root = issuer_root_slash(&issuer);
                let mut auds = vec![token_endpoint.as_str(), issuer.as_str(), endpoint.as_str()];
                auds.extend(root.as_deref());
                let verified = match assertion::verify(&jwt, id.as_str(), &refs, &auds, now) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::info!(client_id = %id, reason = %e, "client assertion refused");
                        return Err(OAuthError::invalid_client(e.description()));
                    }
                };
                // INVARIANT (replay): a jti is accepted once per client within its lifetime.
                if !s
                    .store()
                    .record_assertion_jti(&id, &verified.jti, verified.exp, now)?
                {
                    tracing::warn!(client_id = %id, "client assertion replayed");
                    return Err(OAuthError::invalid_client("client assertion already used"));
                }
                Ok(Some(agent))
            })
            .await
            .map_err(|e| OAuthError::server_error(e.code()))??
        }
    };
    let agent = agent.ok_or_else(failed)?;
    if agent.status != AgentStatus::Active {
        tracing::info!(client_id = %agent.id, status = %agent.status, "inactive client refused");
        return Err(OAuthError::invalid_client(format!(
            "client is {}",
            agent.status
        )));
    }
    Ok(agent)
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
    let claimed = match &auth {
        ClientAuth::Secret { client_id, .. } => Some(client_id.clone()),
        ClientAuth::Assertion { assertion: a, .. } => assertion::peek_subject(a).ok(),
    };
    let agent = match authenticate(state, auth, state.config.token_endpoint()).await {
        Ok(a) => a,
        Err(e) => {
            record_refusal(state, claimed, &e).await;
            return Err(e);
        }
    };
    match issue(state, &agent, scope, resources).await {
        Ok(res) => Ok(res),
        Err(e) => {
            record_refusal(state, Some(agent.id.to_string()), &e).await;
            Err(e)
        }
    }
}

/// Records a refused token request. Best effort: the refusal stands even if it cannot
/// be recorded (a flood of refusals must not turn into a flood of errors).
pub(crate) async fn record_refusal(state: &Node, client: Option<String>, e: &OAuthError) {
    let mut ev = state.event("token.refused");
    // The claimed client id is unverified: keep it as a detail, bounded in size.
    ev.details = Some(json!({
        "error": e.error(),
        "client_id": client.map(|c| c.chars().take(64).collect::<String>()),
    }));
    if let Some(c) = ev
        .details
        .as_ref()
        .and_then(|d| d["client_id"].as_str())
        .filter(|c| AgentId::parse(c).is_ok())
    {
        ev.agent = Some(c.to_owned());
    }
    if let Err(err) = state.audit.record(ev).await {
        tracing::warn!(error = %err, "token refusal not recorded");
    }
}

/// The part of the token endpoint after authentication: boundary checks, then issue.
async fn issue(
    state: &Arc<Node>,
    agent: &Agent,
    scope: Option<String>,
    resources: Vec<&str>,
) -> Result<Response, OAuthError> {
    // INVARIANT (ceiling): every scope token granted lies inside the agent's boundary.
    if let Some(outside) = scope
        .iter()
        .flat_map(|s| s.split(' '))
        .find(|t| !agent.boundary.allows_scope(t))
    {
        return Err(OAuthError::invalid_scope(format!(
            "scope `{outside}` is outside the agent's boundary"
        )));
    }
    let aud = granted_audience(state, agent, &resources, "resource")?;
    let lifetime = token_lifetime(state, agent);
    let now = state.clock.now();
    let jti = TokenId::generate(state.clock.as_ref(), state.random.as_ref())
        .map_err(OAuthError::server_error)?;
    let claims = AccessClaims {
        iss: state.config.issuer.clone(),
        sub: agent.id.to_string(),
        aud,
        exp: now.plus_secs(i64::from(lifetime)).secs(),
        iat: now.secs(),
        nbf: now.secs(),
        jti: jti.to_string(),
        client_id: agent.id.to_string(),
        scope: scope.clone(),
        act: None,
        mandate: None,
        parents: Vec::new(),
    };
    let details = json!({"token_id": claims.jti, "aud": claims.aud, "scope": claims.scope, "exp": claims.exp});
    let token = sign_and_record(state, &claims, details, None).await?;
    tracing::info!(client_id = %agent.id, jti = %claims.jti, expires_in = lifetime, "access token issued");
    let mut body = serde_json::Map::new();
    body.insert("access_token".into(), json!(token));
    body.insert("token_type".into(), json!("Bearer"));
    body.insert("expires_in".into(), json!(lifetime));
    if let Some(s) = scope {
        body.insert("scope".into(), json!(s));
    }
    Ok(no_store(Json(Value::Object(body)).into_response()))
}

/// The lifetime of a token for `agent`.
///
/// INVARIANT (lifetime): never longer than the server's default nor the agent's maximum.
pub(crate) fn token_lifetime(state: &Node, agent: &Agent) -> u32 {
    agent
        .boundary
        .max_token_lifetime_secs
        .map_or(state.config.default_token_lifetime_secs, |m| {
            m.min(state.config.default_token_lifetime_secs)
        })
}

/// Signs `claims` with the current key and records `token.issued` (with `details`)
/// durably; the token is not handed out before its issuance is on the record.
pub(crate) async fn sign_and_record(
    state: &Arc<Node>,
    claims: &AccessClaims,
    details: Value,
    user: Option<String>,
) -> Result<String, OAuthError> {
    // The snapshot's ring: the one decisions verify with, so a token just signed always
    // verifies there (a rotation refreshes the snapshot before it answers), and taking
    // it needs neither the store nor a blocking thread.
    let ring = Arc::clone(&state.snapshot()?.ring);
    let token = access::issue_as(ring.current(), ring.signing_alg(), claims)
        .map_err(OAuthError::server_error)?;
    let mut ev = state.event("token.issued");
    ev.agent = Some(claims.client_id.clone());
    ev.user = user;
    ev.details = Some(details);
    state.audit.record(ev).await.map_err(|e| {
        tracing::error!(error = %e, "token issuance not recorded; refusing");
        OAuthError::temporarily_unavailable("the audit log cannot be written; retry shortly")
    })?;
    Ok(token)
}

/// The `aud` of a token `agent` asks for with these RFC 8707 `resource` (or RFC 8693
/// `audience`) targets, named `what` in errors: the default audience when there are none.
///
/// INVARIANT (ceiling): a token names only audiences the boundary lists, or Mandate's
/// own (the issuer, the default audience); otherwise `invalid_target` (RFC 8707 §2).
/// INVARIANT (audience, at issuance): a token is either for Mandate or for others,
/// never both — a resource server that receives a token for itself must never hold
/// one Mandate accepts (`INVARIANT (audience)` in decide.rs refuses mixed ones too).
pub(crate) fn granted_audience(
    state: &Node,
    agent: &Agent,
    targets: &[&str],
    what: &str,
) -> Result<Audience, OAuthError> {
    let own = |a: &str| state.config.is_own_audience(a);
    let mut audiences: Vec<String> = Vec::new();
    for t in targets {
        if !own(t) && !agent.boundary.allows_audience(t) {
            return Err(OAuthError::invalid_target(format!(
                "{what} `{t}` is outside the agent's boundary"
            )));
        }
        if !audiences.iter().any(|a| a == t) {
            audiences.push((*t).to_owned());
        }
    }
    let mandates = audiences.iter().filter(|a| own(a)).count();
    if mandates != 0 && mandates != audiences.len() {
        return Err(OAuthError::invalid_target(format!(
            "a token for Mandate is for Mandate only: ask for the {what}s of other services \
             in a token of their own"
        )));
    }
    Ok(Audience::from_list(audiences)
        .unwrap_or_else(|| Audience::One(state.config.default_audience.clone())))
}

/// What every access token must satisfy (as `Snapshot::expected`, for the paths that
/// read the store instead of the snapshot).
fn expected(s: &Node) -> access::Expected<'_> {
    access::Expected {
        issuer: &s.config.issuer,
        max_lifetime_secs: i64::from(s.config.max_token_lifetime_secs),
    }
}

/// The claims of `token` if it is active now: valid signature, type, issuer and window,
/// not revoked, and its agent exists and is active. Any error is "not active".
pub(crate) fn active_claims(s: &Node, token: &str) -> Option<AccessClaims> {
    let now = s.clock.now();
    let ring = s.keys.ring();
    let claims = access::verify(&ring, token, &expected(s), now).ok()?;
    if s.store().is_token_revoked(&claims.jti).unwrap_or(true) {
        return None;
    }
    let id = AgentId::parse(&claims.client_id).ok()?;
    let agent = s.store().get_agent(&id).ok()??;
    // A token issued at or before the agent's cutoff (credential revoked, suspension
    // with `revoke_tokens`) is dead even if the agent is active again.
    let cutoff = s.store().tokens_not_before(&id).ok()?;
    if cutoff.is_some_and(|c| claims.iat <= c.secs()) {
        return None;
    }
    if agent.status != AgentStatus::Active {
        return None;
    }
    // A mandate or delegated token also needs its mandate active and its whole chain good.
    crate::decide::holder(&*s.snapshot().ok()?, &claims, now).ok()?;
    Some(claims)
}

/// Who may introspect or revoke: an admin token, or an authenticated agent (own tokens only).
enum Caller {
    Admin { can_write: bool, id: String },
    Agent(AgentId),
}

async fn caller(
    state: &Arc<Node>,
    headers: &HeaderMap,
    p: &Params,
    endpoint: &str,
) -> Result<Caller, OAuthError> {
    if let Some(t) = bearer(headers) {
        if looks_like_jwt(t) {
            return Err(OAuthError::invalid_client(
                "agent access tokens cannot authenticate here",
            ));
        }
        if client_auth(headers, p)?.is_some() {
            return Err(OAuthError::invalid_request(
                "use exactly one authentication method",
            ));
        }
        let digest = secret::admin_token_digest(t);
        let admin = crate::blocking(state, move |s| s.store().admin_token_by_digest(&digest))
            .await
            .map_err(|e: ApiError| OAuthError::server_error(e.code()))??;
        return admin
            .map(|a| Caller::Admin {
                can_write: a.role.can_write(),
                id: a.id.to_string(),
            })
            .ok_or_else(|| OAuthError::invalid_token("unknown or revoked admin token"));
    }
    let auth = client_auth(headers, p)?
        .ok_or_else(|| OAuthError::invalid_client("authentication required"))?;
    Ok(Caller::Agent(
        authenticate(state, auth, format!("{}{endpoint}", state.config.issuer))
            .await?
            .id,
    ))
}

/// `POST /oauth/introspect` (RFC 7662).
pub(crate) async fn introspect(
    State(state): State<Arc<Node>>,
    req: Request<Body>,
) -> Result<Response, OAuthError> {
    let (headers, p) = Params::read(&state, req).await?;
    let who = caller(&state, &headers, &p, "/oauth/introspect").await?;
    let token = p
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?
        .to_owned();
    let claims = crate::blocking(&state, move |s| active_claims(s, &token))
        .await
        .map_err(|e| OAuthError::server_error(e.code()))?;
    let claims = claims.filter(|c| match &who {
        Caller::Admin { .. } => true,
        Caller::Agent(id) => c.client_id == id.as_str(),
    });
    let body = match claims {
        None => json!({"active": false}),
        Some(c) => {
            let mut v = serde_json::to_value(&c).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("active".into(), json!(true));
                m.insert("token_type".into(), json!("Bearer"));
            }
            v
        }
    };
    Ok(no_store(Json(body).into_response()))
}

/// `POST /oauth/revoke` (RFC 7009). Answers 200 for tokens that are already invalid.
pub(crate) async fn revoke(
    State(state): State<Arc<Node>>,
    req: Request<Body>,
) -> Result<Response, OAuthError> {
    let (headers, p) = Params::read(&state, req).await?;
    let who = caller(&state, &headers, &p, "/oauth/revoke").await?;
    let token = p
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?
        .to_owned();
    if let Caller::Admin {
        can_write: false, ..
    } = who
    {
        return Err(OAuthError::insufficient_scope(
            "read-only admin tokens cannot revoke",
        ));
    }
    let outcome = crate::blocking(&state, move |s| -> Result<Option<AuditEvent>, OAuthError> {
        let now = s.clock.now();
        let ring = s.keys.ring();
        // Expired or foreign tokens need no revocation; a bad signature is just invalid.
        let Ok(claims) = access::verify(&ring, &token, &expected(s), now) else {
            return Ok(None);
        };
        if let Caller::Agent(id) = &who
            && claims.client_id != id.as_str()
        {
            return Err(OAuthError::unauthorized_client(
                "the token was issued to another client",
            ));
        }
        s.store().revoke_token(
            &claims.jti,
            mandate_core::time::Timestamp::from_secs(claims.exp),
            now,
        )?;
        tracing::info!(jti = %claims.jti, client_id = %claims.client_id, "access token revoked");
        let mut e = s.event("token.revoked");
        e.agent = Some(claims.client_id.clone());
        e.actor = match &who {
            Caller::Admin { id, .. } => Some(id.clone()),
            Caller::Agent(_) => None,
        };
        e.details = Some(json!({"token_id": claims.jti}));
        Ok(Some(e))
    })
    .await
    .map_err(|e| OAuthError::server_error(e.code()))?;
    if let Some(event) = outcome? {
        state
            .audit
            .record(event)
            .await
            .map_err(OAuthError::server_error)?;
    }
    Ok(no_store(axum::http::StatusCode::OK.into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_syntax() {
        assert_eq!(check_scope("a b a").unwrap(), "a b");
        assert!(check_scope("a  b").is_err());
        assert!(check_scope("a\"b").is_err());
        assert!(check_scope("é").is_err());
    }
}
