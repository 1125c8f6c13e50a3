//! The OPA-compatible router (`mandate_http::opa::opa_router`, `opa.authentication =
//! "token"`) on bad input, table-driven (`tests/data/opa_bad_input/*.json`): each case
//! gets its status and OPA's error shape (`{"code", "message"}`, a stable code), never
//! a 5xx, and changes nothing — no policy version, no `opa.decision` event.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request};
use mandate_http::opa::{OpaAuthentication, opa_router};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::Env;

/// A `tests/data/opa_bad_input/<case>.json` file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// What the case checks, for humans.
    about: String,
    method: String,
    path: String,
    /// `{admin}`, `{auditor}` and `{agent_token}` are replaced by such credentials.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: String,
    /// The body as hex bytes instead (for bodies that are not UTF-8).
    #[serde(default)]
    body_hex: Option<String>,
    /// Send `body` repeated this many times (for oversized bodies).
    #[serde(default)]
    body_repeat: Option<usize>,
    expect_status: u16,
    expect_code: String,
}

/// What a refused request must not change: the policy versions and the Data API's log.
async fn state(env: &Env) -> Value {
    let versions = env.admin(Method::GET, "/v1/policies", None).await;
    versions.expect(200);
    let events = env
        .admin(
            Method::GET,
            "/v1/audit/events?kind=opa.decision&limit=500",
            None,
        )
        .await;
    events.expect(200);
    json!({"versions": versions.json(), "events": events.json()["items"]})
}

async fn run(name: &str, case: Case) -> Result<(), String> {
    let env = Env::new();
    // An active version with a module, so a refused change has something to spoil.
    env.admin(
        Method::POST,
        "/v1/policies",
        Some(json!({"rego_modules": [{"id": "authz.rego",
                    "source": "package http.authz\n\ndefault allow := false\n"}]})),
    )
    .await
    .expect(201);
    env.admin(Method::POST, "/v1/policies/1/activate", None)
        .await
        .expect(200);
    let uses = |p: &str| case.headers.values().any(|v| v.contains(p));
    let auditor = if uses("{auditor}") {
        env.admin_token("auditor").await
    } else {
        String::new()
    };
    let agent_token = if uses("{agent_token}") {
        let c = env.client("data-asker").await;
        env.token(&c).await
    } else {
        String::new()
    };
    let fill = |s: &str| {
        s.replace("{admin}", &env.admin)
            .replace("{auditor}", &auditor)
            .replace("{agent_token}", &agent_token)
    };
    let before = state(&env).await;

    let method = Method::from_bytes(case.method.as_bytes()).map_err(|e| format!("{name}: {e}"))?;
    let mut req = Request::builder().method(method).uri(&case.path);
    for (k, v) in &case.headers {
        req = req.header(k.as_str(), fill(v));
    }
    let body = match &case.body_hex {
        Some(hex) => hex
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).map_err(|e| format!("{name}: body_hex: {e}")))
            .collect::<Result<Vec<u8>, _>>()?,
        None => case.body.repeat(case.body_repeat.unwrap_or(1)).into_bytes(),
    };
    let router = opa_router(Arc::clone(&env.state), OpaAuthentication::Token);
    let res = router
        .oneshot(
            req.body(Body::from(body))
                .map_err(|e| format!("{name}: request: {e}"))?,
        )
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let status = res.status().as_u16();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .map_err(|e| format!("{name}: body: {e}"))?;

    let mut problems = Vec::new();
    if status != case.expect_status {
        problems.push(format!("status {status} (want {})", case.expect_status));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) => {
            if v["code"] != case.expect_code.as_str() {
                problems.push(format!("code {} (want {})", v["code"], case.expect_code));
            }
            if !v["message"].is_string() {
                problems.push("no message: not OPA's error shape".into());
            }
        }
        Err(e) => problems.push(format!("body is not JSON: {e}")),
    }
    if state(&env).await != before {
        problems.push("the request changed stored state".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{name} ({}): {} -- body: {}",
            case.about,
            problems.join("; "),
            String::from_utf8_lossy(&bytes)
        ))
    }
}

#[tokio::test]
async fn opa_bad_input_cases() {
    let mut failures = Vec::new();
    for (name, case) in super::case_files::<Case>("opa_bad_input", 15) {
        if let Err(e) = run(&name, case).await {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A Data API query joins the caller's W3C trace: its `opa.decision` carries the trace
/// id, as a `/v1/authorize` decision does (docs/traces.md). Regression: the OPA listener
/// had no trace layer and its decisions no `trace_id`.
#[tokio::test]
async fn a_data_api_query_records_the_callers_trace_id() {
    let env = Env::new();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let res = opa_router(Arc::clone(&env.state), OpaAuthentication::Token)
        .oneshot(
            Request::builder()
                .method(Method::POST)
                .uri("/v1/data/http/authz/allow")
                .header("authorization", format!("Bearer {}", env.admin))
                .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
                .body(Body::from(r#"{"input": {"user": "x"}}"#))
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(res.status(), 200);
    let events = env
        .admin(Method::GET, "/v1/audit/events?kind=opa.decision", None)
        .await;
    events.expect(200);
    let items = events.json()["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{items}");
    assert_eq!(items[0]["trace_id"], trace, "{items}");
}
