//! Mandate's decision engine, pure: the immutable [`decide::Snapshot`] a node decides
//! from (agents, compiled policies, key ring, cutoffs, revocations, mandates) and the
//! decision function over it. No IO, no clock of its own (the caller passes `now`), no
//! HTTP and no store: the server builds snapshots and records decisions; the engine only
//! answers.

#![warn(missing_docs)]

pub mod agent_index;
pub mod decide;
