//! The kill switch's levers (`/v1/agents/{id}/contain`, `/v1/tokens/{jti}/revoke`) and
//! the incident bundle a containment answers with.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Agent, AuditEvent, Mandate};

/// `POST /v1/agents/{id}/contain`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContainAgent {
    /// Recorded, and stored as the agent's `status_reason` when this suspends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How many of the agent's most recent audit events the bundle holds (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u32>,
}

impl ContainAgent {
    /// Whether there is nothing to send (the call then has no body).
    pub fn is_empty(&self) -> bool {
        self.reason.is_none() && self.events.is_none()
    }
}

/// An incident bundle (`mandate-incident/v1`). It verifies only as the exact bytes the
/// server wrote (RFC 8785 canonical JSON), so whoever keeps one keeps those bytes; this
/// type is for reading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentBundle {
    /// `mandate-incident/v1`.
    pub bundle: String,
    /// `inc_…`.
    pub incident: String,
    /// The node.
    pub node: String,
    /// The contained agent.
    pub agent: String,
    /// RFC 3339.
    pub created: String,
    /// What the node knew when it contained the agent.
    pub evidence: Evidence,
    /// The signed checkpoint the events are proved against.
    pub checkpoint: String,
    /// The agent's events, oldest first.
    pub events: Vec<BundleEvent>,
}

/// What a node knew when it contained an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Evidence {
    /// The agent after the change.
    pub agent: Agent,
    /// Its status before.
    pub previous_status: String,
    /// Tokens issued up to this time are dead (RFC 3339).
    pub cutoff: String,
    /// The mandates revoked, after the change.
    pub mandates: Vec<Mandate>,
    /// The active policy version, or `None` when none was active.
    pub policies: Option<EvidencePolicies>,
    /// Why.
    pub reason: Option<String>,
}

/// The active policy version as kept in an incident's evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvidencePolicies {
    /// Its number.
    pub version: i64,
    /// The Cedar policy text.
    pub policies: String,
    /// Its schema fragments.
    pub schema_fragments: Vec<String>,
    /// For humans.
    pub note: String,
    /// RFC 3339.
    pub created_at: String,
    /// The admin token that added it.
    pub created_by: String,
}

/// One event of a bundle with its inclusion proof.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BundleEvent {
    /// The event's `seq`.
    pub seq: u64,
    /// The event.
    pub event: AuditEvent,
    /// Its inclusion proof in the checkpoint's tree, leaf to root (base64 hashes).
    pub proof: Vec<String>,
}

/// `POST /v1/tokens/{jti}/revoke`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RevokeTokenById {
    /// Recorded in the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to revoking a token by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenRevoked {
    /// The token's `jti`.
    pub jti: String,
    /// Always `true`.
    pub revoked: bool,
    /// When the revocation entry may be dropped (RFC 3339).
    pub until: String,
}
