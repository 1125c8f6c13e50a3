//! `mandate review`: access review campaigns (issue 24) through the API — start one,
//! list and show them, decide an item (certify, narrow, decommission) and write the
//! report (JSON, CSV or HTML). Relative times (`--since 30d`, `--due 14d`) are turned
//! into times here, by the machine's clock.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use mandate_api as api;
use mandate_client::PageQuery;
use mandate_core::clock::{Clock as _, SystemClock};
use mandate_core::time::Timestamp;

use crate::Conn;
use crate::cmd_io::{Fail, OrFail, Res, client, exit, finish, more, say_if_none, usage};
use crate::replay_cli::time_arg;

#[derive(Subcommand)]
pub enum ReviewCmd {
    /// Start a campaign: every agent in scope (not decommissioned, matching every
    /// criterion given; none given: every agent) with its grants beside its use
    Start(StartArgs),
    /// List campaigns, oldest first
    List {
        #[command(flatten)]
        conn: Conn,
        /// At most this many per page (the server caps it)
        #[arg(long)]
        limit: Option<u32>,
        /// Continue from this cursor (printed after a full page)
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show a campaign: each agent's grants, their use and the suggestion
    Show {
        #[command(flatten)]
        conn: Conn,
        /// The campaign (rev_…)
        id: String,
    },
    /// Keep an agent's access as it is
    Certify(DecideArgs),
    /// Narrow an agent's boundary to the suggestion (or to --boundary FILE)
    Narrow(DecideArgs),
    /// Decommission an agent (final; its credentials are revoked)
    Decommission(DecideArgs),
    /// Write a campaign's report
    Report(ReportArgs),
}

#[derive(Args)]
pub struct StartArgs {
    #[command(flatten)]
    conn: Conn,
    /// Agents of this owner
    #[arg(long)]
    owner: Option<String>,
    /// Only this agent (repeat for more)
    #[arg(long = "agent")]
    agents: Vec<String>,
    /// Agents whose labels match this selector (`team=crm,env!=dev`)
    #[arg(long)]
    selector: Option<String>,
    /// When pending items become overdue: RFC 3339, or a time from now such as 14d
    #[arg(long)]
    due: String,
    /// The usage window's start: RFC 3339 or an age such as 30d (server default 30d)
    #[arg(long)]
    since: Option<String>,
    /// The campaign's name
    #[arg(long)]
    name: Option<String>,
}

#[derive(Args)]
pub struct DecideArgs {
    #[command(flatten)]
    conn: Conn,
    /// The campaign (rev_…)
    id: String,
    /// The agent (agt_…)
    agent: String,
    /// A comment recorded with the decision
    #[arg(long)]
    comment: Option<String>,
    /// narrow only: a JSON file with the boundary to apply (within the current one)
    #[arg(long)]
    boundary: Option<PathBuf>,
}

/// A report's format.
#[derive(Clone, Copy, Default, ValueEnum)]
pub enum ReportFormat {
    /// The campaign as the API answers it.
    #[default]
    Json,
    /// One row per grant of each agent.
    Csv,
    /// One self-contained page.
    Html,
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    conn: Conn,
    /// The campaign (rev_…)
    id: String,
    /// json, csv or html
    #[arg(long, value_enum, default_value_t)]
    format: ReportFormat,
    /// Write it to this file instead of standard output
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A time ahead of `now`: RFC 3339, or `<n>s|m|h|d` from now.
fn due_arg(v: &str, now: Timestamp) -> Res<String> {
    if let Ok(t) = Timestamp::parse(v) {
        return Ok(t.to_string());
    }
    // An age read backwards is a time ahead.
    let back = time_arg("due", v, now)?;
    let back = Timestamp::parse(&back).map_err(|e| usage(e.to_string()))?;
    Ok(now.plus_secs(now.secs() - back.secs()).to_string())
}

/// Runs `mandate review …`.
pub async fn review(cmd: ReviewCmd) -> ExitCode {
    match cmd {
        ReviewCmd::Start(a) => start(a).await,
        ReviewCmd::List {
            conn,
            limit,
            cursor,
        } => {
            let q = PageQuery { limit, cursor };
            let r = async { client(&conn)?.list_reviews(&q).await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                say_if_none(&v.items, "no access reviews");
                for s in &v.items {
                    println!("{}", summary_line(s));
                }
                more(v.next_cursor.as_deref());
            })
        }
        ReviewCmd::Show { conn, id } => {
            let r = async { client(&conn)?.review(&id).await.or_fail(&conn) }.await;
            finish(&conn, r, print_review)
        }
        ReviewCmd::Certify(a) => decide(a, "certify").await,
        ReviewCmd::Narrow(a) => decide(a, "narrow").await,
        ReviewCmd::Decommission(a) => decide(a, "decommission").await,
        ReviewCmd::Report(a) => report(a).await,
    }
}

async fn start(a: StartArgs) -> ExitCode {
    let r = async {
        let now = SystemClock.now();
        let req = api::NewReview {
            name: a.name.clone(),
            owner: a.owner.clone(),
            agents: a.agents.clone(),
            selector: a.selector.clone(),
            since: a
                .since
                .as_deref()
                .map(|v| time_arg("since", v, now))
                .transpose()?,
            due: due_arg(&a.due, now)?,
        };
        client(&a.conn)?.start_review(&req).await.or_fail(&a.conn)
    }
    .await;
    finish(&a.conn, r, print_review)
}

async fn decide(a: DecideArgs, verb: &str) -> ExitCode {
    let r = async {
        let boundary = match &a.boundary {
            None => None,
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Fail(1, format!("cannot read {}: {e}", p.display())))?;
                Some(
                    serde_json::from_str(&text)
                        .map_err(|e| usage(format!("{}: not a boundary: {e}", p.display())))?,
                )
            }
        };
        let req = api::ReviewDecision {
            comment: a.comment.clone(),
            boundary,
        };
        client(&a.conn)?
            .decide_review_item(&a.id, &a.agent, verb, &req)
            .await
            .or_fail(&a.conn)
    }
    .await;
    finish(&a.conn, r, |d| {
        println!(
            "{} {} by {}{}",
            d.item.agent,
            d.item.state,
            d.item.decided_by.as_deref().unwrap_or("-"),
            if d.review_completed {
                "; the campaign is complete"
            } else {
                ""
            }
        );
    })
}

async fn report(a: ReportArgs) -> ExitCode {
    let format = match a.format {
        ReportFormat::Json => "json",
        ReportFormat::Csv => "csv",
        ReportFormat::Html => "html",
    };
    let r = async {
        let text = client(&a.conn)?
            .review_report(&a.id, format)
            .await
            .or_fail(&a.conn)?;
        match &a.out {
            Some(p) => std::fs::write(p, text)
                .map_err(|e| Fail(1, format!("cannot write {}: {e}", p.display()))),
            None => {
                print!("{text}");
                Ok(())
            }
        }
    }
    .await;
    exit(r)
}

fn summary_line(s: &api::ReviewSummary) -> String {
    let c = &s.counts;
    format!(
        "{}  {:9}  {} items: {} pending, {} certified, {} narrowed, {} decommissioned, {} escalated  due {}  {}",
        s.id,
        s.status,
        c.items,
        c.pending,
        c.certified,
        c.narrowed,
        c.decommissioned,
        c.escalated,
        s.due,
        s.name.escape_debug()
    )
}

fn list(xs: &[String]) -> String {
    xs.iter()
        .map(|x| x.escape_debug().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn print_review(r: &api::Review) {
    println!("{}", summary_line(&r.review));
    println!(
        "window {} .. {} ({} allow decisions read)",
        r.review.since, r.review.until, r.review.decisions_read
    );
    for i in &r.items {
        println!(
            "\n{} {} (owner {}): {}, {} allows",
            i.agent,
            i.name.escape_debug(),
            i.owner.escape_debug(),
            i.state,
            i.used.allows
        );
        for g in &i.grants {
            println!(
                "  grant {} [{}] on [{}]: {} allows, {}",
                g.index,
                list(&g.grant.actions),
                list(&g.grant.resources),
                g.allows,
                g.fate
            );
            if let Some(n) = g.narrowed.as_ref().filter(|_| g.fate == "narrowed") {
                println!(
                    "    suggested [{}] on [{}]",
                    list(&n.actions),
                    list(&n.resources)
                );
            }
        }
        if !i.unused_delegates.is_empty() {
            println!("  delegates never used: {}", i.unused_delegates.join(","));
        }
        if i.unchanged {
            println!("  suggestion: keep as is");
        }
    }
}
