//! The least-privilege suggestion: worked examples, and the properties for random
//! boundaries and logs — every recorded allow is still allowed (by the engine's own
//! `grants_allow`), and the suggestion is never wider than the boundary (`scope_within`).

use mandate_audit::event::{AuditEvent, NodeName};
use mandate_core::agent::{Boundary, Grant};
use mandate_core::mandate::{grant_within, grants_allow, scope_within};
use mandate_core::time::Timestamp;
use mandate_govern::suggest::{GrantFate, MAX_LITERALS, Usage, Use, UsedClass, suggest};
use proptest::prelude::*;
use serde_json::json;

fn grant(actions: &[&str], resources: &[&str], dcs: &[&str]) -> Grant {
    let v = |xs: &[&str]| xs.iter().map(|x| (*x).to_owned()).collect();
    Grant {
        actions: v(actions),
        resources: v(resources),
        data_classes: v(dcs),
    }
}

fn used(action: &str, resource: &str, dc: UsedClass) -> Use {
    Use {
        action: action.into(),
        resource: resource.into(),
        data_class: dc,
    }
}

#[test]
fn a_wide_grant_narrows_to_what_was_used_and_an_unused_one_goes() {
    let grants = [
        grant(&["crm:*"], &["Crm::Contact/*"], &["pii", "public"]),
        grant(&["mail:send"], &["Mail::Box/*"], &[]),
    ];
    let usage: Usage = [
        used(
            "crm:read",
            "Crm::Contact/c1",
            UsedClass::Named("pii".into()),
        ),
        used(
            "crm:read",
            "Crm::Contact/c1",
            UsedClass::Named("pii".into()),
        ),
        used("crm:list", "Crm::Contact/c2", UsedClass::None),
    ]
    .into_iter()
    .collect();
    let s = suggest(&grants, &usage);
    assert_eq!(
        s.suggested,
        [grant(
            &["crm:list", "crm:read"],
            &["Crm::Contact/c1", "Crm::Contact/c2"],
            &["pii"]
        )]
    );
    assert_eq!(s.grants[0].allows, 3);
    assert_eq!(s.grants[0].fate, GrantFate::Kept);
    assert_eq!(s.grants[1].fate, GrantFate::Unused);
    assert_eq!(s.uncovered, 0);
    assert!(!s.is_unchanged());
}

#[test]
fn many_ids_of_one_type_narrow_to_their_common_prefix() {
    let grants = [grant(&["crm:read"], &["Crm::*"], &[])];
    let usage: Usage = (0..=MAX_LITERALS)
        .map(|i| {
            used(
                "crm:read",
                &format!("Crm::Contact/c-{i:04}"),
                UsedClass::None,
            )
        })
        .chain([used("crm:read", "Crm::Note/n1", UsedClass::None)])
        .collect();
    let s = suggest(&grants, &usage);
    assert_eq!(
        s.suggested,
        [grant(
            &["crm:read"],
            &["Crm::Contact/c-00*", "Crm::Note/n1"],
            &[]
        )]
    );
    // A prefix not inside the original pattern keeps the pattern.
    let grants = [grant(&["crm:read"], &["Crm::Contact/c-*1"], &[])];
    let usage: Usage = (0..=MAX_LITERALS)
        .map(|i| {
            used(
                "crm:read",
                &format!("Crm::Contact/c-{i:04}1"),
                UsedClass::None,
            )
        })
        .collect();
    assert_eq!(suggest(&grants, &usage).suggested, grants);
}

#[test]
fn redacted_data_class_keeps_every_grant_that_could_have_allowed_it() {
    // Regression: giving a redacted allow to the first candidate only dropped the grant
    // that really allowed it (`public`), so applying the suggestion denied it.
    let grants = [
        grant(&["crm:read"], &["Crm::Contact/*"], &["pii"]),
        grant(&["crm:read"], &["Crm::Contact/*"], &["public"]),
    ];
    let usage: Usage = [used("crm:read", "Crm::Contact/c1", UsedClass::Redacted)]
        .into_iter()
        .collect();
    let s = suggest(&grants, &usage);
    assert!(grants_allow(
        &s.suggested,
        "crm:read",
        "Crm::Contact/c1",
        Some("public")
    ));
    assert!(grants_allow(
        &s.suggested,
        "crm:read",
        "Crm::Contact/c1",
        Some("pii")
    ));
    assert_eq!(s.suggested.len(), 2);
}

#[test]
fn an_allow_the_boundary_no_longer_covers_is_counted_not_granted() {
    let grants = [grant(&["crm:read"], &["Crm::Contact/*"], &[])];
    let usage: Usage = [
        used("crm:delete", "Crm::Contact/c1", UsedClass::None),
        used("crm:read", "Crm::Contact/c1", UsedClass::None),
    ]
    .into_iter()
    .collect();
    let s = suggest(&grants, &usage);
    assert_eq!(s.uncovered, 1);
    assert!(!grants_allow(
        &s.suggested,
        "crm:delete",
        "Crm::Contact/c1",
        None
    ));
}

#[test]
fn apply_keeps_the_rest_of_the_boundary_and_validates() {
    let b: Boundary = serde_json::from_value(json!({
        "grants": [{"actions": ["crm:*"], "resources": ["Crm::Contact/*"]},
                   {"actions": ["x"], "resources": ["y"]}],
        "max_token_lifetime_secs": 600,
        "audiences": ["https://api.example.com/*"]
    }))
    .unwrap();
    let usage: Usage = [used("crm:read", "Crm::Contact/c1", UsedClass::None)]
        .into_iter()
        .collect();
    let s = suggest(&b.grants, &usage);
    let applied = s.apply(&b);
    assert_eq!(
        applied.grants,
        [grant(&["crm:read"], &["Crm::Contact/c1"], &[])]
    );
    assert_eq!(applied.max_token_lifetime_secs, Some(600));
    assert_eq!(applied.audiences, b.audiences);
    // With every allow gone the suggestion is no grant at all: a boundary that allows
    // nothing, which is what the window showed the agent needs.
    assert!(
        suggest(&b.grants, &Usage::default())
            .apply(&b)
            .grants
            .is_empty()
    );
}

#[test]
fn uses_are_read_from_decision_events() {
    let node = NodeName::new("n1").unwrap();
    let mut e = AuditEvent::new(0, Timestamp::from_secs(1), node, "decision");
    e.agent = Some("agt_01J00000000000000000000001".into());
    e.action = Some("crm:read".into());
    e.resource = Some(json!({"type": "Crm::Contact", "id": "c1"}));
    e.context = Some(json!({"data_class": "pii"}));
    e.decision = Some("allow".into());
    e.details = Some(json!({"chain": ["agt_01J00000000000000000000002"]}));
    let (agents, u) = Use::from_event(&e).unwrap();
    assert_eq!(
        agents,
        [
            "agt_01J00000000000000000000001",
            "agt_01J00000000000000000000002"
        ]
    );
    assert_eq!(
        u,
        used(
            "crm:read",
            "Crm::Contact/c1",
            UsedClass::Named("pii".into())
        )
    );
    for redacted in [json!("[dropped]"), json!("hmac-sha256:00ff")] {
        e.context = Some(json!({"data_class": redacted}));
        assert_eq!(
            Use::from_event(&e).unwrap().1.data_class,
            UsedClass::Redacted
        );
    }
    e.context = Some(json!({}));
    assert_eq!(Use::from_event(&e).unwrap().1.data_class, UsedClass::None);
    e.decision = Some("deny".into());
    assert_eq!(Use::from_event(&e), None);
    e.decision = Some("allow".into());
    e.kind = "token.issued".into();
    assert_eq!(Use::from_event(&e), None);
}

/// A pattern over a tiny alphabet, so that patterns and values collide often.
fn pattern(alphabet: &'static str) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[{alphabet}*]{{1,4}}")).unwrap()
}

fn value(alphabet: &'static str) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[{alphabet}]{{1,4}}")).unwrap()
}

fn grant_strategy() -> impl Strategy<Value = Grant> {
    (
        proptest::collection::vec(pattern("ab:"), 1..3),
        proptest::collection::vec(pattern("TU/xy"), 1..3),
        proptest::collection::vec(pattern("pq"), 0..3),
    )
        .prop_map(|(actions, resources, data_classes)| Grant {
            actions,
            resources,
            data_classes,
        })
}

/// A request: action, resource, real data class, and whether the log redacted it.
fn request() -> impl Strategy<Value = (String, String, Option<String>, bool)> {
    (
        value("ab:*"),
        (value("TU"), value("xy*")).prop_map(|(t, id)| format!("{t}/{id}")),
        proptest::option::of(value("pq")),
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_suggestion_allows_every_recorded_allow_and_is_never_wider(
        grants in proptest::collection::vec(grant_strategy(), 0..5),
        requests in proptest::collection::vec(request(), 0..80),
        probes in proptest::collection::vec(request(), 0..40),
    ) {
        // The window: the requests the boundary allowed, as the log records them.
        let allowed: Vec<_> = requests
            .into_iter()
            .filter(|(a, r, dc, _)| grants_allow(&grants, a, r, dc.as_deref()))
            .collect();
        let usage: Usage = allowed
            .iter()
            .map(|(a, r, dc, redacted)| {
                let data_class = match (dc, redacted) {
                    (None, _) => UsedClass::None,
                    (Some(_), true) => UsedClass::Redacted,
                    (Some(d), false) => UsedClass::Named(d.clone()),
                };
                used(a, r, data_class)
            })
            .collect();
        let s = suggest(&grants, &usage);

        // Applying it changes none of the recorded allows (the real data class, even
        // where the log redacted it).
        for (a, r, dc, _) in &allowed {
            prop_assert!(
                grants_allow(&s.suggested, a, r, dc.as_deref()),
                "{a} {r} {dc:?} no longer allowed by {:?}", s.suggested
            );
        }
        // Never wider: each kept grant within its original, so the whole within the
        // boundary.
        prop_assert!(scope_within(&s.suggested, &grants));
        for g in &s.grants {
            if let Some(n) = &g.narrowed {
                prop_assert!(grant_within(n, &g.grant), "{n:?} outside {:?}", g.grant);
            }
            // An unused grant covers none of the window's allows.
            if g.fate == GrantFate::Unused {
                prop_assert!(usage.iter().all(|(u, _)| !u.covered_by(std::slice::from_ref(&g.grant))));
            }
        }
        // Never wider, as requests see it: whatever the suggestion allows, the boundary
        // allows.
        for (a, r, dc, _) in &probes {
            prop_assert!(
                !grants_allow(&s.suggested, a, r, dc.as_deref())
                    || grants_allow(&grants, a, r, dc.as_deref()),
                "{a} {r} {dc:?} allowed by the suggestion only"
            );
        }
        prop_assert_eq!(s.uncovered, 0);
        prop_assert!(s.suggested.len() <= grants.len());
        // And it is a boundary Mandate accepts.
        let b = Boundary { grants: grants.clone(), ..Boundary::default() };
        prop_assert_eq!(s.apply(&b).grants, s.suggested.clone());
    }
}
