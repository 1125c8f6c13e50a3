//! `GET /metrics` through the router with the process's recorder installed, as the
//! binary mounts it: the answer parses as the Prometheus text format (0.0.4, by the
//! strict reader below), and after a known series of tokens and decisions each counter
//! moved by exactly what was done (`/v1/authorize`, AuthZEN, the Data API, the token
//! endpoint), under the right labels; no label names an agent. The
//! gauges read at the scrape (export sinks) and the detector's count agree with what
//! the API says of the same things.
//!
//! The recorder is global to the process ([`mandate_http::metrics::install`] sets it
//! once): the test compares before and after, and nextest runs each test in its own
//! process, so nothing else moves the counters in between.

use std::collections::BTreeMap;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, header};
use mandate_detect::DetectConfig;
use mandate_http::export::{Item, SendError, Sending, SinkConfig, Transport};
use serde_json::{Value, json};

use super::Env;
use super::incidents::{POLICIES, SCHEMA};

/// One scrape, read: each series (`name{label="value",…}`, labels sorted) with its
/// value, and each family's declared type.
#[derive(Debug, Default)]
struct Exposition {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    fn get(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

fn number(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("`{s}` is not a number")),
    }
}

/// `{a="x",b="y"}` after a metric name: the labels, and the rest of the line.
fn labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut out = BTreeMap::new();
    let Some(rest) = s.strip_prefix('{') else {
        return Ok((out, s));
    };
    s = rest;
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((out, rest));
        }
        let eq = s.find('=').ok_or("a label without `=`")?;
        let name = &s[..eq];
        if !is_name(name, false) {
            return Err(format!("bad label name `{name}`"));
        }
        s = s[eq + 1..]
            .strip_prefix('"')
            .ok_or("an unquoted label value")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next().ok_or("an unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("a dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape `\\{c}`")),
                },
                (_, c) => value.push(c),
            }
        };
        if out.insert(name.to_owned(), value).is_some() {
            return Err(format!("label `{name}` twice"));
        }
        s = &s[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

/// The family a sample belongs to, given the declared types (a histogram's `_bucket`,
/// `_sum` and `_count` belong to it).
fn family<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types
                .get(base)
                .is_some_and(|t| t == "histogram" || t == "summary")
        {
            return base;
        }
    }
    name
}

/// Reads the text exposition format 0.0.4 strictly: every line a comment, a `# HELP`,
/// a `# TYPE` (once per family, before its samples) or a sample of a declared family;
/// histograms with cumulative buckets ending in `+Inf` equal to `_count`.
fn parse(text: &str) -> Result<Exposition, String> {
    let mut e = Exposition::default();
    let mut seen_samples = std::collections::BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |m: String| format!("line {}: {m}: {line}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(t)) => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                        return Err(at(format!("unknown type `{t}`")));
                    }
                    if seen_samples.contains(name) {
                        return Err(at("TYPE after the family's samples".into()));
                    }
                    if e.types.insert(name.to_owned(), t.to_owned()).is_some() {
                        return Err(at("a second TYPE line".into()));
                    }
                }
                (Some("HELP"), Some(name), _) if is_name(name, true) => {}
                (Some("HELP" | "TYPE"), _, _) => return Err(at("malformed".into())),
                _ => {}
            }
            continue;
        }
        let end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..end];
        if !is_name(name, true) {
            return Err(at(format!("bad metric name `{name}`")));
        }
        let (labels, rest) = labels(&line[end..]).map_err(at)?;
        let mut fields = rest.split_whitespace();
        let value = number(fields.next().ok_or_else(|| at("no value".into()))?).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| at("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let fam = family(name, &e.types);
        if !e.types.contains_key(fam) {
            return Err(at(format!("no TYPE for `{fam}`")));
        }
        seen_samples.insert(fam.to_owned());
        let key = if labels.is_empty() {
            name.to_owned()
        } else {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", l.join(","))
        };
        if e.samples.insert(key, value).is_some() {
            return Err(at("a series twice".into()));
        }
    }
    // Histograms: buckets cumulative, the `+Inf` bucket is the count.
    for (fam, t) in &e.types {
        if t != "histogram" {
            continue;
        }
        let mut last = 0.0;
        let prefix = format!("{fam}_bucket{{");
        let mut inf = None;
        let mut buckets: Vec<(f64, f64)> = e
            .samples
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| {
                let le = k.split("le=\"").nth(1).and_then(|r| r.split('"').next());
                (number(le.unwrap_or("x")).unwrap_or(f64::NAN), *v)
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (le, v) in buckets {
            if v < last {
                return Err(format!("{fam}: bucket le={le} holds {v} < {last}"));
            }
            last = v;
            if le == f64::INFINITY {
                inf = Some(v);
            }
        }
        let count = e.get(&format!("{fam}_count"));
        if inf != Some(count) {
            return Err(format!("{fam}: +Inf bucket {inf:?} but count {count}"));
        }
    }
    Ok(e)
}

#[test]
fn the_reader_refuses_what_is_not_the_format() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 3\n";
    let e = parse(ok).expect("valid");
    assert_eq!(e.get("a_total{x=\"1\",y=\"q\"\"}"), 3.0);
    for bad in [
        "a_total 1\n",                                                       // no TYPE
        "# TYPE a counter\na{x=1} 1\n",                                      // unquoted value
        "# TYPE a counter\na 1\n# TYPE a counter\n",                         // TYPE twice
        "# TYPE a counter\na one\n",                                         // not a number
        "# TYPE a counter\na{x=\"1\"} 1\na{x=\"1\"} 2\n",                    // a series twice
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\nh_sum 1\n", // +Inf != count
        "# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n",
    ] {
        assert!(parse(bad).is_err(), "read as valid: {bad}");
    }
}

async fn scrape(env: &Env) -> (Exposition, String) {
    let r = env.admin(Method::GET, "/metrics", None).await;
    r.expect(200);
    assert_eq!(
        r.header(header::CONTENT_TYPE),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(r.body.to_vec()).expect("UTF-8");
    (parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}")), text)
}

/// This node's log length, as `GET /v1/export` reports it.
async fn log_length(env: &Env) -> f64 {
    let r = env.admin(Method::GET, "/v1/export", None).await;
    r.expect(200);
    r.json()["log_length"].as_f64().expect("log_length")
}

const ALLOW: &str =
    "mandate_decisions_total{outcome=\"allow\",reason=\"allowed_by_policy\",surface=\"authorize\"}";
const ISSUED: &str = "mandate_tokens_issued_total{grant_type=\"client_credentials\"}";
const REFUSED: &str = "mandate_tokens_refused_total{error=\"invalid_client\"}";

#[tokio::test]
async fn counters_move_by_what_was_done_with_their_labels() {
    let mut env = Env::new();
    // Without the recorder the route is there but has nothing to show.
    env.admin(Method::GET, "/metrics", None).await.expect(404);
    let exposition = mandate_http::metrics::install().expect("the recorder");
    env.app = env.app.clone().layer(axum::Extension(exposition));

    // Cedar for `/v1/authorize` and AuthZEN, a Rego module for the Data API.
    let r = env
        .admin(
            Method::POST,
            "/v1/policies",
            Some(json!({"policies": POLICIES, "schema_fragments": [SCHEMA],
                        "rego_modules": [{"id": "authz.rego",
                                          "source": "package http.authz\n\ndefault allow := false\n"}]})),
        )
        .await;
    r.expect(201);
    let version = r.json()["version"].as_i64().expect("version");
    env.admin(
        Method::POST,
        &format!("/v1/policies/{version}/activate"),
        None,
    )
    .await
    .expect(200);
    let reads = json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}]});
    let reader = env.client_with("reader", reads).await;
    let outsider = env.client("outsider").await;
    let (before, _) = scrape(&env).await;
    let log_before = log_length(&env).await;

    // Two tokens issued, one refused (a wrong secret).
    let token = env.token(&reader).await;
    let outsider_token = env.token(&outsider).await;
    env.form(
        "/oauth/token",
        Some((&reader.id, "not-the-secret")),
        &[("grant_type", "client_credentials")],
    )
    .await
    .expect(401);
    // One refused before any client is looked up: a grant Mandate does not support.
    env.form(
        "/oauth/token",
        Some((&reader.id, "not-the-secret")),
        &[("grant_type", "password")],
    )
    .await
    .expect(400);
    // Three allowed reads, one read outside the agent's boundary.
    for _ in 0..3 {
        assert_eq!(env.read_contact(&token).await.0, "allow");
    }
    let (verdict, reason) = env.read_contact(&outsider_token).await;
    assert_eq!(verdict, "deny");
    // One AuthZEN evaluation, allowed.
    let ev = Request::post("/access/v1/evaluation")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"subject": {"type": "agent", "id": reader.id},
                   "action": {"name": "crm:read"},
                   "resource": {"type": "Crm::Contact", "id": "c-1"}})
            .to_string(),
        ))
        .expect("request");
    let r = env.send(ev).await;
    r.expect(200);
    assert_eq!(
        r.json()["decision"],
        true,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    // One Data API query on the OPA-compatible router, answered `false`.
    let opa = mandate_http::opa::opa_router(
        std::sync::Arc::clone(&env.state),
        mandate_http::opa::OpaAuthentication::Token,
    );
    let q = Request::post("/v1/data/http/authz/allow")
        .header(header::AUTHORIZATION, format!("Bearer {}", env.admin))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"input": {"user": "x"}}).to_string()))
        .expect("request");
    let res = tower::ServiceExt::oneshot(opa, q)
        .await
        .expect("infallible");
    assert_eq!(res.status(), 200);

    let (after, text) = scrape(&env).await;
    let log_after = log_length(&env).await;
    let delta = |series: &str| after.get(series) - before.get(series);
    assert_eq!(delta(ALLOW), 3.0, "{text}");
    let deny = format!(
        "mandate_decisions_total{{outcome=\"deny\",reason=\"{reason}\",surface=\"authorize\"}}"
    );
    assert_eq!(delta(&deny), 1.0, "{text}");
    assert_eq!(
        delta(
            "mandate_decisions_total{outcome=\"allow\",reason=\"allowed_by_policy\",surface=\"authzen\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta("mandate_decisions_total{outcome=\"deny\",reason=\"none\",surface=\"opa\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(delta(ISSUED), 2.0, "{text}");
    assert_eq!(delta(REFUSED), 1.0, "{text}");
    assert_eq!(
        delta("mandate_tokens_refused_total{error=\"unsupported_grant_type\"}"),
        1.0,
        "{text}"
    );
    // Four `/v1/authorize` answers timed (AuthZEN's is not), as a histogram.
    assert_eq!(
        after
            .types
            .get("mandate_decision_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        delta("mandate_decision_duration_seconds_count"),
        4.0,
        "{text}"
    );
    // Every event of the log committed here is counted, once.
    assert_eq!(
        delta("mandate_audit_events_total"),
        log_after - log_before,
        "{text}"
    );
    assert!(delta("mandate_audit_commit_duration_seconds_count") >= 1.0);
    assert_eq!(after.get("mandate_audit_queue_depth"), 0.0);
    assert_eq!(
        after
            .types
            .get("mandate_audit_queue_depth")
            .map(String::as_str),
        Some("gauge")
    );
    // A single node needs no proof of freshness: its snapshot is current.
    assert_eq!(after.get("mandate_snapshot_age_seconds"), 0.0, "{text}");
    assert!(after.get("mandate_snapshot_refreshes_total{outcome=\"ok\"}") >= 1.0);
    // No label carries an agent id (nor anything else per agent).
    for id in [&reader.id, &outsider.id] {
        assert!(!text.contains(id.as_str()), "{id} in:\n{text}");
    }
    assert!(!text.contains("agt_"), "{text}");
}

/// An export transport that accepts every batch.
struct Accepts;

impl Transport for Accepts {
    fn send<'a>(&'a mut self, _: &'a [Item]) -> Sending<'a> {
        Box::pin(async { Ok(()) })
    }
}

/// An export transport whose receiver is always down.
struct Down;

impl Transport for Down {
    fn send<'a>(&'a mut self, _: &'a [Item]) -> Sending<'a> {
        Box::pin(async { Err(SendError::new("connection refused")) })
    }
}

fn sink(name: &str) -> SinkConfig {
    toml::from_str(&format!("name = \"{name}\"\ntype = \"webhook\"\n")).expect("sink table")
}

/// `/v1/authorize/batch` as the bootstrap admin naming `agent`: reads of contact `id`.
async fn reads(env: &Env, agent: &str, id: &str, n: usize) -> Vec<Value> {
    let one = json!({"principal": agent, "action": "crm:read",
                     "resource": {"type": "Crm::Contact", "id": id}});
    let r = env
        .admin(
            Method::POST,
            "/v1/authorize/batch",
            Some(json!({"requests": vec![one; n]})),
        )
        .await;
    r.expect(200);
    r.json()["results"].as_array().expect("results").clone()
}

#[tokio::test]
async fn anomalies_and_export_sinks_are_counted_as_the_api_reports_them() {
    // Judging from the first request on, so a burst of denies is a finding at once.
    let mut env = Env::with_config(|c| {
        c.detect.config = DetectConfig {
            learning_secs: 0,
            learning_min_events: 1,
            ..DetectConfig::default()
        };
    });
    let exposition = mandate_http::metrics::install().expect("the recorder");
    env.app = env.app.clone().layer(axum::Extension(exposition));
    env.activate(POLICIES, &[SCHEMA]).await;
    let agent = env
        .register(
            "prober",
            json!({"grants": [{"actions": ["crm:read"], "resources": ["Crm::Contact/c-*"]}]}),
        )
        .await;
    let (before, _) = scrape(&env).await;

    // Usual traffic, then, a minute later, five reads outside its boundary.
    for d in reads(&env, &agent, "c-1", 20).await {
        assert_eq!(d["decision"], "allow", "{d}");
    }
    env.advance(61);
    for d in reads(&env, &agent, "secret-1", 5).await {
        assert_eq!(d["decision"], "deny", "{d}");
    }
    let r = env
        .admin(Method::GET, &format!("/v1/anomalies?agent={agent}"), None)
        .await;
    r.expect(200);
    let found = r.json()["items"].as_array().expect("items").clone();
    assert!(!found.is_empty(), "the burst is a finding");

    // Two sinks: one delivers everything, one's receiver is down.
    mandate_http::export::spawn(
        &env.state,
        vec![
            (sink("delivers"), Box::new(Accepts) as Box<dyn Transport>),
            (sink("down"), Box::new(Down)),
        ],
    );
    let board = loop {
        let r = env.admin(Method::GET, "/v1/export", None).await;
        r.expect(200);
        let v = r.json();
        let caught_up = v["sinks"]
            .as_array()
            .expect("sinks")
            .iter()
            .any(|s| s["name"] == "delivers" && s["lag"] == 0);
        if caught_up {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };

    let (after, text) = scrape(&env).await;
    for severity in ["low", "medium", "high", "critical"] {
        let series = format!("mandate_anomalies_total{{severity=\"{severity}\"}}");
        let raised = found.iter().filter(|a| a["severity"] == severity).count();
        assert_eq!(
            after.get(&series) - before.get(&series),
            raised as f64,
            "{severity}: {text}"
        );
        // Every severity is shown from the start.
        assert!(after.samples.contains_key(&series), "{series}: {text}");
    }
    let log_length = board["log_length"].as_f64().expect("log_length");
    for s in board["sinks"].as_array().expect("sinks") {
        let name = s["name"].as_str().expect("name");
        let lag = after.get(&format!("mandate_export_lag_events{{sink=\"{name}\"}}"));
        let delivered = after.get(&format!(
            "mandate_export_delivered_total{{sink=\"{name}\"}}"
        ));
        assert_eq!(lag, s["lag"].as_f64().expect("lag"), "{name}: {text}");
        assert_eq!(
            delivered,
            s["delivered"].as_f64().expect("delivered"),
            "{name}"
        );
    }
    assert_eq!(
        after.get("mandate_export_delivered_total{sink=\"delivers\"}"),
        log_length
    );
    assert_eq!(
        after.get("mandate_export_lag_events{sink=\"down\"}"),
        log_length
    );
    assert_eq!(
        after
            .types
            .get("mandate_export_lag_events")
            .map(String::as_str),
        Some("gauge")
    );
    assert!(!text.contains(&agent), "{text}");
}
