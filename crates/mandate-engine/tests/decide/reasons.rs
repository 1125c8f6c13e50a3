//! The reason codes: each round-trips through serde and `from_code`, and the list is
//! the one docs/openapi.json documents (`DecisionReason`: its table and its enum).

use std::collections::BTreeSet;

use mandate_engine::decide::{Reason, Verdict};

/// `(code, decision)` for each row of the `DecisionReason` table, in order, and the
/// codes of its `enum`.
fn documented() -> (Vec<(String, String)>, BTreeSet<String>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let text = std::fs::read_to_string(path).expect("docs/openapi.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("the spec is JSON");
    let schema = doc
        .pointer("/components/schemas/DecisionReason")
        .expect("a DecisionReason schema");
    let description = schema["description"]
        .as_str()
        .expect("a DecisionReason schema with a description");
    let mut rows = Vec::new();
    for l in description.lines() {
        if let Some(row) = l.trim().strip_prefix("| `") {
            let mut cells = row.split('|').map(str::trim);
            let code = cells.next().unwrap_or_default().trim_end_matches('`');
            let decision = cells.next().unwrap_or_default();
            rows.push((code.to_owned(), decision.to_owned()));
        }
    }
    let codes = schema["enum"]
        .as_array()
        .expect("DecisionReason has an enum")
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    (rows, codes)
}

#[test]
fn every_code_round_trips() {
    for r in Reason::ALL {
        let json = serde_json::to_value(r).unwrap();
        assert_eq!(
            json,
            serde_json::json!(r.code()),
            "{r:?} serialises as its code"
        );
        assert_eq!(serde_json::from_value::<Reason>(json).unwrap(), r);
        assert_eq!(Reason::from_code(r.code()), Some(r));
        assert_eq!(r.to_string(), r.code());
    }
    let distinct: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(distinct.len(), Reason::ALL.len(), "codes are distinct");
    assert_eq!(Reason::from_code("allow"), None);
}

#[test]
fn the_codes_are_those_of_the_openapi_table() {
    let (rows, enum_codes) = documented();
    let ours: Vec<(String, String)> = Reason::ALL
        .iter()
        .map(|r| (r.code().to_owned(), r.verdict().code().to_owned()))
        .collect();
    assert_eq!(
        rows, ours,
        "the DecisionReason table, in gate order, with its decision"
    );
    let ours: BTreeSet<String> = Reason::ALL.iter().map(|r| r.code().to_owned()).collect();
    assert_eq!(enum_codes, ours, "the DecisionReason enum");
}

#[test]
fn only_allowed_by_policy_allows() {
    for r in Reason::ALL {
        let want = match r {
            Reason::AllowedByPolicy => Verdict::Allow,
            Reason::ApprovalRequired | Reason::StepUpRequired => Verdict::ApprovalRequired,
            _ => Verdict::Deny,
        };
        assert_eq!(r.verdict(), want, "{r:?}");
        let d = mandate_engine::decide::Decision::new(r);
        assert_eq!((d.verdict(), d.reason()), (want, r));
        assert_eq!(d.reasons(), vec![r.code().to_owned()]);
    }
}
