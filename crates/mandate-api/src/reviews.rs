//! Access review campaigns (issue 24, item 3): start one over a scope of agents, read
//! each agent's grants beside what it used in the window with the least-privilege
//! boundary suggested, and decide each item (certify, narrow, decommission).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::formats::{AgentId, Owner, Timestamp};
use crate::{Boundary, Grant};

/// `POST /v1/reviews`: a campaign to start. Agents in scope are those not
/// decommissioned that match every criterion given (none given: every agent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    /// Its name, at most 500 printable characters (default `access review <date>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Agents of this owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Owner>)]
    pub owner: Option<String>,
    /// Only these agents (each registered), at most 1000.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<AgentId>, max_items = 1000)]
    pub agents: Vec<String>,
    /// Agents whose labels match this selector: `key=value`, `key!=value`, `key`,
    /// `!key`, joined by `,` (all must hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The start of the usage window (default: 30 days back, at most 366); the window
    /// ends when the campaign starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Timestamp>)]
    pub since: Option<String>,
    /// When pending items become overdue (after now): they are escalated then, and
    /// with `reviews.suspend_overdue` their agents suspended.
    #[schema(value_type = Timestamp)]
    pub due: String,
}

/// How many items of a campaign are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReviewCounts {
    /// Items (agents in scope).
    pub items: u64,
    /// Waiting for a reviewer.
    pub pending: u64,
    /// Kept as they are.
    pub certified: u64,
    /// Boundaries narrowed.
    pub narrowed: u64,
    /// Agents decommissioned.
    pub decommissioned: u64,
    /// Escalated as overdue (in any state).
    pub escalated: u64,
}

/// A campaign, without its items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewSummary {
    /// `rev_…`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `open` or `completed` (no item pending).
    pub status: String,
    /// The owner criterion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Owner>)]
    pub owner: Option<String>,
    /// The explicit agents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<AgentId>)]
    pub agents: Vec<String>,
    /// The label selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The usage window's start.
    #[schema(value_type = Timestamp)]
    pub since: String,
    /// The usage window's end (when it started).
    #[schema(value_type = Timestamp)]
    pub until: String,
    /// Allow decisions of this node read in the window (of any agent).
    pub decisions_read: u64,
    /// When pending items become overdue.
    #[schema(value_type = Timestamp)]
    pub due: String,
    /// Who started it (an admin token id).
    pub created_by: String,
    /// When.
    #[schema(value_type = Timestamp)]
    pub created_at: String,
    /// When its last pending item was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Timestamp>)]
    pub completed_at: Option<String>,
    /// Items by state.
    pub counts: ReviewCounts,
}

/// A page of campaigns, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewPage {
    /// The campaigns.
    pub items: Vec<ReviewSummary>,
    /// Where the next page starts, when this one was full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One grant of the boundary beside its use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReviewGrant {
    /// Its position in the boundary.
    pub index: u64,
    /// The grant.
    pub grant: Grant,
    /// Allows of the window it covers (counting repeats).
    pub allows: u64,
    /// `used` (kept as it is), `narrowed` (kept, cut to what was used), `unused`
    /// (covered no allow: dropped) or `redundant` (its allows are covered by earlier
    /// grants: dropped).
    pub fate: String,
    /// What it becomes in the suggestion, when kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrowed: Option<Grant>,
}

/// What an agent used in the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReviewUse {
    /// Allows counted for it (as the acting agent or a delegating one).
    pub allows: u64,
    /// Actions used, with counts (at most 1000 listed).
    pub actions: BTreeMap<String, u64>,
    /// Resources (`type/id`) used, with counts (at most 1000 listed).
    pub resources: BTreeMap<String, u64>,
    /// Data classes named, with counts (`[redacted]`: the log holds it redacted).
    pub data_classes: BTreeMap<String, u64>,
    /// Agents it delegated to.
    #[schema(value_type = Vec<AgentId>)]
    pub delegated_to: Vec<String>,
    /// Agents that delegated to it.
    #[schema(value_type = Vec<AgentId>)]
    pub acted_for: Vec<String>,
    /// Whether a list was cut at 1000.
    pub truncated: bool,
}

/// One agent of a campaign: its grants beside its use, the suggestion, and the
/// reviewer's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewItem {
    /// The agent.
    #[schema(value_type = AgentId)]
    pub agent: String,
    /// Its name when the campaign started.
    pub name: String,
    /// Its owner then.
    #[schema(value_type = Owner)]
    pub owner: String,
    /// Its labels then.
    pub labels: BTreeMap<String, String>,
    /// `pending`, `certified`, `narrowed` or `decommissioned`.
    pub state: String,
    /// Its boundary then.
    pub boundary: Boundary,
    /// Each grant beside its use.
    pub grants: Vec<ReviewGrant>,
    /// What it used.
    pub used: ReviewUse,
    /// Allows of the window its boundary no longer covers.
    pub uncovered: u64,
    /// Delegates it never delegated to in the window.
    #[schema(value_type = Vec<AgentId>)]
    pub unused_delegates: Vec<String>,
    /// The least-privilege boundary suggested: its grants cut to what was used.
    pub suggested: Boundary,
    /// Whether the suggestion is the boundary unchanged.
    pub unchanged: bool,
    /// Who decided it (an admin token id or `user:<sub>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// `approver` or `owner`: why they could.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_as: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Timestamp>)]
    pub decided_at: Option<String>,
    /// The reviewer's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The boundary a `narrowed` item applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_boundary: Option<Boundary>,
    /// When it was escalated as overdue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Timestamp>)]
    pub escalated_at: Option<String>,
}

/// A campaign with its items, in agent id order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Review {
    /// The campaign.
    pub review: ReviewSummary,
    /// Its items.
    pub items: Vec<ReviewItem>,
}

/// `POST /v1/reviews/{id}/items/{agent}/{certify,narrow,decommission}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewDecision {
    /// Why, at most 500 printable characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `narrow` only: the boundary to apply, within the agent's current one (default:
    /// the item's suggestion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary: Option<Boundary>,
}

/// What a decision did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewDecided {
    /// The item after it.
    pub item: ReviewItem,
    /// Whether it was the campaign's last pending item.
    pub review_completed: bool,
}
