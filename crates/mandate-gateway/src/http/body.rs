//! Request bodies under the gateway's limits: at most `max_body_bytes`, the whole body
//! within `body_timeout` of the request's head, and a note of whether it was read to
//! its end — an answer sent before then must close the connection (RFC 9112 §9.6).
//!
//! A body is either read whole ([`read_whole`], when a template reads a JSON field, and
//! every MCP message) into no more than it reserved from the gateways' shared body
//! budget ([`crate::budget`]), or relayed to the upstream as it arrives ([`relay`]);
//! both go through one [`Watched`] stream, so the limits and the note are the same
//! either way. A relayed body that
//! breaks a limit ends in an error, never early: a chunked upload cut short must not
//! look complete to the upstream.
//!
//! A body a template reads must be declared UTF-8 JSON ([`declares_json`]) and is read
//! into its top-level fields once ([`json_fields`]), refusing any name the upstream
//! could read as another copy of a read one.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, BodyDataStream, Bytes, HttpBody as _};
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::{Stream, StreamExt as _};
use serde::de::{DeserializeSeed, Error as _, MapAccess, Visitor};
use serde_json::{Map, Value};
use tokio::time::Sleep;

use super::name::{self, Clash};
use crate::budget::Reservation;

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
    /// The stable code the gateway answers (and records) with.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooLarge => "body_too_large",
            Self::TooSlow => "request_timeout",
            Self::Broken => "body_incomplete",
        }
    }

    /// The status the gateway answers with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooSlow => StatusCode::REQUEST_TIMEOUT,
            Self::Broken => StatusCode::BAD_REQUEST,
        }
    }

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

/// Reads the whole body under `limits`, into at most the bytes `held` reserves from
/// the gateways' body budget ([`crate::budget`]): a body longer than that is
/// [`BodyFault::TooLarge`], and the buffer's capacity never exceeds it.
pub async fn read_whole(
    body: Body,
    limits: Limits,
    progress: &Progress,
    held: &Reservation,
) -> Result<Bytes, BodyFault> {
    let cap = held.bytes();
    let mut s = watched(body, limits, progress);
    let mut buf = Vec::new();
    while let Some(chunk) = s.next().await {
        let chunk = chunk?;
        let needed = buf.len().saturating_add(chunk.len());
        if needed > cap {
            // INVARIANT (body budget): no body buffers more than it reserved.
            progress.set_fault(BodyFault::TooLarge);
            return Err(BodyFault::TooLarge);
        }
        if needed > buf.capacity() {
            // Grow as `Vec` would (doubling), but never past the reservation.
            let target = buf.capacity().saturating_mul(2).clamp(needed, cap);
            buf.reserve_exact(target.saturating_sub(buf.len()));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// The body as the upstream request's, relayed as it arrives under `limits`.
pub fn relay(body: Body, limits: Limits, progress: &Progress) -> reqwest::Body {
    reqwest::Body::wrap_stream(watched(body, limits, progress))
}

/// Why a JSON body's fields are not read (400 `ambiguous_body`): the upstream might
/// read another copy than the decision did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A top-level name appears twice (parsers differ on which copy wins).
    #[error("the JSON body has top-level field `{0}` more than once")]
    Duplicate(String),
    /// A field the route reads appears again in another case.
    #[error(
        "the JSON body has top-level field `{0}`, which the route reads, more than once \
         (names compared ignoring case)"
    )]
    Repeated(String),
    /// A field the route reads is sent only in another case.
    #[error("the JSON body's field `{sent}` is `{read}`, which the route reads, in another case")]
    OtherCase {
        /// The name the route reads.
        read: String,
        /// The name sent.
        sent: String,
    },
    /// A top-level name is a read one followed by `[` or `.`.
    #[error("the JSON body's field `{sent}` is more of `{read}`, which the route reads")]
    Nested {
        /// The name the route reads.
        read: String,
        /// The name sent.
        sent: String,
    },
    /// A top-level `_method` (Laravel takes it for the request's method, JSON or not).
    #[error(
        "the JSON body's field `{0}` asks the upstream for another method than the one decided"
    )]
    MethodOverride(String),
}

impl FieldError {
    /// The stable code the gateway answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MethodOverride(_) => "ambiguous_request",
            _ => "ambiguous_body",
        }
    }
}

/// The top-level fields of a JSON object body: `Ok(None)` when the body is not one
/// JSON object. Refused ([`FieldError`]) when a name appears twice, a name in `read`
/// appears in another case or with `[`/`.` after it ([`super::name`]: case-insensitive
/// binders such as Go's, Jackson's or ASP.NET Core's may bind that copy), or a name is
/// `_method` (Laravel reads it from a JSON body as the method; Express's
/// `method-override` and Rails read it from a form body, which a template never reads:
/// a body no template reads is relayed unread, and nothing in it can be checked).
pub fn json_fields<'a>(
    bytes: &[u8],
    read: impl IntoIterator<Item = &'a str>,
) -> Result<Option<Map<String, Value>>, FieldError> {
    let mut duplicate = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Fields {
        duplicate: &mut duplicate,
    }
    .deserialize(&mut de)
    .and_then(|m| de.end().map(|()| m));
    let fields = match (duplicate, parsed) {
        (Some(name), _) => return Err(FieldError::Duplicate(name)),
        (None, Ok(m)) => m,
        (None, Err(_)) => return Ok(None),
    };
    if let Some(m) = fields.keys().find(|k| name::is_refused(k, "_method")) {
        return Err(FieldError::MethodOverride(m.clone()));
    }
    for r in read {
        match name::clash(r, fields.keys().map(String::as_str)) {
            None => {}
            Some(Clash::Repeated) => return Err(FieldError::Repeated(r.to_owned())),
            Some(Clash::OtherCase(sent)) => {
                return Err(FieldError::OtherCase {
                    read: r.to_owned(),
                    sent: sent.to_owned(),
                });
            }
            Some(Clash::Nested(sent)) => {
                return Err(FieldError::Nested {
                    read: r.to_owned(),
                    sent: sent.to_owned(),
                });
            }
        }
    }
    Ok(Some(fields))
}

/// Whether `headers` declare one JSON body the gateway and any upstream read alike:
/// exactly one `Content-Type`, `application/json` or `application/<name>+json` (case
/// ignored), with no parameter but `charset=utf-8` (RFC 8259 §8.1: JSON is UTF-8; an
/// upstream honouring another charset would read other text). A route whose templates
/// read the body refuses anything else with 415 `unsupported_media_type`: read as JSON
/// by the gateway but as a form or as Latin-1 by the upstream, the decision would be on
/// other values.
pub fn declares_json(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let Some(subtype) = essence.strip_prefix("application/") else {
        return false;
    };
    let json = subtype == "json"
        || subtype.strip_suffix("+json").is_some_and(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.".contains(&b))
        });
    json && parts.all(|p| {
        p.split_once('=').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("charset")
                && v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        })
    })
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
            json_fields(br#"{"id":"a","id":"b"}"#, []),
            Err(FieldError::Duplicate("id".into()))
        );
        let m = json_fields(br#"{"id":"a","n":{"x":1,"x":2}}"#, ["id"])
            .expect("nested repeats are not read");
        assert_eq!(m.and_then(|m| m.get("id").cloned()), Some(Value::from("a")));
        for not_an_object in [&b"[1]"[..], b"nope", b"{\"a\":1} x", b""] {
            assert_eq!(json_fields(not_an_object, ["a"]), Ok(None));
        }
    }

    #[test]
    fn json_fields_refuse_a_read_name_in_another_case() {
        let body = br#"{"amount":1,"Amount":1e6,"note":1,"NOTE":2}"#;
        assert_eq!(
            json_fields(body, ["amount"]),
            Err(FieldError::Repeated("amount".into()))
        );
        assert!(
            json_fields(body, []).is_ok(),
            "unread names may differ in case"
        );
        assert_eq!(
            json_fields(br#"{"Amount":1}"#, ["amount"]),
            Err(FieldError::OtherCase {
                read: "amount".into(),
                sent: "Amount".into()
            })
        );
        // Issue 18 follow-up 6 (1): Go's encoding/json binds `taſk` to `task` and
        // `\u212A` (KELVIN SIGN) to `k`.
        assert_eq!(
            json_fields("{\"task\":1,\"ta\u{17F}k\":2}".as_bytes(), ["task"]),
            Err(FieldError::Repeated("task".into()))
        );
        assert_eq!(
            json_fields(br#"{"ta\u017fk":2}"#, ["task"]),
            Err(FieldError::OtherCase {
                read: "task".into(),
                sent: "ta\u{17F}k".into()
            })
        );
        assert_eq!(
            json_fields(br#"{"k":1,"\u212a":2}"#, ["k"]),
            Err(FieldError::Repeated("k".into()))
        );
    }

    /// Issue 18 follow-up 6 (2): `_method` in a read JSON body, and a read name with
    /// array or object syntax after it.
    #[test]
    fn json_fields_refuse_method_overrides_and_nested_copies() {
        for body in [&br#"{"_method":"DELETE"}"#[..], br#"{"a":1,"_METHOD":"x"}"#] {
            let e = json_fields(body, []).expect_err("refused");
            assert!(matches!(e, FieldError::MethodOverride(_)), "{e}");
            assert_eq!(e.code(), "ambiguous_request");
        }
        let e = json_fields(br#"{"id":"a","id[]":"b"}"#, ["id"]).expect_err("refused");
        assert!(matches!(e, FieldError::Nested { .. }), "{e}");
        assert_eq!(e.code(), "ambiguous_body");
    }

    #[test]
    fn only_utf8_json_is_declared_json() {
        let h = |types: &[&'static str]| {
            let mut h = HeaderMap::new();
            for t in types {
                h.append(
                    header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static(t),
                );
            }
            declares_json(&h)
        };
        for ok in [
            "application/json",
            "APPLICATION/Json ; Charset=\"UTF-8\"",
            "application/problem+json",
        ] {
            assert!(h(&[ok]), "{ok}");
        }
        for bad in [
            &[][..],
            &["application/json", "application/json"],
            &["application/+json"],
            &["application/json; charset=iso-8859-1"],
            &["application/json; q=1"],
            &["application/json;"],
            &["text/json"],
            &["application/json, text/plain"],
            &["application/x-www-form-urlencoded"],
        ] {
            assert!(!h(bad), "{bad:?}");
        }
    }
}
