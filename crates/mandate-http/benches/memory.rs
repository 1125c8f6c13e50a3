//! Resident memory of a node holding 100,000 agents, loaded and refreshed the way the
//! server does it: the agents (the `decide`/`memory` fixture: four labels, two grants and
//! an audience each) are written to a real SQLite store with 1,000 token cutoffs and
//! 1,000 revoked token ids, `Node::new` loads the first snapshot, and 100 policies
//! are activated through the admin API.
//!
//! Printed, from the process's `/proc/self/status`:
//! - steady state: `VmRSS` with one snapshot loaded;
//! - a refresh: `VmHWM` (the peak) is reset, then one agent is suspended through the
//!   admin API (`POST /v1/agents/{id}/suspend`: store write, `Node::refresh`, audit
//!   event), and the peak during it and `VmRSS` after are read;
//! - after 100 more refreshes (suspend/resume of other agents), to show nothing piles up.
//!
//! `cargo bench -p mandate-http --bench memory`; `MANDATE_BENCH_DIR=/dev/shm` puts the
//! store on tmpfs (writing 100,000 agents one transaction each is faster there).
//! Linux only (reads `/proc`); prints `n/a` elsewhere.

#![expect(
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "benchmark setup fails loudly and prints its results"
)]

#[expect(
    dead_code,
    reason = "the decide bench uses the in-memory snapshot helpers"
)]
mod fixture;

/// The allocator `mandate serve` uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use mandate_store::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mandate_core::clock::{Clock, SystemClock};
use mandate_core::random::{OsRandom, Random};
use mandate_core::time::Timestamp;
use mandate_http::bootstrap::{self, Bootstrap};
use mandate_http::keys::{KeyFiles, KeyState};
use mandate_http::{Node, ServerConfig};
use mandate_store::Store;
use mandate_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const AGENTS: usize = 100_000;
const POLICIES: usize = 100;
const SCHEMA: &str = include_str!("../../../examples/crm/schema.cedarschema");

/// A `kB` field of `/proc/self/status`, in MiB.
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn mib(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1} MiB"))
}

fn show(what: &str) {
    println!(
        "{what:<52} VmRSS {:>10}   VmHWM {:>10}",
        mib(status_mib("VmRSS:")),
        mib(status_mib("VmHWM:"))
    );
}

/// Resets `VmHWM` to the current `VmRSS` (Linux ≥ 4.0), so the next reading is the peak
/// of what happens in between.
fn reset_peak() {
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        println!("(could not reset VmHWM: the peaks below include the setup)");
    }
}

/// Sends one admin API call and checks it succeeded.
async fn call(app: &axum::Router, admin: &str, path: &str, body: Value) -> Value {
    let req = Request::post(path)
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("response");
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    assert!(
        status == StatusCode::OK || status == StatusCode::CREATED,
        "{path}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).expect("json")
}

#[expect(clippy::disallowed_methods, reason = "benchmark timing")]
fn timer() -> std::time::Instant {
    std::time::Instant::now()
}

#[tokio::main]
async fn main() {
    println!("memory: {AGENTS} agents, {POLICIES} policies, through a real store and Node");
    show("start");
    let dir = match std::env::var("MANDATE_BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d),
        Err(_) => tempfile::tempdir(),
    }
    .expect("tempdir");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let random: Arc<dyn Random> = Arc::new(OsRandom);
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("mandate.db")).expect("store"));

    let started = timer();
    let now = clock.now();
    for i in 0..AGENTS {
        let mut a = fixture::agent(i, AGENTS);
        a.created_at = now;
        a.updated_at = now;
        store.insert_agent(&a).expect("insert agent");
        if i % 100 == 0 {
            store
                .set_tokens_not_before(&a.id, Timestamp::from_secs(now.secs() - 3_600))
                .expect("cutoff");
        }
    }
    for i in 0..1000 {
        let jti = format!("tok_01JB{i:022}");
        store
            .revoke_token(&jti, Timestamp::from_secs(now.secs() + 3_600), now)
            .expect("revoke");
    }
    println!(
        "(stored {AGENTS} agents in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    show("agents stored (SQLite, nothing loaded)");

    let keys = KeyState::open(
        store.as_ref(),
        &KeyFiles::in_data_dir(dir.path()),
        clock.as_ref(),
        random.as_ref(),
    )
    .expect("keys");
    let Bootstrap::Created(admin) =
        bootstrap::ensure(store.as_ref(), None, clock.as_ref(), random.as_ref())
            .expect("bootstrap")
    else {
        unreachable!("a fresh store")
    };
    let admin = admin.expose().to_owned();
    let config = ServerConfig {
        issuer: "http://mandate.bench".to_owned(),
        default_audience: "http://mandate.bench".to_owned(),
        default_token_lifetime_secs: 3600,
        max_token_lifetime_secs: 3600,
        max_body_bytes: 4 * 1024 * 1024,
        audit_key_path: dir.path().join("audit-key.pem"),
        checkpoint: mandate_http::audit::CheckpointPolicy {
            every_events: 1000,
            every_secs: 10,
        },
        redact: BTreeMap::new(),
        mandates: Default::default(),
        users: Default::default(),
        dev_users: None,
        detect: mandate_http::detect::DetectSettings::default(),
        max_staleness: mandate_http::freshness::DEFAULT_MAX_STALENESS,
        reviews: Default::default(),
        ssf: Default::default(),
    };
    let started = timer();
    let state = Arc::new(
        Node::new(
            Arc::clone(&store),
            keys,
            clock,
            random,
            config,
            Arc::new(mandate_http::webhook::Signed),
        )
        .expect("state"),
    );
    println!(
        "(first snapshot loaded in {:.2} s)",
        started.elapsed().as_secs_f64()
    );
    let app = mandate_http::router(Arc::clone(&state));
    let v = call(
        &app,
        &admin,
        "/v1/policies",
        json!({"policies": fixture::policy_text(POLICIES), "schema_fragments": [SCHEMA]}),
    )
    .await;
    call(
        &app,
        &admin,
        &format!(
            "/v1/policies/{}/activate",
            v.get("version").expect("version")
        ),
        json!({}),
    )
    .await;
    let before = state.snapshot().expect("a fresh snapshot");
    assert_eq!(before.agents.len(), AGENTS);
    assert_eq!(before.policies.as_ref().map(|p| p.len()), Some(POLICIES));
    show("steady state: one snapshot (+ policies, store, audit)");

    reset_peak();
    let suspended = fixture::agent_id(7);
    let started = timer();
    call(
        &app,
        &admin,
        &format!("/v1/agents/{suspended}/suspend"),
        json!({"reason": "memory bench"}),
    )
    .await;
    let took = started.elapsed().as_secs_f64();
    show("refresh: one agent suspended (peak = during it)");
    println!("(the suspend call, refresh included, took {took:.2} s)");
    let after = state.snapshot().expect("a fresh snapshot");
    let unchanged = fixture::agent_id(8);
    assert!(
        after.agents.get(&suspended).map(|a| a.status)
            == Some(mandate_core::agent::AgentStatus::Suspended),
        "the suspension is in the next snapshot"
    );
    let shared = before
        .agents
        .values()
        .filter(|a| after.agents.get(&a.id).is_some_and(|b| std::ptr::eq(*a, b)))
        .count();
    let kept = before
        .agents
        .get_shared(&unchanged)
        .zip(after.agents.get_shared(&unchanged))
        .is_some_and(|(a, b)| Arc::ptr_eq(a, b));
    assert!(kept, "an unchanged agent is shared, not copied");
    println!(
        "(agents shared with the previous snapshot: {shared} of {})",
        after.agents.len()
    );
    drop((before, after));

    for i in 0..50 {
        let id = fixture::agent_id(1000 + i);
        for to in ["suspend", "resume"] {
            call(&app, &admin, &format!("/v1/agents/{id}/{to}"), json!({})).await;
        }
    }
    show("after 100 more refreshes (peak = since the first)");
}
