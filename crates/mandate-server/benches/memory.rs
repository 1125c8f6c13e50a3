//! Resident memory with 100,000 agents loaded: the process's `VmRSS` (from
//! `/proc/self/status`) before loading, after building the agents (real `Agent` values,
//! four labels, two grants and an audience each), after the whole `Snapshot` (plus 100
//! compiled policies, the key ring, cutoffs and revoked ids), and after a refresh (a
//! second snapshot built while the first is alive, then the first dropped, as
//! `AppState::refresh` does). `VmHWM` is the peak.
//!
//! Linux only (reads `/proc`); prints `n/a` elsewhere.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark setup fails loudly"
)]

mod fixture;

use std::hint::black_box;

const AGENTS: usize = 100_000;
const POLICIES: usize = 100;

/// A `kB` field of `/proc/self/status`, in MiB.
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn show(what: &str, base: Option<f64>) -> Option<f64> {
    let rss = status_mib("VmRSS:");
    match (rss, base) {
        (Some(r), Some(b)) => println!(
            "{what:<44} VmRSS {r:>7.1} MiB  (+{:.1} MiB, {:.0} bytes/agent)",
            r - b,
            (r - b) * 1024.0 * 1024.0 / AGENTS as f64
        ),
        (Some(r), None) => println!("{what:<44} VmRSS {r:>7.1} MiB"),
        _ => println!("{what:<44} VmRSS n/a"),
    }
    rss
}

fn main() {
    println!("memory: {AGENTS} agents, {POLICIES} policies");
    let base = show("start", None);
    let agents = fixture::agents(AGENTS);
    show("agents built (HashMap<AgentId, Agent>)", base);
    let policies = fixture::policies(POLICIES);
    let snap = fixture::snapshot(agents, policies.clone());
    let loaded = show("snapshot built (agents + policies + ring)", base);
    let fresh = fixture::snapshot(fixture::agents(AGENTS), policies);
    show("second snapshot built (refresh, both alive)", base);
    drop(black_box(snap));
    show("first snapshot dropped (after the swap)", base);
    println!(
        "peak VmHWM {:.1} MiB; snapshot holds {} agents",
        status_mib("VmHWM:").unwrap_or(f64::NAN),
        black_box(&fresh).agents.len()
    );
    if let (Some(l), Some(b)) = (loaded, base) {
        println!(
            "one snapshot of {AGENTS} agents: {:.1} MiB resident above the start",
            l - b
        );
    }
}
