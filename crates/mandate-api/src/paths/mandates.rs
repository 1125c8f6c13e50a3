//! The `mandates` operations: task-scoped, time-bound grants that agents ask for, decided
//! by policy or a human. One marker function per operation carries its `#[utoipa::path]`;
//! its doc comment names the mandate-http handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::formats::{AgentId, MandateId, MandateStatus};
use crate::responses::*;
use crate::*;

/// The contract of `GET /v1/mandates`, served by mandate-http's handler `mandates::list`.
#[utoipa::path(
    get,
    path = "/v1/mandates",
    tag = "mandates",
    operation_id = "listMandates",
    summary = "List mandates",
    description = r#"Mandates in id (creation) order, filtered by every parameter given. Admin tokens
of any role and approvers see every mandate; an agent sees its own; a user sees
those acting for them. A filter naming someone else's mandates finds nothing.
`status` filters on the stored status, which the sweeper brings up to date
about once a second; each item's `status` is always as of now. A page of exactly
`limit` items carries a `next_cursor`."#,
    params(ListMandatesQuery),
    responses(
        (status = 200, description = "One page of mandates.", body = MandatePage, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal)
    ),
    security(("adminBearer" = []), ("agentBearer" = []), ("userBearer" = []))
)]
pub fn list_mandates() {}

/// The query of `list_mandates`.
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListMandatesQuery {
    /// Only this agent's mandates.
    #[param(value_type = Option<AgentId>)]
    pub agent: Option<String>,
    /// Only mandates stored in this status.
    #[param(value_type = Option<MandateStatus>)]
    pub status: Option<String>,
    /// Only mandates acting for this user (`sub`).
    pub user: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 500, default = 100)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page; lists mandates after this id.
    #[param(value_type = Option<MandateId>)]
    pub cursor: Option<String>,
}

/// The contract of `POST /v1/mandates`, served by mandate-http's handler `mandates::request`.
#[utoipa::path(
    post,
    path = "/v1/mandates",
    tag = "mandates",
    operation_id = "requestMandate",
    summary = "Ask for a mandate (agents only)",
    description = r#"The agent, with its own access token (not a mandate token), asks for a
task-scoped, time-bound grant: what it will do (`intent`), within what `scope`
(grants like a boundary's), for how long, optionally for a human named by a
trusted issuer's `user_token`.

Checks, in order: the text and scope rules and `lifetime_secs` (1 to the
configured `mandates.max_lifetime_secs`; default the smaller of 600 and that
maximum) → 400 `invalid_field`; a mandate-bound token → 403
`mandate_token_forbidden`; the user token → 400 `invalid_user_token`; the scope
must lie within the agent's boundary (every grant inside one boundary grant) →
403 `outside_boundary` (its `detail`, and the second of the event's `reasons`,
name the first grant outside and the part that fails: `action: scope[0] …`,
`resource: …` or `data_class: …`), recorded as `mandate.refused`, and nothing is
stored.

Then the active policies decide `Mandate::Action::"mandate:request"` on the
mandate as a `Mandate::Mandate` (attributes `agent`, `intent`, `actions`,
`resources`, `data_classes`, `lifetime_secs`; `context.user` is the human):
allowed → `active` at once, for `lifetime_secs`; denied only by `@approval`
forbids that a permit would otherwise allow → `pending_approval` until the
configured approval timeout (announced to the approval webhook, if configured);
otherwise (or with no active policy) → `denied`. Each outcome is stored, recorded
as `mandate.requested` and answered 201."#,
    request_body(content = NewMandate, content_type = "application/json"),
    responses(
        (status = 201, description = "The mandate, as policy decided it.", body = Mandate, content_type = "application/json"),
        (status = 400, description = r#"As for any JSON body (`invalid_json`, `unknown_field`, `missing_field`,
`invalid_field`), or `invalid_user_token`: the user token is not valid (the
message never echoes it)."#, body = Problem, content_type = "application/problem+json"),
        (status = 401, response = Unauthenticated),
        (status = 403, description = r#"`agents_only` (not an agent's access token), `mandate_token_forbidden` (a
mandate token), `outside_boundary` (the scope is not within the agent's
boundary), or `forbidden` (a `service` token)."#, body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    ),
    security(("agentBearer" = []))
)]
pub fn request_mandate() {}

/// The contract of `GET /v1/mandates/{id}`, served by mandate-http's handler `mandates::show`.
#[utoipa::path(
    get,
    path = "/v1/mandates/{id}",
    tag = "mandates",
    operation_id = "getMandate",
    summary = "Show a mandate, optionally waiting for its decision",
    description = r#"Readable by admin tokens of any role, approvers, the mandate's agent and the
user it acts for; to anyone else it does not exist (404). With `wait` and the
mandate `pending_approval`, the answer is held until it is decided, its
approval deadline passes (it then shows `denied`) or `wait` seconds have passed,
whichever comes first: the agent's poll for a human's decision (as in OpenID
CIBA's poll mode)."#,
    params(("id" = MandateId, Path, description = "The mandate's id."), GetMandateQuery),
    responses(
        (status = 200, description = "The mandate.", body = Mandate, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal)
    ),
    security(("adminBearer" = []), ("agentBearer" = []), ("userBearer" = []))
)]
pub fn get_mandate() {}

/// The query of `get_mandate`.
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetMandateQuery {
    /// Seconds to wait while the mandate is pending.
    #[param(minimum = 0, maximum = 60, default = 0)]
    pub wait: Option<u64>,
}

/// The contract of `POST /v1/mandates/{id}/complete`, served by mandate-http's handler `mandates::complete`.
#[utoipa::path(
    post,
    path = "/v1/mandates/{id}/complete",
    tag = "mandates",
    operation_id = "completeMandate",
    summary = "Complete a mandate (its agent only)",
    description = r#"The agent says the task is done: the active mandate becomes `completed` and
grants nothing from the next decision on. Only the mandate's own agent may do
this (with its own or a mandate token)."#,
    params(("id" = MandateId, Path, description = "The mandate's id.")),
    responses(
        (status = 200, description = "The completed mandate.", body = Mandate, content_type = "application/json"),
        (status = 401, response = Unauthenticated),
        (status = 403, description = "`forbidden`: the caller may read the mandate but is not its agent.", body = Problem, content_type = "application/problem+json"),
        (status = 404, response = NotFound),
        (status = 409, description = "`mandate_not_active`: the mandate is not active (now).", body = Problem, content_type = "application/problem+json"),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    ),
    security(("agentBearer" = []))
)]
pub fn complete_mandate() {}

/// The contract of `POST /v1/mandates/{id}/revoke`, served by mandate-http's handler `mandates::revoke`.
#[utoipa::path(
    post,
    path = "/v1/mandates/{id}/revoke",
    tag = "mandates",
    operation_id = "revokeMandate",
    summary = "Revoke a pending or active mandate",
    description = r#"An `admin` token, or a user whose `sub` or email is the agent's `owner`, ends
the mandate now (`revoked`); it grants nothing from the next decision on."#,
    params(("id" = MandateId, Path, description = "The mandate's id.")),
    request_body(content = Option<RevokeMandate>, description = "Optional; an empty body means no reason.", content_type = "application/json"),
    responses(
        (status = 200, description = "The revoked mandate.", body = Mandate, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, description = "`forbidden`: the caller may read the mandate but not revoke it (a read-only role, the agent, an approver who is not the owner).", body = Problem, content_type = "application/problem+json"),
        (status = 404, response = NotFound),
        (status = 409, description = "`mandate_not_active`: the mandate is neither pending nor active (now).", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    ),
    security(("adminBearer" = []), ("userBearer" = []))
)]
pub fn revoke_mandate() {}
