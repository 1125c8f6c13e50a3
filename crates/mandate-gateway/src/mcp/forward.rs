//! Relaying an allowed `tools/call`'s response from the upstream. Only the call's own
//! response and notifications (progress, logging, …) reach the client; requests from
//! the upstream to the client (elicitation, sampling, roots, ping) and stray responses
//! are dropped and counted, on this stream as on the standalone one: the gateway
//! offered upstreams none of those capabilities, and nothing decided them.
//!
//! - An SSE response is read event by event and each message passed on as it arrives
//!   (so progress reaches the client while the tool runs), every one only after its
//!   token was checked; the stream ends after the call's response. A JSON response (one
//!   message) is read whole, and relayed only if it is the call's response.
//! - The response lives under a [`Lease`]: when the token fails a re-check (a
//!   revocation, suspension, containment, stale snapshot, or its end by time) or the
//!   session ends, the upstream is asked to cancel the call and the client gets an
//!   error for it (the error a new request would get), recorded as `cut_off`.
//! - The relay watches the lease while it waits for the client to take a message, so a
//!   client that stopped reading (its connection full) is cut off like any other; and
//!   it waits at most the gateway's `timeout` per message: a client that takes nothing
//!   for that long has the call given up (cancelled upstream, its place among the calls
//!   in flight freed), recorded as `client_stalled`.
//! - The reqwest client's read timeout is the longest silence from the upstream.
//! - When the relay ends its outcome is recorded, linked to the decision.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::session::InFlight;
use super::upstream::{MAX_MESSAGE_BYTES, content_type, is_response_to};
use super::{rpc, sse};
use crate::authz::Authorizer;
use crate::lease::{Access, End, Lease};

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

impl Ended {
    fn of(msg: &Value) -> Self {
        if let Some(e) = msg.get("error") {
            Self::RpcError(e.get("code").and_then(Value::as_i64))
        } else if msg
            .pointer("/result/isError")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            Self::ToolError
        } else {
            Self::Result
        }
    }

    fn outcome(&self) -> (&'static str, Option<i64>) {
        match self {
            Self::Result => ("ok", None),
            Self::ToolError => ("tool_error", None),
            Self::RpcError(c) => ("rpc_error", *c),
        }
    }
}

/// What became of a forwarded call, for the audit record.
pub struct Outcome {
    /// The upstream's HTTP status, if it answered.
    pub upstream_status: Option<u16>,
    /// A stable word: `ok`, `tool_error`, `rpc_error`, `incomplete`,
    /// `client_disconnected`, `client_stalled`, `upstream_error`, `upstream_timeout`,
    /// `cut_off`.
    pub outcome: &'static str,
    /// The JSON-RPC error code, for `rpc_error`.
    pub rpc_error_code: Option<i64>,
}

/// The call being forwarded. Its result is recorded exactly once: by
/// [`Call::record`], or, if it is dropped unrecorded (the client went away), as
/// `client_disconnected`. It holds its place among the session's calls in flight
/// until it is dropped.
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
    /// Its place among the session's calls in flight, given up when the call is
    /// dropped.
    #[expect(dead_code, reason = "held for its Drop, never read")]
    pub in_flight: InFlight,
    /// When forwarding began.
    pub started: Instant,
    /// Set once recorded.
    pub recorded: bool,
    /// Requests from the upstream to the client that were dropped.
    pub dropped: u64,
}

impl Call {
    /// Records `outcome` (best effort).
    pub fn record(mut self, outcome: Outcome) {
        self.write(&outcome);
    }

    fn write(&mut self, outcome: &Outcome) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
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
        if self.dropped > 0 {
            r.insert("dropped_server_requests".into(), self.dropped.into());
        }
        let record = self
            .authz
            .record_result(std::mem::take(&mut self.decision_id), Value::Object(r));
        // Outside a runtime (a drop at shutdown) there is nothing left to record with.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(record);
        }
    }

    /// Notes a message from the upstream that is not passed on.
    fn drop_request(&mut self, msg: &Value) {
        self.dropped += 1;
        tracing::warn!(
            upstream = %self.server,
            tool = %self.tool,
            method = ?msg.get("method"),
            "upstream request to the client on a call's stream not relayed"
        );
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

/// Asks the upstream to cancel the call (when its relay is cut off or given up), giving
/// the reason.
pub type Cancel = Box<dyn FnOnce(&'static str) + Send>;

/// The client's answer when a call is cut off: its HTTP status and its JSON-RPC error.
pub type CutAnswer = fn(&Value, &End) -> (StatusCode, Value);

/// Relays the upstream's 2xx `res` to the call under `lease`, recording the outcome
/// when it ends. A response that is neither JSON nor SSE is not passed on: the client
/// gets a JSON-RPC error instead.
pub async fn respond(
    res: reqwest::Response,
    call: Call,
    lease: Lease,
    (cancel, cut): (Cancel, CutAnswer),
    deadline: Duration,
) -> Response {
    let status = res.status().as_u16();
    match content_type(res.headers()).as_deref() {
        Some("text/event-stream") => {
            let (tx, rx) = mpsc::channel::<Item>(16);
            let id = call.id.clone();
            let access = lease.access().clone();
            tokio::spawn(pump(res, call, lease, (cancel, cut), deadline, tx));
            let client = Client {
                rx,
                access,
                id,
                cut,
                done: false,
            };
            let body = Body::from_stream(futures_util::stream::unfold(client, next));
            let mut out = (StatusCode::OK, body).into_response();
            let h = out.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            out
        }
        Some("application/json") => json(res, call, lease, cancel, cut).await,
        _ => {
            let id = call.id.clone();
            call.record(Outcome {
                upstream_status: Some(status),
                outcome: "upstream_error",
                rpc_error_code: None,
            });
            not_a_response(
                &id,
                status,
                "the upstream MCP server answered neither JSON nor an event stream",
            )
        }
    }
}

fn not_a_response(id: &Value, status: u16, text: &str) -> Response {
    super::rpc_response(
        StatusCode::OK,
        rpc::error(
            id,
            rpc::UPSTREAM_ERROR,
            text,
            Some(json!({"error": "upstream_error", "upstream_status": status})),
        ),
    )
}

/// A JSON response: read whole (at most [`MAX_MESSAGE_BYTES`]), relayed only if it is
/// the call's response.
async fn json(
    res: reqwest::Response,
    mut call: Call,
    mut lease: Lease,
    cancel: Cancel,
    cut: CutAnswer,
) -> Response {
    let status = res.status().as_u16();
    let mut body = res.bytes_stream();
    let mut buf = Vec::new();
    let failed = |call: Call, outcome: &'static str, text: &str| {
        let id = call.id.clone();
        call.record(Outcome {
            upstream_status: Some(status),
            outcome,
            rpc_error_code: None,
        });
        let code = if outcome == "upstream_timeout" {
            rpc::UPSTREAM_TIMEOUT
        } else {
            rpc::UPSTREAM_ERROR
        };
        super::rpc_response(
            StatusCode::OK,
            rpc::error(
                &id,
                code,
                text,
                Some(json!({"error": outcome, "upstream_status": status})),
            ),
        )
    };
    let end = loop {
        let chunk = tokio::select! {
            biased;
            end = lease.ended() => break Some(end),
            c = body.next() => c,
        };
        match chunk {
            Some(Ok(chunk)) => {
                if buf.len() + chunk.len() > MAX_MESSAGE_BYTES {
                    return failed(
                        call,
                        "upstream_error",
                        "the upstream's response is too large",
                    );
                }
                buf.extend_from_slice(&chunk);
            }
            Some(Err(e)) => {
                tracing::warn!(upstream = %call.server, error = %e, "upstream response broke");
                return if e.is_timeout() {
                    failed(
                        call,
                        "upstream_timeout",
                        "the upstream MCP server stopped answering",
                    )
                } else {
                    failed(
                        call,
                        "upstream_error",
                        "the upstream MCP server's response broke off",
                    )
                };
            }
            None => break None,
        }
    };
    drop(body);
    let end = end.or_else(|| lease.access().check().err().map(End::Access));
    if let Some(end) = end {
        return cut_off(call, status, &end, cancel, cut);
    }
    let msg: Option<Value> = serde_json::from_slice(&buf).ok();
    match msg {
        Some(msg) if is_response_to(&msg, &call.id) => {
            let (outcome, rpc_error_code) = Ended::of(&msg).outcome();
            call.record(Outcome {
                upstream_status: Some(status),
                outcome,
                rpc_error_code,
            });
            super::rpc_response(StatusCode::OK, msg)
        }
        other => {
            if let Some(m) = &other
                && rpc::kind(m) == Some(rpc::Kind::Request)
            {
                call.drop_request(m);
            }
            failed(
                call,
                "upstream_error",
                "the upstream MCP server did not answer with the call's response",
            )
        }
    }
}

/// Ends a call whose lease ended: the upstream is asked to cancel it (unless its session
/// ended, which ends the upstream's too), the outcome is `cut_off`.
fn cut_off(call: Call, status: u16, end: &End, cancel: Cancel, cut: CutAnswer) -> Response {
    if matches!(end, End::Access(_)) {
        cancel("the caller's access ended");
    }
    tracing::info!(upstream = %call.server, tool = %call.tool, reason = ?end, "MCP call cut off");
    let id = call.id.clone();
    call.record(Outcome {
        upstream_status: Some(status),
        outcome: "cut_off",
        rpc_error_code: None,
    });
    let (http, body) = cut(&id, end);
    super::rpc_response(http, body)
}

/// What the relay hands the client's side of an SSE response.
enum Item {
    /// A message from the upstream: checked again as it is passed on.
    Relay(Value),
    /// The gateway's own message (an error for the call): passed on as it is.
    Own(Value),
}

/// The client's side of an SSE response.
struct Client {
    rx: mpsc::Receiver<Item>,
    access: Access,
    id: Value,
    cut: CutAnswer,
    done: bool,
}

async fn next(mut c: Client) -> Option<(Result<Bytes, std::io::Error>, Client)> {
    if c.done {
        return None;
    }
    let msg = match c.rx.recv().await? {
        Item::Own(msg) => msg,
        // INVARIANT (stream lease): nothing is relayed on a token that fails now.
        Item::Relay(msg) => match c.access.check() {
            Ok(()) => msg,
            Err(e) => {
                c.done = true;
                (c.cut)(&c.id, &End::Access(e)).1
            }
        },
    };
    Some((Ok(Bytes::from(sse::event(&msg))), c))
}

/// Why a message was not handed to the client's side.
enum Unsent {
    /// The client's side is gone (it went away, or found the token failing).
    Gone,
    /// The client took nothing for the whole send deadline: it stopped reading.
    Stalled,
    /// The lease ended meanwhile.
    End(End),
}

/// Hands `item` to the client's side, watching the lease while it waits: a client that
/// stopped reading must not hold the relay past its token, nor past `deadline`.
async fn send(
    tx: &mpsc::Sender<Item>,
    item: Item,
    lease: &mut Lease,
    deadline: Duration,
) -> Result<(), Unsent> {
    tokio::select! {
        biased;
        end = lease.ended() => Err(Unsent::End(end)),
        sent = tokio::time::timeout(deadline, tx.send(item)) => match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Unsent::Gone),
            Err(_) => Err(Unsent::Stalled),
        },
    }
}

/// Hands the gateway's last word on the call to the client's side, if it takes it
/// within `deadline` (the outcome is recorded already).
async fn last_word(tx: mpsc::Sender<Item>, msg: Value, deadline: Duration) {
    let _ = tokio::time::timeout(deadline, tx.send(Item::Own(msg))).await;
}

async fn pump(
    res: reqwest::Response,
    mut call: Call,
    mut lease: Lease,
    (cancel, cut): (Cancel, CutAnswer),
    deadline: Duration,
    tx: mpsc::Sender<Item>,
) {
    let status = res.status().as_u16();
    let mut reader = sse::Reader::new(MAX_MESSAGE_BYTES);
    let mut body = res.bytes_stream();
    let mut ended: Option<Ended> = None;
    let mut failure: Option<&'static str> = None;
    let mut end: Option<End> = None;
    'read: loop {
        let chunk = tokio::select! {
            biased;
            e = lease.ended() => {
                end = Some(e);
                break;
            }
            // The client went away (or its side found the token failing): nothing
            // waits for the rest.
            () = tx.closed() => {
                match lease.access().check() {
                    Ok(()) => failure = Some("client_disconnected"),
                    Err(e) => end = Some(End::Access(e)),
                }
                break;
            }
            c = body.next() => c,
        };
        let chunk = match chunk {
            Some(Ok(chunk)) => chunk,
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
        };
        for data in reader.push(&chunk) {
            for msg in sse::messages(&data) {
                let last = match rpc::kind(&msg) {
                    Some(rpc::Kind::Response) if is_response_to(&msg, &call.id) => {
                        ended = Some(Ended::of(&msg));
                        true
                    }
                    Some(rpc::Kind::Notification) => false,
                    Some(rpc::Kind::Request) => {
                        call.drop_request(&msg);
                        continue;
                    }
                    // A stray response, or no JSON-RPC message at all.
                    Some(rpc::Kind::Response) | None => continue,
                };
                // INVARIANT (stream lease): the relay watches its lease even while the
                // client is not reading, and waits for the client at most `deadline`.
                match send(&tx, Item::Relay(msg), &mut lease, deadline).await {
                    Ok(()) => {}
                    // The client's side ended: it went away, or it found the token
                    // failing before this relay did.
                    Err(Unsent::Gone) => {
                        match lease.access().check() {
                            Ok(()) => failure = Some("client_disconnected"),
                            Err(e) => end = Some(End::Access(e)),
                        }
                        break 'read;
                    }
                    Err(Unsent::Stalled) => {
                        failure = Some("client_stalled");
                        break 'read;
                    }
                    Err(Unsent::End(e)) => {
                        end = Some(e);
                        break 'read;
                    }
                }
                if last {
                    // Nothing belongs on a call's stream after its response.
                    break 'read;
                }
            }
        }
    }
    drop(body);
    if reader.dropped() > 0 {
        tracing::debug!(upstream = %call.server, dropped = reader.dropped(), "oversized upstream events not read");
    }
    // The upstream is told before the call leaves the session's calls in flight
    // (recording it does): the cancellation is routed by that entry.
    if let Some(end) = end {
        if matches!(end, End::Access(_)) {
            cancel("the caller's access ended");
        }
        tracing::info!(upstream = %call.server, tool = %call.tool, reason = ?end, "MCP call cut off");
        let (_, msg) = cut(&call.id, &end);
        call.record(Outcome {
            upstream_status: Some(status),
            outcome: "cut_off",
            rpc_error_code: None,
        });
        last_word(tx, msg, deadline).await;
        return;
    }
    if failure == Some("client_stalled") {
        // Nobody reads the rest: the call is given up. The client's side ends after
        // what it was handed already (there is no room for an error).
        cancel("the client stopped reading");
        tracing::info!(upstream = %call.server, tool = %call.tool, "MCP call given up: the client stopped reading");
        call.record(Outcome {
            upstream_status: Some(status),
            outcome: "client_stalled",
            rpc_error_code: None,
        });
        return;
    }
    let (outcome, rpc_error_code) = match (&ended, failure) {
        (_, Some("client_disconnected")) => ("client_disconnected", None),
        (Some(e), _) => e.outcome(),
        (None, Some(f)) => (f, None),
        (None, None) => ("incomplete", None),
    };
    let id = call.id.clone();
    call.record(Outcome {
        upstream_status: Some(status),
        outcome,
        rpc_error_code,
    });
    // An SSE stream that ended without the response would leave the client waiting:
    // end it with an error response of the gateway's own.
    if ended.is_none() && failure != Some("client_disconnected") {
        let (code, text, word) = if failure == Some("upstream_timeout") {
            (
                rpc::UPSTREAM_TIMEOUT,
                "the upstream MCP server stopped answering",
                "upstream_timeout",
            )
        } else {
            (
                rpc::UPSTREAM_ERROR,
                "the upstream MCP server ended the stream without a response",
                "upstream_error",
            )
        };
        let msg = rpc::error(&id, code, text, Some(json!({"error": word})));
        last_word(tx, msg, deadline).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_final_response_says_how_the_call_ended() {
        assert_eq!(
            Ended::of(&json!({"jsonrpc": "2.0", "id": 7, "result": {"isError": true}})),
            Ended::ToolError
        );
        assert_eq!(
            Ended::of(&json!({"jsonrpc": "2.0", "id": 7, "result": {}})),
            Ended::Result
        );
        assert_eq!(
            Ended::of(
                &json!({"jsonrpc": "2.0", "id": "a", "error": {"code": -32602, "message": "x"}})
            ),
            Ended::RpcError(Some(-32602))
        );
    }
}
