//! The OCSF and ECS cases of `tests/data/ocsf_cases.json`, shared by `ocsf.rs`, `ecs.rs`
//! and `ocsf_schema.rs`.

use std::collections::BTreeMap;

use mandate_audit::event::AuditEvent;
use serde::Deserialize;
use serde_json::Value;

/// The whole file.
#[derive(Deserialize)]
pub struct Cases {
    #[serde(rename = "_comment")]
    _comment: Vec<String>,
    /// Every kind Mandate writes.
    pub kinds: Vec<String>,
    pub cases: Vec<Case>,
}

/// One event and what its records must hold.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// The event, with `seq`, `time` and `node` defaulted (see [`Case::event`]).
    event: serde_json::Map<String, Value>,
    /// The agent's owner, as export's context would know it.
    pub owner: Option<String>,
    /// JSON pointer into the OCSF record → the value there.
    pub ocsf: BTreeMap<String, Value>,
    /// JSON pointer into the ECS document → the value there.
    pub ecs: BTreeMap<String, Value>,
}

impl Case {
    /// The event: seq 7 at 2026-12-07T10:00:00Z on node `n1` unless the case says.
    pub fn event(&self) -> AuditEvent {
        let mut e = self.event.clone();
        e.entry("seq").or_insert(7.into());
        e.entry("time").or_insert("2026-12-07T10:00:00Z".into());
        e.entry("node").or_insert("n1".into());
        serde_json::from_value(Value::Object(e))
            .unwrap_or_else(|err| panic!("case {:?}: not an event: {err}", self.name))
    }
}

pub fn load() -> Cases {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ocsf_cases.json");
    let text = std::fs::read_to_string(path).expect("tests/data/ocsf_cases.json");
    serde_json::from_str(&text).expect("tests/data/ocsf_cases.json is not the cases' shape")
}

/// Where `record` differs from `expected` (pointer → value), one line each. A string
/// holding JSON compares as the JSON it holds when the expected value is not a string.
pub fn mismatches(name: &str, record: &Value, expected: &BTreeMap<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (pointer, want) in expected {
        let got = record.pointer(pointer);
        let same = match (got, want) {
            (Some(Value::String(text)), w) if !w.is_string() => {
                serde_json::from_str::<Value>(text).ok().as_ref() == Some(w)
            }
            (Some(g), w) => g == w,
            (None, _) => false,
        };
        if !same {
            out.push(format!("{name}: {pointer}: want {want}, got {got:?}"));
        }
    }
    out
}
