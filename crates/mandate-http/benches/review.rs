//! Access review campaign throughput (issue 24's target: a review of 10,000 agents over
//! 10 M decisions in < 60 s).
//!
//! A real SQLite store with `MANDATE_BENCH_AGENTS` agents (default 10,000), each with a
//! boundary of three grants, and a decision log of `MANDATE_BENCH_DECISIONS` recorded
//! decisions (default 1,000,000; 90% allows, one in 20 through a delegation chain) seeded
//! directly through the store's `append_audit` in canonical form (as the audit writer
//! writes them; `/v1/authorize` is not what is measured here). Then one
//! `POST /v1/reviews` over every agent and the whole window, timed: the one pass over
//! the window's allows, the suggestion for every agent, the campaign stored.
//!
//! `cargo bench -p mandate-http --bench review`; `MANDATE_BENCH_DIR=/dev/shm` puts the
//! store on tmpfs.

#![expect(
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "benchmark setup fails loudly and prints its results"
)]

/// The allocator `mandate serve` uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[expect(dead_code, reason = "the decision benches use the snapshot helpers")]
mod fixture;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use mandate_audit::event::{AuditEvent, NodeName};
use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Grant, Labels, Owner, Purpose};
use mandate_core::clock::{Clock, ManualClock, SystemClock};
use mandate_core::id::AgentId;
use mandate_core::random::{OsRandom, Random};
use mandate_core::time::Timestamp;
use mandate_store::prelude::*;
use mandate_store::{AuditRow, Store};
use mandate_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const SEED_BATCH: usize = 50_000;

#[expect(clippy::disallowed_methods, reason = "benchmark timing")]
fn timer() -> std::time::Instant {
    std::time::Instant::now()
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn grant(actions: &[&str], resources: &[&str], classes: &[&str]) -> Grant {
    let s = |xs: &[&str]| xs.iter().map(|x| (*x).to_owned()).collect();
    Grant {
        actions: s(actions),
        resources: s(resources),
        data_classes: s(classes),
    }
}

/// A small deterministic generator (the log's shape, not its secrecy, matters).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[tokio::main]
async fn main() {
    let agents = env("MANDATE_BENCH_AGENTS", 10_000);
    let decisions = env("MANDATE_BENCH_DECISIONS", 1_000_000);
    let dir = match std::env::var("MANDATE_BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d),
        Err(_) => tempfile::tempdir(),
    }
    .expect("tempdir");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let random: Arc<dyn Random> = Arc::new(OsRandom);
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("mandate.db")).expect("store"));
    let now = clock.now();

    // Agents, ids made in order.
    let boundary = Boundary {
        grants: vec![
            grant(&["crm:*"], &["Crm::Contact/*", "Crm::Account/*"], &[]),
            grant(&["billing:*"], &["Billing::Invoice/*"], &[]),
            grant(&["files:read"], &["Files::Doc/*"], &["internal", "secret"]),
        ],
        ..Boundary::default()
    };
    let started = timer();
    let mut ids = Vec::with_capacity(agents);
    store
        .write(|r| {
            for i in 0..agents {
                let c = ManualClock::at_millis(now.secs() * 1000 - 1_000_000 + i as i64);
                let a = Agent {
                    id: AgentId::generate(&c, &OsRandom).expect("id"),
                    name: AgentName::try_from(format!("agent-{i}")).expect("name"),
                    owner: Owner::try_from(format!("owner-{}@example.com", i % 100))
                        .expect("owner"),
                    purpose: Purpose::try_from("review bench".to_owned()).expect("purpose"),
                    labels: Labels::try_from(BTreeMap::from([(
                        "team".to_owned(),
                        format!("t{}", i % 20),
                    )]))
                    .expect("labels"),
                    boundary: boundary.clone(),
                    status: AgentStatus::Active,
                    status_reason: None,
                    created_at: now,
                    updated_at: now,
                };
                r.insert_agent(&a)?;
                ids.push(a.id.to_string());
            }
            Ok::<_, mandate_store::StoreError>(())
        })
        .expect("agents");

    // The decision log, as the audit writer would have written it.
    let node = NodeName::new(
        &store
            .node_name(&mut || "bench-node".to_owned())
            .expect("node"),
    )
    .expect("node name");
    let mut rng = Lcg(42);
    let mut body = String::new();
    let mut rows = Vec::with_capacity(SEED_BATCH);
    let mut allows = 0usize;
    for seq in 0..decisions {
        let agent = &ids[rng.next(agents)];
        let time =
            Timestamp::from_secs(now.secs() - 3_600 + (seq * 3_000 / decisions.max(1)) as i64);
        let mut e = AuditEvent::new(seq as u64, time, node.clone(), "decision");
        let (action, ty, id, class) = match rng.next(10) {
            0..=4 => (
                "crm:read",
                "Crm::Contact",
                format!("c-{}", rng.next(50)),
                None,
            ),
            5 | 6 => (
                "crm:list",
                "Crm::Account",
                format!("a-{}", rng.next(5)),
                None,
            ),
            7 => (
                "billing:refund",
                "Billing::Invoice",
                format!("i-{}", rng.next(20)),
                None,
            ),
            _ => (
                "files:read",
                "Files::Doc",
                format!("d-{}", rng.next(10)),
                Some("internal"),
            ),
        };
        let allow = rng.next(10) != 0;
        e.agent = Some(agent.clone());
        e.action = Some(action.to_owned());
        e.resource = Some(json!({"type": ty, "id": id}));
        e.context = Some(match class {
            Some(c) => json!({"data_class": c, "prompt": "hmac-sha256:0123456789abcdef"}),
            None => json!({"prompt": "hmac-sha256:0123456789abcdef"}),
        });
        e.decision = Some(if allow { "allow" } else { "deny" }.to_owned());
        e.policy_ids = vec!["work".to_owned()];
        e.reasons = vec![
            if allow {
                "allowed_by_policy"
            } else {
                "no_permit"
            }
            .to_owned(),
        ];
        let chain: Vec<&String> = if rng.next(20) == 0 {
            vec![&ids[rng.next(agents)]]
        } else {
            Vec::new()
        };
        e.details = Some(json!({"chain": chain, "risk": {"score": 0}}));
        allows += usize::from(allow);
        body.clear();
        e.write_canonical(&mut body);
        rows.push(AuditRow {
            seq: seq as u64,
            time,
            kind: "decision".to_owned(),
            agent: e.agent.take(),
            user: None,
            decision: e.decision.take(),
            leaf: mandate_audit::merkle::leaf_hash(body.as_bytes()),
            body: body.clone(),
        });
        if rows.len() == SEED_BATCH || seq + 1 == decisions {
            store.append_audit(&rows, None).expect("append");
            rows.clear();
        }
    }
    println!(
        "seeded {agents} agents and {decisions} decisions ({allows} allows) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let opened = timer();
    let (state, admin) = fixture::node(dir.path(), &store, clock, random);
    println!(
        "node opened over the log in {:.1} s",
        opened.elapsed().as_secs_f64()
    );
    let app = mandate_http::router(Arc::clone(&state));

    let since = Timestamp::from_secs(now.secs() - 7_200).to_string();
    let due = Timestamp::from_secs(now.secs() + 86_400).to_string();
    let req = Request::post("/v1/reviews")
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"name": "bench", "since": since, "due": due}).to_string(),
        ))
        .expect("request");
    let started = timer();
    let res = app.clone().oneshot(req).await.expect("response");
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(status.as_u16(), 201, "{}", String::from_utf8_lossy(&bytes));
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    let review = &v["review"];
    assert_eq!(review["counts"]["items"], agents);
    assert_eq!(review["decisions_read"], allows);
    println!(
        "review of {agents} agents over {decisions} decisions ({allows} allows read): {secs:.1} s \
         ({:.0} decisions/s; response {} MB)",
        decisions as f64 / secs,
        bytes.len() / 1_000_000
    );
}
