//! Scenario tests on simulated time: an agent behaves normally for weeks, then turns.
//! Each attack must be found within a stated number of requests, and with suspension
//! as the response nothing more is let through; a long normal run must suspend nothing.
//! The simulation is seeded, so every run sees the same traffic.

#![expect(
    clippy::expect_used,
    clippy::cast_precision_loss,
    reason = "tests fail loudly; small counts"
)]

use mandate_core::time::Timestamp;
use mandate_detect::{
    Baseline, DetectConfig, Detector, Finding, Kind, Request, Response, Responses, Severity,
};

/// 2026-01-05T00:00:00Z, a Monday.
const START: i64 = 1_767_571_200;
const DAY: i64 = 86_400;

/// xorshift64*: a small deterministic generator (the simulation needs no more).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// One simulated request and whether policy denied it.
struct Sim {
    action: &'static str,
    resource_type: &'static str,
    data_class: Option<&'static str>,
    at: i64,
    denied: bool,
}

/// A CRM support agent: 08:00–18:00 UTC on weekdays, a busy minute now and then,
/// about 2% of its requests denied, a rarely used action once in a while, now and
/// then a late minute, and a quarterly clean-up it never did in training.
fn normal_day(rng: &mut Rng, day: i64) -> Vec<Sim> {
    let mut out = Vec::new();
    let weekday = day.rem_euclid(7) < 5;
    if !weekday {
        return out;
    }
    if day % 91 == 87 {
        out.push(Sim {
            action: "crm:archive",
            resource_type: "Crm::Account",
            data_class: Some("internal"),
            at: START + day * DAY + 17 * 3600,
            denied: false,
        });
    }
    for minute in (8 * 60)..(19 * 60) {
        // The last hour is overtime: rare.
        let p = if minute >= 18 * 60 { 0.0005 } else { 0.3 };
        if !rng.chance(p) {
            continue;
        }
        let busy = rng.chance(0.01);
        let n = 5 + rng.below(11) * if busy { 2 } else { 1 };
        for i in 0..n {
            let (action, resource_type, data_class) = match rng.below(100) {
                0..=64 => ("crm:read", "Crm::Contact", Some("pii")),
                65..=84 => ("crm:update", "Crm::Contact", Some("pii")),
                85..=97 => ("crm:list", "Crm::Account", Some("internal")),
                _ => ("crm:read", "Crm::Account", Some("internal")),
            };
            // A rare action: about once a fortnight.
            let (action, resource_type) = if rng.chance(0.0001) {
                ("crm:merge", "Crm::Contact")
            } else {
                (action, resource_type)
            };
            out.push(Sim {
                action,
                resource_type,
                data_class,
                at: START + day * DAY + minute * 60 + (i as i64 * 60 / n as i64),
                denied: rng.chance(0.02),
            });
        }
    }
    out
}

/// Runs `sims` through the detector as the server does: assess, then the outcome. Returns
/// the findings with the index of the request that raised them, and how many requests
/// were let through after the first suspension.
struct Run {
    findings: Vec<(usize, Finding)>,
    first_suspend: Option<usize>,
    allowed_after_suspend: usize,
    requests: usize,
}

fn run(d: &Detector, agent: &str, sims: &[Sim]) -> Run {
    let mut r = Run {
        findings: Vec::new(),
        first_suspend: None,
        allowed_after_suspend: 0,
        requests: 0,
    };
    for (i, s) in sims.iter().enumerate() {
        r.requests += 1;
        let at = Timestamp::from_secs(s.at);
        let req = Request {
            action: s.action,
            resource_type: s.resource_type,
            data_class: s.data_class,
            chain: &[],
            at,
        };
        let Ok(a) = d.assess(agent, &req) else {
            // Refused: the detector suspended the agent.
            d.outcome(agent, at, true);
            continue;
        };
        r.findings.extend(a.findings.into_iter().map(|f| (i, f)));
        let refused = a.suspend || a.risk.step_up;
        if a.suspend && r.first_suspend.is_none() {
            r.first_suspend = Some(i);
        }
        if r.first_suspend.is_some() && !refused && !s.denied {
            r.allowed_after_suspend += 1;
        }
        let out = d.outcome(agent, at, s.denied || refused);
        if out.suspend && r.first_suspend.is_none() {
            r.first_suspend = Some(i);
        }
        r.findings.extend(out.findings.into_iter().map(|f| (i, f)));
    }
    r
}

fn suspend_on_high() -> DetectConfig {
    DetectConfig {
        responses: Responses {
            low: Response::Record,
            medium: Response::Alert,
            high: Response::Suspend,
            critical: Response::Suspend,
        },
        ..DetectConfig::default()
    }
}

/// A detector trained on `days` of normal traffic (seeded), and the last moment used.
fn trained(cfg: DetectConfig, days: i64, seed: u64) -> (Detector, Baseline, i64) {
    let d = Detector::new(cfg);
    let mut rng = Rng(seed);
    let mut last = START;
    for day in 0..days {
        let sims = normal_day(&mut rng, day);
        if let Some(s) = sims.last() {
            last = s.at;
        }
        let r = run(&d, "agt_victim", &sims);
        assert_eq!(
            r.first_suspend, None,
            "normal traffic suspended on day {day}"
        );
    }
    let b = d.baseline("agt_victim").expect("baseline");
    (d, b, last)
}

fn fresh(cfg: DetectConfig, b: &Baseline) -> Detector {
    let d = Detector::new(cfg);
    d.load("agt_victim", b.clone());
    d
}

#[test]
fn reading_a_customer_database_it_never_touched_is_caught_at_once() {
    let (_, b, last) = trained(suspend_on_high(), 28, 7);
    let d = fresh(suspend_on_high(), &b);
    // Monday of week 5, mid-morning: a burst of reads of a table it never touched.
    let t = START + 28 * DAY + 10 * 3600;
    assert!(t > last);
    let sims: Vec<Sim> = (0..20)
        .map(|i| Sim {
            action: "db:read",
            resource_type: "Db::CustomerTable",
            data_class: Some("pii"),
            at: t + i,
            denied: false,
        })
        .collect();
    let r = run(&d, "agt_victim", &sims);
    // Stated bound: the first such request.
    assert_eq!(r.first_suspend, Some(0), "{:?}", r.findings);
    assert_eq!(r.allowed_after_suspend, 0);
    let kinds: Vec<Kind> = r.findings.iter().map(|(_, f)| f.kind).collect();
    assert!(kinds.contains(&Kind::NewResourceType), "{kinds:?}");
    assert!(kinds.contains(&Kind::NewAction), "{kinds:?}");
    let f = &r
        .findings
        .iter()
        .find(|(_, f)| f.kind == Kind::NewResourceType)
        .expect("found")
        .1;
    assert_eq!(
        f.explanation,
        "first access to resource type `Db::CustomerTable` in 28 days of history"
    );
    assert!(f.severity >= Severity::High);
}

#[test]
fn a_twenty_fold_burst_is_caught_within_the_stated_bound() {
    let (_, b, _) = trained(suspend_on_high(), 28, 11);
    let summary = b.summary(&suspend_on_high(), START + 28 * DAY);
    let usual = summary["rate"]["mean"].as_f64().expect("mean");
    let limit = summary["rate"]["spike_above"].as_f64().expect("threshold");
    assert!((6.0..16.0).contains(&usual), "usual rate {usual}");
    let d = fresh(suspend_on_high(), &b);
    // 20× the usual per-minute rate, for five minutes, same actions as ever.
    let t = START + 28 * DAY + 11 * 3600;
    let per_minute = (usual * 20.0).round() as i64;
    let sims: Vec<Sim> = (0..per_minute * 5)
        .map(|i| Sim {
            action: "crm:read",
            resource_type: "Crm::Contact",
            data_class: Some("pii"),
            at: t + i * 60 / per_minute,
            denied: false,
        })
        .collect();
    let r = run(&d, "agt_victim", &sims);
    let at = r.first_suspend.expect("the burst is detected");
    // Stated bound: the request after the bucket passes its threshold
    // (max(5 × usual, usual + 4σ, 10) requests in the minute).
    assert!(
        (at as f64) <= limit.ceil(),
        "detected at request {at}, threshold {limit}"
    );
    assert!(at <= 5 * 16, "at most 80 requests into the burst: {at}");
    assert_eq!(r.allowed_after_suspend, 0);
    assert!(r.findings.iter().any(|(_, f)| f.kind == Kind::RateSpike));
}

#[test]
fn probing_with_denied_requests_is_caught_within_the_stated_bound() {
    let (_, b, _) = trained(suspend_on_high(), 28, 13);
    let d = fresh(suspend_on_high(), &b);
    let t = START + 28 * DAY + 14 * 3600;
    // Every request denied: an agent trying what it may do.
    let targets = [
        ("crm:delete", "Crm::Contact"),
        ("crm:read", "Crm::Contact"),
        ("crm:update", "Crm::Account"),
        ("crm:list", "Crm::Account"),
    ];
    let sims: Vec<Sim> = (0..40)
        .map(|i| {
            let (action, resource_type) = targets[i % targets.len()];
            Sim {
                action,
                resource_type,
                data_class: Some("internal"),
                at: t + i as i64 * 2,
                denied: true,
            }
        })
        .collect();
    let cfg = suspend_on_high();
    let r = run(&d, "agt_victim", &sims);
    let at = r.first_suspend.expect("probing is detected");
    // Stated bound: the `deny_min`-th denied request (a new action may be found first).
    assert!(at < cfg.deny_min as usize, "detected at request {at}");
    assert_eq!(r.allowed_after_suspend, 0);
    // With only the known actions, the deny burst itself trips.
    let d = fresh(suspend_on_high(), &b);
    let known: Vec<Sim> = sims
        .into_iter()
        .filter(|s| s.action != "crm:delete")
        .collect();
    let r = run(&d, "agt_victim", &known);
    let at = r.first_suspend.expect("probing is detected");
    assert_eq!(at + 1, cfg.deny_min as usize, "{:?}", r.findings);
    assert!(r.findings.iter().any(|(_, f)| f.kind == Kind::DenyBurst));
}

#[test]
fn a_long_normal_run_suspends_nothing() {
    // Default responses: suspend on critical, step up on high.
    let cfg = DetectConfig::default();
    let (d, _, _) = trained(cfg.clone(), 14, 17);
    let mut rng = Rng(99);
    let mut totals = Run {
        findings: Vec::new(),
        first_suspend: None,
        allowed_after_suspend: 0,
        requests: 0,
    };
    for day in 14..194 {
        let r = run(&d, "agt_victim", &normal_day(&mut rng, day));
        totals.requests += r.requests;
        totals.findings.extend(r.findings);
        assert_eq!(r.first_suspend, None, "suspended on day {day}");
    }
    let high = totals
        .findings
        .iter()
        .filter(|(_, f)| f.severity >= Severity::High)
        .count();
    let rate = totals.findings.len() as f64 * 10_000.0 / totals.requests as f64;
    eprintln!(
        "false positives over 180 simulated days: {} findings ({} high or worse) in {} \
         requests = {rate:.2} per 10,000 requests: {:?}",
        totals.findings.len(),
        high,
        totals.requests,
        totals
            .findings
            .iter()
            .map(|(_, f)| f.explanation.as_str())
            .collect::<Vec<_>>()
    );
    assert_eq!(high, 0, "no step-up or suspension from normal traffic");
    assert!(rate < 1.0, "under one finding per 10,000 normal requests");
}
