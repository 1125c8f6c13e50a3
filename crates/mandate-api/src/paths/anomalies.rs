//! The `anomalies` operations: what the anomaly detector raised about agents' behaviour, a
//! human's answer to. One marker function per operation carries its `#[utoipa::path]`; its
//! doc comment names the mandate-http handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::formats::{AgentId, AnomalyId, AnomalyKind, AnomalyStatus, Severity};
use crate::responses::*;
use crate::*;

/// The contract of `GET /v1/anomalies`, served by mandate-http's handler `anomalies::list`.
#[utoipa::path(
    get,
    path = "/v1/anomalies",
    tag = "anomalies",
    operation_id = "listAnomalies",
    summary = "List anomalies, newest first",
    description = r#"Every anomaly the detector raised (`anomaly.detected` in the audit log), with the
response the configuration chose and, once a human answered, who and how."#,
    params(ListAnomaliesQuery),
    responses(
        (status = 200, description = "A page of anomalies.", body = AnomalyPage, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 500, response = Internal)
    )
)]
pub fn list_anomalies() {}

/// The query of `list_anomalies`.
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAnomaliesQuery {
    /// Only this agent's anomalies.
    #[param(value_type = Option<AgentId>)]
    pub agent: Option<String>,
    /// Only anomalies in this state.
    #[param(value_type = Option<AnomalyStatus>, inline)]
    pub status: Option<String>,
    /// Only anomalies of this severity.
    #[param(value_type = Option<Severity>)]
    pub severity: Option<String>,
    /// Only anomalies of this kind.
    #[param(value_type = Option<AnomalyKind>)]
    pub kind: Option<String>,
    /// The last id of the previous page.
    #[param(value_type = Option<AnomalyId>)]
    pub cursor: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 500, default = 100)]
    pub limit: Option<u64>,
}

/// The contract of `GET /v1/anomalies/{id}`, served by mandate-http's handler `anomalies::show`.
#[utoipa::path(
    get,
    path = "/v1/anomalies/{id}",
    tag = "anomalies",
    operation_id = "getAnomaly",
    summary = "Show an anomaly",
    params(("id" = AnomalyId, Path)),
    responses(
        (status = 200, description = "The anomaly.", body = Anomaly, content_type = "application/json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 404, response = NotFound),
        (status = 500, response = Internal)
    )
)]
pub fn get_anomaly() {}

/// The contract of `POST /v1/anomalies/{id}/acknowledge`, served by mandate-http's handler `anomalies::acknowledge`.
#[utoipa::path(
    post,
    path = "/v1/anomalies/{id}/acknowledge",
    tag = "anomalies",
    operation_id = "acknowledgeAnomaly",
    summary = "Acknowledge an anomaly (it was real, and is handled)",
    description = r#"Lifts its step-up hold before answering (the agent's next matching request is
judged without it) and accepts what it found (a new action or resource type is
learned). It does not resume a suspended agent: that is
`POST /v1/agents/{id}/resume`. Admin and approver tokens. Audited as
`anomaly.acknowledged`."#,
    params(("id" = AnomalyId, Path)),
    request_body(content = Option<AnomalyResolution>, content_type = "application/json"),
    responses(
        (status = 200, description = "The anomaly, acknowledged.", body = Anomaly, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = AnomalyNotOpen),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn acknowledge_anomaly() {}

/// The contract of `POST /v1/anomalies/{id}/dismiss`, served by mandate-http's handler `anomalies::dismiss`.
#[utoipa::path(
    post,
    path = "/v1/anomalies/{id}/dismiss",
    tag = "anomalies",
    operation_id = "dismissAnomaly",
    summary = "Dismiss an anomaly as a false positive (the baseline learns from it)",
    description = r#"Lifts its hold and teaches the baseline: a new action, resource type, data class
or delegator becomes known; a rate spike raises the rate that counts as a spike
to what was seen; a deny burst raises the burst size; an hour becomes usual.
Admin and approver tokens. Audited as `anomaly.dismissed`."#,
    params(("id" = AnomalyId, Path)),
    request_body(content = Option<AnomalyResolution>, content_type = "application/json"),
    responses(
        (status = 200, description = "The anomaly, dismissed.", body = Anomaly, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = AnomalyNotOpen),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn dismiss_anomaly() {}

/// The contract of `GET /v1/agents/{id}/baseline`, served by mandate-http's handler `anomalies::baseline`.
#[utoipa::path(
    get,
    path = "/v1/agents/{id}/baseline",
    tag = "anomalies",
    operation_id = "getAgentBaseline",
    summary = "What the detector learned of an agent",
    description = r#"The learning state, the actions, resource types, data classes and delegating
agents it uses (first and last seen, count), its deepest delegation, requests by
hour of the day (UTC), its usual rate per bucket and the spike threshold, its
deny ratio, what dismissals taught, and the findings still pending (with their
holds). `{"enabled": false}` when detection is off."#,
    params(("id" = AgentId, Path, description = "The agent's id.")),
    responses(
        (status = 200, description = "The baseline.", body = Baseline, content_type = "application/json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 404, response = NotFound),
        (status = 500, response = Internal)
    )
)]
pub fn get_agent_baseline() {}
