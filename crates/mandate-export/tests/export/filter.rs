//! Sink filters, table-driven from `tests/data/filters.json`:
//! `[{"filter": {kinds?, exclude_kinds?, agents?}, "takes": [[kind, agent|null]],
//! "leaves": [[kind, agent|null]]}]`, and the patterns refused.

use mandate_export::Filter;
use serde::Deserialize;

use super::event;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    filter: Filter,
    takes: Vec<(String, Option<String>)>,
    leaves: Vec<(String, Option<String>)>,
}

#[test]
fn filters_take_what_they_name() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/filters.json"),
    )
    .unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    let mut wrong = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        c.filter.check().unwrap();
        for (want, list) in [(true, &c.takes), (false, &c.leaves)] {
            for (kind, agent) in list {
                let mut e = event(kind);
                e.agent = agent.clone();
                if c.filter.takes(&e) != want {
                    wrong.push(format!("case {i}: {kind} {agent:?}: takes {}", !want));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn malformed_patterns_are_refused() {
    for p in [
        "token*", "", ".*", "token.", "*.issued", "to ken", "token.**", ".token",
    ] {
        let f = Filter {
            kinds: vec![p.to_owned()],
            ..Filter::default()
        };
        assert!(f.check().is_err(), "{p:?} accepted");
    }
    for p in ["*", "decision", "token.*", "mandate.approval_timed_out"] {
        let f = Filter {
            exclude_kinds: vec![p.to_owned()],
            ..Filter::default()
        };
        assert!(f.check().is_ok(), "{p:?} refused");
    }
}
