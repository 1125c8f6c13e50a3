//! The `reviews` operations: access review campaigns (issue 24). One marker function per
//! operation carries its `#[utoipa::path]`; its doc comment names the mandate-http
//! handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::formats::AgentId;
use crate::responses::*;
use crate::*;

/// The contract of `POST /v1/reviews`, served by mandate-http's handler `reviews::start`.
#[utoipa::path(
    post,
    path = "/v1/reviews",
    tag = "reviews",
    operation_id = "startReview",
    summary = "Start an access review campaign",
    description = r#"Admin only. For every agent in scope (not decommissioned, matching the owner,
agent ids and label selector given; none given: every agent), reads this node's allow
decisions of the window once (`since`, default 30 days back, to now; each allow counts
for the acting agent and every delegating agent of its chain) and stores an item: the
boundary's grants beside their use, unused and redundant grants marked, and the
least-privilege boundary suggested (the narrowest grants cut from the existing ones
that would have allowed every allow of the window). Recorded as `review.started`
(and `review.completed` when the scope holds no agent). At most 100000 agents."#,
    request_body(content = NewReview, content_type = "application/json"),
    responses(
        (status = 201, description = "The campaign with its items.", body = Review, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn start_review() {}

/// The contract of `GET /v1/reviews`, served by mandate-http's handler `reviews::list`.
#[utoipa::path(
    get,
    path = "/v1/reviews",
    tag = "reviews",
    operation_id = "listReviews",
    summary = "Access review campaigns",
    description = r#"Campaigns, oldest first, each with its counts by state. Any admin token role but
`service`. A page of exactly `limit` carries a `next_cursor`."#,
    params(ListReviewsQuery),
    responses(
        (status = 200, description = "One page of campaigns.", body = ReviewPage, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 500, response = Internal)
    )
)]
pub fn list_reviews() {}

/// The query of `list_reviews`.
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListReviewsQuery {
    /// Page size.
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page (a campaign id).
    #[param(value_type = Option<crate::formats::ReviewId>)]
    pub cursor: Option<String>,
}

/// The contract of `GET /v1/reviews/{id}`, served by mandate-http's handler `reviews::show`.
#[utoipa::path(
    get,
    path = "/v1/reviews/{id}",
    tag = "reviews",
    operation_id = "getReview",
    summary = "One access review campaign with its items",
    description = r#"Any admin token role but `service`."#,
    params(("id" = String, Path, description = "The campaign's id (`rev_…`).")),
    responses(
        (status = 200, description = "The campaign.", body = Review, content_type = "application/json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 404, response = NotFound),
        (status = 500, response = Internal)
    )
)]
pub fn get_review() {}

/// The contract of `GET /v1/reviews/{id}/report`, served by mandate-http's handler `reviews::report`.
#[utoipa::path(
    get,
    path = "/v1/reviews/{id}/report",
    tag = "reviews",
    operation_id = "getReviewReport",
    summary = "An access review campaign's report",
    description = r#"`format=json` (the default: the campaign as `GET /v1/reviews/{id}`), `csv` (one
row per grant of each item; a field a spreadsheet would read as a formula is prefixed
with `'`) or `html` (one self-contained page, no script; every stored value escaped).
Any admin token role but `service`."#,
    params(
        ("id" = String, Path, description = "The campaign's id (`rev_…`)."),
        ("format" = Option<String>, Query, pattern = "^(json|csv|html)$", description = "`json` (default), `csv` or `html`.")
    ),
    responses(
        (status = 200, description = "The report.", body = Review, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 404, response = NotFound),
        (status = 500, response = Internal)
    )
)]
pub fn get_review_report() {}

/// The contract of `POST /v1/reviews/{id}/items/{agent}/certify`, served by mandate-http's handler `reviews::certify`.
#[utoipa::path(
    post,
    path = "/v1/reviews/{id}/items/{agent}/certify",
    tag = "reviews",
    operation_id = "certifyReviewItem",
    summary = "Certify an agent: keep its access as it is",
    description = r#"For an `admin` or `approver` token, a user of the approver group, or the agent's
owner (a user token). The pending check and the decision are one transaction: an item
is decided once (`already_decided`). Recorded as `review.certified` (and
`review.completed` after the last pending item)."#,
    params(
        ("id" = String, Path, description = "The campaign's id."),
        ("agent" = AgentId, Path, description = "The item's agent.")
    ),
    request_body(content = Option<ReviewDecision>, content_type = "application/json"),
    responses(
        (status = 200, description = "The item after the decision.", body = ReviewDecided, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = NotAReviewer),
        (status = 404, response = NotFound),
        (status = 409, response = ReviewConflict),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    ),
    security(("adminBearer" = []), ("userBearer" = []))
)]
pub fn certify_review_item() {}

/// The contract of `POST /v1/reviews/{id}/items/{agent}/narrow`, served by mandate-http's handler `reviews::narrow`.
#[utoipa::path(
    post,
    path = "/v1/reviews/{id}/items/{agent}/narrow",
    tag = "reviews",
    operation_id = "narrowReviewItem",
    summary = "Narrow an agent's boundary",
    description = r#"Replaces the agent's boundary by `boundary` or, without one, by the item's
suggestion; it must lie within the agent's current boundary (`boundary_not_within`).
The boundary change and the decision are one transaction. Recorded as `agent.updated`
then `review.narrowed`. Who may: as for certify."#,
    params(
        ("id" = String, Path, description = "The campaign's id."),
        ("agent" = AgentId, Path, description = "The item's agent.")
    ),
    request_body(content = Option<ReviewDecision>, content_type = "application/json"),
    responses(
        (status = 200, description = "The item after the decision.", body = ReviewDecided, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = NotAReviewer),
        (status = 404, response = NotFound),
        (status = 409, response = ReviewConflict),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    ),
    security(("adminBearer" = []), ("userBearer" = []))
)]
pub fn narrow_review_item() {}

/// The contract of `POST /v1/reviews/{id}/items/{agent}/decommission`, served by mandate-http's handler `reviews::decommission`.
#[utoipa::path(
    post,
    path = "/v1/reviews/{id}/items/{agent}/decommission",
    tag = "reviews",
    operation_id = "decommissionReviewItem",
    summary = "Decommission an agent",
    description = r#"Decommissions the agent (final; its credentials are revoked in the same
transaction as the decision). Recorded as `agent.decommissioned` then
`review.decommissioned`. Who may: as for certify."#,
    params(
        ("id" = String, Path, description = "The campaign's id."),
        ("agent" = AgentId, Path, description = "The item's agent.")
    ),
    request_body(content = Option<ReviewDecision>, content_type = "application/json"),
    responses(
        (status = 200, description = "The item after the decision.", body = ReviewDecided, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = NotAReviewer),
        (status = 404, response = NotFound),
        (status = 409, response = ReviewConflict),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    ),
    security(("adminBearer" = []), ("userBearer" = []))
)]
pub fn decommission_review_item() {}
