//! The audit log: encoding a decision event (canonical JSON and leaf hash, as the audit
//! writer does per event), appending to the SQLite store one event per transaction and
//! 256 per transaction (group commit), the Merkle root, and `verify_export` over an
//! export of 1,000,000 decision events with a signed checkpoint every 1,000 (the server's
//! default `audit.checkpoint_every_events`; only under `cargo bench`).
//!
//! The store is a real file (`synchronous=FULL`, WAL) in a temporary directory under
//! `target/`, so each commit waits for the disk.
//!
//! `audit/record_64` goes through the whole writer: 64 tasks each `AuditLog::record` a
//! decision event, as `/v1/authorize` does at concurrency 64. With
//! `MANDATE_AUDIT_DRIVE=<events>` set the binary only does that, once, for `<events>`
//! events and prints how many it recorded (a fixed amount of work to count instructions
//! of: `MANDATE_AUDIT_DRIVE=12800 valgrind --tool=callgrind target/release/deps/audit-…`,
//! less the same at 3200, per 9600 events).

#![expect(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::cell::OnceCell;
use std::hint::black_box;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group};
use mandate_audit::checkpoint::Checkpoint;
use mandate_audit::event::{AuditEvent, NodeName};
use mandate_audit::merkle::{Frontier, Hash, leaf_hash, root};
use mandate_audit::verify::{checkpoint_line, event_line, verify_export};
use mandate_core::clock::ManualClock;
use mandate_core::random::OsRandom;
use mandate_core::time::Timestamp;
use mandate_http::audit::{AuditLog, CheckpointPolicy};
use mandate_store::prelude::*;
use mandate_store::{AuditRow, Store};
use mandate_store_sqlite::SqliteStore;
use serde_json::json;

// The server's allocator (crates/mandate/src/main.rs), so allocation costs are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NOW: i64 = 1_750_000_000;
const CHECKPOINT_EVERY: u64 = 1_000;
const GROUP: usize = 256;
/// Requests in flight in `audit/record_64` (the load test's concurrency).
const CONCURRENCY: u64 = 64;

fn node() -> NodeName {
    NodeName::new("node-1").expect("node name")
}

/// A decision event as `/v1/authorize` records it.
fn decision(seq: u64) -> AuditEvent {
    let mut e = AuditEvent::new(
        seq,
        Timestamp::from_secs(NOW + (seq / 500) as i64),
        node(),
        "decision",
    );
    e.request_id = Some(format!("req-{seq:012}"));
    e.agent = Some(format!("agt_01JA{:022}", seq % 100_000));
    e.action = Some("crm:read".to_owned());
    e.resource = Some(json!({"type": "Crm::Contact", "id": format!("c-{}", seq % 5_000)}));
    e.context = Some(json!({"data_class": "internal"}));
    e.decision = Some("allow".to_owned());
    e.policy_ids = vec!["team-reads-contacts".to_owned()];
    e.reasons = vec!["allowed_by_policy".to_owned()];
    e.details = Some(json!({"token_id": format!("tok_01JC{seq:022}"), "policy_version": 3}));
    e
}

/// What the audit writer stores for an event (it moves the columns out of the event
/// instead of cloning them).
fn row(e: &AuditEvent) -> AuditRow {
    let mut body = String::new();
    e.write_canonical(&mut body);
    AuditRow {
        seq: e.seq,
        time: e.time,
        kind: e.kind.clone(),
        agent: e.agent.clone(),
        user: e.user.clone(),
        decision: e.decision.clone(),
        leaf: leaf_hash(body.as_bytes()),
        body,
    }
}

fn bench_encode(c: &mut Criterion) {
    let e = decision(123_456);
    c.bench_function("audit/encode_event", |b| {
        b.iter(|| row(black_box(&e)));
    });
}

fn bench_append(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("mandate.db")).expect("store");
    let mut next = 0_u64;
    let mut group = c.benchmark_group("audit/append");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1));
    group.bench_function("single", |b| {
        b.iter_batched(
            || {
                let r = row(&decision(next));
                next += 1;
                r
            },
            |r| store.append_audit(&[r], None).expect("append"),
            BatchSize::SmallInput,
        );
    });
    group.throughput(Throughput::Elements(GROUP as u64));
    group.bench_function("group_256", |b| {
        b.iter_batched(
            || {
                let rows: Vec<AuditRow> = (next..next + GROUP as u64)
                    .map(|s| row(&decision(s)))
                    .collect();
                next += GROUP as u64;
                rows
            },
            |rows| store.append_audit(&rows, None).expect("append"),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn bench_merkle(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit/merkle_root");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    let leaves: Vec<Hash> = (0..1_000_000_u64)
        .map(|i| leaf_hash(&i.to_be_bytes()))
        .collect();
    for n in [1_000, 100_000, 1_000_000] {
        let slice = leaves.get(..n).expect("leaves");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("{n}"), |b| b.iter(|| root(black_box(slice))));
    }
    group.finish();

    // What the writer does per event: push the leaf; and per checkpoint: the root.
    let mut frontier = Frontier::new();
    for l in &leaves {
        frontier.push(*l).expect("push");
    }
    let mut group = c.benchmark_group("audit/frontier");
    group.bench_function("push", |b| {
        b.iter_batched_ref(
            || frontier.clone(),
            |f| f.push(black_box([7; 32])),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("root_at_1M", |b| b.iter(|| black_box(&frontier).root()));
    group.finish();
}

/// An audit log as the server opens it (default checkpoint policy) on a fresh store in
/// `dir`, with a clock that stands still.
fn open_log(dir: &std::path::Path) -> AuditLog {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.join("mandate.db")).expect("store"));
    let clock = Arc::new(ManualClock::at_millis(NOW * 1000));
    let policy = CheckpointPolicy {
        every_events: CHECKPOINT_EVERY,
        every_secs: 10,
    };
    AuditLog::open(store, clock, &OsRandom, &dir.join("audit.pem"), policy).expect("audit log")
}

/// `events` decision events recorded through `log` by [`CONCURRENCY`] tasks, each
/// waiting for its event to be durable before drafting the next, as a handler does.
async fn record_concurrently(log: &Arc<AuditLog>, events: u64) {
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|t| {
            let log = Arc::clone(log);
            tokio::spawn(async move {
                let mut seq = t;
                while seq < events {
                    let mut e = decision(seq);
                    e.seq = 0;
                    e.node = log.node().clone();
                    log.record(e).await.expect("recorded");
                    seq += CONCURRENCY;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn bench_record(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    let log = Arc::new(open_log(dir.path()));
    let rt = runtime();
    let mut group = c.benchmark_group("audit");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1024));
    group.bench_function("record_64", |b| {
        b.iter(|| rt.block_on(record_concurrently(&log, 1024)));
    });
    group.finish();
    log.close();
}

/// The fixed workload behind `MANDATE_AUDIT_DRIVE`.
fn drive(events: u64) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
    let log = Arc::new(open_log(dir.path()));
    runtime().block_on(record_concurrently(&log, events));
    log.close();
    println!("recorded {events} events");
}

/// An export of `events` decision events, a checkpoint every [`CHECKPOINT_EVERY`] and
/// at the end; and the node's public key.
fn export(events: u64) -> (Vec<u8>, ed25519_dalek::VerifyingKey) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut frontier = Frontier::new();
    let mut out = Vec::new();
    let mut time = Timestamp::from_secs(NOW);
    for seq in 0..events {
        let e = decision(seq);
        frontier.push(e.leaf_hash()).expect("push");
        out.extend_from_slice(event_line(&e).as_bytes());
        out.push(b'\n');
        if frontier.size().is_multiple_of(CHECKPOINT_EVERY) || seq + 1 == events {
            time = time.plus_secs(1);
            let cp = Checkpoint {
                node: node(),
                size: frontier.size(),
                root: frontier.root(),
                time,
            };
            out.extend_from_slice(checkpoint_line(&cp.sign(&key)).as_bytes());
            out.push(b'\n');
        }
    }
    (out, key.verifying_key())
}

/// `verify_export` over 1,000,000 events, in events/s. The export (about 410 MiB) is
/// built once, in memory, before the first timed run.
fn bench_verify(c: &mut Criterion) {
    const EVENTS: u64 = 1_000_000;
    let built = OnceCell::new();
    let mut group = c.benchmark_group("audit/verify_export");
    // A run takes about a second: ten samples of one run each.
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function(format!("{EVENTS}"), |b| {
        let (bytes, key) = built.get_or_init(|| {
            let (bytes, key) = export(EVENTS);
            println!(
                "audit/verify_export: {EVENTS} events, {} checkpoints, {:.0} MiB in memory",
                EVENTS / CHECKPOINT_EVERY,
                bytes.len() as f64 / (1024.0 * 1024.0)
            );
            (bytes, key)
        });
        b.iter(|| {
            let report =
                verify_export(Cursor::new(black_box(bytes.as_slice())), key).expect("verifies");
            assert_eq!(report.events, EVENTS, "all events verified");
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_encode,
    bench_append,
    bench_record,
    bench_merkle
);

fn main() {
    if let Some(events) = std::env::var("MANDATE_AUDIT_DRIVE")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        drive(events);
        return;
    }
    benches();
    // Only under `cargo bench` (not `cargo test`): building the export takes seconds.
    if std::env::args().any(|a| a == "--bench") {
        let mut c = Criterion::default().configure_from_args();
        bench_verify(&mut c);
    }
    Criterion::default().configure_from_args().final_summary();
}
