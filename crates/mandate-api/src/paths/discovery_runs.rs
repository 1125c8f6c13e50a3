//! The `discovery-runs` operations: discovery runs over a tool's JSON output. One marker
//! function per operation carries its `#[utoipa::path]`; its doc comment names the
//! mandate-http handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::responses::*;
use crate::*;

/// The contract of `POST /v1/discovery/runs`, served by mandate-http's handler `discovery_runs::run`.
#[utoipa::path(
    post,
    path = "/v1/discovery/runs",
    tag = "discovery-runs",
    operation_id = "runDiscovery",
    summary = "Reconcile discovered workloads with the registry",
    description = r#"The body is a discovery tool's JSON output, as it printed it: `kubectl get pods -l
app=ai-agent -A -o json` (or a `PodList`/`ServiceAccountList`), AWS
`resourcegroupstaggingapi get-resources`, Azure `az resource list`, GCP `gcloud asset
search-all-resources --format=json`. At most 64 MiB (this route's own limit; the
others keep `http.max_body_bytes`), 100,000 items.

The items the selector keeps are reconciled with every registered agent: **matched**
(linked by a `mandate.dev/agent-id` annotation, label or tag, or by the agent's
`mandate.dev/source`, `mandate.dev/name` and `mandate.dev/scope` labels), **shadows**
(found, not registered) and **ghosts** (agents whose `mandate.dev/source` names this
source and that were not found). The run is recorded as one `discovery.run` audit
event.

With `register=true` (admin role), each `unregistered` shadow that names an owner is
registered as a **suspended** draft with no grants, labelled so that the next run
matches it; at most 100 a run. Each registration is its own `agent.registered` event.

A document that does not read is refused with its stable code — `not_json`,
`too_many_values`, `too_many_items`, `bad_shape` (400) — and nothing is recorded. At
most two runs read at once per node: a third is refused (409 `discovery_running`)
before its body is read."#,
    params(RunDiscoveryQuery),
    request_body(content = Object, description = "The tool's JSON output.", content_type = "application/json"),
    responses(
        (status = 200, description = "The run's reconciliation.", body = DiscoveryRun, content_type = "application/json"),
        (status = 400, description = "`invalid_query` (source, selector, register), or the document does not read: `not_json`, `too_many_values`, `too_many_items`, `bad_shape`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 408, description = "`request_timeout`: the body did not arrive within 30 s.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`discovery_running`: two runs are already reading on this node (refused before the body is read); retry when one ends.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`body_too_large`: over 64 MiB.", body = Problem, content_type = "application/problem+json"),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn run_discovery() {}

/// The query of `run_discovery`.
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunDiscoveryQuery {
    /// `kubernetes`, `aws`, `azure` or `gcp` (required).
    #[param(value_type = crate::formats::DiscoverySource)]
    pub source: String,
    /// A label (tag) selector, Kubernetes' equality syntax: `key=value`, `key!=value`,
    /// `key`, `!key`, joined by `,`. Default: `app=ai-agent` for `kubernetes`, every
    /// item for the clouds; empty: every item.
    #[param(value_type = Option<crate::formats::LabelSelector>)]
    pub selector: Option<String>,
    /// `true`: register each unregistered shadow as a suspended draft. Default `false`.
    pub register: Option<bool>,
}
