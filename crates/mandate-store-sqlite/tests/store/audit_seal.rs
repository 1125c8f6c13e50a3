//! A group commit can carry the signed checkpoint over the log it completes
//! (`Store::append_audit_sealed`): one transaction, so one fsync, for both — and a
//! checkpoint whose size is not the log's new length is refused with everything else.

use mandate_core::time::Timestamp;
use mandate_store::{AuditRow, CheckpointRow, StoreError};

use super::open;

fn row(seq: u64) -> AuditRow {
    AuditRow {
        seq,
        time: Timestamp::from_secs(1_700_000_000),
        kind: "decision".into(),
        agent: None,
        user: None,
        decision: Some("allow".into()),
        body: format!("{{\"seq\":{seq}}}"),
        leaf: [7; 32],
    }
}

fn checkpoint(size: u64) -> CheckpointRow {
    CheckpointRow {
        size,
        time: Timestamp::from_secs(1_700_000_000),
        root: [9; 32],
        text: format!("node\n{size}\nroot\n"),
    }
}

#[test]
fn a_group_commit_carries_its_checkpoint() {
    let (_dir, store) = open();
    store
        .append_audit_sealed(&[row(0), row(1), row(2)], Some(&checkpoint(3)))
        .expect("sealed append");
    assert_eq!(store.audit_len().expect("len"), 3);
    assert_eq!(
        store.checkpoints().expect("checkpoints"),
        vec![checkpoint(3)]
    );
    store.append_audit_sealed(&[row(3)], None).expect("append");
    assert_eq!(store.audit_len().expect("len"), 4);
    assert_eq!(store.checkpoints().expect("checkpoints").len(), 1);
}

#[test]
fn a_checkpoint_that_does_not_end_the_batch_writes_nothing() {
    let (_dir, store) = open();
    store.append_audit(&[row(0)]).expect("append");
    for size in [1, 2, 4] {
        let r = store.append_audit_sealed(&[row(1), row(2)], Some(&checkpoint(size)));
        assert!(
            matches!(r, Err(StoreError::Conflict(_))),
            "size {size}: {r:?}"
        );
    }
    assert_eq!(store.audit_len().expect("len"), 1);
    assert!(store.checkpoints().expect("checkpoints").is_empty());
}
