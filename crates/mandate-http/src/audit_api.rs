//! Reading the audit log: events with filters and pagination, the latest signed
//! checkpoint, inclusion and consistency proofs, and the export that
//! `mandate audit verify` checks offline.

use mandate_store::prelude::*;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use mandate_api as api;
use mandate_audit::merkle;
use mandate_core::time::Timestamp;
use mandate_store::AuditFilter;

use crate::Node;
use crate::error::ApiError;
use crate::extract::{Admin, ApiPath, parse_pairs};

fn bad(m: String) -> ApiError {
    ApiError::bad_request("invalid_query", m)
}

/// Query pairs with no repeats and only `allowed` names.
pub(crate) fn query(
    q: Option<String>,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, ApiError> {
    let pairs = parse_pairs(q.unwrap_or_default().as_bytes());
    let mut seen = std::collections::HashSet::new();
    for (k, _) in &pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(bad(format!(
                "unknown query parameter `{}`",
                k.escape_debug()
            )));
        }
        if !seen.insert(k.clone()) {
            return Err(bad(format!("query parameter `{k}` repeated")));
        }
    }
    Ok(pairs)
}

/// A sequence number, size or limit: a whole number the store can hold (at most
/// `i64::MAX`, SQLite's integer), so a larger one is a 400, never a store error.
fn number(k: &str, v: &str) -> Result<u64, ApiError> {
    v.parse::<u64>()
        .ok()
        .filter(|n| i64::try_from(*n).is_ok())
        .ok_or_else(|| {
            bad(format!(
                "`{k}` must be a whole number from 0 to {}",
                i64::MAX
            ))
        })
}

/// `GET /v1/audit/events?agent=&user=&kind=&decision=&since=&until=&cursor=&limit=`.
pub(crate) async fn events(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(q): RawQuery,
) -> Result<Json<api::AuditPage>, ApiError> {
    let mut f = AuditFilter::default();
    let mut cursor = None;
    let mut limit = 100u32;
    let time = |k: &str, v: &str| {
        Timestamp::parse(v).map_err(|_| bad(format!("`{k}` must be an RFC 3339 time")))
    };
    for (k, v) in query(
        q,
        &[
            "agent", "user", "kind", "decision", "since", "until", "cursor", "limit",
        ],
    )? {
        match k.as_str() {
            "agent" => f.agent = Some(v),
            "user" => f.user = Some(v),
            "kind" => f.kind = Some(v),
            "decision" if ["allow", "deny", "approval_required"].contains(&v.as_str()) => {
                f.decision = Some(v);
            }
            "decision" => {
                return Err(bad("`decision` is allow, deny or approval_required".into()));
            }
            "since" => f.since = Some(time(&k, &v)?),
            "until" => f.until = Some(time(&k, &v)?),
            "cursor" => cursor = Some(number(&k, &v)?),
            _ => {
                limit = u32::try_from(number(&k, &v)?)
                    .ok()
                    .filter(|l| (1..=1000).contains(l))
                    .ok_or_else(|| bad("`limit` must be 1..=1000".into()))?;
            }
        }
    }
    let rows = crate::blocking(&state, move |s| s.store().list_audit(&f, cursor, limit)).await??;
    let next = (rows.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| rows.last().map(|(seq, _)| *seq))
        .flatten();
    // A stored body is an event's canonical JSON (mandate-audit's `AuditEvent`, which
    // has the members of the wire's and omits what is unset), so it reads back as the
    // wire's event whole.
    let items = rows
        .into_iter()
        .map(|(_, body)| serde_json::from_str::<api::AuditEvent>(&body).map_err(ApiError::internal))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(api::AuditPage {
        items,
        next_cursor: next,
    }))
}

/// `GET /v1/audit/checkpoints/latest`: the newest signed checkpoint and the key that
/// verifies it.
pub(crate) async fn latest_checkpoint(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(q): RawQuery,
) -> Result<Json<api::LatestCheckpoint>, ApiError> {
    // No parameters: an unknown one is a 400, as everywhere else.
    query(q, &[])?;
    let last = crate::blocking(&state, |s| s.store().checkpoints())
        .await??
        .pop();
    let key = B64.encode(state.audit.public_key().as_bytes());
    let node = state.audit.node().as_str().to_owned();
    Ok(Json(match last {
        None => api::LatestCheckpoint {
            node,
            public_key: key,
            size: 0,
            root: None,
            time: None,
            checkpoint: None,
        },
        Some(c) => api::LatestCheckpoint {
            node,
            public_key: key,
            size: c.size,
            root: Some(B64.encode(c.root)),
            time: Some(c.time.to_string()),
            checkpoint: Some(c.text),
        },
    }))
}

/// `GET /v1/audit/events/{seq}/proof?size=N`: an inclusion proof of event `seq` in the tree
/// of the first `size` events (default: the latest checkpoint's size).
pub(crate) async fn inclusion(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(seq): ApiPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<api::InclusionProof>, ApiError> {
    let seq = seq
        .parse::<u64>()
        .ok()
        .filter(|n| i64::try_from(*n).is_ok())
        .ok_or_else(|| ApiError::not_found("unknown audit event"))?;
    let mut size = None;
    for (k, v) in query(q, &["size"])? {
        size = Some(number(&k, &v)?);
    }
    let out = crate::blocking(&state, move |s| -> Result<api::InclusionProof, ApiError> {
        let size = match size {
            Some(n) => n,
            None => s.store().checkpoints()?.pop().map_or(0, |c| c.size),
        };
        if seq >= size {
            return Err(ApiError::not_found(format!(
                "event {seq} is not in a tree of size {size}; seal a checkpoint first"
            )));
        }
        if size > s.store().audit_len()? {
            return Err(bad(format!("the log has fewer than {size} events")));
        }
        let leaves = s.store().audit_leaves(size)?;
        let proof = merkle::inclusion_proof(&leaves, seq).map_err(ApiError::internal)?;
        let leaf = leaves
            .get(usize::try_from(seq).unwrap_or(usize::MAX))
            .copied()
            .ok_or_else(|| ApiError::not_found("unknown audit event"))?;
        Ok(api::InclusionProof {
            seq,
            size,
            leaf_hash: B64.encode(leaf),
            root: B64.encode(merkle::root(&leaves)),
            proof: proof.iter().map(|h| B64.encode(h)).collect(),
        })
    })
    .await??;
    Ok(Json(out))
}

/// `GET /v1/audit/consistency?from=M&to=N`: a consistency proof between two tree sizes.
pub(crate) async fn consistency(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(q): RawQuery,
) -> Result<Json<api::ConsistencyProof>, ApiError> {
    let (mut from, mut to) = (None, None);
    for (k, v) in query(q, &["from", "to"])? {
        if k == "from" {
            from = Some(number(&k, &v)?);
        } else {
            to = Some(number(&k, &v)?);
        }
    }
    let (from, to) = from
        .zip(to)
        .ok_or_else(|| bad("`from` and `to` are required".into()))?;
    if from == 0 || from > to {
        return Err(bad("need 0 < from <= to".into()));
    }
    let out = crate::blocking(
        &state,
        move |s| -> Result<api::ConsistencyProof, ApiError> {
            if to > s.store().audit_len()? {
                return Err(bad(format!("the log has fewer than {to} events")));
            }
            let leaves = s.store().audit_leaves(to)?;
            let proof = merkle::consistency_proof(&leaves, from, to).map_err(ApiError::internal)?;
            let old = leaves
                .get(..usize::try_from(from).unwrap_or(usize::MAX))
                .unwrap_or(&[]);
            Ok(api::ConsistencyProof {
                from,
                to,
                from_root: B64.encode(merkle::root(old)),
                to_root: B64.encode(merkle::root(&leaves)),
                proof: proof.iter().map(|h| B64.encode(h)).collect(),
            })
        },
    )
    .await??;
    Ok(Json(out))
}

/// `GET /v1/audit/nodes`: every node with a log in the store and the key that verifies
/// it (what an export of every node's log needs).
pub(crate) async fn nodes(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(q): RawQuery,
) -> Result<Json<api::AuditNodes>, ApiError> {
    query(q, &[])?;
    let rows = crate::blocking(&state, |s| s.store().nodes()).await??;
    Ok(Json(api::AuditNodes {
        this_node: state.audit.node().as_str().to_owned(),
        nodes: rows
            .into_iter()
            .map(|n| api::AuditNode {
                node: n.name,
                public_key: n.audit_key,
                started_at: n.started_at.map(|t| t.to_string()),
                last_seen_at: n.last_seen_at.map(|t| t.to_string()),
            })
            .collect(),
    }))
}

/// `GET /v1/audit/export[?node=NAME]`: a whole log as JSON Lines — every event, each
/// stored checkpoint right after the event that completed it, and a checkpoint at the
/// end — the format `mandate audit verify` checks offline. This node's log (no `node`,
/// or its own name) is first sealed by a fresh checkpoint; another node's (a cluster:
/// every node keeps its own log) ends at that node's newest stored checkpoint, since
/// only that node can sign for its log.
pub(crate) async fn export(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query(q, &["node"])?;
    let own = state.audit.node().as_str().to_owned();
    let node = match pairs.into_iter().find(|(k, _)| k == "node") {
        Some((_, v)) => mandate_audit::event::NodeName::new(&v)
            .map_err(|e| bad(e.to_string()))?
            .as_str()
            .to_owned(),
        None => own.clone(),
    };
    let body = if node == own {
        let sealed = state.audit.seal().await.map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                format!("cannot seal the log: {e}"),
            )
        })?;
        crate::blocking(&state, move |s| -> Result<String, ApiError> {
            let store = s.store();
            export_body(store.checkpoints()?, sealed, |from, to| {
                store.audit_bodies(from, to)
            })
        })
        .await??
    } else {
        crate::blocking(&state, move |s| -> Result<String, ApiError> {
            let store = s.store();
            if !store.nodes()?.iter().any(|n| n.name == node) {
                return Err(ApiError::not_found(format!(
                    "no node `{node}` has a log in this store"
                )));
            }
            let checkpoints = store.checkpoints_of(&node)?;
            // Up to the newest checkpoint: this node cannot sign for another's log.
            let sealed = checkpoints.last().map_or(0, |c| c.size);
            if checkpoints.is_empty() {
                return Ok(String::new());
            }
            export_body(checkpoints, sealed, |from, to| {
                store.audit_bodies_of(&node, from, to)
            })
        })
        .await??
    };
    let mut res = Body::from(body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jsonl"),
    );
    Ok(res)
}

/// The export of one log's first `sealed` events, with its `checkpoints` (those over
/// more events are left out); `bodies(from, to)` reads event bodies `from <= seq < to`.
fn export_body(
    checkpoints: Vec<mandate_store::CheckpointRow>,
    sealed: u64,
    bodies: impl Fn(u64, u64) -> mandate_store::repo::Result<Vec<String>>,
) -> Result<String, ApiError> {
    let checkpoints: Vec<_> = checkpoints
        .into_iter()
        .filter(|c| c.size <= sealed)
        .collect();
    let mut out = String::new();
    let mut cps = checkpoints.iter().peekable();
    let mut last_time = None;
    let mut emit = |c: &mandate_store::CheckpointRow, out: &mut String| {
        // Times never go backwards in an export (a clock step back is skipped over).
        if last_time.is_none_or(|t| c.time >= t) {
            last_time = Some(c.time);
            out.push_str(&mandate_audit::verify::checkpoint_line(
                &mandate_audit::checkpoint::SignedCheckpoint {
                    text: c.text.clone(),
                },
            ));
            out.push('\n');
        }
    };
    while let Some(c) = cps.next_if(|c| c.size == 0) {
        emit(c, &mut out);
    }
    const CHUNK: u64 = 10_000;
    let mut from = 0;
    while from < sealed {
        let to = (from + CHUNK).min(sealed);
        for (i, body) in bodies(from, to)?.into_iter().enumerate() {
            // canonical({"event": X}) is `{"event":` + canonical(X) + `}`.
            out.push_str("{\"event\":");
            out.push_str(&body);
            out.push_str("}\n");
            let size = from + i as u64 + 1;
            while let Some(c) = cps.next_if(|c| c.size == size) {
                emit(c, &mut out);
            }
        }
        from = to;
    }
    Ok(out)
}
