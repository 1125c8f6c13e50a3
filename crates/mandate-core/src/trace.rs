//! W3C Trace Context (Level 1): the `traceparent` header a caller may send, the trace and
//! span ids it carries, and the header Mandate sends on. Pure parsing and formatting; the
//! edge and the gateways read and write the headers, the random source makes new ids.
//!
//! Parsing follows the recommendation's "Versioning of traceparent" rules: version `00`
//! exactly (55 characters, nothing after the flags); a higher version is read for its
//! first three fields only, when they stand where `00` puts them; `ff`, upper-case hex
//! and all-zero ids are refused. A refused header starts a new trace; it is never an
//! error a caller sees.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::random::{Random, RandomError, random_bytes};

/// The `traceparent` header's name (lower case, as the recommendation says to send it).
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header's name.
pub const TRACESTATE: &str = "tracestate";
/// The longest `tracestate` carried on (bytes, all fields combined): the recommendation
/// asks for at least 512 characters to be propagated; longer than this is dropped whole
/// rather than cut, since a cut list could end inside a member.
pub const TRACESTATE_MAX: usize = 4096;
/// The most list members a `tracestate` may hold (the recommendation's limit).
pub const TRACESTATE_MEMBERS: usize = 32;

/// The `sampled` bit of `trace-flags`.
pub const SAMPLED: u8 = 0x01;

/// A 16-byte trace id, never all zero (INVARIANT (trace ids): only constructors that
/// refuse zero build one).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId([u8; 16]);

/// An 8-byte span id (`parent-id` in `traceparent`), never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId([u8; 8]);

/// Why a `traceparent` or an id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// Not the shape of any version: length, dashes or non-lower-case-hex characters.
    #[error("malformed traceparent")]
    Malformed,
    /// Version `ff`, which the recommendation forbids.
    #[error("traceparent version `ff` is invalid")]
    ForbiddenVersion,
    /// An all-zero trace id or parent id.
    #[error("all-zero trace id or parent id")]
    ZeroId,
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        // INVARIANT (trace ids): upper-case hex is not HEXDIGLC, so it is refused.
        _ => None,
    }
}

/// Lower-case hex of exactly `N` bytes.
fn decode_hex<const N: usize>(s: &[u8]) -> Result<[u8; N], TraceError> {
    if s.len() != 2 * N {
        return Err(TraceError::Malformed);
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (Some(&hi), Some(&lo)) = (pair.first(), pair.get(1)) else {
            return Err(TraceError::Malformed);
        };
        let (Some(hi), Some(lo)) = (hex_digit(hi), hex_digit(lo)) else {
            return Err(TraceError::Malformed);
        };
        *o = (hi << 4) | lo;
    }
    Ok(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

macro_rules! id_type {
    ($name:ident, $n:literal, $what:literal) => {
        impl $name {
            /// Wraps the bytes; all zero is refused.
            pub fn from_bytes(bytes: [u8; $n]) -> Result<Self, TraceError> {
                if bytes == [0u8; $n] {
                    Err(TraceError::ZeroId)
                } else {
                    Ok(Self(bytes))
                }
            }

            /// Parses lower-case hex (the `traceparent` and OTLP form).
            pub fn parse(s: &str) -> Result<Self, TraceError> {
                Self::from_bytes(decode_hex::<$n>(s.as_bytes())?)
            }

            /// A new random id from `random` (never all zero: the recommendation's
            /// "random trace id" for a trace Mandate starts).
            pub fn random(random: &dyn Random) -> Result<Self, RandomError> {
                let mut bytes = random_bytes::<$n>(random)?;
                if bytes == [0u8; $n] {
                    // 2^-64 or less; any fixed non-zero value keeps the type's rule.
                    bytes[$n - 1] = 1;
                }
                Ok(Self(bytes))
            }

            /// The bytes.
            pub fn bytes(&self) -> [u8; $n] {
                self.0
            }
        }

        impl fmt::Display for $name {
            /// Lower-case hex, as in `traceparent`.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($what, "("))?;
                write_hex(f, &self.0)?;
                f.write_str(")")
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(|e| {
                    serde::de::Error::custom(format_args!(
                        concat!("invalid ", $what, " `{}`: {}"),
                        s, e
                    ))
                })
            }
        }
    };
}

id_type!(TraceId, 16, "TraceId");
id_type!(SpanId, 8, "SpanId");

/// A parsed `traceparent`: the caller's trace, its span (our parent) and its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The whole trace's id.
    pub trace_id: TraceId,
    /// The caller's span: the parent of the span that handles the request.
    pub parent_id: SpanId,
    /// `trace-flags`; of a version above `00` only the `sampled` bit is kept.
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value (see the module's rules).
    pub fn parse(value: &str) -> Result<Self, TraceError> {
        let b = value.as_bytes();
        // Every field of every version is visible ASCII; a control character or a
        // non-ASCII byte anywhere, even in a future version's fields this one does not
        // read, makes the header invalid (fuzz target `traceparent`: a `cc-` header with
        // a NUL and non-ASCII after its flags was accepted).
        if !b.iter().all(u8::is_ascii_graphic) {
            return Err(TraceError::Malformed);
        }
        // "2 hex characters followed by a dash", else restart the trace.
        let (Some(&v0), Some(&v1), Some(b'-')) = (b.first(), b.get(1), b.get(2)) else {
            return Err(TraceError::Malformed);
        };
        let (Some(hi), Some(lo)) = (hex_digit(v0), hex_digit(v1)) else {
            return Err(TraceError::Malformed);
        };
        let version = (hi << 4) | lo;
        if version == 0xff {
            return Err(TraceError::ForbiddenVersion);
        }
        // Version 00 is exactly 55 characters; a higher one at least 55, and anything
        // after the flags starts with a dash (fields this version knows nothing of).
        let tail_ok = if version == 0 {
            b.len() == 55
        } else {
            b.len() == 55 || (b.len() > 55 && b.get(55) == Some(&b'-'))
        };
        if !tail_ok || b.get(35) != Some(&b'-') || b.get(52) != Some(&b'-') {
            return Err(TraceError::Malformed);
        }
        let field = |from: usize, to: usize| b.get(from..to).ok_or(TraceError::Malformed);
        let trace = decode_hex::<16>(field(3, 35)?)?;
        let parent = decode_hex::<8>(field(36, 52)?)?;
        let [flags] = decode_hex::<1>(field(53, 55)?)?;
        Ok(Self {
            trace_id: TraceId::from_bytes(trace)?,
            parent_id: SpanId::from_bytes(parent)?,
            // Of an unknown version only `sampled` has a meaning we may assume.
            flags: if version == 0 { flags } else { flags & SAMPLED },
        })
    }

    /// Whether the caller may have recorded its part of the trace.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The version-`00` header value (`00-<trace>-<parent>-<flags>`); flags this version
    /// does not define are sent as zero, as the recommendation requires.
    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.parent_id,
            self.flags & SAMPLED
        )
    }
}

/// The trace a request belongs to, as Mandate handles it: its trace id (the caller's,
/// or new), the span Mandate opened for it, the caller's span if any, the flags, and the
/// caller's `tracestate` when its `traceparent` was valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTrace {
    /// The trace id: the caller's when its `traceparent` was valid, else new.
    pub trace_id: TraceId,
    /// Mandate's span for this request: the parent of anything it calls.
    pub span_id: SpanId,
    /// The caller's span, when its `traceparent` was valid.
    pub parent: Option<SpanId>,
    /// `sampled` (the caller's when given, else Mandate's own sampling decision).
    pub sampled: bool,
    /// The caller's `tracestate`, carried on when valid (only with a valid
    /// `traceparent`; see [`tracestate_of`]).
    pub tracestate: Option<String>,
}

impl RequestTrace {
    /// The trace of a request that sent `traceparent` (each value, since a repeated
    /// header is invalid) and `tracestate` (its values in order, joined by `,` as RFC
    /// 9110 combines them). A missing, repeated or invalid `traceparent` starts a new
    /// trace, sampled by `sample_new`; its `tracestate` is then ignored.
    pub fn from_headers<'a>(
        traceparent: &[&str],
        tracestate: impl IntoIterator<Item = &'a str>,
        random: &dyn Random,
        sample_new: impl FnOnce(&TraceId) -> bool,
    ) -> Result<Self, RandomError> {
        let parsed = match traceparent {
            [one] => TraceParent::parse(one).ok(),
            _ => None,
        };
        // One draw from the random source per request: a span id, and a trace id too
        // when the trace is new.
        let drawn = random_bytes::<24>(random)?;
        let (trace_bytes, span_bytes) = drawn.split_at(16);
        let span_id = SpanId(nonzero::<8>(span_bytes));
        Ok(match parsed {
            Some(p) => Self {
                trace_id: p.trace_id,
                span_id,
                parent: Some(p.parent_id),
                sampled: p.sampled(),
                tracestate: tracestate_of(tracestate),
            },
            None => {
                let trace_id = TraceId(nonzero::<16>(trace_bytes));
                Self {
                    trace_id,
                    span_id,
                    parent: None,
                    sampled: sample_new(&trace_id),
                    tracestate: None,
                }
            }
        })
    }

    /// The `traceparent` to send on a call made under `span` (a span of this request).
    pub fn traceparent_for(&self, span: SpanId) -> String {
        TraceParent {
            trace_id: self.trace_id,
            parent_id: span,
            flags: if self.sampled { SAMPLED } else { 0 },
        }
        .header()
    }
}

/// Whether `b` may follow the first character of a key (`lcalpha / DIGIT / "_" / "-" /
/// "*" / "/"`).
fn key_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

/// Whether `key` is a `tracestate` key: `simple-key` (an lcalpha, then at most 255 key
/// characters) or `multi-tenant-key` (`tenant-id@system-id`: at most 241 and 14).
fn tracestate_key(key: &str) -> bool {
    let rest_ok = |s: &[u8], max: usize| s.len() <= max && s.iter().all(|b| key_char(*b));
    match key.split_once('@') {
        None => match key.as_bytes().split_first() {
            Some((first, rest)) => first.is_ascii_lowercase() && rest_ok(rest, 255),
            None => false,
        },
        Some((tenant, system)) => {
            let tenant_ok = match tenant.as_bytes().split_first() {
                Some((first, rest)) => {
                    (first.is_ascii_lowercase() || first.is_ascii_digit()) && rest_ok(rest, 240)
                }
                None => false,
            };
            let system_ok = match system.as_bytes().split_first() {
                Some((first, rest)) => first.is_ascii_lowercase() && rest_ok(rest, 13),
                None => false,
            };
            tenant_ok && system_ok
        }
    }
}

/// Whether `value` is a `tracestate` value: 1 to 256 printable ASCII characters but `,`
/// and `=`, spaces allowed except last.
fn tracestate_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter()
            .all(|c| matches!(c, 0x20..=0x7e) && *c != b',' && *c != b'=')
        && b.last() != Some(&b' ')
}

/// The `tracestate` to carry on from the header's values (in order, combined as RFC 9110
/// combines a repeated field): its list members, joined by `,`, when the whole list is
/// valid; `None` when it is empty or breaks a rule.
///
/// INVARIANT (tracestate bounded): what is carried on is a list the recommendation
/// allows: every member `key=value` by its grammar, no key twice, at most
/// [`TRACESTATE_MEMBERS`] members and [`TRACESTATE_MAX`] bytes. A list that breaks any
/// rule is dropped whole, as the recommendation's test suite expects, never cut or passed
/// on as sent.
pub fn tracestate_of<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut members: Vec<&str> = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    let mut bytes = 0usize;
    for value in values {
        // An over-long header is refused before it is split: no work grows with it.
        bytes = bytes.saturating_add(value.len());
        if bytes > TRACESTATE_MAX.saturating_mul(4) {
            return None;
        }
        for member in value.split(',') {
            // OWS (spaces and tabs) around a member; an empty member is allowed.
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            let (key, val) = member.split_once('=')?;
            if !tracestate_key(key) || !tracestate_value(val) || keys.contains(&key) {
                return None;
            }
            if members.len() == TRACESTATE_MEMBERS {
                return None;
            }
            keys.push(key);
            members.push(member);
        }
    }
    let joined = members.join(",");
    (!joined.is_empty() && joined.len() <= TRACESTATE_MAX).then_some(joined)
}

/// `N` drawn bytes as an id's: all zero (2^-64 or less) becomes `0…01`, which keeps the
/// ids' rule (`INVARIANT (trace ids)`).
fn nonzero<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut b = [0u8; N];
    for (o, i) in b.iter_mut().zip(bytes) {
        *o = *i;
    }
    if b == [0u8; N]
        && let Some(last) = b.last_mut()
    {
        *last = 1;
    }
    b
}

/// The sampling decision for a trace Mandate starts, by ratio: the recommendation's
/// random trace id makes its last 8 bytes uniform, so a trace is sampled when they fall
/// below `ratio` of their range (the same test on every node: a trace is kept whole).
pub fn sampled_by_ratio(trace_id: &TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    let b = trace_id.bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(b.get(8..16).unwrap_or(&[0u8; 8]));
    let x = u64::from_be_bytes(low) >> 11; // 53 bits, exact in an f64
    #[expect(clippy::cast_precision_loss, reason = "53-bit value, exact")]
    let unit = x as f64 / (1u64 << 53) as f64;
    unit < ratio
}

/// What a span measured: a request Mandate served (`Server`) or a call it made
/// (`Client`). The values are OTLP's `SpanKind` numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// A request Mandate answered.
    Server = 2,
    /// A call Mandate made (a gateway's upstream request).
    Client = 3,
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
}

/// One finished span, for an exporter. Attributes follow the OpenTelemetry semantic
/// conventions (`http.request.method`, `url.path`, `http.response.status_code`) and
/// Mandate's own (`mandate.decision`, `mandate.agent`).
///
/// INVARIANT (no secrets in spans): only the method, the path (never the query), the
/// status, the route, the decision, the agent id and the reason code are ever set: no
/// header, token, body or query value.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Its own id.
    pub span_id: SpanId,
    /// The span it is a child of, if any.
    pub parent: Option<SpanId>,
    /// `METHOD /route` style name.
    pub name: String,
    /// Server or client.
    pub kind: SpanKind,
    /// Start, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// Its attributes.
    pub attributes: Vec<(&'static str, AttrValue)>,
    /// Whether it failed (OTLP status `ERROR`): a 5xx for a server span, no answer or a
    /// 5xx for a client span.
    pub error: bool,
    /// `tracestate` as received, which the exporter records with the span.
    pub trace_state: Option<String>,
}

/// Where finished spans go (the OTLP exporter, or nowhere). Never blocks: an exporter
/// whose queue is full drops the span and counts it.
pub trait SpanSink: Send + Sync {
    /// Whether spans are exported at all (when not, nobody builds them).
    fn enabled(&self) -> bool;
    /// The sampling decision for a trace Mandate starts.
    fn sample_new(&self, trace_id: &TraceId) -> bool;
    /// Takes one finished span.
    fn record(&self, span: Span);
}

/// The sink of a node that exports no spans.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSpans;

impl SpanSink for NoSpans {
    fn enabled(&self) -> bool {
        false
    }
    fn sample_new(&self, _: &TraceId) -> bool {
        false
    }
    fn record(&self, _: Span) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    const SPEC: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_recommendations_example() {
        let p = TraceParent::parse(SPEC).unwrap();
        assert_eq!(p.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.parent_id.to_string(), "00f067aa0ba902b7");
        assert!(p.sampled());
        assert_eq!(p.header(), SPEC);
    }

    #[test]
    fn a_missing_or_invalid_header_starts_a_new_trace_without_its_tracestate() {
        for tp in [vec![], vec!["junk"], vec![SPEC, SPEC]] {
            let t = RequestTrace::from_headers(&tp, ["a=b"], &OsRandom, |_| true).unwrap();
            assert_eq!(t.parent, None, "{tp:?}");
            assert_eq!(t.tracestate, None, "{tp:?}");
            assert_ne!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        }
        let t = RequestTrace::from_headers(&[SPEC], ["a=b", "c=d"], &OsRandom, |_| false).unwrap();
        assert_eq!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.tracestate.as_deref(), Some("a=b,c=d"));
        assert!(t.sampled, "the caller's flag, not the ratio");
        let out = t.traceparent_for(t.span_id);
        assert_eq!(
            out,
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", t.span_id)
        );
    }

    /// Adversarial pass 9: a `tracestate` was carried on as sent whenever it was at most
    /// 4096 bytes: 33 members, duplicated keys, upper-case keys, values with `=`. The
    /// recommendation allows 32 members of its grammar, each key once; a list that breaks
    /// a rule is dropped whole (the W3C test suite's `test_tracestate_*` cases).
    #[test]
    fn atk9_a_tracestate_is_carried_on_only_as_a_valid_list() {
        let state = |values: &[&str]| {
            RequestTrace::from_headers(&[SPEC], values.iter().copied(), &OsRandom, |_| true)
                .unwrap()
                .tracestate
        };
        let members =
            |n: usize| -> Vec<String> { (1..=n).map(|i| format!("bar{i:02}={i:02}")).collect() };
        let m32 = members(32);
        let ok32 = state(&m32.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(ok32.as_deref().map(|s| s.split(',').count()), Some(32));
        let m33 = members(33);
        assert_eq!(
            state(&m33.iter().map(String::as_str).collect::<Vec<_>>()),
            None
        );
        let joined33 = m33.join(",");
        assert_eq!(state(&[&joined33]), None, "33 members in one header");
        for bad in [
            "foo=1,foo=2",
            "FOO=1",
            "foo.bar=1",
            "foo =1",
            "foo@=1,bar=2",
            "@foo=1,bar=2",
            "foo@@bar=1,bar=2",
            "foo@bar@baz=1,bar=2",
            "foo=bar=baz",
            "foo=,bar=3",
            "foo",
            "foo=1\tx",
        ] {
            assert_eq!(state(&[bad]), None, "{bad}");
        }
        assert_eq!(
            state(&["foo=1", "foo=1"]),
            None,
            "a key twice across headers"
        );
        let long_key = format!("{}=1", "z".repeat(257));
        assert_eq!(state(&["foo=1", &long_key]), None);
        let ok_key = format!("{}=1", "z".repeat(256));
        assert!(state(&["foo=1", &ok_key]).is_some());
        let tenant = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
        assert!(state(&["foo=1", &tenant]).is_some());
        let tenant_long = format!("{}@v=1", "t".repeat(242));
        assert_eq!(state(&["foo=1", &tenant_long]), None);
        let system_long = format!("t@{}=1", "v".repeat(15));
        assert_eq!(state(&["foo=1", &system_long]), None);
        // 60 KB in one header: dropped, not forwarded.
        let huge = format!("a={}", "x".repeat(60 * 1024));
        assert_eq!(state(&[&huge]), None);
        let many: Vec<String> = (0..200)
            .map(|i| format!("k{i}={}", "v".repeat(250)))
            .collect();
        assert_eq!(
            state(&many.iter().map(String::as_str).collect::<Vec<_>>()),
            None
        );
        // Valid lists: OWS and empty members are dropped, the order is kept.
        assert_eq!(
            state(&["foo=1 \t , \t bar=2, \t baz=3"]).as_deref(),
            Some("foo=1,bar=2,baz=3")
        );
        assert_eq!(state(&["", "foo=1"]).as_deref(), Some("foo=1"));
        assert_eq!(state(&[""]), None);
        assert_eq!(
            state(&["foo=1 "]).as_deref(),
            Some("foo=1"),
            "OWS after a member"
        );
        assert_eq!(
            state(&["congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"]).as_deref(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
    }

    #[test]
    fn drawn_zero_bytes_still_make_a_valid_id() {
        assert_eq!(nonzero::<8>(&[0; 8]), [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(nonzero::<2>(&[7, 0]), [7, 0]);
        /// A random source that draws only zeros.
        struct Zeros;
        impl Random for Zeros {
            fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
                buf.fill(0);
                Ok(())
            }
        }
        let t = RequestTrace::from_headers(&[], [], &Zeros, |_| true).unwrap();
        assert_eq!(t.trace_id.to_string(), "00000000000000000000000000000001");
        assert_eq!(t.span_id.to_string(), "0000000000000001");
    }

    #[test]
    fn ratio_sampling() {
        let id = TraceId::random(&OsRandom).unwrap();
        assert!(sampled_by_ratio(&id, 1.0));
        assert!(!sampled_by_ratio(&id, 0.0));
        let low = TraceId::parse("0000000000000000000000000000000f").unwrap();
        let high = TraceId::parse("0000000000000000ffffffffffffffff").unwrap();
        assert!(sampled_by_ratio(&low, 0.5) && !sampled_by_ratio(&high, 0.5));
    }

    fn model(version: &str, trace: &str, parent: &str, flags: &str, tail: &str) -> bool {
        let lower = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let zero = |s: &str| s.bytes().all(|b| b == b'0');
        lower(version)
            && version != "ff"
            && lower(trace)
            && lower(parent)
            && lower(flags)
            && !zero(trace)
            && !zero(parent)
            && (tail.is_empty() || (version != "00" && tail.starts_with('-')))
    }

    proptest::proptest! {
        /// The parser against a model of the recommendation's rules, on headers of the
        /// right shape with hex that may be upper case, zero, `ff` or trailed by more.
        #[test]
        fn parse_agrees_with_the_model(
            version in "[0-9a-fA-F]{2}",
            trace in "(0{32})|([0-9a-fA-F]{32})",
            parent in "(0{16})|([0-9a-fA-F]{16})",
            flags in "[0-9a-fA-F]{2}",
            tail in "(|-[a-z0-9-]{0,8}|x)",
        ) {
            let header = format!("{version}-{trace}-{parent}-{flags}{tail}");
            let parsed = TraceParent::parse(&header);
            proptest::prop_assert_eq!(
                parsed.is_ok(),
                model(&version, &trace, &parent, &flags, &tail),
                "{}", header
            );
            if let Ok(p) = parsed {
                proptest::prop_assert_eq!(p.trace_id.to_string(), trace);
                proptest::prop_assert_eq!(p.parent_id.to_string(), parent);
                let again = TraceParent::parse(&p.header()).unwrap();
                proptest::prop_assert_eq!(again.trace_id, p.trace_id);
                proptest::prop_assert_eq!(again.flags, p.flags & SAMPLED);
            }
        }
    }

    #[test]
    fn serde_is_lower_case_hex() {
        let id = TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let j = serde_json::to_string(&id).unwrap();
        assert_eq!(j, "\"4bf92f3577b34da6a3ce929d0e0e4736\"");
        assert_eq!(serde_json::from_str::<TraceId>(&j).unwrap(), id);
        for bad in [
            "\"4BF92F3577B34DA6A3CE929D0E0E4736\"",
            "\"00000000000000000000000000000000\"",
            "\"4bf9\"",
        ] {
            assert!(serde_json::from_str::<TraceId>(bad).is_err(), "{bad}");
        }
    }
}
