//! The tiny MCP tool server to put behind Mandate's MCP gateway
//! (`examples/gateway.toml`, server `tools`). Streamable HTTP at `POST /mcp`, answering
//! in JSON (no SSE): `initialize` (protocol version negotiated: the client's if known,
//! else the newest here; an `Mcp-Session-Id` is issued, and requests may come without
//! one), `notifications/initialized`, `ping`, `tools/list`, `tools/call`. `GET` and
//! `DELETE /mcp` are 405: no server-initiated stream, sessions just expire with the
//! process. Three tools: `lookup_contact`, `add`, and `delete_contact` — which the
//! example policy (`examples/mcp/policies.cedar`) forbids, so its call never arrives
//! here through the gateway. Prints every message it receives.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

use crate::{Seen, print_request, say};

/// Protocol versions this server speaks, newest first.
const VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

#[derive(Default)]
struct Server {
    sessions: Mutex<BTreeSet<String>>,
    seen: Seen,
}

fn tools() -> Value {
    json!([
        {
            "name": "lookup_contact",
            "description": "Look up a CRM contact by id (c42, c7)",
            "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}},
                            "required": ["id"]},
        },
        {
            "name": "add",
            "description": "Add two numbers",
            "inputSchema": {"type": "object",
                            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                            "required": ["a", "b"]},
        },
        {
            "name": "delete_contact",
            "description": "Delete a CRM contact (the example policy forbids it)",
            "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}},
                            "required": ["id"]},
        },
    ])
}

fn text(t: String) -> Value {
    json!({"content": [{"type": "text", "text": t}], "isError": false})
}

/// Runs a tool: `Ok` is a `tools/call` result, `Err` invalid params.
fn call_tool(name: &str, args: &Map<String, Value>) -> Result<Value, String> {
    let id = || {
        args.get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| "argument `id` (a string) is required".to_owned())
    };
    match name {
        "lookup_contact" => Ok(text(match id()? {
            "c42" => "c42: Ada Lovelace, team sales, ada@example.com".to_owned(),
            "c7" => "c7: Alan Turing, team support, alan@example.com".to_owned(),
            other => format!("no contact `{other}`"),
        })),
        "add" => {
            let n = |k: &str| {
                args.get(k)
                    .and_then(Value::as_f64)
                    .ok_or_else(|| format!("argument `{k}` (a number) is required"))
            };
            Ok(text(format!("{}", n("a")? + n("b")?)))
        }
        "delete_contact" => Ok(text(format!("deleted contact {}", id()?))),
        other => Err(format!("unknown tool `{other}`")),
    }
}

fn rpc_error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

fn json_response(status: StatusCode, body: &Value, session: Option<&str>) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(v) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        r.headers_mut().insert("mcp-session-id", v);
    }
    r
}

fn new_session_id() -> Option<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

async fn mcp(
    State(server): State<Arc<Server>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    print_request(&server.seen, "mcp-tools", &method, &uri, &headers, false);
    let session = headers.get("mcp-session-id").and_then(|v| v.to_str().ok());
    if let Some(s) = session
        && !server.sessions.lock().is_ok_and(|set| set.contains(s))
    {
        say(&server.seen, "    -> 404: unknown session".to_owned());
        return StatusCode::NOT_FOUND.into_response();
    }
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &rpc_error(&Value::Null, -32700, "parse error"),
            None,
        );
    };
    say(&server.seen, format!("    message: {msg}"));
    let Some(name) = msg.get("method").and_then(Value::as_str) else {
        // A response or something else that is not a request: accepted, nothing to say.
        return StatusCode::ACCEPTED.into_response();
    };
    let Some(id) = msg.get("id").cloned() else {
        // A notification (`notifications/initialized`, `notifications/cancelled`, …).
        return StatusCode::ACCEPTED.into_response();
    };
    let params = msg.get("params").cloned().unwrap_or(json!({}));
    let reply = |result: Value| json!({"jsonrpc": "2.0", "id": id, "result": result});
    match name {
        "initialize" => {
            let asked = params.get("protocolVersion").and_then(Value::as_str);
            let version = asked
                .and_then(|a| VERSIONS.iter().find(|v| **v == a))
                .or(VERSIONS.first())
                .copied()
                .unwrap_or("2025-06-18");
            let Some(sid) = new_session_id() else {
                return json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &rpc_error(&id, -32603, "no randomness for a session id"),
                    None,
                );
            };
            if let Ok(mut set) = server.sessions.lock() {
                set.insert(sid.clone());
            }
            let result = json!({
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": {"name": "mcp-tools", "version": env!("CARGO_PKG_VERSION")},
            });
            json_response(StatusCode::OK, &reply(result), Some(&sid))
        }
        "ping" => json_response(StatusCode::OK, &reply(json!({})), None),
        "tools/list" => json_response(StatusCode::OK, &reply(json!({"tools": tools()})), None),
        "tools/call" => {
            let tool = params.get("name").and_then(Value::as_str).unwrap_or("");
            let empty = Map::new();
            let args = params
                .get("arguments")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            match call_tool(tool, args) {
                Ok(result) => {
                    say(&server.seen, format!("    -> ran `{tool}`"));
                    json_response(StatusCode::OK, &reply(result), None)
                }
                Err(e) => json_response(StatusCode::OK, &rpc_error(&id, -32602, &e), None),
            }
        }
        other => json_response(
            StatusCode::OK,
            &rpc_error(&id, -32601, &format!("method `{other}` not found")),
            None,
        ),
    }
}

async fn no_stream() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")]).into_response()
}

/// The MCP endpoint at `/mcp`, and what it prints as it serves.
pub fn router() -> (axum::Router, Seen) {
    let server = Arc::new(Server::default());
    let seen = Arc::clone(&server.seen);
    let app = axum::Router::new()
        .route("/mcp", post(mcp).get(no_stream).delete(no_stream))
        .with_state(server);
    (app, seen)
}
