//! The contract of `GET /v1/cluster` (`mandate cluster status`).

use crate::cluster::ClusterStatus;
use crate::responses::*;

/// The contract of `GET /v1/cluster`, served by mandate-http's handler `cluster::status`.
#[utoipa::path(
    get,
    path = "/v1/cluster",
    tag = "cluster",
    operation_id = "getClusterStatus",
    summary = "The nodes sharing the store: their snapshot, feed lag, which leads",
    description = r#"What `mandate cluster status` prints. Every node of a cluster reports itself to
the store every second (last seen, its snapshot's change number and the age of its
proof that the snapshot is current, its feed's lag, whether it leads); the answering
node adds itself as it is now and whether the store answers. On a single node (SQLite)
the answer lists that node alone. Any admin token role may read it. No query
parameters."#,
    responses(
        (status = 200, description = "The cluster.", body = ClusterStatus, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 500, response = Internal)
    )
)]
pub fn get_cluster_status() {}
