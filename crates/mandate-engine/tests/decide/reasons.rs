//! The reason codes: each round-trips through serde and `from_code`, and the list is
//! the one docs/openapi.yaml documents (`DecisionReason`: its table and its enum).

use std::collections::BTreeSet;

use mandate_engine::decide::{Reason, Verdict};

/// `(code, decision)` for each row of the `DecisionReason` table, in order, and the
/// codes of its `enum`.
fn documented() -> (Vec<(String, String)>, BTreeSet<String>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("docs/openapi.yaml");
    let start = text
        .find("\n    DecisionReason:\n")
        .expect("a DecisionReason schema");
    // The schema ends at the next line indented as little as its name.
    let body: Vec<&str> = text[start + 1..]
        .lines()
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("     "))
        .collect();
    let mut rows = Vec::new();
    let mut codes = BTreeSet::new();
    let mut in_enum = false;
    for l in body {
        let t = l.trim();
        if let Some(row) = t.strip_prefix("| `") {
            let mut cells = row.split('|').map(str::trim);
            let code = cells.next().unwrap_or_default().trim_end_matches('`');
            let decision = cells.next().unwrap_or_default();
            rows.push((code.to_owned(), decision.to_owned()));
        } else if t == "enum:" {
            in_enum = true;
        } else if in_enum && let Some(code) = t.strip_prefix("- ") {
            codes.insert(code.to_owned());
        }
    }
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
