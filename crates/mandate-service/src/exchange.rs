//! RFC 8693 token exchange, for mandates and delegation: the use case behind
//! `/oauth/token` with the token-exchange grant, whatever edge asks.
//!
//! - **Mandate token**: the agent (always authenticated as a client; an `actor_token`,
//!   if given, must be its own plain token issued for Mandate) presents the user's token
//!   as the subject token (or its own token, for a mandate with no user) and gets an
//!   access token with `sub` = the user, `act.sub` = the agent, a `mandate` claim, scope
//!   within the mandate's, and a lifetime within the mandate's (and the user token's).
//! - **Delegation**: agent B presents a mandate token it received from agent A as the
//!   subject token and gets its own: `act` = {B, act: A's `act`}, scope the intersection
//!   of what it asks and what the parent had (asking for more is refused), the parent
//!   recorded in `parents`. B must be in A's boundary `delegates`, and the chain may not
//!   grow past the configured depth.
//!
//! Refusals are [`ExchangeError`], each with the RFC 8693 §2.2.2 error code it is
//! answered and recorded with ([`ExchangeError::code`]). Only access tokens are issued.

use std::sync::Arc;

use mandate_core::agent::Agent;
use mandate_core::decision::Reason;
use mandate_core::id::{AgentId, MandateId, TokenId};
use mandate_core::mandate::{Mandate, NarrowError, narrow_scope};
use mandate_core::time::Timestamp;
use mandate_engine::decide::{Snapshot, holder};
use mandate_token::access::{self, AccessClaims, Actor, ParentToken, VerifyError};
use mandate_token::user::{UserTokenError, VerifiedUser};
use serde_json::json;

use crate::Node;
use crate::tokens::{
    ClientAuth, TokenError, authenticate, granted_audience, record_refusal, sign_and_record,
    token_lifetime,
};

/// Why a token exchange was refused, or could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// A refusal shared with the other grants: client authentication, a target outside
    /// the boundary, signing, recording, the store.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The request came with no client authentication.
    #[error(
        "token exchange requires client authentication (client_secret_basic, client_secret_post or private_key_jwt)"
    )]
    ClientRequired,
    /// The subject token is DPoP-bound and the request's proof is not made with its key.
    #[error(
        "subject_token is DPoP-bound: the token request must carry a DPoP proof made with the key it is bound to"
    )]
    SubjectTokenBound,
    /// The actor token is DPoP-bound and the request's proof is not made with its key.
    #[error(
        "actor_token is DPoP-bound: the token request must carry a DPoP proof made with the key it is bound to"
    )]
    ActorTokenBound,
    /// The subject or actor token is certificate-bound (RFC 8705 `cnf.x5t#S256`).
    #[error(
        "a certificate-bound token (cnf.x5t#S256) is not exchanged: the new token would shed its binding"
    )]
    CertificateBound,
    /// The actor token does not verify.
    #[error("actor_token is invalid: {0}")]
    ActorTokenInvalid(VerifyError),
    /// The actor token is for another service.
    #[error("actor_token is not issued for Mandate")]
    ActorTokenNotForMandate,
    /// The actor token is no longer active.
    #[error("actor_token is not active: {0}")]
    ActorTokenInactive(Reason),
    /// The actor token is bound to a mandate.
    #[error("actor_token must be the agent's own client-credentials token")]
    ActorTokenMandateBound,
    /// The actor token is another agent's.
    #[error("actor_token belongs to another client")]
    ActorTokenOfAnotherClient,
    /// The subject token (one of Mandate's) does not verify.
    #[error("subject_token is invalid: {0}")]
    SubjectTokenInvalid(VerifyError),
    /// The subject token is no longer active.
    #[error("subject_token is not active: {0}")]
    SubjectTokenInactive(Reason),
    /// The subject token is another agent's plain token.
    #[error("only a mandate-bound token can be delegated")]
    NotDelegable,
    /// The subject token (a user's) was refused.
    #[error("subject_token refused: {0}")]
    SubjectTokenRefused(UserTokenError),
    /// The mandate named is not active, or not this agent's for this subject.
    #[error("the mandate is not active, or not this agent's for this subject")]
    MandateNotApplicable,
    /// No mandate named, and no active one of this agent for this subject.
    #[error("no active mandate of this agent for this subject")]
    NoMandate,
    /// No mandate named, and several would do.
    #[error("several active mandates match: name one with the `mandate` parameter")]
    SeveralMandates,
    /// The mandate of the token delegated from is no longer active.
    #[error("the parent token's mandate is not active")]
    ParentMandateInactive,
    /// The subject token is not bound to a mandate.
    #[error("subject_token is not mandate-bound")]
    SubjectNotMandateBound,
    /// The agent presented a token of its own to delegate.
    #[error("an agent cannot delegate to itself")]
    SelfDelegation,
    /// The delegating agent's boundary does not name the caller among its delegates.
    #[error("agent {from} may not delegate to agent {to} (not among its boundary's delegates)")]
    NotADelegate {
        /// The delegating agent.
        from: AgentId,
        /// The agent asking.
        to: AgentId,
    },
    /// The `act` chain would grow past the configured depth.
    #[error("delegation depth limit ({0}) reached")]
    DepthLimit(usize),
    /// The scope asked for is not within the parent's (or the mandate's).
    #[error(transparent)]
    Scope(#[from] NarrowError),
    /// What the token derives from ends now.
    #[error("the mandate has no time left")]
    NoTimeLeft,
}

impl ExchangeError {
    /// The stable reason recorded beside the code, for a refusal shared with the other
    /// grants ([`TokenError::reason`]).
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Token(e) => e.reason(),
            _ => None,
        }
    }

    /// The RFC 6749 / RFC 8693 §2.2.2 error code of this refusal: what the edge answers
    /// and what `token.refused` records.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Token(e) => e.code(),
            Self::ClientRequired => "invalid_client",
            Self::MandateNotApplicable
            | Self::NoMandate
            | Self::ParentMandateInactive
            | Self::NoTimeLeft => "invalid_grant",
            Self::NotADelegate { .. } => "unauthorized_client",
            Self::Scope(_) => "invalid_scope",
            Self::ActorTokenInvalid(_)
            | Self::ActorTokenNotForMandate
            | Self::ActorTokenInactive(_)
            | Self::ActorTokenMandateBound
            | Self::ActorTokenOfAnotherClient
            | Self::SubjectTokenInvalid(_)
            | Self::SubjectTokenBound
            | Self::ActorTokenBound
            | Self::CertificateBound
            | Self::SubjectTokenInactive(_)
            | Self::NotDelegable
            | Self::SubjectTokenRefused(_)
            | Self::SeveralMandates
            | Self::SubjectNotMandateBound
            | Self::SelfDelegation
            | Self::DepthLimit(_) => "invalid_request",
        }
    }
}

impl From<crate::snapshot_cell::StaleSnapshot> for ExchangeError {
    fn from(e: crate::snapshot_cell::StaleSnapshot) -> Self {
        Self::Token(e.into())
    }
}

/// What an exchange asks for, its syntax checked by the edge. Its `Debug` never shows
/// the subject or actor token.
pub struct Ask<'a> {
    /// The subject token: the user's, the agent's own, or a mandate token to delegate.
    pub subject: &'a str,
    /// The actor token, if any.
    pub actor: Option<&'a str>,
    /// The scope asked for (syntax checked, deduplicated).
    pub scope: Option<String>,
    /// The audiences and resources asked for (at most 8).
    pub targets: Vec<&'a str>,
    /// The mandate named, if any.
    pub mandate: Option<MandateId>,
    /// The request's `DPoP` header values (RFC 9449 §5; at most one accepted).
    pub proofs: Vec<&'a str>,
}

impl std::fmt::Debug for Ask<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ask")
            .field("subject", &"…")
            .field("actor", &self.actor.map(|_| "…"))
            .field("scope", &self.scope)
            .field("targets", &self.targets)
            .field("mandate", &self.mandate)
            .finish()
    }
}

/// A token just issued by an exchange (and recorded). Its `Debug` never shows the token.
pub struct Exchanged {
    /// The signed token.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// Its scope.
    pub scope: String,
    /// Whether it is DPoP-bound (`cnf.jkt`): answered with `token_type` `DPoP`.
    pub bound: bool,
}

impl std::fmt::Debug for Exchanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchanged")
            .field("token", &"…")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// The `iss` claim of a JWT, read without verifying it (only to pick who verifies).
pub fn peek_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("iss")?.as_str().map(str::to_owned)
}

/// A token exchange by the client `auth` authenticates (`form_client_id` is the
/// `client_id` the request named, recorded with a refusal before authentication).
/// Every refusal is recorded (`token.refused`).
pub async fn exchange(
    node: &Arc<Node>,
    auth: Option<ClientAuth>,
    form_client_id: Option<&str>,
    ask: &Ask<'_>,
) -> Result<Exchanged, ExchangeError> {
    // INVARIANT (a certificate's token stays bound): a client that authenticated by its
    // TLS client certificate alone (RFC 8705 §2) gets a token bound to that certificate
    // (`cnf.x5t#S256`, §3), as at the client credentials grant: a bearer token would
    // let whoever copies it act without the certificate's key.
    let certificate = match &auth {
        Some(ClientAuth::Certificate { chain, .. }) => chain
            .first()
            .map(|leaf| access::certificate_thumbprint(leaf)),
        _ => None,
    };
    let (agent, actor_jkt) = match acting_agent(node, auth, ask.actor).await {
        Ok(a) => a,
        Err(e) => {
            record_refusal(
                node,
                form_client_id.map(str::to_owned),
                e.code(),
                e.reason(),
            )
            .await;
            return Err(e);
        }
    };
    let jkt = match crate::tokens::token_request_proof(node, &agent, &ask.proofs) {
        Ok(j) => j,
        Err(e) => {
            record_refusal(node, Some(agent.id.to_string()), e.code(), e.reason()).await;
            return Err(e.into());
        }
    };
    // A bound actor token, like a bound subject token, counts only with a proof of its key.
    if let Some(bound) = actor_jkt
        && jkt.as_deref() != Some(bound.as_str())
    {
        let e = ExchangeError::ActorTokenBound;
        record_refusal(node, Some(agent.id.to_string()), e.code(), e.reason()).await;
        return Err(e);
    }
    match exchange_for(node, &agent, ask, jkt, certificate).await {
        Ok(r) => Ok(r),
        Err(e) => {
            record_refusal(node, Some(agent.id.to_string()), e.code(), e.reason()).await;
            Err(e)
        }
    }
}

/// The agent asking: always the authenticated client. An `actor_token`, if given, must
/// be that same agent's own plain access token, issued for Mandate.
///
/// INVARIANT (exchange needs the client): a token exchange is answered only to an agent
/// that authenticated as a client (secret, `private_key_jwt` or a client certificate),
/// as RFC 8693 §2.1 expects of confidential clients; a bearer token alone — which every
/// resource server the agent called has seen — never mints a token.
async fn acting_agent(
    node: &Arc<Node>,
    auth: Option<ClientAuth>,
    actor: Option<&str>,
) -> Result<(Agent, Option<String>), ExchangeError> {
    let Some(auth) = auth else {
        return Err(ExchangeError::ClientRequired);
    };
    let client = authenticate(node, auth, node.config.token_endpoint()).await?;
    if let Some(t) = actor {
        let now = node.clock.now();
        let s = node.snapshot()?;
        let c = access::verify(&s.ring, t, &s.expected(), now)
            .map_err(ExchangeError::ActorTokenInvalid)?;
        if !s.is_for_mandate(&c) {
            return Err(ExchangeError::ActorTokenNotForMandate);
        }
        let h = holder(&s, &c, now).map_err(|r| ExchangeError::ActorTokenInactive(r.reason))?;
        if h.mandate.is_some() {
            return Err(ExchangeError::ActorTokenMandateBound);
        }
        if h.agent.id != client.id {
            return Err(ExchangeError::ActorTokenOfAnotherClient);
        }
        // A certificate-bound actor token is not used here either (see the subject's).
        if c.x5t_s256().is_some() {
            return Err(ExchangeError::CertificateBound);
        }
        return Ok((client, c.jkt().map(str::to_owned)));
    }
    Ok((client, None))
}

/// What the new token will say, before the common checks and signing.
struct Draft {
    sub: String,
    act: Actor,
    mandate: Arc<Mandate>,
    parent_scope: String,
    parents: Vec<ParentToken>,
    /// The latest expiry allowed by what the token derives from.
    not_after: i64,
    user: Option<String>,
    grant: &'static str,
}

async fn exchange_for(
    node: &Arc<Node>,
    agent: &Agent,
    ask: &Ask<'_>,
    jkt: Option<String>,
    certificate: Option<String>,
) -> Result<Exchanged, ExchangeError> {
    let now = node.clock.now();
    let s = node.snapshot()?;
    let draft = if peek_issuer(ask.subject).as_deref() == Some(s.issuer.as_str()) {
        let c = access::verify(&s.ring, ask.subject, &s.expected(), now)
            .map_err(ExchangeError::SubjectTokenInvalid)?;
        // INVARIANT (bound subject): a DPoP-bound subject token is exchanged only by a
        // request whose own DPoP proof is made with the key it is bound to — whoever
        // merely holds a copy (another agent, a resource server it was sent to) cannot
        // turn it into a token of their own; and the new token is bound to that key.
        if let Some(bound) = c.jkt()
            && jkt.as_deref() != Some(bound)
        {
            return Err(ExchangeError::SubjectTokenBound);
        }
        // INVARIANT (bound to a certificate), crate::dpop: a certificate-bound subject
        // token is not exchanged (the exchange would shed the binding); see
        // docs/tokens.md.
        if c.x5t_s256().is_some() {
            return Err(ExchangeError::CertificateBound);
        }
        if c.mandate.is_some() {
            delegate(
                &s,
                node.config.mandates.max_delegation_depth,
                agent,
                &c,
                now,
            )?
        } else if c.client_id == agent.id.as_str() {
            holder(&s, &c, now).map_err(|r| ExchangeError::SubjectTokenInactive(r.reason))?;
            own_mandate(&s, agent, ask.mandate.as_ref(), None, now)?
        } else {
            return Err(ExchangeError::NotDelegable);
        }
    } else {
        let user = node
            .verify_user_token(ask.subject, now)
            .map_err(ExchangeError::SubjectTokenRefused)?;
        own_mandate(&s, agent, ask.mandate.as_ref(), Some(&user), now)?
    };

    // INVARIANT (narrowing): the new scope lies within the parent's (or the mandate's)
    // and within the acting agent's boundary.
    let scope = narrow_scope(&draft.parent_scope, ask.scope.as_deref(), |t| {
        agent.boundary.allows_scope(t)
    })?;
    let aud = granted_audience(node, agent, &ask.targets, "audience")?;
    // INVARIANT (lifetime): never past the mandate, the parent token or the user token.
    let exp = now
        .plus_secs(i64::from(token_lifetime(node, agent)))
        .secs()
        .min(draft.not_after);
    if exp <= now.secs() {
        return Err(ExchangeError::NoTimeLeft);
    }
    let jti =
        TokenId::generate(node.clock.as_ref(), node.random.as_ref()).map_err(TokenError::from)?;
    let claims = AccessClaims {
        iss: node.config.issuer.clone(),
        sub: draft.sub,
        aud,
        exp,
        iat: now.secs(),
        nbf: now.secs(),
        jti: jti.to_string(),
        client_id: agent.id.to_string(),
        scope: Some(scope.clone()),
        act: Some(draft.act),
        mandate: Some(draft.mandate.id.to_string()),
        parents: draft.parents,
        cnf: access::Confirmation::of(jkt, certificate),
    };
    let details = json!({
        "grant": draft.grant,
        "token_id": claims.jti,
        "mandate": draft.mandate.id,
        "chain": claims.actors(),
        "parent_token_id": claims.parents.first().map(|p| &p.jti),
        "aud": claims.aud,
        "scope": claims.scope,
        "exp": claims.exp,
        "cnf": claims.cnf,
    });
    let token = sign_and_record(
        node,
        &claims,
        details,
        draft.user,
        crate::metrics::Grant::TokenExchange,
    )
    .await?;
    tracing::info!(client_id = %agent.id, jti = %claims.jti, mandate = %draft.mandate.id, "exchanged token issued");
    Ok(Exchanged {
        token,
        expires_in: exp - now.secs(),
        scope,
        bound: claims.jkt().is_some(),
    })
}

/// The action patterns of a mandate's grants, as a scope.
fn mandate_scope(m: &Mandate) -> String {
    let mut actions: Vec<&str> = m
        .scope
        .iter()
        .flat_map(|g| g.actions.iter().map(String::as_str))
        .collect();
    actions.sort_unstable();
    actions.dedup();
    actions.join(" ")
}

/// A mandate token for the agent's own mandate, for `user` (or for no user).
fn own_mandate(
    s: &Snapshot,
    agent: &Agent,
    named: Option<&MandateId>,
    user: Option<&VerifiedUser>,
    now: Timestamp,
) -> Result<Draft, ExchangeError> {
    let fits = |m: &Mandate| {
        m.agent == agent.id
            && m.is_active_at(now)
            && match (&m.user, user) {
                (Some(mu), Some(u)) => mu.sub == u.user.sub && mu.issuer == u.user.issuer,
                (None, None) => true,
                _ => false,
            }
    };
    let mandate = match named {
        Some(id) => s
            .mandates
            .get(id)
            .filter(|m| fits(m))
            .ok_or(ExchangeError::MandateNotApplicable)?
            .clone(),
        None => {
            let mut found = s.mandates.values().filter(|m| fits(m));
            match (found.next(), found.next()) {
                (Some(m), None) => Arc::clone(m),
                (None, _) => return Err(ExchangeError::NoMandate),
                (Some(_), Some(_)) => return Err(ExchangeError::SeveralMandates),
            }
        }
    };
    let mut not_after = mandate.expires_at.map_or(now.secs(), Timestamp::secs);
    if let Some(u) = user {
        not_after = not_after.min(u.expires_at.secs());
    }
    Ok(Draft {
        sub: user.map_or_else(|| agent.id.to_string(), |u| u.user.sub.clone()),
        act: Actor {
            sub: agent.id.to_string(),
            act: None,
        },
        parent_scope: mandate_scope(&mandate),
        parents: Vec::new(),
        not_after,
        user: user.map(|u| u.user.sub.clone()),
        grant: "mandate",
        mandate,
    })
}

/// A delegated token for `agent` from the mandate token `parent`, with `act` chains of
/// at most `max_depth` agents.
fn delegate(
    s: &Snapshot,
    max_depth: usize,
    agent: &Agent,
    parent: &AccessClaims,
    now: Timestamp,
) -> Result<Draft, ExchangeError> {
    let h = holder(s, parent, now).map_err(|r| match r.reason {
        Reason::MandateInactive => ExchangeError::ParentMandateInactive,
        other => ExchangeError::SubjectTokenInactive(other),
    })?;
    let mandate = h
        .mandate
        .cloned()
        .ok_or(ExchangeError::SubjectNotMandateBound)?;
    if h.agent.id == agent.id {
        return Err(ExchangeError::SelfDelegation);
    }
    // INVARIANT (delegation): only to an agent the delegating agent's boundary names.
    if !h.agent.boundary.delegates.contains(&agent.id) {
        return Err(ExchangeError::NotADelegate {
            from: h.agent.id.clone(),
            to: agent.id.clone(),
        });
    }
    let depth = parent.actors().len() + 1;
    // INVARIANT (depth): an `act` chain never holds more agents than the limit.
    if depth > max_depth {
        return Err(ExchangeError::DepthLimit(max_depth));
    }
    let mut parents = vec![ParentToken {
        jti: parent.jti.clone(),
        iat: parent.iat,
    }];
    parents.extend(parent.parents.iter().cloned());
    let not_after = parent
        .exp
        .min(mandate.expires_at.map_or(now.secs(), Timestamp::secs));
    Ok(Draft {
        sub: parent.sub.clone(),
        act: Actor {
            sub: agent.id.to_string(),
            act: parent.act.clone().map(Box::new),
        },
        parent_scope: parent
            .scope
            .clone()
            .unwrap_or_else(|| mandate_scope(&mandate)),
        parents,
        not_after,
        user: mandate.user.as_ref().map(|u| u.sub.clone()),
        grant: "delegation",
        mandate,
    })
}
