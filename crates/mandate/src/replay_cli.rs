//! `mandate policy replay`: asks the server to re-decide the recorded decisions of a
//! window with a candidate version (`POST /v1/policies/{version}/replay`) and prints
//! the report as a table or as JSON. Relative windows (`--since 7d`) are turned into
//! times here, by the machine's clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use mandate_api as api;
use mandate_core::clock::{Clock as _, SystemClock};
use mandate_core::time::Timestamp;

use crate::Conn;
use crate::cmd_io::{Fail, OrFail, Res, client, exit, print_json, usage};

/// How the report is printed.
#[derive(Clone, Copy, Default, ValueEnum)]
pub enum ReplayFormat {
    /// Counts, then one line per group of changed decisions.
    #[default]
    Table,
    /// The API's report, as sent.
    Json,
}

/// `mandate policy replay`.
#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    conn: Conn,
    /// The candidate policy version
    #[arg(long)]
    version: u64,
    /// Decisions recorded at or after this time: RFC 3339, or an age such as 7d, 12h,
    /// 30m (default: the log's start)
    #[arg(long)]
    since: Option<String>,
    /// Decisions recorded before this time: RFC 3339 or an age (default: now)
    #[arg(long)]
    until: Option<String>,
    /// The most decisions to read, oldest first (server default 100000)
    #[arg(long)]
    limit: Option<u32>,
    /// A JSON file of boundary edits: {"agt_…": {boundary}, …}
    #[arg(long)]
    boundaries: Option<PathBuf>,
    /// table or json (--json is the same as --format json)
    #[arg(long, value_enum, default_value_t)]
    format: ReplayFormat,
}

/// A time argument: RFC 3339, or an age before `now` (`<n>s|m|h|d`).
pub(crate) fn time_arg(name: &str, v: &str, now: Timestamp) -> Res<String> {
    if let Ok(t) = Timestamp::parse(v) {
        return Ok(t.to_string());
    }
    let unit = match v.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3_600,
        Some('d') => 86_400,
        _ => 0,
    };
    let n = v
        .get(..v.len().saturating_sub(1))
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0 && unit > 0);
    match n {
        Some(n) => Ok(now.plus_secs(-n.saturating_mul(unit)).to_string()),
        None => Err(usage(format!(
            "--{name} `{}`: give an RFC 3339 time or an age such as 7d, 12h, 30m",
            v.escape_debug()
        ))),
    }
}

fn request(a: &ReplayArgs, now: Timestamp) -> Res<api::PolicyReplayRequest> {
    let boundaries = match &a.boundaries {
        None => BTreeMap::new(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Fail(1, format!("cannot read {}: {e}", p.display())))?;
            serde_json::from_str(&text)
                .map_err(|e| usage(format!("{}: not boundary edits: {e}", p.display())))?
        }
    };
    Ok(api::PolicyReplayRequest {
        since: a
            .since
            .as_deref()
            .map(|v| time_arg("since", v, now))
            .transpose()?,
        until: a
            .until
            .as_deref()
            .map(|v| time_arg("until", v, now))
            .transpose()?,
        limit: a.limit,
        boundaries,
    })
}

/// Runs `mandate policy replay`.
pub async fn run(a: ReplayArgs) -> ExitCode {
    let r = async {
        let req = request(&a, SystemClock.now())?;
        client(&a.conn)?
            .replay_policies(&a.version.to_string(), &req)
            .await
            .or_fail(&a.conn)
    }
    .await;
    let json = a.conn.json || matches!(a.format, ReplayFormat::Json);
    exit(r.map(|report| {
        if json {
            print_json(&report);
        } else {
            print_table(&report);
        }
    }))
}

fn print_table(r: &api::PolicyReplayReport) {
    let c = &r.counts;
    let active = r
        .active_version
        .map_or_else(|| "none".to_owned(), |v| format!("v{v}"));
    println!("replay of policy version {} (active: {active})", r.version);
    println!(
        "decisions {}  same {}  allow→deny {}  deny→allow {}  other changes {}  not replayed {}  skipped {}  errors {}",
        c.decisions,
        c.same,
        c.allow_to_deny,
        c.deny_to_allow,
        c.other_changes,
        c.not_replayed,
        c.skipped,
        c.errors
    );
    if r.truncated {
        println!("truncated: the window holds more decisions than were read (--limit)");
    }
    if c.changed_with_redacted_context > 0 {
        println!(
            "{} changed decision(s) had redacted context fields: the candidate saw their markers",
            c.changed_with_redacted_context
        );
    }
    if r.changes.is_empty() {
        println!("no decision changes");
    }
    for g in &r.changes {
        let policies = if g.policies.is_empty() {
            "-".to_owned()
        } else {
            g.policies.join(",")
        };
        println!(
            "{:>7}  {}→{}  {}  {}  {}  {}  e.g. {}",
            g.count,
            g.from,
            g.to,
            g.agent,
            g.action,
            g.reason,
            policies,
            g.example_events.join(" ")
        );
    }
    if r.groups_truncated {
        println!("(more groups than listed; all are counted above)");
    }
    for s in &r.skipped {
        println!(
            "skipped {:>7}  {}  e.g. {}",
            s.count,
            s.reason,
            s.example_events.join(" ")
        );
    }
}
