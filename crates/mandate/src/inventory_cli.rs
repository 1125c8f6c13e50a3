//! `mandate inventory`: every agent with its facts and findings (`GET /v1/inventory`,
//! every page), printed as a table, as JSON or as CSV.
//!
//! CSV follows RFC 4180 (every field quoted, quotes doubled) and neutralises spreadsheet
//! formulas: a field that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is
//! prefixed with `'` (OWASP's CSV-injection advice), since agent names, purposes and
//! labels are written by whoever registers an agent and a reviewer opens the file in a
//! spreadsheet.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use mandate_api as api;
use mandate_client::InventoryQuery;

use crate::Conn;
use crate::cmd_io::{OrFail, Res, client, exit, print_json};

/// How the inventory is printed.
#[derive(Clone, Copy, Default, ValueEnum)]
pub enum InventoryFormat {
    /// One line per agent, then the finding totals.
    #[default]
    Table,
    /// The API's document, every page joined into one.
    Json,
    /// One row per agent (RFC 4180), for a spreadsheet.
    Csv,
}

/// `mandate inventory`.
#[derive(Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    conn: Conn,
    /// Only this owner's agents
    #[arg(long)]
    owner: Option<String>,
    /// Only agents in this status: active, suspended, decommissioned
    #[arg(long)]
    status: Option<String>,
    /// Only agents with this finding (dormant, credential_stale, dead, …)
    #[arg(long)]
    finding: Option<String>,
    /// Only agents whose labels match this selector (team=sales,!legacy)
    #[arg(long)]
    selector: Option<String>,
    /// Days without a decision before an active agent is dormant (server default 30)
    #[arg(long)]
    dormant_days: Option<u32>,
    /// Days a credential may go unused before it is stale (server default 30)
    #[arg(long)]
    credential_unused_days: Option<u32>,
    /// Days before a credential should have been rotated (server default 90)
    #[arg(long)]
    credential_rotation_days: Option<u32>,
    /// table, json or csv (--json is the same as --format json)
    #[arg(long, value_enum, default_value_t)]
    format: InventoryFormat,
}

/// Runs `mandate inventory`: reads every page.
pub async fn run(a: InventoryArgs) -> ExitCode {
    let r = async {
        let c = client(&a.conn)?;
        let mut q = InventoryQuery {
            owner: a.owner.clone(),
            status: a.status.clone(),
            finding: a.finding.clone(),
            selector: a.selector.clone(),
            dormant_days: a.dormant_days,
            credential_unused_days: a.credential_unused_days,
            credential_rotation_days: a.credential_rotation_days,
            after: None,
            limit: None,
        };
        let mut inv = c.inventory(&q).await.or_fail(&a.conn)?;
        while let Some(after) = inv.next.take() {
            q.after = Some(after);
            let page = c.inventory(&q).await.or_fail(&a.conn)?;
            inv.rows.extend(page.rows);
            inv.next = page.next;
        }
        Res::Ok(inv)
    }
    .await;
    let format = if a.conn.json {
        InventoryFormat::Json
    } else {
        a.format
    };
    exit(r.map(|inv| match format {
        InventoryFormat::Json => print_json(&inv),
        InventoryFormat::Csv => print!("{}", csv(&inv)),
        InventoryFormat::Table => print_table(&inv),
    }))
}

fn finding_list(r: &api::InventoryRow) -> String {
    r.findings
        .iter()
        .map(|f| match &f.subject {
            Some(s) => format!("{}:{s}", f.code),
            None => f.code.clone(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn print_table(inv: &api::Inventory) {
    println!(
        "{:<30}  {:<24}  {:<24}  {:<14}  {:>6}  {:>5}  {:<20}  {:>8}  {:>9}  {:>4}  FINDINGS",
        "ID",
        "NAME",
        "OWNER",
        "STATUS",
        "GRANTS",
        "CREDS",
        "LAST ACTIVITY",
        "MANDATES",
        "ANOMALIES",
        "RISK"
    );
    for r in &inv.rows {
        println!(
            "{:<30}  {:<24}  {:<24}  {:<14}  {:>6}  {:>5}  {:<20}  {:>8}  {:>9}  {:>4}  {}",
            r.id,
            r.name,
            r.owner,
            r.status.as_str(),
            r.boundary_grants,
            r.credentials.iter().filter(|c| c.usable).count(),
            r.last_activity.as_deref().unwrap_or("-"),
            r.live_mandates,
            r.open_anomalies,
            r.risk,
            finding_list(r)
        );
    }
    if inv.rows.is_empty() {
        println!("(no agents)");
    }
    let totals: Vec<String> = inv
        .findings
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    println!(
        "{} agents; findings: {}",
        inv.agents,
        if totals.is_empty() {
            "none".to_owned()
        } else {
            totals.join(", ")
        }
    );
}

/// One CSV field: quoted, quotes doubled, a formula neutralised.
fn field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    format!("\"{}\"", v.replace('"', "\"\""))
}

/// The inventory as CSV: a header, then one line per agent.
pub(crate) fn csv(inv: &api::Inventory) -> String {
    let mut out = String::from(
        "id,name,owner,purpose,status,labels,boundary_grants,usable_credentials,oldest_credential_days,credentials_last_used,last_activity,live_mandates,open_anomalies,risk,risk_level,owner_check,findings\r\n",
    );
    for r in &inv.rows {
        let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let usable: Vec<&api::InventoryCredential> =
            r.credentials.iter().filter(|c| c.usable).collect();
        let oldest = usable.iter().map(|c| c.age_days).max();
        let last_used = usable
            .iter()
            .filter_map(|c| c.last_used_at.as_deref())
            .max()
            .unwrap_or("");
        let cols = [
            r.id.clone(),
            r.name.clone(),
            r.owner.clone(),
            r.purpose.clone(),
            r.status.as_str().to_owned(),
            labels.join(";"),
            r.boundary_grants.to_string(),
            usable.len().to_string(),
            oldest.map(|d| d.to_string()).unwrap_or_default(),
            last_used.to_owned(),
            r.last_activity.clone().unwrap_or_default(),
            r.live_mandates.to_string(),
            r.open_anomalies.to_string(),
            r.risk.to_string(),
            r.risk_level.clone().unwrap_or_default(),
            r.owner_check.clone(),
            finding_list(r),
        ];
        let line: Vec<String> = cols.iter().map(|c| field(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(field("plain"), "\"plain\"");
        assert_eq!(field("a \"b\", c"), "\"a \"\"b\"\", c\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        for lead in ["+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(field(lead).starts_with("\"'"), "{lead}");
        }
        assert_eq!(field(""), "\"\"");
    }
}
