//! The follower: keeps a node in step with writes other nodes made to a shared store, and
//! proves that it is. On one node (SQLite) there is nothing to follow: every write goes
//! through this node's one write path, which refreshes what it changed before it returns.
//!
//! With a shared store (PostgreSQL) other nodes' writes arrive on the change feed
//! (mandate-store-postgres listen.rs). The follower ([`spawn_follower`]) waits on the feed
//! and, for what changed, rebuilds the decision snapshot (agents, policies, revocations,
//! mandates), reloads the signing key ring and the gateways' secrets, and wakes
//! long-polling readers of mandates. Caches that key on the feed (the verified-secret
//! memo, by the credentials generation) follow by themselves.
//!
//! It also proves the node fresh: after acting on every change up to the sequence number
//! of the store's newest proof, it hands that proof to the node
//! (`INVARIANT (fresh or refused)`, [`crate::freshness`]).

use std::sync::{Arc, Weak};
use std::time::Duration;

use mandate_store::{Freshness, Topic, Topics};

use crate::Node;
use crate::write_path::SNAPSHOT_TOPICS;

/// How long the follower waits on the feed before it looks at the proof again: new proofs
/// do not move the feed, so this bounds how old a proof may be when the node takes it.
const POLL: Duration = Duration::from_millis(50);

/// Starts the follower on a thread of its own if the node's store is shared (does
/// nothing for a single node's store). It stops when the node is dropped.
pub fn spawn_follower(node: &Arc<Node>) -> Option<std::thread::JoinHandle<()>> {
    if node.proof.is_local() {
        return None;
    }
    let weak = Arc::downgrade(node);
    std::thread::Builder::new()
        .name("mandate-follow".into())
        .spawn(move || follow(&weak))
        .map_err(|e| tracing::error!(error = %e, "the follower did not start"))
        .ok()
}

/// The follower's loop (see the module docs).
fn follow(weak: &Weak<Node>) {
    let snapshot_topics: Topics = SNAPSHOT_TOPICS.into_iter().collect();
    // The feed position up to which this node has acted on every change: the snapshot
    // covers every snapshot-topic change up to it, and the other followers' work is done.
    let mut seen = 0;
    let mut was_fresh = false;
    loop {
        let Some(node) = weak.upgrade() else { return };
        // A lapsed proof changes what the snapshot answers without a rebuild: open
        // streams are told, re-check, and close (`INVARIANT (stream lease)`, gateway).
        let fresh = !node.is_stale();
        if was_fresh && !fresh {
            tracing::warn!("no recent proof of a complete change feed: decisions are refused");
            node.snapshot_lapsed();
        } else if fresh && !was_fresh {
            tracing::info!("change feed proven complete: decisions resume");
        }
        was_fresh = fresh;
        // The proof is read before the feed: it counts only if what we act on below
        // reaches its sequence number.
        let proof = node.db.freshness();
        let changes = node.db.changes_since(seen, Duration::ZERO);
        let changes = if changes.seq == seen {
            // Nothing new: wait a little (without holding the node) and look again.
            drop(node);
            let Some(n) = weak.upgrade() else { return };
            let c = n.db.changes_since(seen, POLL);
            drop(n);
            if c.seq == seen {
                if let Some(node) = weak.upgrade() {
                    prove(&node, proof, seen);
                }
                continue;
            }
            c
        } else {
            changes
        };
        let Some(node) = weak.upgrade() else { return };
        let touched = changes.topics;
        let mut ok = true;
        // This node's own writes refreshed the snapshot before they returned (the one
        // write path); a refresh is needed only for what the snapshot was not built over.
        if (!touched.intersection(snapshot_topics).is_empty() && !node.snapshot_covers(changes.seq))
            || node.refresh_failed()
        {
            // Logged and held inside `refresh` when it fails; the next pass tries again.
            ok &= node.refresh().is_ok();
        }
        // Another node rotated: read the ring (and its sealed current key) again, then
        // the snapshot that holds it.
        if touched.contains(Topic::SigningKeys)
            && let Err(e) = crate::admin::reload_keys(&node)
        {
            tracing::error!(error = %e, "signing keys not reloaded");
            ok = false;
        }
        if touched.contains(Topic::Secrets)
            && let Err(e) = node.reload_secrets()
        {
            tracing::error!(error = %e, "gateway secrets not reloaded");
            ok = false;
        }
        if touched.contains(Topic::Mandates) {
            node.mandates_changed();
        }
        if ok {
            seen = changes.seq;
            prove(&node, proof, seen);
        } else {
            // The store or a reload failed: try the same changes again shortly.
            drop(node);
            std::thread::sleep(POLL);
        }
    }
}

/// Gives the node `proof` if what it has acted on reaches the proof's sequence number.
fn prove(node: &Node, proof: Freshness, seen: u64) {
    if let Freshness::Proven { at, seq, .. } = proof
        && seq <= seen
    {
        node.proof.take(at);
    }
}
