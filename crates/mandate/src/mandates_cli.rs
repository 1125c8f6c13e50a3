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
use mandate_core::clock::{Clock, SystemClock};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::Conn;
use crate::cmd_io::{Fail, Res, call, finish, items, list, s, say_if_none, url_query, usage};

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

/// Parses `ACTIONS;RESOURCES[;DATA_CLASSES]` into a grant object.
fn parse_grant(spec: &str) -> Res<Value> {
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
    let mut grant = Map::new();
    match parts.len() {
        2 | 3 => {
            grant.insert("actions".into(), json!(field(0, "actions")?));
            grant.insert("resources".into(), json!(field(1, "resources")?));
            if parts.len() == 3 {
                grant.insert("data_classes".into(), json!(field(2, "data classes")?));
            }
        }
        _ => return Err(bad("has the wrong number of parts")),
    }
    Ok(Value::Object(grant))
}

/// A token given inline or as @FILE (trimmed).
fn token_arg(v: &str) -> Res<String> {
    let text = match v.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| usage(format!("reading {path}: {e}")))?
        }
        None => v.to_owned(),
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(usage("the user token is empty"));
    }
    Ok(t.to_owned())
}

/// `?k=v&…` of the given pairs, or nothing.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let q = url_query(pairs);
    if q.is_empty() { q } else { format!("?{q}") }
}

/// The hint for the next page of a list.
fn more(v: &Value) {
    if let Some(c) = v.get("next_cursor").and_then(Value::as_str) {
        println!("(more: --cursor {c})");
    }
}

fn is_pending(m: &Value) -> bool {
    m.get("status").and_then(Value::as_str) == Some("pending_approval")
}

/// The longest wait the server accepts in one `GET /v1/mandates/{id}?wait=`.
const MAX_POLL_SECS: i64 = 60;

/// Long-polls `GET /v1/mandates/{id}?wait=N` until the mandate is no longer pending or
/// `secs` have passed (each poll asks for at most [`MAX_POLL_SECS`]; the next one asks
/// again for what is left).
async fn wait_for(conn: &Conn, clock: &dyn Clock, id: &str, secs: u32) -> Res<Value> {
    let deadline = clock.now().secs().saturating_add(i64::from(secs));
    loop {
        let left = deadline
            .saturating_sub(clock.now().secs())
            .clamp(0, MAX_POLL_SECS);
        let path = format!("/v1/mandates/{id}?wait={left}");
        let m = call(conn, Method::GET, &path, None).await?;
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

fn mandate_line(m: &Value) -> String {
    let user = m
        .get("user")
        .and_then(|u| u.get("sub"))
        .and_then(Value::as_str)
        .map(|u| format!(" user={u}"))
        .unwrap_or_default();
    format!(
        "{}  {:<16} agent={}{user}  {}",
        s(m, "id"),
        s(m, "status"),
        s(m, "agent"),
        s(m, "intent")
    )
}

fn grant_text(g: &Value) -> String {
    let join = |k: &str| -> String {
        list(g, k)
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",")
    };
    let dc = join("data_classes");
    if dc.is_empty() {
        format!("{};{}", join("actions"), join("resources"))
    } else {
        format!("{};{};{dc}", join("actions"), join("resources"))
    }
}

fn print_mandate(m: &Value) {
    println!("{}", mandate_line(m));
    for g in list(m, "scope") {
        println!("  grant: {}", grant_text(g));
    }
    if let Some(j) = m.get("justification").and_then(Value::as_str) {
        println!("  justification: {j}");
    }
    let times = [
        ("approval deadline", "approval_deadline"),
        ("expires", "expires_at"),
        ("decided by", "decided_by"),
        ("comment", "decision_comment"),
        ("ended by", "ended_by"),
    ];
    for (label, key) in times {
        if let Some(v) = m.get(key).and_then(Value::as_str) {
            println!("  {label}: {v}");
        }
    }
}

/// A mandate that is not active after the request (and any wait) is a refusal.
fn request_outcome(m: Value, waited: bool) -> Res<Value> {
    match m.get("status").and_then(Value::as_str) {
        Some("active") => Ok(m),
        Some("pending_approval") if !waited => Ok(m),
        Some("pending_approval") => Err(Fail(
            1,
            format!(
                "mandate {} is still pending approval (give --wait more time, or \
                 `mandate mandate show {} --wait SECS` later)",
                s(&m, "id"),
                s(&m, "id")
            ),
        )),
        other => {
            let comment = m
                .get("decision_comment")
                .and_then(Value::as_str)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            Err(Fail(
                1,
                format!(
                    "mandate {} is {}{comment}",
                    s(&m, "id"),
                    other.unwrap_or("not active")
                ),
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
                let scope: Vec<Value> =
                    grants.iter().map(|g| parse_grant(g)).collect::<Res<_>>()?;
                let mut body = Map::new();
                body.insert("intent".into(), json!(intent));
                body.insert("scope".into(), json!(scope));
                if let Some(l) = lifetime {
                    body.insert("lifetime_secs".into(), json!(l));
                }
                if let Some(j) = justification {
                    body.insert("justification".into(), json!(j));
                }
                if let Some(t) = user_token {
                    body.insert("user_token".into(), json!(token_arg(&t)?));
                }
                let created = call(
                    &conn,
                    Method::POST,
                    "/v1/mandates",
                    Some(Value::Object(body)),
                )
                .await?;
                let m = match wait {
                    Some(secs) if is_pending(&created) => {
                        let id = s(&created, "id").to_owned();
                        wait_for(&conn, &SystemClock, &id, secs).await?
                    }
                    _ => created,
                };
                Ok(m)
            }
            .await;
            // Print the mandate whatever its status; then judge it.
            let r = r.and_then(|m| {
                if conn.json {
                    println!("{}", serde_json::to_string_pretty(&m).unwrap_or_default());
                } else {
                    print_mandate(&m);
                }
                request_outcome(m, wait.is_some())
            });
            finish_quiet(r)
        }
        MandateCmd::List {
            conn,
            agent,
            status,
            user,
            limit,
            cursor,
        } => {
            let q = query(&[
                ("agent", agent),
                ("status", status),
                ("user", user),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor),
            ]);
            let r = call(&conn, Method::GET, &format!("/v1/mandates{q}"), None).await;
            finish(&conn, r, |v| {
                say_if_none(v, "no mandates");
                for m in items(v) {
                    println!("{}", mandate_line(m));
                }
                more(v);
            })
        }
        MandateCmd::Show { conn, id, wait } => {
            let r = match wait {
                Some(secs) => wait_for(&conn, &SystemClock, &id, secs).await,
                None => call(&conn, Method::GET, &format!("/v1/mandates/{id}"), None).await,
            };
            finish(&conn, r, print_mandate)
        }
        MandateCmd::Complete { conn, id } => {
            let path = format!("/v1/mandates/{id}/complete");
            let r = call(&conn, Method::POST, &path, None).await;
            finish(&conn, r, print_mandate)
        }
        MandateCmd::Revoke { conn, id, reason } => {
            let body = reason.map(|r| json!({"reason": r}));
            let path = format!("/v1/mandates/{id}/revoke");
            let r = call(&conn, Method::POST, &path, body).await;
            finish(&conn, r, print_mandate)
        }
    }
}

/// Exit code only: the output was printed already.
fn finish_quiet(r: Res<Value>) -> ExitCode {
    match r {
        Ok(_) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}

fn approval_line(a: &Value) -> String {
    // An item is {"mandate": …, "agent": {"id", "name", "owner"}}; its id is the mandate's.
    let m = a.get("mandate").unwrap_or(&Value::Null);
    let agent = a.get("agent").unwrap_or(&Value::Null);
    let user = m
        .get("user")
        .and_then(|u| u.get("sub"))
        .and_then(Value::as_str)
        .map(|u| format!(" user={u}"))
        .unwrap_or_default();
    let grants: Vec<String> = list(m, "scope").map(grant_text).collect();
    format!(
        "{}  agent={} ({}, owner {}){user}  until {}\n  intent: {}\n  grants: {}",
        s(m, "id"),
        s(agent, "id"),
        s(agent, "name"),
        s(agent, "owner"),
        s(m, "approval_deadline"),
        s(m, "intent"),
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
            let q = query(&[("limit", limit.map(|l| l.to_string())), ("cursor", cursor)]);
            let r = call(&conn, Method::GET, &format!("/v1/approvals{q}"), None).await;
            finish(&conn, r, |v| {
                say_if_none(v, "no approvals waiting");
                for a in items(v) {
                    println!("{}", approval_line(a));
                }
                more(v);
            })
        }
        ApprovalsCmd::Approve(a) => decide(a, "approve").await,
        ApprovalsCmd::Deny(a) => decide(a, "deny").await,
    }
}

async fn decide(a: DecideArgs, verb: &str) -> ExitCode {
    let body = a.comment.map(|c| json!({"comment": c}));
    let path = format!("/v1/approvals/{}/{verb}", a.id);
    let r = call(&a.conn, Method::POST, &path, body).await;
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
            let mut body = Map::new();
            body.insert("sub".into(), json!(sub));
            if let Some(e) = email {
                body.insert("email".into(), json!(e));
            }
            if !groups.is_empty() {
                body.insert("groups".into(), json!(groups));
            }
            if let Some(l) = lifetime {
                body.insert("lifetime_secs".into(), json!(l));
            }
            let r = call(
                &conn,
                Method::POST,
                "/v1/dev/user-tokens",
                Some(Value::Object(body)),
            )
            .await;
            // Just the token, so `$(mandate dev issue-user-token …)` works.
            finish(&conn, r, |v| println!("{}", s(v, "token")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_from_the_command_line() {
        assert_eq!(
            parse_grant("billing:read, billing:refund;Billing::Invoice/*").ok(),
            Some(json!({"actions": ["billing:read", "billing:refund"],
                   "resources": ["Billing::Invoice/*"]}))
        );
        assert_eq!(
            parse_grant("crm:read;Crm::Contact/*;internal,pii").ok(),
            Some(
                json!({"actions": ["crm:read"], "resources": ["Crm::Contact/*"],
                   "data_classes": ["internal", "pii"]})
            )
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
        let m = |status: &str| json!({"id": "mdt_x", "status": status});
        assert!(request_outcome(m("active"), true).is_ok());
        assert!(request_outcome(m("pending_approval"), false).is_ok());
        let Err(Fail(1, msg)) = request_outcome(m("pending_approval"), true) else {
            panic!("still pending after a wait is a failure");
        };
        assert!(msg.contains("still pending"), "{msg}");
        let mut denied = m("denied");
        denied["decision_comment"] = json!("not today");
        let Err(Fail(1, msg)) = request_outcome(denied, false) else {
            panic!("denied is a failure");
        };
        assert_eq!(msg, "mandate mdt_x is denied: not today");
    }
}
