//! RFC 5424 messages: the header fields, severities, octet counting, and (for any
//! event) an ASCII message whose MSG parses back to the record.

use mandate_export::syslog::{Facility, message, octet_counted, severity};
use mandate_export::{Context, Format, ascii_json, record};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::event;

#[test]
fn a_denied_decision_is_a_notice_with_its_kind_as_msgid() {
    let mut e = event("decision");
    e.decision = Some("deny".into());
    let msg = ascii_json(&record(Format::Jsonl, &e, &Context::default()));
    let m = message(&e, Facility::Authpriv, &msg);
    // authpriv (10) * 8 + notice (5) = 85.
    assert_eq!(
        m,
        format!("<85>1 2026-12-07T10:00:00Z n1 mandate - decision - {msg}")
    );
    assert_eq!(octet_counted(&m), format!("{} {m}", m.len()));
}

#[test]
fn severities_follow_the_event() {
    let cases: &[(&str, Option<&str>, Option<Value>, u8)] = &[
        ("decision", Some("allow"), None, 6),
        ("decision", Some("deny"), None, 5),
        ("opa.decision", Some("deny"), None, 5),
        ("token.issued", None, None, 6),
        ("token.refused", None, None, 4),
        ("agent.suspended", None, None, 4),
        ("agent.decommissioned", None, None, 4),
        ("mandate.revoked", None, None, 4),
        (
            "anomaly.detected",
            None,
            Some(json!({"severity": "critical"})),
            2,
        ),
        (
            "anomaly.detected",
            None,
            Some(json!({"severity": "high"})),
            3,
        ),
        (
            "anomaly.detected",
            None,
            Some(json!({"severity": "medium"})),
            4,
        ),
        (
            "anomaly.detected",
            None,
            Some(json!({"severity": "low"})),
            5,
        ),
        ("policy.activated", None, None, 6),
    ];
    for (kind, decision, details, want) in cases {
        let mut e = event(kind);
        e.decision = decision.map(str::to_owned);
        e.details = details.clone();
        assert_eq!(severity(&e), *want, "{kind} {decision:?} {details:?}");
    }
}

#[test]
fn a_kind_longer_than_32_characters_is_no_msgid() {
    let e = event("mandate.approval_timed_out.and_then_some_more");
    let m = message(&e, Facility::Local3, "{}");
    assert!(
        m.starts_with("<158>1 2026-12-07T10:00:00Z n1 mandate - - - {}"),
        "{m}"
    );
}

proptest! {
    /// Whatever the event holds (any Unicode, quotes, newlines), the message is ASCII,
    /// its header has the seven RFC 5424 fields, and its MSG is JSON that reads back as
    /// the record.
    #[test]
    fn any_event_makes_an_ascii_message_whose_msg_is_the_record(
        agent in "\\PC{0,20}",
        user in any::<String>(),
        reason in any::<String>(),
        format in prop::sample::select(vec![Format::Jsonl, Format::Ocsf, Format::Ecs]),
    ) {
        let mut e = event("decision");
        e.agent = Some(agent);
        e.user = Some(user);
        e.reasons = vec![reason];
        e.decision = Some("deny".into());
        let rec = record(format, &e, &Context { owner: Some("ops@example.com") });
        let m = message(&e, Facility::Authpriv, &ascii_json(&rec));
        prop_assert!(m.is_ascii());
        prop_assert!(!m.contains('\n'));
        let fields: Vec<&str> = m.splitn(8, ' ').collect();
        prop_assert_eq!(fields.len(), 8);
        prop_assert_eq!(fields[0], "<85>1");
        prop_assert_eq!(fields[6], "-");
        let back: Value = serde_json::from_str(fields[7]).unwrap();
        prop_assert_eq!(back, rec);
    }
}
