//! Prometheus metrics end to end (issue 23): `metrics.listen` on a loopback port serves
//! `GET /metrics` without a token, in a text the Prometheus project's own Python parser
//! (`prometheus_client`) reads, with the decisions and tokens just made counted under
//! their labels; the API's `GET /metrics` still wants an admin token; with
//! `metrics.authentication = "token"` the listener wants one too; and a non-loopback
//! `metrics.listen` without it is refused at start, saying what to set. The gateways'
//! tests (gateway.rs, mcp.rs) check their decisions are counted under their surface
//! with [`decisions_counted`].

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::harness::{BIN, Server, data_dir};
use crate::interop_env::{interop_dir, python_cmd, show, venv_python};

/// The metrics listener's base URL, from the banner.
fn metrics_url(s: &Server) -> String {
    let out = s.stdout_text();
    out.lines()
        .find_map(|l| l.strip_prefix("metrics on "))
        .unwrap_or_else(|| panic!("no metrics line in: {out}"))
        .trim()
        .to_owned()
}

/// `text` read by `prometheus_client.parser.text_string_to_metric_families`.
fn parse_with_prometheus_client(text: &str) -> Vec<Value> {
    let python = venv_python("interop-metrics-venv", "requirements-metrics.txt")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut child = python_cmd(&python)
        .arg(interop_dir().join("prometheus_parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition:\n{}\n--- text\n{text}",
        show(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The `mandate_decisions_total` series of `surface` on the API's `GET /metrics`:
/// (outcome, reason) to count. Label values are codes (no quote or comma in them).
pub(crate) async fn decisions_counted(
    s: &Server,
    admin: &str,
    surface: &str,
) -> BTreeMap<(String, String), f64> {
    let (st, _, text) = get(s, &s.url("/metrics"), Some(admin)).await;
    assert_eq!(st, 200, "{text}");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("mandate_decisions_total{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ").unwrap();
        let labels: BTreeMap<&str, &str> = labels
            .split(',')
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k, v.trim_matches('"'))
            })
            .collect();
        if labels["surface"] == surface {
            out.insert(
                (labels["outcome"].to_owned(), labels["reason"].to_owned()),
                value.parse::<f64>().unwrap(),
            );
        }
    }
    out
}

/// Decision events grouped as [`decisions_counted`] counts them: (decision, first
/// reason) to how many.
pub(crate) fn decisions_recorded(events: &[Value]) -> BTreeMap<(String, String), f64> {
    let mut out = BTreeMap::new();
    for e in events {
        let key = (
            e["decision"].as_str().unwrap().to_owned(),
            e["reasons"][0].as_str().unwrap().to_owned(),
        );
        *out.entry(key).or_insert(0.0) += 1.0;
    }
    out
}

/// The value of the sample `name` whose labels are `labels`, among `families`.
fn sample(families: &[Value], name: &str, labels: Value) -> Option<f64> {
    families
        .iter()
        .flat_map(|f| f["samples"].as_array().into_iter().flatten())
        .find(|s| s["name"] == name && s["labels"] == labels)
        .and_then(|s| s["value"].as_f64())
}

async fn get(s: &Server, url: &str, bearer: Option<&str>) -> (u16, Option<String>, String) {
    let mut req = s.http.get(url);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, ct, res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loopback_metrics_listener_serves_prometheus_without_a_token() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[("MANDATE_METRICS_LISTEN", "127.0.0.1:0")]);
    let admin = s.token.clone().unwrap();
    let metrics = metrics_url(&s);
    assert!(metrics.starts_with("http://127.0.0.1:"), "{metrics}");

    // One token issued, one refused, one decision (denied: no policy is active).
    let (agent, secret) = s.agent_with_secret(&admin, "scraped").await;
    let (st, t) = s.token_basic(&agent, &secret, &[]).await;
    assert_eq!(st, 200, "{t}");
    let token = t["access_token"].as_str().unwrap().to_owned();
    let (st, _) = s.token_basic(&agent, "wrong-secret", &[]).await;
    assert_eq!(st, 401);
    let res = s
        .http
        .post(s.url("/v1/authorize"))
        .bearer_auth(&token)
        .json(&json!({"action": "crm:read", "resource": {"type": "Crm::Contact", "id": "c-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["decision"], "deny", "{answer}");
    let reason = answer["reasons"][0].as_str().unwrap().to_owned();

    // No token on the metrics listener; Prometheus' media type.
    let (st, ct, text) = get(&s, &metrics, None).await;
    assert_eq!(st, 200, "{text}");
    assert_eq!(
        ct.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let families = parse_with_prometheus_client(&text);
    let decisions = families
        .iter()
        .find(|f| f["name"] == "mandate_decisions")
        .unwrap_or_else(|| panic!("no decisions family in {text}"));
    assert_eq!(decisions["type"], "counter");
    assert_eq!(
        sample(
            &families,
            "mandate_decisions_total",
            json!({"surface": "authorize", "outcome": "deny", "reason": reason}),
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &families,
            "mandate_tokens_issued_total",
            json!({"grant_type": "client_credentials"}),
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &families,
            "mandate_tokens_refused_total",
            json!({"error": "invalid_client"}),
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &families,
            "mandate_decision_duration_seconds_count",
            json!({})
        ),
        Some(1.0),
        "{text}"
    );
    let histogram = families
        .iter()
        .find(|f| f["name"] == "mandate_audit_commit_duration_seconds")
        .unwrap_or_else(|| panic!("no commit histogram in {text}"));
    assert_eq!(histogram["type"], "histogram");
    assert_eq!(
        sample(&families, "mandate_snapshot_age_seconds", json!({})),
        Some(0.0)
    );
    assert!(!text.contains(&agent), "an agent id in a label:\n{text}");

    // Only `/metrics` there; the API's own `/metrics` wants an admin token.
    let other = metrics.replace("/metrics", "/v1/agents");
    assert_eq!(get(&s, &other, None).await.0, 404);
    assert_eq!(get(&s, &s.url("/metrics"), None).await.0, 401);
    assert_eq!(get(&s, &s.url("/metrics"), Some(&token)).await.0, 403);
    let (st, _, api_text) = get(&s, &s.url("/metrics"), Some(&admin)).await;
    assert_eq!(st, 200);
    parse_with_prometheus_client(&api_text);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_authentication_on_the_metrics_listener_wants_an_admin_token() {
    let (_t, dir) = data_dir();
    let s = Server::start(
        &dir,
        &[],
        &[
            ("MANDATE_METRICS_LISTEN", "127.0.0.1:0"),
            ("MANDATE_METRICS_AUTHENTICATION", "token"),
        ],
    );
    let admin = s.token.clone().unwrap();
    let metrics = metrics_url(&s);
    assert_eq!(get(&s, &metrics, None).await.0, 401);
    let (st, _, text) = get(&s, &metrics, Some(&admin)).await;
    assert_eq!(st, 200, "{text}");
    assert!(text.contains("# TYPE mandate_"), "{text}");
}

#[test]
fn a_public_metrics_listener_without_token_authentication_is_refused() {
    let (_t, dir) = data_dir();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("MANDATE_METRICS_LISTEN", "0.0.0.0:0")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`metrics.listen = \"0.0.0.0:0\"` is not a loopback address")
            && err.contains("metrics.authentication = \"token\""),
        "{err}"
    );
}
