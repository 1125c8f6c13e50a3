//! `GET /metrics`: the node's metrics in the Prometheus text exposition format (0.0.4),
//! on the API (an admin token, like `GET /v1/cluster`) and on the binary's own listener
//! `metrics.listen` ([`metrics_router`]), where a scraper with no token may read them
//! if the binary allows it ([`MetricsAuthentication`]). What is counted, and where, is
//! `mandate_service::metrics`; this module owns the recorder and renders it.
//!
//! One recorder per process: the `metrics` facade has one global recorder, so
//! [`install`] sets it once ([`OnceLock`]) and hands out its [`Exposition`] to every
//! caller after the first (the binary; each test of a test binary).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::Node;

use crate::audit_api::query;
use crate::error::ApiError;
use crate::extract::Admin;
/// Counts a reload of a listener's TLS certificate (the binary's `tls_in`).
pub use mandate_service::metrics::{connection_queued, header_timed_out, tls_reloaded};

/// The Prometheus text format's media type, as Prometheus itself asks for it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often histogram samples are folded into their buckets when nobody scrapes (the
/// recorder holds them until then: without it an unscraped server's memory grows).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The installed recorder's renderer; cheap to clone. Given to [`crate::router`] as an
/// `axum::Extension` layer and to [`metrics_router`].
#[derive(Clone)]
pub struct Exposition {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exposition").finish_non_exhaustive()
    }
}

impl Exposition {
    /// The exposition text as it stands: the scrape-time gauges set first
    /// (`mandate_service::metrics::observe`, blocking: run off the async workers).
    pub fn render(&self, node: &Node) -> String {
        mandate_service::metrics::observe(node);
        self.handle.render()
    }
}

/// The recorder could not be installed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InstallError {
    /// Another recorder holds the process's one global slot.
    #[error("another metrics recorder is installed in this process")]
    Taken,
    /// The bucket bounds were refused.
    #[error("metrics recorder: {0}")]
    Build(String),
}

/// Installs the process's recorder on the first call (histograms in
/// `mandate_service::metrics::SECONDS_BUCKETS`, an upkeep thread) and returns its
/// [`Exposition`]; later calls return the same one.
pub fn install() -> Result<Exposition, InstallError> {
    static INSTALLED: OnceLock<Result<PrometheusHandle, InstallError>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    mandate_service::metrics::SECONDS_BUCKETS,
                )
                .map_err(|e| InstallError::Build(e.to_string()))?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|_| InstallError::Taken)?;
            mandate_service::metrics::describe();
            crate::otlp::describe();
            handle.run_upkeep();
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                })
                .map_err(|e| InstallError::Build(format!("cannot start its upkeep: {e}")))?;
            Ok(handle)
        })
        .clone()
        .map(|handle| Exposition { handle })
}

/// Who must authenticate on `metrics.listen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAuthentication {
    /// An admin token, as on the API.
    Token,
    /// None (a scraper has no token); the binary allows it on a loopback listener only.
    Off,
}

/// The router of `metrics.listen`: `GET /metrics` alone.
pub fn metrics_router(
    state: Arc<Node>,
    exposition: Exposition,
    auth: MetricsAuthentication,
) -> Router {
    let route = match auth {
        MetricsAuthentication::Token => get(scrape),
        MetricsAuthentication::Off => get(scrape_open),
    };
    Router::new()
        .route("/metrics", route)
        .fallback(crate::not_found)
        .method_not_allowed_fallback(crate::method_not_allowed)
        .layer(axum::Extension(exposition))
        .with_state(state)
}

/// `GET /metrics` with an admin token (any role but `service`, as `GET /v1/cluster`).
pub(crate) async fn scrape(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    exposition: Option<axum::Extension<Exposition>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    render(state, exposition, q).await
}

/// `GET /metrics` on a `metrics.listen` without authentication.
async fn scrape_open(
    State(state): State<Arc<Node>>,
    exposition: Option<axum::Extension<Exposition>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    render(state, exposition, q).await
}

async fn render(
    state: Arc<Node>,
    exposition: Option<axum::Extension<Exposition>>,
    q: Option<String>,
) -> Result<Response, ApiError> {
    query(q, &[])?;
    // A router built without the recorder (tests, tools) has nothing to show.
    let Some(axum::Extension(exposition)) = exposition else {
        return Err(ApiError::not_found(
            "metrics are not recorded by this server",
        ));
    };
    let text = crate::blocking(&state, move |node| exposition.render(node)).await?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response())
}
