//! The one write path: every store call a handler, the detector, an incident or a job
//! makes goes through [`Committing`] ([`crate::AppState::store`]), which after a write
//! unit that changed what decisions read refreshes the decision snapshot before the call
//! returns. No call site has a refresh to forget.
//!
//! INVARIANT (one write path): a committed write that changes an agent, a policy activation, a
//! token revocation or cutoff, or a mandate governs the very next decision on this node:
//! [`Committing::write_unit`] returns only after the snapshot was rebuilt over it (or,
//! when the rebuild failed, after decisions were held until one succeeds; see
//! `INVARIANT (fail closed on a stale snapshot)` in mandate-service snapshot_cell.rs). The snapshot
//! topics are [`SNAPSHOT_TOPICS`].
//!
//! What the snapshot holds that is not in the store (the signing key ring, kept by
//! [`crate::keys::KeyState`]) is refreshed by its owner: key rotation calls
//! [`crate::AppState::refresh`] itself.

use std::time::Duration;

use mandate_store::repo::{Result, Work};
use mandate_store::{Changes, Store, Topic};

use std::sync::Arc;

use crate::AppState;
use crate::actor;
use crate::error::ApiError;

/// The store topics the decision snapshot is built from.
pub(crate) const SNAPSHOT_TOPICS: [Topic; 4] = [
    Topic::Agents,
    Topic::Policies,
    Topic::TokenRevocations,
    Topic::Mandates,
];

/// The node's store, as its callers see it: every repository, and writes that refresh
/// the decision snapshot (see the module docs).
pub struct Committing<'a> {
    pub(crate) state: &'a AppState,
}

impl std::fmt::Debug for Committing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Committing({})", self.state.db.describe())
    }
}

/// The snapshot topics' sequence numbers now.
fn snapshot_seqs(store: &dyn Store) -> [u64; SNAPSHOT_TOPICS.len()] {
    SNAPSHOT_TOPICS.map(|t| store.topic_seq(t))
}

impl Store for Committing<'_> {
    fn read_unit(&self, work: &mut Work<'_>) -> Result<()> {
        self.state.db.read_unit(work)
    }

    fn write_unit(&self, work: &mut Work<'_>) -> Result<()> {
        let db = self.state.db.as_ref();
        let before = snapshot_seqs(db);
        let outcome = db.write_unit(work);
        // Also after a failed unit: a backend publishes the topics a failed unit touched,
        // and refreshing over nothing new costs one rebuild, never a stale decision.
        if snapshot_seqs(db) != before {
            // A failed rebuild holds decisions (the cell is stale) and is logged there;
            // the write itself stands either way, so its caller's answer does not change.
            let _ = self.state.refresh();
        }
        outcome
    }

    fn topic_seq(&self, topic: Topic) -> u64 {
        self.state.db.topic_seq(topic)
    }

    fn changes_since(&self, after: u64, wait: Duration) -> Changes {
        self.state.db.changes_since(after, wait)
    }

    fn ping(&self) -> Result<()> {
        self.state.db.ping()
    }

    fn describe(&self) -> String {
        self.state.db.describe()
    }
}

/// What an admin act did, for its audit event (see [`AppState::admin_act`]).
#[derive(Debug)]
pub(crate) struct Recorded {
    /// The agent it was about, if any.
    pub(crate) agent: Option<mandate_core::id::AgentId>,
    /// The event's details (`null`: none).
    pub(crate) details: serde_json::Value,
}

impl Recorded {
    /// An act about `agent` with `details`.
    pub(crate) fn agent(agent: &mandate_core::id::AgentId, details: serde_json::Value) -> Self {
        Self {
            agent: Some(agent.clone()),
            details,
        }
    }

    /// An act about no agent, with `details`.
    pub(crate) fn details(details: serde_json::Value) -> Self {
        Self {
            agent: None,
            details,
        }
    }
}

impl AppState {
    /// The one write path of an admin's act: `work` runs on a blocking thread, its writes
    /// going through [`AppState::store`] (so decisions see them when it returns); then the
    /// act's audit event `kind` by `actor`, about the agent and with the details `work`
    /// returned, is recorded durably. A change that cannot be recorded stands, and the
    /// caller gets 503 `audit_unavailable`.
    ///
    /// INVARIANT (recorded act): an admin act's audit event is recorded only here, after
    /// its `work` committed, from what that work returned: `record_admin` is private to this
    /// module, so no handler records an admin event apart from its change (or a change
    /// without the event its kind names). Every admin handler that writes goes through here.
    pub(crate) async fn admin_act<T: Send + 'static>(
        self: &Arc<Self>,
        kind: &'static str,
        actor: &actor::Actor,
        work: impl FnOnce(&AppState) -> std::result::Result<(T, Recorded), ApiError> + Send + 'static,
    ) -> std::result::Result<T, ApiError> {
        let (value, rec) = crate::blocking(self, work).await??;
        self.record_admin(kind, actor, rec.agent.as_ref(), rec.details)
            .await?;
        Ok(value)
    }

    /// Records an admin action by `actor` on `agent`, durably (see
    /// [`AppState::admin_act`]).
    async fn record_admin(
        &self,
        kind: &str,
        actor: &actor::Actor,
        agent: Option<&mandate_core::id::AgentId>,
        details: serde_json::Value,
    ) -> std::result::Result<(), ApiError> {
        let mut e = self.event(kind);
        e.actor = Some(actor.name());
        e.agent = agent.map(ToString::to_string);
        e.details = (!details.is_null()).then_some(details);
        self.audit.record(e).await.map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, "admin action not recorded");
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                "the change was made but could not be recorded in the audit log",
            )
        })
    }
}
