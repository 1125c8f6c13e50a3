//! The `decisions` operations: the decision path — may this agent do this action on this
//! resource? One marker function per operation carries its `#[utoipa::path]`; its doc
//! comment names the mandate-http handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::responses::*;
use crate::*;

/// The contract of `POST /v1/authorize`, served by mandate-http's handler `authorize::authorize`.
#[utoipa::path(
    post,
    path = "/v1/authorize",
    tag = "decisions",
    operation_id = "authorize",
    summary = "Decide whether an agent may do an action on a resource",
    description = r#"The decision path as an API, called by the agent itself or by an enforcement point
on its behalf:

* **the agent**: its own access token as the bearer (`agentBearer`); the body
  names neither `principal` nor `token`.
* **an enforcement point**: a `service` (or `admin`) admin token as the bearer
  (`adminBearer`); the body names exactly one of `principal` (the agent id) or
  `token` (the agent's access token). `auditor` and `approver` tokens are
  refused with 403 `forbidden`.

The decision is a pure function of one snapshot of the store (every change that
can alter a decision — agents, boundaries, policy activation, revocations, keys —
is visible to the next decision). Gates, in order, each failing closed with its
reason code (see `DecisionReason`):

1. with a token: signature (by a key published at the moment of the decision),
   type, issuer, validity window, a lifetime (`exp - iat`) of at most
   `token.max_lifetime_secs`, no `crit` header, and an audience that names
   Mandate — or, for a token an enforcement point passes with `audience`, that
   audience (`invalid_token`; an agent's own bearer that does not verify at all
   is a 401 before anything is decided, see below); not revoked and issued
   after the agent's token cutoff (`token_revoked`);
2. the agent exists (`unknown_agent`) and is `active` (`agent_suspended`,
   `agent_decommissioned`);
3. with a token that carries a `scope`: some scope token matches `action`
   (`outside_token_scope`; a token without a scope, or a `principal` named by an
   enforcement point, skips this gate);
4. the agent's boundary: one grant matches `action`, the resource as
   `{type}/{id}` (e.g. `Crm::Contact/c1`), and — when `context.data_class` is a
   string — that data class (`outside_boundary`);
5. the active Cedar policy set (`no_active_policy` when none is active): the
   principal is `Mandate::Agent::"<agent id>"`, the action
   `Mandate::Action::"<action>"`, the resource `<type>::"<id>"` with
   `attributes`; default deny (`no_permit`), forbid wins
   (`forbidden_by_policy`), and any error — an undeclared action, a resource or
   context that does not fit the schema, a policy that fails to evaluate —
   denies (`policy_error`). Top-level resource attributes and context fields the
   schema does not declare are dropped before Cedar sees them.

A bearer that looks like a JWT is always treated as an agent token: an invalid,
expired or foreign one is not a 401 but a `deny` with reason `invalid_token`.

Every decision is recorded in the audit log (a `decision` event, `context`
redacted as configured) and committed before it is answered; `decision_id` is
that event's id. If the log cannot be written no decision is given: 503
`audit_unavailable`."#,
    request_body(content = AuthorizeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The decision (an allow or a deny; a deny is not an error).", body = Decision, content_type = "application/json"),
        (status = 400, description = r#"As for any JSON body, plus `invalid_field` for: `principal` or `token` sent
by an agent caller; an enforcement point sending neither or both; `action`
empty or over 256 bytes; an empty resource `type` or `id`; `context` or
`resource.attributes` not an object (or `null`); `request_id` over 128
bytes."#, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = r#"`unauthenticated`: no bearer token, or one that is neither a JWT nor an
unrevoked admin token. `invalid_token` (with `WWW-Authenticate: Bearer
error="invalid_token"`): the agent's own bearer token does not verify as a
Mandate access token at all (format, signature, signing key, issuer,
lifetime, window), answered before the body is read; nothing of the request
is recorded but a compact `token.refused` event. A token that verifies but
may not act is decided (`deny`, recorded) instead."#, body = Problem, content_type = "application/problem+json", headers(("WWW-Authenticate" = String, description = r#"Always `Bearer realm="mandate"`."#))),
        (status = 403, description = "`forbidden`: an `auditor` or `approver` admin token.", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, description = r#"`audit_unavailable`: the decision could not be recorded, so none is given.
`snapshot_stale`: the decision snapshot could not be refreshed after a change,
so no decision is made until a refresh succeeds."#, body = Problem, content_type = "application/problem+json")
    ),
    security(("agentBearer" = []), ("adminBearer" = []))
)]
pub fn authorize() {}

/// The contract of `POST /v1/authorize/batch`, served by mandate-http's handler `authorize::authorize_batch`.
#[utoipa::path(
    post,
    path = "/v1/authorize/batch",
    tag = "decisions",
    operation_id = "authorizeBatch",
    summary = "Decide up to 100 requests at once",
    description = r#"Like `POST /v1/authorize` for each of 1 to 100 requests, with the same callers
and the same rules for `principal` and `token` (an enforcement point may name a
different agent in each request). Every request is checked before any is
decided: one invalid request refuses the whole batch with 400. The decisions'
events are recorded together (one group commit); if any of them cannot be
recorded the answer is 503 `audit_unavailable` and no decision is given (events
of the batch written before the failure stay in the log)."#,
    request_body(content = AuthorizeBatchRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One decision per request, in request order.", body = BatchDecisions, content_type = "application/json"),
        (status = 400, description = r#"As for any JSON body, plus `invalid_field`: `requests` empty or over 100
items, or any request breaking a rule of `POST /v1/authorize`."#, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = r#"`unauthenticated`: no bearer token, or one that is neither a JWT nor an
unrevoked admin token. `invalid_token` (with `WWW-Authenticate: Bearer
error="invalid_token"`): the agent's own bearer token does not verify as a
Mandate access token at all (format, signature, signing key, issuer,
lifetime, window), answered before the body is read; nothing of the request
is recorded but a compact `token.refused` event. A token that verifies but
may not act is decided (`deny`, recorded) instead."#, body = Problem, content_type = "application/problem+json", headers(("WWW-Authenticate" = String, description = r#"Always `Bearer realm="mandate"`."#))),
        (status = 403, description = "`forbidden`: an `auditor` or `approver` admin token.", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, description = r#"`audit_unavailable`: a decision of the batch could not be recorded, so none is
given. `snapshot_stale`: as for `POST /v1/authorize`."#, body = Problem, content_type = "application/problem+json")
    ),
    security(("agentBearer" = []), ("adminBearer" = []))
)]
pub fn authorize_batch() {}
