//! The standalone server-to-client stream (`GET /mcp`): the upstreams' own standalone
//! streams, merged, notifications only. Some servers send a call's notifications
//! there rather than on the call's response stream (the Python SDK's FastMCP sends
//! `ctx.report_progress` this way), so without it a client would lose them.
//!
//! Only notifications pass: an upstream's requests to the client (sampling,
//! elicitation, roots, ping) would need their responses routed back, and the gateway
//! offered upstreams none of those capabilities; responses do not belong on this
//! stream. Event ids are not kept (no resumption through the gateway).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::session::Session;
use super::upstream::{MAX_MESSAGE_BYTES, Upstream, UpstreamError};
use super::{Gateway, sse};

type Tx = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// The merged stream for `session`: one relay per upstream, the stream ending when
/// every relay has (an upstream with no standalone stream ends its relay at once).
pub(super) fn open(gw: &Arc<Gateway>, session: &Arc<Session>) -> Response {
    let (tx, mut rx) = mpsc::channel(64);
    for up in gw.upstreams.values() {
        tokio::spawn(relay(
            Arc::clone(gw),
            Arc::clone(session),
            Arc::clone(up),
            tx.clone(),
        ));
    }
    drop(tx);
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
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

/// Relays `up`'s standalone stream into `tx` until either side ends.
async fn relay(gw: Arc<Gateway>, session: Arc<Session>, up: Arc<Upstream>, tx: Tx) {
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
            c = body.next() => c,
            () = tx.closed() => return,
        };
        let Some(Ok(chunk)) = chunk else { return };
        for data in reader.push(&chunk) {
            let Ok(msg) = serde_json::from_slice::<Value>(&data) else {
                continue;
            };
            let notification = msg.get("method").is_some() && msg.get("id").is_none();
            if !notification {
                continue;
            }
            let event = Bytes::from(format!("event: message\ndata: {msg}\n\n"));
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    }
}
