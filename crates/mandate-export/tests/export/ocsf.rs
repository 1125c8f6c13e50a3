//! OCSF records, table-driven from `tests/data/ocsf_cases.json`: the class, activity and
//! key attributes of each case; every kind Mandate writes in a class with its required
//! attributes; and, for any event, the identifiers a receiver relies on.

use mandate_export::Context;
use mandate_export::ocsf::{self, Class, VERSION, activity, record};
use proptest::prelude::*;
use serde_json::Value;

use super::cases;
use super::event;

/// The attributes OCSF 1.7.0 requires of each class (and, nested, of the objects every
/// record carries), as its schema states them: the offline check of the required ones;
/// `ocsf_schema.rs` validates everything against the schema itself.
fn required(class_uid: u64) -> Vec<&'static str> {
    let mut all = vec![
        "/activity_id",
        "/category_uid",
        "/class_uid",
        "/metadata",
        "/metadata/version",
        "/metadata/product",
        "/severity_id",
        "/time",
        "/type_uid",
    ];
    all.extend_from_slice(match class_uid {
        2004 => &[
            "/finding_info",
            "/finding_info/uid",
            "/finding_info/analytic/type_id",
        ][..],
        3001 | 3002 => &["/user"],
        3004 => &["/entity"],
        3005 => &["/user", "/privileges"],
        6003 => &["/actor", "/api", "/api/operation", "/src_endpoint"],
        _ => &[],
    });
    all
}

#[test]
fn each_case_maps_to_its_class_and_attributes() {
    let cases = cases::load();
    let mut wrong = Vec::new();
    for c in &cases.cases {
        let owner = c.owner.as_deref();
        let r = record(&c.event(), &Context { owner });
        wrong.extend(cases::mismatches(&c.name, &r, &c.ocsf));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Every kind Mandate writes lands in a class other than Base Event, with every
/// attribute that class requires — with the least the event can carry (no agent, no
/// details) and with an agent.
#[test]
fn every_kind_has_a_class_and_its_required_attributes() {
    let cases = cases::load();
    assert!(cases.kinds.len() >= 39, "the list of kinds shrank");
    let mut wrong = Vec::new();
    for kind in &cases.kinds {
        let act = activity(kind);
        if act.class == Class::Base {
            wrong.push(format!("{kind}: no class"));
        }
        for agent in [None, Some("agt_01JA0000000000000000000001")] {
            let mut e = event(kind);
            e.agent = agent.map(str::to_owned);
            let r = record(&e, &Context::default());
            let uid = r["class_uid"].as_u64().unwrap();
            if uid != u64::from(act.class.uid()) {
                wrong.push(format!("{kind}: class_uid {uid}"));
            }
            for p in required(uid) {
                if r.pointer(p).is_none_or(Value::is_null) {
                    wrong.push(format!("{kind} (agent {agent:?}): {p} missing"));
                }
            }
            // A development user token's user is the human it was issued to.
            if let (Some(a), 3001 | 3002 | 3005) = (agent, uid)
                && kind != "dev.user_token_issued"
                && (r["user"]["uid"] != a || r["user"]["type"] != "AI agent")
            {
                wrong.push(format!("{kind}: the agent is not the user: {}", r["user"]));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_metadata_names_mandate_and_the_ocsf_version() {
    let r = record(&event("decision"), &Context::default());
    assert_eq!(r["metadata"]["version"], VERSION);
    assert_eq!(r["metadata"]["product"]["name"], "Mandate");
    assert_eq!(r["metadata"]["product"]["vendor_name"], "Mandate");
    assert_eq!(
        r["metadata"]["product"]["version"],
        env!("CARGO_PKG_VERSION")
    );
    // An unknown kind is kept as a base event with its kind as the activity name.
    let r = record(&event("what.ever"), &Context::default());
    assert_eq!(
        (r["class_uid"].as_u64(), r["type_uid"].as_u64()),
        (Some(0), Some(99))
    );
    assert_eq!(r["activity_name"], "what.ever");
}

#[test]
fn severity_follows_syslog() {
    for (syslog_kind, decision, want) in [
        ("decision", Some("allow"), 1),
        ("decision", Some("deny"), 2),
        ("token.refused", None, 3),
    ] {
        let mut e = event(syslog_kind);
        e.decision = decision.map(str::to_owned);
        assert_eq!(ocsf::severity(&e).0, want, "{syslog_kind} {decision:?}");
    }
}

proptest! {
    /// Whatever an event holds, its record has a class, a type_uid that is
    /// class_uid * 100 + activity_id, the event id as metadata.uid and seq as
    /// metadata.sequence, and the event's time in milliseconds.
    #[test]
    fn any_event_keeps_its_identity(
        kind in prop::sample::select(vec![
            "decision", "token.issued", "token.refused", "agent.suspended", "mandate.requested",
            "anomaly.detected", "policy.added", "gateway.result", "authzen.search", "x",
            "mandate.something_new", "",
        ]),
        other_kind in "\\PC{0,12}",
        use_other in any::<bool>(),
        seq in any::<u64>(),
        secs in -10_000_000_000_i64..300_000_000_000,
        agent in prop::option::of(any::<String>()),
        user in prop::option::of(any::<String>()),
        actor in prop::option::of(any::<String>()),
        reasons in prop::collection::vec(any::<String>(), 0..3),
        policy_ids in prop::collection::vec(any::<String>(), 0..3),
        detail_key in "[a-z_]{1,12}",
        detail_value in any::<String>(),
        owner in prop::option::of(any::<String>()),
    ) {
        let mut e = event(if use_other { other_kind.as_str() } else { kind });
        e.seq = seq;
        e.time = mandate_core::time::Timestamp::from_secs(secs);
        e.agent = agent;
        e.user = user;
        e.actor = actor;
        e.reasons = reasons;
        e.policy_ids = policy_ids;
        e.details = Some(serde_json::json!({ detail_key: detail_value, "severity": "high" }));
        let r = record(&e, &Context { owner: owner.as_deref() });
        let class_uid = r["class_uid"].as_u64().unwrap();
        let activity_id = r["activity_id"].as_u64().unwrap();
        prop_assert_eq!(u64::from(activity(&e.kind).class.uid()), class_uid);
        prop_assert_eq!(r["type_uid"].as_u64(), Some(class_uid * 100 + activity_id));
        prop_assert_eq!(r["category_uid"].as_u64(), Some(class_uid / 1000));
        let id = e.id();
        prop_assert_eq!(r["metadata"]["uid"].as_str(), Some(id.as_str()));
        prop_assert_eq!(r["metadata"]["sequence"].as_u64(), Some(seq));
        // The time as the event holds it (a Timestamp keeps to years 0 to 9999).
        prop_assert_eq!(r["time"].as_i64(), Some(e.time.secs() * 1000));
        for p in required(class_uid) {
            prop_assert!(r.pointer(p).is_some(), "{} missing in {}", p, r);
        }
    }
}
