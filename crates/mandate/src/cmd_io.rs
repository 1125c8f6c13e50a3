//! What every CLI command shares: one call to the admin API (the failure it maps to an
//! exit code), the `--json`-or-summary printing of its answer, and the small readers of a
//! JSON answer. The command modules (`client.rs`, `*_cli.rs`) all build on this and never
//! on each other, so the crate's modules have no cycles (`crates/mandate/tests/layers.rs`).

use std::process::ExitCode;

use reqwest::Method;
use serde_json::Value;

use crate::Conn;

/// A failure worth an exit code: 1 when the server refused or could not be reached,
/// 2 when the command line itself was wrong.
pub(crate) struct Fail(pub(crate) u8, pub(crate) String);

pub(crate) type Res<T> = Result<T, Fail>;

pub(crate) fn usage(msg: impl Into<String>) -> Fail {
    Fail(2, msg.into())
}

pub(crate) async fn call(
    conn: &Conn,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Res<Value> {
    let text = call_raw(conn, method, path, body).await?;
    Ok(if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    })
}

/// One admin-API call; the body text on success, the problem's detail as the failure.
pub(crate) async fn call_raw(
    conn: &Conn,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Res<String> {
    let token = conn
        .token
        .as_deref()
        .ok_or_else(|| usage("no admin token: pass --token or set MANDATE_TOKEN"))?;
    let url = format!("{}{path}", conn.addr.trim_end_matches('/'));
    let mut req = reqwest::Client::new()
        .request(method, &url)
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req
        .send()
        .await
        .map_err(|e| Fail(1, format!("cannot reach Mandate at {}: {e}", conn.addr)))?;
    let status = res.status();
    let text = res
        .text()
        .await
        .map_err(|e| Fail(1, format!("reading the response: {e}")))?;
    if status.is_success() {
        return Ok(text);
    }
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if conn.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    }
    let detail = value
        .get("detail")
        .and_then(Value::as_str)
        .unwrap_or("request failed");
    let code = value.get("code").and_then(Value::as_str).unwrap_or("error");
    // Located policy errors are worth showing whole.
    let located: Vec<String> = list(&value, "errors")
        .map(|e| {
            format!(
                "  {}:{}:{}: {}",
                s(e, "source"),
                e.get("line").and_then(Value::as_u64).unwrap_or(0),
                e.get("column").and_then(Value::as_u64).unwrap_or(0),
                s(e, "message")
            )
        })
        .collect();
    let mut msg = format!("{detail} ({code}, HTTP {})", status.as_u16());
    for l in located {
        msg.push('\n');
        msg.push_str(&l);
    }
    Err(Fail(1, msg))
}

/// The elements of the array `v[k]` (none if it is missing or not an array).
pub(crate) fn list<'a>(v: &'a Value, k: &str) -> impl Iterator<Item = &'a Value> {
    v.get(k).and_then(Value::as_array).into_iter().flatten()
}

/// The `items` of a list response.
pub(crate) fn items(v: &Value) -> impl Iterator<Item = &Value> {
    list(v, "items")
}

/// Prints `none` when a list answer has no items, so an empty list says so rather than
/// printing nothing.
pub(crate) fn say_if_none(v: &Value, none: &str) {
    if items(v).next().is_none() {
        println!("{none}");
    }
}

pub(crate) fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

pub(crate) fn finish(conn: &Conn, r: Res<Value>, human: impl FnOnce(&Value)) -> ExitCode {
    match r {
        Ok(v) => {
            if conn.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                human(&v);
            }
            ExitCode::SUCCESS
        }
        Err(Fail(code, msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}

pub(crate) fn url_query(pairs: &[(&str, Option<String>)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            ser.append_pair(k, v);
        }
    }
    ser.finish()
}
