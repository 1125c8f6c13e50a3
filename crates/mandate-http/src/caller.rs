//! Who is calling an endpoint that admins, agents and humans share (mandates,
//! approvals): an admin token, an agent with its own access token, or a human with a
//! trusted issuer's user token. Each is checked as fully as on its own endpoints.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use mandate_core::admin::{AdminToken, Role};
use mandate_core::agent::Agent;
use mandate_service::exchange::peek_issuer;
use mandate_service::mandates::Party;
use mandate_token::access::AccessClaims;
use mandate_token::user::VerifiedUser;

use crate::Node;
use crate::error::ApiError;
use crate::extract::{looks_like_jwt, lookup_admin_token};

/// An authenticated caller.
#[derive(Debug)]
pub(crate) enum Caller {
    /// An admin token (any role but `service`).
    Admin(AdminToken),
    /// An agent, with a valid access token of its own (its agent active).
    Agent {
        /// The agent as the snapshot holds it.
        agent: Box<Agent>,
        /// The token's claims.
        claims: Box<AccessClaims>,
    },
    /// A human, with a verified user token.
    User(Box<VerifiedUser>),
}

fn unauthenticated(msg: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", msg)
}

/// Authenticates the bearer of `headers` on a request of `method` to `path` (an agent's
/// token under `Bearer` or `DPoP`, held to its binding; everything else under `Bearer`).
pub(crate) async fn identify(
    state: &Arc<Node>,
    headers: &HeaderMap,
    peer: Option<&crate::conn::Peer>,
    method: &str,
    path: &str,
) -> Result<Caller, ApiError> {
    let (token, scheme) = crate::dpop::agent_token(headers)
        .ok_or_else(|| unauthenticated("a bearer token is required"))?;
    let is_jwt = looks_like_jwt(token);
    if scheme != mandate_service::dpop::Scheme::Bearer
        && !(is_jwt && peek_issuer(token).as_deref() == Some(state.config.issuer.as_str()))
    {
        return Err(unauthenticated(
            "only Mandate's access tokens are presented under the DPoP scheme",
        ));
    }
    if !is_jwt {
        return match lookup_admin_token(state, token).await? {
            Some(t) if t.role == Role::Service => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "service tokens may only ask for decisions (/v1/authorize, /access/v1/*)",
            )),
            Some(t) => Ok(Caller::Admin(t)),
            None => Err(unauthenticated("unknown or revoked token")),
        };
    }
    let now = state.clock.now();
    if peek_issuer(token).as_deref() == Some(state.config.issuer.as_str()) {
        let snapshot = state.snapshot()?;
        let claims = mandate_service::decisions::verified_claims(state, &snapshot, token, now)
            .ok_or_else(|| unauthenticated("invalid access token"))?;
        // INVARIANT (audience): see decide.rs.
        if !snapshot.is_for_mandate(&claims) {
            return Err(unauthenticated(
                "the access token is not issued for Mandate (its `aud` names another resource)",
            ));
        }
        crate::dpop::check_own(state, headers, peer, (method, path), token, scheme, &claims)?;
        let holder = crate::decide::holder(&snapshot, &claims, now)
            .map_err(|r| unauthenticated(&format!("access token refused: {}", r.reason)))?;
        return Ok(Caller::Agent {
            agent: Box::new(holder.agent.clone()),
            claims: Box::new(AccessClaims::clone(&claims)),
        });
    }
    state
        .verify_user_token(token, now)
        .map(|u| Caller::User(Box::new(u)))
        .map_err(|e| unauthenticated(&format!("user token refused: {e}")))
}

impl From<Caller> for Party {
    /// The caller as the mandate use cases tell parties apart (who may read, approve,
    /// revoke is decided there).
    fn from(c: Caller) -> Self {
        match c {
            Caller::Admin(t) => Party::Admin(t),
            Caller::Agent { agent, claims } => Party::Agent { agent, claims },
            Caller::User(u) => Party::User(u),
        }
    }
}

impl axum::extract::FromRequestParts<Arc<Node>> for Caller {
    type Rejection = ApiError;

    /// As an extractor, so the caller is authenticated before a body is read.
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<Node>,
    ) -> Result<Self, ApiError> {
        identify(
            state,
            &parts.headers,
            parts.extensions.get::<crate::conn::Peer>(),
            parts.method.as_str(),
            parts.uri.path(),
        )
        .await
    }
}
