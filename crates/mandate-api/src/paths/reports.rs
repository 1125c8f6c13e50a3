//! The `governance` reports: compliance evidence (issue 24). One marker function per
//! operation carries its `#[utoipa::path]`; its doc comment names the mandate-http
//! handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::formats::Timestamp;
use crate::responses::*;
use crate::*;

/// The contract of `GET /v1/reports/compliance`, served by mandate-http's handler
/// `reports::compliance`.
#[utoipa::path(
    get,
    path = "/v1/reports/compliance",
    tag = "governance",
    operation_id = "getComplianceReport",
    summary = "A framework's controls mapped to evidence this node holds",
    description = r#"Each control of the framework (`nist-ai-rmf`: NIST AI RMF 1.0; `eu-ai-act`: the EU AI
Act's deployer duties) with the numbers that evidence it: the registry as it is now and
this node's audit log in `[since, now]`, each number with its `source` (how to recompute
it from `mandate audit export`). The report names the latest signed checkpoint and
whether the log verified up to it. A read: nothing is recorded. Any admin-API role but
`service` may read it. docs/compliance.md documents the mapping."#,
    params(ComplianceQuery),
    responses(
        (status = 200, description = "The report.", body = ComplianceReport, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 409, description = "`report_running`: a report is already being built on this node (one at a time: each re-hashes the log to its checkpoint); retry when it ends.", body = Problem, content_type = "application/problem+json"),
        (status = 500, response = Internal),
        (status = 503, description = "`snapshot_stale`: the node's snapshot could not be refreshed.", body = Problem, content_type = "application/problem+json")
    )
)]
pub fn get_compliance_report() {}

/// The query of `get_compliance_report`.
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ComplianceQuery {
    /// `nist-ai-rmf` or `eu-ai-act`.
    #[param(pattern = "^(nist-ai-rmf|eu-ai-act)$")]
    pub framework: String,
    /// The window's start (RFC 3339; default 90 days before now).
    #[param(value_type = Option<Timestamp>)]
    pub since: Option<String>,
}
