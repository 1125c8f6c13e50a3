//! The domain's acts on agents and mandates, each written once and called by every edge
//! that performs it: changing an agent's status (the admin API, the anomaly detector),
//! containing an agent (incidents), ending a mandate (its revocation by an admin or owner,
//! and containment). They take the store and the time and return [`ActError`], never an
//! HTTP error: each caller says what a refusal means to its own caller.
//!
//! The server hands them its one write path (`AppState::store()` in `mandate-server`), so
//! each act's effect governs the very next decision (`INVARIANT (one write path)`).

use mandate_core::agent::{Agent, AgentStatus};
use mandate_core::id::{AgentId, MandateId};
use mandate_core::mandate::{Mandate, MandateStatus};
use mandate_core::time::Timestamp;
use mandate_store::prelude::*;

use crate::actor::Actor;

/// Why an act changed nothing.
#[derive(Debug)]
pub enum ActError {
    /// No such agent.
    UnknownAgent(AgentId),
    /// No such mandate (or, to this caller, one it may not know of).
    UnknownMandate(MandateId),
    /// The agent's lifecycle does not allow the change.
    InvalidTransition {
        /// Its status.
        from: AgentStatus,
        /// The status asked for.
        to: AgentStatus,
    },
    /// The mandate is no longer pending or active: `status` is what it is at the time
    /// of the act.
    NotLive {
        /// The mandate.
        id: MandateId,
        /// Its status then.
        status: MandateStatus,
    },
    /// The caller may not do this (the message says who may).
    NotAllowed(&'static str),
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for ActError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
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
    let found = store
        .get_agent(id)?
        .ok_or_else(|| ActError::UnknownAgent(id.clone()))?;
    if found.status == AgentStatus::Decommissioned {
        store.set_tokens_not_before(id, now)?;
        return Ok((found, AgentStatus::Decommissioned));
    }
    let mut previous = found.status;
    let agent = store.modify_agent_revoking_tokens(id, now, |a| {
        previous = a.status;
        if a.status == AgentStatus::Active {
            a.status = AgentStatus::Suspended;
            a.status_reason = Some(reason);
        }
        Ok::<_, ActError>(())
    })?;
    Ok((agent, previous))
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
