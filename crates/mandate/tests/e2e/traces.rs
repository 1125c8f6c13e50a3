//! Traces end to end (issue 23): `mandate serve` with `[telemetry] otlp_endpoint` set
//! exports its spans to a real OTLP/HTTP receiver (`interop/otlp_receiver.py`, which
//! parses them with the OpenTelemetry project's own protobuf definitions and refuses
//! anything that is not OTLP's JSON encoding). The receiver refuses the first export
//! with 503 and `Retry-After`, so the spans arrive only if the exporter retries as
//! OTLP/HTTP says. An API request and a gateway request, each with the caller's
//! `traceparent`, give server spans in the caller's trace with the caller's span as
//! parent; the gateway's upstream call is a client span under the gateway's, whose id is
//! the parent-id the upstream received; both decisions' audit events carry the trace id.

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{SECRET, Seen, crm_config, crm_reader, upstream};
use crate::harness::{Server, data_dir};
use crate::interop_env::{Killed, interop_dir, python_cmd, venv_python};

const API_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const API_PARENT: &str = "00f067aa0ba902b7";
const GW_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const GW_PARENT: &str = "b7ad6b7169203331";

/// Every line the receiver wrote.
fn received(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn issue23_spans_reach_a_real_otlp_receiver_in_the_callers_trace() {
    let python =
        venv_python("interop-otlp-venv", "requirements-otlp.txt").unwrap_or_else(|e| panic!("{e}"));
    let files = tempfile::tempdir().unwrap();
    let out = files.path().join("spans.jsonl");
    let mut child = python_cmd(&python)
        .arg(interop_dir().join("otlp_receiver.py"))
        .arg(&out)
        .arg("1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _receiver = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("port ")
        .unwrap_or_else(|| panic!("receiver said {line:?}"))
        .parse()
        .unwrap();

    let seen = Seen::default();
    let up = upstream(seen.clone()).await;
    let (_t, dir) = data_dir();
    let config = files.path().join("mandate.toml");
    let telemetry = format!(
        "\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}/v1/traces\"\n\
         service_name = \"mandate-e2e\"\nsampling_ratio = 0.0\n"
    );
    std::fs::write(&config, crm_config(&up, &telemetry)).unwrap();
    let s = Server::start(&dir, &["--config", config.to_str().unwrap()], &[]);
    let admin = s.token.clone().expect("bootstrap token");
    let gw = s.gateway_base();
    let (st, v) = s
        .admin(
            &admin,
            Method::PUT,
            "/v1/gateway/secrets/crm-key",
            Some(json!({"value": SECRET})),
        )
        .await;
    assert!(st == 200 || st == 201 || st == 204, "{st} {v}");
    let token = crm_reader(&s, &admin, &gw).await;

    // An API request in the caller's trace: an enforcement point asks about the agent.
    let agent = {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        claims["client_id"].as_str().unwrap().to_owned()
    };
    let res = s
        .http
        .post(s.url("/v1/authorize"))
        .bearer_auth(&admin)
        .header("traceparent", format!("00-{API_TRACE}-{API_PARENT}-01"))
        .json(&json!({"principal": agent, "action": "crm:read",
                      "resource": {"type": "Crm::Contact", "id": "c1"},
                      "context": {"data_class": "internal"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A gateway request in another, with a tracestate.
    let res = s
        .http
        .get(format!("{gw}/crm/contacts/c42"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{GW_TRACE}-{GW_PARENT}-01"))
        .header("tracestate", "congo=t61rcWkgMzE")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let (_, headers) = seen.requests.lock().unwrap().last().cloned().unwrap();
    let upstream_tp = headers["traceparent"].to_str().unwrap().to_owned();
    assert!(
        upstream_tp.starts_with(&format!("00-{GW_TRACE}-")),
        "{upstream_tp}"
    );
    assert!(upstream_tp.ends_with("-01"), "{upstream_tp}");
    let upstream_parent = upstream_tp[36..52].to_owned();
    assert_ne!(upstream_parent, GW_PARENT);
    assert_eq!(headers["tracestate"], "congo=t61rcWkgMzE");
    // A request with no traceparent starts a trace sampled by `sampling_ratio = 0`: not
    // exported.
    let res = s
        .http
        .get(format!("{gw}/crm/contacts/c43"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // The spans: server spans for both, a client span for the upstream call.
    let deadline = Instant::now() + Duration::from_secs(20);
    let spans = loop {
        let lines = received(&out);
        let spans: Vec<Value> = lines
            .iter()
            .filter(|l| l.get("trace_id").is_some())
            .cloned()
            .collect();
        let ready = spans.iter().filter(|s| s["trace_id"] == GW_TRACE).count() >= 2
            && spans.iter().any(|s| s["trace_id"] == API_TRACE);
        if ready {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "spans missing; the receiver got: {lines:?}\n--- server stderr\n{}",
            s.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        spans[0],
        json!({"refused": 503}),
        "the first export was refused"
    );
    let errors: Vec<&Value> = spans.iter().filter(|l| l.get("error").is_some()).collect();
    assert!(errors.is_empty(), "not OTLP: {errors:?}");
    let spans: Vec<&Value> = spans
        .iter()
        .filter(|l| l.get("trace_id").is_some())
        .collect();
    for sp in &spans {
        assert_eq!(sp["resource"]["service.name"], "mandate-e2e", "{sp}");
        assert!(sp["end"].as_u64() >= sp["start"].as_u64(), "{sp}");
        assert!(
            sp["start"].as_u64().unwrap() > 1_600_000_000_000_000_000,
            "{sp}"
        );
        let text = sp.to_string();
        assert!(!text.contains(&token) && !text.contains(SECRET), "{sp}");
        assert!(
            sp["trace_id"] == API_TRACE || sp["trace_id"] == GW_TRACE,
            "unsampled trace exported: {sp}"
        );
    }

    let api: Vec<&&Value> = spans
        .iter()
        .filter(|s| s["trace_id"] == API_TRACE)
        .collect();
    assert_eq!(api.len(), 1, "{api:?}");
    let a = api[0];
    assert_eq!(a["kind"], 2, "SPAN_KIND_SERVER");
    assert_eq!(a["parent_span_id"], API_PARENT);
    assert_eq!(a["attributes"]["http.request.method"], "POST");
    assert_eq!(a["attributes"]["url.path"], "/v1/authorize");
    assert_eq!(a["attributes"]["http.response.status_code"], 200);
    assert_eq!(a["attributes"]["mandate.decision"], "allow", "{a}");
    assert_eq!(a["attributes"]["mandate.agent"], agent.as_str());

    let server = spans
        .iter()
        .find(|s| s["trace_id"] == GW_TRACE && s["kind"] == 2)
        .unwrap();
    let client = spans
        .iter()
        .find(|s| s["trace_id"] == GW_TRACE && s["kind"] == 3)
        .unwrap();
    assert_eq!(server["parent_span_id"], GW_PARENT);
    assert_eq!(server["trace_state"], "congo=t61rcWkgMzE");
    assert_eq!(server["attributes"]["http.request.method"], "GET");
    assert_eq!(server["attributes"]["url.path"], "/crm/contacts/c42");
    assert_eq!(server["attributes"]["http.response.status_code"], 200);
    assert_eq!(server["attributes"]["mandate.decision"], "allow");
    assert!(
        server["attributes"]["mandate.agent"] == agent.as_str(),
        "{server}"
    );
    assert_eq!(client["parent_span_id"], server["span_id"]);
    assert_eq!(client["span_id"], upstream_parent.as_str());
    assert_eq!(client["attributes"]["http.response.status_code"], 200);

    // The decisions' audit events carry the trace ids.
    let events = s.audit_events(&admin, "decision", None).await;
    for t in [API_TRACE, GW_TRACE] {
        assert_eq!(
            events.iter().filter(|e| e["trace_id"] == t).count(),
            1,
            "{t}: {events:?}"
        );
    }
}
