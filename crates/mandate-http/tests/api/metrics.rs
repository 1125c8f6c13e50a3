//! `GET /metrics` through the router with the process's recorder installed, as the
//! binary mounts it: the answer parses as the Prometheus text format (0.0.4, by the
//! strict reader below), and after a known series of tokens and decisions each counter
//! moved by exactly what was done, under the right labels; no label names an agent.
//!
//! The recorder is global to the process ([`mandate_http::metrics::install`] sets it
//! once): the test compares before and after, and nextest runs each test in its own
//! process, so nothing else moves the counters in between.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::json;

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

    env.activate(POLICIES, &[SCHEMA]).await;
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
    assert_eq!(delta(ISSUED), 2.0, "{text}");
    assert_eq!(delta(REFUSED), 1.0, "{text}");
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
