//! The domain's acts on agents and mandates, each written once and called by every edge
//! that performs it: changing an agent's status (the admin API, the anomaly detector),
//! containing an agent (incidents), ending a mandate (its revocation by an admin or owner,
//! and containment). They take the store and the time and return [`ActError`], never an
//! HTTP error: each caller says what a refusal means to its own caller.
//!
//! The server hands them its one write path ([`crate::Node::store`]), so
//! each act's effect governs the very next decision (`INVARIANT (one write path)`).

use mandate_core::agent::{Agent, AgentStatus};
use mandate_core::id::{AgentId, MandateId};
use mandate_core::mandate::{Mandate, MandateStatus};
use mandate_core::time::Timestamp;
use mandate_store::prelude::*;

use crate::actor::Actor;

/// Why an act changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// No such agent.
    #[error("unknown agent `{0}`")]
    UnknownAgent(AgentId),
    /// No such mandate (or, to this caller, one it may not know of).
    #[error("unknown mandate `{0}`")]
    UnknownMandate(MandateId),
    /// The agent's lifecycle does not allow the change.
    #[error("agent is {from}; it cannot become {to}")]
    InvalidTransition {
        /// Its status.
        from: AgentStatus,
        /// The status asked for.
        to: AgentStatus,
    },
    /// The mandate is no longer pending or active: `status` is what it is at the time
    /// of the act.
    #[error("mandate `{id}` is {}", status.as_str())]
    NotLive {
        /// The mandate.
        id: MandateId,
        /// Its status then.
        status: MandateStatus,
    },
    /// The caller may not do this (the message says who may).
    #[error("{0}")]
    NotAllowed(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sets the agent's status to `to` with `reason`, if its lifecycle allows it (else
/// [`ActError::InvalidTransition`] and nothing changes). With `revoke_tokens`, every
/// token the agent was issued so far dies in the same unit. Decommissioning revokes its
/// credentials in the same unit (`INVARIANT (decommission revokes)`, mandate-store).
pub fn set_status(
    store: &dyn Store,
    id: &AgentId,
    to: AgentStatus,
    reason: Option<String>,
    revoke_tokens: bool,
    now: Timestamp,
) -> Result<Agent, ActError> {
    let change = |a: &mut Agent| {
        if !a.status.can_become(to) {
            return Err(ActError::InvalidTransition { from: a.status, to });
        }
        a.status = to;
        a.status_reason = reason;
        Ok(())
    };
    let changed = if revoke_tokens {
        store.modify_agent_revoking_tokens(id, now, change)
    } else {
        store.modify_agent(id, now, change)
    };
    changed.map_err(|e| match e {
        ActError::Store(StoreError::NotFound(_)) => ActError::UnknownAgent(id.clone()),
        other => other,
    })
}

/// Contains an agent: an active agent is suspended (with `reason`), and every token it
/// holds dies (the cutoff), in one unit. An agent already suspended keeps its status and
/// reason; a decommissioned one keeps its frozen record (`INVARIANT (lifecycle)`) and only
/// gets the cutoff. Returns the agent after the change and its status before.
pub fn contain(
    store: &dyn Store,
    id: &AgentId,
    reason: String,
    now: Timestamp,
) -> Result<(Agent, AgentStatus), ActError> {
    // One unit from the read that picks the branch to the write: an agent decommissioned
    // by a concurrent request is either seen here (only the cutoff is written) or
    // decommissioned after this unit, never written over in between.
    store.write(|r| {
        let found = r
            .get_agent(id)?
            .ok_or_else(|| ActError::UnknownAgent(id.clone()))?;
        if found.status == AgentStatus::Decommissioned {
            r.set_tokens_not_before(id, now)?;
            return Ok((found, AgentStatus::Decommissioned));
        }
        let mut reason = Some(reason);
        let agent = r.update_agent(id, now, true, &mut |a: &mut Agent| {
            if a.status == AgentStatus::Active {
                a.status = AgentStatus::Suspended;
                a.status_reason = reason.take();
            }
            Ok(())
        })?;
        Ok((agent, found.status))
    })
}

/// Ends a pending or active mandate now as `revoked` by `by`, in one unit with `may`, the
/// caller's check (given the mandate and its agent's owner, read in the same unit, so an
/// owner change cannot fall between the check and the write). Returns the mandate after
/// the change and its status before. A mandate no longer live is [`ActError::NotLive`].
pub fn revoke_mandate(
    store: &dyn Store,
    id: &MandateId,
    by: &Actor,
    now: Timestamp,
    may: impl FnOnce(&Mandate, Option<&str>) -> Result<(), ActError>,
) -> Result<(Mandate, MandateStatus), ActError> {
    let mut was = MandateStatus::Revoked;
    let m = store
        .modify_mandate_with_owner(id, |m, owner| {
            may(m, owner)?;
            was = m.status_at(now);
            if !matches!(was, MandateStatus::PendingApproval | MandateStatus::Active) {
                return Err(ActError::NotLive {
                    id: m.id.clone(),
                    status: was,
                });
            }
            m.status = MandateStatus::Revoked;
            m.ended_at = Some(now);
            m.ended_by = Some(by.name());
            Ok(())
        })
        .map_err(|e| match e {
            ActError::Store(StoreError::NotFound(_)) => ActError::UnknownMandate(id.clone()),
            other => other,
        })?;
    Ok((m, was))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use mandate_core::agent::{AgentName, Boundary, Labels, Owner, Purpose};
    use mandate_store::repo::{Result as StoreResult, Work};
    use mandate_store::{Changes, Topic};
    use mandate_store_sqlite::SqliteStore;

    use super::*;

    const T0: i64 = 1_750_000_000;

    fn agent() -> Agent {
        Agent {
            id: AgentId::parse("agt_01JA0000000000000000000000").unwrap(),
            name: AgentName::try_from("contained".to_owned()).unwrap(),
            owner: Owner::try_from("alice@example.com".to_owned()).unwrap(),
            purpose: Purpose::try_from("acts test".to_owned()).unwrap(),
            labels: Labels::default(),
            boundary: Boundary::default(),
            status: AgentStatus::Active,
            status_reason: None,
            created_at: Timestamp::from_secs(T0),
            updated_at: Timestamp::from_secs(T0),
        }
    }

    type Hook = Box<dyn FnOnce(&SqliteStore) + Send>;

    /// A store that lets another writer in right after the first unit of work it runs:
    /// what a concurrent admin request can do between two units of an act.
    struct Racing {
        inner: SqliteStore,
        after_first_unit: Mutex<Option<Hook>>,
    }

    impl std::fmt::Debug for Racing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Racing({:?})", self.inner)
        }
    }

    impl Racing {
        fn then_run_hook(&self) {
            let hook = self.after_first_unit.lock().unwrap().take();
            if let Some(hook) = hook {
                hook(&self.inner);
            }
        }
    }

    impl Store for Racing {
        fn read_unit(&self, work: &mut Work<'_>) -> StoreResult<()> {
            let r = self.inner.read_unit(work);
            self.then_run_hook();
            r
        }
        fn write_unit(&self, work: &mut Work<'_>) -> StoreResult<()> {
            let r = self.inner.write_unit(work);
            self.then_run_hook();
            r
        }
        fn topic_seq(&self, topic: Topic) -> u64 {
            self.inner.topic_seq(topic)
        }
        fn changes_since(&self, after: u64, wait: Duration) -> Changes {
            self.inner.changes_since(after, wait)
        }
        fn ping(&self) -> StoreResult<()> {
            self.inner.ping()
        }
        fn describe(&self) -> String {
            self.inner.describe()
        }
    }

    /// Regression (adversarial review, "contain writes a frozen record"): `contain` read
    /// the agent in one unit and suspended it in another, so an agent decommissioned in
    /// between had its final record written again (`updated_at` moved), against
    /// `INVARIANT (lifecycle)`. The read that picks the branch and the write are now one
    /// unit: a decommission lands before it (only the cutoff is written) or after it.
    #[test]
    fn contain_never_writes_an_agent_decommissioned_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let inner = SqliteStore::open(&dir.path().join("mandate.db")).unwrap();
        let a = agent();
        inner.insert_agent(&a).unwrap();
        let retired_at = Timestamp::from_secs(T0 + 5);
        let id = a.id.clone();
        let store = Racing {
            inner,
            after_first_unit: Mutex::new(Some(Box::new(move |s: &SqliteStore| {
                set_status(
                    s,
                    &id,
                    AgentStatus::Decommissioned,
                    Some("retired".into()),
                    false,
                    retired_at,
                )
                .unwrap();
            }))),
        };

        let now = Timestamp::from_secs(T0 + 10);
        contain(&store, &a.id, "incident".into(), now).unwrap();

        let stored = store.inner.get_agent(&a.id).unwrap().unwrap();
        assert_eq!(stored.status, AgentStatus::Decommissioned);
        assert_eq!(
            (stored.updated_at, stored.status_reason.as_deref()),
            (retired_at, Some("retired")),
            "contain wrote over a decommissioned (final) record"
        );
        assert_eq!(
            store.inner.tokens_not_before(&a.id).unwrap(),
            Some(now),
            "the cutoff is written either way"
        );
    }

    /// `contain` on an active agent suspends it with the reason and cuts its tokens; on a
    /// suspended one keeps status and reason; on an unknown one is `UnknownAgent`.
    #[test]
    fn contain_suspends_keeps_a_suspension_and_knows_unknown_agents() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("mandate.db")).unwrap();
        let a = agent();
        store.insert_agent(&a).unwrap();
        let now = Timestamp::from_secs(T0 + 10);
        let (after, before) = contain(&store, &a.id, "incident".into(), now).unwrap();
        assert_eq!(before, AgentStatus::Active);
        assert_eq!(after.status, AgentStatus::Suspended);
        assert_eq!(after.status_reason.as_deref(), Some("incident"));
        assert_eq!(store.tokens_not_before(&a.id).unwrap(), Some(now));

        let later = Timestamp::from_secs(T0 + 20);
        let (again, before) = contain(&store, &a.id, "second".into(), later).unwrap();
        assert_eq!(before, AgentStatus::Suspended);
        assert_eq!(again.status_reason.as_deref(), Some("incident"));
        assert_eq!(store.tokens_not_before(&a.id).unwrap(), Some(later));

        let unknown = AgentId::parse("agt_01JA0000000000000000000009").unwrap();
        assert!(matches!(
            contain(&store, &unknown, "x".into(), now),
            Err(ActError::UnknownAgent(u)) if u == unknown
        ));
    }
}
