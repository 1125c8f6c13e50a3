//! The node's jobs: the sweeper, which every second writes lapsed mandates (requests
//! past their approval deadline denied, mandates past their expiry expired) and retries
//! a failed snapshot refresh, and every five seconds writes the detector's changed
//! baselines; and escalates overdue access review items (`reviews.rs`).

use mandate_store::prelude::*;
use std::sync::Arc;

use mandate_audit::event::AuditEvent;
use mandate_core::mandate::MandateStatus;
use mandate_store::StoreError;
use serde_json::json;

use crate::Node;
use crate::actor::{Actor, System};
use crate::detect;
use crate::error::ServiceError;

/// How many lapsed mandates one sweep writes.
const SWEEP_BATCH: u32 = 500;

/// Why the sweeper left a row as it was.
enum Skip {
    /// Someone else decided or ended it first.
    Unchanged,
    Store(StoreError),
}

impl From<StoreError> for Skip {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Node {
    /// Writes what has lapsed (up to 500 rows): pending requests past their deadline
    /// become `denied` (decided by `timeout` at the deadline), active mandates past
    /// their expiry `expired` (ended by `expiry` at the expiry). Each row is re-checked
    /// inside its own transaction, so a concurrent approval or revocation wins. Blocking.
    ///
    /// Returns the audit events of the changes made, which the caller must record (see
    /// [`sweep`], which runs it under the act order). A row that cannot be written is
    /// logged and retried on the next sweep.
    pub fn sweep_mandates(&self) -> Result<Vec<AuditEvent>, StoreError> {
        let now = self.clock.now();
        let lapsed = self.store().lapsed_mandates(now, SWEEP_BATCH)?;
        let mut events = Vec::new();
        for row in lapsed {
            let changed = self.store().modify_mandate(&row.id, |m| {
                match (m.status, m.status_at(now)) {
                    (MandateStatus::PendingApproval, MandateStatus::Denied) => {
                        m.status = MandateStatus::Denied;
                        m.decided_by = Some(Actor::System(System::Timeout).name());
                        m.decided_at = m.approval_deadline.or(Some(now));
                    }
                    (MandateStatus::Active, MandateStatus::Expired) => {
                        m.status = MandateStatus::Expired;
                        m.ended_at = m.expires_at.or(Some(now));
                        m.ended_by = Some(Actor::System(System::Expiry).name());
                    }
                    _ => return Err(Skip::Unchanged),
                }
                Ok(())
            });
            let m = match changed {
                Ok(m) => m,
                Err(Skip::Unchanged | Skip::Store(StoreError::NotFound(_))) => continue,
                Err(Skip::Store(e)) => {
                    tracing::error!(error = %e, mandate = %row.id, "lapsed mandate not written");
                    continue;
                }
            };
            let (kind, actor, details) = if m.status == MandateStatus::Expired {
                let d = json!({"mandate": m.id, "status": m.status, "expires_at": m.expires_at});
                ("mandate.expired", Actor::System(System::Expiry), d)
            } else {
                let d = json!({"mandate": m.id, "status": m.status,
                    "approval_deadline": m.approval_deadline});
                (
                    "mandate.approval_timed_out",
                    Actor::System(System::Timeout),
                    d,
                )
            };
            let mut e = self.event(kind);
            e.actor = Some(actor.name());
            e.agent = Some(m.agent.to_string());
            e.user = m.user.as_ref().map(|u| u.sub.clone());
            e.details = Some(details);
            events.push(e);
        }
        Ok(events)
    }
}

/// One sweep (see [`Node::sweep_mandates`]): writes what has lapsed, wakes
/// long-pollers and records the changes, under the act order (`INVARIANT (act order)`,
/// write_path.rs). Returns how many mandates changed.
pub async fn sweep(state: &Arc<Node>) -> Result<usize, ServiceError> {
    let (n, _) = state
        .act_batch("lapsed mandates", |s| {
            let events = s.sweep_mandates()?;
            if !events.is_empty() {
                s.mandates_changed();
            }
            Ok::<_, ServiceError>((events.len(), events))
        })
        .await?;
    Ok(n)
}

/// Writes the detector's changed baselines to the store (the sweeper does this every
/// few seconds; call it once more at shutdown). Returns how many were written.
pub async fn flush_baselines(state: &Arc<Node>) -> Result<usize, ServiceError> {
    Ok(state.blocking(detect::flush).await??)
}

/// Writes the agents' and credentials' last activity noted since the last flush
/// (activity.rs; the sweeper does this every five seconds; call it once more at
/// shutdown). Returns how many subjects were written.
pub async fn flush_activity(state: &Arc<Node>) -> Result<usize, ServiceError> {
    Ok(state.blocking(crate::activity::flush).await??)
}

/// Runs the mandate sweeper (see [`sweep`]) every second, and writes changed baselines
/// every five (and last activity), until the runtime stops. A failure is logged and tried again later. While
/// the snapshot is stale (a refresh failed), each tick first tries the refresh again,
/// so decisions resume within a second of the store answering again. Over a shared
/// store only the leader sweeps; every node writes its own detector's baselines.
pub fn spawn_sweeper(state: Arc<Node>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        loop {
            tick.tick().await;
            ticks += 1;
            if state.is_stale() {
                // `refresh` logs the outcome either way.
                let _ = state.blocking(|s| s.refresh()).await;
            }
            // A node of a cluster tells the others how it is (`mandate cluster status`).
            if !state.proof.is_local() {
                match state.blocking(crate::cluster::report).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat not recorded"),
                    Err(e) => tracing::warn!(error = %e, "heartbeat not recorded"),
                }
            }
            if ticks.is_multiple_of(5) {
                if let Err(e) = flush_baselines(&state).await {
                    tracing::warn!(error = %e, "baselines not written");
                }
                if let Err(e) = flush_activity(&state).await {
                    tracing::warn!(error = %e, "last activity not written");
                }
            }
            // Over a shared store, one node sweeps at a time: the leader (mandate-store
            // `Store::leads`). Another takes over within a heartbeat of its loss.
            if !state.leads() {
                continue;
            }
            match sweep(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(n, "lapsed mandates written"),
                Err(e) => tracing::warn!(error = %e, "mandate sweep failed"),
            }
            // Access review items past their campaign's due time escalate once.
            match crate::reviews::escalate(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(n, "overdue review items escalated"),
                Err(e) => tracing::warn!(error = %e, "review escalation failed"),
            }
        }
    })
}
