//! Human approval of mandate requests: approvers list what waits for them, and approve
//! or deny it. The "still pending?" check and the decision are one store transaction,
//! so two approvers (or an approver and the timeout) cannot both decide.

use mandate_store::prelude::*;
use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;

use mandate_core::mandate::{Mandate, MandateStatus, UserRef};
use mandate_store::MandateFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Node;
use crate::act::Acts as _;
use crate::audit_api::query;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::{ApiPath, OptionalJson};
use crate::mandates::{
    DEFAULT_PAGE, agent_summary, check_text, is_owner, mandate_id, next_cursor, page_cursor,
    page_limit, person, view,
};
use mandate_service::Recorded;

fn require_approver(caller: &Caller, state: &Node) -> Result<(), ApiError> {
    if caller.is_approver(state) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_an_approver",
            "only an admin or approver token, or a user in the approver group, may do this",
        ))
    }
}

/// `GET /v1/approvals?cursor=&limit=`: requests waiting for a human whose deadline is
/// still ahead, oldest first, each with the agent that asked.
pub(crate) async fn list(
    State(state): State<Arc<Node>>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    require_approver(&caller, &state)?;
    let mut limit = DEFAULT_PAGE;
    let mut cursor = None;
    for (k, v) in query(q, &["cursor", "limit"])? {
        if k == "cursor" {
            cursor = Some(page_cursor(&v)?);
        } else {
            limit = page_limit(&v)?;
        }
    }
    let filter = MandateFilter {
        status: Some(MandateStatus::PendingApproval),
        ..MandateFilter::default()
    };
    let (page, now) = crate::blocking(&state, move |s| {
        s.store()
            .list_mandates(&filter, cursor.as_ref(), limit)
            .map(|p| (p, s.clock.now()))
    })
    .await??;
    // Names and owners for the approver; while decisions are held (a stale snapshot)
    // the list still answers, with the agents' ids only.
    let snapshot = state.snapshot().ok();
    let items: Vec<Value> = page
        .iter()
        .filter(|m| m.status_at(now) == MandateStatus::PendingApproval)
        .map(|m| json!({"mandate": view(m, now), "agent": agent_summary(snapshot.as_deref(), &m.agent)}))
        .collect();
    Ok(Json(
        json!({"items": items, "next_cursor": next_cursor(&page, limit)}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decision {
    comment: Option<String>,
}

/// Whether `u` would be approving for themselves: they are the human the mandate acts
/// for (by subject, or by any address of theirs — the email claim or a subject that is
/// an address — in canonical form, `mandate_core::identity`, whatever the issuer) or
/// the agent's owner.
fn is_self(u: &UserRef, m: &Mandate, owner: Option<&str>) -> bool {
    let same_user = m.user.as_ref().is_some_and(|mu| person(mu).is(&person(u)));
    same_user || owner.is_some_and(|o| is_owner(u, o))
}

async fn decide(
    state: Arc<Node>,
    caller: Caller,
    id: String,
    body: Option<Decision>,
    approve: bool,
) -> Result<Json<Value>, ApiError> {
    require_approver(&caller, &state)?;
    let comment = body.and_then(|b| b.comment);
    check_text("comment", comment.as_deref())?;
    let id = mandate_id(&id)?;
    let actor = caller.actor();
    let by = actor.clone();
    let note = comment.clone();
    let kind = if approve {
        "mandate.approved"
    } else {
        "mandate.denied"
    };
    let (m, now) = state
        .act(kind, &actor, move |s| {
            let now = s.clock.now();
            // The owner from the store, in the same transaction as the decision: deciding is
            // a human act that keeps working while decisions are held (a stale snapshot).
            let m = s.store().modify_mandate_with_owner(&id, |m, owner| {
                if let Caller::User(u) = &caller
                    && is_self(&u.user, m, owner)
                {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "self_approval",
                        "nobody may decide a request made for them or by their own agent",
                    ));
                }
                let status = m.status_at(now);
                if status != MandateStatus::PendingApproval {
                    // Lapsed, whether or not the sweeper has written it yet.
                    let lapsed = m.status == MandateStatus::PendingApproval
                        || m.decided_by.as_deref() == Some("timeout");
                    return Err(if lapsed {
                        ApiError::conflict(
                            "approval_expired",
                            format!("the approval deadline of mandate `{}` has passed", m.id),
                        )
                    } else {
                        ApiError::conflict(
                            "not_pending",
                            format!("mandate `{}` is {}, not pending", m.id, status.as_str()),
                        )
                    });
                }
                if approve {
                    m.status = MandateStatus::Active;
                    m.activated_at = Some(now);
                    m.expires_at = Some(now.plus_secs(i64::from(m.lifetime_secs)));
                } else {
                    m.status = MandateStatus::Denied;
                }
                m.decided_by = Some(by.name());
                m.decided_at = Some(now);
                m.decision_comment = note;
                Ok(())
            })?;
            s.mandates_changed();
            let details = json!({"mandate": m.id, "status": m.status, "intent": m.intent,
            "scope": m.scope, "policy_ids": m.policy_ids, "comment": comment});
            let rec = Recorded::mandate(&m, details);
            Ok(((m, now), rec))
        })
        .await?;
    tracing::info!(mandate = %m.id, %actor, status = m.status.as_str(), "mandate decided");
    Ok(Json(view(&m, now)))
}

/// `POST /v1/approvals/{id}/approve`: the mandate becomes active for its lifetime.
pub(crate) async fn approve(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<Decision>,
) -> Result<Json<Value>, ApiError> {
    decide(state, caller, id, body, true).await
}

/// `POST /v1/approvals/{id}/deny`.
pub(crate) async fn deny(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<Decision>,
) -> Result<Json<Value>, ApiError> {
    decide(state, caller, id, body, false).await
}
