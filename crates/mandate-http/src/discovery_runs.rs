//! `POST /v1/discovery/runs?source=…&selector=…&register=…`: a discovery tool's JSON
//! output in, the reconciliation out (`mandate_service::discovery::run`). The body is
//! read with this route's own limit, `mandate_govern`'s 64 MiB
//! ([`discovery::MAX_INPUT_BYTES`]), not `http.max_body_bytes`; a document that does not
//! read is a 400 with the parser's stable code, and nothing is recorded.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use mandate_api as api;
use mandate_service::discovery::{
    self, Discovered, DiscoveryError, RunReport, RunRequest, Selector, Source, Trigger,
};

use crate::Node;
use crate::audit_api::query;
use crate::error::ApiError;
use crate::extract::{Admin, is_json, read_body};

impl From<DiscoveryError> for ApiError {
    /// A document that does not read is 400 with its code (`not_json`, `too_many_values`, `too_many_items`,
    /// `bad_shape`, `too_large`); the rest as the registry's and the node's errors.
    fn from(e: DiscoveryError) -> Self {
        match e {
            DiscoveryError::Input(e) => Self::bad_request(e.code(), e.to_string()),
            DiscoveryError::Agent(e) => e.into(),
            DiscoveryError::Store(e) => e.into(),
            DiscoveryError::Service(e) => e.into(),
        }
    }
}

fn bad(msg: String) -> ApiError {
    ApiError::bad_request("invalid_query", msg)
}

/// The run asked for by the query.
fn run_request(q: Option<String>) -> Result<RunRequest, ApiError> {
    let mut source = None;
    let mut selector = None;
    let mut register = false;
    for (k, v) in query(q, &["source", "selector", "register"])? {
        match k.as_str() {
            "source" => {
                source = Some(Source::parse(&v).ok_or_else(|| {
                    bad(format!(
                        "unknown source `{}`: kubernetes, aws, azure or gcp",
                        v.escape_debug()
                    ))
                })?);
            }
            "selector" => selector = Some(Selector::parse(&v).map_err(|e| bad(e.to_string()))?),
            _ => {
                register = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("`register` is true or false".into())),
                };
            }
        }
    }
    let source = source.ok_or_else(|| bad("`source` is required".into()))?;
    let selector = selector.unwrap_or_else(|| match source {
        Source::Kubernetes => Selector::kubernetes_default(),
        _ => Selector::everything(),
    });
    Ok(RunRequest {
        source,
        selector,
        register,
        trigger: Trigger::Api,
    })
}

/// `POST /v1/discovery/runs`: admin write role (a run is recorded, and may register).
pub(crate) async fn run(
    State(state): State<Arc<Node>>,
    admin: Admin,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<api::DiscoveryRun>, ApiError> {
    admin.require_write()?;
    let req = run_request(q)?;
    if !is_json(&headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json (the tool's JSON output)",
        ));
    }
    // INVARIANT (discovery runs are bounded): the permit before the body.
    let permit = discovery::try_permit(&state).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "discovery_running",
            format!(
                "{} discovery runs are reading on this node; try again when one ends",
                discovery::CONCURRENT_RUNS
            ),
        )
    })?;
    let bytes = read_body(body, discovery::MAX_INPUT_BYTES).await?;
    let register = req.register;
    let report = discovery::run_holding(
        Some(permit),
        &state,
        &admin.actor(),
        req,
        vec![bytes.into()],
    )
    .await?;
    Ok(Json(answer(report, register)))
}

fn item(d: Discovered) -> api::DiscoveredItem {
    api::DiscoveredItem {
        source: d.source.as_str().to_owned(),
        scope: d.scope,
        kind: d.kind,
        name: d.name,
        uid: d.uid,
        location: d.location,
        labels: d.labels,
        owner: d.owner,
        agent_id: d.agent_id,
    }
}

/// A run's report in the API's words.
fn answer(r: RunReport, register: bool) -> api::DiscoveryRun {
    let rec = r.reconciliation;
    api::DiscoveryRun {
        source: r.source.as_str().to_owned(),
        selector: r.selector,
        register,
        counts: api::DiscoveryCounts {
            found: r.found,
            matched: rec.matched.len(),
            shadows: rec.shadows.len(),
            ghosts: rec.ghosts.len(),
            registered: r.registered.len(),
            not_registered: r.not_registered.len(),
        },
        matched: rec
            .matched
            .into_iter()
            .map(|m| api::DiscoveryMatch {
                agent: m.agent.to_string(),
                status: m.status,
                rule: match m.rule {
                    discovery::MatchRule::Link => "link",
                    discovery::MatchRule::Labels => "labels",
                }
                .to_owned(),
                item: item(m.item),
            })
            .collect(),
        shadows: rec
            .shadows
            .into_iter()
            .map(|s| api::DiscoveryShadow {
                reason: s.reason.code().to_owned(),
                item: item(s.item),
            })
            .collect(),
        ghosts: rec
            .ghosts
            .into_iter()
            .map(|g| api::DiscoveryGhost {
                agent: g.agent.to_string(),
                name: g.name,
                status: g.status,
                source: g.source.as_str().to_owned(),
            })
            .collect(),
        registered: r
            .registered
            .into_iter()
            .map(|x| api::DiscoveryRegistered {
                agent: x.agent.to_string(),
                name: x.name,
                uid: x.uid,
            })
            .collect(),
        not_registered: r
            .not_registered
            .into_iter()
            .map(|n| api::DiscoveryNotRegistered {
                uid: n.uid,
                reason: n.reason.code().to_owned(),
            })
            .collect(),
    }
}
