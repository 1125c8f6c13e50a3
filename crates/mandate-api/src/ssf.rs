//! The Shared Signals receiver's wire types (`POST /ssf/events`): its error body, as RFC
//! 8935 §2.3 has it (not a problem document: a transmitter reads `err`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why a pushed SET was refused (RFC 8935 §2.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetError {
    /// `invalid_request`, `invalid_key`, `invalid_issuer`, `invalid_audience` or
    /// `authentication_failed`.
    pub err: String,
    /// Why, for the transmitter's operator; never the token.
    pub description: String,
}

/// The transmitter's metadata (SSF 1.0 §7.1, `/.well-known/ssf-configuration`). Mandate
/// transmits by push only, to receivers its operator configures (`ssf` export sinks):
/// there is no stream management endpoint for receivers to call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SsfConfiguration {
    /// `1_0`.
    pub spec_version: String,
    /// Mandate's issuer URL: the `iss` of its SETs.
    pub issuer: String,
    /// Where the keys that verify its SETs are (the same as its tokens').
    pub jwks_uri: String,
    /// `urn:ietf:rfc:8935` (push).
    pub delivery_methods_supported: Vec<String>,
    /// The subjects a stream gets without asking: `ALL` (every agent).
    pub default_subjects: String,
}
