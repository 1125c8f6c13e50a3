//! What every CLI command shares: the typed client of the admin API (`mandate-client`)
//! and the failure a call maps to an exit code, and the `--json`-or-summary printing of
//! an answer. The command modules (`client.rs`, `*_cli.rs`) all build on this and never
//! on each other, so the crate's modules have no cycles (`crates/mandate/tests/layers.rs`).

use std::process::ExitCode;

use mandate_client::{Client, Error as ClientError};
use serde::Serialize;
use serde_json::Value;

use crate::Conn;

/// A failure worth an exit code: 1 when the server refused or could not be reached,
/// 2 when the command line itself was wrong.
pub(crate) struct Fail(pub(crate) u8, pub(crate) String);

pub(crate) type Res<T> = Result<T, Fail>;

pub(crate) fn usage(msg: impl Into<String>) -> Fail {
    Fail(2, msg.into())
}

/// The text of an argument given inline or as `@PATH` (the file's text).
pub(crate) fn text_arg(v: &str) -> Res<String> {
    match v.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| usage(format!("reading {path}: {e}")))
        }
        None => Ok(v.to_owned()),
    }
}

/// The typed client of `conn`'s server, with its token (a usage error without one).
pub(crate) fn client(conn: &Conn) -> Res<Client> {
    let token = conn
        .token
        .as_deref()
        .ok_or_else(|| usage("no admin token: pass --token or set MANDATE_TOKEN"))?;
    Client::with_ca_file(&conn.addr, token, conn.ca_file.as_deref())
        .map_err(|e| usage(e.to_string()))
}

/// The failure a call ended in. With `--json` the server's body is printed first, as
/// it was sent (a problem, or whatever else the server answered).
pub(crate) fn failed(conn: &Conn, e: ClientError) -> Fail {
    if conn.json {
        let body = match &e {
            ClientError::Problem { problem, .. } => serde_json::to_value(problem).ok(),
            ClientError::Status { body, .. } => {
                Some(serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.clone())))
            }
            _ => None,
        };
        if let Some(v) = body {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }
    Fail(1, e.to_string())
}

/// Makes a client call's failure a [`Fail`] (see [`failed`]).
pub(crate) trait OrFail<T> {
    /// The answer, or the failure for `conn`.
    fn or_fail(self, conn: &Conn) -> Res<T>;
}

impl<T> OrFail<T> for Result<T, ClientError> {
    fn or_fail(self, conn: &Conn) -> Res<T> {
        self.map_err(|e| failed(conn, e))
    }
}

/// Prints `none` when a list answer has no items, so an empty list says so rather than
/// printing nothing.
pub(crate) fn say_if_none<T>(items: &[T], none: &str) {
    if items.is_empty() {
        println!("{none}");
    }
}

/// Prints the hint for the next page of a list, when there is one.
pub(crate) fn more(next_cursor: Option<impl std::fmt::Display>) {
    if let Some(c) = next_cursor {
        println!("(more: --cursor {c})");
    }
}

/// A value shown as the server's JSON shows it (`-` when absent).
pub(crate) fn or_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

/// Prints `v` as pretty JSON (what `--json` prints).
pub(crate) fn print_json<T: Serialize>(v: &T) {
    let json = serde_json::to_value(v).unwrap_or(Value::Null);
    println!(
        "{}",
        serde_json::to_string_pretty(&json).unwrap_or_default()
    );
}

/// The exit code of a command whose output is printed already: success, or the
/// failure's code after printing its message.
pub(crate) fn exit<T>(r: Res<T>) -> ExitCode {
    match r {
        Ok(_) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}

/// Prints an answer (as JSON with `--json`, else by `human`) or the failure; the exit
/// code.
pub(crate) fn finish<T: Serialize>(conn: &Conn, r: Res<T>, human: impl FnOnce(&T)) -> ExitCode {
    exit(r.map(|v| {
        if conn.json {
            print_json(&v);
        } else {
            human(&v);
        }
    }))
}
