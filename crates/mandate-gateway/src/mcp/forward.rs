//! Streaming an allowed `tools/call` back from the upstream: the response body passes
//! through chunk by chunk as it arrives (so progress notifications on an SSE stream
//! reach the client while the tool runs), while a scanner looks for the call's final
//! response to learn how it ended; when the stream ends the result is recorded,
//! linked to the decision.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::session::Session;
use super::upstream::{MAX_MESSAGE_BYTES, content_type, is_response_to};
use super::{rpc, sse};
use crate::authz::Authorizer;

/// How the upstream framed its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Json,
    Sse,
}

/// Watches the passing bytes for the final response to request `id`.
#[derive(Debug)]
struct Scanner {
    framing: Framing,
    id: Value,
    sse: sse::Reader,
    json: Vec<u8>,
    json_oversized: bool,
    /// How the call ended, once its response was seen.
    ended: Option<Ended>,
}

/// How a forwarded call ended, as its final response says.
#[derive(Debug, Clone, PartialEq)]
enum Ended {
    /// A result.
    Result,
    /// A result with `isError: true` (the tool failed, the protocol did not).
    ToolError,
    /// A JSON-RPC error with this code.
    RpcError(Option<i64>),
}

impl Scanner {
    fn new(framing: Framing, id: Value) -> Self {
        Self {
            framing,
            id,
            sse: sse::Reader::new(MAX_MESSAGE_BYTES),
            json: Vec::new(),
            json_oversized: false,
            ended: None,
        }
    }

    fn look_at(&mut self, msg: &Value) {
        if self.ended.is_some() || !is_response_to(msg, &self.id) {
            return;
        }
        self.ended = Some(if let Some(e) = msg.get("error") {
            Ended::RpcError(e.get("code").and_then(Value::as_i64))
        } else if msg
            .pointer("/result/isError")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            Ended::ToolError
        } else {
            Ended::Result
        });
    }

    fn push(&mut self, chunk: &[u8]) {
        match self.framing {
            Framing::Sse => {
                for data in self.sse.push(chunk) {
                    if let Ok(msg) = serde_json::from_slice::<Value>(&data) {
                        self.look_at(&msg);
                    }
                }
            }
            Framing::Json => {
                if self.json.len() + chunk.len() > MAX_MESSAGE_BYTES {
                    self.json_oversized = true;
                    self.json = Vec::new();
                } else if !self.json_oversized {
                    self.json.extend_from_slice(chunk);
                }
            }
        }
    }

    fn finish(&mut self) {
        if self.framing == Framing::Json
            && !self.json_oversized
            && let Ok(msg) = serde_json::from_slice::<Value>(&self.json)
        {
            self.look_at(&msg);
        }
    }
}

/// What became of a forwarded call, for the audit record.
pub struct Outcome {
    /// The upstream's HTTP status, if it answered.
    pub upstream_status: Option<u16>,
    /// A stable word: `ok`, `tool_error`, `rpc_error`, `incomplete`,
    /// `client_disconnected`, `upstream_error`, `upstream_timeout`.
    pub outcome: &'static str,
    /// The JSON-RPC error code, for `rpc_error`.
    pub rpc_error_code: Option<i64>,
}

/// The call being forwarded. Its result is recorded exactly once: by
/// [`Call::record`], or, if it is dropped unrecorded (the client went away while the
/// upstream was being asked), as `client_disconnected`.
pub struct Call {
    /// The authorizer, to record the result.
    pub authz: Arc<dyn Authorizer>,
    /// The decision that let it through.
    pub decision_id: String,
    /// The upstream's name.
    pub server: String,
    /// The tool's name upstream.
    pub tool: String,
    /// The client's request id.
    pub id: Value,
    /// The gateway session (to clear the in-flight entry).
    pub session: Arc<Session>,
    /// When forwarding began.
    pub started: Instant,
    /// Set once recorded.
    pub recorded: bool,
}

impl Call {
    /// Records `outcome` (best effort) and clears the in-flight entry.
    pub fn record(mut self, outcome: Outcome) {
        self.write(&outcome);
    }

    fn write(&mut self, outcome: &Outcome) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        self.session.finish(&self.id);
        let latency_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut r = Map::new();
        r.insert("gateway".into(), "mcp".into());
        r.insert("server".into(), self.server.clone().into());
        r.insert("tool".into(), self.tool.clone().into());
        r.insert("upstream_status".into(), outcome.upstream_status.into());
        r.insert("latency_ms".into(), latency_ms.into());
        r.insert("outcome".into(), outcome.outcome.into());
        if let Some(c) = outcome.rpc_error_code {
            r.insert("rpc_error_code".into(), c.into());
        }
        let record = self
            .authz
            .record_result(std::mem::take(&mut self.decision_id), Value::Object(r));
        // Outside a runtime (a drop at shutdown) there is nothing left to record with.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(record);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.write(&Outcome {
            upstream_status: None,
            outcome: "client_disconnected",
            rpc_error_code: None,
        });
    }
}

/// Streams the upstream's 2xx `res` to the client, recording the outcome when the
/// stream ends. A response that is neither JSON nor SSE is not passed on: the client
/// gets a JSON-RPC error instead.
pub fn stream(res: reqwest::Response, call: Call) -> Response {
    let status = res.status().as_u16();
    let framing = match content_type(res.headers()).as_deref() {
        Some("text/event-stream") => Framing::Sse,
        Some("application/json") => Framing::Json,
        _ => {
            let id = call.id.clone();
            call.record(Outcome {
                upstream_status: Some(status),
                outcome: "upstream_error",
                rpc_error_code: None,
            });
            return super::rpc_response(
                StatusCode::OK,
                rpc::error(
                    &id,
                    rpc::UPSTREAM_ERROR,
                    "the upstream MCP server answered neither JSON nor an event stream",
                    Some(json!({"error": "upstream_error", "upstream_status": status})),
                ),
            );
        }
    };
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(pump(res, framing, call, tx));
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let mut out = (StatusCode::OK, body).into_response();
    let h = out.headers_mut();
    let ct = match framing {
        Framing::Sse => "text/event-stream",
        Framing::Json => "application/json",
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if framing == Framing::Sse {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    }
    out
}

async fn pump(
    res: reqwest::Response,
    framing: Framing,
    call: Call,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let status = res.status().as_u16();
    let mut scanner = Scanner::new(framing, call.id.clone());
    let mut body = res.bytes_stream();
    // The client's idle limit is the reqwest client's read timeout.
    let mut failure: Option<&'static str> = None;
    loop {
        match body.next().await {
            Some(Ok(chunk)) => {
                scanner.push(&chunk);
                if tx.send(Ok(chunk)).await.is_err() {
                    failure = Some("client_disconnected");
                    break;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(upstream = %call.server, error = %e, "upstream stream broke");
                failure = Some(if e.is_timeout() {
                    "upstream_timeout"
                } else {
                    "upstream_error"
                });
                break;
            }
            None => break,
        }
    }
    drop(body);
    scanner.finish();
    if scanner.sse.dropped() > 0 {
        tracing::debug!(upstream = %call.server, dropped = scanner.sse.dropped(), "oversized upstream events not read");
    }
    // An SSE stream that ended without the response would leave the client waiting:
    // end it with an error response of the gateway's own.
    if framing == Framing::Sse && scanner.ended.is_none() && failure != Some("client_disconnected")
    {
        let (code, text) = if failure == Some("upstream_timeout") {
            (
                rpc::UPSTREAM_TIMEOUT,
                "the upstream MCP server stopped answering",
            )
        } else {
            (
                rpc::UPSTREAM_ERROR,
                "the upstream MCP server ended the stream without a response",
            )
        };
        let msg = rpc::error(
            &call.id,
            code,
            text,
            Some(
                json!({"error": if code == rpc::UPSTREAM_TIMEOUT { "upstream_timeout" } else { "upstream_error" }}),
            ),
        );
        let event = format!("event: message\ndata: {msg}\n\n");
        let _ = tx.send(Ok(Bytes::from(event))).await;
    }
    drop(tx);
    let (outcome, rpc_error_code) = match (&scanner.ended, failure) {
        (_, Some("client_disconnected")) => ("client_disconnected", None),
        (Some(Ended::Result), _) => ("ok", None),
        (Some(Ended::ToolError), _) => ("tool_error", None),
        (Some(Ended::RpcError(c)), _) => ("rpc_error", *c),
        (None, Some(f)) => (f, None),
        (None, None) => ("incomplete", None),
    };
    call.record(Outcome {
        upstream_status: Some(status),
        outcome,
        rpc_error_code,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scanner_finds_the_final_response_only() {
        let mut s = Scanner::new(Framing::Sse, json!(7));
        s.push(b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n");
        s.push(b"data: {\"jsonrpc\":\"2.0\",\"id\":8,\"result\":{}}\n\n");
        assert_eq!(s.ended, None);
        s.push(b"data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"isError\":true}}\r\n\r\n");
        assert_eq!(s.ended, Some(Ended::ToolError));

        let mut j = Scanner::new(Framing::Json, json!("a"));
        j.push(br#"{"jsonrpc":"2.0","id":"a","#);
        j.push(br#""error":{"code":-32602,"message":"x"}}"#);
        j.finish();
        assert_eq!(j.ended, Some(Ended::RpcError(Some(-32602))));
    }
}
