//! The standalone server-to-client stream (`GET /mcp`): the upstreams' own standalone
//! streams, merged, notifications only. Some servers send a call's notifications
//! there rather than on the call's response stream (the Python SDK's FastMCP sends
//! `ctx.report_progress` this way), so without it a client would lose them.
//!
//! - Only notifications pass: an upstream's requests to the client (sampling,
//!   elicitation, roots, ping) would need their responses routed back, and the gateway
//!   offered upstreams none of those capabilities; responses do not belong on this
//!   stream. Event ids are not kept (no resumption through the gateway).
//! - One per session (a second is 409 Conflict, as the official SDKs answer, until the
//!   first ends), so a session holds at most one stream to each upstream.
//! - It lives under a [`Lease`]: every message is relayed only after its token was
//!   checked, and the stream ends as soon as the token fails a re-check (on every
//!   snapshot change and every second) or the session ends.
//! - An upstream stream silent for `stream_idle_timeout`, or one that ends or breaks, is
//!   closed and opened again after [`RECONNECT_DELAY`] (clients such as the Python SDK
//!   do not reopen a standalone stream, so the gateway keeps its side alive); when an
//!   upstream cannot be reached or offers no stream, its relay ends. The stream ends
//!   when every relay has.
//! - The gateway writes an SSE comment after [`KEEPALIVE`] of silence, so a client's
//!   read timeout (the Python SDK's is five minutes) does not end a quiet stream, and a
//!   client that is gone is noticed.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::lease::{End, Lease};
use super::session::{Listening, Session};
use super::upstream::{MAX_MESSAGE_BYTES, Upstream, UpstreamError};
use super::{Gateway, rpc, sse};

/// Between the end of an upstream's stream and asking it for a new one.
pub const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// The longest the client's stream stays silent: then an SSE comment is written.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// The merged stream for `session`: one relay per upstream, under `lease`. 409 while
/// the session has one open.
pub(super) fn open(gw: &Arc<Gateway>, session: &Arc<Session>, lease: Lease) -> Response {
    let Some(listening) = session.listen() else {
        return super::rpc_fail(
            StatusCode::CONFLICT,
            &Value::Null,
            rpc::INVALID_REQUEST,
            "stream_conflict",
            "this session's standalone stream is open already: one per session",
        );
    };
    let (tx, rx) = mpsc::channel(64);
    for up in gw.upstreams.values() {
        tokio::spawn(relay(
            Arc::clone(gw),
            Arc::clone(session),
            Arc::clone(up),
            tx.clone(),
        ));
    }
    drop(tx);
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let merged = Merged {
        rx,
        lease,
        keepalive,
        _listening: listening,
    };
    let body = Body::from_stream(futures_util::stream::unfold(merged, next));
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The client's side of the stream: what the relays send, each message checked.
/// Dropped with the response body, which closes the relays and frees the session's
/// standalone stream.
struct Merged {
    rx: mpsc::Receiver<Value>,
    lease: Lease,
    keepalive: tokio::time::Interval,
    _listening: Listening,
}

type Item = Result<Bytes, std::io::Error>;

async fn next(mut m: Merged) -> Option<(Item, Merged)> {
    tokio::select! {
        biased;
        end = m.lease.ended() => {
            log_end(&end);
            None
        }
        msg = m.rx.recv() => {
            // `None`: every relay has ended.
            let msg = msg?;
            // INVARIANT (stream lease): nothing is relayed on a token that fails now.
            if let Err(e) = m.lease.access().check() {
                log_end(&End::Access(e));
                return None;
            }
            m.keepalive.reset();
            Some((Ok(Bytes::from(sse::event(&msg))), m))
        }
        _ = m.keepalive.tick() => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), m)),
    }
}

fn log_end(end: &End) {
    match end {
        End::Access(e) => tracing::info!(reason = %e, "MCP standalone stream closed"),
        End::SessionClosed => tracing::debug!("MCP standalone stream closed with its session"),
    }
}

async fn connect(
    gw: &Gateway,
    session: &Session,
    up: &Upstream,
) -> Result<Option<reqwest::Response>, UpstreamError> {
    let conn = gw.conn(session, up).await?;
    match up.listen(&conn).await {
        Err(UpstreamError::SessionEnded(_)) => {
            gw.forget(session, up, &conn).await;
            let conn = gw.conn(session, up).await?;
            up.listen(&conn).await
        }
        r => r,
    }
}

/// Relays `up`'s standalone stream into `tx` until the client's side ends, opening it
/// again when it ends, breaks or stays silent for the idle timeout.
async fn relay(
    gw: Arc<Gateway>,
    session: Arc<Session>,
    up: Arc<Upstream>,
    tx: mpsc::Sender<Value>,
) {
    loop {
        let res = tokio::select! {
            r = connect(&gw, &session, &up) => r,
            () = tx.closed() => return,
        };
        let res = match res {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(upstream = %up.name, error = %e, "no standalone stream");
                return;
            }
        };
        let mut reader = sse::Reader::new(MAX_MESSAGE_BYTES);
        let mut body = res.bytes_stream();
        loop {
            let chunk = tokio::select! {
                c = tokio::time::timeout(gw.stream_idle_timeout, body.next()) => c,
                () = tx.closed() => return,
            };
            let chunk = match chunk {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(Some(Err(e))) => {
                    tracing::debug!(upstream = %up.name, error = %e, "standalone stream broke");
                    break;
                }
                Ok(None) => {
                    tracing::debug!(upstream = %up.name, "standalone stream ended");
                    break;
                }
                Err(_) => {
                    tracing::debug!(upstream = %up.name, "standalone stream silent too long");
                    break;
                }
            };
            for data in reader.push(&chunk) {
                for msg in sse::messages(&data) {
                    match rpc::kind(&msg) {
                        Some(rpc::Kind::Notification) => {
                            if tx.send(msg).await.is_err() {
                                return;
                            }
                        }
                        Some(rpc::Kind::Request) => {
                            tracing::debug!(upstream = %up.name, method = ?msg.get("method"), "upstream request to the client not relayed");
                        }
                        Some(rpc::Kind::Response) | None => {}
                    }
                }
            }
        }
        drop(body);
        tokio::select! {
            () = tokio::time::sleep(RECONNECT_DELAY) => {}
            () = tx.closed() => return,
        }
    }
}
