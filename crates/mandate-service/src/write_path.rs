//! The one write path: every store call an edge, the detector, an incident or a job
//! makes goes through [`Committing`] ([`crate::Node::store`]), which after a write
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
//! [`crate::Node::refresh`] itself.

use std::time::Duration;

use mandate_store::repo::{Result, Work};
use mandate_store::{Changes, Store, Topic};

use std::sync::Arc;

use mandate_audit::event::AuditEvent;

use crate::Node;
use crate::actor;
use crate::error::ServiceError;

/// The store topics the decision snapshot is built from.
pub const SNAPSHOT_TOPICS: [Topic; 4] = [
    Topic::Agents,
    Topic::Policies,
    Topic::TokenRevocations,
    Topic::Mandates,
];

/// The node's store, as its callers see it: every repository, and writes that refresh
/// the decision snapshot (see the module docs).
pub struct Committing<'a> {
    pub(crate) state: &'a Node,
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

    fn freshness(&self) -> mandate_store::Freshness {
        self.state.db.freshness()
    }

    fn leads(&self) -> bool {
        self.state.db.leads()
    }

    fn ping(&self) -> Result<()> {
        self.state.db.ping()
    }

    fn describe(&self) -> String {
        self.state.db.describe()
    }
}

/// What an act did, for its audit event (see [`Node::perform`]).
#[derive(Debug)]
pub struct Recorded {
    /// The agent it was about, if any.
    agent: Option<mandate_core::id::AgentId>,
    /// The human it was for (their `sub`), if any.
    user: Option<String>,
    /// The event's details (`null`: none).
    details: serde_json::Value,
    /// The policies that decided it, if policy did.
    policy_ids: Vec<String>,
    /// The stable reason codes, if it was decided.
    reasons: Vec<String>,
}

impl Recorded {
    /// An act about no agent, with `details`.
    pub fn details(details: serde_json::Value) -> Self {
        Self {
            agent: None,
            user: None,
            details,
            policy_ids: Vec::new(),
            reasons: Vec::new(),
        }
    }

    /// An act about `agent` with `details`.
    pub fn agent(agent: &mandate_core::id::AgentId, details: serde_json::Value) -> Self {
        Self {
            agent: Some(agent.clone()),
            ..Self::details(details)
        }
    }

    /// An act on mandate `m`: about its agent, for its user, with `details`.
    pub fn mandate(m: &mandate_core::mandate::Mandate, details: serde_json::Value) -> Self {
        Self {
            user: m.user.as_ref().map(|u| u.sub.clone()),
            ..Self::agent(&m.agent, details)
        }
    }

    /// The same, decided by `policy_ids` for `reasons`.
    pub fn decided(mut self, policy_ids: Vec<String>, reasons: Vec<String>) -> Self {
        self.policy_ids = policy_ids;
        self.reasons = reasons;
        self
    }
}

impl Node {
    /// The one write path of an act by an admin, a user or an agent: `work` runs on a
    /// blocking thread, its writes going through [`Node::store`] (so decisions see
    /// them when it returns); then the act's audit event `kind` by `actor`, with what
    /// `work` returned, is recorded durably. A change that cannot be recorded stands, and
    /// the caller gets [`ServiceError::AuditUnavailable`]. `work`'s own error type is
    /// the caller's (an edge's answer, or [`ServiceError`]).
    ///
    /// INVARIANT (recorded act): an act's audit event is recorded only here, after its
    /// `work` committed, from what that work returned: `record_act` is private to this
    /// module, so no edge records an act apart from its change. Every admin write, and
    /// every mandate request, completion, revocation and approval, goes through here;
    /// containment, the sweeper and the detector record their batches through
    /// [`Node::act_batch`].
    pub async fn perform<T, E>(
        self: &Arc<Self>,
        kind: &'static str,
        actor: &actor::Actor,
        work: impl FnOnce(&Node) -> std::result::Result<(T, Recorded), E> + Send + 'static,
    ) -> std::result::Result<T, E>
    where
        T: Send + 'static,
        E: From<ServiceError> + Send + 'static,
    {
        // INVARIANT (act order): an act's event is queued before another act's work
        // starts, so the log records acts in the order their changes were made (two
        // acts on one agent, a suspension and a decommission, were recorded the other
        // way round without it). Only the queueing is under the lock, not the wait for
        // durability.
        let order = self.act_order.lock().await;
        let (value, rec) = self.blocking(work).await.map_err(ServiceError::from)??;
        let durable = self.record_act(kind, actor, rec);
        drop(order);
        durable.map_err(E::from)?.await.map_err(|e| {
            tracing::error!(error = %e, kind, "act not recorded");
            E::from(ServiceError::AuditUnavailable)
        })?;
        Ok(value)
    }

    /// The write path of an act that records a batch of events (containment, the
    /// sweeper, the detector): `work` runs on a blocking thread under the act order
    /// (`INVARIANT (act order)`) and returns its value and the drafted events, which are
    /// queued before the order is released; then their durability is awaited, and their
    /// ids are returned in order. An event that cannot be recorded: the changes stand,
    /// and the caller gets [`ServiceError::AuditUnavailable`] (logged here).
    pub async fn act_batch<T, E>(
        self: &Arc<Self>,
        what: &'static str,
        work: impl FnOnce(&Node) -> std::result::Result<(T, Vec<AuditEvent>), E> + Send + 'static,
    ) -> std::result::Result<(T, Vec<String>), E>
    where
        T: Send + 'static,
        E: From<ServiceError> + Send + 'static,
    {
        let order = self.act_order.lock().await;
        let (value, events) = self.blocking(work).await.map_err(ServiceError::from)??;
        let durable = self.audit.enqueue_all(events);
        drop(order);
        let mut ids = Vec::new();
        let mut failed = 0usize;
        for outcome in durable.await {
            match outcome {
                Ok(id) => ids.push(id),
                Err(_) => failed += 1,
            }
        }
        if failed > 0 {
            tracing::error!(failed, what, "changes made but not recorded");
            return Err(E::from(ServiceError::AuditUnavailable));
        }
        Ok((value, ids))
    }

    /// Queues the audit event of an act by `actor` (see [`Node::perform`]); what it
    /// returns resolves once the event is durable.
    fn record_act(
        &self,
        kind: &'static str,
        actor: &actor::Actor,
        rec: Recorded,
    ) -> std::result::Result<
        impl std::future::Future<Output = std::result::Result<String, crate::audit::AuditError>>
        + Send
        + use<>,
        ServiceError,
    > {
        let mut e = self.event(kind);
        e.actor = Some(actor.name());
        e.agent = rec.agent.as_ref().map(ToString::to_string);
        e.user = rec.user;
        e.details = (!rec.details.is_null()).then_some(rec.details);
        e.policy_ids = rec.policy_ids;
        e.reasons = rec.reasons;
        self.audit.enqueue(e).map_err(|e| {
            tracing::error!(error = %e, kind, "act not recorded");
            ServiceError::AuditUnavailable
        })
    }
}
