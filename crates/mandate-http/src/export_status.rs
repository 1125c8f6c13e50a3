//! `GET /v1/export`: the SIEM export sinks of this node (`mandate export status`), from
//! the service's `export::status`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use mandate_api as api;

use crate::Node;
use crate::audit_api::query;
use crate::error::ApiError;
use crate::extract::Admin;

/// `GET /v1/export`: each sink's cursor, lag and last failure. Any admin token role (it
/// changes nothing).
pub(crate) async fn status(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(q): RawQuery,
) -> Result<Json<api::ExportStatus>, ApiError> {
    query(q, &[])?;
    let (node, log_length, sinks) =
        crate::blocking(&state, mandate_service::export::status).await??;
    Ok(Json(api::ExportStatus {
        node,
        log_length,
        sinks: sinks
            .into_iter()
            .map(|s| api::ExportSink {
                name: s.name,
                kind: s.kind,
                format: s.format,
                next: s.next,
                lag: s.lag,
                delivered: s.delivered,
                failures: s.failures,
                last_error: s.last_error,
                last_error_at: s.last_error_at.map(|t| t.to_string()),
                last_delivered_at: s.last_delivered_at.map(|t| t.to_string()),
            })
            .collect(),
    }))
}
