//! The `policies` operations: versioned Cedar policy sets. One marker function per
//! operation carries its `#[utoipa::path]`; its doc comment names the mandate-http
//! handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::formats::PolicyVersionNumber;
use crate::responses::PolicyActivated;
use crate::responses::*;
use crate::*;

/// The contract of `GET /v1/policies`, served by mandate-http's handler `policies::list`.
#[utoipa::path(
    get,
    path = "/v1/policies",
    tag = "policies",
    operation_id = "listPolicyVersions",
    summary = "List policy versions",
    description = "Every version, oldest first, without its text (see `GET /v1/policies/{version}`).",
    responses(
        (status = 200, description = "The versions and which one is active.", body = PolicyList, content_type = "application/json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 500, response = Internal)
    )
)]
pub fn list_policy_versions() {}

/// The contract of `POST /v1/policies`, served by mandate-http's handler `policies::add`.
#[utoipa::path(
    post,
    path = "/v1/policies",
    tag = "policies",
    operation_id = "addPolicyVersion",
    summary = "Add a policy version",
    description = r#"Compiles the Cedar policies against Mandate's base schema plus the given schema
fragments (Cedar's strict validation) and stores them as the next immutable
version, **not yet active** (see `POST /v1/policies/{version}/activate`). An
invalid set is refused with 400 `invalid_policy`, every problem located in
`errors`, and nothing is stored.

Schema fragments are Cedar schema text. Operators declare their resource types
in their own namespaces and their actions by opening `namespace Mandate` again,
best `in ["all"]` so that a policy on `action in Mandate::Action::"all"` covers
them:

```cedarschema
namespace Crm { entity Contact { team: String }; }
namespace Mandate {
  action "crm:read" in ["all"] appliesTo {
    principal: [Agent],
    resource: [Crm::Contact],
    context: { data_class: String },
  };
}
```"#,
    request_body(content = NewPolicies, content_type = "application/json"),
    responses(
        (status = 201, description = "The new version and the ids of its policies.", body = PolicyAdded, content_type = "application/json"),
        (status = 400, response = InvalidPolicy),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn add_policy_version() {}

/// The contract of `POST /v1/policies/validate`, served by mandate-http's handler `policies::validate`.
#[utoipa::path(
    post,
    path = "/v1/policies/validate",
    tag = "policies",
    operation_id = "validatePolicies",
    summary = "Check a policy set without saving it",
    description = r#"Compiles exactly as `POST /v1/policies` does, and stores nothing. Any admin-token
role but `service` may call it."#,
    request_body(content = NewPolicies, content_type = "application/json"),
    responses(
        (status = 200, description = "The set is valid.", body = PolicyValidated, content_type = "application/json"),
        (status = 400, response = InvalidPolicy),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal)
    )
)]
pub fn validate_policies() {}

/// The contract of `POST /v1/policies/rollback`, served by mandate-http's handler `policies::rollback`.
#[utoipa::path(
    post,
    path = "/v1/policies/rollback",
    tag = "policies",
    operation_id = "rollBackPolicies",
    summary = "Reactivate the previously active version",
    description = r#"Activates the most recently active version other than the current one (so a
second rollback undoes the first). Decisions use it from the next request on.
No request body is read."#,
    responses(
        (status = 200, response = PolicyActivated),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 409, description = "`nothing_to_roll_back`: no other version was ever active. `does_not_compile`: that version no longer compiles (e.g. against a newer base schema); the current version stays active.", body = Problem, content_type = "application/problem+json"),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn roll_back_policies() {}

/// The contract of `GET /v1/policies/{version}`, served by mandate-http's handler `policies::show`.
#[utoipa::path(
    get,
    path = "/v1/policies/{version}",
    tag = "policies",
    operation_id = "getPolicyVersion",
    summary = "Show a policy version with its text",
    params(("version" = PolicyVersionNumber, Path, description = "The policy version; anything but a positive integer is answered 404 `not_found`.")),
    responses(
        (status = 200, description = "The version, its policies and schema fragments.", body = PolicyVersion, content_type = "application/json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 404, description = "`not_found`: no such version, or not a positive integer.", body = Problem, content_type = "application/problem+json"),
        (status = 500, response = Internal)
    )
)]
pub fn get_policy_version() {}

/// The contract of `POST /v1/policies/{version}/activate`, served by mandate-http's handler `policies::activate`.
#[utoipa::path(
    post,
    path = "/v1/policies/{version}/activate",
    tag = "policies",
    operation_id = "activatePolicyVersion",
    summary = "Make a policy version the active one",
    description = r#"Decisions use it from the next request on. Activating the active version again
is allowed (it is recorded as another activation). No request body is read."#,
    params(("version" = PolicyVersionNumber, Path, description = "The policy version; anything but a positive integer is answered 404 `not_found`.")),
    responses(
        (status = 200, response = PolicyActivated),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, description = "`not_found`: no such version, or not a positive integer.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`does_not_compile`: the stored version no longer compiles (e.g. against a newer base schema); the current version stays active.", body = Problem, content_type = "application/problem+json"),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn activate_policy_version() {}

/// The contract of `POST /v1/policies/{version}/replay`, served by mandate-http's handler `policies::replay`.
#[utoipa::path(
    post,
    path = "/v1/policies/{version}/replay",
    tag = "policies",
    operation_id = "replayPolicyVersion",
    summary = "Replay recorded decisions with a policy version",
    description = r#"Re-decides the recorded decisions of a window (this node's audit log, oldest
first, at most `limit`) with the version's policies — and with the given boundary
edits — and reports what would change: counts (same, allow→deny, deny→allow, other
changes, not replayed, skipped, errors) and the changed decisions grouped by agent,
action, change and deciding policies, with example events. Nothing is changed and
nothing is recorded: call it before an activation.

Each decision is re-decided with the request as recorded (a redacted context field is
its marker, never the original), the risk recorded with it, its mandate as stored now
and its agents as registered now (or as edited): the log keeps no agent's past state.
Decisions refused before the boundary gate (token, agent status, inactive mandate,
token scope) are not about policy and keep their verdict (`not_replayed`). A decision
whose agent or mandate is gone is `skipped` with its reason. A decision the version
cannot evaluate is a deny (`policy_error`), counted under `errors`, never an allow."#,
    params(("version" = PolicyVersionNumber, Path, description = "The candidate version; anything but a positive integer is answered 404 `not_found`.")),
    request_body(content = PolicyReplayRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The replay's report.", body = PolicyReplayReport, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 404, description = "`not_found`: no such version, or not a positive integer.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`does_not_compile`: the stored version no longer compiles (e.g. against a newer base schema). `replay_running`: a replay is already running on this node (one at a time); retry when it ends.", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal)
    )
)]
pub fn replay_policy_version() {}
