//! The CLI of the kill switch's incident levers: `mandate incident contain AGENT`
//! (contain the agent and keep its incident bundle in a file), `mandate token revoke
//! JTI`, and the bundle side of `mandate audit verify`, which takes an incident bundle
//! as well as an exported log and tells them apart by content.
//!
//! Exit codes as everywhere: 0 success, 1 the server refused or failed (or the file did
//! not verify), 2 bad usage.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use ed25519_dalek::VerifyingKey;
use mandate_api as api;
use serde::Serialize;
use serde_json::Value;

use crate::Conn;
use crate::cmd_io::{Fail, OrFail, Res, client, failed, finish, usage};

#[derive(Subcommand)]
pub enum IncidentCmd {
    /// Contain an agent: suspend it, kill every token it holds or handed on, revoke its
    /// mandates, and write its incident bundle (verify it with `mandate audit verify`)
    Contain {
        #[command(flatten)]
        conn: Conn,
        /// The agent's id
        agent: String,
        /// Why (recorded, and kept as the agent's status reason)
        #[arg(long)]
        reason: Option<String>,
        /// How many of the agent's most recent audit events the bundle holds (1-10000;
        /// the server's default is 1000)
        #[arg(long, value_name = "N")]
        events: Option<u32>,
        /// Where to write the bundle (mode 0600; an existing file is never replaced);
        /// default `incident-<agent>-<incident>.json` here
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Revoke one access token by its id (`tok_…`, the audit log's `details.token_id`);
    /// tokens delegated from it stop working too
    Revoke {
        #[command(flatten)]
        conn: Conn,
        /// The token's `jti`
        jti: String,
        /// Why, recorded in the audit log
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Creates `path` with mode 0600 and writes `bytes`; an existing file is an error.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A path component made only of id characters (ids are `[a-z]{3}_[0-9A-Z]{26}`), so a
/// server's answer cannot steer the default file name elsewhere.
fn safe_part(v: &str) -> Option<&str> {
    (!v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some(v)
}

/// What `mandate incident contain` reports (its `--json` output).
#[derive(Serialize)]
struct ContainSummary {
    incident: String,
    agent: String,
    previous_status: String,
    status: String,
    cutoff: String,
    mandates_revoked: Vec<String>,
    events: usize,
    file: String,
}

/// Contains the agent and writes the bundle; the summary of what happened.
async fn contain(
    conn: &Conn,
    agent: &str,
    reason: Option<String>,
    events: Option<u32>,
    out: Option<PathBuf>,
) -> Res<ContainSummary> {
    // Checked first so a bad path does not leave a contained agent without its bundle
    // (the file is still created with `create_new` below).
    if let Some(p) = &out
        && p.exists()
    {
        return Err(usage(format!(
            "{} already exists; an incident bundle never replaces a file",
            p.display()
        )));
    }
    let req = api::ContainAgent { reason, events };
    // The bundle is kept byte for byte as the server wrote it: its canonical form is
    // what verifies.
    let contained = client(conn)?
        .contain_agent(agent, &req)
        .await
        .map_err(|e| match e {
            mandate_client::Error::Decode { source, .. } => {
                Fail(1, format!("the server's answer is not a bundle: {source}"))
            }
            e => failed(conn, e),
        })?;
    let (bytes, bundle) = (&contained.bytes, &contained.bundle);
    let incident = bundle.incident.as_str();
    let file = match out {
        Some(p) => p,
        None => {
            let (Some(a), Some(i)) = (safe_part(&bundle.agent), safe_part(incident)) else {
                return Err(Fail(
                    1,
                    format!(
                        "the agent is contained, but the answer names no usable incident: {incident}"
                    ),
                ));
            };
            PathBuf::from(format!("incident-{a}-{i}.json"))
        }
    };
    write_new(&file, bytes.as_bytes()).map_err(|e| {
        Fail(
            1,
            format!(
                "the agent is contained (incident {incident}), but writing its bundle to {} \
                 failed: {e}; run `mandate incident contain` again for a new bundle",
                file.display()
            ),
        )
    })?;
    let evidence = &bundle.evidence;
    Ok(ContainSummary {
        incident: incident.to_owned(),
        agent: bundle.agent.clone(),
        previous_status: evidence.previous_status.clone(),
        status: evidence.agent.status.as_str().to_owned(),
        cutoff: evidence.cutoff.clone(),
        mandates_revoked: evidence.mandates.iter().map(|m| m.id.clone()).collect(),
        events: bundle.events.len(),
        file: file.display().to_string(),
    })
}

fn print_contained(v: &ContainSummary) {
    println!("contained {} (incident {})", v.agent, v.incident);
    println!(
        "  status: {} (was {}); tokens issued up to {} are dead",
        v.status, v.previous_status, v.cutoff
    );
    println!(
        "  mandates revoked: {}",
        if v.mandates_revoked.is_empty() {
            "none".to_owned()
        } else {
            v.mandates_revoked.join(", ")
        }
    );
    println!(
        "  bundle: {} ({} events); check it with `mandate audit verify {} --key <node key>`",
        v.file, v.events, v.file
    );
}

pub async fn incident(cmd: IncidentCmd) -> ExitCode {
    match cmd {
        IncidentCmd::Contain {
            conn,
            agent,
            reason,
            events,
            out,
        } => {
            let r = contain(&conn, &agent, reason, events, out).await;
            finish(&conn, r, print_contained)
        }
    }
}

pub async fn token(cmd: TokenCmd) -> ExitCode {
    match cmd {
        TokenCmd::Revoke { conn, jti, reason } => {
            let req = api::RevokeTokenById { reason };
            let r = async { client(&conn)?.revoke_token(&jti, &req).await.or_fail(&conn) }.await;
            finish(&conn, r, |v| {
                println!(
                    "revoked {} (and every token delegated from it); recorded until {}",
                    v.jti, v.until
                );
            })
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `mandate audit verify FILE`: an incident bundle (one JSON object with a `bundle`
/// member) or an exported log (JSON Lines), told apart by the first line.
pub(crate) fn verify_file(file: &Path, key: &VerifyingKey) -> Res<()> {
    let failed = |e: &dyn std::fmt::Display| {
        Fail(1, format!("{}: verification failed: {e}", file.display()))
    };
    let f =
        std::fs::File::open(file).map_err(|e| usage(format!("reading {}: {e}", file.display())))?;
    let mut reader = BufReader::new(f);
    let mut first = Vec::new();
    reader
        .read_until(b'\n', &mut first)
        .map_err(|e| usage(format!("reading {}: {e}", file.display())))?;
    let is_bundle = serde_json::from_slice::<Value>(&first)
        .is_ok_and(|v| v.as_object().is_some_and(|o| o.contains_key("bundle")));
    if is_bundle {
        let mut bytes = first;
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| usage(format!("reading {}: {e}", file.display())))?;
        let r = mandate_audit::bundle::verify_bundle(&bytes, key).map_err(|e| failed(&e))?;
        println!(
            "ok: incident bundle {} for agent {}, contained {} on node {}",
            r.incident,
            r.agent,
            r.created,
            r.node.as_str()
        );
        println!(
            "  {} events (seq {}..={}) proved against a signed checkpoint of {} events, root {}",
            r.events,
            r.seqs.0,
            r.seqs.1,
            r.checkpoint.size,
            hex(&r.checkpoint.root)
        );
        println!(
            "  evidence (agent record, mandates, policies) sha256 {}, as recorded at seq {}",
            r.evidence_sha256, r.contained_seq
        );
        return Ok(());
    }
    let report =
        mandate_audit::verify::verify_export(std::io::Cursor::new(first).chain(reader), key)
            .map_err(|e| failed(&e))?;
    println!(
        "ok: {} events from node {} in {} checkpoints; root {}",
        report.events,
        report.node.as_str(),
        report.checkpoints,
        hex(&report.root)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_names_take_only_id_characters() {
        assert_eq!(safe_part("agt_01J0"), Some("agt_01J0"));
        for bad in ["", "../x", "a/b", "a.b", "-", &"x".repeat(65)] {
            assert_eq!(safe_part(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_new_file_is_private_and_never_replaces_one() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.json");
        write_new(&p, b"{}").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(write_new(&p, b"[]").is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"{}");
    }
}
