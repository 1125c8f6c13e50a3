//! The contract of `GET /v1/export` (`mandate export status`).

use crate::export::ExportStatus;
use crate::responses::*;

/// The contract of `GET /v1/export`, served by mandate-http's handler `export::status`.
#[utoipa::path(
    get,
    path = "/v1/export",
    tag = "export",
    operation_id = "getExportStatus",
    summary = "The SIEM export sinks of this node: how far each has delivered, and why not",
    description = r#"What `mandate export status` prints. Each `[[export.sinks]]` sink delivers the
answering node's audit log in order from its stored cursor (at least once; a receiver
de-duplicates by the event id `node:seq`). `lag` is how many events it has yet to
deliver; a sink whose receiver keeps failing shows the failure in `last_error` and its
lag grows, since nothing is skipped. Any admin token role may read it. No query
parameters."#,
    responses(
        (status = 200, description = "The sinks.", body = ExportStatus, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 500, response = Internal)
    )
)]
pub fn get_export_status() {}
