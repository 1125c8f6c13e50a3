//! The kill switch's incident levers over HTTP: `contain` an agent and answer with its
//! incident bundle, and revoke one token by its `jti` when nobody holds the token
//! string. The use cases are the node's (`mandate_service::incidents`); this parses,
//! calls and maps, reading and answering mandate-api's types — but the incident bundle,
//! which is answered as the bytes the node wrote (RFC 8785 canonical JSON, which
//! `mandate audit verify` checks byte for byte), not re-serialized.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mandate_api as api;
use mandate_core::id::{AgentId, TokenId};
use mandate_service::ServiceError;
use mandate_service::incidents::IncidentError;

use crate::Node;
use crate::error::ApiError;
use crate::extract::{Admin, ApiPath, OptionalJson};

/// How many of the agent's events a bundle holds when the request names no number.
const DEFAULT_EVENTS: u32 = 1000;
/// The most events a bundle may hold.
const MAX_EVENTS: u32 = 10_000;
/// The longest reason, in characters (as for a suspension).
const MAX_REASON_CHARS: usize = 500;

fn check_reason(reason: Option<&str>) -> Result<(), ApiError> {
    if reason
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS || r.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("reason must be at most {MAX_REASON_CHARS} printable characters"),
        ));
    }
    Ok(())
}

fn audit_unavailable(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        format!("the agent is contained, but {what}"),
    )
}

fn bundle_unavailable(cause: impl std::fmt::Display) -> ApiError {
    tracing::error!(%cause, "incident bundle not built");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "bundle_unavailable",
        "the agent is contained and the containment recorded, but the incident bundle could \
         not be built; see the server log",
    )
}

/// `POST /v1/agents/{id}/contain`: suspends the agent and kills every token issued to it
/// so far (and so every token delegated from one of them), revokes its pending and
/// active mandates, records `incident.contained`, seals the audit log, and answers with
/// the incident bundle (`mandate_audit::bundle`). An agent already suspended gets the
/// cutoff; a decommissioned one gets a bundle.
pub(crate) async fn contain(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<api::ContainAgent>,
) -> Result<Response, ApiError> {
    admin.require_write()?;
    let id = AgentId::parse(&id)
        .map_err(|_| ApiError::not_found(format!("unknown agent `{}`", id.escape_debug())))?;
    let (reason, events) = body.map_or((None, None), |b| (b.reason, b.events));
    check_reason(reason.as_deref())?;
    let events = events.unwrap_or(DEFAULT_EVENTS);
    if !(1..=MAX_EVENTS).contains(&events) {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("events must be 1..={MAX_EVENTS}"),
        ));
    }
    let c = state
        .contain(&admin.0.id, &id, reason, events)
        .await
        .map_err(answer)?;
    let mut res = (StatusCode::OK, c.bundle).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// A containment that did not answer with a bundle, as the API says it: refusals as
/// the node's errors map; after the change, 503 `audit_unavailable` or 500
/// `bundle_unavailable`, both saying the agent is contained.
fn answer(e: IncidentError) -> ApiError {
    match e {
        IncidentError::Id(cause) | IncidentError::Encode(cause) => ApiError::internal(cause),
        IncidentError::Service(ServiceError::AuditUnavailable) => {
            audit_unavailable("the containment could not be recorded in the audit log")
        }
        IncidentError::Service(e) => e.into(),
        IncidentError::NotSealed => {
            audit_unavailable("the audit log could not be sealed for its bundle")
        }
        IncidentError::Bundle(cause) => bundle_unavailable(cause),
    }
}

/// `POST /v1/tokens/{jti}/revoke`: revokes one access token by its `jti` (the audit
/// log's `details.token_id`), for when the token string is not at hand. An unknown
/// `jti` is recorded all the same: the token may exist on another node's record.
pub(crate) async fn revoke_token(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(jti): ApiPath<String>,
    OptionalJson(body): OptionalJson<api::RevokeTokenById>,
) -> Result<Json<api::TokenRevoked>, ApiError> {
    admin.require_write()?;
    let jti = TokenId::parse(&jti).map_err(|_| {
        ApiError::bad_request(
            "invalid_field",
            format!(
                "`{}` is not a token id (`{}` and 26 characters)",
                jti.chars().take(64).collect::<String>().escape_debug(),
                TokenId::PREFIX
            ),
        )
    })?;
    let reason = body.and_then(|b| b.reason);
    check_reason(reason.as_deref())?;
    let until = state
        .revoke_token_id(&admin.actor(), jti.clone(), reason)
        .await?;
    tracing::info!(by = %admin.0.id, %jti, "access token revoked by id");
    Ok(Json(api::TokenRevoked {
        jti: jti.to_string(),
        revoked: true,
        until: until.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_short_and_printable() {
        assert!(check_reason(None).is_ok());
        assert!(check_reason(Some(&"é".repeat(500))).is_ok());
        assert!(check_reason(Some(&"x".repeat(501))).is_err());
        assert!(check_reason(Some("a\nb")).is_err());
    }
}
