//! The values the repositories take and return that are not domain types of their own:
//! list filters, stored rows of the audit log, policy versions, anomalies, secrets and
//! signing keys (and a new one with its sealed private half), and a credential with its
//! check material.

use mandate_core::agent::AgentStatus;
use mandate_core::credential::Credential;
use mandate_core::id::{AgentId, AnomalyId};
use mandate_core::mandate::MandateStatus;
use mandate_core::time::Timestamp;

/// One audit event as stored: its canonical body and leaf hash, plus columns to filter on.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// Position in this node's log (0-based, contiguous).
    pub seq: u64,
    /// When it happened.
    pub time: Timestamp,
    /// Event kind (`decision`, `token.issued`, …).
    pub kind: String,
    /// Agent concerned, if any.
    pub agent: Option<String>,
    /// User concerned, if any.
    pub user: Option<String>,
    /// `allow`/`deny` for decisions.
    pub decision: Option<String>,
    /// The canonical JSON the leaf hash commits to.
    pub body: String,
    /// `SHA-256(0x00 ‖ body)`.
    pub leaf: [u8; 32],
}

/// An event's filter columns as stored beside its body (what [`AuditFilter`] and
/// `count_audit` read). The leaf hash covers only the body, so a reader that trusts the
/// body must check these against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditColumns {
    /// `seq`.
    pub seq: u64,
    /// `time`, in seconds.
    pub time: i64,
    /// `kind`.
    pub kind: String,
    /// `agent`.
    pub agent: Option<String>,
    /// `user`.
    pub user: Option<String>,
    /// `decision`.
    pub decision: Option<String>,
}

/// Filters for reading the audit log; `None` matches everything.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    /// Agent id.
    pub agent: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Event kind.
    pub kind: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    /// At or after this time.
    pub since: Option<Timestamp>,
    /// Before this time.
    pub until: Option<Timestamp>,
}

/// A stored signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    /// Log size it covers.
    pub size: u64,
    /// When it was made.
    pub time: Timestamp,
    /// Merkle root over the first `size` events.
    pub root: [u8; 32],
    /// The signed note text.
    pub text: String,
}

/// Where one export sink is in one node's audit log (see [`crate::ExportRepo`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportCursorRow {
    /// The sink's configured name.
    pub sink: String,
    /// The node whose log it reads.
    pub node: String,
    /// How many of that log's events, from seq 0, the sink's receiver accepted: the seq of
    /// the next event to send.
    pub next: u64,
    /// When it last moved.
    pub updated_at: Timestamp,
}

/// One Shared Signals stream a receiver made (issue 23, [`crate::SsfStreamRepo`]): its
/// id, its status and its configuration as the service writes it (JSON, kept byte for
/// byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsfStreamRow {
    /// The stream id.
    pub id: String,
    /// `enabled`, `paused` or `disabled`.
    pub status: String,
    /// The configuration, JSON (the service's shape; the store does not read it).
    pub config: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed (configuration, status or subjects).
    pub updated_at: Timestamp,
}

/// A node with a log in the store (see [`crate::NodeRepo::nodes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// Its name: the node id, which names its audit log.
    pub name: String,
    /// Base64 of the Ed25519 key that verifies its checkpoints, once recorded.
    pub audit_key: Option<String>,
    /// When it last registered (started), where the backend registers nodes.
    pub started_at: Option<Timestamp>,
    /// When it was last seen alive (registration, then its heartbeat).
    pub last_seen_at: Option<Timestamp>,
    /// Its snapshot's change number at its last heartbeat, once it sends them.
    pub snapshot_seq: Option<u64>,
    /// Its snapshot's age at its last heartbeat, in milliseconds.
    pub snapshot_age_ms: Option<u64>,
    /// Its change feed's lag at its last heartbeat, in milliseconds.
    pub feed_lag_ms: Option<u64>,
    /// Whether it led the cluster's jobs at its last heartbeat.
    pub leader: Option<bool>,
}

/// What a node of a cluster reports of itself every second ([`crate::NodeRepo::report_node`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeReport {
    /// The change-feed sequence number its snapshot was built from (numbers are the
    /// node's own: compare a node's with itself over time, not across nodes).
    pub snapshot_seq: Option<u64>,
    /// How old its proof that the snapshot is current is, in milliseconds (`None`: it has
    /// none: it refuses decisions).
    pub snapshot_age_ms: Option<u64>,
    /// How long its last feed heartbeat took to come back, in milliseconds.
    pub feed_lag_ms: Option<u64>,
    /// Whether it leads the jobs that run on one node at a time.
    pub leader: bool,
}

/// An immutable policy version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersionRow {
    /// 1, 2, 3, …
    pub version: i64,
    /// Cedar policy text.
    pub policies: String,
    /// Operator schema fragments (Cedar schema syntax).
    pub fragments: Vec<String>,
    /// Its Rego part (modules and base data) as JSON, `""` when it has none; the
    /// store keeps it as given.
    pub rego: String,
    /// Free text from whoever added it.
    pub note: String,
    /// When it was added.
    pub created_at: Timestamp,
    /// Which admin token added it.
    pub created_by: String,
}

/// One anomaly as stored. `kind`, `severity`, `response` and `status` are the
/// detector's and the API's names; `details` is a JSON object.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AnomalyRow {
    /// `anm_…`.
    pub id: AnomalyId,
    /// Whose behaviour.
    pub agent: AgentId,
    /// When it was raised.
    pub at: Timestamp,
    /// `new_action`, `rate_spike`, …
    pub kind: String,
    /// What it is about (`resource_type:Db::Customer`, `rate`).
    pub key: String,
    /// 1–100.
    pub score: u8,
    /// `low`, `medium`, `high`, `critical`.
    pub severity: String,
    /// `record`, `alert`, `step_up`, `suspend`.
    pub response: String,
    /// In plain language.
    pub explanation: String,
    /// The numbers behind it.
    pub details: serde_json::Value,
    /// `open`, `acknowledged` or `dismissed`.
    pub status: String,
    /// When a human resolved it.
    pub resolved_at: Option<Timestamp>,
    /// Who (admin token id or user).
    pub resolved_by: Option<String>,
    /// Their comment.
    pub comment: Option<String>,
}

/// Which anomalies to list.
#[derive(Debug, Clone, Default)]
pub struct AnomalyFilter {
    /// Of this agent.
    pub agent: Option<AgentId>,
    /// In this status.
    pub status: Option<String>,
    /// Of this severity.
    pub severity: Option<String>,
    /// Of this kind.
    pub kind: Option<String>,
}

/// Filters for listing mandates; `None` matches everything.
#[derive(Debug, Default, Clone)]
pub struct MandateFilter {
    /// The agent holding it.
    pub agent: Option<AgentId>,
    /// Its stored status (not [`Mandate::status_at`]: a lapsed row keeps its status until
    /// the sweeper writes the new one).
    pub status: Option<MandateStatus>,
    /// The subject of the user it acts for.
    pub user_sub: Option<String>,
}

/// One stored secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// The name a gateway route's credential refers to it by; unique (the primary key).
    pub name: String,
    /// The AEAD nonce.
    pub nonce: Vec<u8>,
    /// The ciphertext (with its tag).
    pub ciphertext: Vec<u8>,
    /// First stored.
    pub created_at: Timestamp,
    /// Last replaced.
    pub updated_at: Timestamp,
}

/// Filters for listing agents; `None` matches everything.
#[derive(Debug, Default, Clone)]
pub struct AgentFilter {
    /// Exact owner.
    pub owner: Option<String>,
    /// Exact status.
    pub status: Option<AgentStatus>,
    /// Label `key` equal to `value`.
    pub label: Option<(String, String)>,
}

/// A credential with the material needed to check it.
#[derive(Debug, Clone)]
pub struct AuthCredential {
    /// The credential's metadata.
    pub credential: Credential,
    /// For client secrets: the Argon2id PHC string.
    pub secret_hash: Option<String>,
}

/// A signing key's public record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// The 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stopped signing; `None` for the current key.
    pub retired_at: Option<Timestamp>,
    /// Until when its public key stays published.
    pub publish_until: Option<Timestamp>,
}

/// A new signing key, as [`crate::SigningKeyRepo::add_signing_key`] records it.
#[derive(Clone, Copy)]
pub struct NewSigningKey<'a> {
    /// RFC 7638 thumbprint.
    pub kid: &'a str,
    /// The 32-byte Ed25519 public key.
    pub public_key: &'a [u8],
    /// The private half, sealed under the store key (nonce and ciphertext; the store
    /// never sees it in clear).
    pub sealed_private: &'a [u8],
}

impl std::fmt::Debug for NewSigningKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// An access review campaign (issue 24): its window and scope as the service writes them
/// (`spec`, JSON the store does not read), its deadline, and when it completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRow {
    /// The campaign id (`rev_…`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Scope and window, JSON (the service's shape).
    pub spec: String,
    /// When its pending items become overdue.
    pub due: Timestamp,
    /// Who started it (an actor name).
    pub created_by: String,
    /// When it was started.
    pub created_at: Timestamp,
    /// When its last pending item was decided (`None`: open).
    pub completed_at: Option<Timestamp>,
}

/// One agent of an access review campaign: what was found for it, and what its
/// reviewer decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItemRow {
    /// The campaign.
    pub review: String,
    /// The agent's id.
    pub agent: String,
    /// The agent's owner when the campaign started.
    pub owner: String,
    /// `pending`, `certified`, `narrowed` or `decommissioned`.
    pub state: String,
    /// Grants beside their use and the suggestion, JSON (the service's shape).
    pub findings: String,
    /// Who decided it (an actor name).
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// What was decided, JSON (the service's shape: the boundary applied, a comment).
    pub decision: Option<String>,
    /// When it was escalated for being overdue (once at most).
    pub escalated_at: Option<Timestamp>,
}
