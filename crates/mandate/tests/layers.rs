//! The workspace's layer rules, read from `cargo metadata` rather than kept by review:
//!
//! 1. The pure crates — core, the wire types (`mandate-api`), token, policy, audit,
//!    detect, the engine, the store seam (`mandate-store`: traits, no SQL), the export
//!    formats (`mandate-export`: records and framing, no IO) and the governance core
//!    (`mandate-govern`: discovery parsers, reconciliation, suggestions) — never depend,
//!    however indirectly, on an HTTP stack, an async runtime or a database driver
//!    (`axum`, `hyper`, `reqwest`, `tokio`, `rusqlite`, `tokio-postgres`).
//! 2. Dependencies between our crates point down the layers only (`LAYERS`, lowest
//!    first), so no crate reaches up into one built on it.
//! 3. The engine and the gateway never depend on the store; the HTTP edge
//!    (`mandate-http`) depends on the store seam only, never on a store implementation
//!    (`mandate-store-sqlite`, `mandate-store-postgres`): the binary picks the backend; nothing but the binary
//!    depends on the HTTP edge, and the edge never on the client (`mandate-client`). The
//!    wire types (`mandate-api`) depend on nothing of ours but `mandate-core`
//!    (`ONLY_ON`). The service layer (`mandate-service`) never depends on `axum`,
//!    `hyper`, `reqwest`, `rusqlite` or `tokio-postgres`.
//! 4. Only `mandate-policy` depends on the policy engines (`cedar-policy`,
//!    `cedar-policy-core`, `regorus`): the rest of Mandate sees its types.
//! 5. No crate depends, however indirectly, on aws-lc or OpenSSL (`NOWHERE`): TLS is
//!    rustls with `ring` (`mandate-tls`, which depends on no crate of ours).
//! 6. The sample upstreams (`mandate-examples`) depend on none of our crates: they stand
//!    for third-party services.
//! 7. Within each crate, the top-level modules do not depend on each other in a cycle
//!    (read from `crate::<module>` paths in the non-test code), so each module can be
//!    read, and moved, after the ones it builds on.
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
        "mandate-api",
        "mandate-token",
        "mandate-policy",
        "mandate-audit",
        "mandate-detect",
        "mandate-tls",
    ],
    &["mandate-egress"],
    &[
        "mandate-engine",
        "mandate-store",
        "mandate-client",
        "mandate-export",
        "mandate-govern",
    ],
    &[
        "mandate-gateway",
        "mandate-store-sqlite",
        "mandate-store-postgres",
        "mandate-service",
    ],
    &["mandate-http"],
    &["mandate"],
];

const PURE: &[&str] = &[
    "mandate-core",
    "mandate-api",
    "mandate-token",
    "mandate-policy",
    "mandate-audit",
    "mandate-detect",
    "mandate-engine",
    "mandate-store",
    "mandate-export",
    "mandate-govern",
];

const NOT_IN_PURE: &[&str] = &[
    "axum",
    "hyper",
    "reqwest",
    "tokio",
    "rusqlite",
    "tokio-postgres",
];

/// The service layer knows no HTTP framework and no SQL driver (it may use an async
/// runtime).
const SERVICE: &str = "mandate-service";
const NOT_IN_SERVICE: &[&str] = &["axum", "hyper", "reqwest", "rusqlite", "tokio-postgres"];

/// `(crate, dependency)` pairs that may never exist, beyond what the layers forbid.
const FORBIDDEN: &[(&str, &str)] = &[
    ("mandate-engine", "mandate-store"),
    ("mandate-gateway", "mandate-store"),
    ("mandate-gateway", "mandate-engine"),
    ("mandate-http", "mandate-store-sqlite"),
    ("mandate-http", "mandate-store-postgres"),
    ("mandate-http", "mandate-client"),
];

/// The policy engines, which only `POLICY_CRATE` may name.
const POLICY_ENGINES: &[&str] = &["cedar-policy", "cedar-policy-core", "regorus"];
const POLICY_CRATE: &str = "mandate-policy";

/// Crates that may depend on the listed ones of ours and no other.
const ONLY_ON: &[(&str, &[&str])] = &[
    ("mandate-api", &["mandate-core"]),
    ("mandate-tls", &[]),
    ("mandate-egress", &["mandate-tls"]),
];

/// Crates no crate of ours may depend on, however indirectly: TLS is rustls with the
/// `ring` provider (DESIGN.md), never aws-lc (a C build that doubles TLS's build time)
/// nor OpenSSL.
const NOWHERE: &[&str] = &["aws-lc-sys", "aws-lc-rs", "openssl-sys", "openssl"];

/// The workspace's packages: name → (direct normal deps, all normal deps transitively).
fn graph() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Only this host's dependencies: `--offline` cannot resolve another platform's crates
    // that were never downloaded (a fresh machine has only what its builds fetched).
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let host = String::from_utf8_lossy(&version.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            &host,
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
    for forbidden in NOT_IN_SERVICE {
        if g[SERVICE].1.contains(*forbidden) {
            bad.push(format!("{SERVICE} depends on {forbidden}"));
        }
    }
    for (krate, (direct, all)) in g {
        for forbidden in NOWHERE.iter().filter(|f| all.contains(**f)) {
            bad.push(format!("{krate} depends on {forbidden}"));
        }
        if krate != POLICY_CRATE {
            for engine in POLICY_ENGINES.iter().filter(|e| direct.contains(**e)) {
                bad.push(format!(
                    "{krate} depends on {engine}, which only {POLICY_CRATE} names"
                ));
            }
        }
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
            let only = ONLY_ON.iter().find(|(k, _)| *k == krate.as_str());
            if only.is_some_and(|(_, allowed)| !allowed.contains(&d.as_str())) {
                bad.push(format!(
                    "{krate} depends on {d}, not only on its allowed crates"
                ));
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
/// or the engine depending on the HTTP edge, is refused.
#[test]
fn a_broken_rule_is_caught() {
    let mut g = graph();
    let service = g.get_mut(SERVICE).unwrap();
    service.0.insert("axum".into());
    service.1.insert("axum".into());
    assert_eq!(violations(&g), ["mandate-service depends on axum"]);
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
        .insert("mandate-http".into());
    assert_eq!(
        violations(&g),
        ["mandate-engine depends on mandate-http, which is not below it"]
    );
    let mut g = graph();
    g.get_mut("mandate-http")
        .unwrap()
        .0
        .insert("mandate-store-sqlite".into());
    assert_eq!(
        violations(&g),
        ["mandate-http depends on mandate-store-sqlite"]
    );
    let mut g = graph();
    g.get_mut("mandate-http")
        .unwrap()
        .0
        .insert("mandate-client".into());
    assert_eq!(violations(&g), ["mandate-http depends on mandate-client"]);
    let mut g = graph();
    g.get_mut("mandate-http")
        .unwrap()
        .0
        .insert("regorus".into());
    assert_eq!(
        violations(&g),
        ["mandate-http depends on regorus, which only mandate-policy names"]
    );
    let mut g = graph();
    g.get_mut("mandate-api")
        .unwrap()
        .0
        .insert("mandate-token".into());
    assert_eq!(
        violations(&g),
        [
            // The layers alone say so today; `ONLY_ON` says it even if layers move.
            "mandate-api depends on mandate-token, which is not below it",
            "mandate-api depends on mandate-token, not only on its allowed crates"
        ]
    );
    let mut g = graph();
    g.get_mut("mandate-tls")
        .unwrap()
        .1
        .insert("aws-lc-sys".into());
    assert_eq!(violations(&g), ["mandate-tls depends on aws-lc-sys"]);
}

/// A crate's top-level modules and the other top-level modules each one names through
/// `crate::…` outside its `#[cfg(test)]` code. `lib.rs`/`main.rs` are the root, not a
/// module: they declare the modules and may name any of them.
fn module_graph(src: &std::path::Path) -> BTreeMap<String, BTreeSet<String>> {
    fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let p = e.path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut all = Vec::new();
    files(src, &mut all);
    let top = |p: &std::path::Path| -> String {
        let rel = p.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_owned()
    };
    let modules: BTreeSet<String> = all
        .iter()
        .map(|p| top(p))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &all {
        let from = top(p);
        if !modules.contains(&from) {
            continue;
        }
        let text = std::fs::read_to_string(p).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut named = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let idents: Vec<&str> = match rest.strip_prefix('{') {
                // `crate::{a, b::c}`: the first word of each item.
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|item| item.trim().split("::").next())
                    .collect(),
                None => vec![
                    rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                        .next()
                        .unwrap_or_default(),
                ],
            };
            named.extend(idents.into_iter().map(str::to_owned));
        }
        let entry = g.entry(from.clone()).or_default();
        entry.extend(
            named
                .into_iter()
                .filter(|m| modules.contains(m) && *m != from),
        );
    }
    g
}

/// A cycle in `g` (its modules in order, the first repeated at the end), if there is one.
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        m: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut c = path[at..].to_vec();
            c.push(m.to_owned());
            return Some(c);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_owned());
        for next in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(g, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|m| visit(g, m, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_a_module_cycle() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let mut dirs: Vec<_> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path().join("src"))
        .collect();
    dirs.push(root.join("examples/upstreams/src"));
    let mut found = Vec::new();
    for src in dirs.iter().filter(|d| d.is_dir()) {
        if let Some(c) = cycle(&module_graph(src)) {
            found.push(format!("{}: {}", src.display(), c.join(" → ")));
        }
    }
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}

#[test]
fn a_module_cycle_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a; mod b; mod c;").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::X;").unwrap();
    std::fs::write(
        src.join("b.rs"),
        "use crate::{c::Y, a};\n#[cfg(test)]\nmod t { use crate::c::Z; }",
    )
    .unwrap();
    std::fs::write(src.join("c.rs"), "pub struct Y;").unwrap();
    let g = module_graph(src);
    assert_eq!(cycle(&g), Some(vec!["a".into(), "b".into(), "a".into()]));
    std::fs::write(src.join("b.rs"), "use crate::c::Y;").unwrap();
    assert_eq!(cycle(&module_graph(src)), None);
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The ways to make a reqwest client other than `mandate_egress` (see `INVARIANT (one
/// HTTP client constructor)` there): reqwest has no crypto provider of its own, so such
/// a client would panic when built.
const OTHER_CLIENT_CONSTRUCTORS: &[&str] = &[
    "reqwest::Client::new(",
    "reqwest::Client::builder(",
    "reqwest::Client::default(",
    "reqwest::ClientBuilder::new(",
    "reqwest::get(",
    "reqwest::blocking::",
];

/// Regression (issue 25, TLS out): every HTTP client, in code, tests and benches, is
/// made by `mandate_egress`.
#[test]
fn every_http_client_is_made_by_mandate_egress() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    assert!(files.len() > 100, "found the sources");
    let mut bad = Vec::new();
    for f in files {
        if f.starts_with(root.join("crates/mandate-egress")) || f.ends_with("layers.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for c in OTHER_CLIENT_CONSTRUCTORS
            .iter()
            .filter(|c| text.contains(**c))
        {
            bad.push(format!("{}: {c}", f.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "use mandate_egress::builder instead:\n{}",
        bad.join("\n")
    );
}
