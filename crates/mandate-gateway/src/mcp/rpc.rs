//! JSON-RPC 2.0 as the MCP gateway speaks it: reading one incoming message, and the
//! gateway's error codes (stable: clients and tests match on them).

use serde_json::{Map, Value, json};

/// An invalid JSON text.
pub const PARSE_ERROR: i64 = -32700;
/// Not a JSON-RPC 2.0 message (or a batch, which the gateway refuses).
pub const INVALID_REQUEST: i64 = -32600;
/// A method the gateway does not serve.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Bad parameters, e.g. an unknown server or tool.
pub const INVALID_PARAMS: i64 = -32602;
/// The gateway's own failure.
pub const INTERNAL_ERROR: i64 = -32603;
/// No valid bearer token (HTTP 401).
pub const UNAUTHENTICATED: i64 = -32001;
/// Mandate denied the call (HTTP 200; HTTP 403 for `insufficient_scope`), or the
/// token's holder may not act now (HTTP 403, `data.error = "forbidden"`).
pub const DENIED: i64 = -32003;
/// Mandate holds the call for a human's approval (HTTP 200).
pub const APPROVAL_REQUIRED: i64 = -32004;
/// The decision path or the audit log failed (HTTP 503): nothing was forwarded.
pub const AUTHZ_UNAVAILABLE: i64 = -32005;
/// Unknown or ended session, or another agent's (HTTP 404).
pub const SESSION_NOT_FOUND: i64 = -32006;
/// Too many calls in flight in the session (HTTP 200): nothing was decided.
pub const TOO_MANY_CALLS: i64 = -32007;
/// The gateways' body budget is spent (HTTP 503, `Retry-After`): the message was not
/// read.
pub const BUSY: i64 = -32008;
/// The upstream MCP server failed or answered something unusable.
pub const UPSTREAM_ERROR: i64 = -32010;
/// The upstream MCP server did not answer in time.
pub const UPSTREAM_TIMEOUT: i64 = -32011;

/// A JSON-RPC error response. `id` is `null` when the request's id is unknown.
pub fn error(id: &Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut err = Map::new();
    err.insert("code".into(), code.into());
    err.insert("message".into(), message.into());
    if let Some(d) = data {
        err.insert("data".into(), d);
    }
    json!({"jsonrpc": "2.0", "id": id, "error": err})
}

/// A JSON-RPC success response.
pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A JSON-RPC request.
pub fn request(id: &Value, method: &str, params: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("jsonrpc".into(), "2.0".into());
    m.insert("id".into(), id.clone());
    m.insert("method".into(), method.into());
    if let Some(p) = params {
        m.insert("params".into(), p);
    }
    Value::Object(m)
}

/// A JSON-RPC notification.
pub fn notification(method: &str, params: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("jsonrpc".into(), "2.0".into());
    m.insert("method".into(), method.into());
    if let Some(p) = params {
        m.insert("params".into(), p);
    }
    Value::Object(m)
}

/// What a message an upstream sent is, for deciding what the client may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request to the client (sampling, elicitation, roots, ping): never relayed.
    Request,
    /// A notification (progress, logging, …): relayed.
    Notification,
    /// A response: relayed only as the response to the client's own request.
    Response,
}

/// What `msg` is; `None` if it is no JSON-RPC message.
pub fn kind(msg: &Value) -> Option<Kind> {
    let obj = msg.as_object()?;
    match (obj.get("method"), obj.get("id")) {
        (Some(Value::String(_)), Some(_)) => Some(Kind::Request),
        (Some(Value::String(_)), None) => Some(Kind::Notification),
        (None, Some(_)) if obj.contains_key("result") || obj.contains_key("error") => {
            Some(Kind::Response)
        }
        _ => None,
    }
}

/// One message a client posted.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A request: it gets a response.
    Request {
        /// Its id (a string or a number).
        id: Value,
        /// The JSON-RPC method (`tools/call`, `initialize`, …).
        method: String,
        /// The parameters (`Null` when absent).
        params: Value,
    },
    /// A notification: 202, no response.
    Notification {
        /// The JSON-RPC method (`tools/call`, `initialize`, …).
        method: String,
        /// The parameters (`Null` when absent).
        params: Value,
    },
    /// A response to a request the server sent (the gateway sends none).
    Response,
}

/// Why a posted body is not one JSON-RPC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Not JSON.
    #[error("the body is not JSON: {0}")]
    Parse(String),
    /// A JSON array.
    #[error("batches are not accepted: post one JSON-RPC message per request")]
    Batch,
    /// JSON, but not a JSON-RPC 2.0 message.
    #[error("not a JSON-RPC 2.0 message: {0}")]
    Invalid(&'static str),
}

impl ReadError {
    /// The JSON-RPC code for it.
    pub fn code(&self) -> i64 {
        match self {
            Self::Parse(_) => PARSE_ERROR,
            Self::Batch | Self::Invalid(_) => INVALID_REQUEST,
        }
    }
}

/// Reads one JSON-RPC 2.0 message.
pub fn read(body: &[u8]) -> Result<Incoming, ReadError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ReadError::Parse(e.to_string()))?;
    let obj = match v {
        Value::Object(o) => o,
        Value::Array(_) => return Err(ReadError::Batch),
        _ => return Err(ReadError::Invalid("not an object")),
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(ReadError::Invalid("`jsonrpc` must be \"2.0\""));
    }
    let params = obj.get("params").cloned().unwrap_or(Value::Null);
    if !matches!(params, Value::Null | Value::Object(_) | Value::Array(_)) {
        return Err(ReadError::Invalid("`params` must be an object or an array"));
    }
    match (obj.get("method"), obj.get("id")) {
        (Some(Value::String(method)), Some(id)) => {
            if !matches!(id, Value::String(_) | Value::Number(_)) {
                return Err(ReadError::Invalid("`id` must be a string or a number"));
            }
            Ok(Incoming::Request {
                id: id.clone(),
                method: method.clone(),
                params,
            })
        }
        (Some(Value::String(method)), None) => Ok(Incoming::Notification {
            method: method.clone(),
            params,
        }),
        (Some(_), _) => Err(ReadError::Invalid("`method` must be a string")),
        (None, Some(_)) if obj.contains_key("result") || obj.contains_key("error") => {
            Ok(Incoming::Response)
        }
        (None, _) => Err(ReadError::Invalid("no `method`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_kinds_and_refuses_the_rest() {
        assert_eq!(
            read(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#),
            Ok(Incoming::Request {
                id: json!(1),
                method: "ping".into(),
                params: Value::Null
            })
        );
        assert!(matches!(
            read(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Ok(Incoming::Notification { .. })
        ));
        assert_eq!(
            read(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#),
            Ok(Incoming::Response)
        );
        assert_eq!(read(b"[]"), Err(ReadError::Batch));
        assert_eq!(read(b"{").map_err(|e| e.code()), Err(PARSE_ERROR));
        for bad in [
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"3"#,
        ] {
            assert_eq!(
                read(bad.as_bytes()).map_err(|e| e.code()),
                Err(INVALID_REQUEST),
                "{bad}"
            );
        }
    }
}
