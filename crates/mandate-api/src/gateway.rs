//! The HTTP gateway's upstream secrets (`/v1/gateway/secrets…`): names and times only;
//! a value is sent once and never returned.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `PUT /v1/gateway/secrets/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
// The server reads this type: an unknown member is a 400 `unknown_field`.
#[serde(deny_unknown_fields)]
pub struct PutGatewaySecret {
    /// The secret's value (stored encrypted): 1–8192 bytes of printable text, no control
    /// character (it goes into a header).
    #[schema(
        min_length = 1,
        max_length = 8192,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub value: String,
}

/// A stored secret, without its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GatewaySecret {
    /// The name routes use (`credential_secret`).
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}
