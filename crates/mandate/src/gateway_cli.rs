//! The CLI for the gateways' upstream secrets: `mandate gateway secret set|list|delete`.
//! A value is read from a file or standard input, never from the command line (where
//! it would land in shell history and `ps`).

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use mandate_api as api;
use serde_json::json;

use crate::Conn;
use crate::cmd_io::{Fail, OrFail, client, finish, say_if_none, usage};

#[derive(Subcommand)]
pub enum GatewayCmd {
    /// Upstream secrets the HTTP gateway injects (stored encrypted, never shown again)
    #[command(subcommand)]
    Secret(SecretCmd),
}

#[derive(Subcommand)]
pub enum SecretCmd {
    /// Store or replace a secret; the value comes from --value-file, or standard input
    Set {
        #[command(flatten)]
        conn: Conn,
        /// The name routes use (`credential_secret`)
        name: String,
        /// A file holding the value (trailing newline removed); `-` or absent: stdin
        #[arg(long)]
        value_file: Option<PathBuf>,
    },
    /// List the secrets' names
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a secret
    Delete {
        #[command(flatten)]
        conn: Conn,
        /// The secret's name
        name: String,
    },
}

fn read_value(file: Option<&PathBuf>) -> Result<String, Fail> {
    let mut text = String::new();
    match file {
        Some(p) if p.as_os_str() != "-" => {
            text = std::fs::read_to_string(p)
                .map_err(|e| usage(format!("reading {}: {e}", p.display())))?;
        }
        _ => {
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| usage(format!("reading standard input: {e}")))?;
        }
    }
    let v = text.trim_end_matches(['\n', '\r']).to_owned();
    if v.is_empty() {
        return Err(usage("the secret's value is empty"));
    }
    Ok(v)
}

pub async fn gateway(cmd: GatewayCmd) -> ExitCode {
    let GatewayCmd::Secret(cmd) = cmd;
    match cmd {
        SecretCmd::Set {
            conn,
            name,
            value_file,
        } => {
            let r = async {
                let req = api::PutGatewaySecret {
                    value: read_value(value_file.as_ref())?,
                };
                client(&conn)?
                    .put_gateway_secret(&name, &req)
                    .await
                    .or_fail(&conn)
            }
            .await;
            // The CLI's own summary (the server answers 204).
            finish(
                &conn,
                r.map(|()| json!({"name": name, "stored": true})),
                |_| {
                    println!("stored secret `{name}` (encrypted; it will not be shown again)");
                },
            )
        }
        SecretCmd::List { conn } => {
            let r = async { client(&conn)?.list_gateway_secrets().await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                say_if_none(&v.items, "no gateway secrets");
                for i in &v.items {
                    println!("{}  updated {}", i.name, i.updated_at);
                }
            })
        }
        SecretCmd::Delete { conn, name } => {
            let r = async {
                client(&conn)?
                    .delete_gateway_secret(&name)
                    .await
                    .or_fail(&conn)
            }
            .await;
            // The CLI's own summary (the server answers 204).
            finish(
                &conn,
                r.map(|()| json!({"name": name, "deleted": true})),
                |_| {
                    println!("deleted secret `{name}`");
                },
            )
        }
    }
}
