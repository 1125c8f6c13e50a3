//! OpenTelemetry span export over OTLP/HTTP with the JSON encoding (off unless
//! `telemetry.otlp_endpoint` is set): the spans of the API (`traces.rs`) and of
//! the gateways go to one bounded queue, and one task posts them in batches as an
//! `ExportTraceServiceRequest` to the endpoint (e.g. an OpenTelemetry Collector's
//! `http://127.0.0.1:4318/v1/traces`).
//!
//! The encoding is OTLP's JSON mapping, written by hand (no OpenTelemetry crates): ids as
//! lower-case hex (not protobuf JSON's base64), enums as integers, 64-bit integers as
//! decimal strings, lowerCamelCase keys. Retries follow the OTLP/HTTP rules: 429, 502,
//! 503 and 504 and a lost connection are retried with exponential backoff and jitter
//! (honouring `Retry-After`); any other status drops the batch; a 200 with
//! `partialSuccess` is not retried.
//!
//! INVARIANT (spans never slow a request): recording a span is a `try_send` into a
//! bounded queue; when it is full the span is dropped and counted
//! (`mandate_trace_spans_dropped_total`), never waited for.

use std::sync::OnceLock;
use std::time::Duration;

use mandate_core::random::{OsRandom, random_bytes};
use mandate_core::trace::{AttrValue, NoSpans, Span, SpanSink, TraceId, sampled_by_ratio};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Spans waiting to be exported, at most.
pub const QUEUE: usize = 4096;
/// Spans in one export request, at most.
pub const BATCH: usize = 512;
/// How long a batch waits to fill before it is sent.
pub const FLUSH: Duration = Duration::from_millis(500);
/// Tries of one batch (the first and the retries).
const TRIES: u32 = 5;
/// The longest wait between tries, whatever `Retry-After` asks.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Spans dropped because the export queue was full.
pub const SPANS_DROPPED: &str = "mandate_trace_spans_dropped_total";
/// Spans the collector accepted.
pub const SPANS_EXPORTED: &str = "mandate_trace_spans_exported_total";
/// Spans lost to a failed export (a refused batch, or retries exhausted) or rejected in
/// a partial success.
pub const SPANS_FAILED: &str = "mandate_trace_spans_failed_total";

/// Describes the counters (called where the recorder is installed).
pub fn describe() {
    metrics::describe_counter!(
        SPANS_DROPPED,
        "Spans dropped: the OTLP export queue was full"
    );
    metrics::describe_counter!(SPANS_EXPORTED, "Spans the OTLP endpoint accepted");
    metrics::describe_counter!(
        SPANS_FAILED,
        "Spans the OTLP endpoint refused or rejected, or whose export failed after retries"
    );
}

/// `[telemetry]`: where spans go and how many traces Mandate starts are sampled.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces`.
    pub endpoint: String,
    /// `service.name` of the resource.
    pub service_name: String,
    /// `service.instance.id`: the node's name.
    pub instance: String,
    /// The share (0 to 1) of traces Mandate starts itself that are sampled; a caller's
    /// `traceparent` decides for its own trace (its `sampled` flag).
    pub sampling_ratio: f64,
    /// How the collector is reached over TLS: system roots or `telemetry.otlp_ca_file`,
    /// an optional client certificate, a server name.
    pub tls: mandate_egress::Settings,
}

struct Exporter {
    tx: mpsc::Sender<Span>,
    ratio: f64,
}

impl SpanSink for Exporter {
    fn enabled(&self) -> bool {
        true
    }

    fn sample_new(&self, trace_id: &TraceId) -> bool {
        sampled_by_ratio(trace_id, self.ratio)
    }

    fn record(&self, span: Span) {
        if self.tx.try_send(span).is_err() {
            metrics::counter!(SPANS_DROPPED).increment(1);
        }
    }
}

static SINK: OnceLock<Exporter> = OnceLock::new();

/// Where spans go: the installed exporter, or nowhere.
pub fn sink() -> &'static dyn SpanSink {
    match SINK.get() {
        Some(e) => e,
        None => &NoSpans,
    }
}

/// Export could not be started.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// An exporter is installed in this process already.
    #[error("an OTLP exporter is already installed in this process")]
    Installed,
    /// The HTTP client could not be built.
    #[error("cannot build the OTLP HTTP client")]
    Client(#[source] reqwest::Error),
    /// The TLS settings (CA bundle, client certificate) could not be used.
    #[error("telemetry.otlp TLS: {0}")]
    Tls(#[source] mandate_tls::TlsError),
}

/// Starts exporting (on the current Tokio runtime) for the life of the process.
pub fn install(cfg: OtlpConfig) -> Result<(), OtlpError> {
    let client = mandate_egress::builder(&cfg.tls)
        .map_err(OtlpError::Tls)?
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(OtlpError::Client)?;
    let (tx, rx) = mpsc::channel(QUEUE);
    SINK.set(Exporter {
        tx,
        ratio: cfg.sampling_ratio,
    })
    .map_err(|_| OtlpError::Installed)?;
    tokio::spawn(run(rx, client, cfg));
    Ok(())
}

async fn run(mut rx: mpsc::Receiver<Span>, client: reqwest::Client, cfg: OtlpConfig) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::sleep(FLUSH);
        tokio::pin!(deadline);
        while batch.len() < BATCH {
            tokio::select! {
                s = rx.recv() => match s {
                    Some(s) => batch.push(s),
                    None => break,
                },
                () = &mut deadline => break,
            }
        }
        let n = batch.len() as u64;
        let body = request_body(&cfg, &batch).to_string();
        match send(&client, &cfg.endpoint, body).await {
            Sent::Accepted { rejected } => {
                metrics::counter!(SPANS_EXPORTED).increment(n.saturating_sub(rejected));
                if rejected > 0 {
                    metrics::counter!(SPANS_FAILED).increment(rejected);
                }
            }
            Sent::Failed => metrics::counter!(SPANS_FAILED).increment(n),
        }
    }
}

enum Sent {
    Accepted { rejected: u64 },
    Failed,
}

/// Whether OTLP/HTTP says to retry after `status`.
pub fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

async fn send(client: &reqwest::Client, endpoint: &str, body: String) -> Sent {
    let mut backoff = Duration::from_secs(1);
    for attempt in 1..=TRIES {
        let res = client
            .post(endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let wait = match res {
            Ok(r) if r.status().is_success() => {
                let answer: Value = r.json().await.unwrap_or(Value::Null);
                let partial = answer.get("partialSuccess").filter(|p| !p.is_null());
                let field = |name: &str| partial.and_then(|p| p.get(name));
                // int64 in protobuf's JSON mapping: a decimal string, or a number.
                let rejected = match field("rejectedSpans") {
                    Some(Value::String(s)) => s.parse().unwrap_or(0),
                    Some(v) => v.as_u64().unwrap_or(0),
                    None => 0,
                };
                if partial.is_some() {
                    let message = field("errorMessage").and_then(|m| m.as_str()).unwrap_or("");
                    tracing::warn!(
                        rejected,
                        message,
                        "OTLP endpoint accepted the spans in part"
                    );
                }
                return Sent::Accepted { rejected };
            }
            Ok(r) if retryable(r.status().as_u16()) => r
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
            Ok(r) => {
                tracing::warn!(
                    status = r.status().as_u16(),
                    "OTLP endpoint refused the spans; not retried"
                );
                return Sent::Failed;
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e.without_url(), "OTLP endpoint unreachable");
                None
            }
        };
        if attempt == TRIES {
            break;
        }
        // Exponential backoff with up to 50% random jitter, unless the server named a wait.
        let jitter = random_bytes::<1>(&OsRandom).map_or(0, |[b]| u64::from(b));
        let pause = wait.unwrap_or_else(|| backoff + backoff.mul_f64(jitter as f64 / 512.0));
        tokio::time::sleep(pause.min(MAX_BACKOFF)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    tracing::warn!("OTLP export failed after {TRIES} tries; spans dropped");
    Sent::Failed
}

fn attribute(key: &str, value: &AttrValue) -> Value {
    let v = match value {
        AttrValue::Str(s) => json!({"stringValue": s}),
        // int64 is a decimal string in protobuf's JSON mapping.
        AttrValue::Int(i) => json!({"intValue": i.to_string()}),
    };
    json!({"key": key, "value": v})
}

/// The `ExportTraceServiceRequest` of `spans` (OTLP JSON encoding).
pub fn request_body(cfg: &OtlpConfig, spans: &[Span]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut o = json!({
                "traceId": s.trace_id.to_string(),
                "spanId": s.span_id.to_string(),
                "name": s.name,
                "kind": s.kind as i32,
                "startTimeUnixNano": s.start_unix_nanos.to_string(),
                "endTimeUnixNano": s.end_unix_nanos.to_string(),
                "attributes": s.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
                // STATUS_CODE_ERROR = 2, STATUS_CODE_UNSET = 0.
                "status": if s.error { json!({"code": 2}) } else { json!({}) },
            });
            if let Some(m) = o.as_object_mut() {
                if let Some(p) = s.parent {
                    m.insert("parentSpanId".into(), p.to_string().into());
                }
                if let Some(ts) = &s.trace_state {
                    m.insert("traceState".into(), ts.as_str().into());
                }
            }
            o
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                attribute("service.name", &AttrValue::Str(cfg.service_name.clone())),
                attribute("service.instance.id", &AttrValue::Str(cfg.instance.clone())),
                attribute("service.version", &AttrValue::Str(env!("CARGO_PKG_VERSION").into())),
            ]},
            "scopeSpans": [{
                "scope": {"name": "mandate", "version": env!("CARGO_PKG_VERSION")},
                "spans": spans,
            }],
        }],
    })
}

#[cfg(test)]
mod tests {
    use mandate_core::trace::{SpanId, SpanKind};

    use super::*;

    #[test]
    fn the_json_encoding_is_otlps() {
        let cfg = OtlpConfig {
            endpoint: "http://x".into(),
            service_name: "mandate".into(),
            instance: "n1".into(),
            sampling_ratio: 1.0,
            tls: Default::default(),
        };
        let span = Span {
            trace_id: TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            span_id: SpanId::parse("00f067aa0ba902b7").unwrap(),
            parent: Some(SpanId::parse("b7ad6b7169203331").unwrap()),
            name: "POST".into(),
            kind: SpanKind::Server,
            start_unix_nanos: 1_700_000_000_000_000_000,
            end_unix_nanos: 1_700_000_000_001_000_000,
            attributes: vec![("http.response.status_code", AttrValue::Int(200))],
            error: false,
            trace_state: None,
        };
        let v = request_body(&cfg, &[span]);
        let s = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s["parentSpanId"], "b7ad6b7169203331");
        assert_eq!(s["kind"], 2);
        assert_eq!(s["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(s["attributes"][0]["value"]["intValue"], "200");
        assert!(s.get("traceState").is_none());
    }

    /// INVARIANT (spans never slow a request): a full queue drops the span at once.
    #[test]
    fn a_full_queue_drops_and_never_waits() {
        let (tx, mut rx) = mpsc::channel(1);
        let e = Exporter { tx, ratio: 1.0 };
        let span = |n: u8| Span {
            trace_id: TraceId::from_bytes([n; 16]).unwrap(),
            span_id: SpanId::from_bytes([n; 8]).unwrap(),
            parent: None,
            name: "GET".into(),
            kind: SpanKind::Server,
            start_unix_nanos: 0,
            end_unix_nanos: 0,
            attributes: Vec::new(),
            error: false,
            trace_state: None,
        };
        e.record(span(1));
        e.record(span(2));
        assert_eq!(
            rx.try_recv().unwrap().span_id,
            SpanId::from_bytes([1; 8]).unwrap()
        );
        assert!(rx.try_recv().is_err(), "the second span was dropped");
        assert!(e.sample_new(&TraceId::from_bytes([9; 16]).unwrap()));
    }

    #[test]
    fn retryable_statuses_are_otlps() {
        for s in [429, 502, 503, 504] {
            assert!(retryable(s), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 500, 501] {
            assert!(!retryable(s), "{s}");
        }
    }
}
