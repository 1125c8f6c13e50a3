//! The `admin` operations: admin tokens and signing keys. One marker function per operation
//! carries its `#[utoipa::path]`; its doc comment names the mandate-http handler that
//! serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::formats::AdminTokenId;
use crate::responses::*;
use crate::*;

/// The contract of `GET /v1/admin-tokens`, served by mandate-http's handler `admin::list_tokens`.
#[utoipa::path(
    get,
    path = "/v1/admin-tokens",
    tag = "admin",
    operation_id = "listAdminTokens",
    summary = "List admin tokens",
    description = "Every admin token record, revoked ones included, in id order.",
    responses(
        (status = 200, description = "The records (never the tokens).", body = Items<AdminToken>, content_type = "application/json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 500, response = Internal)
    )
)]
pub fn list_admin_tokens() {}

/// The contract of `POST /v1/admin-tokens`, served by mandate-http's handler `admin::create_token`.
#[utoipa::path(
    post,
    path = "/v1/admin-tokens",
    tag = "admin",
    operation_id = "createAdminToken",
    summary = "Create an admin token",
    description = r#"The token (`mat_…`) is in this response and nowhere else; only its SHA-256 digest
is stored. `role: service` makes a token for an enforcement point, which may call
only `/v1/authorize` (and `/v1/authorize/batch`)."#,
    request_body(content = NewAdminToken, content_type = "application/json"),
    responses(
        (status = 201, description = "The token's record and the token itself.", body = AdminTokenCreated, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn create_admin_token() {}

/// The contract of `DELETE /v1/admin-tokens/{id}`, served by mandate-http's handler `admin::revoke_token`.
#[utoipa::path(
    delete,
    path = "/v1/admin-tokens/{id}",
    tag = "admin",
    operation_id = "revokeAdminToken",
    summary = "Revoke an admin token",
    description = "Idempotent. Any token may be revoked, the bootstrap token and the caller's own included.",
    params(("id" = AdminTokenId, Path, description = "The admin token's public id (never the token itself).")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn revoke_admin_token() {}

/// The contract of `GET /v1/keys`, served by mandate-http's handler `admin::list_keys`.
#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "admin",
    operation_id = "listSigningKeys",
    summary = "List the published signing keys",
    responses(
        (status = 200, description = "The current key and the retired keys still published.", body = Items<SigningKey>, content_type = "application/json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 500, response = Internal)
    )
)]
pub fn list_signing_keys() {}

/// The contract of `POST /v1/keys/rotate`, served by mandate-http's handler `admin::rotate_keys`.
#[utoipa::path(
    post,
    path = "/v1/keys/rotate",
    tag = "admin",
    operation_id = "rotateSigningKey",
    summary = "Rotate the signing key",
    description = r#"A new key signs from now on. The old one's private key is deleted, and its public
key stays published for the longest token lifetime plus 60 seconds. No request
body is read."#,
    responses(
        (status = 200, description = "The new and the retired key.", body = KeyRotated, content_type = "application/json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn rotate_signing_key() {}
