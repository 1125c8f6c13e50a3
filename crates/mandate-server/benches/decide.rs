//! The decision function (`decide`) with 10, 100 and 1,000 policies and 1,000 and
//! 100,000 agents in the snapshot, for each way a caller is named:
//!
//! - `service`: an enforcement point's service token names the agent (the token of the
//!   service was checked before `decide`; `decide` parses the id and looks it up);
//! - `token`: the agent presents its own access token, verified here (Ed25519);
//! - `verified`: the agent's token was verified before and its claims come from the
//!   verified-token cache (`Principal::Verified`).
//!
//! Mandate-bound delegated tokens do not exist yet; these three are the paths there are.
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

mod fixture;

use std::hint::black_box;

use criterion::{Criterion, criterion_group};
use fixture::{ISSUER, NOW, agent_id, asker, policies, snapshot};
use mandate_core::time::Timestamp;
use mandate_server::decide::{DecisionRequest, Principal, Resource, Snapshot, decide};
use mandate_token::access::{AccessClaims, Audience, issue};
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
    }
}

/// The three principals for the asker of `snap`.
struct Callers {
    agent: String,
    token: String,
    claims: AccessClaims,
}

fn callers(snap: &Snapshot) -> Callers {
    let agent = agent_id(asker(snap.agents.len())).as_str().to_owned();
    let claims = claims(&agent);
    let token = issue(snap.ring.current(), &claims).expect("issue");
    Callers {
        agent,
        token,
        claims,
    }
}

fn principals(c: &Callers) -> [(&'static str, Principal<'_>); 3] {
    [
        ("service", Principal::Agent(&c.agent)),
        ("token", Principal::Token(&c.token)),
        ("verified", Principal::Verified(&c.claims)),
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
            let snap = snapshot(fixture::agents(n_agents), compiled.clone());
            let who = callers(&snap);
            for (path, principal) in principals(&who) {
                let req = request(principal, &a);
                let d = decide(&snap, &req, now());
                assert!(d.allow, "{path}: the bench request must be allowed: {d:?}");
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
    let snap = snapshot(fixture::agents(100_000), policies(100));
    let who = callers(&snap);
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

criterion_group!(benches, bench_decide);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time") {
        percentiles();
    }
}
