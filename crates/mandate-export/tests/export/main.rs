//! mandate-export through its public API: filters, syslog messages and framing, the
//! records of each format (OCSF validated against the published schema).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test: a failed step fails the test loudly"
)]

mod cases;
mod ecs;
mod filter;
mod ocsf;
mod ocsf_schema;
mod syslog;

use mandate_audit::event::{AuditEvent, NodeName};
use mandate_core::time::Timestamp;

/// An event of `kind` at seq 7 on node `n1`, 2026-12-07T10:00:00Z.
pub fn event(kind: &str) -> AuditEvent {
    AuditEvent::new(
        7,
        Timestamp::from_secs(1_796_637_600),
        NodeName::new("n1").unwrap(),
        kind,
    )
}
