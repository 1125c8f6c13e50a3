//! Human approval of mandate requests through the API: approvers list what waits for
//! them, and approve or deny it. Each handler checks that its caller is an approver
//! first (`mandate_service::approvals::Approver::check`, so a caller who is not gets
//! 403 whatever else it sent), parses the rest, calls the use case and answers its
//! result or its [`ApprovalError`].

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;

use mandate_api as api;
use mandate_core::time::Timestamp;
use mandate_service::approvals::{ApprovalError, Approver, Decision, Waiting, WaitingPage};

use crate::Node;
use crate::audit_api::query;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::{ApiPath, OptionalJson};
use crate::mandates::{DEFAULT_PAGE, as_of, check_text, mandate_id, page_cursor, page_limit};

impl From<ApprovalError> for ApiError {
    /// 403 for who may not decide (`not_an_approver`, `self_approval`), 409 for a
    /// request no longer pending (`approval_expired`, `not_pending`), and the node's
    /// and the store's own mappings.
    fn from(e: ApprovalError) -> Self {
        let detail = e.to_string();
        match e {
            ApprovalError::NotAnApprover => {
                ApiError::new(StatusCode::FORBIDDEN, "not_an_approver", detail)
            }
            ApprovalError::SelfApproval => {
                ApiError::new(StatusCode::FORBIDDEN, "self_approval", detail)
            }
            ApprovalError::Expired(_) => ApiError::conflict("approval_expired", detail),
            ApprovalError::NotPending { .. } => ApiError::conflict("not_pending", detail),
            ApprovalError::Service(e) => e.into(),
            ApprovalError::Store(e) => e.into(),
        }
    }
}

/// `GET /v1/approvals?cursor=&limit=`: requests waiting for a human whose deadline is
/// still ahead, oldest first, each with the agent that asked.
pub(crate) async fn list(
    State(state): State<Arc<Node>>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<api::ApprovalPage>, ApiError> {
    let approver = Approver::check(&state, caller.into())?;
    let mut limit = DEFAULT_PAGE;
    let mut cursor = None;
    for (k, v) in query(q, &["cursor", "limit"])? {
        if k == "cursor" {
            cursor = Some(page_cursor(&v)?);
        } else {
            limit = page_limit(&v)?;
        }
    }
    let WaitingPage {
        items,
        next_cursor,
        now,
    } = approver.waiting(&state, cursor, limit).await?;
    Ok(Json(api::ApprovalPage {
        items: items
            .into_iter()
            .map(|w| approval(w, now))
            .collect::<Result<_, _>>()?,
        next_cursor,
    }))
}

/// A waiting request as the API answers it. The use case gives the agent as the JSON
/// object [`agent_summary`](mandate_service::mandates::agent_summary) builds (`id`,
/// `name`, `owner`), read here as the wire's [`api::AgentSummary`];
/// `agent_summary_is_the_wire_type` checks the two agree.
fn approval(w: Waiting, now: Timestamp) -> Result<api::Approval, ApiError> {
    Ok(api::Approval {
        mandate: api::Mandate::as_of(&w.mandate, now),
        agent: serde_json::from_value(w.agent).map_err(ApiError::internal)?,
    })
}

async fn decide(
    state: Arc<Node>,
    caller: Caller,
    id: String,
    body: Option<api::ApprovalDecision>,
    decision: Decision,
) -> Result<Json<api::Mandate>, ApiError> {
    let approver = Approver::check(&state, caller.into())?;
    let comment = body.and_then(|b| b.comment);
    check_text("comment", comment.as_deref())?;
    let id = mandate_id(&id)?;
    let m = approver.decide(&state, id, decision, comment).await?;
    Ok(Json(as_of(&m)))
}

/// `POST /v1/approvals/{id}/approve`: the mandate becomes active for its lifetime.
pub(crate) async fn approve(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<api::ApprovalDecision>,
) -> Result<Json<api::Mandate>, ApiError> {
    decide(state, caller, id, body, Decision::Approve).await
}

/// `POST /v1/approvals/{id}/deny`.
pub(crate) async fn deny(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<api::ApprovalDecision>,
) -> Result<Json<api::Mandate>, ApiError> {
    decide(state, caller, id, body, Decision::Deny).await
}

#[cfg(test)]
mod tests {
    use mandate_core::id::AgentId;
    use mandate_service::mandates::agent_summary;

    use super::*;

    /// The use case's agent summary reads as the wire type and writes back the same.
    #[test]
    fn agent_summary_is_the_wire_type() {
        let id = AgentId::parse("agt_01J00000000000000000000000").unwrap();
        let v = agent_summary(None, &id);
        let wire: api::AgentSummary = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(wire).unwrap(), v);
    }
}
