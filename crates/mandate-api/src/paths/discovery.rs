//! The `discovery` operations: public documents and probes; no authentication. One marker
//! function per operation carries its `#[utoipa::path]`; its doc comment names the
//! mandate-http handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::responses::*;
use crate::*;

/// The contract of `GET /.well-known/jwks.json`, served by mandate-http's handler `wellknown::jwks`.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "discovery",
    operation_id = "getJwks",
    summary = "The keys that verify access tokens",
    description = r#"The current signing key and every retired key whose tokens may still be valid
(Ed25519, `kty: OKP`)."#,
    responses(
        (status = 200, description = "A JWK Set (RFC 7517).", body = JwkSet, content_type = "application/jwk-set+json", headers(("Cache-Control" = inline(PublicMaxAge60), description = "`public, max-age=60`."))),
        (status = 500, response = Internal)
    ),
    security()
)]
pub fn get_jwks() {}

/// The contract of `GET /.well-known/oauth-authorization-server`, served by mandate-http's handler `wellknown::metadata`.
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "discovery",
    operation_id = "getMetadata",
    summary = "Authorization server metadata (RFC 8414)",
    responses(
        (status = 200, description = "The metadata; URLs are built from the configured issuer.", body = ServerMetadata, content_type = "application/json")
    ),
    security()
)]
pub fn get_metadata() {}

/// The contract of `GET /healthz`, served by mandate-http's handler `wellknown::healthz`.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "discovery",
    operation_id = "healthz",
    summary = "Liveness probe",
    responses(
        (status = 200, description = "The process is up.", body = Liveness, content_type = "application/json")
    ),
    security()
)]
pub fn healthz() {}

/// The contract of `GET /readyz`, served by mandate-http's handler `wellknown::readyz`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "discovery",
    operation_id = "readyz",
    summary = "Readiness probe",
    responses(
        (status = 200, description = "The store answers and decisions are not held.", body = Readiness, content_type = "application/json"),
        (status = 503, description = r#"`not_ready`: the store does not answer, or the decision snapshot is stale (a
refresh failed; decisions are held until one succeeds)."#, body = Problem, content_type = "application/problem+json")
    ),
    security()
)]
pub fn readyz() {}
