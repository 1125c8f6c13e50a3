//! The HTTP surface through the real router (`tower::ServiceExt::oneshot`, no socket):
//! table-driven bad input on the admin API (`tests/data/bad_input/*.json`), the OAuth
//! token, introspection and revocation endpoints, credential and key rotation, the
//! public metadata documents, mandates with their approvals (`mandates.rs`), the kill
//! switch's containment and incident bundles (`incidents.rs`), the OPA-compatible
//! router on bad input (`opa.rs`), the HTTP export sinks (`export_http.rs`) and the
//! Shared Signals receiver's edge refusals (`ssf.rs`).
//!
//! Every test builds its own server on a fresh SQLite file with a manual clock, so
//! tests move time by hand and never sleep; the export sinks are the exception: they
//! talk to receivers on loopback ports and wait (briefly) for retries and
//! acknowledgements, as real delivery does.

#![expect(
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers fail the test loudly; JSON is read by index"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mandate_core::clock::{Clock, ManualClock};
use mandate_core::random::{OsRandom, Random};
use mandate_http::bootstrap::{self, Bootstrap};
use mandate_http::keys::{KeyFiles, KeyState};
use mandate_http::{Node, ServerConfig};
use mandate_store::Store;
use mandate_store_sqlite::SqliteStore;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ISSUER: &str = "http://mandate.test";
const TOKEN_ENDPOINT: &str = "http://mandate.test/oauth/token";
const DEFAULT_LIFETIME: i64 = 300;
const MAX_LIFETIME: i64 = 3600;
const MAX_BODY: usize = 64 * 1024;
const FORM: &str = "application/x-www-form-urlencoded";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

mod anomalies;
mod authzen;
mod discovery_runs;
mod dpop;
mod export_http;
mod fast_paths;
mod incidents;
mod inventory;
mod mandates;
mod metrics;
mod mtls;
mod opa;
mod policies;
mod replay;
mod reviews;
mod ssf;
mod ssf_streams;
mod tls_out;
/// The outbound-TLS tests' PKI and HTTPS servers, one file shared with the gateway's
/// tests (which own it).
#[path = "../../../mandate-gateway/tests/gateway/tls_pki.rs"]
mod tls_pki;
mod token_surfaces;

// ---- harness ----

/// A webhook receiver on a loopback port: its URL, and each delivery's
/// `Mandate-Signature` header and body as they arrive.
async fn webhook_receiver() -> (String, tokio::sync::mpsc::Receiver<(String, Bytes)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let (receiver, rx) = webhook_router();
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    (url, rx)
}

/// The receiver's routes (`POST /hook`), served over plain HTTP by
/// [`webhook_receiver`] or over TLS by the outbound-TLS tests: each delivery's
/// `Mandate-Signature` header and body, as they arrive.
fn webhook_router() -> (axum::Router, tokio::sync::mpsc::Receiver<(String, Bytes)>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<(String, Bytes)>(4);
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let sig = headers
                    .get(mandate_http::webhook::SIGNATURE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send((sig, body)).await;
                StatusCode::NO_CONTENT
            }
        }),
    );
    (router, rx)
}

/// A response, read whole.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }

    /// Asserts an RFC 6749 §5.2 error response.
    #[track_caller]
    fn expect_oauth_error(&self, status: u16, error: &str) {
        self.expect(status);
        assert_eq!(
            self.json()["error"],
            error,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header(header::CACHE_CONTROL), Some("no-store"));
        if status == 401 {
            assert!(
                self.header(header::WWW_AUTHENTICATE).is_some(),
                "401 needs a challenge"
            );
        }
    }
}

/// An agent with a client secret.
struct Client {
    id: String,
    secret: String,
}

/// A server on a fresh database with a manual clock and the bootstrap admin token.
struct Env {
    _dir: tempfile::TempDir,
    app: Router,
    clock: Arc<ManualClock>,
    admin: String,
    /// The state behind `app`, for what no endpoint does (the mandate sweeper).
    state: Arc<Node>,
}

impl Env {
    fn new() -> Self {
        Self::with_config(|_| {})
    }

    /// A server whose configuration `adjust` changed first (see `mandates.rs`).
    fn with_config(adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::at_millis(1_700_000_000_000));
        let random: Arc<dyn Random> = Arc::new(OsRandom);
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("mandate.db")).expect("open store"));
        let files = KeyFiles::in_data_dir(dir.path());
        let keys =
            KeyState::open(store.as_ref(), &files, clock.as_ref(), random.as_ref()).expect("keys");
        let admin = match bootstrap::ensure(store.as_ref(), None, clock.as_ref(), random.as_ref())
            .expect("bootstrap")
        {
            Bootstrap::Created(secret) => secret.expose().to_owned(),
            Bootstrap::Supplied | Bootstrap::Existing => {
                panic!("a fresh store creates its bootstrap token")
            }
        };
        let mut config = ServerConfig {
            issuer: ISSUER.into(),
            default_audience: ISSUER.into(),
            default_token_lifetime_secs: 300,
            max_token_lifetime_secs: 3600,
            max_body_bytes: MAX_BODY,
            audit_key_path: dir.path().join("audit-key.pem"),
            checkpoint: mandate_http::audit::CheckpointPolicy {
                every_events: 100,
                every_secs: 3600,
            },
            redact: Default::default(),
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
        adjust(&mut config);
        let clock_dyn: Arc<dyn Clock> = clock.clone();
        let state = Arc::new(
            Node::new(
                store,
                keys,
                clock_dyn,
                random,
                config,
                Arc::new(mandate_http::webhook::Signed),
            )
            .expect("state"),
        );
        Self {
            _dir: dir,
            app: mandate_http::router(Arc::clone(&state)),
            clock,
            admin,
            state,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().secs()
    }

    fn advance(&self, secs: i64) {
        self.clock.advance_secs(secs);
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let res = self
            .app
            .clone()
            .oneshot(req)
            .await
            .expect("the router is infallible");
        let (parts, body) = res.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("response body");
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// A JSON request with `Authorization: Bearer <bearer>`.
    async fn bearer(&self, bearer: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        req = req.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.send(req.expect("request")).await
    }

    /// An admin-API call with the bootstrap token.
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.bearer(&self.admin.clone(), method, path, body).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).expect("request"))
            .await
    }

    /// A form POST with a raw body, an optional Basic client and a content type.
    async fn raw_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        content_type: &str,
        body: String,
    ) -> Reply {
        let mut req = Request::post(path).header(header::CONTENT_TYPE, content_type);
        if let Some((id, secret)) = basic {
            req = req.header(
                header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
            );
        }
        self.send(req.body(Body::from(body)).expect("request"))
            .await
    }

    async fn form(&self, path: &str, basic: Option<(&str, &str)>, pairs: &[(&str, &str)]) -> Reply {
        self.raw_form(path, basic, FORM, encode(pairs)).await
    }

    /// Registers an agent and returns its id.
    async fn register(&self, name: &str, boundary: Value) -> String {
        let r = self
            .admin(
                Method::POST,
                "/v1/agents",
                Some(json!({"name": name, "owner": "alice@example.com", "boundary": boundary})),
            )
            .await;
        r.expect(201);
        r.json()["id"].as_str().expect("agent id").to_owned()
    }

    /// Adds a client secret; returns (credential id, secret).
    async fn add_secret(&self, agent: &str) -> (String, String) {
        let r = self
            .admin(
                Method::POST,
                &format!("/v1/agents/{agent}/credentials"),
                Some(json!({"type": "client_secret"})),
            )
            .await;
        r.expect(201);
        let v = r.json();
        (
            v["credential"]["id"]
                .as_str()
                .expect("credential id")
                .to_owned(),
            v["client_secret"]
                .as_str()
                .expect("client secret")
                .to_owned(),
        )
    }

    async fn client(&self, name: &str) -> Client {
        self.client_with(name, json!({})).await
    }

    async fn client_with(&self, name: &str, boundary: Value) -> Client {
        let id = self.register(name, boundary).await;
        let (_, secret) = self.add_secret(&id).await;
        Client { id, secret }
    }

    /// `client_credentials` by `client_secret_basic`, with extra parameters.
    async fn token_request(&self, c: &Client, extra: &[(&str, &str)]) -> Reply {
        let mut pairs = vec![("grant_type", "client_credentials")];
        pairs.extend_from_slice(extra);
        self.form("/oauth/token", Some((&c.id, &c.secret)), &pairs)
            .await
    }

    /// An access token for `c` (asserting success).
    async fn token(&self, c: &Client) -> String {
        let r = self.token_request(c, &[]).await;
        r.expect(200);
        r.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Adds `policies` (with `schema` fragments) as a version and activates it.
    async fn activate(&self, policies: &str, schema: &[&str]) {
        let r = self
            .admin(
                Method::POST,
                "/v1/policies",
                Some(json!({"policies": policies, "schema_fragments": schema})),
            )
            .await;
        r.expect(201);
        let v = r.json()["version"].as_i64().expect("version");
        self.admin(Method::POST, &format!("/v1/policies/{v}/activate"), None)
            .await
            .expect(200);
    }

    /// `POST /v1/authorize` reading contact `c-1` with `token` as the agent's own
    /// bearer: (decision, first reason). The body was read, so the connection stays open.
    async fn read_contact(&self, token: &str) -> (String, String) {
        let r = self
            .bearer(
                token,
                Method::POST,
                "/v1/authorize",
                Some(json!({"action": "crm:read",
                            "resource": {"type": "Crm::Contact", "id": "c-1"}})),
            )
            .await;
        r.expect(200);
        assert!(r.headers.get("connection").is_none(), "the body was read");
        let v = r.json();
        (
            v["decision"].as_str().expect("decision").to_owned(),
            v["reasons"][0].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Introspects `token` as the bootstrap admin.
    async fn introspect(&self, token: &str) -> Value {
        let r = self
            .bearer_form(
                "/oauth/introspect",
                &self.admin.clone(),
                &[("token", token)],
            )
            .await;
        r.expect(200);
        r.json()
    }

    async fn bearer_form(&self, path: &str, bearer: &str, pairs: &[(&str, &str)]) -> Reply {
        let req = Request::post(path)
            .header(header::CONTENT_TYPE, FORM)
            .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
            .body(Body::from(encode(pairs)))
            .expect("request");
        self.send(req).await
    }

    /// A new admin token with `role`.
    async fn admin_token(&self, role: &str) -> String {
        let r = self
            .admin(
                Method::POST,
                "/v1/admin-tokens",
                Some(json!({"name": role, "role": role})),
            )
            .await;
        r.expect(201);
        r.json()["token"].as_str().expect("token").to_owned()
    }

    async fn published_kids(&self) -> Vec<String> {
        let r = self.get("/.well-known/jwks.json").await;
        r.expect(200);
        r.json()["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    }
}

fn encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The (unverified) header and claims of a JWT.
fn jwt_parts(token: &str) -> (Value, Value) {
    let part = |i: usize| -> Value {
        let seg = token.split('.').nth(i).expect("three JWT segments");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).expect("base64url"))
            .expect("JSON segment")
    };
    (part(0), part(1))
}

fn random_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    OsRandom.fill(&mut b).expect("random");
    b
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---- bad input, as data ----

/// One admin request made before the case (e.g. decommission the agent first).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    method: String,
    path: String,
    #[serde(default)]
    body: Option<Value>,
}

/// A `tests/data/bad_input/<case>.json` file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BadInputCase {
    /// What the case checks, for humans.
    #[serde(default)]
    about: String,
    #[serde(default)]
    setup: Vec<Step>,
    method: String,
    /// `{agent}` is the id of a freshly registered agent, `{credential}` a client
    /// secret of it.
    path: String,
    /// `{admin}`, `{auditor}` and `{agent_token}` are replaced by such credentials.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
    /// Send `body` repeated this many times (for oversized bodies).
    #[serde(default)]
    body_repeat: Option<usize>,
    expect_status: u16,
    expect_code: String,
}

/// Everything the admin API shows, to check a refused request changed nothing.
async fn snapshot(env: &Env, agent: &str) -> Value {
    let mut out = serde_json::Map::new();
    for path in [
        "/v1/agents?limit=500".to_owned(),
        format!("/v1/agents/{agent}"),
        format!("/v1/agents/{agent}/credentials"),
        "/v1/admin-tokens".to_owned(),
        "/v1/keys".to_owned(),
        "/ssf/stream".to_owned(),
        "/v1/reviews".to_owned(),
    ] {
        let r = env.admin(Method::GET, &path, None).await;
        r.expect(200);
        out.insert(path, r.json());
    }
    Value::Object(out)
}

async fn run_bad_input(name: &str, case: BadInputCase) -> Result<(), String> {
    let env = Env::new();
    let agent = env.register("fixture-agent", json!({})).await;
    // Credentials named by the case are made only when it uses them (Argon2 is slow).
    let uses = |p: &str| {
        case.path.contains(p)
            || case.headers.values().any(|v| v.contains(p))
            || case.setup.iter().any(|s| s.path.contains(p))
    };
    let auditor = if uses("{auditor}") {
        env.admin_token("auditor").await
    } else {
        String::new()
    };
    let agent_token = if uses("{agent_token}") {
        let c = env.client("token-holder").await;
        env.token(&c).await
    } else {
        String::new()
    };
    let credential = if uses("{credential}") {
        env.add_secret(&agent).await.0
    } else {
        String::new()
    };
    let fill = |s: &str| {
        s.replace("{agent}", &agent)
            .replace("{credential}", &credential)
            .replace("{admin}", &env.admin)
            .replace("{auditor}", &auditor)
            .replace("{agent_token}", &agent_token)
    };
    for step in &case.setup {
        let method = Method::from_bytes(step.method.as_bytes())
            .map_err(|e| format!("{name}: setup method: {e}"))?;
        let r = env
            .admin(method, &fill(&step.path), step.body.clone())
            .await;
        if !r.status.is_success() {
            return Err(format!(
                "{name}: setup {} {} gave {}",
                step.method, step.path, r.status
            ));
        }
    }
    let before = snapshot(&env, &agent).await;

    let method =
        Method::from_bytes(case.method.as_bytes()).map_err(|e| format!("{name}: method: {e}"))?;
    let mut req = Request::builder().method(method).uri(fill(&case.path));
    for (k, v) in &case.headers {
        req = req.header(k.as_str(), fill(v));
    }
    let body = fill(&case.body).repeat(case.body_repeat.unwrap_or(1));
    let reply = env
        .send(
            req.body(Body::from(body))
                .map_err(|e| format!("{name}: request: {e}"))?,
        )
        .await;

    let mut problems = Vec::new();
    if reply.status.as_u16() != case.expect_status {
        problems.push(format!(
            "status {} (want {})",
            reply.status.as_u16(),
            case.expect_status
        ));
    }
    if reply.header(header::CONTENT_TYPE) != Some("application/problem+json") {
        problems.push(format!(
            "content type {:?}",
            reply.header(header::CONTENT_TYPE)
        ));
    }
    match serde_json::from_slice::<Value>(&reply.body) {
        Ok(v) => {
            if v["code"] != case.expect_code.as_str() {
                problems.push(format!("code {} (want {})", v["code"], case.expect_code));
            }
            if v["status"] != reply.status.as_u16()
                || !v["detail"].is_string()
                || !v["type"].is_string()
            {
                problems.push(format!("not an RFC 9457 problem: {v}"));
            }
        }
        Err(e) => problems.push(format!("body is not JSON: {e}")),
    }
    if reply.status == StatusCode::UNAUTHORIZED && reply.header(header::WWW_AUTHENTICATE).is_none()
    {
        problems.push("401 without WWW-Authenticate".into());
    }
    if snapshot(&env, &agent).await != before {
        problems.push("the request changed stored state".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{name} ({}): {} -- body: {}",
            case.about,
            problems.join("; "),
            String::from_utf8_lossy(&reply.body)
        ))
    }
}

#[tokio::test]
async fn bad_input_cases() {
    let files = case_files::<BadInputCase>("bad_input", 20);
    let total = files.len();
    let mut failures = Vec::new();
    for (name, case) in files {
        if let Err(e) = run_bad_input(&name, case).await {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        total,
        failures.join("\n")
    );
}

/// The `tests/data/<dir>/*.json` cases by file stem, sorted, each checked to read as a
/// `T` (else the test fails naming the file); at least `min` of them.
fn case_files<T: serde::de::DeserializeOwned>(dir: &str, min: usize) -> Vec<(String, T)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= min,
        "only {} cases in {}",
        files.len(),
        dir.display()
    );
    files
        .iter()
        .map(|path| {
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(path).expect("read case");
            let case = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not a valid case: {e}", path.display()));
            (name, case)
        })
        .collect()
}

// ---- registry ----

#[tokio::test]
async fn agents_list_pages_and_filters() {
    let env = Env::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        let owner = if i % 2 == 0 {
            "alice@example.com"
        } else {
            "bob@example.com"
        };
        let body = json!({"name": format!("pager-{i}"), "owner": owner, "labels": {"tier": format!("t{}", i % 2)}});
        let r = env.admin(Method::POST, "/v1/agents", Some(body)).await;
        r.expect(201);
        ids.push(r.json()["id"].as_str().unwrap().to_owned());
        env.clock.advance_secs(1);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/agents?limit=2".to_owned();
    loop {
        let page = env.admin(Method::GET, &path, None).await;
        page.expect(200);
        let v = page.json();
        seen.extend(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/agents?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every agent once, in creation order");

    let names = |v: Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = env
        .admin(Method::GET, "/v1/agents?owner=bob%40example.com", None)
        .await;
    assert_eq!(names(r.json()), ["pager-1", "pager-3"]);
    let r = env
        .admin(Method::GET, "/v1/agents?label=tier%3Dt0", None)
        .await;
    assert_eq!(names(r.json()), ["pager-0", "pager-2", "pager-4"]);
    env.admin(
        Method::POST,
        &format!("/v1/agents/{}/suspend", ids[2]),
        None,
    )
    .await
    .expect(200);
    let r = env
        .admin(Method::GET, "/v1/agents?status=suspended", None)
        .await;
    assert_eq!(names(r.json()), ["pager-2"]);
    let r = env
        .admin(
            Method::GET,
            "/v1/agents?status=active&owner=alice%40example.com",
            None,
        )
        .await;
    assert_eq!(names(r.json()), ["pager-0", "pager-4"]);
    // Auditors read.
    let auditor = env.admin_token("auditor").await;
    env.bearer(&auditor, Method::GET, "/v1/agents", None)
        .await
        .expect(200);
    env.bearer(
        &auditor,
        Method::GET,
        &format!("/v1/agents/{}", ids[0]),
        None,
    )
    .await
    .expect(200);
}

// ---- token endpoint ----

/// What is wrong, Basic credentials, content type, body, status, `error`.
type TokenCase<'a> = (
    &'a str,
    Option<(&'a str, &'a str)>,
    &'a str,
    String,
    u16,
    &'a str,
);

#[tokio::test]
async fn client_secret_basic_issues_a_bearer_jwt() {
    let env = Env::new();
    let c = env.client("basic-bot").await;
    let r = env.token_request(&c, &[]).await;
    r.expect(200);
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(r.header(header::PRAGMA), Some("no-cache"));
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], DEFAULT_LIFETIME);
    assert!(body.get("scope").is_none(), "no scope asked, none granted");
    let token = body["access_token"].as_str().unwrap();
    let (h, claims) = jwt_parts(token);
    assert_eq!(h["alg"], "EdDSA");
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(env.published_kids().await, [h["kid"].as_str().unwrap()]);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], c.id.as_str());
    assert_eq!(claims["client_id"], c.id.as_str());
    assert_eq!(claims["aud"], ISSUER, "the default audience");
    assert_eq!(claims["iat"], env.now());
    assert_eq!(claims["exp"], env.now() + DEFAULT_LIFETIME);
    assert!(claims["jti"].as_str().unwrap().starts_with("tok_"));
}

#[tokio::test]
async fn client_secret_post_with_scope_and_resources() {
    let env = Env::new();
    let c = env
        .client_with(
            "post-bot",
            json!({
                "grants": [{"actions": ["crm:*"], "resources": ["crm:*"]}],
                "audiences": ["https://api.example.com/*", "urn:example:thing"]
            }),
        )
        .await;
    let r = env
        .form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &c.id),
                ("client_secret", &c.secret),
                ("scope", "crm:read crm:write crm:read"),
                ("resource", "https://api.example.com/v1"),
                ("resource", "urn:example:thing"),
                ("resource", "https://api.example.com/v1"),
            ],
        )
        .await;
    r.expect(200);
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    let body = r.json();
    assert_eq!(body["scope"], "crm:read crm:write", "duplicates dropped");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(
        claims["aud"],
        json!(["https://api.example.com/v1", "urn:example:thing"]),
        "duplicate resources name one audience"
    );
    // A resource the boundary does not list is refused (RFC 8707 invalid_target); the
    // server's default audience is always allowed.
    let outside = env
        .form(
            "/oauth/token",
            Some((&c.id, &c.secret)),
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://evil.example.net/"),
            ],
        )
        .await;
    outside.expect_oauth_error(400, "invalid_target");
    env.form(
        "/oauth/token",
        Some((&c.id, &c.secret)),
        &[("grant_type", "client_credentials"), ("resource", ISSUER)],
    )
    .await
    .expect(200);
    assert_eq!(claims["scope"], "crm:read crm:write");
    assert_eq!(claims["client_id"], c.id.as_str());
}

#[tokio::test]
async fn unknown_client_and_wrong_secret_are_indistinguishable() {
    let env = Env::new();
    let c = env.client("target").await;
    let grant = [("grant_type", "client_credentials")];
    let wrong_secret = env
        .form("/oauth/token", Some((&c.id, "mcs_wrong")), &grant)
        .await;
    let unknown = env
        .form(
            "/oauth/token",
            Some(("agt_00000000000000000000000000", &c.secret)),
            &grant,
        )
        .await;
    let malformed = env
        .form("/oauth/token", Some(("nobody", &c.secret)), &grant)
        .await;
    let wrong_post = env
        .form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &c.id),
                ("client_secret", "mcs_wrong"),
            ],
        )
        .await;
    wrong_secret.expect_oauth_error(401, "invalid_client");
    for other in [&unknown, &malformed, &wrong_post] {
        other.expect_oauth_error(401, "invalid_client");
        assert_eq!(
            other.body, wrong_secret.body,
            "bodies must not tell the cases apart"
        );
        assert_eq!(
            other.header(header::WWW_AUTHENTICATE),
            wrong_secret.header(header::WWW_AUTHENTICATE)
        );
    }
    // An agent without any client secret fails the same way.
    let keyless = env.register("keyless", json!({})).await;
    let r = env
        .form("/oauth/token", Some((&keyless, "mcs_guess")), &grant)
        .await;
    r.expect_oauth_error(401, "invalid_client");
    assert_eq!(r.body, wrong_secret.body);
}

#[tokio::test]
async fn token_request_errors_follow_rfc_6749() {
    let env = Env::new();
    let c = env.client("errors").await;
    let basic = Some((c.id.as_str(), c.secret.as_str()));
    let post_auth = format!("client_id={}&client_secret={}", c.id, c.secret);
    let cases: Vec<TokenCase<'_>> = vec![
        (
            "missing grant_type",
            basic,
            FORM,
            String::new(),
            400,
            "invalid_request",
        ),
        (
            "empty grant_type",
            basic,
            FORM,
            "grant_type=".into(),
            400,
            "invalid_request",
        ),
        (
            "password grant",
            basic,
            FORM,
            "grant_type=password&username=a&password=b".into(),
            400,
            "unsupported_grant_type",
        ),
        (
            "a 40 KB grant_type",
            basic,
            FORM,
            format!("grant_type={}", "x".repeat(40_000)),
            400,
            "unsupported_grant_type",
        ),
        (
            "repeated parameter",
            basic,
            FORM,
            "grant_type=client_credentials&scope=a&scope=b".into(),
            400,
            "invalid_request",
        ),
        (
            "repeated grant_type",
            basic,
            FORM,
            "grant_type=client_credentials&grant_type=client_credentials".into(),
            400,
            "invalid_request",
        ),
        (
            "basic and client_secret_post at once",
            basic,
            FORM,
            format!("grant_type=client_credentials&{post_auth}"),
            400,
            "invalid_request",
        ),
        (
            "client_secret without client_id",
            None,
            FORM,
            format!("grant_type=client_credentials&client_secret={}", c.secret),
            400,
            "invalid_request",
        ),
        (
            "no client authentication",
            None,
            FORM,
            "grant_type=client_credentials".into(),
            401,
            "invalid_client",
        ),
        (
            "client_id differs from Basic",
            basic,
            FORM,
            "grant_type=client_credentials&client_id=agt_00000000000000000000000000".into(),
            400,
            "invalid_request",
        ),
        (
            "scope with two spaces",
            basic,
            FORM,
            "grant_type=client_credentials&scope=a%20%20b".into(),
            400,
            "invalid_scope",
        ),
        (
            "scope with a quote",
            basic,
            FORM,
            "grant_type=client_credentials&scope=a%22b".into(),
            400,
            "invalid_scope",
        ),
        (
            "resource with a fragment",
            basic,
            FORM,
            "grant_type=client_credentials&resource=https%3A%2F%2Fapi.example.com%2Fv1%23frag"
                .into(),
            400,
            "invalid_target",
        ),
        (
            "relative resource",
            basic,
            FORM,
            "grant_type=client_credentials&resource=%2Fv1".into(),
            400,
            "invalid_target",
        ),
        (
            "JSON instead of a form",
            basic,
            "application/json",
            r#"{"grant_type":"client_credentials"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "no content type",
            basic,
            "",
            "grant_type=client_credentials".into(),
            400,
            "invalid_request",
        ),
        (
            "unknown client_assertion_type",
            None,
            FORM,
            format!(
                "grant_type=client_credentials&client_id={}&client_assertion_type=saml&client_assertion=x",
                c.id
            ),
            401,
            "invalid_client",
        ),
        (
            "body over the limit",
            basic,
            FORM,
            format!(
                "grant_type=client_credentials&scope={}",
                "a".repeat(MAX_BODY)
            ),
            400,
            "invalid_request",
        ),
        (
            "client_assertion without its type",
            None,
            FORM,
            "grant_type=client_credentials&client_assertion=a.b.c".into(),
            400,
            "invalid_request",
        ),
    ];
    for (what, auth, ct, body, status, error) in cases {
        let mut req = Request::post("/oauth/token");
        if !ct.is_empty() {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        if let Some((id, secret)) = auth {
            req = req.header(
                header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
            );
        }
        let r = env.send(req.body(Body::from(body)).unwrap()).await;
        assert_eq!(
            (r.status.as_u16(), r.json()["error"].as_str()),
            (status, Some(error)),
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let description = r.json()["error_description"].as_str().map(str::len);
        // Said, and never an echo of a whole form.
        assert!(
            description.is_some_and(|n| n < 400),
            "{what}: {description:?}"
        );
        assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"), "{what}");
    }
    // None of the refusals broke the client.
    env.token(&c).await;
}

#[tokio::test]
async fn suspended_and_decommissioned_agents_are_invalid_clients() {
    let env = Env::new();
    let c = env.client("lifecycle").await;
    env.token(&c).await;
    env.admin(
        Method::POST,
        &format!("/v1/agents/{}/suspend", c.id),
        Some(json!({"reason": "incident"})),
    )
    .await
    .expect(200);
    env.token_request(&c, &[])
        .await
        .expect_oauth_error(401, "invalid_client");
    env.admin(Method::POST, &format!("/v1/agents/{}/resume", c.id), None)
        .await
        .expect(200);
    env.token(&c).await;
    env.admin(
        Method::POST,
        &format!("/v1/agents/{}/decommission", c.id),
        None,
    )
    .await
    .expect(200);
    env.token_request(&c, &[])
        .await
        .expect_oauth_error(401, "invalid_client");
    let creds = env
        .admin(
            Method::GET,
            &format!("/v1/agents/{}/credentials", c.id),
            None,
        )
        .await;
    assert!(
        creds.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] == "revoked")
    );
}

#[tokio::test]
async fn token_lifetime_is_the_shorter_of_default_and_boundary() {
    let env = Env::new();
    for (name, boundary, want) in [
        ("short", json!({"max_token_lifetime_secs": 120}), 120),
        (
            "long",
            json!({"max_token_lifetime_secs": 600}),
            DEFAULT_LIFETIME,
        ),
        ("unbounded", json!({}), DEFAULT_LIFETIME),
    ] {
        let c = env.client_with(name, boundary).await;
        let r = env.token_request(&c, &[]).await;
        r.expect(200);
        let body = r.json();
        assert_eq!(body["expires_in"], want, "{name}");
        let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            want,
            "{name}"
        );
    }
}

// ---- private_key_jwt ----

/// A client's private key and the public JWK it registers.
struct KeyPair {
    key: EncodingKey,
    alg: Algorithm,
    kid: Option<String>,
    jwk: Value,
}

fn ed25519_pair() -> KeyPair {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let sk = ed25519_dalek::SigningKey::from_bytes(&random_bytes());
    let der = sk.to_pkcs8_der().expect("pkcs8");
    KeyPair {
        key: EncodingKey::from_ed_der(der.as_bytes()),
        alg: Algorithm::EdDSA,
        kid: None,
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(sk.verifying_key().as_bytes())}),
    }
}

fn p256_pair() -> KeyPair {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::EncodePrivateKey;
    let sk = p256::SecretKey::from_slice(&random_bytes()).expect("a scalar in range");
    let der = sk.to_pkcs8_der().expect("pkcs8");
    let point = sk.public_key().to_encoded_point(false);
    KeyPair {
        key: EncodingKey::from_ec_der(der.as_bytes()),
        alg: Algorithm::ES256,
        kid: Some("p256-key-1".into()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": "p256-key-1", "alg": "ES256", "use": "sig",
            "x": b64url(point.x().expect("x")),
            "y": b64url(point.y().expect("y")),
        }),
    }
}

impl KeyPair {
    fn assertion(&self, client: &str, aud: &str, jti: &str, now: i64) -> String {
        let mut h = Header::new(self.alg);
        h.kid = self.kid.clone();
        let claims = json!({"iss": client, "sub": client, "aud": aud, "iat": now, "exp": now + 60, "jti": jti});
        jsonwebtoken::encode(&h, &claims, &self.key).expect("sign assertion")
    }
}

impl Env {
    /// Registers an agent with `pair`'s public key.
    async fn key_client(&self, name: &str, pair: &KeyPair) -> String {
        let id = self.register(name, json!({})).await;
        let r = self
            .admin(
                Method::POST,
                &format!("/v1/agents/{id}/credentials"),
                Some(json!({"type": "public_key", "jwk": pair.jwk})),
            )
            .await;
        r.expect(201);
        assert!(r.json().get("client_secret").is_none());
        id
    }

    async fn assertion_request(&self, assertion: &str, client_id: Option<&str>) -> Reply {
        let mut pairs = vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ];
        if let Some(id) = client_id {
            pairs.push(("client_id", id));
        }
        self.form("/oauth/token", None, &pairs).await
    }
}

async fn private_key_jwt_flow(pair: KeyPair) {
    let env = Env::new();
    let id = env.key_client("keyed", &pair).await;
    let a = pair.assertion(&id, TOKEN_ENDPOINT, "jti-1", env.now());
    let r = env.assertion_request(&a, None).await;
    r.expect(200);
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    let (_, claims) = jwt_parts(r.json()["access_token"].as_str().expect("access_token"));
    assert_eq!(claims["sub"], id.as_str());

    // The same assertion again is a replay.
    env.assertion_request(&a, None)
        .await
        .expect_oauth_error(401, "invalid_client");
    // The issuer is an accepted audience too; a foreign one is not.
    let by_issuer = pair.assertion(&id, ISSUER, "jti-2", env.now());
    env.assertion_request(&by_issuer, Some(&id))
        .await
        .expect(200);
    let foreign = pair.assertion(
        &id,
        "https://elsewhere.example/oauth/token",
        "jti-3",
        env.now(),
    );
    env.assertion_request(&foreign, None)
        .await
        .expect_oauth_error(401, "invalid_client");
    // A client_id naming someone else, or a key that is not registered, fails.
    let fresh = pair.assertion(&id, TOKEN_ENDPOINT, "jti-4", env.now());
    env.assertion_request(&fresh, Some("agt_00000000000000000000000000"))
        .await
        .expect_oauth_error(401, "invalid_client");
    let other = if pair.alg == Algorithm::EdDSA {
        ed25519_pair()
    } else {
        p256_pair()
    };
    let forged = other.assertion(&id, TOKEN_ENDPOINT, "jti-5", env.now());
    env.assertion_request(&forged, None)
        .await
        .expect_oauth_error(401, "invalid_client");
    // An expired assertion fails.
    let stale = pair.assertion(&id, TOKEN_ENDPOINT, "jti-6", env.now());
    env.advance(60 + 60);
    env.assertion_request(&stale, None)
        .await
        .expect_oauth_error(401, "invalid_client");
    // jti-4 was refused before it was recorded, so it still works while fresh.
    let again = pair.assertion(&id, TOKEN_ENDPOINT, "jti-4", env.now());
    env.assertion_request(&again, None).await.expect(200);
}

/// Issue 19: a refused client assertion says why in `error_description`, except where
/// saying so would tell an attacker whether the client exists or which key it has.
#[tokio::test]
async fn refused_assertions_say_why_but_not_who() {
    let env = Env::new();
    let pair = ed25519_pair();
    let id = env.key_client("keyed", &pair).await;
    let now = env.now();
    let described = |r: &Reply| {
        r.expect_oauth_error(401, "invalid_client");
        r.json()["error_description"].as_str().unwrap().to_owned()
    };
    // Unknown client, unregistered key, bad signature: one text.
    let ghost = "agt_00000000000000000000000000";
    let unknown = described(
        &env.assertion_request(&pair.assertion(ghost, TOKEN_ENDPOINT, "g1", now), None)
            .await,
    );
    let stranger = described(
        &env.assertion_request(
            &ed25519_pair().assertion(&id, TOKEN_ENDPOINT, "s1", now),
            None,
        )
        .await,
    );
    let mut kidded = ed25519_pair();
    kidded.kid = Some("nope".into());
    let no_kid = described(
        &env.assertion_request(&kidded.assertion(&id, TOKEN_ENDPOINT, "k1", now), None)
            .await,
    );
    assert_eq!(unknown, "client authentication failed");
    assert_eq!((&stranger, &no_kid), (&unknown, &unknown));
    // Reasons that need the client's own key to reach.
    let wrong_aud = described(
        &env.assertion_request(&pair.assertion(&id, "https://elsewhere", "a1", now), None)
            .await,
    );
    assert!(wrong_aud.contains("aud"), "{wrong_aud}");
    let ok = pair.assertion(&id, TOKEN_ENDPOINT, "r1", now);
    env.assertion_request(&ok, None).await.expect(200);
    let replayed = described(&env.assertion_request(&ok, None).await);
    assert!(replayed.contains("already used"), "{replayed}");
    let stale = pair.assertion(&id, TOKEN_ENDPOINT, "e1", now);
    env.advance(60 + 60);
    let expired = described(&env.assertion_request(&stale, None).await);
    assert!(expired.contains("expired"), "{expired}");
    // Reasons that depend on the assertion alone.
    let rs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": id, "sub": id}),
        &EncodingKey::from_secret(b"k"),
    )
    .unwrap();
    let alg = described(&env.assertion_request(&rs, None).await);
    assert!(alg.contains("EdDSA, Ed25519 or ES256"), "{alg}");
    let junk = described(&env.assertion_request("a.b.c", None).await);
    assert!(junk.contains("compact JWS"), "{junk}");
}

/// Issue 19: openid-client signs Ed25519 assertions with `alg: "Ed25519"` (RFC 9864);
/// the MCP Python SDK addresses them to the issuer as its URL parser writes it, with
/// the root path `/`.
#[tokio::test]
async fn ed25519_alg_name_and_issuer_with_root_slash() {
    use ed25519_dalek::Signer as _;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let env = Env::new();
    let sk = ed25519_dalek::SigningKey::from_bytes(&random_bytes());
    let pair = KeyPair {
        key: EncodingKey::from_ed_der(sk.to_pkcs8_der().expect("pkcs8").as_bytes()),
        alg: Algorithm::EdDSA,
        kid: None,
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "alg": "Ed25519",
            "x": b64url(sk.verifying_key().as_bytes())}),
    };
    let id = env.key_client("keyed", &pair).await;
    let now = env.now();
    let sign = |alg: &str, aud: &str, jti: &str| {
        let claims =
            json!({"iss": id, "sub": id, "aud": aud, "iat": now, "exp": now + 60, "jti": jti});
        let input = format!(
            "{}.{}",
            b64url(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        format!("{input}.{}", b64url(&sk.sign(input.as_bytes()).to_bytes()))
    };
    for (alg, aud, jti) in [
        ("Ed25519", TOKEN_ENDPOINT, "1"),
        ("EdDSA", TOKEN_ENDPOINT, "2"),
        ("Ed25519", ISSUER, "3"),
        ("Ed25519", "http://mandate.test/", "4"),
    ] {
        let r = env.assertion_request(&sign(alg, aud, jti), None).await;
        assert_eq!(
            r.status,
            200,
            "{alg} {aud}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // Any other path is another URI.
    let r = env
        .assertion_request(&sign("Ed25519", "http://mandate.test/x", "5"), None)
        .await;
    r.expect_oauth_error(401, "invalid_client");
}

#[tokio::test]
async fn private_key_jwt_ed25519() {
    private_key_jwt_flow(ed25519_pair()).await;
}

#[tokio::test]
async fn private_key_jwt_p256() {
    private_key_jwt_flow(p256_pair()).await;
}

#[tokio::test]
async fn assertion_authenticates_introspection_with_its_audience() {
    let env = Env::new();
    let pair = ed25519_pair();
    let id = env.key_client("inspector", &pair).await;
    let token = {
        let a = pair.assertion(&id, TOKEN_ENDPOINT, "t-1", env.now());
        let r = env.assertion_request(&a, None).await;
        r.expect(200);
        r.json()["access_token"].as_str().unwrap().to_owned()
    };
    let a = pair.assertion(&id, &format!("{ISSUER}/oauth/introspect"), "i-1", env.now());
    let r = env
        .form(
            "/oauth/introspect",
            None,
            &[
                ("token", &token),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &a),
            ],
        )
        .await;
    r.expect(200);
    assert_eq!(r.json()["active"], true);
}

// ---- introspection and revocation ----

#[tokio::test]
async fn introspection_requires_authentication() {
    let env = Env::new();
    let c = env.client("subject").await;
    let token = env.token(&c).await;
    env.form("/oauth/introspect", None, &[("token", &token)])
        .await
        .expect_oauth_error(401, "invalid_client");
    let r = env
        .bearer_form("/oauth/introspect", "mat_unknown", &[("token", &token)])
        .await;
    assert_eq!(
        r.header(header::WWW_AUTHENTICATE),
        Some("Bearer realm=\"mandate\", error=\"invalid_token\""),
        "RFC 6750 challenge for a bad bearer token"
    );
    r.expect_oauth_error(401, "invalid_token");
    // An access token cannot introspect, even its own.
    env.bearer_form("/oauth/introspect", &token, &[("token", &token)])
        .await
        .expect_oauth_error(401, "invalid_client");
    env.form(
        "/oauth/introspect",
        Some((&c.id, "mcs_wrong")),
        &[("token", &token)],
    )
    .await
    .expect_oauth_error(401, "invalid_client");
    // A missing token parameter is the caller's mistake, after authentication.
    env.bearer_form("/oauth/introspect", &env.admin.clone(), &[])
        .await
        .expect_oauth_error(400, "invalid_request");
    // Auditors may introspect.
    let auditor = env.admin_token("auditor").await;
    let r = env
        .bearer_form("/oauth/introspect", &auditor, &[("token", &token)])
        .await;
    r.expect(200);
    assert_eq!(r.json()["active"], true);
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
}

#[tokio::test]
async fn introspection_follows_the_agent_lifecycle() {
    let env = Env::new();
    let c = env.client("followed").await;
    let token = env.token(&c).await;
    let v = env.introspect(&token).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["sub"], c.id.as_str());
    assert_eq!(v["client_id"], c.id.as_str());
    assert_eq!(v["iss"], ISSUER);
    assert_eq!(v["exp"], env.now() + DEFAULT_LIFETIME);
    assert!(v["jti"].as_str().unwrap().starts_with("tok_"));

    let agent = format!("/v1/agents/{}", c.id);
    env.admin(Method::POST, &format!("{agent}/suspend"), None)
        .await
        .expect(200);
    assert_eq!(
        env.introspect(&token).await,
        json!({"active": false}),
        "suspension is immediate"
    );
    env.admin(Method::POST, &format!("{agent}/resume"), None)
        .await
        .expect(200);
    assert_eq!(
        env.introspect(&token).await["active"],
        true,
        "resume restores unexpired tokens"
    );
    env.admin(Method::POST, &format!("{agent}/decommission"), None)
        .await
        .expect(200);
    assert_eq!(env.introspect(&token).await, json!({"active": false}));
    env.admin(Method::POST, &format!("{agent}/resume"), None)
        .await
        .expect(409);
    assert_eq!(env.introspect(&token).await["active"], false);
}

#[tokio::test]
async fn introspection_of_expired_garbage_and_self_revoked_tokens() {
    let env = Env::new();
    let c = env.client("revoker").await;
    let basic = Some((c.id.as_str(), c.secret.as_str()));

    // The agent introspects and then revokes its own token (RFC 7009, Basic auth).
    let token = env.token(&c).await;
    let r = env
        .form("/oauth/introspect", basic, &[("token", &token)])
        .await;
    r.expect(200);
    assert_eq!(r.json()["active"], true);
    let r = env
        .form(
            "/oauth/revoke",
            basic,
            &[("token", &token), ("token_type_hint", "access_token")],
        )
        .await;
    r.expect(200);
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(env.introspect(&token).await, json!({"active": false}));
    // Revoking again, or revoking garbage, is fine (RFC 7009 §2.2).
    env.form("/oauth/revoke", basic, &[("token", &token)])
        .await
        .expect(200);
    env.form("/oauth/revoke", basic, &[("token", "not-a-token")])
        .await
        .expect(200);
    assert_eq!(
        env.introspect("not-a-token").await,
        json!({"active": false})
    );

    // Expiry is read from the server's clock.
    let token = env.token(&c).await;
    env.advance(DEFAULT_LIFETIME - 1);
    assert_eq!(env.introspect(&token).await["active"], true);
    env.advance(1);
    assert_eq!(env.introspect(&token).await, json!({"active": false}));
}

#[tokio::test]
async fn agents_cannot_see_or_revoke_each_others_tokens() {
    let env = Env::new();
    let a = env.client("alpha").await;
    let b = env.client("beta").await;
    let token_a = env.token(&a).await;
    let as_b = Some((b.id.as_str(), b.secret.as_str()));
    let r = env
        .form("/oauth/introspect", as_b, &[("token", &token_a)])
        .await;
    r.expect(200);
    assert_eq!(r.json(), json!({"active": false}));
    env.form("/oauth/revoke", as_b, &[("token", &token_a)])
        .await
        .expect_oauth_error(400, "unauthorized_client");
    assert_eq!(
        env.introspect(&token_a).await["active"],
        true,
        "the refused revocation did nothing"
    );
    // A read-only admin token cannot revoke either; an admin can.
    let auditor = env.admin_token("auditor").await;
    env.bearer_form("/oauth/revoke", &auditor, &[("token", &token_a)])
        .await
        .expect_oauth_error(403, "insufficient_scope");
    assert_eq!(env.introspect(&token_a).await["active"], true);
    env.bearer_form("/oauth/revoke", &env.admin.clone(), &[("token", &token_a)])
        .await
        .expect(200);
    assert_eq!(env.introspect(&token_a).await["active"], false);
}

// ---- rotation ----

#[tokio::test]
async fn rotated_secret_overlaps_then_stops() {
    let env = Env::new();
    let id = env.register("rotating", json!({})).await;
    let (old_cid, old_secret) = env.add_secret(&id).await;
    let old = Client {
        id: id.clone(),
        secret: old_secret,
    };
    env.token(&old).await;

    let r = env
        .admin(
            Method::POST,
            &format!("/v1/agents/{id}/credentials/{old_cid}/rotate"),
            Some(json!({"overlap_secs": 600})),
        )
        .await;
    r.expect(201);
    let v = r.json();
    let new = Client {
        id: id.clone(),
        secret: v["client_secret"].as_str().unwrap().to_owned(),
    };
    assert_ne!(new.secret, old.secret);
    assert_eq!(v["previous"]["id"], old_cid.as_str());
    let new_cid = v["credential"]["id"].as_str().unwrap().to_owned();

    env.token(&old).await;
    env.token(&new).await;
    env.advance(599);
    env.token(&old).await;
    env.advance(1);
    env.token_request(&old, &[])
        .await
        .expect_oauth_error(401, "invalid_client");
    env.token(&new).await;

    let creds = env
        .admin(Method::GET, &format!("/v1/agents/{id}/credentials"), None)
        .await
        .json();
    let state = |cid: &str| {
        creds["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == cid)
            .map(|c| c["state"].clone())
    };
    assert_eq!(state(&old_cid), Some(json!("expired")));
    assert_eq!(state(&new_cid), Some(json!("active")));
    // The replaced credential cannot be rotated again.
    env.admin(
        Method::POST,
        &format!("/v1/agents/{id}/credentials/{old_cid}/rotate"),
        None,
    )
    .await
    .expect(409);
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_valid_until_publication_ends() {
    let env = Env::new();
    let c = env.client("long-lived").await;
    let old_token = env.token(&c).await;
    let old_kid = jwt_parts(&old_token).0["kid"].as_str().unwrap().to_owned();
    assert_eq!(env.published_kids().await, [old_kid.as_str()]);

    let r = env.admin(Method::POST, "/v1/keys/rotate", None).await;
    r.expect(200);
    let v = r.json();
    let new_kid = v["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(v["retired_kid"], old_kid.as_str());

    assert_eq!(
        env.introspect(&old_token).await["active"],
        true,
        "old tokens still verify"
    );
    assert_eq!(
        env.published_kids().await,
        [new_kid.clone(), old_kid.clone()]
    );
    let new_token = env.token(&c).await;
    assert_eq!(
        jwt_parts(&new_token).0["kid"],
        new_kid.as_str(),
        "new tokens use the new key"
    );
    let keys = env.admin(Method::GET, "/v1/keys", None).await.json();
    assert_eq!(keys["items"].as_array().unwrap().len(), 2);

    env.advance(MAX_LIFETIME + 60 - 1);
    assert_eq!(
        env.published_kids().await,
        [new_kid.clone(), old_kid.clone()]
    );
    env.advance(1);
    assert_eq!(
        env.published_kids().await,
        [new_kid.as_str()],
        "the old key drops out"
    );
    assert_eq!(
        env.admin(Method::GET, "/v1/keys", None).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let fresh = env.token(&c).await;
    assert_eq!(env.introspect(&fresh).await["active"], true);

    // Read-only tokens cannot rotate keys.
    let auditor = env.admin_token("auditor").await;
    let r = env
        .bearer(&auditor, Method::POST, "/v1/keys/rotate", None)
        .await;
    r.expect(403);
    assert_eq!(env.published_kids().await, [new_kid]);
}

// ---- public documents ----

#[tokio::test]
async fn metadata_follows_rfc_8414() {
    let env = Env::new();
    let r = env.get("/.well-known/oauth-authorization-server").await;
    r.expect(200);
    assert!(
        r.header(header::CONTENT_TYPE)
            .is_some_and(|t| t.starts_with("application/json"))
    );
    let m = r.json();
    assert_eq!(m["issuer"], ISSUER);
    assert_eq!(m["token_endpoint"], TOKEN_ENDPOINT);
    assert_eq!(m["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    assert_eq!(
        m["introspection_endpoint"],
        format!("{ISSUER}/oauth/introspect")
    );
    assert_eq!(m["revocation_endpoint"], format!("{ISSUER}/oauth/revoke"));
    assert_eq!(
        m["grant_types_supported"],
        json!([
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert!(
        m["response_types_supported"].is_array(),
        "REQUIRED by RFC 8414 §2"
    );
    let methods = json!([
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt"
    ]);
    for k in [
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ] {
        assert_eq!(m[k], methods, "{k}");
    }
    // RFC 8414 §2: private_key_jwt needs its signing algorithms listed, never `none`.
    let algs = m["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(algs.contains(&json!("EdDSA")) && algs.contains(&json!("ES256")));
    assert!(!algs.contains(&json!("none")));
    // Issue 19: the MCP SDKs' metadata schemas require `authorization_endpoint`, and
    // openid-client signs Ed25519 assertions as `Ed25519` (RFC 9864).
    assert_eq!(
        m["authorization_endpoint"],
        format!("{ISSUER}/oauth/authorize")
    );
    assert!(algs.contains(&json!("Ed25519")));
    assert_eq!(m["response_types_supported"], json!([]));
}

/// Issue 19: the published authorization endpoint refuses everything with RFC 6749's
/// `unsupported_response_type`, and never redirects — not even to a `redirect_uri` it
/// is given (none is registered, RFC 6749 §4.1.2.1).
#[tokio::test]
async fn authorization_endpoint_refuses_without_redirecting() {
    let env = Env::new();
    for path in [
        "/oauth/authorize",
        "/oauth/authorize?response_type=code&client_id=agt_x&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&state=s",
        "/oauth/authorize?response_type=token&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
    ] {
        let r = env.get(path).await;
        r.expect_oauth_error(400, "unsupported_response_type");
        assert!(r.header(header::LOCATION).is_none(), "{path}");
        assert!(!r.json()["error_description"].as_str().unwrap().is_empty());
    }
    env.form(
        "/oauth/authorize",
        None,
        &[
            ("response_type", "code"),
            ("redirect_uri", "https://evil.example/cb"),
        ],
    )
    .await
    .expect_oauth_error(400, "unsupported_response_type");
}

#[tokio::test]
async fn jwks_is_a_public_key_set() {
    let env = Env::new();
    let r = env.get("/.well-known/jwks.json").await;
    r.expect(200);
    assert_eq!(
        r.header(header::CONTENT_TYPE),
        Some("application/jwk-set+json")
    );
    assert!(
        r.header(header::CACHE_CONTROL)
            .is_some_and(|c| c.contains("max-age"))
    );
    let keys = r.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(
        (k["kty"].as_str(), k["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert!(k["kid"].is_string() && k["x"].is_string());
    assert!(k.get("d").is_none(), "never the private key");
    env.get("/healthz").await.expect(200);
    env.get("/readyz").await.expect(200);
}

#[tokio::test]
async fn scope_outside_the_boundary_is_refused() {
    let env = Env::new();
    let c = env
        .client_with(
            "scoped-bot",
            json!({"grants": [{"actions": ["crm:read*"], "resources": ["crm:*"]}]}),
        )
        .await;
    let ask = |scope: &'static str| {
        let c = &c;
        let env = &env;
        async move {
            env.form(
                "/oauth/token",
                Some((&c.id, &c.secret)),
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await
        }
    };
    let ok = ask("crm:read crm:read.notes").await;
    ok.expect(200);
    let r = ask("crm:read crm:write").await;
    r.expect(400);
    assert_eq!(r.json()["error"], "invalid_scope");
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("crm:write")
    );
    // No grants at all: the ceiling is empty, so no scope can be granted.
    let bare = env.client("bare-bot").await;
    let r = env
        .form(
            "/oauth/token",
            Some((&bare.id, &bare.secret)),
            &[("grant_type", "client_credentials"), ("scope", "crm:read")],
        )
        .await;
    r.expect(400);
    assert_eq!(r.json()["error"], "invalid_scope");
}

/// Regression (security review M3): a suspension with `revoke_tokens` and a credential
/// revocation kill tokens issued before them, so a resume or a second credential does
/// not bring a possibly leaked token back.
#[tokio::test]
async fn earlier_tokens_die_with_a_revoked_credential_or_a_revoking_suspend() {
    let env = Env::new();
    let c = env.client("leaky").await;
    let agent = format!("/v1/agents/{}", c.id);
    let old = env.token(&c).await;
    env.advance(1);
    env.admin(
        Method::POST,
        &format!("{agent}/suspend"),
        Some(json!({"reason": "leak", "revoke_tokens": true})),
    )
    .await
    .expect(200);
    env.advance(1);
    env.admin(Method::POST, &format!("{agent}/resume"), None)
        .await
        .expect(200);
    assert_eq!(
        env.introspect(&old).await["active"],
        false,
        "resume does not revive revoked tokens"
    );
    let fresh = env.token(&c).await;
    assert_eq!(env.introspect(&fresh).await["active"], true);

    // Revoking one credential kills the agent's earlier tokens, whichever minted them.
    let (leaked_cred, _) = env.add_secret(&c.id).await;
    env.advance(1);
    env.admin(
        Method::DELETE,
        &format!("{agent}/credentials/{leaked_cred}"),
        None,
    )
    .await
    .expect(204);
    assert_eq!(env.introspect(&fresh).await["active"], false);
    env.advance(1);
    let after = env.token(&c).await;
    assert_eq!(
        env.introspect(&after).await["active"],
        true,
        "the remaining credential still works"
    );
}

/// Finding (attack on a real server): two admin acts on one agent, a suspension and a
/// decommission sent at once, could be recorded in the reverse of the order their
/// changes were made, so the log said `agent.decommissioned` then `agent.suspended`
/// while the agent was decommissioned. The last status event must name the status the
/// agent ends with.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_status_acts_are_recorded_in_the_order_they_were_made() {
    let env = Env::new();
    for i in 0..60 {
        let agent = env
            .register(&format!("racer-{i}"), json!({"grants": []}))
            .await;
        let suspend = format!("/v1/agents/{agent}/suspend");
        let decommission = format!("/v1/agents/{agent}/decommission");
        let (s, d) = tokio::join!(
            env.admin(Method::POST, &suspend, None),
            env.admin(Method::POST, &decommission, None),
        );
        assert_eq!(d.status, StatusCode::OK, "{}", d.json());
        assert!(
            s.status == StatusCode::OK || s.status == StatusCode::CONFLICT,
            "{}",
            s.json()
        );
        let r = env
            .admin(
                Method::GET,
                &format!("/v1/audit/events?agent={agent}"),
                None,
            )
            .await;
        r.expect(200);
        let kinds: Vec<String> = r.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|e| e["kind"].as_str())
            .filter(|k| *k == "agent.suspended" || *k == "agent.decommissioned")
            .map(str::to_owned)
            .collect();
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("agent.decommissioned"),
            "round {i}: the log's last status act is not the agent's status: {kinds:?}"
        );
    }
}

/// Finding (attack on a real server): a containment and a decommission sent at once
/// were recorded on the wrong side of each other (`incident.contained` saying the
/// agent was active, logged after `agent.decommissioned`, and the reverse). The
/// containment's `previous_status` must agree with where it stands in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_containment_racing_a_decommission_is_recorded_in_order() {
    let env = Env::new();
    for i in 0..40 {
        let agent = env
            .register(&format!("contained-{i}"), json!({"grants": []}))
            .await;
        let contain = format!("/v1/agents/{agent}/contain");
        let decommission = format!("/v1/agents/{agent}/decommission");
        let (c, d) = tokio::join!(
            env.admin(Method::POST, &contain, None),
            env.admin(Method::POST, &decommission, None),
        );
        assert_eq!(c.status, StatusCode::OK, "{}", c.json());
        assert_eq!(d.status, StatusCode::OK, "{}", d.json());
        let r = env
            .admin(
                Method::GET,
                &format!("/v1/audit/events?agent={agent}"),
                None,
            )
            .await;
        r.expect(200);
        let items = r.json()["items"].as_array().expect("items").clone();
        let at = |kind: &str| {
            items
                .iter()
                .position(|e| e["kind"] == kind)
                .expect("recorded")
        };
        let (contained, decommissioned) = (at("incident.contained"), at("agent.decommissioned"));
        let previous = items[contained]["details"]["previous_status"].clone();
        assert_eq!(
            contained > decommissioned,
            previous == "decommissioned",
            "round {i}: contained (previous {previous}) at {contained}, decommissioned at {decommissioned}"
        );
    }
}

/// Issue 21: `GET /v1/audit/nodes` lists the nodes with a log in the store (on SQLite,
/// this node alone) with the key that verifies each, the same key the latest checkpoint
/// names; `export?node=` with this node's own name is this node's export.
#[tokio::test(flavor = "multi_thread")]
async fn audit_nodes_list_this_node_and_its_key_and_export_by_name() {
    let env = Env::new();
    env.register("nodes-demo", json!({})).await;
    let latest = env
        .admin(Method::GET, "/v1/audit/checkpoints/latest", None)
        .await;
    let latest = latest.expect(200).json();
    let nodes = env.admin(Method::GET, "/v1/audit/nodes", None).await;
    let nodes = nodes.expect(200).json();
    assert_eq!(nodes["this_node"], latest["node"]);
    assert_eq!(
        nodes["nodes"],
        json!([{"node": latest["node"], "public_key": latest["public_key"]}])
    );
    let own = env.admin(Method::GET, "/v1/audit/export", None).await;
    own.expect(200);
    let node = latest["node"].as_str().expect("node");
    let named = env
        .admin(Method::GET, &format!("/v1/audit/export?node={node}"), None)
        .await;
    named.expect(200);
    assert_eq!(named.body, own.body);
    let key: [u8; 32] = STANDARD
        .decode(latest["public_key"].as_str().expect("key"))
        .expect("base64")
        .try_into()
        .expect("32 bytes");
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key).expect("key");
    let report = mandate_audit::verify::verify_export(std::io::Cursor::new(&named.body[..]), &key)
        .expect("the export by name verifies");
    assert_eq!(report.node.as_str(), node);
    assert!(report.events > 0);
}

/// Issue 21: `GET /v1/cluster` on a single node (SQLite) lists that node alone: alive,
/// deciding, leading (a single node runs every job), its snapshot's change number, a
/// proof age of 0 (it needs none); the store reachable. An auditor may read it.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_status_of_a_single_node() {
    let env = Env::new();
    env.register("cluster-demo", json!({})).await;
    let latest = env
        .admin(Method::GET, "/v1/audit/checkpoints/latest", None)
        .await
        .expect(200)
        .json();
    let auditor = env.admin_token("auditor").await;
    let s = env
        .bearer(&auditor, Method::GET, "/v1/cluster", None)
        .await
        .expect(200)
        .json();
    assert_eq!(s["this_node"], latest["node"]);
    assert_eq!(s["store"], "sqlite");
    assert_eq!(s["store_reachable"], true);
    assert_eq!(s["leader"], latest["node"]);
    let nodes = s["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{s}");
    let n = &nodes[0];
    assert_eq!(n["node"], latest["node"]);
    assert_eq!(
        (&n["alive"], &n["deciding"], &n["leader"]),
        (&json!(true), &json!(true), &json!(true))
    );
    assert!(n["snapshot_seq"].as_u64().is_some(), "{n}");
    assert_eq!(n["snapshot_age_ms"], 0);
    assert_eq!(n["feed_lag_ms"], 0);
}
