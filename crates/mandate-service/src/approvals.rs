//! Human approval of mandate requests: approvers list what waits for them, and approve
//! or deny it. The "still pending?" check and the decision are one store transaction,
//! so two approvers (or an approver and the timeout) cannot both decide.
//!
//! Only an [`Approver`] can do either: [`Approver::check`] is the one way to get one, so
//! whether a party may approve is settled before anything it asked is looked at.

use std::sync::Arc;

use mandate_core::id::MandateId;
use mandate_core::mandate::{Mandate, MandateStatus, UserRef};
use mandate_core::time::Timestamp;
use mandate_store::prelude::*;
use mandate_store::{MandateFilter, StoreError};
use serde_json::{Value, json};

use crate::Node;
use crate::error::ServiceError;
use crate::mandates::{AsOf, Party, agent_summary, is_owner, next_cursor, person};
use crate::write_path::Recorded;

/// Why an approval use case did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// The party may not approve or deny requests.
    #[error("only an admin or approver token, or a user in the approver group, may do this")]
    NotAnApprover,
    /// The approver is the human the request is for, or owns the agent that made it.
    #[error("nobody may decide a request made for them or by their own agent")]
    SelfApproval,
    /// The request's approval deadline has passed (whether or not the sweeper has
    /// written it yet).
    #[error("the approval deadline of mandate `{0}` has passed")]
    Expired(MandateId),
    /// The request was already decided or ended.
    #[error("mandate `{id}` is {}, not pending", status.as_str())]
    NotPending {
        /// The mandate.
        id: MandateId,
        /// Its status then.
        status: MandateStatus,
    },
    /// The node failed (the audit log, a blocking task).
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The store failed (a missing mandate is its `NotFound`).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an approver decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The mandate becomes active for its lifetime.
    Approve,
    /// The request is denied.
    Deny,
}

/// A party that may approve or deny requests (see [`Party::is_approver`]).
#[derive(Debug)]
pub struct Approver(Party);

/// A request waiting for a human.
#[derive(Debug)]
pub struct Waiting {
    /// The request.
    pub mandate: Mandate,
    /// The agent that asked ([`agent_summary`]).
    pub agent: Value,
}

/// A page of requests waiting for a human, oldest first.
#[derive(Debug)]
pub struct WaitingPage {
    /// The requests whose deadline is still ahead.
    pub items: Vec<Waiting>,
    /// Where the next page starts, when the store's page was full.
    pub next_cursor: Option<String>,
    /// When the page was read.
    pub now: Timestamp,
}

/// Whether `u` would be approving for themselves: they are the human the mandate acts
/// for (by subject, or by any address of theirs — the email claim or a subject that is
/// an address — in canonical form, `mandate_core::identity`, whatever the issuer) or
/// the agent's owner.
fn is_self(u: &UserRef, m: &Mandate, owner: Option<&str>) -> bool {
    let same_user = m.user.as_ref().is_some_and(|mu| person(mu).is(&person(u)));
    same_user || owner.is_some_and(|o| is_owner(u, o))
}

impl Approver {
    /// `party` as an approver, or [`ApprovalError::NotAnApprover`].
    pub fn check(node: &Node, party: Party) -> Result<Self, ApprovalError> {
        if party.is_approver(node) {
            Ok(Self(party))
        } else {
            Err(ApprovalError::NotAnApprover)
        }
    }

    /// Requests waiting for a human whose deadline is still ahead, after `cursor`, at
    /// most `limit` read, each with the agent that asked. While decisions are held (a
    /// stale snapshot) the list still answers, with the agents' ids only.
    pub async fn waiting(
        &self,
        node: &Arc<Node>,
        cursor: Option<MandateId>,
        limit: u32,
    ) -> Result<WaitingPage, ApprovalError> {
        let filter = MandateFilter {
            status: Some(MandateStatus::PendingApproval),
            ..MandateFilter::default()
        };
        let (page, now) = node
            .blocking(move |s| {
                s.store()
                    .list_mandates(&filter, cursor.as_ref(), limit)
                    .map(|p| (p, s.clock.now()))
            })
            .await
            .map_err(ServiceError::from)??;
        let snapshot = node.snapshot().ok();
        let next_cursor = next_cursor(&page, limit);
        let items = page
            .into_iter()
            .filter(|m| m.status_at(now) == MandateStatus::PendingApproval)
            .map(|m| Waiting {
                agent: agent_summary(snapshot.as_deref(), &m.agent),
                mandate: m,
            })
            .collect();
        Ok(WaitingPage {
            items,
            next_cursor,
            now,
        })
    }

    /// Decides the pending request `id` with `comment`: approved, it becomes active for
    /// its lifetime; denied, it is denied. Recorded as `mandate.approved` or
    /// `mandate.denied`. Nobody decides for themselves ([`ApprovalError::SelfApproval`]);
    /// a request no longer pending is [`ApprovalError::Expired`] or
    /// [`ApprovalError::NotPending`].
    pub async fn decide(
        self,
        node: &Arc<Node>,
        id: MandateId,
        decision: Decision,
        comment: Option<String>,
    ) -> Result<AsOf, ApprovalError> {
        let Self(party) = self;
        let actor = party.actor();
        let by = actor.clone();
        let note = comment.clone();
        let kind = match decision {
            Decision::Approve => "mandate.approved",
            Decision::Deny => "mandate.denied",
        };
        let (m, now) = node
            .perform(kind, &actor, move |s| {
                let now = s.clock.now();
                // The owner from the store, in the same transaction as the decision:
                // deciding is a human act that keeps working while decisions are held (a
                // stale snapshot).
                let m = s.store().modify_mandate_with_owner(&id, |m, owner| {
                    if let Party::User(u) = &party
                        && is_self(&u.user, m, owner)
                    {
                        return Err(ApprovalError::SelfApproval);
                    }
                    let status = m.status_at(now);
                    if status != MandateStatus::PendingApproval {
                        // Lapsed, whether or not the sweeper has written it yet.
                        let lapsed = m.status == MandateStatus::PendingApproval
                            || m.decided_by.as_deref() == Some("timeout");
                        return Err(if lapsed {
                            ApprovalError::Expired(m.id.clone())
                        } else {
                            ApprovalError::NotPending {
                                id: m.id.clone(),
                                status,
                            }
                        });
                    }
                    match decision {
                        Decision::Approve => {
                            m.status = MandateStatus::Active;
                            m.activated_at = Some(now);
                            m.expires_at = Some(now.plus_secs(i64::from(m.lifetime_secs)));
                        }
                        Decision::Deny => m.status = MandateStatus::Denied,
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
                Ok::<_, ApprovalError>(((m, now), rec))
            })
            .await?;
        tracing::info!(mandate = %m.id, %actor, status = m.status.as_str(), "mandate decided");
        Ok(AsOf { mandate: m, now })
    }
}
