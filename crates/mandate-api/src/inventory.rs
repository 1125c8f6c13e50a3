//! The inventory's wire types (`GET /v1/inventory`, issue 24): every agent with the
//! facts a reviewer needs and the findings that need a human.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::formats::{
    AgentId, AgentName, CredentialId, Labels, Owner, Purpose, Severity, Timestamp,
};
use crate::{AgentStatus, CredentialKind};

/// The thresholds the findings were computed with, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryThresholds {
    /// An active agent with no decision for this many days is `dormant`.
    pub dormant_days: u32,
    /// A usable credential unused for this many days is `credential_stale`.
    pub credential_unused_days: u32,
    /// A usable credential older than this many days is `credential_never_rotated`.
    pub credential_rotation_days: u32,
}

/// One finding: what needs a human, as a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryFinding {
    /// `owner_missing`, `owner_unknown`, `dormant`, `credential_stale`,
    /// `credential_never_rotated`, `boundary_wildcard`, `boundary_wider_than_use`,
    /// `dead`, `unconditional_permit` (codes are only ever added).
    pub code: String,
    /// What it is about when not the agent itself: a credential id, `grants[i]`, a
    /// policy id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// For humans: the numbers behind it.
    pub detail: String,
}

/// One credential of an inventory row (no secret, no key material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryCredential {
    /// `crd_…`.
    #[schema(value_type = CredentialId)]
    pub id: String,
    /// `client_secret`, `public_key` or `tls_client_auth`.
    #[serde(rename = "type")]
    #[schema(value_type = crate::formats::CredentialKind)]
    pub kind: CredentialKind,
    /// When it was created.
    #[schema(value_type = Timestamp)]
    pub created_at: String,
    /// Whole days since it was created.
    pub age_days: i64,
    /// Whether it authenticates now (not expired, revoked or past its rotation overlap).
    pub usable: bool,
    /// When it last authenticated (always sent; `null` when never seen to).
    #[schema(value_type = Option<Timestamp>)]
    pub last_used_at: Option<String>,
}

/// One agent's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryRow {
    /// `agt_…`.
    #[schema(value_type = AgentId)]
    pub id: String,
    /// Its unique name.
    #[schema(value_type = AgentName)]
    pub name: String,
    /// The accountable person.
    #[schema(value_type = Owner)]
    pub owner: String,
    /// What it is for.
    #[schema(value_type = Purpose)]
    pub purpose: String,
    /// Its labels.
    #[schema(value_type = Labels)]
    pub labels: BTreeMap<String, String>,
    /// Its lifecycle status.
    #[schema(value_type = crate::formats::AgentStatus)]
    pub status: AgentStatus,
    /// When it was registered.
    #[schema(value_type = Timestamp)]
    pub created_at: String,
    /// How many grants its boundary holds.
    pub boundary_grants: u32,
    /// Its credentials, oldest first.
    pub credentials: Vec<InventoryCredential>,
    /// Its mandates active now.
    pub live_mandates: u32,
    /// Its latest decision (always sent; `null` when none was recorded since Mandate
    /// keeps last activity).
    #[schema(value_type = Option<Timestamp>)]
    pub last_activity: Option<String>,
    /// Its anomalies still open.
    pub open_anomalies: u32,
    /// The highest score of its open anomalies, 0–100 (0: none).
    pub risk: u8,
    /// The band of `risk` (always sent; `null` for 0).
    #[schema(value_type = Option<Severity>)]
    pub risk_level: Option<String>,
    /// What is known of the owner: `unchecked`, or `unknown` when a trusted IdP said
    /// their account was disabled (RISC `account-disabled`).
    pub owner_check: String,
    /// Its findings, sorted by code then subject.
    pub findings: Vec<InventoryFinding>,
}

/// `GET /v1/inventory`: a page of rows, in agent id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Inventory {
    /// When it was computed.
    #[schema(value_type = Timestamp)]
    pub generated_at: String,
    /// The active policy version `dead` and `unconditional_permit` were read from
    /// (always sent; `null` when none is active, and then neither is reported).
    pub policy_version: Option<i64>,
    /// The thresholds used.
    pub thresholds: InventoryThresholds,
    /// Every registered agent, before the query's filters.
    pub agents: u64,
    /// How many agents have each finding code, over every agent (before the filters).
    pub findings: BTreeMap<String, u64>,
    /// The rows of this page that the filters matched.
    pub rows: Vec<InventoryRow>,
    /// The `after` of the next page; `null` when this is the last.
    #[schema(required)]
    pub next: Option<String>,
}
