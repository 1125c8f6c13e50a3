//! The baseline's rules, one at a time, and properties over arbitrary traffic: nothing
//! is raised while learning, a stored baseline comes back the same, a step-up hold
//! holds until a human lifts it, and a dismissal teaches.

#![expect(clippy::indexing_slicing, reason = "tests fail loudly")]

use mandate_core::time::Timestamp;
use mandate_detect::{Baseline, DetectConfig, Detector, Kind, Request, Response, Severity};
use proptest::prelude::*;

const T0: i64 = 1_767_571_200;

/// Learns for an hour; hours of the day are not judged (see `off_hours_…`).
fn cfg() -> DetectConfig {
    DetectConfig {
        learning_secs: 3600,
        learning_min_events: 20,
        usual_hour_share: 0.0,
        ..DetectConfig::default()
    }
}

fn req<'a>(action: &'a str, resource_type: &'a str, at: i64) -> Request<'a> {
    Request {
        action,
        resource_type,
        data_class: None,
        chain: &[],
        at: Timestamp::from_secs(at),
    }
}

/// A baseline that learned `crm:read` on `Crm::Contact` once a minute for two hours.
fn learned() -> (Baseline, i64) {
    let mut b = Baseline::new();
    let c = cfg();
    let mut t = T0 + 9 * 3600;
    for _ in 0..120 {
        let a = b.assess(&c, &req("crm:read", "Crm::Contact", t));
        assert!(a.findings.is_empty());
        b.outcome(&c, Timestamp::from_secs(t), false);
        t += 60;
    }
    (b, t)
}

#[test]
fn a_new_resource_type_is_held_until_acknowledged() {
    let (mut b, t) = learned();
    let c = cfg();
    let a = b.assess(&c, &req("crm:read", "Billing::Refund", t));
    assert_eq!(a.findings.len(), 1);
    let f = &a.findings[0];
    assert_eq!(f.kind, Kind::NewResourceType);
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.response, Response::StepUp);
    assert_eq!(
        f.explanation,
        "first access to resource type `Billing::Refund` in 0 days of history"
    );
    assert!(a.risk.step_up, "the finding request itself is held");
    assert_eq!(a.risk.anomalies, vec!["new_resource_type".to_owned()]);
    // Not raised again, still held; other resource types are untouched.
    let again = b.assess(&c, &req("crm:read", "Billing::Refund", t + 1));
    assert!(again.findings.is_empty());
    assert!(again.risk.step_up);
    let other = b.assess(&c, &req("crm:read", "Crm::Contact", t + 2));
    assert!(!other.risk.step_up);
    assert_eq!(other.risk.score, 0);
    // Held past the cooldown: holds never lapse on their own.
    let late = b.assess(
        &c,
        &req("crm:read", "Billing::Refund", t + 2 * c.cooldown_secs),
    );
    assert!(late.risk.step_up);
    b.resolve(&f.key, f.kind, 0.0, false, t + 3);
    let after = b.assess(
        &c,
        &req("crm:read", "Billing::Refund", t + 2 * c.cooldown_secs + 1),
    );
    assert!(after.findings.is_empty(), "acknowledged: learned");
    assert!(!after.risk.step_up);
}

#[test]
fn off_hours_activity_is_found_once_per_hour_and_a_dismissal_makes_the_hour_usual() {
    let c = DetectConfig {
        usual_hour_share: 0.005,
        ..cfg()
    };
    let mut b = Baseline::new();
    // Two days of 09:00-11:00 work.
    for day in 0..2 {
        for m in 0..120 {
            b.assess(
                &c,
                &req(
                    "crm:read",
                    "Crm::Contact",
                    T0 + day * 86_400 + 9 * 3600 + m * 60,
                ),
            );
        }
    }
    let night = T0 + 2 * 86_400 + 3 * 3600;
    let a = b.assess(&c, &req("crm:read", "Crm::Contact", night));
    assert_eq!(a.findings.len(), 1);
    let f = &a.findings[0];
    assert_eq!(f.kind, Kind::OffHours);
    assert_eq!(f.severity, Severity::Medium);
    assert_eq!(
        f.explanation,
        "activity at 03:00 UTC, an hour that held 0.0% of its 240 requests in 1 day of history"
    );
    assert!(
        b.assess(&c, &req("crm:read", "Crm::Contact", night + 60))
            .findings
            .is_empty()
    );
    b.resolve(&f.key, f.kind, 0.0, true, night + 120);
    let next_night = night + 86_400;
    assert!(
        b.assess(&c, &req("crm:read", "Crm::Contact", next_night))
            .findings
            .is_empty()
    );
    // Another hour is still unusual.
    let other = b.assess(&c, &req("crm:read", "Crm::Contact", next_night + 3600));
    assert_eq!(other.findings.len(), 1);
}

#[test]
fn an_unheld_novelty_is_learned_when_its_cooldown_passes() {
    let (mut b, t) = learned();
    let c = cfg();
    let a = b.assess(&c, &req("crm:export", "Crm::Contact", t));
    assert_eq!(a.findings[0].kind, Kind::NewAction);
    assert_eq!(a.findings[0].response, Response::Alert);
    assert!(!a.risk.step_up);
    assert_eq!(a.risk.score, 50);
    let later = b.assess(&c, &req("crm:export", "Crm::Contact", t + c.cooldown_secs));
    assert!(later.findings.is_empty());
    assert_eq!(later.risk.score, 0, "learned after the cooldown");
}

#[test]
fn a_dismissed_rate_spike_teaches_the_rate() {
    let (mut b, t) = learned();
    let c = cfg();
    // Thirty buckets were needed before rates are judged: learned() made 120.
    let mut spike = None;
    for i in 0..200 {
        let a = b.assess(&c, &req("crm:read", "Crm::Contact", t + 60 + i / 10));
        if let Some(f) = a.findings.into_iter().find(|f| f.kind == Kind::RateSpike) {
            spike = Some((i, f));
            break;
        }
    }
    let (at, f) = spike.expect("a spike");
    assert_eq!(
        at, 10,
        "one a minute usually, so the 11th (over the floor of 10) trips"
    );
    b.resolve(&f.key, f.kind, 150.0, true, t + 120);
    // The same rate next hour is no longer a spike.
    let next = t + 3600;
    for i in 0..150 {
        let a = b.assess(&c, &req("crm:read", "Crm::Contact", next + i / 10));
        assert!(a.findings.is_empty(), "taught: {:?}", a.findings);
    }
}

#[test]
fn a_spike_that_grows_is_raised_again_at_the_higher_severity() {
    let (mut b, t) = learned();
    let c = cfg();
    let mut severities = Vec::new();
    for i in 0..60 {
        let a = b.assess(&c, &req("crm:read", "Crm::Contact", t + 60 + i / 10));
        severities.extend(a.findings.iter().map(|f| f.severity));
    }
    assert!(severities.len() >= 2, "{severities:?}");
    assert!(severities.windows(2).all(|w| w[0] < w[1]), "{severities:?}");
    assert_eq!(severities.last(), Some(&Severity::Critical));
}

#[test]
fn a_suspension_refuses_the_agent_and_those_it_delegated_to() {
    let d = Detector::new(DetectConfig {
        learning_secs: 0,
        learning_min_events: 0,
        ..cfg()
    });
    let t = Timestamp::from_secs(T0);
    d.assess("agt_a", &req("crm:read", "Crm::Contact", T0))
        .expect("first");
    let a = d
        .assess(
            "agt_a",
            &Request {
                data_class: Some("secret"),
                ..req("crm:read", "Crm::Contact", T0 + 1)
            },
        )
        .expect("assessed");
    assert_eq!(a.findings[0].kind, Kind::NewDataClass);
    assert_eq!(a.findings[0].severity, Severity::High);
    // Default: high steps up, only critical suspends.
    assert!(!a.suspend);
    d.suspend("agt_a");
    assert!(
        d.assess("agt_a", &req("crm:read", "Crm::Contact", T0 + 2))
            .is_err()
    );
    let chain = ["agt_a"];
    let delegated = Request {
        chain: &chain,
        ..req("crm:read", "Crm::Contact", T0 + 3)
    };
    assert!(d.assess("agt_b", &delegated).is_err());
    d.resume("agt_a");
    assert!(d.assess("agt_b", &delegated).is_ok());
    let _ = d.outcome("agt_b", t, false);
    assert_eq!(d.take_dirty().len(), 2);
    assert!(d.take_dirty().is_empty());
}

fn traffic() -> impl Strategy<Value = Vec<(u8, u8, u8, u16, bool)>> {
    prop::collection::vec((0u8..6, 0u8..4, 0u8..3, 0u16..900, any::<bool>()), 1..200)
}

const ACTIONS: [&str; 6] = ["a:read", "a:write", "b:read", "c:drop", "d:x", "e:y"];
const TYPES: [&str; 4] = ["A::T", "B::T", "C::T", "D::T"];
const CLASSES: [Option<&str>; 3] = [None, Some("pii"), Some("internal")];

fn replay(b: &mut Baseline, c: &DetectConfig, start: i64, t: &[(u8, u8, u8, u16, bool)]) -> usize {
    let mut now = start;
    let mut found = 0;
    for (a, r, dc, gap, denied) in t {
        now += i64::from(*gap);
        let rq = Request {
            data_class: CLASSES[usize::from(*dc)],
            ..req(ACTIONS[usize::from(*a)], TYPES[usize::from(*r)], now)
        };
        found += b.assess(c, &rq).findings.len();
        found += b.outcome(c, rq.at, *denied).findings.len();
    }
    found
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn nothing_is_raised_while_learning(t in traffic()) {
        let c = DetectConfig { learning_secs: 10 * 86_400, ..DetectConfig::default() };
        let mut b = Baseline::new();
        prop_assert_eq!(replay(&mut b, &c, T0, &t), 0);
    }

    #[test]
    fn a_stored_baseline_judges_the_same(t in traffic(), u in traffic()) {
        let c = cfg();
        let mut b = Baseline::new();
        replay(&mut b, &c, T0, &t);
        let json = serde_json::to_string(&b).expect("serialise");
        let mut back: Baseline = serde_json::from_str(&json).expect("parse");
        prop_assert_eq!(&back, &b);
        let start = T0 + 200 * 900;
        prop_assert_eq!(replay(&mut back, &c, start, &u), replay(&mut b, &c, start, &u));
        prop_assert_eq!(back, b);
    }

    #[test]
    fn risk_covers_every_finding(t in traffic()) {
        let c = DetectConfig { learning_secs: 0, learning_min_events: 5, ..DetectConfig::default() };
        let mut b = Baseline::new();
        let mut now = T0;
        for (a, r, dc, gap, _) in &t {
            now += i64::from(*gap);
            let rq = Request {
                data_class: CLASSES[usize::from(*dc)],
                ..req(ACTIONS[usize::from(*a)], TYPES[usize::from(*r)], now)
            };
            let out = b.assess(&c, &rq);
            for f in &out.findings {
                prop_assert!(out.risk.score >= f.score);
                prop_assert!(out.risk.anomalies.iter().any(|k| k == f.kind.as_str()));
                if f.response >= Response::StepUp {
                    prop_assert!(out.risk.step_up);
                }
            }
        }
    }
}
