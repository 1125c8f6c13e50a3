//! The HTTP gateway's added latency: the same GET sent straight to an upstream on a
//! loopback port and through the gateway (token verified and stripped, decision by the
//! real decision path on a real SQLite store, its audit event committed before
//! forwarding, the upstream secret injected), one request at a time, in the same run,
//! interleaved in rounds so drift on a shared machine hits both alike.
//!
//! `cargo bench -p mandate-http --bench gateway` prints p50/p90/p99 of each and the
//! p50 overhead (gateway − direct). Target (issue 6): p50 overhead under 1 ms.

#![expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "benchmark setup fails loudly and prints its results"
)]

use std::collections::BTreeMap;
use std::sync::Arc;

use mandate_core::clock::{Clock, SystemClock};
use mandate_core::random::{OsRandom, Random};
use mandate_gateway::authz::Authorizer;
use mandate_gateway::http::{Credential, HttpConfig, Route, Template};
use mandate_http::bootstrap::{self, Bootstrap};
use mandate_http::gateway::GatewayAuthorizer;
use mandate_http::keys::{KeyFiles, KeyState};
use mandate_http::{Node, ServerConfig};
use mandate_store::Store;
use mandate_store_sqlite::SqliteStore;
use serde_json::json;

const ROUNDS: usize = 20;
const PER_ROUND: usize = 200;

async fn serve(app: axum::Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    format!("http://{addr}")
}

#[expect(clippy::disallowed_methods, reason = "benchmark timing")]
async fn time(client: &reqwest::Client, url: &str, token: Option<&str>) -> f64 {
    let start = std::time::Instant::now();
    let mut req = if url.ends_with("/v1/authorize") {
        client.post(url).json(&json!({"action": "api:read",
            "resource": {"type": "Api::Thing", "id": "t1"}}))
    } else {
        client.get(url)
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("send");
    assert_eq!(r.status(), 200, "{url}");
    let _ = r.bytes().await.expect("body");
    start.elapsed().as_secs_f64() * 1e6
}

fn pct(v: &mut [f64], p: usize) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * p / 100).min(v.len() - 1)]
}

#[tokio::main]
async fn main() {
    // MANDATE_BENCH_DIR=/dev/shm puts the store on tmpfs, to see the gateway's cost
    // without the disk's flush.
    let dir = match std::env::var("MANDATE_BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d),
        Err(_) => tempfile::tempdir(),
    }
    .expect("tempdir");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let random: Arc<dyn Random> = Arc::new(OsRandom);
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("mandate.db")).expect("store"));
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
    let api = "http://127.0.0.1:1".to_owned();
    let config = ServerConfig {
        issuer: api.clone(),
        default_audience: api.clone(),
        default_token_lifetime_secs: 3600,
        max_token_lifetime_secs: 3600,
        max_body_bytes: 64 * 1024,
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
        dpop: Default::default(),
        client_certs: Default::default(),
        ssf: Default::default(),
    };
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
    let admin_api = serve(mandate_http::router(Arc::clone(&state))).await;
    let http = mandate_egress::default_builder()
        .build()
        .expect("an HTTP client");
    let call = |m: reqwest::Method, path: &str, body: serde_json::Value| {
        http.request(m, format!("{admin_api}{path}"))
            .bearer_auth(admin.expose())
            .json(&body)
            .send()
    };
    let upstream = serve(axum::Router::new().fallback(|| async { "{\"ok\":true}" })).await;
    // The gateway listens before its routes exist, so its URL (the token audience) is known.
    let gl = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gw_url = format!("http://{}", gl.local_addr().expect("addr"));
    let resource = format!("{gw_url}/api");
    call(
        reqwest::Method::PUT,
        "/v1/gateway/secrets/key",
        json!({"value": "upstream-secret-0123456789"}),
    )
    .await
    .expect("secret");
    let schema = r#"namespace Api { entity Thing; }
namespace Mandate { action "api:read" in ["all"] appliesTo { principal: [Agent], resource: [Api::Thing] }; }"#;
    let v: serde_json::Value = call(
        reqwest::Method::POST,
        "/v1/policies",
        json!({"policies": "permit (principal, action, resource);", "schema_fragments": [schema]}),
    )
    .await
    .expect("policy")
    .json()
    .await
    .expect("json");
    call(
        reqwest::Method::POST,
        &format!("/v1/policies/{}/activate", v["version"]),
        json!({}),
    )
    .await
    .expect("activate");
    let a: serde_json::Value = call(
        reqwest::Method::POST,
        "/v1/agents",
        json!({"name": "bench", "owner": "o@example.com",
               "boundary": {"grants": [{"actions": ["api:*"], "resources": ["*"]}],
                            "audiences": [resource]}}),
    )
    .await
    .expect("agent")
    .json()
    .await
    .expect("json");
    let id = a["id"].as_str().expect("id").to_owned();
    let c: serde_json::Value = call(
        reqwest::Method::POST,
        &format!("/v1/agents/{id}/credentials"),
        json!({"type": "client_secret"}),
    )
    .await
    .expect("credential")
    .json()
    .await
    .expect("json");
    let t: serde_json::Value = http
        .post(format!("{admin_api}/oauth/token"))
        .basic_auth(&id, c["client_secret"].as_str())
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", resource.as_str()),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = t["access_token"].as_str().expect("access_token").to_owned();

    let authz: Arc<dyn Authorizer> = Arc::new(GatewayAuthorizer::new(Arc::clone(&state)));
    let route = Route {
        prefix: "/api".into(),
        upstream: upstream.clone(),
        actions: [("*".to_owned(), Template::parse("api:read").expect("t"))].into(),
        resource_type: "Api::Thing".into(),
        resource_id: Template::parse("{path.0}").expect("t"),
        context: BTreeMap::new(),
        resource_attributes: BTreeMap::new(),
        credential: Some(Credential::Header {
            name: "x-api-key".parse().expect("header"),
            secret: "key".into(),
        }),
        tls: mandate_egress::Settings::default(),
    };
    let gw = mandate_gateway::http::router(
        HttpConfig {
            public_url: gw_url.clone(),
            routes: vec![route],
            timeout: std::time::Duration::from_secs(10),
            max_body_bytes: 1 << 20,
            body_timeout: std::time::Duration::from_secs(10),
        },
        authz,
    )
    .expect("gateway router");
    tokio::spawn(async move { axum::serve(gl, gw).await });

    let client = mandate_egress::default_builder()
        .build()
        .expect("an HTTP client");
    let direct_url = format!("{upstream}/things/t1");
    let via_url = format!("{gw_url}/api/things/t1");
    let authorize_url = format!("{admin_api}/v1/authorize");
    for _ in 0..200 {
        time(&client, &direct_url, None).await;
        time(&client, &via_url, Some(&token)).await;
        time(&client, &authorize_url, Some(&token)).await;
    }
    let (mut direct, mut via, mut decide) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            direct.push(time(&client, &direct_url, None).await);
        }
        for _ in 0..PER_ROUND {
            via.push(time(&client, &via_url, Some(&token)).await);
        }
        for _ in 0..PER_ROUND {
            decide.push(time(&client, &authorize_url, Some(&token)).await);
        }
    }
    let (d50, v50) = (pct(&mut direct, 50), pct(&mut via, 50));
    println!(
        "gateway latency, {} sequential GETs each, µs:",
        ROUNDS * PER_ROUND
    );
    println!(
        "  direct   p50 {d50:>8.0}  p90 {:>8.0}  p99 {:>8.0}",
        pct(&mut direct, 90),
        pct(&mut direct, 99)
    );
    println!(
        "  gateway  p50 {v50:>8.0}  p90 {:>8.0}  p99 {:>8.0}",
        pct(&mut via, 90),
        pct(&mut via, 99)
    );
    println!(
        "  /v1/authorize (the same decision, as an API call) p50 {:>8.0}  p90 {:>8.0}  p99 {:>8.0}",
        pct(&mut decide, 50),
        pct(&mut decide, 90),
        pct(&mut decide, 99)
    );
    println!(
        "  p50 overhead {:.0} µs ({:.2}× direct)",
        v50 - d50,
        v50 / d50
    );
    state.audit.close();
}
