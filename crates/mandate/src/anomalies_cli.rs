//! The CLI for anomaly detection: `mandate anomalies list|show|ack|dismiss` and
//! `mandate anomalies baseline AGENT` (admin calls; `--json` for machine output).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Conn;
use crate::cmd_io::{call, finish, items, s, say_if_none, url_query};

#[derive(Subcommand)]
pub enum AnomaliesCmd {
    /// List anomalies, newest first
    List {
        #[command(flatten)]
        conn: Conn,
        /// Only those of this agent (agt_…)
        #[arg(long)]
        agent: Option<String>,
        /// open, acknowledged or dismissed
        #[arg(long)]
        status: Option<String>,
        /// low, medium, high or critical
        #[arg(long)]
        severity: Option<String>,
        /// new_action, new_resource_type, new_data_class, rate_spike, off_hours,
        /// deny_burst or unusual_delegation
        #[arg(long)]
        kind: Option<String>,
        /// At most this many items per page (the server caps it)
        #[arg(long)]
        limit: Option<u32>,
        /// Continue from this cursor (printed after a full page)
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one anomaly
    Show {
        #[command(flatten)]
        conn: Conn,
        /// The id to show
        id: String,
    },
    /// Acknowledge: it was real and is handled (lifts its hold; does not resume an agent)
    Ack(Resolve),
    /// Dismiss as a false positive: lifts its hold and teaches the baseline
    Dismiss(Resolve),
    /// Show what the detector learned of an agent
    Baseline {
        #[command(flatten)]
        conn: Conn,
        /// The agent's id
        agent: String,
    },
}

#[derive(Args)]
pub struct Resolve {
    #[command(flatten)]
    conn: Conn,
    /// The anomaly (anm_…)
    id: String,
    /// Why: what was done about it, or why it is a false positive (recorded in the audit log)
    #[arg(long)]
    comment: Option<String>,
}

fn line(a: &Value) -> String {
    format!(
        "{}  {}  {:<8} {:>3}  {:<18} {:<8} {:<12} {}",
        s(a, "id"),
        s(a, "at"),
        s(a, "severity"),
        a.get("score").and_then(Value::as_u64).unwrap_or(0),
        s(a, "kind"),
        s(a, "response"),
        s(a, "status"),
        s(a, "explanation"),
    )
}

fn print_one(a: &Value) {
    println!("{}", line(a));
    println!("  agent: {}  key: {}", s(a, "agent"), s(a, "key"));
    if a.get("resolved_by").is_some_and(|v| !v.is_null()) {
        println!(
            "  {} by {} at {}: {}",
            s(a, "status"),
            s(a, "resolved_by"),
            s(a, "resolved_at"),
            s(a, "comment")
        );
    }
}

fn print_baseline(b: &Value) {
    if b.get("enabled") == Some(&Value::Bool(false)) {
        println!("anomaly detection is off on this server");
        return;
    }
    let n = |k: &str| b.get(k).and_then(Value::as_u64).unwrap_or(0);
    println!(
        "{}: {} requests since {}{}{}",
        s(b, "agent"),
        n("requests"),
        s(b, "first_seen"),
        if b.get("learning") == Some(&Value::Bool(true)) {
            format!(", learning until {}", s(b, "learning_until"))
        } else {
            String::new()
        },
        if b.get("suspended_by_detector") == Some(&Value::Bool(true)) {
            ", SUSPENDED by the detector"
        } else {
            ""
        }
    );
    for set in ["actions", "resource_types", "data_classes", "delegated_by"] {
        let names: Vec<String> = b
            .get(set)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}×{}",
                            v.get("count").and_then(Value::as_u64).unwrap_or(0)
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!("  {set}: {}", names.join(", "));
    }
    let rate = b.get("rate").cloned().unwrap_or(Value::Null);
    let f = |k: &str| rate.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    println!(
        "  rate: {:.1} ± {:.1} per {} s; a spike is over {:.0}",
        f("mean"),
        f("stddev"),
        f("bucket_secs"),
        f("spike_above")
    );
    println!(
        "  deny ratio: {:.1}%",
        b.get("deny_ratio").and_then(Value::as_f64).unwrap_or(0.0) * 100.0
    );
    if let Some(p) = b.get("pending").and_then(Value::as_object) {
        for (k, v) in p {
            println!(
                "  pending {k}: score {}{}",
                v.get("score").and_then(Value::as_u64).unwrap_or(0),
                if v.get("hold") == Some(&Value::Bool(true)) {
                    ", holding matching requests for approval"
                } else {
                    ""
                }
            );
        }
    }
}

pub async fn anomalies(cmd: AnomaliesCmd) -> ExitCode {
    match cmd {
        AnomaliesCmd::List {
            conn,
            agent,
            status,
            severity,
            kind,
            limit,
            cursor,
        } => {
            let q = url_query(&[
                ("agent", agent),
                ("status", status),
                ("severity", severity),
                ("kind", kind),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor),
            ]);
            let q = if q.is_empty() { q } else { format!("?{q}") };
            let r = call(&conn, Method::GET, &format!("/v1/anomalies{q}"), None).await;
            finish(&conn, r, |v| {
                say_if_none(v, "no anomalies");
                for a in items(v) {
                    println!("{}", line(a));
                }
                if let Some(c) = v.get("next_cursor").and_then(Value::as_str) {
                    println!("(more: --cursor {c})");
                }
            })
        }
        AnomaliesCmd::Show { conn, id } => {
            let r = call(&conn, Method::GET, &format!("/v1/anomalies/{id}"), None).await;
            finish(&conn, r, print_one)
        }
        AnomaliesCmd::Ack(a) => resolve(a, "acknowledge").await,
        AnomaliesCmd::Dismiss(a) => resolve(a, "dismiss").await,
        AnomaliesCmd::Baseline { conn, agent } => {
            let path = format!("/v1/agents/{agent}/baseline");
            let r = call(&conn, Method::GET, &path, None).await;
            finish(&conn, r, print_baseline)
        }
    }
}

async fn resolve(a: Resolve, verb: &str) -> ExitCode {
    let body = a.comment.map(|c| json!({"comment": c}));
    let path = format!("/v1/anomalies/{}/{verb}", a.id);
    let r = call(&a.conn, Method::POST, &path, body).await;
    finish(&a.conn, r, print_one)
}
