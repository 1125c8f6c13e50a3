//! Request bodies under the gateway's limits: at most `max_body_bytes`, the whole body
//! within `body_timeout` of the request's head, and a note of whether it was read to
//! its end — an answer sent before then must close the connection (RFC 9112 §9.6).
//!
//! A body is either read whole ([`read_whole`], when a template reads a JSON field) or
//! relayed to the upstream as it arrives ([`relay`]); both go through one [`Watched`]
//! stream, so the limits and the note are the same either way. A relayed body that
//! breaks a limit ends in an error, never early: a chunked upload cut short must not
//! look complete to the upstream.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes, HttpBody as _};
use futures_util::{Stream, StreamExt as _};
use serde::de::{DeserializeSeed, Error as _, MapAccess, Visitor};
use serde_json::{Map, Value};
use tokio::time::Sleep;

/// Why a body was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyFault {
    /// Over `max_body_bytes`.
    #[error("the request body is over the gateway's limit")]
    TooLarge,
    /// Not all there within `body_timeout`.
    #[error("the request body did not arrive in time")]
    TooSlow,
    /// The client's stream broke (disconnect, bad chunking).
    #[error("the request body broke off")]
    Broken,
}

impl BodyFault {
    fn to_u8(self) -> u8 {
        match self {
            Self::TooLarge => 1,
            Self::TooSlow => 2,
            Self::Broken => 3,
        }
    }

    fn from_u8(n: u8) -> Option<Self> {
        match n {
            1 => Some(Self::TooLarge),
            2 => Some(Self::TooSlow),
            3 => Some(Self::Broken),
            _ => None,
        }
    }
}

/// What became of the request body, shared by the handler and the stream reading it.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<(AtomicBool, AtomicU8)>);

impl Progress {
    /// For `body`: already done when it is known to be empty.
    pub fn of(body: &Body) -> Self {
        let p = Self::default();
        if body.is_end_stream() {
            p.0.0.store(true, Ordering::Release);
        }
        p
    }

    /// Whether the body was read to its end.
    pub fn done(&self) -> bool {
        self.0.0.load(Ordering::Acquire)
    }

    /// The limit it broke, if any.
    pub fn fault(&self) -> Option<BodyFault> {
        BodyFault::from_u8(self.0.1.load(Ordering::Acquire))
    }

    fn set_fault(&self, f: BodyFault) {
        self.0.1.store(f.to_u8(), Ordering::Release);
    }
}

/// The limits a body is read under; the deadline runs from when these are made (the
/// request's head has arrived).
#[derive(Debug)]
pub struct Limits {
    max_bytes: usize,
    deadline: Pin<Box<Sleep>>,
}

impl Limits {
    /// At most `max_bytes`, all of it within `timeout` from now.
    pub fn new(max_bytes: usize, timeout: Duration) -> Self {
        Self {
            max_bytes,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

/// The body's data under [`Limits`], noting its end and faults in [`Progress`].
struct Watched {
    inner: BodyDataStream,
    limits: Limits,
    seen: usize,
    progress: Progress,
    finished: bool,
}

impl Watched {
    fn fail(&mut self, f: BodyFault) -> Poll<Option<Result<Bytes, BodyFault>>> {
        self.finished = true;
        self.progress.set_fault(f);
        Poll::Ready(Some(Err(f)))
    }
}

impl Stream for Watched {
    type Item = Result<Bytes, BodyFault>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        if self.limits.deadline.as_mut().poll(cx).is_ready() {
            return self.fail(BodyFault::TooSlow);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.finished = true;
                self.progress.0.0.store(true, Ordering::Release);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(_))) => self.fail(BodyFault::Broken),
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen = self.seen.saturating_add(chunk.len());
                if self.seen > self.limits.max_bytes {
                    return self.fail(BodyFault::TooLarge);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
        }
    }
}

fn watched(body: Body, limits: Limits, progress: &Progress) -> Watched {
    Watched {
        inner: body.into_data_stream(),
        limits,
        seen: 0,
        progress: progress.clone(),
        finished: false,
    }
}

/// Reads the whole body under `limits`.
pub async fn read_whole(
    body: Body,
    limits: Limits,
    progress: &Progress,
) -> Result<Bytes, BodyFault> {
    let mut s = watched(body, limits, progress);
    let mut buf = Vec::new();
    while let Some(chunk) = s.next().await {
        buf.extend_from_slice(&chunk?);
    }
    Ok(Bytes::from(buf))
}

/// The body as the upstream request's, relayed as it arrives under `limits`.
pub fn relay(body: Body, limits: Limits, progress: &Progress) -> reqwest::Body {
    reqwest::Body::wrap_stream(watched(body, limits, progress))
}

/// A JSON body's top-level object has the same name twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the JSON body has top-level field `{0}` more than once")]
pub struct DuplicateField(pub String);

/// The top-level fields of a JSON object body: `Ok(None)` when the body is not one
/// JSON object; [`DuplicateField`] when a name appears twice (parsers differ on which
/// copy wins, so the upstream might read the other one).
pub fn json_fields(bytes: &[u8]) -> Result<Option<Map<String, Value>>, DuplicateField> {
    let mut duplicate = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Fields {
        duplicate: &mut duplicate,
    }
    .deserialize(&mut de)
    .and_then(|m| de.end().map(|()| m));
    match (duplicate, parsed) {
        (Some(name), _) => Err(DuplicateField(name)),
        (None, Ok(m)) => Ok(Some(m)),
        (None, Err(_)) => Ok(None),
    }
}

/// Reads a JSON object, noting the first repeated top-level name.
struct Fields<'a> {
    duplicate: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Fields<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v: Value = map.next_value()?;
            if out.contains_key(&k) {
                let e = A::Error::custom(format!("duplicate field `{k}`"));
                *self.duplicate = Some(k);
                return Err(e);
            }
            out.insert(k, v);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields_refuse_a_repeated_top_level_name_only() {
        assert_eq!(
            json_fields(br#"{"id":"a","id":"b"}"#),
            Err(DuplicateField("id".into()))
        );
        let m =
            json_fields(br#"{"id":"a","n":{"x":1,"x":2}}"#).expect("nested repeats are not read");
        assert_eq!(m.and_then(|m| m.get("id").cloned()), Some(Value::from("a")));
        for not_an_object in [&b"[1]"[..], b"nope", b"{\"a\":1} x", b""] {
            assert_eq!(json_fields(not_an_object), Ok(None));
        }
    }
}
