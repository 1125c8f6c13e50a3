//! `bundle::verify_bundle` against the fixed audit key: never panics on any bytes; what it
//! accepts is canonical JSON; a bundle written the way a node writes one verifies, and
//! changing any one byte of it makes it fail.
//!
//! Input: `s!<bytes>` builds a bundle from the bytes (structured mode: the node name,
//! events with fuzzer-chosen fields, whose agent they are, where the containment falls,
//! the evidence and how many events the bundle keeps; then one byte overwritten);
//! anything else is verified as a bundle.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mandate_audit::bundle::verify_bundle;
use mandate_audit::canonical::canonical_json;
use mandate_audit::event::AuditEvent;
use mandate_core::time::Timestamp;
use mandate_fuzz::{audit_key, incident_bundle, mode, node_name};
use serde_json::{Map, Number, Value};

/// A JSON value of at most `depth` levels of nesting.
fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let pick = if depth == 0 {
        u.int_in_range(0..=5)?
    } else {
        u.int_in_range(0..=7)?
    };
    Ok(match pick {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => Value::from(u.arbitrary::<u64>()?),
        4 => Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        5 => Value::String(u.arbitrary()?),
        6 => {
            let n = u.int_in_range(0..=3)?;
            Value::Array((0..n).map(|_| value(u, depth - 1)).collect::<Result<_>>()?)
        }
        _ => Value::Object(object(u, depth - 1)?),
    })
}

fn object(u: &mut Unstructured<'_>, depth: u32) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for _ in 0..u.int_in_range(0..=4)? {
        m.insert(u.arbitrary()?, value(u, depth)?);
    }
    Ok(m)
}

fn structured(data: &[u8]) -> Result<()> {
    let key = audit_key().verifying_key();
    let mut u = Unstructured::new(data);
    let node = node_name(u.arbitrary()?);
    let mut log = Vec::new();
    for _ in 0..u.int_in_range(0..=8)? {
        let mut e = AuditEvent::new(0, Timestamp::from_secs(u.arbitrary()?), node.clone(), "");
        e.kind = u.arbitrary()?;
        e.user = u.arbitrary()?;
        e.action = u.arbitrary()?;
        e.decision = u.arbitrary()?;
        e.reasons = u.arbitrary()?;
        e.context = if u.arbitrary()? {
            Some(value(&mut u, 2)?)
        } else {
            None
        };
        e.details = if u.arbitrary()? {
            Some(value(&mut u, 2)?)
        } else {
            None
        };
        log.push((u.arbitrary::<bool>()?, e));
    }
    let at = u.int_in_range(0..=log.len())?;
    let evidence = object(&mut u, 2)?;
    let n = u.int_in_range(1..=10)?;
    let Some(bytes) = incident_bundle(&node, &log, at, &evidence, n) else {
        panic!("the fixture could not write a bundle");
    };
    let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let report = verify_bundle(&bytes, &key);
    assert!(report.is_ok(), "{report:?}: {}", show(&bytes));

    let at = u.choose_index(bytes.len())?;
    let byte: u8 = u.arbitrary()?;
    let mut mutated = bytes.clone();
    if let Some(b) = mutated.get_mut(at) {
        *b = byte;
    }
    let got = verify_bundle(&mutated, &key);
    if mutated == bytes {
        assert!(got.is_ok(), "{got:?}");
    } else {
        assert!(
            got.is_err(),
            "byte {at} set to {byte:#04x} still verifies: {}",
            show(&mutated)
        );
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    match mode(data) {
        Some((b's', rest)) => {
            let _ = structured(rest);
        }
        _ => {
            let key = audit_key().verifying_key();
            if let Ok(report) = verify_bundle(data, &key) {
                // Accepted bytes are canonical, and verify the same way again.
                let v: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
                assert_eq!(canonical_json(&v), data);
                assert_eq!(verify_bundle(data, &key), Ok(report));
            }
        }
    }
});
