//! Mandates through the API: an agent asks for a task-scoped grant, which policy grants,
//! refuses or holds for a human; the agent, its user, admins and approvers read it (the
//! agent long-polls while it waits); the agent completes it; an admin or the agent's
//! owner revokes it; and a sweeper writes lapsed requests denied and lapsed mandates
//! expired. Each handler parses the request, calls its use case in
//! `mandate_service::mandates` and answers its result or its [`MandateError`]; the
//! bodies read and answered are mandate-api's types.
//!
//! Who may see a mandate that they may not change gets 403; who may not even see it gets
//! 404, so its existence is not revealed.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_api as api;
use mandate_core::agent::Grant;
use mandate_core::id::{AgentId, MandateId};
use mandate_core::mandate::{MAX_TEXT_CHARS, MandateStatus};
use mandate_service::mandates::{self as service, AsOf, MandateError, MandateRequest, Page};
use mandate_store::MandateFilter;

use crate::Node;
use crate::audit_api::query;
use crate::caller::Caller;
use crate::decide::Reason;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, OptionalJson};

/// The longest a `GET /v1/mandates/{id}?wait=` may hold the request.
const MAX_WAIT_SECS: u64 = 60;
/// List page sizes.
pub(crate) const DEFAULT_PAGE: u32 = 100;
pub(crate) const MAX_PAGE: u32 = 500;

impl From<MandateError> for ApiError {
    /// A mandate use case's refusal as the API answers it: 403 for who may not, 400 for
    /// a field that breaks a rule, 404 for what is unknown (or hidden), 409 for a
    /// mandate that is not active, and the node's, the acts' and the store's own
    /// mappings. Written `ApiError::…(…, "code", …)`, as everywhere in this crate, so
    /// `routes_test`'s scan of the codes answered finds them.
    fn from(e: MandateError) -> Self {
        let detail = e.to_string();
        match e {
            MandateError::AgentsOnly => ApiError::new(StatusCode::FORBIDDEN, "agents_only", detail),
            MandateError::MandateToken => {
                ApiError::new(StatusCode::FORBIDDEN, "mandate_token_forbidden", detail)
            }
            MandateError::Invalid(_) | MandateError::LifetimeTooLong { .. } => {
                ApiError::bad_request("invalid_field", detail)
            }
            MandateError::UserToken(_) => ApiError::bad_request("invalid_user_token", detail),
            MandateError::OutsideBoundary { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                Reason::OutsideBoundary.code(),
                detail,
            ),
            MandateError::Unknown(_) => ApiError::not_found(detail),
            MandateError::NotAllowed(msg) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", msg),
            MandateError::NotActive { .. } => ApiError::conflict("mandate_not_active", detail),
            MandateError::Random(e) => ApiError::internal(e),
            MandateError::Act(e) => e.into(),
            MandateError::Service(e) => e.into(),
            MandateError::Store(e) => e.into(),
        }
    }
}

/// A path id; anything that is not a mandate id is as unknown as a missing one.
pub(crate) fn mandate_id(s: &str) -> Result<MandateId, ApiError> {
    MandateId::parse(s).map_err(|_| unknown(s))
}

fn unknown(id: &str) -> ApiError {
    ApiError::not_found(format!("unknown mandate `{}`", id.escape_debug()))
}

/// Checks optional free text (a comment or reason): at most [`MAX_TEXT_CHARS`]
/// characters, no control characters but newlines and tabs.
pub(crate) fn check_text(field: &str, value: Option<&str>) -> Result<(), ApiError> {
    let ok = |s: &str| {
        s.chars().count() <= MAX_TEXT_CHARS
            && !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
    };
    if value.is_some_and(|s| !ok(s)) {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!(
                "{field} must be at most {MAX_TEXT_CHARS} characters, no control characters but newlines"
            ),
        ));
    }
    Ok(())
}

// ---- request ----

/// `POST /v1/mandates`: an agent asks for a mandate. Policy grants it (`active`), holds
/// it for an approver (`pending_approval`) or refuses it (`denied`); each is stored and
/// answered 201. A scope outside the agent's boundary is refused (403) and not stored.
pub(crate) async fn request(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiJson(req): ApiJson<api::NewMandate>,
) -> Result<Response, ApiError> {
    let req = MandateRequest {
        intent: req.intent,
        scope: req.scope.into_iter().map(grant).collect(),
        lifetime_secs: req.lifetime_secs,
        justification: req.justification,
        user_token: req.user_token,
    };
    let m = service::request(&state, caller.into(), req).await?;
    Ok((StatusCode::CREATED, Json(as_of(&m))).into_response())
}

/// A grant as the use case takes it: the same members, which the use case checks.
fn grant(g: api::Grant) -> Grant {
    Grant {
        actions: g.actions,
        resources: g.resources,
        data_classes: g.data_classes,
    }
}

/// A mandate as the API answers it, with its status as of when it was read or changed.
pub(crate) fn as_of(m: &AsOf) -> api::Mandate {
    api::Mandate::as_of(&m.mandate, m.now)
}

// ---- read ----

fn bad_query(m: String) -> ApiError {
    ApiError::bad_request("invalid_query", m)
}

/// Parses `limit` (1..=[`MAX_PAGE`]).
pub(crate) fn page_limit(v: &str) -> Result<u32, ApiError> {
    v.parse()
        .ok()
        .filter(|l| (1..=MAX_PAGE).contains(l))
        .ok_or_else(|| bad_query(format!("limit must be 1..={MAX_PAGE}")))
}

/// Parses a `cursor` (a mandate id).
pub(crate) fn page_cursor(v: &str) -> Result<MandateId, ApiError> {
    MandateId::parse(v).map_err(|e| bad_query(e.to_string()))
}

/// `GET /v1/mandates?agent=&status=&user=&cursor=&limit=`: admins and approvers see
/// every mandate, an agent its own, a user those acting for them. A filter naming
/// someone else's finds nothing. `status` filters on the stored status (a lapsed one
/// is written by the sweeper within a second or so).
pub(crate) async fn list(
    State(state): State<Arc<Node>>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<api::MandatePage>, ApiError> {
    let mut filter = MandateFilter::default();
    let mut limit = DEFAULT_PAGE;
    let mut cursor = None;
    for (k, v) in query(q, &["agent", "status", "user", "cursor", "limit"])? {
        match k.as_str() {
            "agent" => {
                filter.agent = Some(AgentId::parse(&v).map_err(|e| bad_query(e.to_string()))?);
            }
            "status" => {
                filter.status =
                    Some(MandateStatus::parse(&v).ok_or_else(|| {
                        bad_query(format!("unknown status `{}`", v.escape_debug()))
                    })?);
            }
            "user" => filter.user_sub = Some(v),
            "cursor" => cursor = Some(page_cursor(&v)?),
            _ => limit = page_limit(&v)?,
        }
    }
    let Page {
        mandates,
        next_cursor,
        now,
    } = service::list(&state, &caller.into(), filter, cursor, limit).await?;
    Ok(Json(api::MandatePage {
        items: mandates
            .iter()
            .map(|m| api::Mandate::as_of(m, now))
            .collect(),
        next_cursor,
    }))
}

/// `GET /v1/mandates/{id}?wait=`: one mandate. With `wait` (seconds, at most 60) and
/// the mandate pending, the answer waits until it is decided, its approval deadline
/// passes or `wait` runs out, whichever comes first (CIBA-style polling).
pub(crate) async fn show(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<api::Mandate>, ApiError> {
    let mut wait = 0;
    for (_, v) in query(q, &["wait"])? {
        wait = v
            .parse()
            .ok()
            .filter(|w| *w <= MAX_WAIT_SECS)
            .ok_or_else(|| bad_query(format!("wait must be 0..={MAX_WAIT_SECS} seconds")))?;
    }
    let id = mandate_id(&id)?;
    let wait = Duration::from_secs(wait);
    let m = service::show(&state, &caller.into(), &id, wait).await?;
    Ok(Json(as_of(&m)))
}

// ---- complete, revoke ----

/// `POST /v1/mandates/{id}/complete`: the agent says the task is done; the mandate stops
/// granting anything now.
pub(crate) async fn complete(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<api::Mandate>, ApiError> {
    let id = mandate_id(&id)?;
    let m = service::complete(&state, caller.into(), id).await?;
    Ok(Json(as_of(&m)))
}

/// `POST /v1/mandates/{id}/revoke`: an admin (write role) or the agent's owner ends a
/// pending or active mandate now.
pub(crate) async fn revoke(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<api::RevokeMandate>,
) -> Result<Json<api::Mandate>, ApiError> {
    let reason = body.and_then(|b| b.reason);
    check_text("reason", reason.as_deref())?;
    let id = mandate_id(&id)?;
    let m = service::revoke(&state, caller.into(), id, reason).await?;
    Ok(Json(as_of(&m)))
}

#[cfg(test)]
mod tests {
    use mandate_core::mandate::{Mandate, UserRef};
    use mandate_core::time::Timestamp;

    use super::*;

    /// The wire type writes what the use case's JSON view of a mandate wrote: every
    /// member, `null` where unset, `email` only when set, and the status as of `now`.
    #[test]
    fn the_wire_mandate_is_the_view() {
        let t = Timestamp::from_secs;
        let bare = Mandate::requested(
            MandateId::parse("mdt_01J00000000000000000000000").unwrap(),
            AgentId::parse("agt_01J00000000000000000000000").unwrap(),
            "read the contacts".into(),
            vec![Grant {
                actions: vec!["crm:read".into()],
                resources: vec!["Crm::Contact/*".into()],
                data_classes: vec![],
            }],
            600,
            MandateStatus::PendingApproval,
            t(1_000),
        );
        let full = Mandate {
            user: Some(UserRef {
                issuer: "https://idp.example".into(),
                sub: "alice".into(),
                email: Some("alice@example.com".into()),
                groups: vec!["sales".into()],
            }),
            justification: Some("the weekly report".into()),
            status: MandateStatus::Active,
            approval_deadline: Some(t(1_300)),
            activated_at: Some(t(1_100)),
            expires_at: Some(t(1_700)),
            decided_by: Some("user:bob".into()),
            decision_comment: Some("ok".into()),
            decided_at: Some(t(1_100)),
            policy_ids: vec!["p1".into()],
            ended_at: Some(t(1_600)),
            ended_by: Some("expiry".into()),
            ..bare.clone()
        };
        let no_email = Mandate {
            user: full.user.clone().map(|u| UserRef { email: None, ..u }),
            ..bare.clone()
        };
        // Before and after the deadline and the expiry: the status as of `now` differs
        // from the stored one.
        for m in [&bare, &full, &no_email] {
            for now in [t(1_050), t(5_000)] {
                let wire = serde_json::to_value(api::Mandate::as_of(m, now)).unwrap();
                assert_eq!(wire, service::view(m, now));
            }
        }
    }
}
