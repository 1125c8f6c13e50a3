//! Policy impact replay throughput (issue 24's target: ≥ 100,000 recorded decisions
//! re-decided per second), against the live decision rate measured in the same run as
//! its baseline.
//!
//! A real SQLite store and `Node` with 1,000 agents and 100 policies (the `decide`
//! fixture). The live rate: 20,000 decisions through `POST /v1/authorize/batch` (100 a
//! request, an enforcement point's service token naming the agent; half allowed, half
//! `no_permit`), each decided and durably recorded. The replay rate: `POST /v1/policies/{version}/replay` of those
//! 20,000 recorded decisions with the active version (the log read from the store, each
//! event parsed and re-decided), best of three.
//!
//! `cargo bench -p mandate-http --bench replay`; `MANDATE_BENCH_DIR=/dev/shm` puts the
//! store on tmpfs.

#![expect(
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::indexing_slicing,
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

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mandate_core::clock::{Clock, SystemClock};
use mandate_core::random::{OsRandom, Random};
use mandate_store::Store;
use mandate_store::prelude::*;
use mandate_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const AGENTS: usize = 1_000;
const POLICIES: usize = 100;
const DECISIONS: usize = 20_000;
const BATCH: usize = 100;
const SCHEMA: &str = include_str!("../../../examples/crm/schema.cedarschema");

async fn call(app: &axum::Router, bearer: &str, path: &str, body: Value) -> Value {
    let req = Request::post(path)
        .header("authorization", format!("Bearer {bearer}"))
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
    for i in 0..AGENTS {
        let mut a = fixture::agent(i, AGENTS);
        a.created_at = now;
        a.updated_at = now;
        store.insert_agent(&a).expect("insert agent");
    }
    let (state, admin) = fixture::node(dir.path(), &store, clock, random);
    let app = mandate_http::router(Arc::clone(&state));
    let v = call(
        &app,
        &admin,
        "/v1/policies",
        json!({"policies": fixture::policy_text(POLICIES), "schema_fragments": [SCHEMA]}),
    )
    .await;
    let version = v.get("version").expect("version").clone();
    call(
        &app,
        &admin,
        &format!("/v1/policies/{version}/activate"),
        json!({}),
    )
    .await;
    let svc = call(
        &app,
        &admin,
        "/v1/admin-tokens",
        json!({"name": "pep", "role": "service"}),
    )
    .await;
    let svc = svc["token"].as_str().expect("service token").to_owned();

    let started = timer();
    let mut allowed = 0_usize;
    for b in 0..DECISIONS / BATCH {
        let requests: Vec<Value> = (0..BATCH)
            .map(|i| {
                // Every other one from the sales agent (allowed), the rest from
                // agents of other teams (no permit): both are re-decided.
                let agent = if i % 2 == 0 {
                    fixture::asker(AGENTS)
                } else {
                    (b * BATCH + i) % AGENTS
                };
                json!({"principal": fixture::agent_id(agent).to_string(),
                   "action": "crm:read",
                   "resource": {"type": "Crm::Contact", "id": format!("c-{i}"),
                                "attributes": {"team": "sales", "region": "emea"}},
                   "context": {"data_class": "internal", "source_ip": "192.168.1.10"}})
            })
            .collect();
        let r = call(
            &app,
            &svc,
            "/v1/authorize/batch",
            json!({"requests": requests}),
        )
        .await;
        allowed += r["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter(|d| d["decision"] == "allow")
            .count();
    }
    let live = started.elapsed().as_secs_f64();
    println!(
        "live: {DECISIONS} decisions decided and recorded in {live:.2} s: {:.0} decisions/s ({allowed} allowed)",
        DECISIONS as f64 / live
    );

    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = timer();
        let r = call(
            &app,
            &admin,
            &format!("/v1/policies/{version}/replay"),
            json!({}),
        )
        .await;
        best = best.min(started.elapsed().as_secs_f64());
        assert_eq!(r["counts"]["decisions"], DECISIONS, "{r}");
        assert_eq!(r["counts"]["same"], DECISIONS, "{r}");
    }
    println!(
        "replay: {DECISIONS} recorded decisions re-decided in {best:.3} s (best of 3): {:.0} decisions/s, {:.1}× the live rate",
        DECISIONS as f64 / best,
        live / best
    );
}
