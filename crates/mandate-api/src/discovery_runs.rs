//! Discovery runs (`POST /v1/discovery/runs`): what a run found, reconciled with the
//! registered agents, and the drafts it registered. The request body is the discovery
//! tool's own JSON output (`kubectl … -o json`, a cloud CLI's), not a type of this crate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AgentStatus;

/// One workload discovery found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiscoveredItem {
    /// `kubernetes`, `aws`, `azure` or `gcp`.
    pub source: String,
    /// The namespace, AWS account, Azure subscription or GCP project (empty when the
    /// source does not say).
    pub scope: String,
    /// What it is (`Pod`, `ServiceAccount`, `lambda:function`, an Azure `type`, a GCP
    /// `assetType`).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The source's unique id (Kubernetes uid, ARN, Azure resource id, GCP resource name).
    pub uid: String,
    /// Its region, location or zone, when the source names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Its labels (Kubernetes) or tags (clouds).
    pub labels: BTreeMap<String, String>,
    /// The accountable owner it names (`mandate.dev/owner`, `mandate-owner`, `owner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The agent it says it is (`mandate.dev/agent-id`, `mandate-agent-id`), as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

/// An item linked to a registered agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiscoveryMatch {
    /// The agent's id.
    #[schema(value_type = crate::formats::AgentId)]
    pub agent: String,
    /// The agent's status.
    #[schema(value_type = crate::formats::AgentStatus)]
    pub status: AgentStatus,
    /// `link` (the item names the agent's id) or `labels` (the agent's
    /// `mandate.dev/source`, `mandate.dev/name` and `mandate.dev/scope` labels name it).
    pub rule: String,
    /// The item.
    pub item: DiscoveredItem,
}

/// An item no agent accounts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiscoveryShadow {
    /// `unregistered`, `unknown_agent` (its link names no agent), `invalid_link` (not an
    /// agent id) or `ambiguous` (several agents' labels name it).
    pub reason: String,
    /// The item.
    pub item: DiscoveredItem,
}

/// A registered agent that says it runs where this run looked, and was not found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiscoveryGhost {
    /// The agent's id.
    #[schema(value_type = crate::formats::AgentId)]
    pub agent: String,
    /// Its name.
    pub name: String,
    /// Its status.
    #[schema(value_type = crate::formats::AgentStatus)]
    pub status: AgentStatus,
    /// Its `mandate.dev/source` label.
    pub source: String,
}

/// A draft the run registered (suspended, no grants).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiscoveryRegistered {
    /// The new agent's id.
    #[schema(value_type = crate::formats::AgentId)]
    pub agent: String,
    /// Its name.
    pub name: String,
    /// The uid of the item it was registered for.
    pub uid: String,
}

/// An unregistered shadow the run did not register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiscoveryNotRegistered {
    /// The item's uid.
    pub uid: String,
    /// `no_owner`, `invalid_owner`, `name_too_long`, `duplicate`, `name_taken` or `limit`.
    pub reason: String,
}

/// The counts of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiscoveryCounts {
    /// Items the selector kept.
    pub found: usize,
    /// Of them, linked to an agent.
    pub matched: usize,
    /// Of them, accounted for by no agent.
    pub shadows: usize,
    /// Agents not found.
    pub ghosts: usize,
    /// Drafts registered.
    pub registered: usize,
    /// Unregistered shadows not registered (when registering).
    pub not_registered: usize,
}

/// What a discovery run found and did (recorded as one `discovery.run` audit event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiscoveryRun {
    /// The source read.
    pub source: String,
    /// The selector applied (empty: every item).
    pub selector: String,
    /// Whether unregistered shadows were registered as drafts.
    pub register: bool,
    /// The counts.
    pub counts: DiscoveryCounts,
    /// Items linked to agents, by agent id then item.
    pub matched: Vec<DiscoveryMatch>,
    /// Items no agent accounts for, by item (as before any registration).
    pub shadows: Vec<DiscoveryShadow>,
    /// Agents not found, by id.
    pub ghosts: Vec<DiscoveryGhost>,
    /// Drafts registered by this run.
    pub registered: Vec<DiscoveryRegistered>,
    /// Unregistered shadows left so.
    pub not_registered: Vec<DiscoveryNotRegistered>,
}
