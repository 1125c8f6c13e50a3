//! Human approval of mandate requests through the API: approvers list what waits for
//! them, and approve or deny it. Each handler checks that its caller is an approver
//! first (`mandate_service::approvals::Approver::check`, so a caller who is not gets
//! 403 whatever else it sent), parses the rest, calls the use case and answers its
//! result or its [`ApprovalError`].

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;

use mandate_service::approvals::{ApprovalError, Approver, Decision, WaitingPage};
use mandate_service::mandates::view;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Node;
use crate::audit_api::query;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::{ApiPath, OptionalJson};
use crate::mandates::{DEFAULT_PAGE, check_text, mandate_id, page_cursor, page_limit};

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
) -> Result<Json<Value>, ApiError> {
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
    let items: Vec<Value> = items
        .into_iter()
        .map(|w| json!({"mandate": view(&w.mandate, now), "agent": w.agent}))
        .collect();
    Ok(Json(json!({"items": items, "next_cursor": next_cursor})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    comment: Option<String>,
}

async fn decide(
    state: Arc<Node>,
    caller: Caller,
    id: String,
    body: Option<DecisionBody>,
    decision: Decision,
) -> Result<Json<Value>, ApiError> {
    let approver = Approver::check(&state, caller.into())?;
    let comment = body.and_then(|b| b.comment);
    check_text("comment", comment.as_deref())?;
    let id = mandate_id(&id)?;
    let m = approver.decide(&state, id, decision, comment).await?;
    Ok(Json(m.view()))
}

/// `POST /v1/approvals/{id}/approve`: the mandate becomes active for its lifetime.
pub(crate) async fn approve(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    decide(state, caller, id, body, Decision::Approve).await
}

/// `POST /v1/approvals/{id}/deny`.
pub(crate) async fn deny(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<DecisionBody>,
) -> Result<Json<Value>, ApiError> {
    decide(state, caller, id, body, Decision::Deny).await
}
