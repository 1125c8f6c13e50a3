//! `Connection: close` on every answer given before its request body was read to the end
//! (RFC 9112 §9.6): the API refuses some requests early (401 before the body, 413 over
//! the limit, 415 for a wrong content type) and hyper then closes the connection rather
//! than read what is left. Without the header a pooled client takes the connection for
//! reusable and its next request fails (`Server disconnected without sending a
//! response`, seen with httpx in the adversarial pass after issue 18).
//!
//! It also holds every request body to a deadline — `limits.body_read_timeout_secs`
//! when the binary's guard layer (throttle.rs) set one, else [`BODY_DEADLINE`]: a body
//! not in whole by then ends in [`BodyDeadline`], answered 408 `request_timeout`
//! (`read_body` in extract.rs; `invalid_request` with 408 at `/oauth/*`) with
//! `Connection: close`, and counted (`mandate_body_timeouts_total`). The deadline also
//! bounds how long a slow upload holds a discovery-run or report permit (409
//! `discovery_running` / `report_running` for the others meanwhile).
//!
//! The access-log layer (wellknown.rs), which wraps every route, wraps a request body
//! that has something left to read in a [`Tracked`] body ([`track`]), which notes when
//! the end was reached; if it was not when the response is ready, the response says
//! `Connection: close` ([`close_if_unread`]). The gateways do the same on their listener.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::Response;

/// The default of how long a request body may take to arrive, whole, counted from the
/// request's head (`limits.body_read_timeout_secs`):
/// the API reads small bodies (forms and JSON under `max_body_bytes`), and a client that
/// never finishes one must not hold a connection (the listener's head deadline ends when
/// the head is in). Adversarial pass 2 after issue 18: 5,000 connections each holding a
/// half-sent `/oauth/token` body filled the API listener.
pub(crate) const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// The error a body that missed [`BODY_DEADLINE`] ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub(crate) struct BodyDeadline(std::time::Duration);

/// A request body that records whether it was read to its end, and ends in
/// [`BodyDeadline`] when it is not in by its deadline.
struct Tracked {
    inner: Body,
    ended: Arc<AtomicBool>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: std::time::Duration,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || this.inner.is_end_stream() {
            this.ended.store(true, Ordering::Release);
        }
        if polled.is_pending() && this.deadline.as_mut().poll(cx).is_ready() {
            mandate_service::metrics::body_timed_out();
            return Poll::Ready(Some(Err(axum::Error::new(BodyDeadline(this.limit)))));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The body deadline the binary's guard layer (throttle.rs) sets on each request
/// (`limits.body_read_timeout_secs`); without it, [`BODY_DEADLINE`]. A request extension
/// of its own, so this module needs nothing of the throttle's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) std::time::Duration);

/// Wraps the body of `req` so that [`close_if_unread`] can tell whether it was read to its
/// end; `None` when there was nothing to read.
pub(crate) fn track(req: Request) -> (Request, Option<Arc<AtomicBool>>) {
    if req.body().is_end_stream() {
        return (req, None);
    }
    let ended = Arc::new(AtomicBool::new(false));
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(BODY_DEADLINE, |l| l.0);
    let req = req.map(|inner| {
        Body::new(Tracked {
            inner,
            ended: Arc::clone(&ended),
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        })
    });
    (req, Some(ended))
}

/// Adds `Connection: close` to `res` unless the request body [`track`] saw was read to
/// its end.
pub(crate) fn close_if_unread(res: &mut Response, ended: Option<&AtomicBool>) {
    if ended.is_some_and(|e| !e.load(Ordering::Acquire)) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}
