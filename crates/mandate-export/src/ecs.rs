//! Elastic Common Schema documents of audit events (work in progress).

use mandate_audit::event::AuditEvent;
use serde_json::Value;

use crate::Context;

/// The ECS document of `event`.
pub fn document(event: &AuditEvent, cx: &Context<'_>) -> Value {
    let _ = cx;
    serde_json::json!({"event": {"id": event.id()}})
}
