//! Admin tokens and their roles: who may call the `/v1/*` admin API, and for what.

use serde::{Deserialize, Serialize};

use crate::id::AdminTokenId;
use crate::time::Timestamp;

/// What an admin token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including creating other admin tokens.
    Admin,
    /// Read-only: list and show, introspect tokens.
    Auditor,
    /// Decides approval requests (their API arrives with mandates); reads like an auditor.
    Approver,
    /// An enforcement point: may call `/v1/authorize` naming the principal (or passing the
    /// agent's token) and introspect tokens, and nothing else.
    Service,
}

impl Role {
    /// The role as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Auditor => "auditor",
            Self::Approver => "approver",
            Self::Service => "service",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "auditor" => Some(Self::Auditor),
            "approver" => Some(Self::Approver),
            "service" => Some(Self::Service),
            _ => None,
        }
    }

    /// Whether this role may change state through the admin API.
    pub fn can_write(self) -> bool {
        self == Self::Admin
    }
}

/// An admin token's record (the secret itself is stored only as a hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminToken {
    /// `adm_…`.
    pub id: AdminTokenId,
    /// A name for humans (`ci-deployer`, `soc-readonly`).
    pub name: String,
    /// What the token may do on the admin API.
    pub role: Role,
    /// True for the bootstrap token created at first start.
    pub bootstrap: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}
