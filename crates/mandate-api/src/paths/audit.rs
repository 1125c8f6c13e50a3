//! The `audit` operations: the tamper-evident audit log, its signed checkpoints, proofs and
//! export. One marker function per operation carries its `#[utoipa::path]`; its doc comment
//! names the mandate-http handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::formats::{AuditDecision, Timestamp};
use crate::responses::*;
use crate::*;

/// The contract of `GET /v1/audit/events`, served by mandate-http's handler `audit_api::events`.
#[utoipa::path(
    get,
    path = "/v1/audit/events",
    tag = "audit",
    operation_id = "listAuditEvents",
    summary = "List audit events",
    description = r#"This node's events in `seq` order, filtered by every parameter given (exact
matches on the event's field). Each parameter may appear once; any other
parameter is refused with `invalid_query`. A page of exactly `limit` items
carries a `next_cursor`."#,
    params(ListAuditEventsQuery),
    responses(
        (status = 200, description = "One page of events.", body = AuditPage, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 500, response = Internal)
    )
)]
pub fn list_audit_events() {}

/// The query of `list_audit_events`.
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAuditEventsQuery {
    /// Only events whose `agent` is this agent id.
    pub agent: Option<String>,
    /// Only events whose `user` is this.
    pub user: Option<String>,
    /// Only events of this kind (`decision`, `token.issued`, …).
    #[param(example = "decision")]
    pub kind: Option<String>,
    /// Only decisions with this outcome.
    #[param(value_type = Option<AuditDecision>, inline)]
    pub decision: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[param(value_type = Option<Timestamp>)]
    pub since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[param(value_type = Option<Timestamp>)]
    pub until: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page; lists events with a greater `seq`.
    #[param(minimum = 0)]
    pub cursor: Option<u64>,
}

/// The contract of `GET /v1/audit/events/{seq}/proof`, served by mandate-http's handler `audit_api::inclusion`.
#[utoipa::path(
    get,
    path = "/v1/audit/events/{seq}/proof",
    tag = "audit",
    operation_id = "getInclusionProof",
    summary = "Prove an event is in the log",
    description = r#"An RFC 9162 §2.1.3 inclusion proof (audit path) of event `seq` in the Merkle tree
of the log's first `size` events. Leaves are `SHA-256(0x00 ‖ canonical JSON of the
event)`, interior nodes `SHA-256(0x01 ‖ left ‖ right)`. Without `size`, the tree of
the latest signed checkpoint is used, so the `root` can be checked against that
checkpoint (`GET /v1/audit/checkpoints/latest`)."#,
    params(("seq" = u64, Path, description = "The event's `seq`; anything but a whole number is answered 404 `not_found`.", minimum = 0), GetInclusionProofQuery),
    responses(
        (status = 200, description = "The proof.", body = InclusionProof, content_type = "application/json"),
        (status = 400, description = "`invalid_query`: an unknown or repeated parameter, `size` not a whole number, or `size` over the log's length.", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 404, description = r#"`not_found`: `seq` is not a whole number or not below `size` — including
when no `size` is given and no checkpoint has been signed yet."#, body = Problem, content_type = "application/problem+json"),
        (status = 500, response = Internal)
    )
)]
pub fn get_inclusion_proof() {}

/// The query of `get_inclusion_proof`.
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetInclusionProofQuery {
    /// The tree size to prove against; at most the log's length. Default the latest checkpoint's size.
    #[param(minimum = 1)]
    pub size: Option<u64>,
}

/// The contract of `GET /v1/audit/consistency`, served by mandate-http's handler `audit_api::consistency`.
#[utoipa::path(
    get,
    path = "/v1/audit/consistency",
    tag = "audit",
    operation_id = "getConsistencyProof",
    summary = "Prove the log only grew between two sizes",
    description = r#"An RFC 9162 §2.1.4 consistency proof that the tree of the first `from` events is
a prefix of the tree of the first `to` events: holding a checkpoint of size
`from`, a client checks that the log was only appended to since."#,
    params(GetConsistencyProofQuery),
    responses(
        (status = 200, description = "The proof and both roots.", body = ConsistencyProof, content_type = "application/json"),
        (status = 400, description = r#"`invalid_query`: an unknown or repeated parameter, `from` or `to` missing or
not a whole number, not `0 < from <= to`, or `to` over the log's length."#, body = Problem, content_type = "application/problem+json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 500, response = Internal)
    )
)]
pub fn get_consistency_proof() {}

/// The query of `get_consistency_proof`.
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetConsistencyProofQuery {
    /// The earlier tree size.
    #[param(minimum = 1, required = true)]
    pub from: Option<u64>,
    /// The later tree size; at least `from` and at most the log's length.
    #[param(minimum = 1, required = true)]
    pub to: Option<u64>,
}

/// The contract of `GET /v1/audit/checkpoints/latest`, served by mandate-http's handler `audit_api::latest_checkpoint`.
#[utoipa::path(
    get,
    path = "/v1/audit/checkpoints/latest",
    tag = "audit",
    operation_id = "getLatestCheckpoint",
    summary = "The newest signed checkpoint and the key that verifies it",
    description = r#"Checkpoints are signed every N events or T seconds (when there are new events),
and by `GET /v1/audit/export`."#,
    responses(
        (status = 200, description = "The checkpoint, or `checkpoint` `null` (and `size` 0) before the first one.", body = LatestCheckpoint, content_type = "application/json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 500, response = Internal)
    )
)]
pub fn get_latest_checkpoint() {}

/// The contract of `GET /v1/audit/export`, served by mandate-http's handler `audit_api::export`.
#[utoipa::path(
    get,
    path = "/v1/audit/export",
    tag = "audit",
    operation_id = "exportAuditLog",
    summary = "Export the whole log for offline verification",
    description = r#"Without `node` (or with this node's name): first signs a checkpoint over every
event committed so far (reusing a stored one of that size), then answers the log
up to it as JSON Lines — the format
`mandate audit verify` checks offline with only the export and the node's public
key. Each line is the RFC 8785 canonical JSON of one `ExportRecord`, ending in
`\n`:

* `{"event":<AuditEvent>}` for every event, `seq` 0, 1, 2, … without gaps;
* `{"checkpoint":"<signed note>"}` for each stored checkpoint, right after the
  event that completed it (checkpoints of size 0 first), skipping any whose time
  would go backwards.

The last line is a checkpoint sealing the whole export. Lines are byte-exact:
re-encoding what a line parses to gives the same bytes, so every byte is covered
by a hash or a signature. The body is built in memory.

With `node` naming another node sharing the store (see `GET /v1/audit/nodes`):
that node's log, in the same format, up to its newest stored checkpoint (this
node cannot sign for another; a running node signs every N events or T seconds,
a stopped one signed its final checkpoint on shutdown). Events after that
checkpoint are left out, so the export still ends with a checkpoint; a node with
no checkpoint yet exports an empty body."#,
    params(ExportAuditLogQuery),
    responses(
        (status = 200, description = "The export.", body = String, content_type = "application/jsonl", example = json!(r#"{"event":{"actor":"adm_01J00000000000000000000000","details":{"previous":null,"version":1},"kind":"policy.activated","node":"node-1","seq":0,"time":"2025-01-31T12:00:00Z"}}
{"checkpoint":"mandate/node-1\n1\n<base64 root>\n2025-01-31T12:00:05Z\n\n— mandate/node-1 <base64 key id and signature>\n"}"#)),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 404, description = "`not_found`: no node of that name has a log in this store.", body = Problem, content_type = "application/problem+json"),
        (status = 500, response = Internal),
        (status = 503, description = "`audit_unavailable`: the sealing checkpoint could not be signed or stored.", body = Problem, content_type = "application/problem+json")
    )
)]
pub fn export_audit_log() {}

/// The query of `export_audit_log`.
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportAuditLogQuery {
    /// Whose log: a node's name (default: this node's).
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub node: Option<String>,
}

/// The contract of `GET /v1/audit/nodes`, served by mandate-http's handler `audit_api::nodes`.
#[utoipa::path(
    get,
    path = "/v1/audit/nodes",
    tag = "audit",
    operation_id = "listAuditNodes",
    summary = "The nodes whose logs the store holds, with their audit keys",
    description = r#"Each node of a cluster keeps its own log, signed with its own key. This lists
every node with a log in the store (this node alone on SQLite; every node that
registered on PostgreSQL, stopped ones too) and the public key that verifies each:
what `mandate audit export --all-nodes` exports and `mandate audit verify` checks.
Compare the keys with each node's `GET /v1/audit/checkpoints/latest` (or a copy
kept elsewhere) before trusting them. No query parameters."#,
    responses(
        (status = 200, description = "The nodes.", body = AuditNodes, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 500, response = Internal)
    )
)]
pub fn list_audit_nodes() {}
