//! The CLI for SIEM export: `mandate export status` (each sink's cursor, lag and last
//! failure on the node it asks).

use std::process::ExitCode;

use clap::Subcommand;

use crate::Conn;
use crate::cmd_io::{OrFail, client, finish};

#[derive(Subcommand)]
pub enum ExportCmd {
    /// Each export sink of the node: how far it has delivered the node's audit log, its
    /// lag, and its last failure if it is failing
    Status {
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn export(cmd: ExportCmd) -> ExitCode {
    let ExportCmd::Status { conn } = cmd;
    let r = async { client(&conn)?.export_status().await.or_fail(&conn) }.await;
    finish(&conn, r, |s| {
        println!("node: {}   log: {} events", s.node, s.log_length);
        if s.sinks.is_empty() {
            println!("no sinks configured ([[export.sinks]] in the config file)");
            return;
        }
        println!(
            "{:<24} {:<14} {:<6} {:>10} {:>8} {:>10}  last delivered / last error",
            "sink", "type", "format", "next", "lag", "delivered"
        );
        for k in &s.sinks {
            let tail = match &k.last_error {
                Some(e) => format!(
                    "FAILING ({} attempts) since {}: {e}",
                    k.failures,
                    k.last_error_at.as_deref().unwrap_or("-")
                ),
                None => k.last_delivered_at.clone().unwrap_or_else(|| "-".into()),
            };
            println!(
                "{:<24} {:<14} {:<6} {:>10} {:>8} {:>10}  {tail}",
                k.name, k.kind, k.format, k.next, k.lag, k.delivered
            );
        }
    })
}
