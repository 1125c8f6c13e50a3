//! The `approvals` operations: human approval of the mandate requests policy holds. One
//! marker function per operation carries its `#[utoipa::path]`; its doc comment names the
//! mandate-http handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::formats::MandateId;
use crate::responses::*;
use crate::*;

/// The contract of `GET /v1/approvals`, served by mandate-http's handler `approvals::list`.
#[utoipa::path(
    get,
    path = "/v1/approvals",
    tag = "approvals",
    operation_id = "listApprovals",
    summary = "Requests waiting for a human",
    description = r#"For approvers (`admin` and `approver` tokens, and users in the configured
approver group): the `pending_approval` mandates whose deadline is still ahead,
oldest first, each with the agent that asked. A page of exactly `limit` stored
requests carries a `next_cursor` (a page may hold fewer items when some lapsed)."#,
    params(ListApprovalsQuery),
    responses(
        (status = 200, description = "One page of waiting requests.", body = ApprovalPage, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = NotAnApprover),
        (status = 500, response = Internal)
    ),
    security(("adminBearer" = []), ("userBearer" = []))
)]
pub fn list_approvals() {}

/// The query of `list_approvals`.
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListApprovalsQuery {
    /// Page size.
    #[param(minimum = 1, maximum = 500, default = 100)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<MandateId>)]
    pub cursor: Option<String>,
}

/// The contract of `POST /v1/approvals/{id}/approve`, served by mandate-http's handler `approvals::approve`.
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/approve",
    tag = "approvals",
    operation_id = "approveMandate",
    summary = "Approve a waiting request",
    description = r#"The mandate becomes `active` now, for its `lifetime_secs`; `decided_by` is the
approver (an admin token id or `user:<sub>`). The pending check and the change
are one transaction, so a request is decided once. Nobody decides a request
made for them or by an agent they own (`self_approval`)."#,
    params(("id" = MandateId, Path, description = "The mandate's id.")),
    request_body(content = Option<ApprovalDecision>, description = "Optional; an empty body means no comment.", content_type = "application/json"),
    responses(
        (status = 200, description = "The approved mandate.", body = Mandate, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = NotAnApprover),
        (status = 404, response = NotFound),
        (status = 409, response = ApprovalConflict),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    ),
    security(("adminBearer" = []), ("userBearer" = []))
)]
pub fn approve_mandate() {}

/// The contract of `POST /v1/approvals/{id}/deny`, served by mandate-http's handler `approvals::deny`.
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/deny",
    tag = "approvals",
    operation_id = "denyMandate",
    summary = "Deny a waiting request",
    description = "As approving, but the mandate becomes `denied`.",
    params(("id" = MandateId, Path, description = "The mandate's id.")),
    request_body(content = Option<ApprovalDecision>, description = "Optional; an empty body means no comment.", content_type = "application/json"),
    responses(
        (status = 200, description = "The denied mandate.", body = Mandate, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = NotAnApprover),
        (status = 404, response = NotFound),
        (status = 409, response = ApprovalConflict),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    ),
    security(("adminBearer" = []), ("userBearer" = []))
)]
pub fn deny_mandate() {}
