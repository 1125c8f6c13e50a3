//! Export sinks over a real node and SQLite store: every event delivered in order from
//! the sink's stored cursor, through failures and restarts, with nothing skipped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mandate_service::Node;
use mandate_service::export::{
    Item, SendError, Sending, SinkConfig, SinkKind, Transport, spawn as spawn_sinks,
};
use mandate_store::prelude::*;
use serde_json::Value;

use crate::common::node_over_store;

/// A sink's table with only the required keys of its kind.
fn sink(name: &str, kind: SinkKind) -> SinkConfig {
    let text = format!("name = \"{name}\"\ntype = \"{}\"\n", kind.name());
    toml::from_str(&text).unwrap()
}

/// Records `n` events of `kind` through the node's audit log (durable when it returns).
async fn record(node: &Node, kind: &str, n: usize) {
    let drafts = (0..n).map(|_| node.event(kind)).collect();
    for r in node.audit.record_all(drafts).await {
        r.unwrap();
    }
}

/// A transport that keeps what it accepted, failing the attempts numbered in `fail_at`
/// (from 1; with `resend_previous` when asked): the receiver the delivery loop is tested
/// against.
#[derive(Clone, Default)]
struct Receiver {
    accepted: Arc<Mutex<Vec<String>>>,
    attempts: Arc<Mutex<u32>>,
    fail_at: Vec<u32>,
    resend_previous: bool,
}

impl Transport for Receiver {
    fn send<'a>(&'a mut self, batch: &'a [Item]) -> Sending<'a> {
        Box::pin(async move {
            let attempt = {
                let mut a = self.attempts.lock().unwrap();
                *a += 1;
                *a
            };
            if self.fail_at.contains(&attempt) {
                return Err(SendError {
                    message: format!("receiver down (attempt {attempt})"),
                    resend_previous: self.resend_previous,
                });
            }
            let mut accepted = self.accepted.lock().unwrap();
            accepted.extend(batch.iter().map(|i| i.event.id()));
            Ok(())
        })
    }
}

/// Waits until `done` holds, up to 20 s.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn ids(node: &Node, seqs: std::ops::Range<u64>) -> Vec<String> {
    seqs.map(|s| format!("{}:{s}", node.audit.node())).collect()
}

/// The lines of a JSON Lines file (none when it does not exist).
fn lines(p: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs one node's life over `dir` on a runtime of its own, dropped at the end (its sink
/// tasks with it), as a process that stops.
fn life<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_file_sink_delivers_every_event_in_order_and_resumes_from_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export.jsonl");
    let mut cfg = sink("file", SinkKind::File);
    cfg.path = Some(out.clone());
    cfg.batch_max_events = Some(64);
    assert!(cfg.problems().is_empty(), "{:?}", cfg.problems());
    let file_ids = || -> Vec<String> {
        lines(&out)
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_owned())
            .collect()
    };
    life(async {
        let (node, _clock, store) = node_over_store(dir.path(), |_| {});
        let node = Arc::new(node);
        record(&node, "decision", 300).await;
        let t = mandate_service::export_io::transport(&cfg)
            .unwrap()
            .unwrap();
        spawn_sinks(&node, vec![(cfg.clone(), t)]);
        let len = store.audit_len().unwrap();
        until("every event in the file", || file_ids().len() as u64 == len).await;
        assert_eq!(file_ids(), ids(&node, 0..len), "in log order, each once");
        // Created for its owner alone: audit records name agents and people.
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        // Caught up, the sink stores its cursor.
        until("the cursor stored", || {
            store
                .export_cursor("file", node.audit.node().as_str())
                .unwrap()
                == len
        })
        .await;
        let status = node.export.statuses(len);
        assert_eq!((status[0].lag, status[0].delivered), (0, len));
    });
    // The next life of the node (a restart) sends only what came after.
    life(async {
        let (node, _clock, store) = node_over_store(dir.path(), |_| {});
        let node = Arc::new(node);
        record(&node, "token.issued", 5).await;
        let t = mandate_service::export_io::transport(&cfg)
            .unwrap()
            .unwrap();
        spawn_sinks(&node, vec![(cfg.clone(), t)]);
        let total = store.audit_len().unwrap();
        until("the new events in the file", || {
            file_ids().len() as u64 >= total
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            file_ids(),
            ids(&node, 0..total),
            "nothing twice, nothing missed"
        );
    });
}

/// Rotation by size: the file never grows past `max_bytes` (unless one batch alone does),
/// and the rotated files together with it hold every record once, oldest in the
/// highest-numbered file.
#[test]
fn a_file_sink_rotates_by_size_and_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audit.jsonl");
    let mut cfg = sink("rotating", SinkKind::File);
    cfg.path = Some(out.clone());
    cfg.batch_max_events = Some(10);
    cfg.max_bytes = Some(8 * 1024);
    cfg.keep = Some(50);
    life(async {
        let (node, _clock, store) = node_over_store(dir.path(), |_| {});
        let node = Arc::new(node);
        record(&node, "decision", 200).await;
        let t = mandate_service::export_io::transport(&cfg)
            .unwrap()
            .unwrap();
        spawn_sinks(&node, vec![(cfg.clone(), t)]);
        let len = store.audit_len().unwrap();
        until("the cursor at the end", || {
            store
                .export_cursor("rotating", node.audit.node().as_str())
                .unwrap()
                == len
        })
        .await;
        let mut files: Vec<std::path::PathBuf> = (1..=50)
            .rev()
            .map(|n| dir.path().join(format!("audit.jsonl.{n}")))
            .filter(|p| p.exists())
            .collect();
        assert!(files.len() >= 2, "rotated: {files:?}");
        files.push(out.clone());
        let mut all = Vec::new();
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() <= 8 * 1024, "{f:?}");
            all.extend(
                lines(f)
                    .iter()
                    .map(|v| v["id"].as_str().unwrap().to_owned()),
            );
        }
        assert_eq!(all, ids(&node, 0..len));
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_gets_every_event_once_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _clock, store) = node_over_store(dir.path(), |_| {});
    let node = Arc::new(node);
    record(&node, "decision", 40).await;
    let rx = Receiver {
        fail_at: vec![1, 2],
        ..Receiver::default()
    };
    let mut cfg = sink("flaky", SinkKind::Webhook);
    cfg.batch_max_events = Some(16);
    spawn_sinks(&node, vec![(cfg, Box::new(rx.clone()))]);
    let len = store.audit_len().unwrap();
    // While it fails, the status says why and nothing moves.
    until("the failure in the status", || {
        node.export.statuses(len)[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("receiver down"))
    })
    .await;
    assert_eq!(
        store
            .export_cursor("flaky", node.audit.node().as_str())
            .unwrap(),
        0
    );
    until("every event accepted", || {
        rx.accepted.lock().unwrap().len() as u64 == len
    })
    .await;
    assert_eq!(*rx.accepted.lock().unwrap(), ids(&node, 0..len));
    let status = &node.export.statuses(len)[0];
    assert_eq!((status.lag, status.failures), (0, 0));
    assert!(status.last_error.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_stream_sends_the_previous_batch_again_rather_than_leave_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _clock, store) = node_over_store(dir.path(), |_| {});
    let node = Arc::new(node);
    record(&node, "decision", 20).await;
    let len = store.audit_len().unwrap();
    // Batches of 4; the third attempt finds the stream broken, so the second batch may
    // not have arrived.
    let rx = Receiver {
        fail_at: vec![3],
        resend_previous: true,
        ..Receiver::default()
    };
    let mut cfg = sink("stream", SinkKind::Syslog);
    cfg.batch_max_events = Some(4);
    spawn_sinks(&node, vec![(cfg, Box::new(rx.clone()))]);
    let last = format!("{}:{}", node.audit.node(), len - 1);
    until("the last event", || {
        rx.accepted.lock().unwrap().last() == Some(&last)
    })
    .await;
    let got = rx.accepted.lock().unwrap().clone();
    let want = ids(&node, 0..len);
    let mut expected: Vec<String> = want[..8].to_vec();
    expected.extend_from_slice(&want[4..]);
    assert_eq!(got, expected, "the second batch again, then on in order");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_sends_only_what_it_takes_and_still_moves_past_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _clock, store) = node_over_store(dir.path(), |_| {});
    let node = Arc::new(node);
    record(&node, "decision", 7).await;
    record(&node, "token.issued", 5).await;
    record(&node, "decision", 3).await;
    let rx = Receiver::default();
    let mut cfg = sink("tokens", SinkKind::Webhook);
    cfg.kinds = vec!["token.*".into()];
    spawn_sinks(&node, vec![(cfg, Box::new(rx.clone()))]);
    let len = store.audit_len().unwrap();
    until("the cursor at the end", || {
        store
            .export_cursor("tokens", node.audit.node().as_str())
            .unwrap()
            == len
    })
    .await;
    let got = rx.accepted.lock().unwrap().clone();
    assert_eq!(got.len(), 5, "{got:?}");
    let bodies = store.audit_bodies(0, len).unwrap();
    for id in &got {
        let seq: usize = id.rsplit(':').next().unwrap().parse().unwrap();
        assert!(bodies[seq].contains("\"token.issued\""), "{id}");
    }
}

#[test]
fn sink_tables_are_checked_per_type() {
    let cases: &[(&str, &[&str])] = &[
        ("name = \"f\"\ntype = \"file\"\npath = \"/tmp/x\"", &[]),
        ("name = \"f\"\ntype = \"file\"", &["needs `path`"]),
        (
            "name = \"f\"\ntype = \"file\"\npath = \"/x\"\naddress = \"h:1\"",
            &["`address` is not a setting of a file sink"],
        ),
        (
            "name = \"s\"\ntype = \"syslog\"\naddress = \"127.0.0.1:514\"\ntransport = \"udp\"",
            &[],
        ),
        (
            "name = \"bad name\"\ntype = \"syslog\"\naddress = \"h:1\"",
            &["a name is"],
        ),
        (
            "name = \"s\"\ntype = \"syslog\"\naddress = \"h:1\"\nkinds = [\"token*\"]",
            &["invalid kind pattern `token*`"],
        ),
        (
            "name = \"w\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"",
            &["needs `secret_file`"],
        ),
        (
            "name = \"s\"\ntype = \"syslog\"\naddress = \"h:1\"\nbatch_max_events = 0",
            &["`batch_max_events` must be 1 to 10000"],
        ),
        // Syslog over TLS (RFC 5425): its trust and identity settings, and only there.
        (
            "name = \"t\"\ntype = \"syslog\"\ntransport = \"tls\"\naddress = \"siem\"\n\
             ca_file = \"/ca.pem\"\nclient_cert_file = \"/c.pem\"\nclient_key_file = \"/c.key\"\n\
             server_name = \"siem.example\"",
            &[],
        ),
        (
            "name = \"t\"\ntype = \"syslog\"\naddress = \"h:1\"\nca_file = \"/ca.pem\"",
            &["`ca_file` is not a setting of a syslog sink (only over `transport = \"tls\"`)"],
        ),
        (
            // Issue 25: every HTTP sink takes the TLS keys; plain HTTP off the machine
            // is refused unless `allow_http`.
            "name = \"t\"\ntype = \"webhook\"\nurl = \"http://h/\"\nsecret_file = \"/s\"\n\
             server_name = \"h\"",
            &["`url`: plain `http://` to `h` is refused (not loopback)"],
        ),
        (
            "name = \"t\"\ntype = \"webhook\"\nurl = \"http://h/\"\nsecret_file = \"/s\"\n\
             allow_http = true",
            &[],
        ),
        (
            "name = \"t\"\ntype = \"file\"\npath = \"/x\"\nallow_http = true",
            &["`allow_http` is not a setting of a file sink"],
        ),
        (
            "name = \"t\"\ntype = \"syslog\"\ntransport = \"tls\"\naddress = \"h\"\n\
             client_cert_file = \"/c.pem\"",
            &["`client_cert_file` and `client_key_file` go together"],
        ),
    ];
    for (text, want) in cases {
        let cfg: SinkConfig = toml::from_str(text).unwrap();
        let got = cfg.problems();
        assert_eq!(got.len(), want.len(), "{text}: {got:?}");
        for w in *want {
            assert!(
                got.iter().any(|g| g.contains(w)),
                "{text}: {got:?} lacks {w}"
            );
        }
    }
    // Two sinks may not share a name (it keys the cursor).
    let a: SinkConfig = toml::from_str("name = \"a\"\ntype = \"file\"\npath = \"/x\"").unwrap();
    let errs = mandate_service::export::check_sinks(&[a.clone(), a]);
    assert!(errs.iter().any(|e| e.contains("two sinks")), "{errs:?}");
    // A TLS sink's files are read when its transport is built (at start): a missing CA
    // bundle is an error naming the sink and the file, not a failure at first delivery.
    let tls: SinkConfig = toml::from_str(
        "name = \"t\"\ntype = \"syslog\"\ntransport = \"tls\"\naddress = \"h\"\n\
         ca_file = \"/nonexistent/ca.pem\"",
    )
    .unwrap();
    assert!(tls.problems().is_empty(), "{:?}", tls.problems());
    let e = mandate_service::export_io::transport(&tls).err().unwrap();
    assert!(
        e.starts_with("export sink `t`: reading `ca_file` /nonexistent/ca.pem"),
        "{e}"
    );
    // An unknown key is refused when the table is read.
    assert!(toml::from_str::<SinkConfig>("name = \"a\"\ntype = \"file\"\npth = \"/x\"").is_err());
}
