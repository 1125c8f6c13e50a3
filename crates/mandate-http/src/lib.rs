//! Mandate's HTTP edge on one port: the OAuth 2.0 token service (token, introspection,
//! revocation, metadata, JWKS), the `/v1/*` admin API and the AuthZEN API
//! (`/access/v1/*`, authzen.rs) and `GET /metrics` (metrics.rs, Prometheus), over the
//! node (`mandate_service::Node`).
//!
//! Each handler parses and checks the wire input (extract.rs), calls one use case of the
//! node (`mandate_service`: every write goes through its one write path there), and
//! renders the result; errors through one of the two error types (error.rs), the node's
//! typed errors mapped by a `From` in the handler's file. This
//! crate speaks axum; the gateways (mandate-gateway), the webhooks (webhook.rs) and the
//! client (mandate-client) speak HTTP too; the service layer does not. It never depends
//! on a store implementation: the binary picks one.

#![warn(missing_docs)]

pub use mandate_service::config::{ClientCertAuth, MandateConfig, ReviewConfig, ServerConfig};
pub use mandate_service::dpop::DpopConfig;
pub use mandate_service::jobs::{flush_activity, flush_baselines, spawn_sweeper, sweep};
/// One escalation pass over overdue access review items (the sweeper runs it each tick).
pub use mandate_service::reviews::escalate as escalate_reviews;
pub use mandate_service::{
    Node, StartError, audit, bootstrap, detect, discovery, export, export_io, follow, freshness,
    keys, ssf, ssf_streams,
};
use mandate_service::{actor, acts};
mod admin;
/// The decision engine (`mandate-engine`), re-exported at its former paths.
pub use mandate_engine::{agent_index, decide};
mod agents;
mod anomalies;
mod approvals;
mod audit_api;
mod authorize;
mod authzen;
pub(crate) mod caller;
mod cluster;
pub mod conn;
mod dev;
mod discovery_runs;
mod dpop;
pub mod error;
mod exchange;
pub mod export_http;
mod export_status;
mod extract;
pub mod gateway;
mod incidents;
mod inventory;
pub mod jwks_fetch;
pub mod kube_api;
mod mandates;
pub mod metrics;
mod oauth;
pub mod opa;
pub mod otlp;
mod policies;
mod reports;
mod reviews;
#[cfg(test)]
mod routes_test;
mod ssf_manage;
mod ssf_receiver;
pub mod throttle;
mod token_endpoint;
mod traces;
mod unread;
pub mod webhook;
mod wellknown;

pub use mandate_service::detect::DetectError;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

use crate::error::ApiError;

/// Runs store work (and Argon2id) on a blocking thread ([`Node::blocking`]); a task
/// that did not finish is a 500.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &Arc<Node>,
    f: impl FnOnce(&Node) -> T + Send + 'static,
) -> Result<T, ApiError> {
    state.blocking(f).await.map_err(ApiError::internal)
}

/// Every (method, path template) that [`router`] serves, in its order.
///
/// INVARIANT (surface): this list, the routes of [`router`] and the paths of
/// `docs/openapi.json` are the same set; `routes_test` checks both directions.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/oauth/authorize"),
    ("POST", "/oauth/authorize"),
    ("POST", "/oauth/token"),
    ("POST", "/oauth/introspect"),
    ("POST", "/oauth/revoke"),
    ("POST", "/ssf/events"),
    ("POST", "/ssf/stream"),
    ("GET", "/ssf/stream"),
    ("PATCH", "/ssf/stream"),
    ("PUT", "/ssf/stream"),
    ("DELETE", "/ssf/stream"),
    ("GET", "/ssf/status"),
    ("POST", "/ssf/status"),
    ("POST", "/ssf/subjects/add"),
    ("POST", "/ssf/subjects/remove"),
    ("POST", "/ssf/verify"),
    ("POST", "/ssf/poll/{stream_id}"),
    ("GET", "/.well-known/ssf-configuration"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/v1/agents"),
    ("GET", "/v1/agents"),
    ("GET", "/v1/agents/{id}"),
    ("PATCH", "/v1/agents/{id}"),
    ("POST", "/v1/agents/{id}/suspend"),
    ("POST", "/v1/agents/{id}/resume"),
    ("POST", "/v1/agents/{id}/decommission"),
    ("POST", "/v1/agents/{id}/contain"),
    ("POST", "/v1/agents/{id}/credentials"),
    ("GET", "/v1/agents/{id}/credentials"),
    ("DELETE", "/v1/agents/{id}/credentials/{cid}"),
    ("POST", "/v1/agents/{id}/credentials/{cid}/rotate"),
    ("POST", "/v1/admin-tokens"),
    ("GET", "/v1/admin-tokens"),
    ("DELETE", "/v1/admin-tokens/{id}"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys/rotate"),
    ("POST", "/v1/tokens/{jti}/revoke"),
    ("POST", "/v1/authorize"),
    ("POST", "/v1/authorize/batch"),
    ("POST", "/access/v1/evaluation"),
    ("POST", "/access/v1/evaluations"),
    ("POST", "/access/v1/search/subject"),
    ("POST", "/access/v1/search/resource"),
    ("POST", "/access/v1/search/action"),
    ("GET", "/.well-known/authzen-configuration"),
    ("POST", "/v1/policies"),
    ("GET", "/v1/policies"),
    ("POST", "/v1/policies/validate"),
    ("POST", "/v1/policies/rollback"),
    ("GET", "/v1/policies/{version}"),
    ("POST", "/v1/policies/{version}/activate"),
    ("POST", "/v1/policies/{version}/replay"),
    ("GET", "/v1/audit/events"),
    ("GET", "/v1/audit/events/{seq}/proof"),
    ("GET", "/v1/audit/consistency"),
    ("GET", "/v1/audit/checkpoints/latest"),
    ("GET", "/v1/audit/export"),
    ("GET", "/v1/audit/nodes"),
    ("GET", "/v1/cluster"),
    ("GET", "/v1/export"),
    ("POST", "/v1/discovery/runs"),
    ("GET", "/metrics"),
    ("POST", "/v1/mandates"),
    ("GET", "/v1/mandates"),
    ("GET", "/v1/mandates/{id}"),
    ("POST", "/v1/mandates/{id}/complete"),
    ("POST", "/v1/mandates/{id}/revoke"),
    ("GET", "/v1/approvals"),
    ("POST", "/v1/approvals/{id}/approve"),
    ("POST", "/v1/approvals/{id}/deny"),
    ("POST", "/v1/dev/user-tokens"),
    ("GET", "/v1/anomalies"),
    ("GET", "/v1/anomalies/{id}"),
    ("POST", "/v1/anomalies/{id}/acknowledge"),
    ("POST", "/v1/anomalies/{id}/dismiss"),
    ("GET", "/v1/agents/{id}/baseline"),
    ("GET", "/v1/gateway/secrets"),
    ("PUT", "/v1/gateway/secrets/{name}"),
    ("DELETE", "/v1/gateway/secrets/{name}"),
    ("GET", "/v1/inventory"),
    ("GET", "/v1/reports/compliance"),
    ("POST", "/v1/reviews"),
    ("GET", "/v1/reviews"),
    ("GET", "/v1/reviews/{id}"),
    ("GET", "/v1/reviews/{id}/report"),
    ("POST", "/v1/reviews/{id}/items/{agent}/certify"),
    ("POST", "/v1/reviews/{id}/items/{agent}/narrow"),
    ("POST", "/v1/reviews/{id}/items/{agent}/decommission"),
];

/// The whole HTTP surface. `GET /metrics` renders the recorder of an
/// `axum::Extension(`[`metrics::Exposition`]`)` layered on by the caller (the binary);
/// without one it answers 404.
pub fn router(state: Arc<Node>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route(
            "/oauth/authorize",
            get(oauth::authorize).post(oauth::authorize),
        )
        .route("/oauth/token", post(token_endpoint::token))
        .route("/oauth/introspect", post(oauth::introspect))
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/ssf/events", post(ssf_receiver::receive))
        .route(
            "/ssf/stream",
            post(ssf_manage::create)
                .get(ssf_manage::read)
                .patch(ssf_manage::update)
                .put(ssf_manage::replace)
                .delete(ssf_manage::delete),
        )
        .route(
            "/ssf/status",
            get(ssf_manage::get_status).post(ssf_manage::set_status),
        )
        .route("/ssf/subjects/add", post(ssf_manage::add_subject))
        .route("/ssf/subjects/remove", post(ssf_manage::remove_subject))
        .route("/ssf/verify", post(ssf_manage::verify))
        .route("/ssf/poll/{stream_id}", post(ssf_manage::poll))
        .route(
            "/.well-known/ssf-configuration",
            get(wellknown::ssf_configuration),
        )
        .route("/.well-known/jwks.json", get(wellknown::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(wellknown::metadata),
        )
        .route("/healthz", get(wellknown::healthz))
        .route("/readyz", get(wellknown::readyz))
        .route("/v1/agents", post(agents::register).get(agents::list))
        .route("/v1/agents/{id}", get(agents::show).patch(agents::update))
        .route("/v1/agents/{id}/suspend", post(agents::suspend))
        .route("/v1/agents/{id}/resume", post(agents::resume))
        .route("/v1/agents/{id}/decommission", post(agents::decommission))
        .route("/v1/agents/{id}/contain", post(incidents::contain))
        .route(
            "/v1/agents/{id}/credentials",
            post(agents::add_credential).get(agents::list_credentials),
        )
        .route(
            "/v1/agents/{id}/credentials/{cid}",
            delete(agents::revoke_credential),
        )
        .route(
            "/v1/agents/{id}/credentials/{cid}/rotate",
            post(agents::rotate_credential),
        )
        .route(
            "/v1/admin-tokens",
            post(admin::create_token).get(admin::list_tokens),
        )
        .route("/v1/admin-tokens/{id}", delete(admin::revoke_token))
        .route("/v1/keys", get(admin::list_keys))
        .route("/v1/keys/rotate", post(admin::rotate_keys))
        .route("/v1/tokens/{jti}/revoke", post(incidents::revoke_token))
        .route("/v1/authorize", post(authorize::authorize))
        .route("/v1/authorize/batch", post(authorize::authorize_batch))
        .route("/access/v1/evaluation", post(authzen::evaluation_handler))
        .route("/access/v1/evaluations", post(authzen::evaluations_handler))
        .route("/access/v1/search/subject", post(authzen::search_subject))
        .route("/access/v1/search/resource", post(authzen::search_resource))
        .route("/access/v1/search/action", post(authzen::search_action))
        .route(
            "/.well-known/authzen-configuration",
            get(authzen::configuration),
        )
        .route("/v1/policies", post(policies::add).get(policies::list))
        .route("/v1/policies/validate", post(policies::validate))
        .route("/v1/policies/rollback", post(policies::rollback))
        .route("/v1/policies/{version}", get(policies::show))
        .route("/v1/policies/{version}/activate", post(policies::activate))
        .route("/v1/policies/{version}/replay", post(policies::replay))
        .route("/v1/inventory", get(inventory::list))
        .route("/v1/reports/compliance", get(reports::compliance))
        .route("/v1/audit/events", get(audit_api::events))
        .route("/v1/audit/events/{seq}/proof", get(audit_api::inclusion))
        .route("/v1/audit/consistency", get(audit_api::consistency))
        .route(
            "/v1/audit/checkpoints/latest",
            get(audit_api::latest_checkpoint),
        )
        .route("/v1/audit/export", get(audit_api::export))
        .route("/v1/audit/nodes", get(audit_api::nodes))
        .route("/v1/cluster", get(cluster::status))
        .route("/v1/export", get(export_status::status))
        // Its body is read with its own limit (64 MiB, mandate-govern's MAX_INPUT_BYTES).
        .route("/v1/discovery/runs", post(discovery_runs::run))
        .route("/metrics", get(metrics::scrape))
        .route("/v1/mandates", post(mandates::request).get(mandates::list))
        .route("/v1/mandates/{id}", get(mandates::show))
        .route("/v1/mandates/{id}/complete", post(mandates::complete))
        .route("/v1/mandates/{id}/revoke", post(mandates::revoke))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/v1/approvals/{id}/deny", post(approvals::deny))
        .route("/v1/dev/user-tokens", post(dev::issue_user_token))
        .route("/v1/anomalies", get(anomalies::list))
        .route("/v1/anomalies/{id}", get(anomalies::show))
        .route(
            "/v1/anomalies/{id}/acknowledge",
            post(anomalies::acknowledge),
        )
        .route("/v1/anomalies/{id}/dismiss", post(anomalies::dismiss))
        .route("/v1/agents/{id}/baseline", get(anomalies::baseline))
        .route("/v1/gateway/secrets", get(gateway::list_secrets))
        .route(
            "/v1/gateway/secrets/{name}",
            axum::routing::put(gateway::put_secret).delete(gateway::delete_secret),
        )
        .route("/v1/reviews", post(reviews::start).get(reviews::list))
        .route("/v1/reviews/{id}", get(reviews::show))
        .route("/v1/reviews/{id}/report", get(reviews::report))
        .route(
            "/v1/reviews/{id}/items/{agent}/certify",
            post(reviews::certify),
        )
        .route(
            "/v1/reviews/{id}/items/{agent}/narrow",
            post(reviews::narrow),
        )
        .route(
            "/v1/reviews/{id}/items/{agent}/decommission",
            post(reviews::decommission),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The JSON extractors enforce the limit themselves (413 `body_too_large`), the OAuth
        // endpoints answer `invalid_request` (RFC 6749 has no size error); this is a backstop.
        .layer(DefaultBodyLimit::max(limit))
        .layer(traces::TraceLayer {
            random: Arc::clone(&state.random),
            clock: Arc::clone(&state.clock),
        })
        .layer(wellknown::AccessLogLayer)
        .with_state(state)
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}
