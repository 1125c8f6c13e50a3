//! Keeps the description of the HTTP surface true: every [`ROUTES`] entry is an operation
//! of `docs/openapi.json` (generated from `mandate-api`) and is really served by
//! [`router`], and the spec describes no operation that is not in [`ROUTES`].
//!
//! The spec is read as JSON: each key of a path item under `paths` is an operation or
//! one of the other path-item fields; a key that is neither fails the test rather than
//! being skipped.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use mandate_core::clock::SystemClock;
use mandate_core::id::{AdminTokenId, AgentId, CredentialId, TokenId};
use mandate_core::random::OsRandom;
use mandate_store_sqlite::SqliteStore;
use tower::ServiceExt as _;

use crate::bootstrap::{self, Bootstrap};
use crate::keys::{KeyFiles, KeyState};
use crate::{Node, ROUTES, ServerConfig, router};

const SPEC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/openapi.json"
));

/// The operation keys of an OpenAPI path item.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The other keys a path item may have; anything else at that level is a scan error.
const PATH_ITEM_FIELDS: &[&str] = &["summary", "description", "parameters", "servers"];

/// Syntactically valid ids that name nothing in a fresh store.
const AGENT: &str = "agt_01J00000000000000000000000";
const CREDENTIAL: &str = "crd_01J00000000000000000000000";
const ADMIN_TOKEN: &str = "adm_01J00000000000000000000000";
const TOKEN: &str = "tok_01J00000000000000000000000";

/// The (METHOD, path template) operations of a spec's `paths` object.
fn spec_operations(spec: &str) -> BTreeSet<(String, String)> {
    let doc: serde_json::Value = serde_json::from_str(spec).expect("the spec is JSON");
    let paths = doc["paths"].as_object().expect("the spec has `paths`");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        let item = item
            .as_object()
            .unwrap_or_else(|| panic!("path `{path}` is not a path item"));
        for key in item.keys() {
            if METHODS.contains(&key.as_str()) {
                out.insert((key.to_ascii_uppercase(), path.clone()));
            } else {
                assert!(
                    PATH_ITEM_FIELDS.contains(&key.as_str()),
                    "path `{path}`: `{key}` is neither an operation nor a path-item field"
                );
            }
        }
    }
    out
}

#[test]
fn scan_reads_only_the_paths_section() {
    let spec = r#"{
  "openapi": "3.1.0",
  "paths": {
    "/a/{id}": {
      "parameters": [],
      "get": {"responses": {"get": {}}},
      "delete": {}
    },
    "/b": {"post": {}}
  },
  "components": {"schemas": {"get": {}}}
}"#;
    let want: BTreeSet<_> = [("GET", "/a/{id}"), ("DELETE", "/a/{id}"), ("POST", "/b")]
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(spec_operations(spec), want);
}

#[test]
#[should_panic(expected = "neither an operation nor a path-item field")]
fn scan_refuses_a_path_key_it_cannot_read() {
    spec_operations(r#"{"paths": {"/a": {"gett": {}}}}"#);
}

#[test]
fn spec_describes_exactly_the_routes() {
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(routes.len(), ROUTES.len(), "ROUTES lists a route twice");
    let spec = spec_operations(SPEC);
    let undocumented: Vec<_> = routes.difference(&spec).collect();
    let unserved: Vec<_> = spec.difference(&routes).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "docs/openapi.json and ROUTES disagree\n  in ROUTES, not in the spec: {undocumented:?}\n  in the spec, not in ROUTES: {unserved:?}"
    );
}

/// A router over a fresh store, and the bootstrap admin token to call it with.
struct Harness {
    app: axum::Router,
    admin_token: String,
    _dir: tempfile::TempDir,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("mandate.db")).unwrap();
    let files = KeyFiles::in_data_dir(dir.path());
    let keys = KeyState::open(&store, &files, &SystemClock, &OsRandom).unwrap();
    let Bootstrap::Created(token) =
        bootstrap::ensure(&store, None, &SystemClock, &OsRandom).unwrap()
    else {
        panic!("a fresh store has no bootstrap token");
    };
    let config = unit_test_config(dir.path());
    let state = Node::new(
        Arc::new(store),
        keys,
        Arc::new(SystemClock),
        Arc::new(OsRandom),
        config,
        Arc::new(crate::webhook::Signed),
    )
    .unwrap();
    Harness {
        app: router(Arc::new(state)),
        admin_token: token.expose().to_owned(),
        _dir: dir,
    }
}

/// `template` with its `{…}` segments filled with valid ids of the right kind.
fn concrete(template: &str) -> String {
    let id = if template.starts_with("/v1/admin-tokens/") {
        ADMIN_TOKEN
    } else if template.starts_with("/v1/reviews/") {
        "rev_01JA0000000000000000000000"
    } else {
        AGENT
    };
    let path = template
        .replace("{id}", id)
        .replace("{cid}", CREDENTIAL)
        .replace("{agent}", AGENT)
        .replace("{version}", "1")
        .replace("{seq}", "0")
        .replace("{jti}", TOKEN)
        .replace("{name}", "some-secret")
        .replace("{stream_id}", "sst_01JA0000000000000000000000");
    assert!(
        !path.contains('{'),
        "`{template}` has a path parameter this test does not fill"
    );
    path
}

/// Sends `method path` with the admin token and no body; returns the status and the
/// problem `detail`, if the answer is a problem.
async fn call(h: &Harness, method: &str, path: &str) -> (StatusCode, Option<String>) {
    let req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", h.admin_token))
        .body(Body::empty())
        .unwrap();
    let res = h.app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let detail = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned));
    (status, detail)
}

/// Whether an answer came from the router's fallbacks rather than a handler.
fn unrouted(status: StatusCode, detail: Option<&str>) -> bool {
    status == StatusCode::METHOD_NOT_ALLOWED
        || (status == StatusCode::NOT_FOUND && detail == Some("no such endpoint"))
}

#[test]
fn placeholder_ids_are_valid() {
    AgentId::parse(AGENT).unwrap();
    CredentialId::parse(CREDENTIAL).unwrap();
    AdminTokenId::parse(ADMIN_TOKEN).unwrap();
    TokenId::parse(TOKEN).unwrap();
}

#[tokio::test]
async fn every_route_is_routed() {
    let h = harness();
    // The oracle itself: these must be recognised as unrouted.
    for (method, path) in [
        ("GET", "/no/such/endpoint"),
        ("DELETE", "/healthz"),
        ("PUT", "/v1/agents"),
    ] {
        let (status, detail) = call(&h, method, path).await;
        assert!(
            unrouted(status, detail.as_deref()),
            "{method} {path}: {status} {detail:?}"
        );
    }
    for (method, template) in ROUTES {
        let path = concrete(template);
        let (status, detail) = call(&h, method, &path).await;
        assert!(
            !unrouted(status, detail.as_deref()),
            "{method} {template} ({path}) is not routed: {status} {detail:?}"
        );
    }
}

/// The configuration the crate's unit tests run with: data under `dir`, small
/// limits, a checkpoint every 100 events.
pub(crate) fn unit_test_config(dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        issuer: "http://mandate.test".into(),
        default_audience: "https://api.test".into(),
        default_token_lifetime_secs: 300,
        max_token_lifetime_secs: 3600,
        max_body_bytes: 64 * 1024,
        audit_key_path: dir.join("audit-key.pem"),
        checkpoint: crate::audit::CheckpointPolicy {
            every_events: 100,
            every_secs: 3600,
        },
        redact: Default::default(),
        mandates: Default::default(),
        users: Default::default(),
        dev_users: None,
        detect: crate::detect::DetectSettings::default(),
        max_staleness: mandate_service::freshness::DEFAULT_MAX_STALENESS,
        reviews: Default::default(),
        dpop: Default::default(),
        client_certs: Default::default(),
        ssf: Default::default(),
    }
}

/// The codes of `ErrorCode`'s `enum` in `docs/openapi.json`.
fn documented_error_codes() -> BTreeSet<String> {
    let doc: serde_json::Value = serde_json::from_str(SPEC).expect("the spec is JSON");
    doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode has an enum")
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect()
}

/// Every problem code the server and the gateway can answer with is a documented
/// `ErrorCode` (read from the sources: the first string literal of each `ApiError::new`,
/// `conflict` and `bad_request`, and `StaleSnapshot`'s code), so a client can rely on the
/// list. Issue 20: `does_not_compile`, `invalid_token`, `request_timeout` and
/// `snapshot_stale` were answered but not listed.
#[test]
fn every_problem_code_answered_is_documented() {
    fn sources(dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("read the sources") {
            let p = e.expect("a directory entry").path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(std::fs::read_to_string(&p).expect("read a source"));
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts = Vec::new();
    sources(&root.join("src"), &mut texts);
    sources(&root.join("../mandate-gateway/src"), &mut texts);
    let mut answered = BTreeSet::from(["snapshot_stale".to_owned()]);
    for text in &texts {
        for call in [
            "ApiError::new(",
            "ApiError::conflict(",
            "ApiError::bad_request(",
        ] {
            for (i, _) in text.match_indices(call) {
                let args = &text[i + call.len()..];
                let Some(open) = args.find('"') else { continue };
                let code: String = args[open + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !code.is_empty() && args[..open].matches(',').count() <= 1 {
                    answered.insert(code);
                }
            }
        }
    }
    let documented = documented_error_codes();
    let missing: Vec<_> = answered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "answered but not in docs/openapi.json's ErrorCode: {missing:?}"
    );
    assert!(
        answered.len() > 30,
        "the scan found too few codes: {answered:?}"
    );
}
