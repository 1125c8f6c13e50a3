//! mandate-export through its public API: filters, syslog messages and framing, the
//! records of each format.
#![expect(
    clippy::unwrap_used,
    reason = "test: a failed step fails the test loudly"
)]

mod filter;
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
