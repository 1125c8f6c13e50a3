//! Mandate's HTTP surface on one port: the OAuth 2.0 token service (token, introspection,
//! revocation, metadata, JWKS) and the `/v1/*` admin API.
//!
//! Handlers are thin: they parse and check input (extract.rs), call the store on a
//! blocking thread, and render errors through one of the two error types (error.rs).
//! Only this crate (and later the gateway) speaks HTTP.

mod admin;
mod agents;
pub mod bootstrap;
pub mod error;
mod extract;
pub mod keys;
mod oauth;
#[cfg(test)]
mod routes_test;
mod wellknown;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use mandate_core::clock::Clock;
use mandate_core::random::Random;
use mandate_store::Store;

use crate::error::ApiError;

/// What the server needs to know that is not in the store. Built by the binary from
/// the merged configuration; there is no `Default` because the issuer has none.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The issuer URL (`iss` of tokens, base of the metadata URLs), no trailing slash.
    pub issuer: String,
    /// The `aud` of tokens requested without an RFC 8707 `resource`.
    pub default_audience: String,
    /// Access-token lifetime when the agent's boundary allows it.
    pub default_token_lifetime_secs: u32,
    /// The longest lifetime of any token this server issues (bounds key publication).
    pub max_token_lifetime_secs: u32,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

impl ServerConfig {
    /// The token endpoint's URL (an accepted client-assertion audience).
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth/token", self.issuer)
    }
}

/// Everything a handler can reach.
pub struct AppState {
    /// The source of truth.
    pub store: Arc<Store>,
    /// Current signing key and published keys.
    pub keys: keys::KeyState,
    /// The only clock.
    pub clock: Arc<dyn Clock>,
    /// The only random source.
    pub random: Arc<dyn Random>,
    /// Static configuration.
    pub config: ServerConfig,
    /// Bounds concurrent Argon2id checks (19 MiB each): a flood of client-secret
    /// requests queues here, with a deadline, instead of exhausting memory and the
    /// blocking pool that store calls share.
    argon2_permits: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// Wires the state; Argon2id concurrency is bounded by the CPU count.
    pub fn new(
        store: Arc<Store>,
        keys: keys::KeyState,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        config: ServerConfig,
    ) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Self {
            store,
            keys,
            clock,
            random,
            config,
            argon2_permits: Arc::new(tokio::sync::Semaphore::new(cpus.clamp(1, 16))),
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Runs store work (and Argon2) on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&AppState) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(ApiError::internal)
}

/// Every (method, path template) that [`router`] serves, in its order.
///
/// INVARIANT (surface): this list, the routes of [`router`] and the paths of
/// `docs/openapi.yaml` are the same set; `routes_test` checks both directions.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/oauth/token"),
    ("POST", "/oauth/introspect"),
    ("POST", "/oauth/revoke"),
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
    ("POST", "/v1/agents/{id}/credentials"),
    ("GET", "/v1/agents/{id}/credentials"),
    ("DELETE", "/v1/agents/{id}/credentials/{cid}"),
    ("POST", "/v1/agents/{id}/credentials/{cid}/rotate"),
    ("POST", "/v1/admin-tokens"),
    ("GET", "/v1/admin-tokens"),
    ("DELETE", "/v1/admin-tokens/{id}"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys/rotate"),
];

/// The whole HTTP surface.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/introspect", post(oauth::introspect))
        .route("/oauth/revoke", post(oauth::revoke))
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
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The JSON extractors enforce the limit themselves (413 `body_too_large`), the OAuth
        // endpoints answer `invalid_request` (RFC 6749 has no size error); this is a backstop.
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(wellknown::access_log))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}
