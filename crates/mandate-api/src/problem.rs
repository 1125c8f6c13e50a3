//! The error bodies: the admin API's RFC 9457 problem (`application/problem+json`) and
//! the OAuth endpoints' RFC 6749 error, with the stable codes they carry.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::formats::OAuthErrorCode;

/// An admin-API error (RFC 9457 problem details), as every `/v1/*` failure answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `urn:mandate:error:` followed by `code` (`mandate_core::problem::type_uri`).
    #[serde(rename = "type")]
    #[schema(pattern = "^urn:mandate:error:[a-z_]+$")]
    pub type_uri: String,
    /// The HTTP reason phrase of `status`.
    pub title: String,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// A message for humans; user-supplied values appear in backticks.
    pub detail: String,
    /// The stable machine code (see [`ErrorCode`]; a string so that a code this build
    /// does not know still reads).
    #[schema(value_type = ErrorCode)]
    pub code: String,
    /// With `invalid_policy` only (an RFC 9457 extension member); every problem found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<PolicyError>)]
    pub errors: Option<Vec<PolicyError>>,
}

impl Problem {
    /// The code as a known [`ErrorCode`], if it is one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        serde_json::from_value(serde_json::Value::String(self.code.clone())).ok()
    }
}

/// One located problem of a policy set (`invalid_policy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyError {
    /// Where: `policies`, `schema fragment N` (1-based: `schema_fragments[0]` is
    /// `schema fragment 1`), `base schema`, or `schema` when Cedar does not say which
    /// fragment.
    pub source: String,
    /// 1-based line in that source, when Cedar reports a location.
    #[schema(required, minimum = 1)]
    pub line: Option<u64>,
    /// 1-based column, counted in characters, when Cedar reports a location.
    #[schema(required, minimum = 1)]
    pub column: Option<u64>,
    /// Cedar's message (naming the policy for validation errors).
    pub message: String,
}

/// The stable machine code of a problem (the HTTP status it comes with):
///
/// | code | status | meaning |
/// |---|---|---|
/// | `invalid_json` | 400 | the body is not JSON |
/// | `unknown_field` | 400 | the body has a field the endpoint does not take |
/// | `missing_field` | 400 | a required field is missing |
/// | `invalid_field` | 400 | a field has the wrong type or breaks its rule |
/// | `invalid_jwk` | 400 | a JWK is not an acceptable public key |
/// | `invalid_query` | 400 | an unknown, repeated or malformed query parameter |
/// | `unauthenticated` | 401 | no admin bearer token, or an unknown or revoked one |
/// | `invalid_token` | 401 | `/v1/authorize`: the agent's access token does not verify (signature, issuer, lifetime) |
/// | `invalid_policy` | 400 | the policy set does not compile (located problems in `errors`) |
/// | `forbidden` | 403 | the token's role may not do this (a read-only role writing; a `service` token outside `/v1/authorize`; an `auditor` or `approver` token at `/v1/authorize`) |
/// | `agent_token_forbidden` | 403 | an agent access token on the admin API |
/// | `not_found` | 404 | unknown id, or no such endpoint |
/// | `method_not_allowed` | 405 | the path exists but not with this method |
/// | `conflict` | 409 | a uniqueness or state rule (name taken, credential no longer active) |
/// | `agent_decommissioned` | 409 | the agent is decommissioned and frozen |
/// | `certificate_taken` | 409 | another agent has a credential the same client certificate would match (RFC 8705; one certificate names one agent) |
/// | `invalid_transition` | 409 | the lifecycle does not allow this status change |
/// | `nothing_to_roll_back` | 409 | no earlier active policy version to roll back to |
/// | `does_not_compile` | 409 | a stored policy version no longer compiles (e.g. against a newer base schema); the current version stays active |
/// | `replay_running` | 409 | a policy replay is already running on this node (one at a time); retry when it ends |
/// | `report_running` | 409 | a compliance report is already being built on this node (one at a time); retry when it ends |
/// | `discovery_running` | 409 | two discovery runs are already reading on this node; retry when one ends |
/// | `too_many_failures` | 429 | too many failed admin-token uses from this address: retry after `Retry-After` seconds (docs/running.md#abuse-limits) |
/// | `request_timeout` | 408 | the request body did not arrive within `limits.body_read_timeout_secs` (30 s by default) |
/// | `body_too_large` | 413 | the body is over the configured limit |
/// | `unsupported_media_type` | 415 | the body is not declared as JSON (400 at `/access/v1/*`, as AuthZEN requires) |
/// | `invalid_path` | 400 | a path parameter is not valid text (e.g. bad percent-encoding) |
/// | `invalid_user_token` | 400 | a mandate request's `user_token` does not verify |
/// | `agents_only` | 403 | only an agent (with its own access token) may request a mandate |
/// | `mandate_token_forbidden` | 403 | a mandate cannot be requested with a mandate token |
/// | `outside_boundary` | 403 | a mandate's scope is not within the agent's boundary |
/// | `not_an_approver` | 403 | only approvers may list or decide approval requests |
/// | `self_approval` | 403 | nobody decides a request made for them or by their own agent |
/// | `not_a_reviewer` | 403 | only an admin or approver token, a user of the approver group or the agent's owner decides an access review item |
/// | `already_decided` | 409 | the access review item was decided already (once only) |
/// | `boundary_not_within` | 409 | the boundary to narrow to is not within the agent's current boundary |
/// | `mandate_not_active` | 409 | the mandate is not active (or, to revoke, not pending or active) |
/// | `approval_expired` | 409 | the request's approval deadline has passed |
/// | `not_pending` | 409 | the request was already decided or ended |
/// | `dev_issuer_disabled` | 404 | the development user issuer is not enabled |
/// | `not_open` | 409 | the anomaly was already acknowledged or dismissed |
/// | `not_json` | 400 | a discovery run's document is not JSON |
/// | `too_many_items` | 400 | a discovery run's document holds over 100,000 items |
/// | `too_many_values` | 400 | a discovery run's document holds over 8,388,608 JSON values (counted before it is parsed) |
/// | `bad_shape` | 400 | a discovery run's document is not the shape its source prints (the detail names where) |
/// | `too_large` | 400 | a discovery run's document is over 64 MiB |
/// | `internal` | 500 | a server-side failure (details only in the log) |
/// | `bundle_unavailable` | 500 | an agent was contained and that recorded, but its incident bundle could not be built |
/// | `not_ready` | 503 | `/readyz`: the store does not answer |
/// | `audit_unavailable` | 503 | the audit log cannot be written (an admin change stands unrecorded; no decision is given) |
/// | `replay_abandoned` | 503 | a policy replay stopped because its caller hung up (seen in logs only) |
/// | `snapshot_stale` | 503 | decisions are held: the decision snapshot could not be refreshed after a change (until a refresh succeeds) |
///
/// A code is the serialisation of a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[expect(missing_docs, reason = "each code's meaning is tabled above")]
pub enum ErrorCode {
    InvalidJson,
    UnknownField,
    MissingField,
    InvalidField,
    InvalidJwk,
    InvalidQuery,
    InvalidPolicy,
    Unauthenticated,
    InvalidToken,
    Forbidden,
    AgentTokenForbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    AgentDecommissioned,
    CertificateTaken,
    InvalidTransition,
    NothingToRollBack,
    DoesNotCompile,
    ReplayRunning,
    DiscoveryRunning,
    ReportRunning,
    TooManyFailures,
    RequestTimeout,
    BodyTooLarge,
    UnsupportedMediaType,
    InvalidPath,
    InvalidUserToken,
    AgentsOnly,
    MandateTokenForbidden,
    OutsideBoundary,
    NotAnApprover,
    SelfApproval,
    NotAReviewer,
    AlreadyDecided,
    BoundaryNotWithin,
    MandateNotActive,
    ApprovalExpired,
    NotPending,
    DevIssuerDisabled,
    NotOpen,
    NotJson,
    TooManyItems,
    TooManyValues,
    BadShape,
    TooLarge,
    Internal,
    BundleUnavailable,
    NotReady,
    AuditUnavailable,
    ReplayAbandoned,
    SnapshotStale,
}

/// An OAuth error (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 8707 §2), as `/oauth/*` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OAuthError {
    /// The RFC's error code (`invalid_client`, `invalid_target`, …).
    #[schema(value_type = OAuthErrorCode, inline)]
    pub error: String,
    /// For humans.
    pub error_description: String,
}
