//! `mandate cluster status`'s wire types (`GET /v1/cluster`): the nodes sharing the
//! store, their snapshot and feed, which one leads, and whether the store answers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::formats::{NodeName, Timestamp};

/// The cluster as the answering node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterStatus {
    /// The answering node's name.
    #[schema(value_type = NodeName)]
    pub this_node: String,
    /// The store's kind: `sqlite` (one node) or `postgres` (a cluster).
    pub store: String,
    /// Whether the store answered a round trip just now.
    pub store_reachable: bool,
    /// The node that leads the jobs that run once (approval timeouts, mandate expiry), as
    /// the nodes report it; `null` when no live node reports leading.
    #[schema(value_type = Option<NodeName>, required)]
    pub leader: Option<String>,
    /// Every node with a record in the store, in name order (stopped ones too: a node's
    /// log survives it).
    pub nodes: Vec<ClusterNode>,
}

/// One node, as its last heartbeat reported it (the answering node: as it is now).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterNode {
    /// The node's name (its node id).
    #[schema(value_type = NodeName)]
    pub node: String,
    /// Whether it reported within the last 5 seconds (it heartbeats every second).
    pub alive: bool,
    /// Whether it leads.
    pub leader: bool,
    /// Whether it can decide now: it holds a recent proof that its snapshot is current
    /// (`cluster.max_staleness`) and its last refresh succeeded. A node that cannot
    /// answers decisions with 503 `snapshot_stale`.
    pub deciding: bool,
    /// When it last started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub started_at: Option<String>,
    /// When it last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub last_seen_at: Option<String>,
    /// The change-feed sequence number its snapshot was built from (a node's own count:
    /// compare a node with itself over time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub snapshot_seq: Option<u64>,
    /// How old its proof that the snapshot is current is, in milliseconds (0 on a single
    /// node, which needs none; absent: it has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub snapshot_age_ms: Option<u64>,
    /// How long its last feed heartbeat took to come back through PostgreSQL, in
    /// milliseconds: the least delay with which other nodes' changes reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub feed_lag_ms: Option<u64>,
}
