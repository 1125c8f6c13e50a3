//! RFC 8693 token exchange at `/oauth/token`, for mandates and delegation.
//!
//! - **Mandate token**: the agent (always authenticated as a client; an `actor_token`,
//!   if given, must be its own plain token issued for Mandate) presents the user's token as `subject_token` (or its own token,
//!   for a mandate with no user) and gets an access token with `sub` = the user,
//!   `act.sub` = the agent, a `mandate` claim, scope within the mandate's, and a lifetime
//!   within the mandate's (and the user token's).
//! - **Delegation**: agent B presents a mandate token it received from agent A as
//!   `subject_token` and gets its own: `act` = {B, act: A's `act`}, scope the
//!   intersection of what it asks and what the parent had (asking for more is
//!   `invalid_scope`), the parent recorded in `parents`. B must be in A's boundary
//!   `delegates`, and the chain may not grow past the configured depth.
//!
//! Errors follow RFC 8693 §2.2.2: `invalid_request` for a missing, invalid or
//! unacceptable token; `invalid_target` for an audience or resource outside the
//! boundary; `invalid_scope`; plus `invalid_grant` when the mandate is not active or not
//! this agent's, and `unauthorized_client` when the delegating agent may not delegate to
//! the caller. Only access tokens are issued.

use std::sync::Arc;

use axum::Json;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use mandate_core::agent::Agent;
use mandate_core::id::{MandateId, TokenId};
use mandate_core::mandate::{Mandate, narrow_scope};
use mandate_core::time::Timestamp;
use mandate_token::access::{self, AccessClaims, Actor, ParentToken};
use serde_json::json;

use crate::Node;
use crate::caller::peek_issuer;
use crate::decide::{Reason, Snapshot, holder};
use crate::error::OAuthError;
use crate::oauth::{
    Params, authenticate, check_resource, check_scope, client_auth, granted_audience, no_store,
    record_refusal, sign_and_record, token_lifetime,
};

/// The grant type (RFC 8693 §2.1).
pub(crate) const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";

/// The checked parameters.
struct Ask<'p> {
    subject: &'p str,
    actor: Option<&'p str>,
    scope: Option<String>,
    targets: Vec<&'p str>,
    mandate: Option<MandateId>,
}

fn parse<'p>(p: &'p Params) -> Result<Ask<'p>, OAuthError> {
    let bad = |m: &str| OAuthError::invalid_request(m);
    let subject = p
        .get("subject_token")
        .ok_or_else(|| bad("subject_token is required"))?;
    match p.get("subject_token_type") {
        None => return Err(bad("subject_token_type is required")),
        Some(ACCESS_TOKEN | JWT | ID_TOKEN) => {}
        Some(t) => {
            return Err(OAuthError::invalid_request(format!(
                "unsupported subject_token_type `{}`",
                t.escape_debug()
            )));
        }
    }
    let actor = p.get("actor_token");
    match (actor, p.get("actor_token_type")) {
        (None, None) | (Some(_), Some(ACCESS_TOKEN | JWT)) => {}
        (Some(_), None) => return Err(bad("actor_token_type is required with actor_token")),
        (None, Some(_)) => return Err(bad("actor_token_type without actor_token")),
        (Some(_), Some(t)) => {
            return Err(OAuthError::invalid_request(format!(
                "unsupported actor_token_type `{}`",
                t.escape_debug()
            )));
        }
    }
    if let Some(t) = p.get("requested_token_type")
        && t != ACCESS_TOKEN
        && t != JWT
    {
        return Err(OAuthError::invalid_request(format!(
            "requested_token_type `{}` is not issued here: only access tokens",
            t.escape_debug()
        )));
    }
    let scope = p.get("scope").map(check_scope).transpose()?;
    let resources = p.all("resource");
    for r in &resources {
        check_resource(r)?;
    }
    let mut targets = p.all("audience");
    if targets.iter().any(|a| a.is_empty() || a.len() > 1024) {
        return Err(OAuthError::invalid_target(
            "audience must be 1-1024 characters",
        ));
    }
    targets.extend(resources);
    if targets.len() > 8 {
        return Err(OAuthError::invalid_target(
            "at most 8 audience and resource parameters",
        ));
    }
    let mandate = p
        .get("mandate")
        .map(|m| MandateId::parse(m).map_err(|_| bad("mandate is not a mandate id")))
        .transpose()?;
    Ok(Ask {
        subject,
        actor,
        scope,
        targets,
        mandate,
    })
}

/// `POST /oauth/token` with `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`.
pub(crate) async fn exchange(
    state: &Arc<Node>,
    headers: &HeaderMap,
    p: &Params,
) -> Result<Response, OAuthError> {
    let ask = parse(p)?;
    let agent = match acting_agent(state, headers, p, ask.actor).await {
        Ok(a) => a,
        Err(e) => {
            record_refusal(state, p.get("client_id").map(str::to_owned), &e).await;
            return Err(e);
        }
    };
    match exchange_for(state, &agent, &ask).await {
        Ok(r) => Ok(r),
        Err(e) => {
            record_refusal(state, Some(agent.id.to_string()), &e).await;
            Err(e)
        }
    }
}

/// The agent asking: always the authenticated client. An `actor_token`, if given, must
/// be that same agent's own plain access token, issued for Mandate.
///
/// INVARIANT (exchange needs the client): a token exchange is answered only to an agent
/// that authenticated as a client (secret or `private_key_jwt`), as RFC 8693 §2.1
/// expects of confidential clients; a bearer token alone — which every resource server
/// the agent called has seen — never mints a token.
async fn acting_agent(
    state: &Arc<Node>,
    headers: &HeaderMap,
    p: &Params,
    actor: Option<&str>,
) -> Result<Agent, OAuthError> {
    let Some(auth) = client_auth(headers, p)? else {
        return Err(OAuthError::invalid_client(
            "token exchange requires client authentication (client_secret_basic, \
             client_secret_post or private_key_jwt)",
        ));
    };
    let client = authenticate(state, auth, state.config.token_endpoint()).await?;
    if let Some(t) = actor {
        let now = state.clock.now();
        let s = state.snapshot()?;
        let c = access::verify(&s.ring, t, &s.expected(), now)
            .map_err(|e| OAuthError::invalid_request(format!("actor_token is invalid: {e}")))?;
        if !s.is_for_mandate(&c) {
            return Err(OAuthError::invalid_request(
                "actor_token is not issued for Mandate",
            ));
        }
        let h = holder(&s, &c, now).map_err(|r| {
            OAuthError::invalid_request(format!("actor_token is not active: {}", r.reason))
        })?;
        if h.mandate.is_some() {
            return Err(OAuthError::invalid_request(
                "actor_token must be the agent's own client-credentials token",
            ));
        }
        if h.agent.id != client.id {
            return Err(OAuthError::invalid_request(
                "actor_token belongs to another client",
            ));
        }
    }
    Ok(client)
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
    state: &Arc<Node>,
    agent: &Agent,
    ask: &Ask<'_>,
) -> Result<Response, OAuthError> {
    let now = state.clock.now();
    let s = state.snapshot()?;
    let draft = if peek_issuer(ask.subject).as_deref() == Some(s.issuer.as_str()) {
        let c = access::verify(&s.ring, ask.subject, &s.expected(), now)
            .map_err(|e| OAuthError::invalid_request(format!("subject_token is invalid: {e}")))?;
        if c.mandate.is_some() {
            delegate(state, &s, agent, &c, now)?
        } else if c.client_id == agent.id.as_str() {
            holder(&s, &c, now).map_err(|r| {
                OAuthError::invalid_request(format!("subject_token is not active: {}", r.reason))
            })?;
            own_mandate(&s, agent, ask.mandate.as_ref(), None, now)?
        } else {
            return Err(OAuthError::invalid_request(
                "only a mandate-bound token can be delegated",
            ));
        }
    } else {
        let user = state
            .config
            .users
            .verify(ask.subject, now)
            .map_err(|e| OAuthError::invalid_request(format!("subject_token refused: {e}")))?;
        own_mandate(&s, agent, ask.mandate.as_ref(), Some(&user), now)?
    };

    // INVARIANT (narrowing): the new scope lies within the parent's (or the mandate's)
    // and within the acting agent's boundary.
    let scope = narrow_scope(&draft.parent_scope, ask.scope.as_deref(), |t| {
        agent.boundary.allows_scope(t)
    })
    .map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
    let aud = granted_audience(state, agent, &ask.targets, "audience")?;
    // INVARIANT (lifetime): never past the mandate, the parent token or the user token.
    let exp = now
        .plus_secs(i64::from(token_lifetime(state, agent)))
        .secs()
        .min(draft.not_after);
    if exp <= now.secs() {
        return Err(OAuthError::invalid_grant("the mandate has no time left"));
    }
    let jti = TokenId::generate(state.clock.as_ref(), state.random.as_ref())
        .map_err(OAuthError::server_error)?;
    let claims = AccessClaims {
        iss: state.config.issuer.clone(),
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
    });
    let token = sign_and_record(state, &claims, details, draft.user).await?;
    tracing::info!(client_id = %agent.id, jti = %claims.jti, mandate = %draft.mandate.id, "exchanged token issued");
    Ok(no_store(
        Json(json!({
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": exp - now.secs(),
            "scope": scope,
        }))
        .into_response(),
    ))
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
    user: Option<&mandate_token::user::VerifiedUser>,
    now: Timestamp,
) -> Result<Draft, OAuthError> {
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
            .ok_or_else(|| {
                OAuthError::invalid_grant(
                    "the mandate is not active, or not this agent's for this subject",
                )
            })?
            .clone(),
        None => {
            let mut found = s.mandates.values().filter(|m| fits(m));
            match (found.next(), found.next()) {
                (Some(m), None) => Arc::clone(m),
                (None, _) => {
                    return Err(OAuthError::invalid_grant(
                        "no active mandate of this agent for this subject",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(OAuthError::invalid_request(
                        "several active mandates match: name one with the `mandate` parameter",
                    ));
                }
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

/// A delegated token for `agent` from the mandate token `parent`.
fn delegate(
    state: &Node,
    s: &Snapshot,
    agent: &Agent,
    parent: &AccessClaims,
    now: Timestamp,
) -> Result<Draft, OAuthError> {
    let h = holder(s, parent, now).map_err(|r| match r.reason {
        Reason::MandateInactive => {
            OAuthError::invalid_grant("the parent token's mandate is not active")
        }
        other => OAuthError::invalid_request(format!("subject_token is not active: {other}")),
    })?;
    let mandate = h
        .mandate
        .cloned()
        .ok_or_else(|| OAuthError::invalid_request("subject_token is not mandate-bound"))?;
    if h.agent.id == agent.id {
        return Err(OAuthError::invalid_request(
            "an agent cannot delegate to itself",
        ));
    }
    // INVARIANT (delegation): only to an agent the delegating agent's boundary names.
    if !h.agent.boundary.delegates.contains(&agent.id) {
        return Err(OAuthError::unauthorized_client(format!(
            "agent {} may not delegate to agent {} (not among its boundary's delegates)",
            h.agent.id, agent.id
        )));
    }
    let depth = parent.actors().len() + 1;
    // INVARIANT (depth): an `act` chain never holds more agents than the limit.
    if depth > state.config.mandates.max_delegation_depth {
        return Err(OAuthError::invalid_request(format!(
            "delegation depth limit ({}) reached",
            state.config.mandates.max_delegation_depth
        )));
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
