//! The audit log: appends, an agent's recent events, checkpoints, and a group commit
//! sealed with the checkpoint it completes (all in one unit, or nothing); and the policy
//! versions, which the backends keep beside it.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "checks are tests: a failure panics"
)]

use mandate_core::time::Timestamp;

use super::at;
use crate::prelude::*;
use crate::{AuditRow, CheckpointRow};

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

/// A row whose agent (every third) and leaf vary with its seq.
fn batch_row(seq: u64) -> AuditRow {
    let body = format!("{{\"seq\":{seq}}}");
    AuditRow {
        seq,
        time: Timestamp::from_secs(1_700_000_000),
        kind: "decision".into(),
        agent: seq.is_multiple_of(3).then(|| format!("agt_{seq}")),
        user: None,
        decision: Some("allow".into()),
        leaf: [u8::try_from(seq % 256).unwrap(); 32],
        body,
    }
}

/// `recent_audit_of_agent` returns an agent's last events before a seq, oldest first; checkpoints are found by size.
pub fn an_agents_recent_audit_events_and_a_checkpoint_by_size(store: &dyn Store) {
    let rows: Vec<crate::AuditRow> = (0..10u64)
        .map(|seq| crate::AuditRow {
            seq,
            time: at(0),
            kind: "decision".into(),
            // Events 0, 3, 6, 9 are agent a's; the others b's, or nobody's.
            agent: match seq % 3 {
                0 => Some("a".into()),
                1 => Some("b".into()),
                _ => None,
            },
            user: None,
            decision: None,
            body: format!("{{\"seq\":{seq}}}"),
            leaf: [u8::try_from(seq).unwrap(); 32],
        })
        .collect();
    store.append_audit(&rows, None).unwrap();
    let seqs = |v: Vec<(u64, String)>| v.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
    assert_eq!(
        seqs(store.recent_audit_of_agent("a", 10, 100).unwrap()),
        [0, 3, 6, 9]
    );
    assert_eq!(
        seqs(store.recent_audit_of_agent("a", 9, 2).unwrap()),
        [3, 6]
    );
    assert_eq!(seqs(store.recent_audit_of_agent("a", 7, 1).unwrap()), [6]);
    assert!(store.recent_audit_of_agent("c", 10, 5).unwrap().is_empty());
    let (_, body) = store.recent_audit_of_agent("b", 10, 1).unwrap().remove(0);
    assert_eq!(body, "{\"seq\":7}");

    let cp = crate::CheckpointRow {
        size: 4,
        time: at(1),
        root: [4; 32],
        text: "signed".into(),
    };
    store.insert_checkpoint(&cp).unwrap();
    assert_eq!(store.checkpoint_of_size(4).unwrap(), Some(cp));
    assert_eq!(store.checkpoint_of_size(5).unwrap(), None);
}

/// `append_audit` with a checkpoint stores both in one unit; without one, only the rows.
pub fn a_group_commit_carries_its_checkpoint(store: &dyn Store) {
    store
        .append_audit(&[row(0), row(1), row(2)], Some(&checkpoint(3)))
        .expect("sealed append");
    assert_eq!(store.audit_len().expect("len"), 3);
    assert_eq!(
        store.checkpoints().expect("checkpoints"),
        vec![checkpoint(3)]
    );
    store.append_audit(&[row(3)], None).expect("append");
    assert_eq!(store.audit_len().expect("len"), 4);
    assert_eq!(store.checkpoints().expect("checkpoints").len(), 1);
}

/// A checkpoint whose size is not the log's new length is a `Conflict` and nothing is written.
pub fn a_checkpoint_that_does_not_end_the_batch_writes_nothing(store: &dyn Store) {
    store.append_audit(&[row(0)], None).expect("append");
    for size in [1, 2, 4] {
        let r = store.append_audit(&[row(1), row(2)], Some(&checkpoint(size)));
        assert!(
            matches!(r, Err(StoreError::Conflict(_))),
            "size {size}: {r:?}"
        );
    }
    assert_eq!(store.audit_len().expect("len"), 1);
    assert!(store.checkpoints().expect("checkpoints").is_empty());
}

/// Appends of any size (around a backend's multi-row statement sizes: 1, 8, 32, 64, …)
/// store every row once, in order, and an empty append is harmless.
pub fn batches_of_any_size_append_every_row_once(store: &dyn Store) {
    let mut next = 0;
    for n in [1, 2, 7, 8, 9, 31, 32, 33, 40, 41, 64, 65, 100, 0, 3] {
        let rows: Vec<AuditRow> = (next..next + n).map(batch_row).collect();
        store.append_audit(&rows, None).unwrap();
        next += n;
        assert_eq!(store.audit_len().unwrap(), next);
    }
    let bodies = store.audit_bodies(0, next).unwrap();
    let want: Vec<String> = (0..next).map(|s| batch_row(s).body).collect();
    assert_eq!(bodies, want);
    // `audit_rows`: each event's filter columns as appended, beside its body.
    let rows = store.audit_rows(5, 40).unwrap();
    let want: Vec<(crate::AuditColumns, String)> = (5..40)
        .map(|s| {
            let r = batch_row(s);
            let columns = crate::AuditColumns {
                seq: r.seq,
                time: r.time.secs(),
                kind: r.kind,
                agent: r.agent,
                user: r.user,
                decision: r.decision,
            };
            (columns, r.body)
        })
        .collect();
    assert_eq!(rows, want);
    assert!(store.audit_rows(next, next + 5).unwrap().is_empty());
    let leaves = store.audit_leaves(next).unwrap();
    assert!(leaves.iter().zip(0..).all(|(l, s)| *l == batch_row(s).leaf));
    assert_eq!(
        store
            .recent_audit_of_agent("agt_99", next, 10)
            .unwrap()
            .len(),
        1
    );
}

/// The node's record: its name once made, its audit key recorded once (another key is a
/// `Conflict`, `INVARIANT (one key per log)`), listed by `nodes`; its log read by name
/// (`checkpoints_of`, `audit_bodies_of`) is its own log, and an unknown name has none.
pub fn a_nodes_log_is_read_by_its_name_with_its_one_key(store: &dyn Store) {
    let name = store.node_name(&mut || "node-conf".into()).unwrap();
    store.set_audit_key("a2V5LW9uZQ==", at(1)).unwrap();
    // The same key again (a restart) is fine; another is refused and changes nothing.
    store.set_audit_key("a2V5LW9uZQ==", at(2)).unwrap();
    let e = store.set_audit_key("a2V5LXR3bw==", at(3)).unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    let nodes = store.nodes().unwrap();
    let me = nodes
        .iter()
        .find(|n| n.name == name)
        .expect("the node is listed");
    assert_eq!(me.audit_key.as_deref(), Some("a2V5LW9uZQ=="));

    store
        .append_audit(&[row(0), row(1), row(2)], Some(&checkpoint(3)))
        .unwrap();
    assert_eq!(
        store.checkpoints_of(&name).unwrap(),
        store.checkpoints().unwrap()
    );
    assert_eq!(
        store.audit_bodies_of(&name, 0, 3).unwrap(),
        store.audit_bodies(0, 3).unwrap()
    );
    assert_eq!(store.audit_bodies_of(&name, 1, 2).unwrap(), ["{\"seq\":1}"]);
    assert!(store.checkpoints_of("node-nobody").unwrap().is_empty());
    assert!(
        store
            .audit_bodies_of("node-nobody", 0, 3)
            .unwrap()
            .is_empty()
    );
}

/// A policy version reads back exactly as written, its Rego part included (`""` for
/// none); versions number 1, 2, …; the latest activation is the active one and the one
/// before it is remembered; an unknown version is not activated.
pub fn policy_versions_round_trip_and_activate(store: &dyn Store) {
    let rego = r#"{"modules":[{"id":"authz.rego","source":"package http.authz\n"}],"data":{"roles":["a"]}}"#;
    let frags = vec!["namespace Crm { entity Contact; }".to_owned()];
    let v1 = store
        .insert_policy_version(
            "permit (principal, action, resource);",
            &frags,
            "",
            "first",
            at(10),
            "adm_1",
        )
        .unwrap();
    let v2 = store
        .insert_policy_version("", &[], rego, "rego only", at(20), "adm_2")
        .unwrap();
    assert_eq!((v1, v2), (1, 2));
    let one = store.policy_version(1).unwrap().unwrap();
    assert_eq!(
        (
            one.policies.as_str(),
            one.fragments.clone(),
            one.rego.as_str(),
            one.note.as_str()
        ),
        ("permit (principal, action, resource);", frags, "", "first")
    );
    assert_eq!((one.created_at, one.created_by.as_str()), (at(10), "adm_1"));
    let two = store.policy_version(2).unwrap().unwrap();
    assert_eq!((two.policies.as_str(), two.rego.as_str()), ("", rego));
    assert!(store.policy_version(3).unwrap().is_none());
    assert_eq!(store.policy_versions().unwrap(), vec![one, two]);
    assert_eq!(store.policy_activation_state().unwrap(), (None, None));
    store.activate_policy_version(1, at(30), "adm_1").unwrap();
    store.activate_policy_version(2, at(40), "adm_1").unwrap();
    assert_eq!(store.policy_activation_state().unwrap(), (Some(2), Some(1)));
    assert!(matches!(
        store.activate_policy_version(9, at(50), "adm_1"),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.policy_activation_state().unwrap(), (Some(2), Some(1)));
}

/// Export cursors start at 0, move forward only (`INVARIANT (cursors only advance)`),
/// are kept per sink and node, publish [`crate::Topic::Export`], and are listed in order.
pub fn export_cursors_only_advance(store: &dyn Store) {
    assert_eq!(store.export_cursor("siem", "n1").unwrap(), 0);
    let before = store.topic_seq(crate::Topic::Export);
    store
        .advance_export_cursor("siem", "n1", 10, at(5))
        .unwrap();
    assert_ne!(store.topic_seq(crate::Topic::Export), before);
    store
        .advance_export_cursor("siem", "n1", 10, at(6))
        .unwrap();
    store
        .advance_export_cursor("siem", "n1", 25, at(7))
        .unwrap();
    let back = store.advance_export_cursor("siem", "n1", 24, at(8));
    assert!(matches!(back, Err(StoreError::Conflict(_))), "{back:?}");
    assert_eq!(store.export_cursor("siem", "n1").unwrap(), 25);
    // Another sink, and another node's log, have cursors of their own.
    store.advance_export_cursor("file", "n1", 3, at(9)).unwrap();
    store.advance_export_cursor("siem", "n2", 1, at(9)).unwrap();
    assert_eq!(store.export_cursor("siem", "n2").unwrap(), 1);
    let rows: Vec<(String, String, u64, i64)> = store
        .export_cursors()
        .unwrap()
        .into_iter()
        .map(|r| (r.sink, r.node, r.next, r.updated_at.secs()))
        .collect();
    assert_eq!(
        rows,
        [
            ("file".into(), "n1".into(), 3, at(9).secs()),
            ("siem".into(), "n1".into(), 25, at(7).secs()),
            ("siem".into(), "n2".into(), 1, at(9).secs()),
        ]
    );
}

/// Shared Signals streams round-trip, update (compare-and-set: a change from a stale
/// read is a `Conflict`) and delete (their queue with them); a poll
/// queue returns unacknowledged SETs in the order queued, each `jti` once, never one
/// acknowledged, even when queued again (`INVARIANT (acked once)`); acks of unknown
/// `jti`s are ignored; every write publishes [`crate::Topic::Export`].
pub fn ssf_streams_and_their_poll_queue(store: &dyn Store) {
    use crate::SsfStreamRow;
    let stream = |id: &str, status: &str, t: i64| SsfStreamRow {
        id: id.into(),
        status: status.into(),
        config: format!("{{\"id\":\"{id}\"}}"),
        created_at: at(t),
        updated_at: at(t),
    };
    let before = store.topic_seq(crate::Topic::Export);
    store
        .insert_ssf_stream(&stream("s2", "enabled", 1))
        .unwrap();
    assert_ne!(store.topic_seq(crate::Topic::Export), before);
    store.insert_ssf_stream(&stream("s1", "paused", 2)).unwrap();
    let taken = store.insert_ssf_stream(&stream("s1", "enabled", 3));
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert_eq!(
        store.ssf_stream("s1").unwrap(),
        Some(stream("s1", "paused", 2))
    );
    assert_eq!(store.ssf_stream("nope").unwrap(), None);
    let ids: Vec<String> = store
        .ssf_streams()
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["s1", "s2"]);
    let before = stream("s1", "paused", 2);
    let mut changed = stream("s1", "disabled", 9);
    changed.config = "{}".into();
    store.update_ssf_stream(&before, &changed).unwrap();
    let read = store.ssf_stream("s1").unwrap().unwrap();
    assert_eq!(
        (read.status.as_str(), read.config.as_str()),
        ("disabled", "{}")
    );
    assert_eq!((read.created_at, read.updated_at), (at(2), at(9)));
    // A change made from what was read before another change: refused, nothing lost.
    let stale = store.update_ssf_stream(&before, &stream("s1", "enabled", 10));
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    assert_eq!(store.ssf_stream("s1").unwrap(), Some(read));
    assert!(matches!(
        store.update_ssf_stream(&stream("nope", "enabled", 9), &stream("nope", "paused", 9)),
        Err(StoreError::NotFound(_))
    ));

    let set = |j: &str| (j.to_owned(), format!("set-{j}"));
    assert!(matches!(
        store.queue_ssf_sets("nope", &[set("a")]),
        Err(StoreError::NotFound(_))
    ));
    store
        .queue_ssf_sets("s2", &[set("n:1"), set("n:2"), set("n:3")])
        .unwrap();
    // Queued again (a resend): one row each, still in the first order.
    store
        .queue_ssf_sets("s2", &[set("n:2"), set("n:4")])
        .unwrap();
    store.queue_ssf_sets("s1", &[set("n:1")]).unwrap();
    let (sets, more) = store.ssf_sets_to_poll("s2", 2).unwrap();
    assert_eq!(sets, [set("n:1"), set("n:2")]);
    assert!(more);
    let (sets, more) = store.ssf_sets_to_poll("s2", 10).unwrap();
    assert_eq!(sets, [set("n:1"), set("n:2"), set("n:3"), set("n:4")]);
    assert!(!more);
    assert_eq!(
        store
            .ack_ssf_sets(
                "s2",
                &["n:1".into(), "n:3".into(), "unknown".into()],
                at(20)
            )
            .unwrap(),
        2
    );
    // Acknowledged twice: nothing new.
    assert_eq!(
        store.ack_ssf_sets("s2", &["n:1".into()], at(21)).unwrap(),
        0
    );
    // Queued again after its ack: never returned again.
    store
        .queue_ssf_sets("s2", &[set("n:1"), set("n:5")])
        .unwrap();
    let (sets, more) = store.ssf_sets_to_poll("s2", 10).unwrap();
    assert_eq!(sets, [set("n:2"), set("n:4"), set("n:5")]);
    assert!(!more);
    // The other stream's queue is its own.
    assert_eq!(store.ssf_sets_to_poll("s1", 10).unwrap().0, [set("n:1")]);
    let (none, more) = store.ssf_sets_to_poll("s2", 0).unwrap();
    assert!(none.is_empty() && more);

    assert!(store.delete_ssf_stream("s2").unwrap());
    assert!(!store.delete_ssf_stream("s2").unwrap());
    assert_eq!(store.ssf_stream("s2").unwrap(), None);
    assert!(store.ssf_sets_to_poll("s2", 10).unwrap().0.is_empty());
    // A stream made again under a deleted one's id starts with an empty queue.
    store
        .insert_ssf_stream(&stream("s2", "enabled", 30))
        .unwrap();
    assert!(store.ssf_sets_to_poll("s2", 10).unwrap().0.is_empty());
}

/// `list_audit` and `count_audit` keep the same events for every filter: by kind, agent,
/// decision and time window (`since` inclusive, `until` exclusive), and `after` pages.
pub fn audit_filters_list_and_count_alike(store: &dyn Store) {
    let rows: Vec<crate::AuditRow> = (0..12u64)
        .map(|seq| crate::AuditRow {
            seq,
            time: at(i64::try_from(seq).unwrap()),
            kind: if seq % 4 == 0 {
                "policy.added"
            } else {
                "decision"
            }
            .into(),
            agent: (seq % 2 == 1).then(|| "a".into()),
            user: None,
            decision: (seq % 4 != 0).then(|| if seq % 3 == 0 { "deny" } else { "allow" }.into()),
            body: format!("{{\"seq\":{seq}}}"),
            leaf: [u8::try_from(seq).unwrap(); 32],
        })
        .collect();
    store.append_audit(&rows, None).unwrap();
    let filters = [
        crate::AuditFilter::default(),
        crate::AuditFilter {
            kind: Some("decision".into()),
            ..Default::default()
        },
        crate::AuditFilter {
            kind: Some("decision".into()),
            decision: Some("deny".into()),
            ..Default::default()
        },
        crate::AuditFilter {
            agent: Some("a".into()),
            since: Some(at(3)),
            until: Some(at(9)),
            ..Default::default()
        },
        crate::AuditFilter {
            kind: Some("nothing".into()),
            ..Default::default()
        },
    ];
    let want = [12, 9, 3, 3, 0];
    for (f, n) in filters.iter().zip(want) {
        assert_eq!(store.count_audit(f).unwrap(), n, "{f:?}");
        assert_eq!(
            store.list_audit(f, None, 100).unwrap().len() as u64,
            n,
            "{f:?}"
        );
    }
    let page: Vec<u64> = store
        .list_audit(&filters[1], Some(5), 2)
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(page, [6, 7]);
    // Read by this node's name, the same; another name's log is not this one.
    let me = store.node_name(&mut || "conformance-node".into()).unwrap();
    for f in &filters {
        assert_eq!(
            store.list_audit_of(&me, f, None, 100).unwrap(),
            store.list_audit(f, None, 100).unwrap(),
            "{f:?}"
        );
    }
    assert!(
        store
            .list_audit_of("no-such-node", &filters[0], None, 100)
            .unwrap()
            .is_empty()
    );
}
