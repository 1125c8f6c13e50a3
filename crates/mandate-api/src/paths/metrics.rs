//! The contract of `GET /metrics` (Prometheus).

use crate::Problem;
use crate::responses::*;

/// The contract of `GET /metrics`, served by mandate-http's handler `metrics::scrape`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "metrics",
    operation_id = "getMetrics",
    summary = "This node's metrics in the Prometheus text format",
    description = r#"Counters, gauges and histograms of this node in the Prometheus text exposition
format 0.0.4: decisions by enforcement point, verdict and reason code, the
`/v1/authorize` latency, tokens issued and refused, the audit writer's queue, commits
and events, the decision snapshot's age and refreshes, anomalies by severity, and each
export sink's lag and deliveries (docs/metrics.md lists them). No label is ever an
agent, user or token id. Any admin token role but `service` may read it. `metrics.listen` serves the
same on a listener of its own, where a scraper without a token may read it. No query
parameters."#,
    responses(
        (status = 200, description = "The exposition.", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8",
         example = json!("# HELP mandate_decisions_total Decisions answered (recorded before the answer), by enforcement point, verdict and reason code\n# TYPE mandate_decisions_total counter\nmandate_decisions_total{surface=\"authorize\",outcome=\"allow\",reason=\"allowed_by_policy\"} 3\n")),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 404, description = "`not_found`: this server records no metrics (`mandate serve` always does).", body = Problem, content_type = "application/problem+json"),
        (status = 500, response = Internal)
    )
)]
pub fn get_metrics() {}
