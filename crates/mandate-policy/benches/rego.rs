//! One Data API query against compiled Rego (`RegoPolicies::query`): the guidance's
//! `http.authz` example asked for its `allow` rule and for the whole package, and a
//! policy of 100 rules over a 1,000-entry base document. Each query clones the
//! prepared interpreter, hands it the input and evaluates. Results in BENCHMARKS.md.

#![expect(clippy::expect_used, reason = "benchmark setup fails loudly")]

/// The allocator `mandate serve` uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mandate_policy::{RegoModule, RegoSource, compile_rego};
use serde_json::json;

const AUTHZ: &str = r#"package http.authz

default allow := false

allow if {
    input.request_source == "internal_network"
    input.agent.verified
    input.action in {"read", "list"}
}
"#;

fn source(modules: Vec<(String, String)>, data: serde_json::Value) -> RegoSource {
    RegoSource {
        modules: modules
            .into_iter()
            .map(|(id, source)| RegoModule {
                id,
                source,
                rego_v0: false,
            })
            .collect(),
        data: serde_json::from_value(data).expect("object"),
    }
}

fn bench(c: &mut Criterion) {
    let input = json!({
        "request_source": "internal_network",
        "agent": {"id": "agt_1", "verified": true},
        "action": "read",
    });
    let authz = compile_rego(&source(
        vec![("authz.rego".into(), AUTHZ.into())],
        json!({}),
    ))
    .expect("compiles");
    c.bench_function("rego/authz/allow", |b| {
        b.iter(|| authz.query(black_box("http/authz/allow"), Some(&input), 0))
    });
    c.bench_function("rego/authz/package", |b| {
        b.iter(|| authz.query(black_box("http/authz"), Some(&input), 0))
    });

    let mut big = String::from("package big\n\ndefault allow := false\n\n");
    for i in 0..100 {
        big.push_str(&format!(
            "allow if {{\n    input.action == \"a{i}\"\n    data.teams[input.team].level >= {i}\n}}\n\n"
        ));
    }
    let teams: serde_json::Map<String, serde_json::Value> = (0..1000)
        .map(|i| (format!("t{i}"), json!({"level": i % 100})))
        .collect();
    let big = compile_rego(&source(
        vec![("big.rego".into(), big)],
        json!({"teams": teams}),
    ))
    .expect("compiles");
    let big_input = json!({"action": "a99", "team": "t999"});
    c.bench_function("rego/100-rules-1000-data/allow", |b| {
        b.iter(|| big.query(black_box("big/allow"), Some(&big_input), 0))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
