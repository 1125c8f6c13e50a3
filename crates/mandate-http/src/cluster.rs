//! `GET /v1/cluster`: the cluster's status (`mandate cluster status`), from the node's
//! `cluster::status`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use mandate_api as api;

use crate::Node;
use crate::audit_api::query;
use crate::error::ApiError;
use crate::extract::Admin;

/// `GET /v1/cluster`: every node's last report, this node as it is now, whether the
/// store answers. Any admin token role (it changes nothing).
pub(crate) async fn status(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(q): RawQuery,
) -> Result<Json<api::ClusterStatus>, ApiError> {
    query(q, &[])?;
    let s = crate::blocking(&state, mandate_service::cluster::status).await?;
    Ok(Json(api::ClusterStatus {
        this_node: s.this_node,
        store: s.store,
        store_reachable: s.store_reachable,
        leader: s.leader,
        nodes: s
            .nodes
            .into_iter()
            .map(|n| api::ClusterNode {
                node: n.node,
                alive: n.alive,
                leader: n.leader,
                deciding: n.deciding,
                started_at: n.started_at.map(|t| t.to_string()),
                last_seen_at: n.last_seen_at.map(|t| t.to_string()),
                snapshot_seq: n.snapshot_seq,
                snapshot_age_ms: n.snapshot_age_ms,
                feed_lag_ms: n.feed_lag_ms,
            })
            .collect(),
    }))
}
