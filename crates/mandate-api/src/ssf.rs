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
