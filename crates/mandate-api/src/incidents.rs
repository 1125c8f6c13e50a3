//! The kill switch's levers (`/v1/agents/{id}/contain`, `/v1/tokens/{jti}/revoke`) and
//! the incident bundle a containment answers with.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::formats::{
    self, AgentId, Base64Hash, BundleFormat, IncidentId, NodeName, PolicyVersionNumber,
    SignedCheckpoint, Timestamp, TokenId,
};
use crate::{Agent, AuditEvent, Mandate};

/// `POST /v1/agents/{id}/contain`.
// The server reads the body with this type; `expecting` keeps serde's messages as
// they were (see the module documentation of `crate::mandates`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "struct Contain")]
pub struct ContainAgent {
    /// Recorded in `incident.contained` and the evidence, and stored as the agent's
    /// `status_reason` when this suspends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$", max_length = 500)]
    pub reason: Option<String>,
    /// How many of the agent's most recent audit events the bundle holds (default 1000).
    #[serde(
        default,
        deserialize_with = "mandate_core::integer::optional",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 10000, default = 1000)]
    pub events: Option<u32>,
}

impl ContainAgent {
    /// Whether there is nothing to send (the call then has no body).
    pub fn is_empty(&self) -> bool {
        self.reason.is_none() && self.events.is_none()
    }
}

/// Format `mandate-incident/v1` (see `crates/mandate-audit/src/bundle.rs`), always
/// written as RFC 8785 canonical JSON: `mandate audit verify` refuses any other
/// bytes. The checkpoint's signature covers every event through its proof, and the
/// evidence through `evidence_sha256` in the `incident.contained` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentBundle {
    /// `mandate-incident/v1`.
    #[schema(value_type = BundleFormat, inline)]
    pub bundle: String,
    /// `inc_…`.
    #[schema(value_type = IncidentId)]
    pub incident: String,
    /// The node.
    #[schema(value_type = NodeName)]
    pub node: String,
    /// The contained agent.
    #[schema(value_type = AgentId)]
    pub agent: String,
    /// RFC 3339.
    #[schema(value_type = Timestamp)]
    pub created: String,
    /// What the node knew when it contained the agent.
    pub evidence: Evidence,
    /// The signed checkpoint the events are proved against.
    #[schema(value_type = SignedCheckpoint)]
    pub checkpoint: String,
    /// The agent's events, oldest first; seqs strictly increase.
    #[schema(min_items = 1)]
    pub events: Vec<BundleEvent>,
}

/// What a node knew when it contained an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Evidence {
    /// The agent after the change.
    pub agent: Agent,
    /// Its status before.
    #[schema(value_type = formats::AgentStatus)]
    pub previous_status: String,
    /// Tokens issued up to this time are dead (RFC 3339).
    #[schema(value_type = Timestamp)]
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
    #[schema(value_type = PolicyVersionNumber)]
    pub version: i64,
    /// The Cedar policy text.
    pub policies: String,
    /// Its schema fragments.
    pub schema_fragments: Vec<String>,
    /// For humans.
    pub note: String,
    /// RFC 3339.
    #[schema(value_type = Timestamp)]
    pub created_at: String,
    /// The admin token that added it.
    pub created_by: String,
}

/// One event of a bundle with its inclusion proof.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BundleEvent {
    /// The event's `seq`.
    #[schema(minimum = 0)]
    pub seq: u64,
    /// The event.
    pub event: AuditEvent,
    /// Its inclusion proof in the checkpoint's tree, leaf to root (base64 hashes).
    #[schema(value_type = Vec<Base64Hash>)]
    pub proof: Vec<String>,
}

/// `POST /v1/tokens/{jti}/revoke`.
// Read by the server as it is, like `ContainAgent`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "struct RevokeToken")]
pub struct RevokeTokenById {
    /// Recorded in the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$", max_length = 500)]
    pub reason: Option<String>,
}

/// The answer to revoking a token by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenRevoked {
    /// The token's `jti`.
    #[schema(value_type = TokenId)]
    pub jti: String,
    /// Always `true`.
    pub revoked: bool,
    /// When the revocation entry may be dropped (no token outlives it).
    #[schema(value_type = Timestamp)]
    pub until: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request types refuse unknown members, and their messages name the structs the
    /// handler read before.
    #[test]
    fn request_bodies_are_read_as_before() {
        let refusal = |r: Result<ContainAgent, serde_json::Error>| r.unwrap_err().to_string();
        assert_eq!(
            refusal(serde_json::from_str("5")),
            "invalid type: integer `5`, expected struct Contain at line 1 column 1"
        );
        assert!(refusal(serde_json::from_str(r#"{"x": 1}"#)).starts_with("unknown field `x`"));
        let refusal = |r: Result<RevokeTokenById, serde_json::Error>| r.unwrap_err().to_string();
        assert_eq!(
            refusal(serde_json::from_str("5")),
            "invalid type: integer `5`, expected struct RevokeToken at line 1 column 1"
        );
        assert!(refusal(serde_json::from_str(r#"{"x": 1}"#)).starts_with("unknown field `x`"));
    }
}
