//! Log epochs: how a node's log goes on under a new name after a restore from backup,
//! without ever signing two different logs under one checkpoint origin.
//!
//! A checkpoint is the statement "the log `mandate/<node>` of size `n` has root `r`".
//! A node restored from a backup holds the events `0..N` the original had at the backup;
//! the original may have gone on to write (and sign) events `N, N+1, …` that the restored
//! node never saw. Were the restored node to write event `N` under the same name, two
//! different logs would carry the same origin, and a checkpoint of each at the same size
//! would contradict the other.
//!
//! So a restore gives the node a new name (`mandate restore` does, in the store), and
//! the log's first event under that name is an *epoch* event of kind
//! [`RESTORED_KIND`], whose `details` name the previous node and its size (`N`, the
//! event's own seq), chained to the old head by the Merkle tree like any other event.
//! From there on the log's events and checkpoints name the new node. The tree is not
//! restarted: a checkpoint of the new name covers the whole log from seq 0, so the old
//! checkpoints (sizes up to `N`) and the new ones verify over the same events.
//!
//! INVARIANT (one origin, one log): a writer signs checkpoints only under its current
//! name, and a name is new at every restore; so no `(origin, size)` is ever signed
//! with two roots by the original and a restored copy.

use serde_json::{Value, json};

use crate::event::{AuditEvent, NodeName};

/// The kind of the event that begins a new epoch of a log after a restore.
pub const RESTORED_KIND: &str = "node.restored";

/// The `details` of an epoch event: the previous node's name, the number of its events
/// (this event's seq), and its latest signed checkpoint at the backup, if any.
pub fn restored_details(previous: &NodeName, size: u64, checkpoint: Option<&str>) -> Value {
    json!({
        "previous_node": previous.as_str(),
        "previous_size": size,
        "previous_checkpoint": checkpoint,
    })
}

/// If `event` begins a new epoch after `current`'s events, the name it continues the log
/// under (the event's own node); `None` when it is not a valid epoch event for `current`.
pub fn continues(event: &AuditEvent, current: &NodeName) -> Option<NodeName> {
    if event.kind != RESTORED_KIND || event.node == *current {
        return None;
    }
    let d = event.details.as_ref()?;
    let previous = d.get("previous_node")?.as_str()?;
    let size = d.get("previous_size")?.as_u64()?;
    (previous == current.as_str() && size == event.seq).then(|| event.node.clone())
}

/// The name `name` has without a restore's suffix (`.r` and hex): the node it began as.
fn base(name: &str) -> &str {
    match name.rsplit_once(".r") {
        Some((b, tail))
            if !b.is_empty() && !tail.is_empty() && tail.bytes().all(|c| c.is_ascii_hexdigit()) =>
        {
            b
        }
        _ => name,
    }
}

/// Whether `earlier` may be a name the log of `later` went by before a restore: the
/// same node but for a restore's suffix (a base cut to fit 64 bytes counts as the same).
/// What proves an event is in the log is its inclusion proof; this only keeps a bundle
/// from passing another node's events off as this one's.
pub fn same_lineage(earlier: &NodeName, later: &NodeName) -> bool {
    let (a, b) = (base(earlier.as_str()), base(later.as_str()));
    a == b || (b.len() < a.len() && a.starts_with(b) && later.as_str().len() == 64)
}

/// A new name for a restored node: `<base>.r<suffix>`, where `base` is the old name
/// without an earlier restore's suffix (cut to fit 64 bytes) and `suffix` is fresh
/// lowercase hex from the caller's random source.
pub fn restored_name(old: &NodeName, suffix: &str) -> Option<NodeName> {
    let s = old.as_str();
    let base = match s.rsplit_once(".r") {
        Some((b, tail))
            if !b.is_empty() && !tail.is_empty() && tail.bytes().all(|c| c.is_ascii_hexdigit()) =>
        {
            b
        }
        _ => s,
    };
    let room = 64usize.saturating_sub(2 + suffix.len());
    let base = base.get(..base.len().min(room)).unwrap_or(base);
    NodeName::new(&format!("{base}.r{suffix}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mandate_core::time::Timestamp;

    fn name(s: &str) -> NodeName {
        NodeName::new(s).unwrap()
    }

    #[test]
    fn a_restored_name_is_new_and_keeps_one_suffix() {
        let a = restored_name(&name("node-ab12"), "0011223344").unwrap();
        assert_eq!(a.as_str(), "node-ab12.r0011223344");
        let b = restored_name(&a, "5566778899").unwrap();
        assert_eq!(b.as_str(), "node-ab12.r5566778899");
        let long = "x".repeat(64);
        let c = restored_name(&name(&long), "0011223344").unwrap();
        assert_eq!(c.as_str().len(), 64);
        assert!(c.as_str().ends_with(".r0011223344"));
    }

    #[test]
    fn a_restored_name_is_of_the_same_lineage_and_another_node_is_not() {
        let a = name("node-ab12");
        let r1 = restored_name(&a, "0011223344").unwrap();
        let r2 = restored_name(&r1, "5566778899").unwrap();
        assert!(same_lineage(&a, &r1) && same_lineage(&r1, &r2) && same_lineage(&a, &r2));
        assert!(!same_lineage(&name("node-ab13"), &r1));
        assert!(!same_lineage(&name("node-ab1"), &r1));
        let long = name(&"x".repeat(64));
        assert!(same_lineage(
            &long,
            &restored_name(&long, "0011223344").unwrap()
        ));
    }

    #[test]
    fn only_a_well_formed_epoch_event_continues_a_log() {
        let old = name("node-a");
        let mut e = AuditEvent::new(
            7,
            Timestamp::from_secs(1),
            name("node-a.r01"),
            RESTORED_KIND,
        );
        e.details = Some(restored_details(&old, 7, None));
        assert_eq!(continues(&e, &old), Some(name("node-a.r01")));
        // Another previous node, another size, another kind: not an epoch of this log.
        assert_eq!(continues(&e, &name("node-b")), None);
        e.details = Some(restored_details(&old, 6, None));
        assert_eq!(continues(&e, &old), None);
        e.details = Some(restored_details(&old, 7, None));
        e.kind = "decision".into();
        assert_eq!(continues(&e, &old), None);
    }
}
