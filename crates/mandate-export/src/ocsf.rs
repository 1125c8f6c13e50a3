//! OCSF 1.x records of audit events (work in progress: the class mapping lands with its
//! schema validation).

use mandate_audit::event::AuditEvent;
use serde_json::Value;

use crate::Context;

/// The OCSF record of `event`.
pub fn record(event: &AuditEvent, cx: &Context<'_>) -> Value {
    let _ = cx;
    serde_json::json!({"metadata": {"uid": event.id()}})
}
