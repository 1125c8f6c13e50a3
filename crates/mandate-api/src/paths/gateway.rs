//! The `gateway` operations: the enforcement gateways' upstream secrets: set, list (names
//! only), delete. The. One marker function per operation carries its `#[utoipa::path]`; its
//! doc comment names the mandate-http handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::responses::*;
use crate::*;

/// The contract of `GET /v1/gateway/secrets`, served by mandate-http's handler `gateway::list_secrets`.
#[utoipa::path(
    get,
    path = "/v1/gateway/secrets",
    tag = "gateway",
    operation_id = "listGatewaySecrets",
    summary = "List upstream secrets (names and times, never values)",
    responses(
        (status = 200, description = "The secrets' names.", body = Items<GatewaySecret>, content_type = "application/json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 500, response = Internal)
    )
)]
pub fn list_gateway_secrets() {}

/// The contract of `PUT /v1/gateway/secrets/{name}`, served by mandate-http's handler `gateway::put_secret`.
#[utoipa::path(
    put,
    path = "/v1/gateway/secrets/{name}",
    tag = "gateway",
    operation_id = "putGatewaySecret",
    summary = "Store or replace an upstream secret",
    description = r#"Encrypted at rest (ChaCha20-Poly1305, a key derived from the node's audit key,
the name as associated data); injected by the HTTP gateway into requests of the
routes that name it (`credential_secret`); never returned, logged or recorded
(`gateway.secret_set` records the name only)."#,
    params(("name" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$")),
    request_body(content = PutGatewaySecret, content_type = "application/json"),
    responses(
        (status = 204, description = "Stored."),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn put_gateway_secret() {}

/// The contract of `DELETE /v1/gateway/secrets/{name}`, served by mandate-http's handler `gateway::delete_secret`.
#[utoipa::path(
    delete,
    path = "/v1/gateway/secrets/{name}",
    tag = "gateway",
    operation_id = "deleteGatewaySecret",
    summary = "Delete an upstream secret",
    params(("name" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn delete_gateway_secret() {}
