//! `Connection: close` on every answer given before its request body was read to the end
//! (RFC 9112 §9.6): the API refuses some requests early (401 before the body, 413 over
//! the limit, 415 for a wrong content type) and hyper then closes the connection rather
//! than read what is left. Without the header a pooled client takes the connection for
//! reusable and its next request fails (`Server disconnected without sending a
//! response`, seen with httpx in the adversarial pass after issue 18).
//!
//! The layer wraps a request body that has something left to read in a [`Tracked`] body,
//! which notes when the end was reached; if it was not when the response is ready, the
//! response says `Connection: close`. The gateways do the same for their own listener.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::Response;

/// A request body that records whether it was read to its end.
struct Tracked {
    inner: Body,
    ended: Arc<AtomicBool>,
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
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The layer (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CloseUnreadLayer;

impl<S> tower::Layer<S> for CloseUnreadLayer {
    type Service = CloseUnread<S>;

    fn layer(&self, inner: S) -> CloseUnread<S> {
        CloseUnread { inner }
    }
}

/// See [`CloseUnreadLayer`].
#[derive(Debug, Clone)]
pub(crate) struct CloseUnread<S> {
    inner: S,
}

impl<S> tower::Service<Request> for CloseUnread<S>
where
    S: tower::Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.body().is_end_stream() {
            return Box::pin(self.inner.call(req));
        }
        let ended = Arc::new(AtomicBool::new(false));
        let req = req.map(|inner| {
            Body::new(Tracked {
                inner,
                ended: Arc::clone(&ended),
            })
        });
        let res = self.inner.call(req);
        Box::pin(async move {
            let mut res = res.await?;
            if !ended.load(Ordering::Acquire) {
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(res)
        })
    }
}
