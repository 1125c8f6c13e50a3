//! The cluster's status (`mandate cluster status`), and each node's heartbeat into it:
//! every second a node of a cluster records in the store when it was last seen, the
//! change number its snapshot was built from, how old its proof of freshness is, its
//! feed's lag and whether it leads ([`report`]); [`status`] reads every node's last
//! report, with the answering node as it is now.

use mandate_store::prelude::*;
use std::time::Duration;

use mandate_core::time::Timestamp;
use mandate_store::{Freshness, NodeReport, NodeRow, StoreError};

use crate::Node;

/// A node that has not reported for this long is not alive (it reports every second).
pub const ALIVE_WITHIN_SECS: i64 = 5;

/// One node as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// Its name (node id).
    pub node: String,
    /// Whether it reported within [`ALIVE_WITHIN_SECS`] (the answering node: yes).
    pub alive: bool,
    /// Whether it leads.
    pub leader: bool,
    /// Whether it can decide now (a recent proof, the last refresh succeeded).
    pub deciding: bool,
    /// When it last started.
    pub started_at: Option<Timestamp>,
    /// When it last reported.
    pub last_seen_at: Option<Timestamp>,
    /// The change number its snapshot was built from.
    pub snapshot_seq: Option<u64>,
    /// How old its proof of freshness is, in milliseconds.
    pub snapshot_age_ms: Option<u64>,
    /// Its feed's lag, in milliseconds.
    pub feed_lag_ms: Option<u64>,
}

/// The cluster as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    /// This node's name.
    pub this_node: String,
    /// `sqlite` or `postgres`.
    pub store: String,
    /// Whether the store answered just now.
    pub store_reachable: bool,
    /// The live node that reports leading, if any.
    pub leader: Option<String>,
    /// Every node, in name order.
    pub nodes: Vec<NodeStatus>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Node {
    /// What this node would report now.
    fn own_report(&self) -> NodeReport {
        let fresh = !self.is_stale();
        NodeReport {
            snapshot_seq: self.snapshot.built_from(),
            snapshot_age_ms: if self.proof.is_local() {
                fresh.then_some(0)
            } else {
                self.proof_age().filter(|_| fresh).map(millis)
            },
            feed_lag_ms: match self.db.freshness() {
                Freshness::Proven { lag, .. } => Some(millis(lag)),
                Freshness::Local => Some(0),
                Freshness::Unproven => None,
            },
            leader: self.leads(),
        }
    }
}

/// Records this node's heartbeat in the store (a single node's store records nothing).
/// Blocking.
pub fn report(node: &Node) -> Result<(), StoreError> {
    node.store()
        .report_node(&node.own_report(), node.clock.now())
}

/// The cluster's status: every node's last report, this node as it is now, whether the
/// store answers. A store that does not answer gives this node alone. Blocking.
pub fn status(node: &Node) -> ClusterStatus {
    let now = node.clock.now();
    let this = node.audit.node().as_str().to_owned();
    let store_reachable = node.ping().is_ok();
    let rows = if store_reachable {
        node.store().nodes().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cluster status: nodes not read");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    let own = node.own_report();
    let started_at = rows
        .iter()
        .find(|r| r.name == this)
        .and_then(|r| r.started_at);
    let mut nodes: Vec<NodeStatus> = rows
        .into_iter()
        .filter(|r| r.name != this)
        .map(|r: NodeRow| {
            let alive = r
                .last_seen_at
                .is_some_and(|t| now.secs() - t.secs() <= ALIVE_WITHIN_SECS);
            NodeStatus {
                alive,
                leader: alive && r.leader.unwrap_or(false),
                deciding: alive && r.snapshot_age_ms.is_some(),
                node: r.name,
                started_at: r.started_at,
                last_seen_at: r.last_seen_at,
                snapshot_seq: r.snapshot_seq,
                snapshot_age_ms: r.snapshot_age_ms,
                feed_lag_ms: r.feed_lag_ms,
            }
        })
        .collect();
    nodes.push(NodeStatus {
        node: this.clone(),
        alive: true,
        leader: own.leader,
        deciding: !node.is_stale(),
        started_at,
        last_seen_at: Some(now),
        snapshot_seq: own.snapshot_seq,
        snapshot_age_ms: own.snapshot_age_ms,
        feed_lag_ms: own.feed_lag_ms,
    });
    nodes.sort_by(|a, b| a.node.cmp(&b.node));
    let leader = nodes.iter().find(|n| n.leader).map(|n| n.node.clone());
    let store = node
        .db
        .describe()
        .split(' ')
        .next()
        .unwrap_or("unknown")
        .to_owned();
    ClusterStatus {
        this_node: this,
        store,
        store_reachable,
        leader,
        nodes,
    }
}

/// The names of every node's audit log on `store`, sorted: `me`'s, and on a store a
/// cluster shares every other registered node's (a single node's store lists only its
/// own). What reads "the whole log" of a cluster (replay with `all_nodes`, access
/// reviews) walks, each through `AuditRepo::list_audit_of`.
pub fn logs(store: &dyn Store, me: &str) -> Result<Vec<String>, StoreError> {
    let mut names: Vec<String> = store.nodes()?.into_iter().map(|n| n.name).collect();
    if !names.iter().any(|n| n == me) {
        names.push(me.to_owned());
    }
    names.sort();
    Ok(names)
}
