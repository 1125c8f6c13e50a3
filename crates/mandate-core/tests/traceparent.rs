//! The `traceparent` parser against the table in `tests/data/traceparent.json`: every
//! valid header parses to its fields and writes back as version `00`; every invalid one
//! is refused (and would start a new trace).

#![expect(
    clippy::unwrap_used,
    reason = "a missing or malformed table fails the test loudly"
)]

use mandate_core::trace::{SpanId, TraceId, TraceParent};
use serde::Deserialize;

#[derive(Deserialize)]
struct Table {
    valid: Vec<Valid>,
    invalid: Vec<Invalid>,
}

#[derive(Deserialize)]
struct Valid {
    name: String,
    header: String,
    trace_id: String,
    parent_id: String,
    flags: u8,
}

#[derive(Deserialize)]
struct Invalid {
    name: String,
    header: String,
}

fn table() -> Table {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/traceparent.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn valid_headers_parse_to_their_fields() {
    let t = table();
    assert!(t.valid.len() >= 5);
    for c in t.valid {
        let p = TraceParent::parse(&c.header)
            .unwrap_or_else(|e| panic!("{}: {:?} refused: {e}", c.name, c.header));
        assert_eq!(
            p.trace_id,
            TraceId::parse(&c.trace_id).unwrap(),
            "{}",
            c.name
        );
        assert_eq!(
            p.parent_id,
            SpanId::parse(&c.parent_id).unwrap(),
            "{}",
            c.name
        );
        assert_eq!(p.flags, c.flags, "{}", c.name);
        // Sent on as version 00 with only the defined flag: it parses back the same.
        let again = TraceParent::parse(&p.header()).unwrap();
        assert_eq!((again.trace_id, again.parent_id), (p.trace_id, p.parent_id));
        assert_eq!(again.flags, p.flags & 1, "{}", c.name);
    }
}

#[test]
fn invalid_headers_are_refused() {
    let t = table();
    assert!(t.invalid.len() >= 10);
    for c in t.invalid {
        assert!(
            TraceParent::parse(&c.header).is_err(),
            "{}: {:?} accepted",
            c.name,
            c.header
        );
    }
}
