//! The `dev` operations: development helpers, off unless the operator enables them. One
//! marker function per operation carries its `#[utoipa::path]`; its doc comment names the
//! mandate-http handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::responses::*;
use crate::*;

/// The contract of `POST /v1/dev/user-tokens`, served by mandate-http's handler `dev::issue_user_token`.
#[utoipa::path(
    post,
    path = "/v1/dev/user-tokens",
    tag = "dev",
    operation_id = "issueDevUserToken",
    summary = "Mint a user token from the development issuer",
    description = r#"For walkthroughs and tests: a user token (EdDSA, signed by the development
user issuer, which the server trusts) naming any user. Only when the operator
enabled the development issuer (404 `dev_issuer_disabled` otherwise); `admin`
tokens only. Recorded as `dev.user_token_issued` (never the token)."#,
    request_body(content = NewDevUserToken, content_type = "application/json"),
    responses(
        (status = 201, description = "The token.", body = DevUserToken, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, description = "`dev_issuer_disabled`: the development user issuer is not enabled.", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn issue_dev_user_token() {}
