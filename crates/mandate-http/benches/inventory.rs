//! The inventory of 100,000 agents (issue 24's target: under 1 s), against the floor in
//! the same run: reading the same agents and credentials from the store and nothing
//! else.
//!
//! A real SQLite store and `Node` with 100,000 agents (the `decide` fixture: two grants,
//! four labels), a client secret each, last activity for every agent and credential,
//! and 100 active policies. Timed, best of five: the inventory use case (every row and
//! its findings), and `GET /v1/inventory?limit=100000` (the same, rendered as JSON).
//!
//! `cargo bench -p mandate-http --bench inventory`; `MANDATE_BENCH_DIR=/dev/shm` puts
//! the store on tmpfs.

#![expect(
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "benchmark setup fails loudly and prints its results"
)]

#[expect(dead_code, reason = "the decide bench uses the snapshot helpers")]
mod fixture;

/// The allocator `mandate serve` uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mandate_core::clock::{Clock, SystemClock};
use mandate_core::credential::{Credential, CredentialKind};
use mandate_core::id::CredentialId;
use mandate_core::random::{OsRandom, Random};
use mandate_core::time::Timestamp;
use mandate_govern::findings::Thresholds;
use mandate_service::inventory::{InventoryQuery, inventory};
use mandate_store::Store;
use mandate_store::prelude::*;
use mandate_store_sqlite::SqliteStore;
use tower::ServiceExt as _;

const AGENTS: usize = 100_000;
const POLICIES: usize = 100;
const RUNS: usize = 5;
const SCHEMA: &str = include_str!("../../../examples/crm/schema.cedarschema");

#[expect(clippy::disallowed_methods, reason = "benchmark timing")]
fn timer() -> std::time::Instant {
    std::time::Instant::now()
}

/// The best of [`RUNS`] runs of `f`, in seconds.
async fn best<F: std::future::Future<Output = ()>>(mut f: impl FnMut() -> F) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..RUNS {
        let started = timer();
        f().await;
        best = best.min(started.elapsed().as_secs_f64());
    }
    best
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
    let seeding = timer();
    let mut activity = Vec::with_capacity(2 * AGENTS);
    store
        .write_unit(&mut |r| {
            for i in 0..AGENTS {
                let a = fixture::agent(i, AGENTS);
                r.insert_agent(&a)?;
                let c = Credential {
                    id: CredentialId::generate(clock.as_ref(), random.as_ref())
                        .expect("credential id"),
                    agent_id: a.id.clone(),
                    kind: CredentialKind::ClientSecret,
                    public_jwk: None,
                    key_id: None,
                    cert_name: None,
                    created_at: Timestamp::from_secs(now.secs() - 40 * 86_400),
                    expires_at: None,
                    revoked_at: None,
                    replaced_by: None,
                };
                r.insert_credential(&c, Some("$argon2id$bench"))?;
                // Every third agent idle for 45 days: dormant, its credential stale.
                let last = if i % 3 == 0 { 45 } else { 1 };
                let at = Timestamp::from_secs(now.secs() - last * 86_400);
                activity.push((a.id.to_string(), at));
                activity.push((c.id.to_string(), at));
            }
            Ok(())
        })
        .expect("seed");
    store.record_activity(&activity).expect("activity");
    let (state, admin) = fixture::node(dir.path(), &store, clock, random);
    let actor = mandate_service::actor::Actor::Admin(
        mandate_core::id::AdminTokenId::parse("adm_01JA0000000000000000000000").expect("id"),
    );
    let added = mandate_service::policies::add(
        &state,
        &actor,
        mandate_service::policies::PolicySource {
            policies: fixture::policy_text(POLICIES),
            schema_fragments: vec![SCHEMA.to_owned()],
            ..Default::default()
        },
    )
    .await
    .expect("policies");
    mandate_service::policies::activate(
        &state,
        &actor,
        mandate_service::policies::Target::Version(added.version),
    )
    .await
    .expect("activate");
    println!(
        "seeded {AGENTS} agents, {AGENTS} credentials and their activity in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let floor = best(|| {
        let store = Arc::clone(&store);
        async move {
            tokio::task::spawn_blocking(move || {
                let mut n = 0_usize;
                store
                    .read_unit(&mut |r| {
                        r.for_each_agent(&mut |_| n += 1)?;
                        r.for_each_credential(&mut |_| n += 1)?;
                        Ok(())
                    })
                    .expect("scan");
                assert_eq!(n, 2 * AGENTS);
            })
            .await
            .expect("scan task");
        }
    })
    .await;
    println!("floor: {AGENTS} agents and their credentials read from the store in {floor:.3} s");

    let query = || InventoryQuery {
        owner: None,
        status: None,
        finding: None,
        labels: None,
        thresholds: Thresholds::RECOMMENDED,
    };
    let inv = inventory(&state, query()).await.expect("inventory");
    assert_eq!(inv.rows.len(), AGENTS);
    let dormant = inv
        .findings
        .get(&mandate_govern::findings::Code::Dormant)
        .copied();
    assert_eq!(
        dormant,
        Some(AGENTS.div_ceil(3) as u64),
        "{:?}",
        inv.findings
    );
    drop(inv);
    let use_case = best(|| {
        let state = Arc::clone(&state);
        let q = query();
        async move {
            let inv = inventory(&state, q).await.expect("inventory");
            assert_eq!(inv.rows.len(), AGENTS);
        }
    })
    .await;
    println!(
        "inventory: {AGENTS} agents with their findings in {use_case:.3} s (best of {RUNS}; target < 1 s), {:.1}× the floor",
        use_case / floor
    );

    let app = mandate_http::router(Arc::clone(&state));
    let http = best(|| {
        let app = app.clone();
        let admin = admin.clone();
        async move {
            let req = Request::get(format!("/v1/inventory?limit={AGENTS}"))
                .header("authorization", format!("Bearer {admin}"))
                .body(Body::empty())
                .expect("request");
            let res = app.oneshot(req).await.expect("response");
            assert_eq!(res.status(), StatusCode::OK);
            let body = axum::body::to_bytes(res.into_body(), usize::MAX)
                .await
                .expect("body");
            assert!(body.len() > AGENTS * 100);
        }
    })
    .await;
    println!(
        "GET /v1/inventory?limit={AGENTS}: the same as JSON in {http:.3} s (best of {RUNS}), {:.1}× the floor",
        http / floor
    );
}
