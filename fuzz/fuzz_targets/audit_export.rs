//! `verify::verify_export` against the fixed audit key: never panics on any bytes; an
//! export written the way a node writes one verifies, to exactly the report its writer
//! expects; and changing any one byte of one of its event lines makes it fail.
//!
//! Input: `s!<bytes>` builds an export from the bytes (structured mode: the node name,
//! events with fuzzer-chosen fields and JSON values, checkpoints after fuzzer-chosen
//! events, then one byte of one event line overwritten); anything else is verified as
//! an export.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mandate_audit::checkpoint::Checkpoint;
use mandate_audit::event::AuditEvent;
use mandate_audit::verify::{verify_export, verify_export_against};
use mandate_core::time::Timestamp;
use mandate_fuzz::{ExportBuilder, audit_key, mode, node_name};
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
            let n = u.int_in_range(0..=4)?;
            Value::Array((0..n).map(|_| value(u, depth - 1)).collect::<Result<_>>()?)
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let mut m = Map::new();
            for _ in 0..n {
                m.insert(u.arbitrary()?, value(u, depth - 1)?);
            }
            Value::Object(m)
        }
    })
}

fn opt_value(u: &mut Unstructured<'_>) -> Result<Option<Value>> {
    Ok(if u.arbitrary()? {
        Some(value(u, 3)?)
    } else {
        None
    })
}

/// An event with fuzzer-chosen fields (`seq` and `node` are set by the builder).
fn event(u: &mut Unstructured<'_>, template: &AuditEvent) -> Result<AuditEvent> {
    let mut e = template.clone();
    e.time = Timestamp::from_secs(u.arbitrary()?);
    e.kind = u.arbitrary()?;
    e.request_id = u.arbitrary()?;
    e.agent = u.arbitrary()?;
    e.user = u.arbitrary()?;
    e.actor = u.arbitrary()?;
    e.action = u.arbitrary()?;
    e.resource = opt_value(u)?;
    e.context = opt_value(u)?;
    e.decision = u.arbitrary()?;
    e.policy_ids = u.arbitrary()?;
    e.reasons = u.arbitrary()?;
    e.details = opt_value(u)?;
    Ok(e)
}

fn structured(data: &[u8]) -> Result<()> {
    let key = audit_key().verifying_key();
    let mut u = Unstructured::new(data);
    let node = node_name(u.arbitrary()?);
    let template = AuditEvent::new(0, Timestamp::from_secs(0), node.clone(), "");
    let mut export = ExportBuilder::new(node);
    if u.ratio(1, 4)? {
        export.checkpoint(u.arbitrary::<u16>()?.into());
    }
    for _ in 0..u.int_in_range(0..=8)? {
        export.event(event(&mut u, &template)?);
        if u.ratio(1, 3)? {
            export.checkpoint(u.arbitrary::<u16>()?.into());
        }
    }
    export.seal();

    let bytes = export.bytes();
    let want = export.report();
    let show = || String::from_utf8_lossy(&bytes).into_owned();
    assert_eq!(
        verify_export(&bytes[..], &key),
        Ok(want.clone()),
        "{}",
        show()
    );
    // One more check, fuzzer's choice (verifying is the slow part of a run).
    if u.arbitrary()? {
        // The last `\n` is optional.
        let trimmed = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        assert_eq!(verify_export(trimmed, &key), Ok(want), "{}", show());
    } else {
        // Every checkpoint it holds is consistent with it.
        assert_eq!(
            verify_export_against(&bytes[..], &key, &export.checkpoints),
            Ok(want),
            "{}",
            show()
        );
    }

    // Overwrite one byte of one event line.
    if export.event_lines.is_empty() {
        return Ok(());
    }
    let pick = u.choose_index(export.event_lines.len())?;
    let line = export.event_lines.get(pick).copied().unwrap_or_default();
    let before = export.lines.iter().take(line);
    let start: usize = before.map(|l| l.len() + 1).sum();
    let len = export.lines.get(line).map_or(1, String::len);
    let at = u.choose_index(len)?;
    let byte: u8 = u.arbitrary()?;
    let mut mutated = bytes.clone();
    if let Some(b) = mutated.get_mut(start + at) {
        *b = byte;
    }
    let got = verify_export(&mutated[..], &key);
    if mutated == bytes {
        assert!(got.is_ok(), "{got:?}");
    } else {
        assert!(
            got.is_err(),
            "line {} byte {at} set to {byte:#04x} still verifies: {}",
            line + 1,
            String::from_utf8_lossy(&mutated)
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
            if let Ok(report) = verify_export(data, &key) {
                // What the report says is a checkpoint the export is consistent with.
                let last = Checkpoint {
                    node: report.node.clone(),
                    size: report.events,
                    root: report.root,
                    time: report.time,
                };
                assert_eq!(
                    verify_export_against(data, &key, &[last]),
                    Ok(report),
                    "{}",
                    String::from_utf8_lossy(data)
                );
            }
        }
    }
});
