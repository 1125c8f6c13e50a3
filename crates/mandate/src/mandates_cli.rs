//! The CLI for mandates, approvals and development user tokens: `mandate mandate …`,
//! `mandate approvals …` and `mandate dev issue-user-token`. Kept apart from `client.rs`
//! because these commands are not all admin calls: `mandate request` and `complete` carry
//! the agent's own access token, and an approver may use a user token.
//!
//! Exit codes as everywhere: 0 success, 1 the server refused or failed (for
//! `mandate request`, also a mandate that ends up denied, or is still pending when
//! `--wait` runs out), 2 bad usage.

use std::process::ExitCode;

use clap::Subcommand;
use mandate_api::{self as api, MandateStatus};
use mandate_client::{Client, MandateQuery, PageQuery};
use mandate_core::clock::{Clock, SystemClock};

use crate::Conn;
use crate::cmd_io::{
    Fail, OrFail, Res, client, exit, finish, more, print_json, say_if_none, text_arg, usage,
};

#[derive(Subcommand)]
pub enum MandateCmd {
    /// Ask for a mandate, as the agent (MANDATE_TOKEN = the agent's access token)
    Request {
        #[command(flatten)]
        conn: Conn,
        /// What the agent will do (recorded, shown to approvers)
        #[arg(long)]
        intent: String,
        /// A grant, `ACTIONS;RESOURCES[;DATA_CLASSES]`, each a comma-separated list of
        /// patterns (repeatable), e.g. `billing:read,billing:refund;Billing::Invoice/*`
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
        /// Lifetime in seconds, counted from activation
        #[arg(long)]
        lifetime: Option<u32>,
        /// Why, for the approver
        #[arg(long)]
        justification: Option<String>,
        /// The token of the user the agent acts for, or @FILE
        #[arg(long)]
        user_token: Option<String>,
        /// Wait up to SECS for an approver while the request is pending
        #[arg(long, value_name = "SECS")]
        wait: Option<u32>,
    },
    /// List mandates
    List {
        #[command(flatten)]
        conn: Conn,
        /// Only those of this agent (agt_…)
        #[arg(long)]
        agent: Option<String>,
        /// pending_approval, active, denied, expired, revoked or completed
        #[arg(long)]
        status: Option<String>,
        /// The user's subject
        #[arg(long)]
        user: Option<String>,
        /// At most this many items per page (the server caps it)
        #[arg(long)]
        limit: Option<u32>,
        /// Continue from this cursor (printed after a full page)
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one mandate
    Show {
        #[command(flatten)]
        conn: Conn,
        /// The id to show
        id: String,
        /// While it is pending, wait up to SECS for a decision
        #[arg(long, value_name = "SECS")]
        wait: Option<u32>,
    },
    /// End a mandate early because the task is done (as the agent holding it)
    Complete {
        #[command(flatten)]
        conn: Conn,
        /// The mandate (mdt_…)
        id: String,
    },
    /// Revoke a mandate; tokens bound to it, and tokens delegated from them, stop working
    Revoke {
        #[command(flatten)]
        conn: Conn,
        /// The id to revoke
        id: String,
        /// Why, recorded in the audit log
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ApprovalsCmd {
    /// List mandate requests waiting for an approver
    List {
        #[command(flatten)]
        conn: Conn,
        /// At most this many items per page (the server caps it)
        #[arg(long)]
        limit: Option<u32>,
        /// Continue from this cursor (printed after a full page)
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Approve a pending request (an approver or admin token, or an approver's user token)
    Approve(DecideArgs),
    /// Deny a pending request
    Deny(DecideArgs),
}

#[derive(clap::Args)]
pub struct DecideArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The mandate request (mdt_…)
    pub id: String,
    /// A comment recorded with the decision (a ticket, a reason)
    #[arg(long)]
    pub comment: Option<String>,
}

#[derive(Subcommand)]
pub enum DevCmd {
    /// Mint a user token from the development issuer (the server must run with
    /// `dev.user_tokens = true`); prints only the token
    #[command(name = "issue-user-token")]
    IssueUserToken {
        #[command(flatten)]
        conn: Conn,
        /// The user's subject
        #[arg(long)]
        sub: String,
        /// The user's email
        #[arg(long)]
        email: Option<String>,
        /// A group the user is in (repeatable)
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Lifetime in seconds
        #[arg(long, value_name = "SECS")]
        lifetime: Option<u32>,
    },
}

/// Parses `ACTIONS;RESOURCES[;DATA_CLASSES]` into a grant.
fn parse_grant(spec: &str) -> Res<api::Grant> {
    let bad = |why: &str| {
        usage(format!(
            "grant `{spec}` {why}: expected ACTIONS;RESOURCES[;DATA_CLASSES], \
             comma-separated lists"
        ))
    };
    let parts: Vec<&str> = spec.split(';').collect();
    let field = |i: usize, name: &str| -> Res<Vec<String>> {
        let items: Vec<String> = parts
            .get(i)
            .copied()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        if items.is_empty() {
            return Err(bad(&format!("has no {name}")));
        }
        Ok(items)
    };
    match parts.len() {
        2 | 3 => Ok(api::Grant {
            actions: field(0, "actions")?,
            resources: field(1, "resources")?,
            data_classes: if parts.len() == 3 {
                field(2, "data classes")?
            } else {
                Vec::new()
            },
        }),
        _ => Err(bad("has the wrong number of parts")),
    }
}

/// A token given inline or as @FILE (trimmed).
fn token_arg(v: &str) -> Res<String> {
    let text = text_arg(v)?;
    let t = text.trim();
    if t.is_empty() {
        return Err(usage("the user token is empty"));
    }
    Ok(t.to_owned())
}

fn is_pending(m: &api::Mandate) -> bool {
    m.status == MandateStatus::PendingApproval
}

/// The longest wait the server accepts in one `GET /v1/mandates/{id}?wait=`.
const MAX_POLL_SECS: i64 = 60;

/// Long-polls `GET /v1/mandates/{id}?wait=N` until the mandate is no longer pending or
/// `secs` have passed (each poll asks for at most [`MAX_POLL_SECS`]; the next one asks
/// again for what is left).
async fn wait_for(
    conn: &Conn,
    c: &Client,
    clock: &dyn Clock,
    id: &str,
    secs: u32,
) -> Res<api::Mandate> {
    let deadline = clock.now().secs().saturating_add(i64::from(secs));
    loop {
        let left = deadline
            .saturating_sub(clock.now().secs())
            .clamp(0, MAX_POLL_SECS);
        let m = c.get_mandate(id, Some(left)).await.or_fail(conn)?;
        if !is_pending(&m) || left == 0 {
            return Ok(m);
        }
        // Time is up; or the poll was capped (or ignored): ask again, after a pause so a
        // server that ignores `wait` does not make this a busy loop.
        if clock.now().secs() >= deadline {
            return Ok(m);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn user_part(m: &api::Mandate) -> String {
    m.user
        .as_ref()
        .map(|u| format!(" user={}", u.sub))
        .unwrap_or_default()
}

fn mandate_line(m: &api::Mandate) -> String {
    format!(
        "{}  {:<16} agent={}{}  {}",
        m.id,
        m.status.as_str(),
        m.agent,
        user_part(m),
        m.intent
    )
}

fn grant_text(g: &api::Grant) -> String {
    let (a, r) = (g.actions.join(","), g.resources.join(","));
    if g.data_classes.is_empty() {
        format!("{a};{r}")
    } else {
        format!("{a};{r};{}", g.data_classes.join(","))
    }
}

fn print_mandate(m: &api::Mandate) {
    println!("{}", mandate_line(m));
    for g in &m.scope {
        println!("  grant: {}", grant_text(g));
    }
    if let Some(j) = &m.justification {
        println!("  justification: {j}");
    }
    let times = [
        ("approval deadline", &m.approval_deadline),
        ("expires", &m.expires_at),
        ("decided by", &m.decided_by),
        ("comment", &m.decision_comment),
        ("ended by", &m.ended_by),
    ];
    for (label, v) in times {
        if let Some(v) = v {
            println!("  {label}: {v}");
        }
    }
}

/// A mandate that is not active after the request (and any wait) is a refusal.
fn request_outcome(m: api::Mandate, waited: bool) -> Res<api::Mandate> {
    match m.status {
        MandateStatus::Active => Ok(m),
        MandateStatus::PendingApproval if !waited => Ok(m),
        MandateStatus::PendingApproval => Err(Fail(
            1,
            format!(
                "mandate {} is still pending approval (give --wait more time, or \
                 `mandate mandate show {} --wait SECS` later)",
                m.id, m.id
            ),
        )),
        other => {
            let comment = m
                .decision_comment
                .as_ref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            Err(Fail(
                1,
                format!("mandate {} is {}{comment}", m.id, other.as_str()),
            ))
        }
    }
}

pub async fn mandate(cmd: MandateCmd) -> ExitCode {
    match cmd {
        MandateCmd::Request {
            conn,
            intent,
            grants,
            lifetime,
            justification,
            user_token,
            wait,
        } => {
            let r = async {
                let req = api::NewMandate {
                    intent,
                    scope: grants.iter().map(|g| parse_grant(g)).collect::<Res<_>>()?,
                    lifetime_secs: lifetime,
                    justification,
                    user_token: user_token.as_deref().map(token_arg).transpose()?,
                };
                let c = client(&conn)?;
                let created = c.request_mandate(&req).await.or_fail(&conn)?;
                let m = match wait {
                    Some(secs) if is_pending(&created) => {
                        wait_for(&conn, &c, &SystemClock, &created.id, secs).await?
                    }
                    _ => created,
                };
                Ok(m)
            }
            .await;
            // Print the mandate whatever its status; then judge it.
            let r = r.and_then(|m| {
                if conn.json {
                    print_json(&m);
                } else {
                    print_mandate(&m);
                }
                request_outcome(m, wait.is_some())
            });
            exit(r)
        }
        MandateCmd::List {
            conn,
            agent,
            status,
            user,
            limit,
            cursor,
        } => {
            let q = MandateQuery {
                agent,
                status,
                user,
                page: PageQuery { limit, cursor },
            };
            let r = async { client(&conn)?.list_mandates(&q).await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                say_if_none(&v.items, "no mandates");
                for m in &v.items {
                    println!("{}", mandate_line(m));
                }
                more(v.next_cursor.as_deref());
            })
        }
        MandateCmd::Show { conn, id, wait } => {
            let r = async {
                let c = client(&conn)?;
                match wait {
                    Some(secs) => wait_for(&conn, &c, &SystemClock, &id, secs).await,
                    None => c.get_mandate(&id, None).await.or_fail(&conn),
                }
            }
            .await;
            finish(&conn, r, print_mandate)
        }
        MandateCmd::Complete { conn, id } => {
            let r = async { client(&conn)?.complete_mandate(&id).await.or_fail(&conn) }.await;
            finish(&conn, r, print_mandate)
        }
        MandateCmd::Revoke { conn, id, reason } => {
            let req = api::RevokeMandate { reason };
            let r = async {
                client(&conn)?
                    .revoke_mandate(&id, &req)
                    .await
                    .or_fail(&conn)
            }
            .await;
            finish(&conn, r, print_mandate)
        }
    }
}

fn approval_line(a: &api::Approval) -> String {
    // Its id is the mandate's.
    let (m, agent) = (&a.mandate, &a.agent);
    let grants: Vec<String> = m.scope.iter().map(grant_text).collect();
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    format!(
        "{}  agent={} ({}, owner {}){}  until {}\n  intent: {}\n  grants: {}",
        m.id,
        agent.id,
        dash(&agent.name),
        dash(&agent.owner),
        user_part(m),
        dash(&m.approval_deadline),
        m.intent,
        grants.join("  ")
    )
}

pub async fn approvals(cmd: ApprovalsCmd) -> ExitCode {
    match cmd {
        ApprovalsCmd::List {
            conn,
            limit,
            cursor,
        } => {
            let q = PageQuery { limit, cursor };
            let r = async { client(&conn)?.list_approvals(&q).await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                say_if_none(&v.items, "no approvals waiting");
                for a in &v.items {
                    println!("{}", approval_line(a));
                }
                more(v.next_cursor.as_deref());
            })
        }
        ApprovalsCmd::Approve(a) => decide(a, true).await,
        ApprovalsCmd::Deny(a) => decide(a, false).await,
    }
}

async fn decide(a: DecideArgs, approve: bool) -> ExitCode {
    let req = api::ApprovalDecision { comment: a.comment };
    let r = async {
        let c = client(&a.conn)?;
        if approve {
            c.approve(&a.id, &req).await
        } else {
            c.deny(&a.id, &req).await
        }
        .or_fail(&a.conn)
    }
    .await;
    finish(&a.conn, r, print_mandate)
}

pub async fn dev(cmd: DevCmd) -> ExitCode {
    match cmd {
        DevCmd::IssueUserToken {
            conn,
            sub,
            email,
            groups,
            lifetime,
        } => {
            let req = api::NewDevUserToken {
                sub,
                email,
                groups,
                lifetime_secs: lifetime,
            };
            let r = async {
                client(&conn)?
                    .issue_dev_user_token(&req)
                    .await
                    .or_fail(&conn)
            }
            .await;
            // Just the token, so `$(mandate dev issue-user-token …)` works.
            finish(&conn, r, |v| println!("{}", v.token))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn grants_parse_from_the_command_line() {
        assert_eq!(
            parse_grant("billing:read, billing:refund;Billing::Invoice/*").ok(),
            Some(api::Grant {
                actions: strings(&["billing:read", "billing:refund"]),
                resources: strings(&["Billing::Invoice/*"]),
                data_classes: vec![],
            })
        );
        assert_eq!(
            parse_grant("crm:read;Crm::Contact/*;internal,pii").ok(),
            Some(api::Grant {
                actions: strings(&["crm:read"]),
                resources: strings(&["Crm::Contact/*"]),
                data_classes: strings(&["internal", "pii"]),
            })
        );
        for bad in [
            "crm:read",
            "crm:read;",
            ";Crm::Contact/*",
            "a;b;c;d",
            "a;b;",
            " , ;b",
        ] {
            let Err(Fail(code, msg)) = parse_grant(bad) else {
                panic!("`{bad}` parsed");
            };
            assert_eq!(code, 2, "{msg}");
            assert!(msg.contains(&format!("`{bad}`")), "{msg}");
        }
    }

    #[test]
    fn a_request_succeeds_only_when_active_or_deliberately_left_pending() {
        let m = |status: MandateStatus| api::Mandate {
            id: "mdt_x".into(),
            agent: "agt_x".into(),
            user: None,
            intent: "x".into(),
            justification: None,
            scope: vec![],
            lifetime_secs: 60,
            status,
            created_at: "2026-01-01T00:00:00Z".into(),
            approval_deadline: None,
            activated_at: None,
            expires_at: None,
            decided_by: None,
            decision_comment: None,
            decided_at: None,
            policy_ids: vec![],
            ended_at: None,
            ended_by: None,
        };
        assert!(request_outcome(m(MandateStatus::Active), true).is_ok());
        assert!(request_outcome(m(MandateStatus::PendingApproval), false).is_ok());
        let Err(Fail(1, msg)) = request_outcome(m(MandateStatus::PendingApproval), true) else {
            panic!("still pending after a wait is a failure");
        };
        assert!(msg.contains("still pending"), "{msg}");
        let mut denied = m(MandateStatus::Denied);
        denied.decision_comment = Some("not today".into());
        let Err(Fail(1, msg)) = request_outcome(denied, false) else {
            panic!("denied is a failure");
        };
        assert_eq!(msg, "mandate mdt_x is denied: not today");
    }
}
