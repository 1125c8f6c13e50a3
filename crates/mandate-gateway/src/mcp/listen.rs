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
//! - It lives under a [`Lease`], driven by the stream's own task (`supervise`), not by
//!   the client's reads: a client that stopped reading (its connection full) is not
//!   polled, yet its stream ends as soon as the token fails a re-check (on every
//!   snapshot change and every second) or the session ends — the relays stop, the
//!   upstream streams close and the session's standalone stream is free again. Every
//!   message is relayed only after its token was checked.
//! - A client that takes no message for the gateway's `timeout` is taken to have
//!   stopped reading: the stream ends the same way.
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
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::session::{Listening, Session};
use super::upstream::{MAX_MESSAGE_BYTES, Upstream, UpstreamError};
use super::{Gateway, rpc, sse};
use crate::lease::{Access, End, Lease};

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
    let mut relays = JoinSet::new();
    for up in gw.upstreams.values() {
        relays.spawn(relay(
            Arc::clone(gw),
            Arc::clone(session),
            Arc::clone(up),
            tx.clone(),
        ));
    }
    drop(tx);
    let (stop, stopped) = watch::channel(false);
    let (present, gone) = oneshot::channel();
    let access = lease.access().clone();
    tokio::spawn(supervise(
        Supervised {
            lease,
            relays,
            listening,
            gone,
        },
        stop,
    ));
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let merged = Merged {
        rx,
        access,
        stopped,
        keepalive,
        _present: present,
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

/// What the stream's own task holds: everything that must end with the lease whether or
/// not the client still reads.
struct Supervised {
    lease: Lease,
    relays: JoinSet<Relayed>,
    /// The session's one standalone stream, freed when this task ends.
    listening: Listening,
    /// Resolves when the client's side is dropped.
    gone: oneshot::Receiver<()>,
}

/// Drives the stream's lease on its own, not when the client's side happens to be
/// polled (a client that stopped reading is not: the connection is full), and ends the
/// stream when the lease ends, the client's side is gone, a relay found the client
/// stalled, or every relay ended: the relays are stopped (their upstream streams
/// closed), the client's side told to stop, and the session's standalone stream freed.
async fn supervise(mut s: Supervised, stop: watch::Sender<bool>) {
    loop {
        tokio::select! {
            biased;
            end = s.lease.ended() => {
                log_end(&end);
                break;
            }
            _ = &mut s.gone => break,
            relayed = s.relays.join_next() => match relayed {
                None => break,
                Some(Ok(Relayed::Stalled)) => {
                    tracing::info!("MCP standalone stream closed: the client stopped reading");
                    break;
                }
                Some(_) => {}
            },
        }
    }
    // INVARIANT (stream lease): once the lease ended nothing more is relayed (the
    // client's side checks `stop` first), the upstream streams are closed and the
    // slot is free, whether or not the client reads.
    stop.send_replace(true);
    s.relays.shutdown().await;
    drop(s.listening);
}

/// The client's side of the stream: what the relays send, each message checked.
/// Dropped with the response body, which tells the stream's task.
struct Merged {
    rx: mpsc::Receiver<Value>,
    access: Access,
    /// Set when the stream's task ended it.
    stopped: watch::Receiver<bool>,
    keepalive: tokio::time::Interval,
    _present: oneshot::Sender<()>,
}

type Item = Result<Bytes, std::io::Error>;

/// What woke the client's side.
enum Woke {
    Stopped,
    Relayed(Option<Value>),
    Quiet,
}

async fn next(mut m: Merged) -> Option<(Item, Merged)> {
    let woke = tokio::select! {
        biased;
        // Set, or the task is gone: either way the stream is over.
        _ = m.stopped.wait_for(|s| *s) => Woke::Stopped,
        msg = m.rx.recv() => Woke::Relayed(msg),
        _ = m.keepalive.tick() => Woke::Quiet,
    };
    match woke {
        Woke::Stopped => None,
        // `None`: every relay has ended.
        Woke::Relayed(msg) => {
            let msg = msg?;
            // INVARIANT (stream lease): nothing is relayed on a token that fails now,
            // nor once the stream's task ended the stream.
            if *m.stopped.borrow() {
                return None;
            }
            if let Err(e) = m.access.check() {
                log_end(&End::Access(e));
                return None;
            }
            m.keepalive.reset();
            Some((Ok(Bytes::from(sse::event(&msg))), m))
        }
        Woke::Quiet => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), m)),
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

/// How a relay ended.
enum Relayed {
    /// The client's side is gone, or the upstream offers no stream.
    Ended,
    /// The client took nothing for the gateway's `timeout`: it stopped reading.
    Stalled,
}

/// Relays `up`'s standalone stream into `tx` until the client's side ends, opening it
/// again when it ends, breaks or stays silent for the idle timeout.
async fn relay(
    gw: Arc<Gateway>,
    session: Arc<Session>,
    up: Arc<Upstream>,
    tx: mpsc::Sender<Value>,
) -> Relayed {
    loop {
        let res = tokio::select! {
            r = connect(&gw, &session, &up) => r,
            () = tx.closed() => return Relayed::Ended,
        };
        let res = match res {
            Ok(Some(r)) => r,
            Ok(None) => return Relayed::Ended,
            Err(e) => {
                tracing::debug!(upstream = %up.name, error = %e, "no standalone stream");
                return Relayed::Ended;
            }
        };
        let mut reader = sse::Reader::new(MAX_MESSAGE_BYTES);
        let mut body = res.bytes_stream();
        loop {
            let chunk = tokio::select! {
                c = tokio::time::timeout(gw.stream_idle_timeout, body.next()) => c,
                () = tx.closed() => return Relayed::Ended,
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
                            match tokio::time::timeout(gw.timeout, tx.send(msg)).await {
                                Ok(Ok(())) => {}
                                Ok(Err(_)) => return Relayed::Ended,
                                Err(_) => return Relayed::Stalled,
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
            () = tx.closed() => return Relayed::Ended,
        }
    }
}
