//! The verifier's fast path for event lines: one pass over a line's bytes checks that it
//! is exactly what [`event_line`](super::event_line) writes for some event, and reads the
//! event's seq and node on the way. The event's bytes in the line are then its canonical
//! bytes, so the leaf is their hash: nothing is parsed into values, re-encoded or
//! allocated.
//!
//! The scan is sound, not complete. A line it accepts is one the full check (parse into an
//! [`AuditEvent`](crate::event::AuditEvent), re-encode, compare byte for byte) accepts,
//! with the same seq, node and leaf. It declines what it does not follow — a value nested
//! deeper than [`MAX_DEPTH`], and every line that is not canonical — and the verifier then
//! runs the full check, which decides and names the failure. Two rare cases take a slower
//! step inside the scan: a number other than a short integer is parsed and re-encoded on
//! its own, and object member names with escapes are decoded to be compared.
//!
//! Lines do not depend on each other here (seq, node and the Merkle tree are the
//! verifier's, in order), so [`Scanners`] shares a batch of lines among threads. They
//! also take the full check of checkpoint lines, whose signatures are the costly part.

use std::num::NonZero;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use ed25519_dalek::VerifyingKey;
use mandate_core::time::Timestamp;
use mandate_core::trace::TraceId;
use serde_json::Number;

use super::{Record, checkpoint_line};
use crate::canonical;
use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::merkle::{self, Hash};

/// What an event line starts with; it ends with `}`.
const PREFIX: &str = "{\"event\":";

/// Containers the scan follows inside `resource`, `context` and `details`. `serde_json`
/// (and so the full check) allows 125 there; deeper lines go to the full check.
const MAX_DEPTH: u32 = 64;

/// The value a member of the event holds.
#[derive(Clone, Copy)]
enum Field {
    /// A string.
    Str,
    /// `node`: a string without escapes (a node name has none to escape).
    Node,
    /// `seq`: an integer in `0..=u64::MAX`.
    Seq,
    /// `time`: `YYYY-MM-DDTHH:MM:SSZ`.
    Time,
    /// `resource`, `context`, `details`: any JSON value but `null`.
    Json,
    /// `policy_ids`, `reasons`: a non-empty array of strings.
    List,
    /// `trace_id`: 32 lower-case hex digits, not all zero (a `TraceId`).
    Trace,
}

/// The members of a canonical event, in canonical order (RFC 8785 sorts by UTF-16 code
/// units; for these ASCII names that is byte order), and whether each is required.
/// Mirrors `AuditEvent::to_json`; a test checks the two agree.
const FIELDS: [(&str, Field, bool); 16] = [
    ("action", Field::Str, false),
    ("actor", Field::Str, false),
    ("agent", Field::Str, false),
    ("context", Field::Json, false),
    ("decision", Field::Str, false),
    ("details", Field::Json, false),
    ("kind", Field::Str, true),
    ("node", Field::Node, true),
    ("policy_ids", Field::List, false),
    ("reasons", Field::List, false),
    ("request_id", Field::Str, false),
    ("resource", Field::Json, false),
    ("seq", Field::Seq, true),
    ("time", Field::Time, true),
    ("trace_id", Field::Trace, false),
    ("user", Field::Str, false),
];
const REQUIRED: usize = 4;

/// The index in [`FIELDS`] of the member named `name`.
fn field_index(name: &[u8]) -> Option<usize> {
    // A `match` compares with constants of known length, without calls.
    Some(match name {
        b"action" => 0,
        b"actor" => 1,
        b"agent" => 2,
        b"context" => 3,
        b"decision" => 4,
        b"details" => 5,
        b"kind" => 6,
        b"node" => 7,
        b"policy_ids" => 8,
        b"reasons" => 9,
        b"request_id" => 10,
        b"resource" => 11,
        b"seq" => 12,
        b"time" => 13,
        b"trace_id" => 14,
        b"user" => 15,
        _ => return None,
    })
}

/// A line the scan vouches for.
pub(super) enum Scanned<'a> {
    /// An event line.
    Event(Event<'a>),
    /// A checkpoint line, as [`checkpoint_line`] writes it, whose signature verifies.
    Checkpoint(Checkpoint),
}

/// An event line the scan accepted.
pub(super) struct Event<'a> {
    /// The event's seq.
    pub seq: u64,
    /// The node it names, not yet checked to be a valid node name.
    pub node: &'a str,
    /// `SHA-256(0x00 ‖ canonical bytes)`.
    pub leaf: Hash,
}

/// At most this many threads scan a batch of lines.
const MAX_THREADS: usize = 8;

/// Threads take lines this many at a time, so that one that runs slower (another
/// process has its CPU) does less of the batch.
const CHUNK_LINES: usize = 256;

/// Each thread has at least this many lines to scan: starting a thread costs about as
/// much as scanning a few dozen.
const MIN_LINES_PER_THREAD: usize = 512;

/// A scanner for each thread that may scan a batch (the first works on the caller's),
/// and the node's key, for checkpoints.
pub(super) struct Scanners {
    scanners: Vec<Scanner>,
    key: VerifyingKey,
}

/// Scan results of the chunk of lines with this index.
type Done<'a> = (usize, Vec<Option<Scanned<'a>>>);

impl Scanners {
    /// As many scanners as the machine runs threads at once, up to [`MAX_THREADS`].
    pub(super) fn new(key: &VerifyingKey) -> Self {
        let threads = thread::available_parallelism().map_or(1, NonZero::get);
        Self::with_threads(threads, key)
    }

    fn with_threads(threads: usize, key: &VerifyingKey) -> Self {
        let threads = threads.clamp(1, MAX_THREADS);
        Self {
            scanners: (0..threads).map(|_| Scanner::default()).collect(),
            key: *key,
        }
    }

    /// Scans `lines`, on several threads when there are enough of them: one result per
    /// line, in order.
    pub(super) fn scan<'a>(&mut self, lines: &[&'a str]) -> Vec<Option<Scanned<'a>>> {
        let threads = (lines.len() / MIN_LINES_PER_THREAD).min(self.scanners.len());
        let key = &self.key;
        let Some((own, others)) = self.scanners.split_first_mut() else {
            return lines.iter().map(|_| None).collect();
        };
        if threads <= 1 {
            return own.all(lines, key);
        }
        let chunks: Vec<&[&'a str]> = lines.chunks(CHUNK_LINES).collect();
        let next = AtomicUsize::new(0);
        // Each thread takes the next chunk until none is left.
        let take = |scanner: &mut Scanner| -> Vec<Done<'a>> {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(chunk) = chunks.get(i) else {
                    return done;
                };
                done.push((i, scanner.all(chunk, key)));
            }
        };
        let done: Vec<Done<'a>> = thread::scope(|scope| {
            // A thread that cannot start takes no chunk, and the others take its share.
            let workers: Vec<_> = others
                .iter_mut()
                .take(threads - 1)
                .filter_map(|scanner| {
                    thread::Builder::new()
                        .name("audit-verify".into())
                        .spawn_scoped(scope, || take(scanner))
                        .ok()
                })
                .collect();
            let mut done = take(own);
            for worker in workers {
                // A thread that panicked leaves its chunks to the full check.
                done.extend(worker.join().unwrap_or_default());
            }
            done
        });
        let mut by_chunk: Vec<Option<Vec<Option<Scanned<'a>>>>> =
            chunks.iter().map(|_| None).collect();
        for (i, scanned) in done {
            if let Some(slot) = by_chunk.get_mut(i) {
                *slot = Some(scanned);
            }
        }
        chunks
            .iter()
            .zip(by_chunk)
            .flat_map(|(chunk, scanned)| {
                scanned.unwrap_or_else(|| chunk.iter().map(|_| None).collect())
            })
            .collect()
    }
}

/// Scans event lines; keeps the last `time` it checked, since consecutive events tend to
/// share it.
#[derive(Default)]
pub(super) struct Scanner {
    last_time: Option<[u8; TIME_LEN]>,
}

/// The length of `YYYY-MM-DDTHH:MM:SSZ`.
const TIME_LEN: usize = 20;

impl Scanner {
    fn all<'a>(&mut self, lines: &[&'a str], key: &VerifyingKey) -> Vec<Option<Scanned<'a>>> {
        let scan = |line: &&'a str| {
            if line.starts_with(PREFIX) {
                self.event(line).map(Scanned::Event)
            } else {
                checkpoint(line, key).map(Scanned::Checkpoint)
            }
        };
        lines.iter().map(scan).collect()
    }

    /// The seq, node and leaf of `line` if the scan vouches that it is the export line of
    /// an event; `None` if the full check must decide.
    pub(super) fn event<'a>(&mut self, line: &'a str) -> Option<Event<'a>> {
        let body = line.strip_prefix(PREFIX)?.strip_suffix('}')?;
        let mut p = Bytes {
            s: body.as_bytes(),
            at: 0,
        };
        p.eat(b'{')?;
        let (mut seq, mut node) = (None, None);
        let mut next = 0;
        let mut required = 0;
        loop {
            let key = p.string()?;
            let i = field_index(p.s.get(key.start..key.end)?)?;
            // Members come in FIELDS order, each at most once.
            if i < next {
                return None;
            }
            next = i + 1;
            let &(_, field, is_required) = FIELDS.get(i)?;
            required += usize::from(is_required);
            p.eat(b':')?;
            match field {
                Field::Str => {
                    p.string()?;
                }
                Field::Node => {
                    let s = p.string()?;
                    if s.escaped {
                        return None;
                    }
                    node = Some(body.get(s.start..s.end)?);
                }
                Field::Seq => seq = Some(p.seq()?),
                Field::Time => {
                    let s = p.string()?;
                    if s.escaped || !self.time_ok(body.get(s.start..s.end)?) {
                        return None;
                    }
                }
                Field::Json => {
                    // `null` is the only value starting with `n`; the event omits it.
                    if p.peek()? == b'n' {
                        return None;
                    }
                    p.value(MAX_DEPTH)?;
                }
                Field::List => p.string_list()?,
                Field::Trace => {
                    let s = p.string()?;
                    if s.escaped || TraceId::parse(body.get(s.start..s.end)?).is_err() {
                        return None;
                    }
                }
            }
            match p.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        if p.at != body.len() || required != REQUIRED {
            return None;
        }
        Some(Event {
            seq: seq?,
            node: node?,
            leaf: merkle::leaf_hash(body.as_bytes()),
        })
    }

    /// Whether `time` is a timestamp written as `Timestamp` writes it.
    fn time_ok(&mut self, time: &str) -> bool {
        let Ok(bytes) = <[u8; TIME_LEN]>::try_from(time.as_bytes()) else {
            return false;
        };
        if self.last_time == Some(bytes) {
            return true;
        }
        let ok = Timestamp::parse(time).is_ok_and(|t| t.to_string() == time);
        if ok {
            self.last_time = Some(bytes);
        }
        ok
    }
}

/// The checkpoint on `line` if the full check of a checkpoint line passes: the line is
/// what [`checkpoint_line`] writes, and the signature verifies with `key`.
fn checkpoint(line: &str, key: &VerifyingKey) -> Option<Checkpoint> {
    let Ok(Record::Checkpoint(text)) = serde_json::from_str(line) else {
        return None;
    };
    let signed = SignedCheckpoint { text };
    if checkpoint_line(&signed) != line {
        return None;
    }
    signed.verify(key).ok()
}

/// A string's content, between its quotes.
#[derive(Clone, Copy)]
struct Content {
    start: usize,
    end: usize,
    escaped: bool,
}

/// A cursor over canonical JSON text. Each method consumes one construct and returns
/// `None` if the text there is not in canonical form.
struct Bytes<'a> {
    s: &'a [u8],
    at: usize,
}

impl Bytes<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    fn eat_literal(&mut self, lit: &[u8]) -> Option<()> {
        let end = self.at.checked_add(lit.len())?;
        (self.s.get(self.at..end)? == lit).then(|| self.at = end)
    }

    /// A string as `canonical::write_string` writes it: raw UTF-8 but for `"`, `\` and
    /// U+0000..U+001F, which are escaped as `\"`, `\\`, `\b`, `\t`, `\n`, `\f`, `\r` or
    /// `\u00xx` (lowercase hex), the short form where there is one.
    fn string(&mut self) -> Option<Content> {
        self.eat(b'"')?;
        let start = self.at;
        let mut escaped = false;
        loop {
            self.at += plain_run(self.s.get(self.at..)?);
            match self.next()? {
                b'"' => {
                    return Some(Content {
                        start,
                        end: self.at - 1,
                        escaped,
                    });
                }
                b'\\' => {
                    escaped = true;
                    match self.next()? {
                        b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r' => {}
                        b'u' => {
                            let end = self.at.checked_add(4)?;
                            let [b'0', b'0', hi, lo] = *self.s.get(self.at..end)? else {
                                return None;
                            };
                            let hex = matches!(hi, b'0' | b'1')
                                && matches!(lo, b'0'..=b'9' | b'a'..=b'f');
                            // \u0008, \u0009, \u000a, \u000c and \u000d have short forms.
                            let short =
                                hi == b'0' && matches!(lo, b'8' | b'9' | b'a' | b'c' | b'd');
                            if !hex || short {
                                return None;
                            }
                            self.at = end;
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => {}
            }
        }
    }

    /// `seq`: `0` or a digit string without a leading zero, at most `u64::MAX`.
    fn seq(&mut self) -> Option<u64> {
        let first = self.next()?;
        let mut n = u64::from(first.checked_sub(b'0').filter(|d| *d <= 9)?);
        if n == 0 {
            return Some(0);
        }
        while let Some(d @ b'0'..=b'9') = self.peek() {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.at += 1;
        }
        Some(n)
    }

    /// `[` string (`,` string)* `]`.
    fn string_list(&mut self) -> Option<()> {
        self.eat(b'[')?;
        loop {
            self.string()?;
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// Any JSON value, with at most `depth` levels of containers.
    fn value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(depth.checked_sub(1)?),
            b'[' => self.array(depth.checked_sub(1)?),
            b't' => self.eat_literal(b"true"),
            b'f' => self.eat_literal(b"false"),
            b'n' => self.eat_literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// An array; `depth` levels of containers are allowed inside it.
    fn array(&mut self, depth: u32) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.value(depth)?;
            match self.next()? {
                b',' => {}
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// An object whose member names are unique and sorted by UTF-16 code units; `depth`
    /// levels of containers are allowed inside it.
    fn object(&mut self, depth: u32) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        let mut previous: Option<Content> = None;
        loop {
            let name = self.string()?;
            if let Some(previous) = previous
                && !self.before(previous, name)?
            {
                return None;
            }
            previous = Some(name);
            self.eat(b':')?;
            self.value(depth)?;
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// Whether member name `a` sorts strictly before `b` (RFC 8785 §3.2.3).
    fn before(&self, a: Content, b: Content) -> Option<bool> {
        let (x, y) = (self.s.get(a.start..a.end)?, self.s.get(b.start..b.end)?);
        if !a.escaped && !b.escaped {
            match x.iter().zip(y).find(|(p, q)| p != q) {
                // One is a prefix of the other.
                None => return Some(x.len() < y.len()),
                // Equal bytes before: both differing bytes start a character, and two
                // ASCII characters are one UTF-16 code unit each.
                Some((p, q)) if p.is_ascii() && q.is_ascii() => return Some(p < q),
                Some(_) => {}
            }
        }
        let (x, y) = (decode(x)?, decode(y)?);
        Some(x.encode_utf16().lt(y.encode_utf16()))
    }

    /// A number: a short integer is canonical as it stands; any other is parsed as
    /// `serde_json` parses it and must read as `canonical` writes it.
    fn number(&mut self) -> Option<()> {
        let start = self.at;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
            self.at += 1;
        }
        let text = self.s.get(start..self.at)?;
        let digits = text.strip_prefix(b"-").unwrap_or(text);
        let short_integer = match digits {
            // `-0` reads as the float -0, written `0`.
            [b'0'] => text.len() == 1,
            // At most 18 digits: within both i64 and u64, so read and written exactly.
            [b'1'..=b'9', rest @ ..] => rest.len() < 18 && rest.iter().all(u8::is_ascii_digit),
            _ => false,
        };
        if short_integer {
            return Some(());
        }
        let text = std::str::from_utf8(text).ok()?;
        let n: Number = serde_json::from_str(text).ok()?;
        (canonical::number(&n) == text).then_some(())
    }
}

/// The number of bytes at the start of `s` that a string holds as they are: all but `"`,
/// `\` and bytes below 0x20. Eight bytes at a time.
fn plain_run(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte that is zero, or below 0x20; bits above the lowest one
    // set may be false, so only the lowest is used.
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let below_space = |w: u64| w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let mut run = 0;
    let mut chunks = s.chunks_exact(8);
    for chunk in &mut chunks {
        let w = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or_default());
        let special = zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | below_space(w);
        if special != 0 {
            // Little-endian: the lowest bit set is in the first special byte.
            return run + special.trailing_zeros() as usize / 8;
        }
        run += 8;
    }
    let rest = chunks.remainder();
    run + rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .unwrap_or(rest.len())
}

/// The string whose canonical content (between the quotes) is `content`.
fn decode(content: &[u8]) -> Option<String> {
    let mut quoted = Vec::with_capacity(content.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(content);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AuditEvent, NodeName};
    use crate::testgen::arb_json;
    use crate::verify::event_line;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// The full check's verdict on a line: seq, node and leaf of the event it holds.
    fn full(line: &str) -> Option<(u64, String, Hash)> {
        let Ok(Record::Event(e)) = serde_json::from_str(line) else {
            return None;
        };
        (event_line(&e) == line).then(|| (e.seq, e.node.to_string(), e.leaf_hash()))
    }

    /// The fast path's verdict, as `State::line` takes it (the node must be valid).
    fn fast(scanner: &mut Scanner, line: &str) -> Option<(u64, String, Hash)> {
        let s = scanner.event(line)?;
        NodeName::new(s.node).ok()?;
        Some((s.seq, s.node.to_owned(), s.leaf))
    }

    /// A line with `details` set to the JSON text `details`.
    fn with_details(details: &str) -> String {
        format!(
            r#"{{"event":{{"details":{details},"kind":"k","node":"n","seq":0,"time":"1970-01-01T00:00:00Z"}}}}"#
        )
    }

    fn time(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    #[test]
    fn fields_mirror_the_canonical_form() {
        // Every field set; a field added to `AuditEvent` breaks this literal.
        let full_event = AuditEvent {
            seq: 1,
            time: time(0),
            node: NodeName::new("n").unwrap(),
            kind: "k".into(),
            request_id: Some("r".into()),
            trace_id: Some(TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()),
            agent: Some("a".into()),
            user: Some("u".into()),
            actor: Some("ad".into()),
            action: Some("x".into()),
            resource: Some(json!(1)),
            context: Some(json!({})),
            decision: Some("allow".into()),
            policy_ids: vec!["p".into()],
            reasons: vec!["r".into()],
            details: Some(json!([])),
        };
        let Value::Object(m) = full_event.to_json() else {
            panic!("an event is an object")
        };
        let names: Vec<&str> = FIELDS.iter().map(|(n, _, _)| *n).collect();
        for (i, name) in names.iter().enumerate() {
            assert_eq!(field_index(name.as_bytes()), Some(i), "{name}");
        }
        let mut sorted = m.keys().map(String::as_str).collect::<Vec<_>>();
        sorted.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
        assert_eq!(names, sorted);
        let Value::Object(bare) =
            AuditEvent::new(0, time(0), NodeName::new("n").unwrap(), "k").to_json()
        else {
            panic!("an event is an object")
        };
        let required: Vec<&str> = FIELDS.iter().filter(|f| f.2).map(|f| f.0).collect();
        let mut bare: Vec<&str> = bare.keys().map(String::as_str).collect();
        bare.sort_unstable();
        assert_eq!(required, bare);
        assert_eq!(REQUIRED, required.len());

        let line = event_line(&full_event);
        assert!(full(&line).is_some());
        assert_eq!(fast(&mut Scanner::default(), &line), full(&line));
    }

    #[test]
    fn numbers() {
        let canonical = [
            "0",
            "7",
            "-7",
            "123456789012345678",
            "-123456789012345678",
            "1234567890123456789",
            "18446744073709551615",
            "-9223372036854775808",
            "295147905179352830000",
            "1e+21",
            "1.5",
            "-0.001",
            "0.000001",
            "1e-7",
            "5e-324",
            "1.7976931348623157e+308",
            "333333333.3333333",
        ];
        for n in canonical {
            let line = with_details(&format!("[{n}]"));
            assert!(full(&line).is_some(), "{n}");
            assert_eq!(fast(&mut Scanner::default(), &line), full(&line), "{n}");
        }
        let not_canonical = [
            "-0",
            "00",
            "01",
            "-01",
            "1.0",
            "1.50",
            "1e5",
            "1E+21",
            "1e21",
            "+1",
            "1.",
            ".5",
            "0.0000001",
            "18446744073709551616",
            "295147905179352830001",
            "1e400",
            "-",
            "1-2",
            "0x10",
            "1e+030",
        ];
        for n in not_canonical {
            let line = with_details(&format!("[{n}]"));
            assert_eq!(fast(&mut Scanner::default(), &line), None, "{n}");
            assert_eq!(full(&line), None, "{n}");
        }
    }

    #[test]
    fn seq_and_time() {
        let line = |seq: &str, time: &str| {
            format!(r#"{{"event":{{"kind":"k","node":"n","seq":{seq},"time":"{time}"}}}}"#)
        };
        let t = "2024-02-29T23:59:59Z";
        for seq in ["0", "1", "18446744073709551615"] {
            let l = line(seq, t);
            assert!(full(&l).is_some(), "{l}");
            assert_eq!(fast(&mut Scanner::default(), &l), full(&l), "{l}");
        }
        let mut scanner = Scanner::default();
        for (seq, time) in [
            ("18446744073709551616", t),
            ("-1", t),
            ("01", t),
            ("1.0", t),
            ("1e3", t),
            ("\"1\"", t),
            ("1", "2023-02-29T00:00:00Z"),
            ("1", "2024-02-29t23:59:59Z"),
            ("1", "2024-02-29T23:59:59z"),
            ("1", "2024-02-29 23:59:59Z"),
            ("1", "2024-02-29T23:59:59.0Z"),
            ("1", "2024-02-29T23:59:59+00:00"),
            ("1", "2024-02-29T23:59:5\\u0039Z"),
        ] {
            let l = line(seq, time);
            // The cached time must not let a bad one through.
            assert!(fast(&mut scanner, &line("1", t)).is_some());
            assert_eq!(fast(&mut scanner, &l), None, "{l}");
            assert_eq!(full(&l), None, "{l}");
        }
    }

    #[test]
    fn threads_share_a_batch_in_order() {
        let node = NodeName::new("n").unwrap();
        let lines: Vec<String> = (0..3000)
            .map(|seq| {
                let line = event_line(&AuditEvent::new(
                    seq,
                    time(seq as i64 / 7),
                    node.clone(),
                    "k",
                ));
                match seq % 97 {
                    0 => line.replace("\"kind\"", "\"kind\" "),
                    1 => "{\"checkpoint\":\"x\"}".to_owned(),
                    _ => line,
                }
            })
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let key = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let results = |threads: usize| {
            let scanned = Scanners::with_threads(threads, &key).scan(&lines);
            scanned
                .into_iter()
                .map(|s| match s {
                    Some(Scanned::Event(e)) => Some((e.seq, e.node, e.leaf)),
                    Some(Scanned::Checkpoint(_)) => panic!("no valid checkpoint here"),
                    None => None,
                })
                .collect::<Vec<_>>()
        };
        let one = results(1);
        assert_eq!(one.len(), lines.len());
        assert_eq!(one.iter().filter(|s| s.is_none()).count(), 2 * 31);
        for threads in [2, 3, 8, 100] {
            assert_eq!(results(threads), one, "{threads} threads");
        }
        assert!(Scanners::with_threads(4, &key).scan(&[]).is_empty());
    }

    #[test]
    fn structure() {
        let ok = r#"{"event":{"kind":"k","node":"n","seq":0,"time":"1970-01-01T00:00:00Z"}}"#;
        assert!(fast(&mut Scanner::default(), ok).is_some());
        let refused = [
            // A required member missing.
            r#"{"event":{"node":"n","seq":0,"time":"1970-01-01T00:00:00Z"}}"#,
            r#"{"event":{"kind":"k","seq":0,"time":"1970-01-01T00:00:00Z"}}"#,
            r#"{"event":{"kind":"k","node":"n","time":"1970-01-01T00:00:00Z"}}"#,
            r#"{"event":{"kind":"k","node":"n","seq":0}}"#,
            // Text after the event.
            r#"{"event":{"kind":"k","node":"n","seq":0,"time":"1970-01-01T00:00:00Z"}1}"#,
            r#"{"event":{"kind":"k","node":"n","seq":0,"time":"1970-01-01T00:00:00Z"},"x":1}"#,
            r#"{"event":{"kind":"k","node":"n","seq":0,"time":"1970-01-01T00:00:00Z"}} "#,
            // A member twice, out of order, unknown, or empty.
            r#"{"event":{"kind":"k","kind":"k","node":"n","seq":0,"time":"1970-01-01T00:00:00Z"}}"#,
            r#"{"event":{"node":"n","kind":"k","seq":0,"time":"1970-01-01T00:00:00Z"}}"#,
            r#"{"event":{"kind":"k","node":"n","seq":0,"time":"1970-01-01T00:00:00Z","zzz":1}}"#,
            r#"{"event":{"kind":"k","node":"n","policy_ids":[],"seq":0,"time":"1970-01-01T00:00:00Z"}}"#,
            r#"{"event":{"kind":"k","node":"n","reasons":["a",1],"seq":0,"time":"1970-01-01T00:00:00Z"}}"#,
            r#"{"event":{"kind":"k","node":"n\u002d","seq":0,"time":"1970-01-01T00:00:00Z"}}"#,
            r#"{"event" :{"kind":"k","node":"n","seq":0,"time":"1970-01-01T00:00:00Z"}}"#,
        ];
        for line in refused {
            assert_eq!(fast(&mut Scanner::default(), line), None, "{line}");
            assert_eq!(full(line), None, "{line}");
        }
    }

    #[test]
    fn depth() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let line = with_details(&nested(MAX_DEPTH as usize));
        assert!(fast(&mut Scanner::default(), &line).is_some());
        // Deeper values are left to the full check.
        let line = with_details(&nested(MAX_DEPTH as usize + 1));
        assert!(fast(&mut Scanner::default(), &line).is_none());
        assert!(full(&line).is_some());
        // serde_json's limit, which the full check keeps.
        assert!(full(&with_details(&nested(125))).is_some());
        assert!(full(&with_details(&nested(126))).is_none());
    }

    #[test]
    fn strings_and_names() {
        let mut scanner = Scanner::default();
        let accepted = [
            r#""a\"b\\c\b\f\n\r\t\u0000\u001f\u000b""#,
            "\"\u{7f}\u{2028}é😀/\"",
            r#"{"":1,"\u0001":2,"\n":3,"a":4,"a\"":5,"ab":6,"é":7,"😀":8,"דּ":9}"#,
            r#"{"a":{"a":{"b":[null,true,false,{}]}}}"#,
        ];
        for d in accepted {
            let line = with_details(d);
            assert!(full(&line).is_some(), "{d}");
            assert_eq!(fast(&mut scanner, &line), full(&line), "{d}");
        }
        let refused = [
            r#""\u000a""#,
            r#""\u0041""#,
            r#""\u001F""#,
            r#""\/""#,
            "\"\u{1}\"",
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":1}"#,
            r#"{"דּ":1,"😀":2}"#,
            r#"{"a":1,}"#,
            r#"[1,]"#,
            r#"[1 ]"#,
            "null",
            "nul",
            "tru",
        ];
        for d in refused {
            let line = with_details(d);
            assert_eq!(fast(&mut scanner, &line), None, "{d}");
            assert_eq!(full(&line), None, "{d}");
        }
    }

    fn arb_event() -> impl Strategy<Value = AuditEvent> {
        let text = || prop_oneof![any::<String>(), "[a-z\"\\\\\u{0}-\u{1f}é]{0,8}"];
        (
            (
                any::<u64>(),
                -62_167_219_200i64..=253_402_300_799,
                "[a-zA-Z0-9._-]{1,64}",
                text(),
            ),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(arb_json()),
            prop::option::of(arb_json()),
            prop::collection::vec(text(), 0..3),
        )
            .prop_map(
                |((seq, secs, node, kind), agent, user, resource, details, reasons)| {
                    let mut e =
                        AuditEvent::new(seq, time(secs), NodeName::new(&node).unwrap(), kind);
                    e.agent = agent;
                    e.user = user;
                    e.resource = resource;
                    e.details = details;
                    e.policy_ids = reasons.iter().rev().cloned().collect();
                    e.reasons = reasons;
                    e
                },
            )
    }

    /// A change to a line: bytes at an index replaced by one of the texts that matter to
    /// the grammar, removed, or inserted.
    fn arb_edit() -> impl Strategy<Value = (prop::sample::Index, usize, &'static str)> {
        let texts = prop::sample::select(vec![
            "",
            " ",
            "\"",
            "\\",
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "0",
            "1",
            "9",
            "-",
            "+",
            ".",
            "e",
            "E",
            "n",
            "null",
            "u",
            "\\u00",
            "\\u0041",
            "\\u001f",
            "\\n",
            "\u{1}",
            "\n",
            "é",
            "\u{10000}",
            "1.0",
            "-0",
            "\"a\":1,",
            "\"seq\":0,",
            "\"z\":",
        ]);
        (any::<prop::sample::Index>(), 0usize..3, texts)
    }

    fn edit(line: &str, edits: &[(prop::sample::Index, usize, &str)]) -> String {
        let mut bytes = line.as_bytes().to_vec();
        for (at, remove, text) in edits {
            let at = at.index(bytes.len() + 1);
            let end = (at + remove).min(bytes.len());
            bytes.splice(at..end, text.bytes());
        }
        // Lines reach the scan as UTF-8 (the reader refuses other bytes).
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Writes JSON almost canonically: at each choice a `roll` below a rate (of 256)
    /// makes one departure from the canonical form, of the kinds a hand-edited or foreign
    /// export would show.
    struct Loose {
        rolls: Vec<u8>,
        at: usize,
        out: String,
        departed: bool,
    }

    impl Loose {
        fn roll(&mut self) -> u8 {
            let r = self.rolls[self.at % self.rolls.len()];
            self.at += 1;
            r
        }

        fn depart(&mut self, rate: u8) -> bool {
            let d = self.roll() < rate;
            self.departed |= d;
            d
        }

        fn sep(&mut self, c: char) {
            self.out.push(c);
            if self.depart(4) {
                self.out.push(' ');
            }
        }

        fn value(&mut self, v: &Value) {
            match v {
                Value::Null | Value::Bool(_) => self.out.push_str(&v.to_string()),
                Value::Number(n) => self.number(n),
                Value::String(s) => self.string(s),
                Value::Array(items) => {
                    self.out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            self.sep(',');
                        }
                        self.value(item);
                    }
                    self.out.push(']');
                }
                Value::Object(m) => {
                    let mut members: Vec<(&String, &Value)> = m.iter().collect();
                    members.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
                    if members.len() >= 2 && self.depart(40) {
                        let i = usize::from(self.roll()) % (members.len() - 1);
                        members.swap(i, i + 1);
                    }
                    if !members.is_empty() && self.depart(24) {
                        let i = usize::from(self.roll()) % members.len();
                        members.insert(i, members[i]);
                    }
                    if !members.is_empty() && self.depart(24) {
                        let i = usize::from(self.roll()) % members.len();
                        members.remove(i);
                    }
                    self.out.push('{');
                    for (i, (name, value)) in members.into_iter().enumerate() {
                        if i > 0 {
                            self.sep(',');
                        }
                        self.string(name);
                        self.sep(':');
                        self.value(value);
                    }
                    self.out.push('}');
                }
            }
        }

        fn number(&mut self, n: &serde_json::Number) {
            let canon = canonical::number(n);
            if !self.depart(24) {
                self.out.push_str(&canon);
                return;
            }
            let other = match (self.roll() % 6, n.as_f64()) {
                (0, _) => format!("{canon}.0"),
                (1, _) => format!("{canon}e0"),
                (2, _) => canon.replace("e+", "e").replace('e', "E"),
                (3, _) if canon == "0" => "-0".to_owned(),
                (3, _) if canon.starts_with('-') => canon.replacen('-', "-0", 1),
                (3, _) => format!("0{canon}"),
                (4, Some(f)) => format!("{f:e}"),
                (_, Some(f)) => format!("{f}"),
                (_, None) => format!("{canon} "),
            };
            self.out.push_str(&other);
        }

        fn string(&mut self, s: &str) {
            self.out.push('"');
            for c in s.chars() {
                if !self.depart(3) {
                    let text =
                        String::from_utf8(canonical::canonical_json(&Value::String(c.into())))
                            .unwrap();
                    self.out.push_str(&text[1..text.len() - 1]);
                    continue;
                }
                match (self.roll() % 4, u32::from(c)) {
                    (0, u @ ..=0xffff) => self.out.push_str(&format!("\\u{u:04x}")),
                    (1, u @ ..=0xffff) => self.out.push_str(&format!("\\u{u:04X}")),
                    (2, _) if c == '/' => self.out.push_str("\\/"),
                    (2, 0x10000..) => {
                        let mut units = [0u16; 2];
                        for unit in c.encode_utf16(&mut units) {
                            self.out.push_str(&format!("\\u{unit:04x}"));
                        }
                    }
                    _ => self.out.push(c),
                }
            }
            self.out.push('"');
        }
    }

    /// The export line of `e`, written loosely; and whether it departs from the canonical
    /// form (a departure may happen to write the canonical text anyway).
    fn loose_line(e: &AuditEvent, extra: Option<(&str, Value)>, rolls: Vec<u8>) -> (String, bool) {
        let Value::Object(mut m) = e.to_json() else {
            panic!("an event is an object")
        };
        let departed = extra.is_some();
        if let Some((name, value)) = extra {
            m.insert(name.into(), value);
        }
        let mut w = Loose {
            rolls,
            at: 0,
            out: String::new(),
            departed,
        };
        w.out.push_str(PREFIX);
        w.value(&Value::Object(m));
        w.out.push('}');
        (w.out, w.departed)
    }

    fn arb_extra() -> impl Strategy<Value = Option<(&'static str, Value)>> {
        prop_oneof![
            8 => Just(None),
            1 => prop::sample::select(vec!["action", "user", "context", "policy_ids", "seq"])
                .prop_map(|name| Some((name, Value::Null))),
            1 => Just(Some(("reasons", json!([])))),
            1 => Just(Some(("policy_ids", json!(["a", 1])))),
            1 => Just(Some(("zzz", json!(1)))),
            1 => Just(Some(("node", json!("a b")))),
            1 => Just(Some(("seq", json!(-1)))),
            1 => Just(Some(("time", json!("2024-01-01T00:00:00.5Z")))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        // Every event line the server writes takes the fast path, with the full check's
        // seq, node and leaf.
        #[test]
        fn accepts_every_event_line(e in arb_event()) {
            let line = event_line(&e);
            let want = Some((e.seq, e.node.to_string(), e.leaf_hash()));
            prop_assert_eq!(full(&line), want.clone());
            prop_assert_eq!(fast(&mut Scanner::default(), &line), want);
        }

        // The scan and the full check agree on lines written almost canonically. (The
        // scan declines canonical lines only when nested deeper than MAX_DEPTH, which
        // these are not.)
        #[test]
        fn agrees_with_the_full_check_on_loose_lines(
            e in arb_event(),
            extra in arb_extra(),
            rolls in prop::collection::vec(any::<u8>(), 64..256),
        ) {
            let (line, departed) = loose_line(&e, extra, rolls);
            let got = fast(&mut Scanner::default(), &line);
            prop_assert_eq!(&got, &full(&line), "{}", line);
            if !departed {
                prop_assert!(got.is_some(), "{}", line);
            }
        }

        // The same, on lines with bytes replaced, removed or inserted.
        #[test]
        fn agrees_with_the_full_check_on_edited_lines(
            e in arb_event(),
            edits in prop::collection::vec(arb_edit(), 1..4),
        ) {
            let mut scanner = Scanner::default();
            let line = event_line(&e);
            prop_assert!(fast(&mut scanner, &line).is_some());
            let changed = edit(&line, &edits);
            prop_assert_eq!(fast(&mut scanner, &changed), full(&changed), "{}", changed);
        }
    }
}
