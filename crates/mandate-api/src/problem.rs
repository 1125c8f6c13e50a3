//! The error bodies: the admin API's RFC 9457 problem (`application/problem+json`) and
//! the OAuth endpoints' RFC 6749 error, with the stable codes they carry.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::openapi::formats::{OAuthErrorCode};

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
    /// With `invalid_policy` only: every problem found, located.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// `policies`, `schema fragment N` (1-based), `base schema` or `schema`.
    pub source: String,
    /// 1-based line, when Cedar located it.
    #[schema(required, minimum = 1)]
    pub line: Option<u64>,
    /// 1-based column, when Cedar located it.
    #[schema(required, minimum = 1)]
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
}

/// The stable machine codes of problems (`docs/openapi.yaml`, `ErrorCode`). A reason
/// code is the serialisation of a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[expect(
    missing_docs,
    reason = "each code's meaning is tabled in docs/openapi.yaml"
)]
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
    InvalidTransition,
    NothingToRollBack,
    DoesNotCompile,
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
    MandateNotActive,
    ApprovalExpired,
    NotPending,
    DevIssuerDisabled,
    NotOpen,
    Internal,
    BundleUnavailable,
    NotReady,
    AuditUnavailable,
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
