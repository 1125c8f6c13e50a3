//! The HTTP export sinks (`mandate_http::export_http`) against receivers on loopback
//! ports that follow the vendors' documented contracts: Splunk's HTTP Event Collector
//! (token checks, `503 {"code":9}` when busy, `400 {"code":6}` for invalid data,
//! indexer acknowledgement by channel and `ackId`), Elasticsearch `_bulk` (NDJSON pairs,
//! `create` refused with 409 for an id it holds, item 429s, a mapping error, a
//! whole-request 429) and a webhook receiver that checks the HMAC over the bytes it got.
//! They are not the products: what they answer is what Splunk's and Elastic's
//! documentation says the products answer.
//!
//! Each transport is tested directly (a batch, `send`), and end to end through
//! `mandate_service::export::spawn` over a real node.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use mandate_audit::event::{AuditEvent, NodeName};
use mandate_core::clock::{Clock, ManualClock};
use mandate_core::time::Timestamp;
use mandate_export::{Context, Format};
use mandate_http::export_http::{self, Timing};
use mandate_service::export::{Item, SinkConfig, Transport};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::Env;

const TOKEN: &str = "11111111-2222-3333-4444-555555555555";
const SECRET: &str = "a-webhook-secret-of-32-characters";

/// Short waits, so "never acknowledged" fails in a test's time.
const FAST: Timing = Timing {
    request: Duration::from_secs(5),
    ack_poll: Duration::from_millis(20),
    ack_limit: Duration::from_millis(400),
};

/// Serves `router` on 127.0.0.1:0; its base URL.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// `n` events of node `n1` (seqs `from..from+n`), each with its record in `format`.
fn batch(from: u64, n: u64, format: Format) -> Vec<Item> {
    (from..from + n)
        .map(|seq| {
            let mut event = AuditEvent::new(
                seq,
                Timestamp::from_secs(1_700_000_000 + seq as i64),
                NodeName::new("n1").expect("node name"),
                "decision",
            );
            event.agent = Some("agt_01HZY0000000000000000000AA".into());
            event.decision = Some("allow".into());
            event.details = Some(json!({"note": "café ✓"}));
            let record = mandate_export::record(format, &event, &Context::default());
            Item::new(event, record)
        })
        .collect()
}

/// A sink's table, as the config file would give it (JSON here; the same serde).
fn sink(v: Value) -> SinkConfig {
    serde_json::from_value(v).expect("a sink table")
}

/// A file in `dir` holding `text`.
fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::at_millis(1_700_000_123_000))
}

fn build(cfg: &SinkConfig) -> Box<dyn Transport> {
    export_http::transport_timed(cfg, clock(), FAST)
        .expect("a transport")
        .expect("an HTTP kind")
}

// ---- a Splunk HEC receiver ----

/// How the HEC receiver behaves.
#[derive(Default)]
struct Hec {
    /// Indexer acknowledgement enabled on the token.
    ack: bool,
    /// Acknowledgement never comes (indexing stuck).
    ack_never: bool,
    /// Requests still to answer 503 "Server is busy".
    busy: AtomicU32,
    /// The events indexed, as received.
    events: Mutex<Vec<Value>>,
    /// Each `ackId` with when it becomes true.
    acks: Mutex<HashMap<u64, tokio::time::Instant>>,
    next_ack: AtomicU64,
    /// The channels requests came on.
    channels: Mutex<Vec<String>>,
    /// Acknowledgement queries answered.
    ack_queries: AtomicU32,
}

fn hec(status: StatusCode, code: u32, text: &str) -> Response {
    (status, axum::Json(json!({"text": text, "code": code}))).into_response()
}

/// HEC's token check (Splunk's status codes 2, 3, 4).
fn hec_auth(headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(Box::new(hec(
            StatusCode::UNAUTHORIZED,
            2,
            "Token is required",
        )));
    };
    let Some(token) = auth.strip_prefix("Splunk ") else {
        return Err(Box::new(hec(
            StatusCode::UNAUTHORIZED,
            3,
            "Invalid authorization",
        )));
    };
    if token != TOKEN {
        return Err(Box::new(hec(StatusCode::FORBIDDEN, 4, "Invalid token")));
    }
    Ok(())
}

async fn hec_event(State(s): State<Arc<Hec>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = hec_auth(&headers) {
        return *r;
    }
    if s.busy
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return hec(StatusCode::SERVICE_UNAVAILABLE, 9, "Server is busy");
    }
    let channel = headers
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok());
    if s.ack && channel.is_none() {
        return hec(StatusCode::BAD_REQUEST, 10, "Data channel is missing");
    }
    if let Some(c) = channel {
        s.channels.lock().expect("lock").push(c.to_owned());
    }
    // Concatenated JSON objects, each with an `event`.
    let mut got = Vec::new();
    for (n, v) in serde_json::Deserializer::from_slice(&body)
        .into_iter::<Value>()
        .enumerate()
    {
        match v {
            Ok(v) if v.get("event").is_some() => got.push(v),
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"text": "Invalid data format", "code": 6, "invalid-event-number": n})),
                )
                    .into_response();
            }
        }
    }
    if got.is_empty() {
        return hec(StatusCode::BAD_REQUEST, 5, "No data");
    }
    s.events.lock().expect("lock").extend(got);
    if !s.ack {
        return hec(StatusCode::OK, 0, "Success");
    }
    let id = s.next_ack.fetch_add(1, Ordering::SeqCst);
    let ready = tokio::time::Instant::now() + Duration::from_millis(100);
    s.acks.lock().expect("lock").insert(id, ready);
    axum::Json(json!({"text": "Success", "code": 0, "ackId": id})).into_response()
}

async fn hec_ack(
    State(s): State<Arc<Hec>>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = hec_auth(&headers) {
        return *r;
    }
    if !s.ack {
        return hec(StatusCode::BAD_REQUEST, 14, "ACK is disabled");
    }
    if !q.contains_key("channel") {
        return hec(StatusCode::BAD_REQUEST, 10, "Data channel is missing");
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return hec(StatusCode::BAD_REQUEST, 6, "Invalid data format");
    };
    s.ack_queries.fetch_add(1, Ordering::SeqCst);
    let now = tokio::time::Instant::now();
    let acks = s.acks.lock().expect("lock");
    let mut out = serde_json::Map::new();
    for id in v["acks"].as_array().cloned().unwrap_or_default() {
        let id = id.as_u64().unwrap_or(u64::MAX);
        let done = !s.ack_never && acks.get(&id).is_some_and(|ready| *ready <= now);
        out.insert(id.to_string(), done.into());
    }
    axum::Json(json!({ "acks": out })).into_response()
}

/// A HEC receiver; its event endpoint URL.
async fn hec_receiver(state: Arc<Hec>) -> String {
    let router = axum::Router::new()
        .route("/services/collector/event", axum::routing::post(hec_event))
        .route("/services/collector/ack", axum::routing::post(hec_ack))
        .with_state(state);
    format!("{}/services/collector/event", serve(router).await)
}

fn splunk_sink(url: &str, token_file: &std::path::Path, ack: bool) -> SinkConfig {
    sink(json!({
        "name": "splunk", "type": "splunk", "format": "jsonl", "url": url,
        "token_file": token_file, "index": "security", "ack": ack,
    }))
}

#[tokio::test]
async fn splunk_hec_accepts_a_batch_in_hec_s_event_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = Arc::new(Hec::default());
    let url = hec_receiver(Arc::clone(&rx)).await;
    let mut t = build(&splunk_sink(
        &url,
        &file(&dir, "t", &format!("{TOKEN}\n")),
        false,
    ));
    let items = batch(0, 3, Format::Jsonl);
    t.send(&items).await.expect("accepted");
    let events = rx.events.lock().expect("lock").clone();
    assert_eq!(events.len(), 3);
    for (e, item) in events.iter().zip(&items) {
        assert_eq!(e["time"], item.event.time.secs());
        assert_eq!(e["host"], "n1");
        assert_eq!(e["source"], "mandate");
        assert_eq!(e["sourcetype"], "mandate:jsonl");
        assert_eq!(e["index"], "security");
        assert_eq!(e["event"], item.record, "the record, unchanged");
        assert_eq!(e["event"]["id"], item.event.id());
    }
}

#[tokio::test]
async fn splunk_busy_fails_the_batch_and_the_retry_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = Arc::new(Hec {
        busy: AtomicU32::new(1),
        ..Hec::default()
    });
    let url = hec_receiver(Arc::clone(&rx)).await;
    let mut t = build(&splunk_sink(&url, &file(&dir, "t", TOKEN), false));
    let items = batch(0, 4, Format::Jsonl);
    let e = t.send(&items).await.expect_err("busy");
    assert!(e.message.contains("503"), "{}", e.message);
    assert!(
        e.message.contains("code 9: Server is busy"),
        "{}",
        e.message
    );
    assert!(rx.events.lock().expect("lock").is_empty());
    t.send(&items).await.expect("accepted once not busy");
    assert_eq!(rx.events.lock().expect("lock").len(), 4);
}

#[tokio::test]
async fn a_wrong_hec_token_is_refused_without_showing_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = Arc::new(Hec::default());
    let url = hec_receiver(Arc::clone(&rx)).await;
    let wrong = "99999999-8888-7777-6666-555555555555";
    let mut t = build(&splunk_sink(&url, &file(&dir, "t", wrong), false));
    let e = t
        .send(&batch(0, 1, Format::Jsonl))
        .await
        .expect_err("refused");
    assert!(e.message.contains("403"), "{}", e.message);
    assert!(e.message.contains("code 4: Invalid token"), "{}", e.message);
    assert!(!e.message.contains(wrong), "{}", e.message);
}

#[tokio::test]
async fn splunk_waits_for_the_indexer_acknowledgement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = Arc::new(Hec {
        ack: true,
        ..Hec::default()
    });
    let url = hec_receiver(Arc::clone(&rx)).await;
    let mut t = build(&splunk_sink(&url, &file(&dir, "t", TOKEN), true));
    t.send(&batch(0, 2, Format::Jsonl))
        .await
        .expect("acknowledged");
    // Acknowledged after 100 ms, polled every 20 ms: it asked more than once.
    assert!(rx.ack_queries.load(Ordering::SeqCst) > 1);
    t.send(&batch(2, 2, Format::Jsonl))
        .await
        .expect("acknowledged");
    let channels = rx.channels.lock().expect("lock").clone();
    assert_eq!(channels.len(), 2);
    assert_eq!(channels[0], channels[1], "one channel per sink");
}

#[tokio::test]
async fn splunk_never_acknowledged_fails_the_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = Arc::new(Hec {
        ack: true,
        ack_never: true,
        ..Hec::default()
    });
    let url = hec_receiver(Arc::clone(&rx)).await;
    let mut t = build(&splunk_sink(&url, &file(&dir, "t", TOKEN), true));
    let e = t
        .send(&batch(0, 2, Format::Jsonl))
        .await
        .expect_err("never acknowledged");
    assert!(
        e.message.contains("ackId 0 not acknowledged"),
        "{}",
        e.message
    );
    assert!(rx.ack_queries.load(Ordering::SeqCst) >= 10);
}

#[tokio::test]
async fn splunk_ack_on_a_token_without_acknowledgement_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = Arc::new(Hec::default());
    let url = hec_receiver(Arc::clone(&rx)).await;
    let mut t = build(&splunk_sink(&url, &file(&dir, "t", TOKEN), true));
    let e = t
        .send(&batch(0, 1, Format::Jsonl))
        .await
        .expect_err("no ackId");
    assert!(e.message.contains("without an ackId"), "{}", e.message);
}

/// The receiver's own contract: what it calls invalid data is HEC's 400 code 6 (so the
/// refusals above are the real shape, not one made up for Mandate).
#[tokio::test]
async fn the_hec_receiver_answers_invalid_data_as_hec_does() {
    let rx = Arc::new(Hec::default());
    let url = hec_receiver(rx).await;
    let r = mandate_egress::default_builder()
        .build()
        .unwrap()
        .post(&url)
        .header("authorization", format!("Splunk {TOKEN}"))
        .body("{\"event\": 1} {not json")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["code"].as_u64(), v["text"].as_str()),
        (Some(6), Some("Invalid data format"))
    );
}

// ---- an Elasticsearch `_bulk` receiver ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum BulkMode {
    Normal,
    /// Every other item of a request is refused with 429 (thread pool full).
    RejectSome,
    /// Items whose id ends in `:3` fail mapping (400).
    Mapping,
    /// The whole request is refused with 429.
    Whole429,
}

struct Bulk {
    mode: Mutex<BulkMode>,
    api_key: Option<String>,
    docs: Mutex<BTreeMap<String, Value>>,
    /// Documents created (a duplicate would be counted twice).
    created: AtomicU32,
    /// Creates refused because the id existed.
    conflicts: AtomicU32,
    requests: AtomicU32,
}

impl Bulk {
    fn new(mode: BulkMode) -> Arc<Self> {
        Arc::new(Self {
            mode: Mutex::new(mode),
            api_key: None,
            docs: Mutex::new(BTreeMap::new()),
            created: AtomicU32::new(0),
            conflicts: AtomicU32::new(0),
            requests: AtomicU32::new(0),
        })
    }
}

fn es_error(status: StatusCode, kind: &str, reason: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"type": kind, "reason": reason}, "status": status.as_u16()})),
    )
        .into_response()
}

async fn bulk(State(s): State<Arc<Bulk>>, headers: HeaderMap, body: Bytes) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(key) = &s.api_key {
        let given = headers.get("authorization").and_then(|v| v.to_str().ok());
        if given != Some(&format!("ApiKey {key}")) {
            return es_error(
                StatusCode::UNAUTHORIZED,
                "security_exception",
                "unable to authenticate",
            );
        }
    }
    let mode = *s.mode.lock().expect("lock");
    if mode == BulkMode::Whole429 {
        return es_error(
            StatusCode::TOO_MANY_REQUESTS,
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation",
        );
    }
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok());
    if ct != Some("application/x-ndjson") {
        return es_error(
            StatusCode::NOT_ACCEPTABLE,
            "media_type_header_exception",
            "bad content type",
        );
    }
    if !body.ends_with(b"\n") {
        return es_error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        );
    }
    let text = String::from_utf8(body.to_vec()).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    if !lines.len().is_multiple_of(2) {
        return es_error(
            StatusCode::BAD_REQUEST,
            "illegal_argument_exception",
            "odd lines",
        );
    }
    let mut items = Vec::new();
    let mut errors = false;
    let mut docs = s.docs.lock().expect("lock");
    for (n, pair) in lines.chunks(2).enumerate() {
        let action: Value = serde_json::from_str(pair[0]).expect("action line");
        let doc: Value = serde_json::from_str(pair[1]).expect("source line");
        let meta = &action["create"];
        assert!(meta.is_object(), "only `create` is sent: {action}");
        let (index, id) = (
            meta["_index"].as_str().expect("_index"),
            meta["_id"].as_str().expect("_id").to_owned(),
        );
        let item = if mode == BulkMode::RejectSome && n % 2 == 1 {
            json!({"status": 429, "error": {"type": "es_rejected_execution_exception",
                "reason": "rejected execution of primary operation"}})
        } else if mode == BulkMode::Mapping && id.ends_with(":3") {
            json!({"status": 400, "error": {"type": "mapper_parsing_exception",
                "reason": "failed to parse field [details] of type [long]"}})
        } else if docs.contains_key(&id) {
            s.conflicts.fetch_add(1, Ordering::SeqCst);
            json!({"status": 409, "error": {"type": "version_conflict_engine_exception",
                "reason": format!("[{id}]: version conflict, document already exists (current version [1])")}})
        } else {
            docs.insert(id.clone(), doc);
            s.created.fetch_add(1, Ordering::SeqCst);
            json!({"status": 201, "result": "created", "_version": 1})
        };
        if item["status"].as_u64() != Some(201) {
            errors = true;
        }
        let mut item = item;
        item["_index"] = index.into();
        item["_id"] = id.into();
        items.push(json!({ "create": item }));
    }
    axum::Json(json!({"took": 3, "errors": errors, "items": items})).into_response()
}

/// A `_bulk` receiver; its base URL.
async fn bulk_receiver(state: Arc<Bulk>) -> String {
    let router = axum::Router::new()
        .route("/_bulk", axum::routing::post(bulk))
        .with_state(state);
    serve(router).await
}

fn es_sink(url: &str) -> SinkConfig {
    sink(json!({"name": "es", "type": "elasticsearch", "url": url}))
}

#[tokio::test]
async fn bulk_creates_each_event_under_its_id() {
    let rx = Bulk::new(BulkMode::Normal);
    let url = bulk_receiver(Arc::clone(&rx)).await;
    let mut t = build(&es_sink(&url));
    let items = batch(0, 5, Format::Jsonl);
    t.send(&items).await.expect("accepted");
    let docs = rx.docs.lock().expect("lock").clone();
    let ids: Vec<String> = items.iter().map(|i| i.event.id()).collect();
    assert_eq!(docs.keys().cloned().collect::<Vec<_>>(), ids);
    for i in &items {
        assert_eq!(docs[&i.event.id()], i.record);
    }
}

#[tokio::test]
async fn a_partial_bulk_failure_is_resent_without_duplicates() {
    let rx = Bulk::new(BulkMode::RejectSome);
    let url = bulk_receiver(Arc::clone(&rx)).await;
    let mut t = build(&es_sink(&url));
    let items = batch(0, 6, Format::Jsonl);
    let e = t.send(&items).await.expect_err("3 of 6 refused");
    assert!(e.message.contains("3 items refused"), "{}", e.message);
    assert!(
        e.message.contains("429 es_rejected_execution_exception"),
        "{}",
        e.message
    );
    assert_eq!(
        rx.docs.lock().expect("lock").len(),
        3,
        "the other half was indexed"
    );
    *rx.mode.lock().expect("lock") = BulkMode::Normal;
    t.send(&items)
        .await
        .expect("accepted: 409s count as delivered");
    assert_eq!(rx.docs.lock().expect("lock").len(), 6);
    assert_eq!(
        rx.created.load(Ordering::SeqCst),
        6,
        "each document created once"
    );
    assert_eq!(
        rx.conflicts.load(Ordering::SeqCst),
        3,
        "the resent ones were 409s"
    );
    // A whole batch already indexed (a resend after a crash) is accepted too.
    t.send(&items).await.expect("all 409: delivered");
    assert_eq!(rx.created.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn a_mapping_error_stalls_the_batch_naming_it() {
    let rx = Bulk::new(BulkMode::Mapping);
    let url = bulk_receiver(Arc::clone(&rx)).await;
    let mut t = build(&es_sink(&url));
    let e = t
        .send(&batch(0, 5, Format::Jsonl))
        .await
        .expect_err("rejected");
    assert!(e.message.contains("`n1:3`"), "{}", e.message);
    assert!(
        e.message.contains("400 mapper_parsing_exception"),
        "{}",
        e.message
    );
    assert!(e.message.contains("failed to parse field"), "{}", e.message);
}

#[tokio::test]
async fn a_whole_request_429_fails_the_batch_and_the_retry_is_accepted() {
    let rx = Bulk::new(BulkMode::Whole429);
    let url = bulk_receiver(Arc::clone(&rx)).await;
    let mut t = build(&es_sink(&url));
    let items = batch(0, 3, Format::Jsonl);
    let e = t.send(&items).await.expect_err("429");
    assert!(e.message.contains("429"), "{}", e.message);
    assert!(rx.docs.lock().expect("lock").is_empty());
    *rx.mode.lock().expect("lock") = BulkMode::Normal;
    t.send(&items).await.expect("accepted");
    assert_eq!(rx.docs.lock().expect("lock").len(), 3);
}

#[tokio::test]
async fn bulk_sends_the_api_key_and_a_wrong_one_fails_without_showing_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = Arc::new(Bulk {
        api_key: Some("the-right-key".into()),
        ..Arc::into_inner(Bulk::new(BulkMode::Normal)).expect("one owner")
    });
    let url = bulk_receiver(Arc::clone(&rx)).await;
    let mut cfg = es_sink(&url);
    cfg.index = Some("audit-x".into());
    cfg.token_file = Some(file(&dir, "key", "a-wrong-key\n"));
    let mut t = build(&cfg);
    let e = t.send(&batch(0, 1, Format::Jsonl)).await.expect_err("401");
    assert!(e.message.contains("401"), "{}", e.message);
    assert!(!e.message.contains("a-wrong-key"), "{}", e.message);
    cfg.token_file = Some(file(&dir, "key", "the-right-key\n"));
    let mut t = build(&cfg);
    t.send(&batch(0, 1, Format::Jsonl)).await.expect("accepted");
    assert_eq!(rx.docs.lock().expect("lock").len(), 1);
}

// ---- a webhook receiver ----

/// Checks `Mandate-Signature: t=<t>,v1=<hex>` against HMAC-SHA256(secret, "<t>.<body>"),
/// computed here, over the bytes received.
fn verifies(secret: &str, header: &str, body: &[u8]) -> bool {
    let Some((t, v1)) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let Ok(tag) = (0..v1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(v1.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    mac.verify_slice(&tag).is_ok()
}

struct Hook {
    secret: String,
    lines: Mutex<Vec<Value>>,
    stamps: Mutex<Vec<i64>>,
}

async fn hook(State(s): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let sig = headers
        .get(mandate_http::webhook::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !verifies(&s.secret, sig, &body) {
        return StatusCode::UNAUTHORIZED;
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/x-ndjson") {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    let t = sig
        .strip_prefix("t=")
        .and_then(|r| r.split(',').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    s.stamps.lock().expect("lock").push(t);
    let text = std::str::from_utf8(&body).expect("utf-8");
    assert!(text.is_ascii(), "ASCII JSON lines");
    s.lines.lock().expect("lock").extend(
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line")),
    );
    StatusCode::NO_CONTENT
}

async fn hook_receiver(secret: &str) -> (String, Arc<Hook>) {
    let state = Arc::new(Hook {
        secret: secret.into(),
        lines: Mutex::new(Vec::new()),
        stamps: Mutex::new(Vec::new()),
    });
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(Arc::clone(&state));
    (format!("{}/hook", serve(router).await), state)
}

fn hook_sink(url: &str, secret_file: &std::path::Path) -> SinkConfig {
    sink(json!({"name": "hook", "type": "webhook", "url": url, "secret_file": secret_file}))
}

#[tokio::test]
async fn the_webhook_batch_is_signed_over_its_exact_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, rx) = hook_receiver(SECRET).await;
    let mut t = build(&hook_sink(&url, &file(&dir, "s", &format!("{SECRET}\n"))));
    let items = batch(0, 3, Format::Jsonl);
    t.send(&items).await.expect("accepted");
    let lines = rx.lines.lock().expect("lock").clone();
    assert_eq!(
        lines,
        items.iter().map(|i| i.record.clone()).collect::<Vec<_>>()
    );
    assert_eq!(
        *rx.stamps.lock().expect("lock"),
        [1_700_000_123],
        "t from the clock"
    );
}

#[tokio::test]
async fn a_webhook_with_the_wrong_secret_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, rx) = hook_receiver(SECRET).await;
    let wrong = "another-secret-of-32-characters!!";
    let mut t = build(&hook_sink(&url, &file(&dir, "s", wrong)));
    let e = t
        .send(&batch(0, 1, Format::Jsonl))
        .await
        .expect_err("refused");
    assert!(e.message.contains("401"), "{}", e.message);
    assert!(!e.message.contains(wrong));
    assert!(rx.lines.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn an_unreachable_receiver_fails_the_batch_saying_why() {
    // A port nothing listens on: bound, then closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let mut t = build(&es_sink(&format!("http://{addr}")));
    let e = t
        .send(&batch(0, 1, Format::Jsonl))
        .await
        .expect_err("unreachable");
    assert!(
        e.message
            .contains(&format!("posting to http://{addr}/_bulk")),
        "{}",
        e.message
    );
    assert!(
        e.message.to_lowercase().contains("refused"),
        "{}",
        e.message
    );
}

/// A receiver that answers `200 OK` to anything with a body of `len` bytes, chunked
/// (no length announced) when `chunked`; the base URL.
async fn endless_answer(len: usize, chunked: bool) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = c.read(&mut buf).await;
                let head = if chunked {
                    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()
                } else {
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n")
                };
                if c.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let piece = vec![b'x'; 1024 * 1024];
                let mut sent = 0;
                while sent < len {
                    let n = piece.len().min(len - sent);
                    let chunk = piece.get(..n).expect("n is at most its length");
                    let wrote = if chunked {
                        let mut framed = format!("{n:x}\r\n").into_bytes();
                        framed.extend_from_slice(chunk);
                        framed.extend_from_slice(b"\r\n");
                        c.write_all(&framed).await
                    } else {
                        c.write_all(chunk).await
                    };
                    if wrote.is_err() {
                        return;
                    }
                    sent += n;
                }
                if chunked {
                    let _ = c.write_all(b"0\r\n\r\n").await;
                }
            });
        }
    });
    url
}

/// Regression (atk7): an answer was read whole into memory, however long; a hostile or
/// broken receiver streaming gigabytes within the 30 s request limit could exhaust
/// Mandate's memory. An answer past `MAX_ANSWER_BYTES` now fails the batch.
#[tokio::test]
async fn an_answer_too_long_fails_the_batch_instead_of_filling_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = file(&dir, "s", SECRET);
    for chunked in [true, false] {
        let url = endless_answer(export_http::MAX_ANSWER_BYTES + 1024 * 1024, chunked).await;
        let mut t = build(&hook_sink(&format!("{url}/hook"), &secret));
        let e = t
            .send(&batch(0, 1, Format::Jsonl))
            .await
            .expect_err("an answer over the limit is not an acceptance");
        assert!(
            e.message.contains("with more than"),
            "chunked {chunked}: {}",
            e.message
        );
    }
}

/// A receiver that refuses everything with `401`, echoing the request line and headers
/// in its answer as some proxies and debugging endpoints do.
async fn echoing_receiver() -> String {
    async fn echo(uri: axum::http::Uri, headers: HeaderMap) -> Response {
        let mut text = String::from("Unauthorized:");
        for v in headers.get_all("authorization") {
            text.push_str(&format!(
                " authorization: {};",
                v.to_str().unwrap_or_default()
            ));
        }
        text.push_str(&format!(" POST {uri}"));
        (StatusCode::UNAUTHORIZED, text).into_response()
    }
    serve(axum::Router::new().fallback(echo)).await
}

/// Regression (atk7): a refusal's excerpt quoted the receiver's answer as is, so a
/// receiver that echoed the request put the Splunk token, the Elasticsearch API key or
/// a URL's password or query token into `mandate export status` (any admin role).
#[tokio::test]
async fn credentials_a_receiver_echoes_are_not_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = echoing_receiver().await;
    let token = file(&dir, "t", TOKEN);
    let host = base.trim_start_matches("http://");
    let cases = [
        sink(json!({"name": "s", "type": "splunk", "token_file": token,
            "url": format!("http://user:pa%3Ass-word@{host}/services/collector/event?token=query-token-1")})),
        sink(json!({"name": "e", "type": "elasticsearch", "token_file": token, "url": base})),
    ];
    for cfg in cases {
        let mut t = build(&cfg);
        let e = t
            .send(&batch(0, 1, Format::Jsonl))
            .await
            .expect_err("refused");
        assert!(e.message.contains("401"), "{}", e.message);
        assert!(e.message.contains("<redacted>"), "{}", e.message);
        for hidden in [
            TOKEN,
            "pa:ss-word",
            "pa%3Ass-word",
            "dXNlcjpwYTpzcy13b3Jk",
            "query-token-1",
        ] {
            assert!(
                !e.message.contains(hidden),
                "`{hidden}` shown: {}",
                e.message
            );
        }
    }
}

/// The same for an `ssf` sink: a receiver that echoes the bearer token in its refusal
/// does not put it in the sink's error (which `mandate export status` shows).
#[tokio::test(flavor = "multi_thread")]
async fn an_ssf_sinks_bearer_token_a_receiver_echoes_is_not_shown() {
    let env = Env::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let base = echoing_receiver().await;
    let token = file(&dir, "t", TOKEN);
    let cfg = sink(json!({"name": "caep", "type": "ssf", "token_file": token,
        "url": format!("{base}/ssf/push?key=query-token-1")}));
    let mut t = export_http::ssf_transport(&cfg, Arc::clone(&env.state)).expect("transport");
    let mut batch = batch(0, 1, Format::Jsonl);
    for item in &mut batch {
        item.event.kind = "agent.suspended".into();
    }
    let e = t.send(&batch).await.expect_err("refused");
    assert!(e.message.contains("401"), "{}", e.message);
    for hidden in [TOKEN, "query-token-1"] {
        assert!(
            !e.message.contains(hidden),
            "`{hidden}` shown: {}",
            e.message
        );
    }
}

// ---- building the transports ----

#[test]
fn bad_settings_fail_when_the_sink_is_built() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = file(&dir, "empty", " \n");
    let short = file(&dir, "short", "short-secret");
    let token = file(&dir, "token", TOKEN);
    let missing = dir.path().join("missing");
    let cases = [
        (
            sink(
                json!({"name": "a", "type": "splunk", "url": "http://h/services/collector/event", "token_file": missing}),
            ),
            "reading `token_file`",
        ),
        (
            sink(
                json!({"name": "b", "type": "splunk", "url": "http://h/services/collector/event", "token_file": empty}),
            ),
            "is empty",
        ),
        (
            sink(json!({"name": "c", "type": "splunk", "url": "not a url", "token_file": token})),
            "`url` is not a URL",
        ),
        (
            sink(json!({"name": "d", "type": "elasticsearch", "url": "ftp://h/"})),
            "http:// or https://",
        ),
        (
            sink(json!({"name": "e", "type": "webhook", "url": "http://h/", "secret_file": short})),
            "at least 24 characters",
        ),
    ];
    for (cfg, want) in cases {
        let Err(e) = export_http::transport(&cfg, clock()) else {
            panic!("sink `{}` built", cfg.name);
        };
        assert!(e.contains(&format!("export sink `{}`", cfg.name)), "{e}");
        assert!(e.contains(want), "{e}");
        assert!(!e.contains(TOKEN) && !e.contains("short-secret"), "{e}");
    }
    let file_sink = sink(json!({"name": "f", "type": "file", "path": "/tmp/x"}));
    assert!(
        export_http::transport(&file_sink, clock())
            .expect("no error")
            .is_none()
    );
}

// ---- end to end: a node's log through `export::spawn` ----

/// Waits until `done` holds, up to 20 s.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Records `n` events on the node; the log's length after them.
async fn record(env: &Env, n: usize) -> u64 {
    let node = &env.state;
    let drafts = (0..n).map(|_| node.event("decision")).collect();
    let ids: Vec<String> = node
        .audit
        .record_all(drafts)
        .await
        .into_iter()
        .map(|r| r.expect("recorded"))
        .collect();
    let last = ids.last().expect("an id");
    let seq: u64 = last
        .rsplit(':')
        .next()
        .expect("seq")
        .parse()
        .expect("a number");
    seq + 1
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_delivers_its_log_to_bulk_through_partial_failures_once_each() {
    let env = Env::new();
    let len = record(&env, 30).await;
    let rx = Bulk::new(BulkMode::RejectSome);
    let url = bulk_receiver(Arc::clone(&rx)).await;
    let mut cfg = es_sink(&url);
    cfg.batch_max_events = Some(8);
    let t = export_http::transport(&cfg, Arc::clone(&env.state.clock)).expect("transport");
    mandate_service::export::spawn(&env.state, vec![(cfg, t.expect("HTTP kind"))]);
    until("a refusal in the status", || {
        env.state.export.statuses(len)[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("items refused"))
    })
    .await;
    *rx.mode.lock().expect("lock") = BulkMode::Normal;
    until("every event indexed", || {
        rx.docs.lock().expect("lock").len() as u64 == len
    })
    .await;
    let node = env.state.audit.node().as_str().to_owned();
    let want: Vec<String> = (0..len).map(|s| format!("{node}:{s}")).collect();
    let mut got: Vec<String> = rx.docs.lock().expect("lock").keys().cloned().collect();
    got.sort_by_key(|id| id.rsplit(':').next().and_then(|s| s.parse::<u64>().ok()));
    assert_eq!(got, want);
    assert_eq!(
        u64::from(rx.created.load(Ordering::SeqCst)),
        len,
        "no duplicates"
    );
    until("caught up", || env.state.export.statuses(len)[0].lag == 0).await;
    let status = &env.state.export.statuses(len)[0];
    assert!(status.last_error.is_none());
    // ECS by default for Elasticsearch: each document is the ECS record of its event.
    assert_eq!(status.format, "ecs");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_delivers_its_log_to_a_busy_hec_once_it_has_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = Env::new();
    let len = record(&env, 12).await;
    let rx = Arc::new(Hec {
        ack: true,
        busy: AtomicU32::new(2),
        ..Hec::default()
    });
    let url = hec_receiver(Arc::clone(&rx)).await;
    let mut cfg = splunk_sink(&url, &file(&dir, "t", TOKEN), true);
    cfg.batch_max_events = Some(5);
    let t = export_http::transport(&cfg, Arc::clone(&env.state.clock)).expect("transport");
    mandate_service::export::spawn(&env.state, vec![(cfg, t.expect("HTTP kind"))]);
    until("every event in Splunk", || {
        rx.events.lock().expect("lock").len() as u64 >= len
    })
    .await;
    until("caught up", || env.state.export.statuses(len)[0].lag == 0).await;
    let ids: Vec<String> = rx
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["event"]["id"].as_str().expect("id").to_owned())
        .collect();
    let node = env.state.audit.node().as_str().to_owned();
    assert_eq!(
        ids,
        (0..len).map(|s| format!("{node}:{s}")).collect::<Vec<_>>()
    );
    let status = &env.state.export.statuses(len)[0];
    assert_eq!(status.delivered, len);
}
