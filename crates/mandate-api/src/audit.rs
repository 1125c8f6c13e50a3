//! The audit log's wire types (`/v1/audit…`): events, pages of them, and the latest
//! signed checkpoint.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::formats::{AuditDecision, Base64Hash, NodeName, SignedCheckpoint, Timestamp, TraceId};

/// One thing that happened on this node, as the log commits to it. Its Merkle leaf is
/// `SHA-256(0x00 ‖ RFC 8785 canonical JSON of this object)`. Optional members that
/// have no value are omitted (never `null`), as are empty `policy_ids` and
/// `reasons`.
///
/// Kinds: `decision` (`/v1/authorize`; with `action`, `resource`, `context`,
/// `decision`, `reasons`, `policy_ids`, `request_id`, and `details.token_id` /
/// `details.policy_version`); `token.issued`, `token.refused`, `token.revoked`;
/// `agent.registered`, `agent.updated`, `agent.suspended`, `agent.resumed`,
/// `agent.decommissioned`; `credential.added`, `credential.rotated`,
/// `credential.revoked`; `admin_token.created`, `admin_token.revoked`;
/// `keys.rotated`; `policy.added`, `policy.activated`, `policy.rolled_back`;
/// `mandate.requested`, `mandate.refused`, `mandate.approved`, `mandate.denied`,
/// `mandate.approval_timed_out`, `mandate.completed`, `mandate.revoked`,
/// `mandate.expired` (with `user` the human's `sub` and `details.mandate`);
/// `incident.contained` (`details.incident`, `details.evidence_sha256`, …);
/// `dev.user_token_issued`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// Position in this node's log, from 0.
    #[schema(minimum = 0)]
    pub seq: u64,
    /// RFC 3339.
    #[schema(value_type = Timestamp)]
    pub time: String,
    /// The node whose log this is.
    #[schema(value_type = NodeName)]
    pub node: String,
    /// `decision`, `token.issued`, `agent.suspended`, …
    pub kind: String,
    /// The request it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub request_id: Option<String>,
    /// The W3C trace of the request it belongs to: the trace id of the caller's valid
    /// `traceparent`, or of the trace Mandate started for it (decisions of
    /// `/v1/authorize`, AuthZEN and the gateways).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = TraceId)]
    pub trace_id: Option<String>,
    /// The agent concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub agent: Option<String>,
    /// The user on whose behalf the agent acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub user: Option<String>,
    /// The admin token id (`adm_…`) that did it, for admin actions and for decisions asked
    /// by an enforcement point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub actor: Option<String>,
    /// The action asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub action: Option<String>,
    /// The resource acted on; for decisions `{"type": …, "id": …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub resource: Option<Value>,
    /// The request context after redaction: a top-level field may be replaced by
    /// `"[dropped]"` or by `"hmac-sha256:<hex>"` (a keyed hash; by default for
    /// `prompt` and `tool_arguments`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub context: Option<Value>,
    /// `allow` or `deny`, for decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = AuditDecision, inline)]
    pub decision: Option<String>,
    /// The policies that decided.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(min_items = 1)]
    pub policy_ids: Vec<String>,
    /// The reason code, then details.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(min_items = 1)]
    pub reasons: Vec<String>,
    /// Anything else worth keeping (any JSON value but `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Value)]
    pub details: Option<Value>,
}

/// A page of audit events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The events of this page, in `seq` order.
    pub items: Vec<AuditEvent>,
    /// The `cursor` of the next page; `None` when this page is not full.
    #[schema(required)]
    pub next_cursor: Option<u64>,
}

/// The newest signed checkpoint and the key that verifies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LatestCheckpoint {
    /// The node.
    #[schema(value_type = NodeName)]
    pub node: String,
    /// This node's Ed25519 audit public key (32 bytes), standard base64.
    #[schema(pattern = "^[A-Za-z0-9+/]{43}=$")]
    pub public_key: String,
    /// How many events the checkpoint covers (0 before the first).
    #[schema(minimum = 0)]
    pub size: u64,
    /// The Merkle root, base64; absent before the first checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Base64Hash)]
    pub root: Option<String>,
    /// When it was signed; absent before the first checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub time: Option<String>,
    /// The signed checkpoint; `null` (and no `root` or `time`) before the first one.
    #[schema(value_type = Option<SignedCheckpoint>, required)]
    pub checkpoint: Option<String>,
}

/// The nodes whose audit logs this store holds, each with the key that verifies its log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditNodes {
    /// The answering node's name.
    #[schema(value_type = NodeName)]
    pub this_node: String,
    /// Every node with a log, in name order (one on SQLite; every node that registered
    /// on PostgreSQL, running or not: a node's log survives it).
    pub nodes: Vec<AuditNode>,
}

/// One node's audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditNode {
    /// The node's name (its node id), which its events and checkpoints carry.
    #[schema(value_type = NodeName)]
    pub node: String,
    /// Its Ed25519 audit public key (32 bytes), standard base64; `null` for a node that
    /// never recorded one (a single node's log from before schema 2, until it restarts).
    #[schema(pattern = "^[A-Za-z0-9+/]{43}=$", required)]
    pub public_key: Option<String>,
    /// When it last started (PostgreSQL only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub started_at: Option<String>,
    /// When it was last seen alive (PostgreSQL only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub last_seen_at: Option<String>,
}

/// An RFC 9162 §2.1.3 inclusion proof of one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    /// The event's `seq`.
    #[schema(minimum = 0)]
    pub seq: u64,
    /// The tree size the proof is for.
    #[schema(minimum = 1)]
    pub size: u64,
    /// The event's leaf hash.
    #[schema(value_type = Base64Hash)]
    pub leaf_hash: String,
    /// The root of the tree of `size` events.
    #[schema(value_type = Base64Hash)]
    pub root: String,
    /// The audit path, leaf to root.
    #[schema(value_type = Vec<Base64Hash>)]
    pub proof: Vec<String>,
}

/// An RFC 9162 §2.1.4 consistency proof between two tree sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyProof {
    /// The earlier tree size.
    #[schema(minimum = 1)]
    pub from: u64,
    /// The later tree size.
    #[schema(minimum = 1)]
    pub to: u64,
    /// The root of the earlier tree.
    #[schema(value_type = Base64Hash)]
    pub from_root: String,
    /// The root of the later tree.
    #[schema(value_type = Base64Hash)]
    pub to_root: String,
    /// Empty when `from` equals `to`.
    #[schema(value_type = Vec<Base64Hash>)]
    pub proof: Vec<String>,
}

/// One line of `GET /v1/audit/export`, written as RFC 8785 canonical JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ExportRecord {
    /// An event, in `seq` order.
    Event {
        /// The event.
        event: Box<AuditEvent>,
    },
    /// A stored checkpoint, right after the event that completed it.
    Checkpoint {
        /// The signed note.
        #[schema(value_type = SignedCheckpoint)]
        checkpoint: String,
    },
}
