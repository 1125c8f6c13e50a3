//! ECS documents, table-driven from `tests/data/ocsf_cases.json`, and every kind's
//! categorization checked against ECS's allowed values.

use mandate_export::Context;
use mandate_export::ecs::{categorization, document};
use serde_json::Value;

use super::cases;
use super::event;

/// ECS 8.x `event.category` values and the `event.type` values each expects (the ECS
/// categorization reference); `event.kind` values.
const CATEGORY_TYPES: &[(&str, &[&str])] = &[
    (
        "api",
        &[
            "access", "admin", "allowed", "change", "creation", "deletion", "denied", "end",
            "info", "start", "user",
        ],
    ),
    ("authentication", &["start", "end", "info"]),
    (
        "configuration",
        &["access", "change", "creation", "deletion", "info"],
    ),
    (
        "iam",
        &[
            "admin", "change", "creation", "deletion", "group", "info", "user",
        ],
    ),
    ("host", &["access", "change", "end", "info", "start"]),
    ("intrusion_detection", &["allowed", "denied", "info"]),
];
const KINDS: &[&str] = &[
    "alert",
    "asset",
    "enrichment",
    "event",
    "metric",
    "state",
    "pipeline_error",
    "signal",
];

#[test]
fn each_case_has_its_fields() {
    let cases = cases::load();
    let mut wrong = Vec::new();
    for c in &cases.cases {
        let e = c.event();
        let d = document(
            &e,
            &Context {
                owner: c.owner.as_deref(),
            },
        );
        wrong.extend(cases::mismatches(&c.name, &d, &c.ecs));
        // What every document has.
        for (p, want) in [
            ("/event/id", Value::from(e.id())),
            ("/event/action", Value::from(e.kind.as_str())),
            ("/event/sequence", Value::from(e.seq)),
            ("/observer/hostname", Value::from(e.node.as_str())),
            ("/observer/product", Value::from("Mandate")),
            ("/@timestamp", Value::from(e.time.to_string())),
        ] {
            if d.pointer(p) != Some(&want) {
                wrong.push(format!(
                    "{}: {p}: want {want}, got {:?}",
                    c.name,
                    d.pointer(p)
                ));
            }
        }
        let outcome = d["event"]["outcome"].as_str().unwrap_or("");
        if !["success", "failure", "unknown"].contains(&outcome) {
            wrong.push(format!("{}: event.outcome {outcome:?}", c.name));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Every kind Mandate writes has a category, and only ECS's allowed values, each type
/// one its categories expect.
#[test]
fn every_kind_is_categorized_with_allowed_values() {
    let cases = cases::load();
    let mut wrong = Vec::new();
    for kind in &cases.kinds {
        for decision in [None, Some("allow"), Some("deny")] {
            let (k, categories, types) = categorization(kind, decision);
            if !KINDS.contains(&k) {
                wrong.push(format!("{kind}: event.kind {k}"));
            }
            if categories.is_empty() || types.is_empty() {
                wrong.push(format!("{kind}: no category or type"));
            }
            for c in categories {
                match CATEGORY_TYPES.iter().find(|(name, _)| name == c) {
                    None => wrong.push(format!("{kind}: category {c}")),
                    Some((_, expected)) => {
                        for t in types {
                            if !expected.contains(t) {
                                wrong.push(format!("{kind}: type {t} in category {c}"));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// `mandate.details` is JSON text, so one index maps it whatever the kind: the same
/// member as a number in one kind and a string in another must not reach the index as
/// a field of two types.
#[test]
fn details_are_text_whatever_their_shape() {
    let mut a = event("policy.activated");
    a.details = Some(serde_json::json!({"previous": 3}));
    let mut b = event("credential.rotated");
    b.details = Some(serde_json::json!({"previous": "crd_1"}));
    for e in [a, b] {
        let d = document(&e, &Context::default());
        assert!(d["mandate"]["details"].is_string(), "{d}");
    }
}
