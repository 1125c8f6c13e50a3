//! The token service's use cases, whatever edge asks: client authentication (client
//! secrets, RFC 7523 `private_key_jwt` assertions, RFC 8705 client certificates —
//! client_certs.rs), issuing an access token for client
//! credentials, introspection, revocation, and the record of a refused token request.
//! Token exchange builds on these (exchange.rs).
//!
//! Client authentication fails with one indistinguishable
//! [`TokenError::AuthenticationFailed`] whether the client is unknown, the secret wrong,
//! or no registered key verifies an assertion; secrets are compared by Argon2id
//! verification (constant time), and an unknown client costs the same Argon2id work.
//! Concurrent Argon2id checks are bounded by the node's permits; a check that waits too
//! long for one is [`TokenError::Saturated`]. A refused client assertion otherwise says
//! why (reasoning in mandate_token::assertion).
//!
//! Errors are [`TokenError`]: each variant is one refusal in domain terms and carries
//! the RFC 6749 error code it is answered and recorded with ([`TokenError::code`]);
//! the HTTP edge renders it. Nothing here knows a status code.

use mandate_store::prelude::*;

use std::sync::Arc;

use mandate_core::agent::{Agent, AgentStatus};
use mandate_core::credential::CredentialKind;
use mandate_core::id::{AgentId, CredentialId, TokenId};
use mandate_core::random::RandomError;
use mandate_core::time::Timestamp;
use mandate_store::StoreError;
use mandate_token::access::{self, AccessClaims, Audience, IssueError};
use mandate_token::assertion::{self, AssertionError};
use mandate_token::jwk::PublicJwk;
use mandate_token::secret;
use serde_json::{Value, json};

use crate::Node;
use crate::audit::AuditError;
use crate::cache::Remembered;
use crate::error::ServiceError;
use crate::metrics::Grant;
use crate::snapshot_cell::StaleSnapshot;

/// How long a client-secret check may wait for an Argon2id slot before it is refused
/// ([`TokenError::Saturated`]).
const ARGON2_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a token request was refused, or could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Decisions are held: the snapshot could not be refreshed, so no client
    /// authenticates and no token is checked.
    #[error(transparent)]
    Stale(#[from] StaleSnapshot),
    /// Too many client-secret checks are running; none was free in time.
    #[error("too many concurrent client authentications; retry shortly")]
    Saturated,
    /// The client is unknown, its secret wrong, or no registered key verifies its
    /// assertion: which one is never said.
    #[error("{}", assertion::AUTH_FAILED)]
    AuthenticationFailed,
    /// The client assertion was refused for a reason that depends on it alone.
    #[error("{}", .0.description())]
    Assertion(AssertionError),
    /// The client certificate presented (with no other credential) was verified against
    /// the client CA and refused, for a reason that depends on it alone (expired, not
    /// of the CA, not for client authentication, …).
    #[error("{0} ({code})", code = .0.code())]
    ClientCertificate(mandate_tls::client_cert::ChainError),
    /// The `client_id` sent is not the assertion's subject.
    #[error("client_id does not match the client assertion's sub")]
    AssertionOfAnotherClient,
    /// The assertion's `jti` was accepted before.
    #[error("client assertion already used")]
    AssertionReplayed,
    /// The client authenticated, but its agent is not active.
    #[error("client is {0}")]
    Inactive(AgentStatus),
    /// A scope token asked for lies outside the agent's boundary.
    #[error("scope `{0}` is outside the agent's boundary")]
    ScopeOutsideBoundary(String),
    /// A target (`what`: a resource or an audience) lies outside the agent's boundary.
    #[error("{what} `{target}` is outside the agent's boundary")]
    TargetOutsideBoundary {
        /// What the request called the target (`resource`, `audience`).
        what: &'static str,
        /// The target.
        target: String,
    },
    /// Mandate and other services asked for in one token.
    #[error(
        "a token for Mandate is for Mandate only: ask for the {what}s of other services in a token of their own"
    )]
    MixedAudience {
        /// What the request called the targets (`resource`, `audience`).
        what: &'static str,
    },
    /// No token id could be drawn.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The token could not be signed.
    #[error(transparent)]
    Signing(#[from] IssueError),
    /// The issuance could not be recorded, so the token is not handed out.
    #[error("the audit log cannot be written; retry shortly")]
    IssuanceUnrecorded,
    /// A bearer admin token that no admin token matches (or one revoked).
    #[error("unknown or revoked admin token")]
    UnknownAdminToken,
    /// A read-only admin token asked to revoke.
    #[error("read-only admin tokens cannot revoke")]
    ReadOnly,
    /// An agent asked to revoke a token issued to another.
    #[error("the token was issued to another client")]
    AnotherClientsToken,
    /// The revocation stands but could not be recorded.
    #[error(transparent)]
    RevocationUnrecorded(AuditError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking task did not finish.
    #[error("blocking task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The `DPoP` header of the token request is refused (RFC 9449 §4.3, §8).
    #[error("DPoP proof refused: {0} ({code})", code = .0.code())]
    Dpop(mandate_token::dpop::DpopError),
    /// The agent's boundary requires DPoP-bound tokens and the request had no proof.
    #[error("this agent's boundary requires DPoP-bound tokens: send a DPoP proof header")]
    DpopRequired,
}

impl TokenError {
    /// The stable reason of a refusal finer than its RFC 6749 code, where there is one:
    /// a DPoP proof's (`dpop_replayed`, …), `dpop_required`, a client certificate's
    /// (`client_certificate_expired`, …). Recorded in `token.refused` as `reason`.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Dpop(e) => Some(e.code()),
            Self::DpopRequired => Some("dpop_required"),
            Self::ClientCertificate(e) => Some(e.code()),
            _ => None,
        }
    }

    /// The RFC 6749 §5.2 (RFC 6750, RFC 8707) error code of this refusal: what the
    /// edge answers and what `token.refused` records.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Stale(_) | Self::Saturated | Self::IssuanceUnrecorded => {
                "temporarily_unavailable"
            }
            Self::AuthenticationFailed
            | Self::ClientCertificate(_)
            | Self::Assertion(_)
            | Self::AssertionOfAnotherClient
            | Self::AssertionReplayed
            | Self::Inactive(_) => "invalid_client",
            Self::ScopeOutsideBoundary(_) => "invalid_scope",
            Self::TargetOutsideBoundary { .. } | Self::MixedAudience { .. } => "invalid_target",
            Self::UnknownAdminToken => "invalid_token",
            Self::ReadOnly => "insufficient_scope",
            Self::AnotherClientsToken => "unauthorized_client",
            Self::Dpop(e) => e.oauth_error(),
            Self::DpopRequired => "invalid_dpop_proof",
            Self::Random(_)
            | Self::Signing(_)
            | Self::RevocationUnrecorded(_)
            | Self::Store(_)
            | Self::Task(_) => "server_error",
        }
    }
}

/// How a client authenticates (RFC 6749 §2.3: exactly one method per request). Its
/// `Debug` never shows the secret or the assertion.
pub enum ClientAuth {
    /// `client_secret_basic` or `client_secret_post`.
    Secret {
        /// The client id sent.
        client_id: String,
        /// The secret sent.
        secret: String,
    },
    /// `private_key_jwt` (RFC 7523).
    Assertion {
        /// The `client_id` sent beside the assertion, if any.
        client_id: Option<String>,
        /// The assertion (a compact JWS).
        assertion: String,
    },
    /// `tls_client_auth` or `self_signed_tls_client_auth` (RFC 8705 §2): the
    /// `client_id` sent, and the certificate chain (leaf first) the client presented on
    /// the connection, whose leaf key it proved it holds (the TLS handshake).
    Certificate {
        /// The `client_id` sent.
        client_id: String,
        /// The chain presented.
        chain: Arc<[rustls_pki_types::CertificateDer<'static>]>,
    },
}

impl std::fmt::Debug for ClientAuth {
    /// The client id, never the secret or the assertion (see `mandate_token::secret`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret { client_id, .. } => f
                .debug_struct("Secret")
                .field("client_id", client_id)
                .field("secret", &"…")
                .finish(),
            Self::Assertion { client_id, .. } => f
                .debug_struct("Assertion")
                .field("client_id", client_id)
                .field("assertion", &"…")
                .finish(),
            Self::Certificate { client_id, chain } => f
                .debug_struct("Certificate")
                .field("client_id", client_id)
                .field("certificates", &chain.len())
                .finish(),
        }
    }
}

impl ClientAuth {
    /// The client this authentication claims to be, unverified (for the record of a
    /// refusal and the failed-authentication throttle): the client id sent with a
    /// secret, the subject of an assertion.
    pub fn claimed(&self) -> Option<String> {
        match self {
            Self::Secret { client_id, .. } | Self::Certificate { client_id, .. } => {
                Some(client_id.clone())
            }
            Self::Assertion { assertion: a, .. } => assertion::peek_subject(a).ok(),
        }
    }
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
/// While the snapshot is stale, no client authenticates.
fn snapshot_agent(node: &Node, client_id: &str) -> Result<Option<Agent>, TokenError> {
    let snapshot = node.snapshot()?;
    Ok(AgentId::parse(client_id)
        .ok()
        .and_then(|id| snapshot.agents.get(&id).cloned()))
}

/// The client-secret check against the stored credentials (Argon2id unless `remembered`
/// names a credential that is still usable), remembering a match under the credentials
/// generation read before the credentials were.
async fn secret_from_store(
    node: &Arc<Node>,
    client_id: String,
    secret: String,
    agent: Option<Agent>,
    remembered: Option<Remembered>,
    now: Timestamp,
) -> Result<Option<Agent>, TokenError> {
    // A remembered secret needs no Argon2id, so no permit either.
    let permit = if remembered.is_some() {
        None
    } else {
        let wait = Arc::clone(node.argon2_permits()).acquire_owned();
        let Ok(Ok(permit)) = tokio::time::timeout(ARGON2_QUEUE_WAIT, wait).await else {
            tracing::warn!("client-secret checks saturated; refusing with 503");
            return Err(TokenError::Saturated);
        };
        Some(permit)
    };
    node.blocking(move |s| -> Result<Option<Agent>, TokenError> {
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
            (*m, now.plus_secs(crate::cache::SECRET_MEMO_SECS))
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
        s.activity.saw(m.credential.id.as_str(), now);
        Ok(Some(agent))
    })
    .await?
}

/// Authenticates the calling client and returns its agent, which must be active.
/// `endpoint` is the URL being called (an accepted assertion audience).
pub async fn authenticate(
    node: &Arc<Node>,
    auth: ClientAuth,
    endpoint: String,
) -> Result<Agent, TokenError> {
    let agent = match auth {
        ClientAuth::Secret { client_id, secret } => {
            let now = node.clock.now();
            let agent = snapshot_agent(node, &client_id)?;
            let remembered = node.verified_secrets().get(&client_id, &secret, now);
            match (agent, remembered) {
                // The secret matched a credential found usable under the store's current
                // credentials generation, and the memo (never past that credential's
                // expiry) holds: no credential has changed since, so it is still usable.
                // The agent's status is checked below, from the snapshot.
                (Some(agent), Some(r)) if r.generation == node.store().credentials_generation() => {
                    node.activity.saw(r.credential.as_str(), now);
                    Some(agent)
                }
                (agent, remembered) => {
                    secret_from_store(node, client_id, secret, agent, remembered, now).await?
                }
            }
        }
        ClientAuth::Assertion {
            client_id,
            assertion: jwt,
        } => {
            // What needs no key is described exactly (it depends on the bytes sent
            // alone); an unknown client reads like a bad signature. See the module doc
            // of mandate_token::assertion.
            let sub = assertion::peek_subject(&jwt).map_err(TokenError::Assertion)?;
            if client_id.as_ref().is_some_and(|c| *c != sub) {
                return Err(TokenError::AssertionOfAnotherClient);
            }
            let agent = snapshot_agent(node, &sub)?.ok_or(TokenError::AuthenticationFailed)?;
            let id = agent.id.clone();
            let issuer = node.config.issuer.clone();
            let token_endpoint = node.config.token_endpoint();
            node.blocking(move |s| -> Result<Option<Agent>, TokenError> {
                let now = s.clock.now();
                let (key_ids, keys): (Vec<CredentialId>, Vec<PublicJwk>) = s
                    .store()
                    .credentials(&id)?
                    .iter()
                    .filter(|c| {
                        c.credential.kind == CredentialKind::PublicKey
                            && c.credential.usable_at(now)
                    })
                    .filter_map(|c| {
                        let jwk = c.credential.public_jwk.as_ref()?;
                        Some((c.credential.id.clone(), PublicJwk::parse(jwk).ok()?))
                    })
                    .unzip();
                let refs: Vec<&PublicJwk> = keys.iter().collect();
                let root = issuer_root_slash(&issuer);
                let mut auds = vec![token_endpoint.as_str(), issuer.as_str(), endpoint.as_str()];
                auds.extend(root.as_deref());
                let verified = match assertion::verify(&jwt, id.as_str(), &refs, &auds, now) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::info!(client_id = %id, reason = %e, "client assertion refused");
                        return Err(TokenError::Assertion(e));
                    }
                };
                // INVARIANT (replay): a jti is accepted once per client within its lifetime.
                if !s
                    .store()
                    .record_assertion_jti(&id, &verified.jti, verified.exp, now)?
                {
                    tracing::warn!(client_id = %id, "client assertion replayed");
                    return Err(TokenError::AssertionReplayed);
                }
                if let Some(k) = key_ids.get(verified.key_index) {
                    s.activity.saw(k.as_str(), now);
                }
                Ok(Some(agent))
            })
            .await??
        }
        ClientAuth::Certificate { client_id, chain } => {
            let agent = snapshot_agent(node, &client_id)?;
            let ca = node.config.client_certs.ca.clone();
            node.blocking(move |s| -> Result<Option<Agent>, TokenError> {
                // INVARIANT (no unverified text in the log): only a known agent's id is
                // logged, never the client_id as sent (a newline in it would forge a
                // line of the plain-text log; its length is the form's), as with a
                // refused secret or assertion. The refusal's audit record keeps a
                // bounded copy of the claim (`record_refusal`).
                let who = agent.as_ref().map_or("(unknown)", |a| a.id.as_str());
                let now = s.clock.now();
                let creds = match &agent {
                    Some(a) => s.store().credentials(&a.id)?,
                    None => Vec::new(),
                };
                let usable: Vec<_> = creds
                    .iter()
                    .map(|c| &c.credential)
                    .filter(|c| c.usable_at(now))
                    .collect();
                // An unknown client's chain is verified as a known one's: the answer
                // depends on the chain alone.
                let secs = u64::try_from(now.secs()).unwrap_or(0);
                match crate::client_certs::matching(&usable, &chain, ca.as_deref(), secs) {
                    Ok(Some(c)) => {
                        s.activity.saw(c.id.as_str(), now);
                        Ok(agent)
                    }
                    Ok(None) => {
                        tracing::info!(client_id = who, "client certificate matches no credential");
                        Ok(None)
                    }
                    Err(e) => {
                        tracing::info!(
                            client_id = who,
                            reason = e.code(),
                            "client certificate refused"
                        );
                        Err(TokenError::ClientCertificate(e))
                    }
                }
            })
            .await??
        }
    };
    let agent = agent.ok_or(TokenError::AuthenticationFailed)?;
    if agent.status != AgentStatus::Active {
        tracing::info!(client_id = %agent.id, status = %agent.status, "inactive client refused");
        return Err(TokenError::Inactive(agent.status));
    }
    Ok(agent)
}

/// Records a refused token request, refused with the RFC 6749 error code `error` and,
/// where the refusal has one, its stable `reason` ([`TokenError::reason`]), by the client
/// `client` claimed to be (unverified). Best effort: the refusal stands even if it cannot
/// be recorded (a flood of refusals must not turn into a flood of errors).
pub async fn record_refusal(
    node: &Node,
    client: Option<String>,
    error: &'static str,
    reason: Option<&'static str>,
) {
    let mut ev = node.event("token.refused");
    // The claimed client id is unverified: keep it as a detail, bounded in size.
    let mut details = json!({
        "error": error,
        "client_id": client.map(|c| c.chars().take(64).collect::<String>()),
    });
    if let (Some(r), Value::Object(m)) = (reason, &mut details) {
        m.insert("reason".into(), json!(r));
    }
    ev.details = Some(details);
    if let Some(c) = ev
        .details
        .as_ref()
        .and_then(|d| d["client_id"].as_str())
        .filter(|c| AgentId::parse(c).is_ok())
    {
        ev.agent = Some(c.to_owned());
    }
    if let Err(err) = node.audit.record(ev).await {
        tracing::warn!(error = %err, "token refusal not recorded");
    }
}

/// An access token just issued (and recorded). Its `Debug` never shows the token.
pub struct Issued {
    /// The signed token.
    pub token: String,
    /// Its lifetime in seconds.
    pub expires_in: u32,
    /// Its scope, when one was asked for.
    pub scope: Option<String>,
    /// Whether it is DPoP-bound (`cnf.jkt`): answered with `token_type` `DPoP`.
    pub bound: bool,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("token", &"…")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// The client credentials grant: authenticates the client, checks what it asks for
/// against its agent's boundary and issues an access token. `scope` is syntactically
/// checked (deduplicated) and `resources` are absolute URIs, at most 8 of them. Every
/// refusal is recorded (`token.refused`) under the client claimed, or the agent once it
/// authenticated.
pub async fn issue_client_credentials(
    node: &Arc<Node>,
    auth: ClientAuth,
    scope: Option<String>,
    resources: &[&str],
    proofs: &[&str],
) -> Result<Issued, TokenError> {
    issue_client_credentials_over(node, auth, scope, resources, proofs, None).await
}

/// [`issue_client_credentials`] over a connection whose client certificate has the
/// thumbprint `certificate` (RFC 8705 `x5t#S256`), if any.
///
/// INVARIANT (bound to the connection's certificate): a token requested over a TLS
/// connection carrying a client certificate is certificate-bound to it (`cnf.x5t#S256`),
/// whatever the client authentication method (RFC 8705 §3); with a DPoP proof too, it
/// is bound both ways and is held to both.
pub async fn issue_client_credentials_over(
    node: &Arc<Node>,
    auth: ClientAuth,
    scope: Option<String>,
    resources: &[&str],
    proofs: &[&str],
    certificate: Option<String>,
) -> Result<Issued, TokenError> {
    let claimed = auth.claimed();
    let agent = match authenticate(node, auth, node.config.token_endpoint()).await {
        Ok(a) => a,
        Err(e) => {
            record_refusal(node, claimed, e.code(), e.reason()).await;
            return Err(e);
        }
    };
    let jkt = match token_request_proof(node, &agent, proofs) {
        Ok(j) => j,
        Err(e) => {
            record_refusal(node, Some(agent.id.to_string()), e.code(), e.reason()).await;
            return Err(e);
        }
    };
    match issue(node, &agent, scope, resources, jkt, certificate).await {
        Ok(issued) => Ok(issued),
        Err(e) => {
            record_refusal(node, Some(agent.id.to_string()), e.code(), e.reason()).await;
            Err(e)
        }
    }
}

/// The part of the client credentials grant after authentication: boundary checks,
/// then issue.
async fn issue(
    node: &Arc<Node>,
    agent: &Agent,
    scope: Option<String>,
    resources: &[&str],
    jkt: Option<String>,
    certificate: Option<String>,
) -> Result<Issued, TokenError> {
    // INVARIANT (ceiling): every scope token granted lies inside the agent's boundary.
    if let Some(outside) = scope
        .iter()
        .flat_map(|s| s.split(' '))
        .find(|t| !agent.boundary.allows_scope(t))
    {
        return Err(TokenError::ScopeOutsideBoundary(outside.to_owned()));
    }
    let aud = granted_audience(node, agent, resources, "resource")?;
    let lifetime = token_lifetime(node, agent);
    let now = node.clock.now();
    let jti = TokenId::generate(node.clock.as_ref(), node.random.as_ref())?;
    let claims = AccessClaims {
        iss: node.config.issuer.clone(),
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
        cnf: access::Confirmation::of(jkt, certificate),
    };
    let details = json!({"token_id": claims.jti, "aud": claims.aud, "scope": claims.scope,
        "exp": claims.exp, "cnf": claims.cnf});
    let token = sign_and_record(node, &claims, details, None, Grant::ClientCredentials).await?;
    tracing::info!(client_id = %agent.id, jti = %claims.jti, expires_in = lifetime, "access token issued");
    Ok(Issued {
        token,
        expires_in: lifetime,
        scope,
        bound: claims.jkt().is_some(),
    })
}

/// The DPoP proof of a token request (RFC 9449 §5): `None` without a `DPoP` header,
/// else the thumbprint of the key it verified with (the new token's `cnf.jkt`), the
/// proof made for `POST` to the token endpoint, fresh, and never seen before (it is
/// remembered in the replay cache). More than one header is malformed (§4.3).
///
/// INVARIANT (boundary requires DPoP): an agent whose boundary says `require_dpop`
/// gets no token without a proof.
pub fn token_request_proof(
    node: &Node,
    agent: &Agent,
    proofs: &[&str],
) -> Result<Option<String>, TokenError> {
    let proof = match proofs {
        [] if agent.boundary.require_dpop => return Err(TokenError::DpopRequired),
        [] => return Ok(None),
        [one] => *one,
        _ => return Err(TokenError::Dpop(mandate_token::dpop::DpopError::Malformed)),
    };
    let now = node.clock.now();
    let d = node.dpop();
    let v = d
        .verify(proof, "POST", &node.config.token_endpoint(), None, now)
        .map_err(TokenError::Dpop)?;
    d.admit(&v, now).map_err(TokenError::Dpop)?;
    Ok(Some(v.jkt))
}

/// The lifetime of a token for `agent`.
///
/// INVARIANT (lifetime): never longer than the server's default nor the agent's maximum.
pub fn token_lifetime(node: &Node, agent: &Agent) -> u32 {
    agent
        .boundary
        .max_token_lifetime_secs
        .map_or(node.config.default_token_lifetime_secs, |m| {
            m.min(node.config.default_token_lifetime_secs)
        })
}

/// Signs `claims` with the current key and records `token.issued` (with `details`)
/// durably; the token is not handed out before its issuance is on the record. Counted
/// under `grant` once recorded.
pub(crate) async fn sign_and_record(
    node: &Arc<Node>,
    claims: &AccessClaims,
    details: Value,
    user: Option<String>,
    grant: Grant,
) -> Result<String, TokenError> {
    // The snapshot's ring: the one decisions verify with, so a token just signed always
    // verifies there (a rotation refreshes the snapshot before it answers), and taking
    // it needs neither the store nor a blocking thread.
    let ring = Arc::clone(&node.snapshot()?.ring);
    let token = access::issue_as(ring.current(), ring.signing_alg(), claims)?;
    let mut ev = node.event("token.issued");
    ev.agent = Some(claims.client_id.clone());
    ev.user = user;
    ev.details = Some(details);
    node.audit.record(ev).await.map_err(|e| {
        tracing::error!(error = %e, "token issuance not recorded; refusing");
        TokenError::IssuanceUnrecorded
    })?;
    crate::metrics::token_issued(grant);
    Ok(token)
}

/// The `aud` of a token `agent` asks for with these RFC 8707 `resource` (or RFC 8693
/// `audience`) targets, named `what` in errors: the default audience when there are none.
///
/// INVARIANT (ceiling): a token names only audiences the boundary lists, or Mandate's
/// own (the issuer, the default audience); otherwise refused (RFC 8707 §2).
/// INVARIANT (audience, at issuance): a token is either for Mandate or for others,
/// never both — a resource server that receives a token for itself must never hold
/// one Mandate accepts (`INVARIANT (audience)` in decide.rs refuses mixed ones too).
pub fn granted_audience(
    node: &Node,
    agent: &Agent,
    targets: &[&str],
    what: &'static str,
) -> Result<Audience, TokenError> {
    let own = |a: &str| node.config.is_own_audience(a);
    let mut audiences: Vec<String> = Vec::new();
    for t in targets {
        if !own(t) && !agent.boundary.allows_audience(t) {
            return Err(TokenError::TargetOutsideBoundary {
                what,
                target: (*t).to_owned(),
            });
        }
        if !audiences.iter().any(|a| a == t) {
            audiences.push((*t).to_owned());
        }
    }
    let mandates = audiences.iter().filter(|a| own(a)).count();
    if mandates != 0 && mandates != audiences.len() {
        return Err(TokenError::MixedAudience { what });
    }
    Ok(Audience::from_list(audiences)
        .unwrap_or_else(|| Audience::One(node.config.default_audience.clone())))
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
/// Blocking (it reads the store).
pub fn active_claims(s: &Node, token: &str) -> Option<AccessClaims> {
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
    mandate_engine::decide::holder(&*s.snapshot().ok()?, &claims, now).ok()?;
    Some(claims)
}

/// Who may introspect or revoke: an admin token, or an authenticated agent (its own
/// tokens only).
#[derive(Debug)]
pub enum Requester {
    /// An admin token.
    Admin {
        /// Whether its role may write (revoke).
        can_write: bool,
        /// The admin token's id (the audit actor).
        id: String,
    },
    /// An agent authenticated as a client.
    Agent(AgentId),
}

/// The requester an admin bearer token names, or [`TokenError::UnknownAdminToken`].
pub async fn admin_requester(node: &Arc<Node>, bearer: &str) -> Result<Requester, TokenError> {
    let digest = secret::admin_token_digest(bearer);
    let admin = node
        .blocking(move |s| s.store().admin_token_by_digest(&digest))
        .await??;
    admin
        .map(|a| Requester::Admin {
            can_write: a.role.can_write(),
            id: a.id.to_string(),
        })
        .ok_or(TokenError::UnknownAdminToken)
}

/// RFC 7662 introspection: the claims of `token` if it is active and `who` may see it
/// (an admin any token, an agent its own); `None` otherwise.
pub async fn introspect(
    node: &Arc<Node>,
    who: &Requester,
    token: String,
) -> Result<Option<AccessClaims>, TokenError> {
    let claims = node.blocking(move |s| active_claims(s, &token)).await?;
    Ok(claims.filter(|c| match who {
        Requester::Admin { .. } => true,
        Requester::Agent(id) => c.client_id == id.as_str(),
    }))
}

/// RFC 7009 revocation by `who`: an admin that may write, or the agent the token was
/// issued to. A token that is already invalid (expired, foreign, a bad signature) needs
/// none and is no error; a revocation is recorded (`token.revoked`).
pub async fn revoke(node: &Arc<Node>, who: Requester, token: String) -> Result<(), TokenError> {
    if let Requester::Admin {
        can_write: false, ..
    } = who
    {
        return Err(TokenError::ReadOnly);
    }
    // Under the act order (`INVARIANT (act order)`, write_path.rs), like every act that
    // writes and records.
    let (outcome, _) = node
        .act_batch("token revocation", move |s| {
            let now = s.clock.now();
            let ring = s.keys.ring();
            // Expired or foreign tokens need no revocation; a bad signature is just invalid.
            let Ok(claims) = access::verify(&ring, &token, &expected(s), now) else {
                return Ok((Ok(()), Vec::new()));
            };
            if let Requester::Agent(id) = &who
                && claims.client_id != id.as_str()
            {
                return Ok((Err(TokenError::AnotherClientsToken), Vec::new()));
            }
            if let Err(e) = s
                .store()
                .revoke_token(&claims.jti, Timestamp::from_secs(claims.exp), now)
            {
                return Ok((Err(TokenError::Store(e)), Vec::new()));
            }
            tracing::info!(jti = %claims.jti, client_id = %claims.client_id, "access token revoked");
            let mut e = s.event("token.revoked");
            e.agent = Some(claims.client_id.clone());
            e.actor = match &who {
                Requester::Admin { id, .. } => Some(id.clone()),
                Requester::Agent(_) => None,
            };
            e.details = Some(json!({"token_id": claims.jti}));
            Ok::<_, ServiceError>((Ok(()), vec![e]))
        })
        .await
        .map_err(|e| match e {
            ServiceError::Task(t) => TokenError::Task(t),
            ServiceError::Store(e) => TokenError::Store(e),
            // The revocation stands; its record did not commit.
            _ => TokenError::RevocationUnrecorded(AuditError::Unavailable),
        })?;
    outcome?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_slash_only_for_an_issuer_without_a_path() {
        assert_eq!(
            issuer_root_slash("http://host:8080").as_deref(),
            Some("http://host:8080/")
        );
        assert_eq!(issuer_root_slash("https://host/tenant"), None);
    }
}
