//! The `governance` operations: the inventory of agents and their findings (issue 24).
//! One marker function per operation carries its `#[utoipa::path]`; its doc comment names
//! the mandate-http handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::formats::{AgentId, AgentStatus, FindingCode, LabelSelector};
use crate::responses::*;
use crate::*;

/// The contract of `GET /v1/inventory`, served by mandate-http's handler `inventory::list`.
#[utoipa::path(
    get,
    path = "/v1/inventory",
    tag = "governance",
    operation_id = "getInventory",
    summary = "Every agent with its facts and findings",
    description = r#"Every registered agent with its owner, purpose, labels, status, boundary size,
credentials (kind, age, last use), live mandates, last activity, open anomalies and risk
(the highest score of its open anomalies), and its findings: stable codes for what needs
a human (`owner_missing`, `owner_unknown`, `dormant`, `credential_stale`,
`credential_never_rotated`, `boundary_wildcard`, `boundary_wider_than_use`, `dead`,
`unconditional_permit`). `findings` at the top counts every agent's codes before the
filters. A read: nothing is recorded. Any admin-API role but `service` may read it.

Last activity and last use are kept by each node in memory and written every 5 s, so they
may lag by that much; before this release nothing was kept, so older agents show `null`
until they act again."#,
    params(InventoryQuery),
    responses(
        (status = 200, description = "A page of rows, in agent id order.", body = Inventory, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 500, response = Internal),
        (status = 503, description = "`snapshot_stale`: the node's snapshot could not be refreshed.", body = Problem, content_type = "application/problem+json")
    )
)]
pub fn get_inventory() {}

/// The query of `get_inventory`.
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InventoryQuery {
    /// Only this owner's agents (exact).
    pub owner: Option<String>,
    /// Only agents in this status.
    #[param(value_type = Option<AgentStatus>)]
    pub status: Option<String>,
    /// Only agents with a finding of this code.
    #[param(value_type = Option<FindingCode>)]
    pub finding: Option<String>,
    /// Only agents whose labels match this selector (`key=value`, `key!=value`, `key`,
    /// `!key`, joined by `,`).
    #[param(value_type = Option<LabelSelector>)]
    pub selector: Option<String>,
    /// Days without a decision before an active agent is `dormant`.
    #[param(minimum = 1, maximum = 3650, default = 30)]
    pub dormant_days: Option<u32>,
    /// Days a usable credential may go unused before it is `credential_stale`.
    #[param(minimum = 1, maximum = 3650, default = 30)]
    pub credential_unused_days: Option<u32>,
    /// Days before a usable credential is `credential_never_rotated`.
    #[param(minimum = 1, maximum = 3650, default = 90)]
    pub credential_rotation_days: Option<u32>,
    /// The last agent id of the previous page.
    #[param(value_type = Option<AgentId>)]
    pub after: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 100000, default = 10000)]
    pub limit: Option<u64>,
}
