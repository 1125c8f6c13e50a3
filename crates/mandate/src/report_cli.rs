//! `mandate report compliance`: a framework's controls mapped to the evidence the server
//! holds (`GET /v1/reports/compliance`), as JSON, Markdown or HTML, to standard output or
//! a file. Every text the report carries (agent-facing values come from the log) is
//! escaped for the format: HTML entities in HTML, and in Markdown table cells `|`,
//! backslashes and line breaks, so no value can add a row, a column or markup.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use mandate_api as api;
use mandate_core::clock::{Clock as _, SystemClock};

use crate::Conn;
use crate::cmd_io::{Fail, OrFail, client, exit};
use crate::replay_cli::time_arg;

/// `mandate report`.
#[derive(Subcommand)]
pub enum ReportCmd {
    /// Each control of a framework with the evidence Mandate holds for it, naming the
    /// signed checkpoint it was built on (verify with `mandate audit verify`)
    Compliance(ComplianceArgs),
}

/// How the report is written.
#[derive(Clone, Copy, Default, ValueEnum)]
pub enum ReportFormat {
    /// The API's document.
    #[default]
    Json,
    /// A Markdown document.
    Markdown,
    /// A standalone HTML page.
    Html,
}

/// `mandate report compliance`.
#[derive(Args)]
pub struct ComplianceArgs {
    #[command(flatten)]
    conn: Conn,
    /// nist-ai-rmf or eu-ai-act
    #[arg(long)]
    framework: String,
    /// The window's start: RFC 3339 or an age such as 90d (server default: 90 days)
    #[arg(long)]
    since: Option<String>,
    /// json, markdown or html
    #[arg(long, value_enum, default_value_t)]
    format: ReportFormat,
    /// Write here instead of standard output
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `mandate report …`.
pub async fn report(c: ReportCmd) -> ExitCode {
    let ReportCmd::Compliance(a) = c;
    let r = async {
        let since = a
            .since
            .as_deref()
            .map(|v| time_arg("since", v, SystemClock.now()))
            .transpose()?;
        let report = client(&a.conn)?
            .compliance_report(&a.framework, since.as_deref())
            .await
            .or_fail(&a.conn)?;
        let text = match a.format {
            ReportFormat::Json => {
                let mut t = serde_json::to_string_pretty(&report)
                    .map_err(|e| Fail(1, format!("cannot render the report: {e}")))?;
                t.push('\n');
                t
            }
            ReportFormat::Markdown => markdown(&report),
            ReportFormat::Html => html(&report),
        };
        match &a.out {
            Some(p) => std::fs::write(p, text)
                .map_err(|e| Fail(1, format!("cannot write {}: {e}", p.display())))?,
            None => print!("{text}"),
        }
        Ok(())
    }
    .await;
    exit(r)
}

/// A value as a short text.
fn value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => format!("{} entries", a.len()),
        other => other.to_string(),
    }
}

/// A Markdown table cell: no row, column or markup can come from the value.
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn header(r: &api::ComplianceReport) -> Vec<(String, String)> {
    vec![
        ("Framework".into(), r.title.clone()),
        ("Node".into(), r.node.clone()),
        ("Generated".into(), r.generated_at.clone()),
        ("Window".into(), format!("{} to {}", r.since, r.until)),
        (
            "Checkpoint".into(),
            r.checkpoint.as_ref().map_or_else(
                || "none signed yet".to_owned(),
                |c| format!("size {} signed {}", c.size, c.time),
            ),
        ),
        (
            "Log verified".into(),
            if r.log_verified {
                "yes: every event re-hashed up to the checkpoint, root and signature checked"
                    .to_owned()
            } else {
                format!("no: {}", r.log_problem.as_deref().unwrap_or("unknown"))
            },
        ),
    ]
}

/// The report as Markdown.
pub(crate) fn markdown(r: &api::ComplianceReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Compliance evidence: {}\n", md(&r.title));
    for (k, v) in header(r) {
        let _ = writeln!(o, "- **{k}**: {}", md(&v));
    }
    let _ = writeln!(o, "\n## Controls\n");
    let _ = writeln!(o, "| Control | Requirement | Status | Evidence |");
    let _ = writeln!(o, "| --- | --- | --- | --- |");
    for c in &r.controls {
        let ev: Vec<String> = c
            .evidence
            .iter()
            .map(|n| {
                let v = r
                    .evidence
                    .get(n)
                    .map_or("-".to_owned(), |e| value(&e.value));
                format!("{n}: {v}")
            })
            .collect();
        let status = match &c.note {
            Some(n) => format!("{} ({n})", c.status),
            None => c.status.clone(),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            md(&c.id),
            md(&c.requirement),
            md(&status),
            md(&ev.join("; "))
        );
    }
    let _ = writeln!(o, "\n## Evidence and how to recompute it\n");
    let _ = writeln!(o, "| Name | Value | Source |");
    let _ = writeln!(o, "| --- | --- | --- |");
    for (n, e) in &r.evidence {
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            md(n),
            md(&value(&e.value)),
            md(&e.source)
        );
    }
    if let Some(serde_json::Value::Array(log)) =
        r.evidence.get("policy_change_log").map(|e| &e.value)
    {
        let _ = writeln!(o, "\n## Policy changes\n");
        let _ = writeln!(o, "| Seq | Time | Kind | By | Version |");
        let _ = writeln!(o, "| --- | --- | --- | --- | --- |");
        for c in log {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                md(&value(&c["seq"])),
                md(&value(&c["time"])),
                md(&value(&c["kind"])),
                md(&value(&c["by"])),
                md(&value(&c["version"]))
            );
        }
    }
    let _ = writeln!(o, "\n## Not evidenced by Mandate\n");
    for n in &r.not_evidenced {
        let _ = writeln!(o, "- {}", md(n));
    }
    if let Some(c) = &r.checkpoint {
        let _ = writeln!(
            o,
            "\n## Signed checkpoint\n\n```\n{}\n```",
            c.text.replace("```", "'''")
        );
    }
    o
}

/// HTML text: `&`, `<`, `>`, `"` and `'` as entities.
fn h(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The report as a standalone HTML page (no script, no external resource).
pub(crate) fn html(r: &api::ComplianceReport) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>Compliance evidence: {}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #999;padding:.3em .6em;text-align:left;vertical-align:top}}</style>\
         </head><body>\n<h1>Compliance evidence: {}</h1>\n<dl>",
        h(&r.title),
        h(&r.title)
    );
    for (k, v) in header(r) {
        let _ = write!(o, "<dt>{}</dt><dd>{}</dd>", h(&k), h(&v));
    }
    let _ = write!(
        o,
        "</dl>\n<h2>Controls</h2>\n<table><tr><th>Control</th><th>Requirement</th><th>Status</th><th>Evidence</th></tr>\n"
    );
    for c in &r.controls {
        let ev: Vec<String> = c
            .evidence
            .iter()
            .map(|n| {
                let v = r
                    .evidence
                    .get(n)
                    .map_or("-".to_owned(), |e| value(&e.value));
                format!("{}: {}", h(n), h(&v))
            })
            .collect();
        let status = match &c.note {
            Some(n) => format!("{} ({})", h(&c.status), h(n)),
            None => h(&c.status),
        };
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{status}</td><td>{}</td></tr>",
            h(&c.id),
            h(&c.requirement),
            ev.join("<br>")
        );
    }
    let _ = write!(
        o,
        "</table>\n<h2>Evidence and how to recompute it</h2>\n<table><tr><th>Name</th><th>Value</th><th>Source</th></tr>\n"
    );
    for (n, e) in &r.evidence {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            h(n),
            h(&value(&e.value)),
            h(&e.source)
        );
    }
    let _ = write!(o, "</table>\n<h2>Not evidenced by Mandate</h2>\n<ul>");
    for n in &r.not_evidenced {
        let _ = write!(o, "<li>{}</li>", h(n));
    }
    o.push_str("</ul>\n");
    if let Some(c) = &r.checkpoint {
        let _ = write!(o, "<h2>Signed checkpoint</h2>\n<pre>{}</pre>\n", h(&c.text));
    }
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::{h, md};

    #[test]
    fn values_cannot_add_markup() {
        assert_eq!(
            h("<script>x</script>&\"'"),
            "&lt;script&gt;x&lt;/script&gt;&amp;&quot;&#39;"
        );
        assert_eq!(md("a|b\nc"), "a\\|b c");
        assert_eq!(md("[x](javascript:y)"), "\\[x\\](javascript:y)");
    }
}
