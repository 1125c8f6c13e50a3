//! Admin tokens and signing keys (`/v1/admin-tokens…`, `/v1/keys…`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Role;
use crate::formats::{self, AdminTokenId, Timestamp};

/// An admin token's record; the token itself is stored only as a digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdminToken {
    /// `adm_…`, the token's public handle.
    #[schema(value_type = AdminTokenId)]
    pub id: String,
    /// For humans.
    pub name: String,
    /// What it may do.
    #[schema(value_type = formats::Role)]
    pub role: Role,
    /// True for the token created (or supplied) at first start.
    pub bootstrap: bool,
    /// RFC 3339.
    #[schema(value_type = Timestamp)]
    pub created_at: String,
    /// When it was revoked; absent while it works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub revoked_at: Option<String>,
}

/// `POST /v1/admin-tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
// The server reads this type: an unknown member is a 400 `unknown_field`.
#[serde(deny_unknown_fields)]
pub struct NewAdminToken {
    /// For humans (`ci-deployer`). 1–64 bytes (UTF-8), no control characters.
    #[schema(
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$",
        min_length = 1,
        max_length = 64
    )]
    pub name: String,
    /// What it may do.
    #[schema(value_type = formats::Role)]
    pub role: Role,
}

impl From<&mandate_core::admin::AdminToken> for AdminToken {
    /// The stored record as the server shows it.
    fn from(t: &mandate_core::admin::AdminToken) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name.clone(),
            role: t.role,
            bootstrap: t.bootstrap,
            created_at: t.created_at.to_string(),
            revoked_at: t.revoked_at.map(|at| at.to_string()),
        }
    }
}

/// The answer to creating an admin token: the only place the token is ever shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdminTokenCreated {
    /// Its record.
    pub admin_token: AdminToken,
    /// The token (`mat_…`).
    pub token: String,
}

/// A published token-signing key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SigningKey {
    /// RFC 7638 thumbprint of the Ed25519 public key.
    pub kid: String,
    /// RFC 3339.
    #[schema(value_type = Timestamp)]
    pub created_at: String,
    /// Whether this key signs new tokens.
    pub current: bool,
    /// When it stopped signing; `null` for the current key.
    #[schema(value_type = Option<Timestamp>, required)]
    pub retired_at: Option<String>,
    /// Until when its public key stays in the JWKS; `null` for the current key.
    #[schema(value_type = Option<Timestamp>, required)]
    pub published_until: Option<String>,
}

/// The answer to `POST /v1/keys/rotate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyRotated {
    /// The key that signs from now on.
    pub kid: String,
    /// The key it replaced.
    pub retired_kid: String,
    /// Until when the replaced key stays published.
    pub retired_published_until: String,
}
