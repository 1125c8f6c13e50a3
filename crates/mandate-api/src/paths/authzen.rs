//! The `authzen` operations: the OpenID AuthZEN Authorization API 1.0 over the decision
//! path. One marker function per operation carries its `#[utoipa::path]`; its doc
//! comment names the mandate-http handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::responses::*;
use crate::*;

/// The contract of `POST /access/v1/evaluation`, served by mandate-http's handler `authzen::evaluation`.
#[utoipa::path(
    post,
    path = "/access/v1/evaluation",
    tag = "authzen",
    operation_id = "authzenEvaluation",
    summary = "AuthZEN Access Evaluation: may this agent do this action on this resource?",
    description = r#"One decision through the same path as `POST /v1/authorize` (token, agent
status, boundary, policies, detector), recorded in the audit log before it is
answered. The caller is the agent itself (its access token as the bearer; the
subject must then be that agent, else 403) or an enforcement point (a `service`
or `admin` token). `subject` is `{type: "agent", id}` (the agent id or name);
`subject.properties.token` is the agent's access token, passed on by an
enforcement point; other subject properties reach the policies as context
fields `subject_<name>`, action properties as `action_<name>`, resource
properties as the resource's attributes. Any other subject type, or an unknown
agent, is `false` with `context.reason` `unknown_agent`. `approval_required` is
`false` with `context.approval` saying how to ask. Unknown members are ignored.
An `X-Request-ID` header is echoed on every answer and recorded with the
decision."#,
    request_body(content = AuthzenEvaluationRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The decision; a deny is `false`, not an error.", body = AuthzenDecision, content_type = "application/json"),
        (status = 400, description = r#"`invalid_json`, `missing_field` (`subject`, `subject.type`, `subject.id`,
`action`, `action.name`, `resource`, `resource.type`, `resource.id`),
`invalid_field` (a member of the wrong type or over its limit; `subject.properties.token`
from an agent caller), `unsupported_media_type` (not `application/json`: 400 here,
as AuthZEN requires)."#, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthenticated` or `invalid_token`, as for `POST /v1/authorize`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: an `auditor` or `approver` token; an agent asking about another subject.", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 500, response = Internal),
        (status = 503, description = "`audit_unavailable` or `snapshot_stale`, as for `POST /v1/authorize`.", body = Problem, content_type = "application/problem+json")
    ),
    security(("agentBearer" = []), ("adminBearer" = []))
)]
pub fn authzen_evaluation() {}

/// The contract of `POST /access/v1/evaluations`, served by mandate-http's handler `authzen::evaluations`.
#[utoipa::path(
    post,
    path = "/access/v1/evaluations",
    tag = "authzen",
    operation_id = "authzenEvaluations",
    summary = "AuthZEN Access Evaluations: up to 100 decisions at once",
    description = r#"Each item takes the top-level `subject`, `action`, `resource` and `context` for
any of them it leaves out (whole-member replacement, no merging inside one).
Without items, or with an empty array, the request is an Access Evaluation and
is answered with one decision. `options.evaluations_semantic`: `execute_all`
(the default: every item, every answer), `deny_on_first_deny` (in order,
stopping after the first `false`), `permit_on_first_permit` (in order, stopping
after the first `true`). An item that is not a valid evaluation once the
defaults are applied is answered `false` with `context.reason`
`invalid_request` and `context.error` (`{status: 400, code, message}`), and
counts as a deny for `deny_on_first_deny`; it is not decided, so not recorded.
The decided items are recorded together before the answer."#,
    request_body(content = AuthzenEvaluationsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "`{evaluations: [...]}`, or one decision for a request without items.", body = AuthzenEvaluations, content_type = "application/json"),
        (status = 400, description = r#"As for the Access Evaluation, for the top level: a top-level member of the
wrong type, `evaluations` not an array or over 100 items, an unknown
`options.evaluations_semantic`."#, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "As for the Access Evaluation.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "As for the Access Evaluation, for any item.", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 500, response = Internal),
        (status = 503, description = "As for the Access Evaluation.", body = Problem, content_type = "application/problem+json")
    ),
    security(("agentBearer" = []), ("adminBearer" = []))
)]
pub fn authzen_evaluations() {}

/// The contract of `POST /access/v1/search/subject`, served by mandate-http's handler `authzen::search_subject`.
#[utoipa::path(
    post,
    path = "/access/v1/search/subject",
    tag = "authzen",
    operation_id = "authzenSearchSubject",
    summary = "AuthZEN Subject Search: which agents may do this action on this resource?",
    description = r#"Every registered agent is decided for `action` on `resource` (its status,
boundary and the policies, on one snapshot, without the anomaly detector); the
permitted ones are the results, `{type: "agent", id, properties: {name}}`,
ordered by id. A subject type other than `agent` finds nothing. Only an
enforcement point (`service` or `admin` token) may search subjects. One
`authzen.search` audit event records the search and its whole result before the
first page is answered. Paged: `page.limit` (1–1000, default 100) and
`page.token` (the previous `next_token`; the rest of the request must be
unchanged, else 400 `invalid_field`)."#,
    request_body(content = AuthzenSearchRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The permitted subjects of this page.", body = AuthzenSearchResponse, content_type = "application/json"),
        (status = 400, description = "As for the Access Evaluation (here `subject.id` is not required), plus a bad `page`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "As for the Access Evaluation.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: an agent's token, an `auditor` or `approver` token.", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 500, response = Internal),
        (status = 503, description = "As for the Access Evaluation.", body = Problem, content_type = "application/problem+json")
    ),
    security(("adminBearer" = []))
)]
pub fn authzen_search_subject() {}

/// The contract of `POST /access/v1/search/resource`, served by mandate-http's handler `authzen::search_resource`.
#[utoipa::path(
    post,
    path = "/access/v1/search/resource",
    tag = "authzen",
    operation_id = "authzenSearchResource",
    summary = "AuthZEN Resource Search: on which resources of a type may this agent do this action?",
    description = r#"Mandate keeps no inventory of resources. The candidates are the resources the
agent's boundary names exactly: each resource pattern of a grant whose actions
match `action`, of the form `{type}/{id}` with no `*`, for the requested type.
Each is decided (with `resource.properties` as its attributes); the permitted
ones are the results, `{type, id}`, ordered by id. Patterns with a `*` cannot be
listed: the answer's `context` then has `incomplete: true` and
`skipped_patterns`. Recorded and paged as the subject search."#,
    request_body(content = AuthzenSearchRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The permitted resources of this page.", body = AuthzenSearchResponse, content_type = "application/json"),
        (status = 400, description = "As for the Access Evaluation (here `resource.id` is not required), plus a bad `page`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "As for the Access Evaluation.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "As for the Access Evaluation.", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 500, response = Internal),
        (status = 503, description = "As for the Access Evaluation.", body = Problem, content_type = "application/problem+json")
    ),
    security(("agentBearer" = []), ("adminBearer" = []))
)]
pub fn authzen_search_resource() {}

/// The contract of `POST /access/v1/search/action`, served by mandate-http's handler `authzen::search_action`.
#[utoipa::path(
    post,
    path = "/access/v1/search/action",
    tag = "authzen",
    operation_id = "authzenSearchAction",
    summary = "AuthZEN Action Search: which actions may this agent do on this resource?",
    description = r#"The candidates are the actions the active policy schema declares for an agent
on the resource's type (`appliesTo`); each is decided, the permitted ones are
the results, `{name}`, ordered by name. Recorded and paged as the subject
search."#,
    request_body(content = AuthzenSearchRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The permitted actions of this page.", body = AuthzenSearchResponse, content_type = "application/json"),
        (status = 400, description = "As for the Access Evaluation (`action` is not read), plus a bad `page`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "As for the Access Evaluation.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "As for the Access Evaluation.", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 500, response = Internal),
        (status = 503, description = "As for the Access Evaluation.", body = Problem, content_type = "application/problem+json")
    ),
    security(("agentBearer" = []), ("adminBearer" = []))
)]
pub fn authzen_search_action() {}

/// The contract of `GET /.well-known/authzen-configuration`, served by mandate-http's handler `authzen::configuration`.
#[utoipa::path(
    get,
    path = "/.well-known/authzen-configuration",
    tag = "authzen",
    operation_id = "authzenConfiguration",
    summary = "AuthZEN Policy Decision Point metadata",
    responses(
        (status = 200, description = "The metadata; URLs are built from the configured issuer.", body = AuthzenConfiguration, content_type = "application/json")
    ),
    security()
)]
pub fn authzen_configuration() {}
