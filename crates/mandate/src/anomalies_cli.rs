//! The CLI for anomaly detection: `mandate anomalies list|show|ack|dismiss` and
//! `mandate anomalies baseline AGENT` (admin calls; `--json` for machine output).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use mandate_api as api;
use mandate_client::{AnomalyQuery, PageQuery};

use crate::Conn;
use crate::cmd_io::{OrFail, client, finish, more, or_dash, say_if_none};

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

fn line(a: &api::Anomaly) -> String {
    format!(
        "{}  {}  {:<8} {:>3}  {:<18} {:<8} {:<12} {}",
        a.id, a.at, a.severity, a.score, a.kind, a.response, a.status, a.explanation,
    )
}

fn print_one(a: &api::Anomaly) {
    println!("{}", line(a));
    println!("  agent: {}  key: {}", a.agent, a.key);
    if let Some(by) = &a.resolved_by {
        println!(
            "  {} by {} at {}: {}",
            a.status,
            by,
            or_dash(a.resolved_at.as_deref()),
            or_dash(a.comment.as_deref())
        );
    }
}

fn print_baseline(b: &api::Baseline) {
    let Some(s) = b.summary.as_ref().filter(|_| b.enabled) else {
        println!("anomaly detection is off on this server");
        return;
    };
    println!(
        "{}: {} requests since {}{}{}",
        b.agent,
        s.requests,
        or_dash(s.first_seen.as_deref()),
        if s.learning {
            format!(", learning until {}", or_dash(s.learning_until.as_deref()))
        } else {
            String::new()
        },
        if s.suspended_by_detector {
            ", SUSPENDED by the detector"
        } else {
            ""
        }
    );
    let sets = [
        ("actions", &s.actions),
        ("resource_types", &s.resource_types),
        ("data_classes", &s.data_classes),
        ("delegated_by", &s.delegated_by),
    ];
    for (set, seen) in sets {
        let names: Vec<String> = seen
            .iter()
            .map(|(k, v)| format!("{k}×{}", v.count))
            .collect();
        println!("  {set}: {}", names.join(", "));
    }
    let rate = &s.rate;
    println!(
        "  rate: {:.1} ± {:.1} per {} s; a spike is over {:.0}",
        rate.mean, rate.stddev, rate.bucket_secs, rate.spike_above
    );
    println!("  deny ratio: {:.1}%", s.deny_ratio * 100.0);
    for (k, v) in &s.pending {
        println!(
            "  pending {k}: score {}{}",
            v.score,
            if v.hold {
                ", holding matching requests for approval"
            } else {
                ""
            }
        );
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
            let q = AnomalyQuery {
                agent,
                status,
                severity,
                kind,
                page: PageQuery { limit, cursor },
            };
            let r = async { client(&conn)?.list_anomalies(&q).await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                say_if_none(&v.items, "no anomalies");
                for a in &v.items {
                    println!("{}", line(a));
                }
                more(v.next_cursor.as_deref());
            })
        }
        AnomaliesCmd::Show { conn, id } => {
            let r = async { client(&conn)?.get_anomaly(&id).await.or_fail(&conn) }.await;
            finish(&conn, r, print_one)
        }
        AnomaliesCmd::Ack(a) => resolve(a, true).await,
        AnomaliesCmd::Dismiss(a) => resolve(a, false).await,
        AnomaliesCmd::Baseline { conn, agent } => {
            let r = async { client(&conn)?.baseline(&agent).await.or_fail(&conn) }.await;
            finish(&conn, r, print_baseline)
        }
    }
}

async fn resolve(a: Resolve, acknowledge: bool) -> ExitCode {
    let req = api::AnomalyResolution { comment: a.comment };
    let r = async {
        let c = client(&a.conn)?;
        if acknowledge {
            c.acknowledge_anomaly(&a.id, &req).await
        } else {
            c.dismiss_anomaly(&a.id, &req).await
        }
        .or_fail(&a.conn)
    }
    .await;
    finish(&a.conn, r, print_one)
}
