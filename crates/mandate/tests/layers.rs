//! The workspace's layer rules, read from `cargo metadata` rather than kept by review:
//!
//! 1. The pure crates — core, token, policy, audit, detect and the engine — never depend,
//!    however indirectly, on an HTTP stack, an async runtime or a database driver
//!    (`axum`, `hyper`, `reqwest`, `tokio`, `rusqlite`).
//! 2. Dependencies between our crates point down the layers only (`LAYERS`, lowest
//!    first), so no crate reaches up into one built on it.
//! 3. The engine and the gateway never depend on the store; nothing but the binary
//!    depends on the server.
//! 4. The sample upstreams (`mandate-examples`) depend on none of our crates: they stand
//!    for third-party services.
//!
//! Only normal and build dependencies count (tests may use anything).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test: a failed step fails the test loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Our crates by layer, lowest first; a crate may depend only on crates of lower layers.
const LAYERS: &[&[&str]] = &[
    &["mandate-core"],
    &[
        "mandate-token",
        "mandate-policy",
        "mandate-audit",
        "mandate-detect",
    ],
    &["mandate-engine", "mandate-store"],
    &["mandate-gateway"],
    &["mandate-server"],
    &["mandate"],
];

const PURE: &[&str] = &[
    "mandate-core",
    "mandate-token",
    "mandate-policy",
    "mandate-audit",
    "mandate-detect",
    "mandate-engine",
];

const NOT_IN_PURE: &[&str] = &["axum", "hyper", "reqwest", "tokio", "rusqlite"];

/// `(crate, dependency)` pairs that may never exist, beyond what the layers forbid.
const FORBIDDEN: &[(&str, &str)] = &[
    ("mandate-engine", "mandate-store"),
    ("mandate-gateway", "mandate-store"),
    ("mandate-gateway", "mandate-engine"),
];

/// The workspace's packages: name → (direct normal deps, all normal deps transitively).
fn graph() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    let name: BTreeMap<&str, &str> = m["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let direct: BTreeMap<&str, Vec<&str>> = m["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null() || k["kind"].as_str() == Some("build"))
                })
                .map(|d| d["pkg"].as_str().unwrap())
                .collect();
            (n["id"].as_str().unwrap(), deps)
        })
        .collect();
    let mut out = BTreeMap::new();
    for member in m["workspace_members"].as_array().unwrap() {
        let id = member.as_str().unwrap();
        let mut all = BTreeSet::new();
        let mut todo = vec![id];
        while let Some(x) = todo.pop() {
            for d in &direct[x] {
                if all.insert(*d) {
                    todo.push(d);
                }
            }
        }
        let names = |ids: &mut dyn Iterator<Item = &&str>| -> BTreeSet<String> {
            ids.map(|i| name[*i].to_owned()).collect()
        };
        out.insert(
            name[id].to_owned(),
            (names(&mut direct[id].iter()), names(&mut all.iter())),
        );
    }
    out
}

fn layer(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&name))
}

/// Every rule, as the list of its violations (empty: all hold).
fn violations(g: &BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>) -> Vec<String> {
    let mut bad = Vec::new();
    for pure in PURE {
        let (_, all) = &g[*pure];
        for forbidden in NOT_IN_PURE {
            if all.contains(*forbidden) {
                bad.push(format!("{pure} (pure) depends on {forbidden}"));
            }
        }
    }
    for (krate, (direct, _)) in g {
        let ours: Vec<&String> = direct.iter().filter(|d| g.contains_key(*d)).collect();
        if krate == "mandate-examples" {
            bad.extend(ours.iter().map(|d| format!("{krate} depends on {d}")));
            continue;
        }
        let Some(at) = layer(krate) else {
            bad.push(format!("{krate} is in no layer: add it to LAYERS"));
            continue;
        };
        for d in ours {
            if layer(d).is_none_or(|l| l >= at) {
                bad.push(format!("{krate} depends on {d}, which is not below it"));
            }
            if FORBIDDEN.contains(&(krate.as_str(), d.as_str())) {
                bad.push(format!("{krate} depends on {d}"));
            }
        }
    }
    bad
}

#[test]
fn the_layer_rules_hold() {
    let g = graph();
    for pure in PURE {
        assert!(g.contains_key(*pure), "{pure} is not a workspace member");
    }
    let bad = violations(&g);
    assert!(bad.is_empty(), "layer rules broken:\n{}", bad.join("\n"));
}

/// The check itself catches what it is for: the graph with `axum` added to the engine,
/// or the engine depending on the server, is refused.
#[test]
fn a_broken_rule_is_caught() {
    let mut g = graph();
    let engine = g.get_mut("mandate-engine").unwrap();
    engine.0.insert("axum".into());
    engine.1.insert("axum".into());
    let bad = violations(&g);
    assert_eq!(bad, ["mandate-engine (pure) depends on axum"]);
    let mut g = graph();
    g.get_mut("mandate-engine")
        .unwrap()
        .0
        .insert("mandate-server".into());
    assert_eq!(
        violations(&g),
        ["mandate-engine depends on mandate-server, which is not below it"]
    );
}
