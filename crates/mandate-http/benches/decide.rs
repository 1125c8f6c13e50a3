//! The decision function (`decide`) with 10, 100 and 1,000 policies and 1,000 and
//! 100,000 agents in the snapshot, for each way a caller is named:
//!
//! - `service`: an enforcement point's service token names the agent (the token of the
//!   service was checked before `decide`; `decide` parses the id and looks it up);
//! - `token`: the agent presents its own access token, verified here (Ed25519);
//! - `verified`: the agent's token was verified before and its claims come from the
//!   verified-token cache (`Principal::Verified`);
//! - `delegated`: a mandate-bound token, exchanged to the asker by the agent holding
//!   the mandate (for user alice), its claims from the verified-token cache: the chain,
//!   the parent token, both agents, the mandate and its scope are checked, and the
//!   policies see `context.user`, `context.mandate` and `context.chain`.
//!
//! `detect/…` compares one decision without and with the anomaly detector (100
//! policies, 1,000 agents, the `service` path, whose time is not bounded by a token): the detector's assessment before the
//! policies and its learning of the outcome after, on an agent with a settled baseline
//! and one request a second (so every bucket and window rolls as in production).
//!
//! After criterion's runs (under `cargo bench`, not `cargo test` or `--profile-time`), a
//! second pass times 20,000 single calls per path with 100 policies and 100,000 agents
//! and prints their p50, p90 and p99, since criterion's median is a median of per-sample
//! means.

#![expect(
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark setup fails loudly"
)]

#[expect(
    dead_code,
    reason = "the node's configuration is for the benches that run one"
)]
mod fixture;

/// The allocator `mandate serve` uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group};
use fixture::{ISSUER, NOW, agent_id, asker, policies, snapshot};
use mandate_core::agent::Grant;
use mandate_core::id::MandateId;
use mandate_core::mandate::{Mandate, MandateStatus, UserRef};
use mandate_core::time::Timestamp;
use mandate_detect::{DetectConfig, Detector, Request};
use mandate_http::decide::{DecisionRequest, Principal, Resource, Snapshot, decide, decide_with};
use mandate_token::access::{AccessClaims, Actor, Audience, ParentToken, issue};
use serde_json::{Value, json};

/// A sales contact, read with an internal data class from an office address.
struct Ask {
    resource: Resource,
    context: Value,
}

fn ask() -> Ask {
    Ask {
        resource: Resource {
            type_name: "Crm::Contact".to_owned(),
            id: "c-42".to_owned(),
            attributes: json!({"team": "sales", "region": "emea"}),
        },
        context: json!({"data_class": "internal", "source_ip": "192.168.1.10"}),
    }
}

fn claims(agent: &str) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.to_owned(),
        sub: agent.to_owned(),
        aud: Audience::One("https://crm.example.com/api".to_owned()),
        exp: NOW + 300,
        iat: NOW - 1,
        nbf: NOW - 1,
        jti: "tok_01JC0000000000000000000001".to_owned(),
        client_id: agent.to_owned(),
        scope: Some("crm:read crm:write".to_owned()),
        act: None,
        mandate: None,
        parents: Vec::new(),
        cnf: None,
    }
}

/// The four principals for the asker of `snap`.
struct Callers {
    agent: String,
    token: String,
    claims: AccessClaims,
    delegated: AccessClaims,
}

const MANDATE: &str = "mdt_01JA0000000000000000000042";

/// Alice's mandate, held by `holder`: read sales contacts for an hour.
fn mandate(holder: &str) -> Mandate {
    Mandate {
        user: Some(UserRef {
            issuer: "https://idp.example".into(),
            sub: "alice".into(),
            email: Some("alice@example.com".into()),
            groups: vec!["sales".into()],
        }),
        activated_at: Some(Timestamp::from_secs(NOW - 100)),
        expires_at: Some(Timestamp::from_secs(NOW + 3500)),
        decided_by: Some("policy".into()),
        decided_at: Some(Timestamp::from_secs(NOW - 100)),
        ..Mandate::requested(
            MandateId::parse(MANDATE).expect("mandate id"),
            mandate_core::id::AgentId::parse(holder).expect("agent id"),
            "answer alice's customer questions".into(),
            vec![Grant {
                actions: vec!["crm:read".into()],
                resources: vec!["Crm::Contact/*".into()],
                data_classes: vec!["internal".into()],
            }],
            3600,
            MandateStatus::Active,
            Timestamp::from_secs(NOW - 100),
        )
    }
}

/// The asker's token exchanged from `holder`'s mandate token, as the token exchange
/// makes it: subject alice, `act` {asker, act: holder}, the parent in `parents`.
fn delegated(asker: &str, holder: &str) -> AccessClaims {
    AccessClaims {
        sub: "alice".to_owned(),
        client_id: asker.to_owned(),
        jti: "tok_01JC0000000000000000000002".to_owned(),
        scope: Some("crm:read".to_owned()),
        act: Some(Actor {
            sub: asker.to_owned(),
            act: Some(Box::new(Actor {
                sub: holder.to_owned(),
                act: None,
            })),
        }),
        mandate: Some(MANDATE.to_owned()),
        parents: vec![ParentToken {
            jti: "tok_01JC0000000000000000000001".to_owned(),
            iat: NOW - 5,
        }],
        ..claims(asker)
    }
}

/// The callers for the asker of `snap`, adding the delegating agent's mandate to it.
fn callers(snap: &mut Snapshot) -> Callers {
    let n = snap.agents.len();
    let agent = agent_id(asker(n)).as_str().to_owned();
    let holder = agent_id(asker(n) + 1).as_str().to_owned();
    let m = mandate(&holder);
    snap.mandates.insert(m.id.clone(), Arc::new(m));
    let claims = claims(&agent);
    let token = issue(snap.ring.current(), &claims).expect("issue");
    Callers {
        delegated: delegated(&agent, &holder),
        agent,
        token,
        claims,
    }
}

fn principals(c: &Callers) -> [(&'static str, Principal<'_>); 4] {
    [
        ("service", Principal::Agent(&c.agent)),
        ("token", Principal::Token(&c.token)),
        ("verified", Principal::Verified(&c.claims)),
        ("delegated", Principal::Verified(&c.delegated)),
    ]
}

fn now() -> Timestamp {
    Timestamp::from_secs(NOW)
}

fn request<'a>(principal: Principal<'a>, a: &'a Ask) -> DecisionRequest<'a> {
    DecisionRequest {
        principal,
        action: "crm:read",
        resource: &a.resource,
        context: &a.context,
    }
}

fn bench_decide(c: &mut Criterion) {
    let a = ask();
    let mut group = c.benchmark_group("decide");
    for n_policies in [10, 100, 1000] {
        let compiled = policies(n_policies);
        for n_agents in [1_000, 100_000] {
            let mut snap = snapshot(fixture::agents(n_agents), compiled.clone());
            let who = callers(&mut snap);
            for (path, principal) in principals(&who) {
                let req = request(principal, &a);
                let d = decide(&snap, &req, now());
                assert!(
                    d.is_allowed(),
                    "{path}: the bench request must be allowed: {d:?}"
                );
                let id = format!("{n_policies}p/{n_agents}a/{path}");
                group.bench_function(id, |b| {
                    b.iter(|| decide(black_box(&snap), black_box(&req), black_box(now())));
                });
            }
        }
    }
    group.finish();
}

/// Single-call latency percentiles with 100 policies and 100,000 agents.
#[expect(clippy::disallowed_methods, reason = "benchmark timing")]
fn percentiles() {
    const CALLS: usize = 20_000;
    let a = ask();
    let mut snap = snapshot(fixture::agents(100_000), policies(100));
    let who = callers(&mut snap);
    println!("\nsingle-call latency, 100 policies, 100,000 agents ({CALLS} calls each):");
    for (path, principal) in principals(&who) {
        let req = request(principal, &a);
        for _ in 0..CALLS / 10 {
            black_box(decide(&snap, &req, now()));
        }
        let mut nanos: Vec<u128> = (0..CALLS)
            .map(|_| {
                let start = std::time::Instant::now();
                black_box(decide(black_box(&snap), black_box(&req), now()));
                start.elapsed().as_nanos()
            })
            .collect();
        nanos.sort_unstable();
        let at = |q: usize| nanos[CALLS * q / 100] as f64 / 1000.0;
        println!(
            "  {path:<9} p50 {:>8.2} µs   p90 {:>8.2} µs   p99 {:>8.2} µs",
            at(50),
            at(90),
            at(99)
        );
    }
}

/// One decision through the detector, as `/v1/authorize` makes it, at `at`.
fn decide_detected(
    snap: &Snapshot,
    req: &DecisionRequest<'_>,
    detector: &Detector,
    at: Timestamp,
) -> bool {
    let d = decide_with(snap, req, at, |h| {
        let r = Request {
            action: req.action,
            resource_type: &req.resource.type_name,
            data_class: req.context.get("data_class").and_then(Value::as_str),
            chain: &[],
            at,
        };
        detector
            .assess(h.agent.id.as_str(), &r)
            .map(|a| a.risk)
            .map_err(|_| panic!("the bench agent is never suspended"))
    });
    if let Some(a) = &d.agent {
        black_box(detector.outcome(a.as_str(), at, !d.is_allowed()));
    }
    d.is_allowed()
}

fn bench_detect(c: &mut Criterion) {
    let a = ask();
    let mut snap = snapshot(fixture::agents(1_000), policies(100));
    let who = callers(&mut snap);
    let req = request(Principal::Agent(&who.agent), &a);
    let detector = Detector::new(DetectConfig {
        learning_secs: 0,
        learning_min_events: 100,
        usual_hour_share: 0.0,
        ..DetectConfig::default()
    });
    // A settled baseline: an hour of one request a second.
    let mut t = NOW;
    for _ in 0..3600 {
        assert!(decide_detected(
            &snap,
            &req,
            &detector,
            Timestamp::from_secs(t)
        ));
        t += 1;
    }
    let mut group = c.benchmark_group("detect");
    group.bench_function("without/100p/1000a/service", |b| {
        b.iter(|| decide(black_box(&snap), black_box(&req), black_box(now())));
    });
    group.bench_function("with/100p/1000a/service", |b| {
        b.iter(|| {
            t += 1;
            decide_detected(&snap, &req, &detector, Timestamp::from_secs(t))
        });
    });
    group.bench_function("detector_alone", |b| {
        b.iter(|| {
            t += 1;
            let at = Timestamp::from_secs(t);
            let r = Request {
                action: "crm:read",
                resource_type: &a.resource.type_name,
                data_class: a.context.get("data_class").and_then(Value::as_str),
                chain: &[],
                at,
            };
            black_box(detector.assess(&who.agent, black_box(&r)).is_ok());
            black_box(detector.outcome(&who.agent, at, false));
        });
    });
    group.finish();
    let b = detector.baseline(&who.agent).expect("baseline");
    assert!(
        b.pending().is_empty(),
        "the bench request must stay unremarkable"
    );
}

criterion_group!(benches, bench_decide, bench_detect);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time") {
        percentiles();
    }
}
