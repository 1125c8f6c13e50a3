//! The gateway as an MCP client of one upstream server (Streamable HTTP): opening a
//! session (`initialize` + `notifications/initialized`), its own requests
//! (`tools/list`), forwarding a client's request, ending the session.
//!
//! Every upstream request is built here from scratch: the only headers sent are
//! `Content-Type`, `Accept`, `Mcp-Session-Id` and `MCP-Protocol-Version` of the
//! upstream session, never anything the client sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::{rpc, sse};

/// The session header (case-insensitive in HTTP; this is the spelling of the spec).
pub const SESSION_HEADER: &str = "mcp-session-id";
/// The protocol version header.
pub const VERSION_HEADER: &str = "mcp-protocol-version";
/// What the gateway accepts from an upstream, as the transport requires.
const ACCEPT: &str = "application/json, text/event-stream";
/// The largest upstream message the gateway reads itself (`initialize`, `tools/list`).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// At most this many `tools/list` pages per upstream.
const MAX_PAGES: usize = 50;

/// An open session with an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    /// The upstream's `Mcp-Session-Id` (`None`: a stateless server gave none).
    pub session_id: Option<String>,
    /// The protocol version the upstream answered to `initialize`.
    pub protocol_version: String,
}

/// What went wrong with an upstream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// No connection, or the connection broke.
    #[error("upstream `{0}` is unreachable: {1}")]
    Unreachable(String, String),
    /// No answer in time.
    #[error("upstream `{0}` did not answer in time")]
    Timeout(String),
    /// An HTTP status that is not an answer.
    #[error("upstream `{0}` answered HTTP {1}")]
    Status(String, u16),
    /// HTTP 404 to a request in a session: the upstream ended it.
    #[error("upstream `{0}` ended the session")]
    SessionEnded(String),
    /// An answer that is not what the protocol says.
    #[error("upstream `{0}` answered something unusable: {1}")]
    Protocol(String, String),
    /// A JSON-RPC error response to the gateway's own request.
    #[error("upstream `{0}` refused `{1}`: {2}")]
    Refused(String, String, String),
}

impl UpstreamError {
    /// The JSON-RPC code the client gets for it.
    pub fn code(&self) -> i64 {
        match self {
            Self::Timeout(_) => rpc::UPSTREAM_TIMEOUT,
            _ => rpc::UPSTREAM_ERROR,
        }
    }

    /// The upstream's HTTP status, when it gave one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status(_, s) => Some(*s),
            Self::SessionEnded(_) => Some(404),
            _ => None,
        }
    }

    /// A stable word for the audit record.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "upstream_timeout",
            _ => "upstream_error",
        }
    }
}

/// One upstream MCP server.
#[derive(Debug)]
pub struct Upstream {
    /// Its name (the tool namespace).
    pub name: String,
    url: String,
    http: reqwest::Client,
    /// For the standalone GET stream: no read timeout, it may be quiet for long.
    listen_http: reqwest::Client,
    timeout: Duration,
    next_id: AtomicU64,
}

impl Upstream {
    /// `name` at `url`, with `timeout` per request; `listen_http` (a client without a
    /// read timeout) is for the standalone stream.
    pub fn new(
        name: String,
        url: String,
        http: reqwest::Client,
        listen_http: reqwest::Client,
        timeout: Duration,
    ) -> Self {
        Self {
            name,
            url,
            http,
            listen_http,
            timeout,
            next_id: AtomicU64::new(1),
        }
    }

    /// A fresh id for the gateway's own requests. A string, unlike the numbers most
    /// clients use, so that it does not meet a client's id in the same upstream session.
    fn own_id(&self) -> Value {
        json!(format!(
            "mandate-gateway-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        ))
    }

    fn post(&self, conn: Option<&Conn>, body: &Value) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(&self.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, ACCEPT)
            .body(body.to_string());
        if let Some(c) = conn {
            if let Some(s) = &c.session_id {
                req = req.header(SESSION_HEADER, s);
            }
            req = req.header(VERSION_HEADER, &c.protocol_version);
        }
        req
    }

    fn send_error(&self, e: &reqwest::Error) -> UpstreamError {
        if e.is_timeout() {
            UpstreamError::Timeout(self.name.clone())
        } else {
            UpstreamError::Unreachable(self.name.clone(), e.to_string())
        }
    }

    /// Sends `body` in `conn` and waits (at most the timeout) for the response head.
    /// A 2xx response is returned for the caller to read; 404 in a session is
    /// [`UpstreamError::SessionEnded`]; any other status an error.
    pub async fn send(
        &self,
        conn: Option<&Conn>,
        body: &Value,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.send_with(conn, body, HeaderMap::new()).await
    }

    /// [`Upstream::send`] with `extra` headers (the gateway's own trace headers; each
    /// replaces any header of its name the request would have had).
    pub async fn send_with(
        &self,
        conn: Option<&Conn>,
        body: &Value,
        extra: HeaderMap,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut req = self.post(conn, body);
        if !extra.is_empty() {
            req = req.headers(extra);
        }
        let res = tokio::time::timeout(self.timeout, req.send())
            .await
            .map_err(|_| UpstreamError::Timeout(self.name.clone()))?
            .map_err(|e| self.send_error(&e))?;
        let status = res.status();
        if status.is_success() {
            Ok(res)
        } else if status.as_u16() == 404 && conn.is_some_and(|c| c.session_id.is_some()) {
            Err(UpstreamError::SessionEnded(self.name.clone()))
        } else {
            Err(UpstreamError::Status(self.name.clone(), status.as_u16()))
        }
    }

    /// Sends the request `method` in `conn` and returns its response message (a
    /// `result` or `error` object with the request's id), read from a JSON body or an
    /// SSE stream, within the timeout.
    async fn request(
        &self,
        conn: Option<&Conn>,
        method: &str,
        params: Value,
    ) -> Result<(Value, HeaderMap), UpstreamError> {
        let id = self.own_id();
        let body = rpc::request(&id, method, Some(params));
        let work = async {
            let res = self.send(conn, &body).await?;
            let headers = res.headers().clone();
            let msg = self.read_response(res, &id).await?;
            Ok((msg, headers))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| UpstreamError::Timeout(self.name.clone()))?
    }

    /// The response to request `id` in `res` (JSON, or the matching SSE event).
    async fn read_response(
        &self,
        res: reqwest::Response,
        id: &Value,
    ) -> Result<Value, UpstreamError> {
        let proto = |what: &str| UpstreamError::Protocol(self.name.clone(), what.to_owned());
        let is_sse = content_type(res.headers()).is_some_and(|c| c == "text/event-stream");
        let is_json = content_type(res.headers()).is_some_and(|c| c == "application/json");
        if !is_sse && !is_json {
            return Err(proto("a response that is neither JSON nor an event stream"));
        }
        let mut reader = sse::Reader::new(MAX_MESSAGE_BYTES);
        let mut body = Vec::new();
        let mut stream = res.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.send_error(&e))?;
            if is_json {
                if body.len() + chunk.len() > MAX_MESSAGE_BYTES {
                    return Err(proto("a response over the size limit"));
                }
                body.extend_from_slice(&chunk);
                continue;
            }
            for data in reader.push(&chunk) {
                if let Ok(msg) = serde_json::from_slice::<Value>(&data)
                    && is_response_to(&msg, id)
                {
                    return Ok(msg);
                }
            }
        }
        if is_json {
            let msg: Value =
                serde_json::from_slice(&body).map_err(|_| proto("a response that is not JSON"))?;
            if is_response_to(&msg, id) {
                return Ok(msg);
            }
        }
        Err(proto("no response to the request"))
    }

    /// Opens a session: `initialize` (asking for `protocol_version`) and, once it is
    /// answered, `notifications/initialized`.
    pub async fn open(&self, protocol_version: &str) -> Result<Conn, UpstreamError> {
        let params = json!({
            "protocolVersion": protocol_version,
            // The gateway relays no server-to-client requests (sampling, elicitation,
            // roots), so it offers none.
            "capabilities": {},
            "clientInfo": {"name": "mandate-mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
        });
        let (msg, headers) = self.request(None, "initialize", params).await?;
        let result = self.result_of(msg, "initialize")?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                UpstreamError::Protocol(self.name.clone(), "no protocolVersion".into())
            })?;
        let session_id = headers
            .get(SESSION_HEADER)
            .map(|v| {
                v.to_str().map(str::to_owned).map_err(|_| {
                    UpstreamError::Protocol(
                        self.name.clone(),
                        "a session id that is not text".into(),
                    )
                })
            })
            .transpose()?;
        let conn = Conn {
            session_id,
            protocol_version: version.to_owned(),
        };
        self.notify(&conn, "notifications/initialized", None)
            .await?;
        Ok(conn)
    }

    /// Sends a notification in `conn` (the upstream answers 202).
    pub async fn notify(
        &self,
        conn: &Conn,
        method: &str,
        params: Option<Value>,
    ) -> Result<(), UpstreamError> {
        let body = rpc::notification(method, params);
        let res = self.send(Some(conn), &body).await?;
        drop(res);
        Ok(())
    }

    fn result_of(&self, msg: Value, method: &str) -> Result<Value, UpstreamError> {
        match msg {
            Value::Object(mut m) => {
                if let Some(e) = m.remove("error") {
                    let text = e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("an error")
                        .to_owned();
                    return Err(UpstreamError::Refused(
                        self.name.clone(),
                        method.into(),
                        text,
                    ));
                }
                m.remove("result").ok_or_else(|| {
                    UpstreamError::Protocol(self.name.clone(), "a response with no result".into())
                })
            }
            _ => Err(UpstreamError::Protocol(
                self.name.clone(),
                "a response that is not an object".into(),
            )),
        }
    }

    /// Every tool the upstream lists (following `nextCursor`), as it describes them.
    pub async fn list_tools(&self, conn: &Conn) -> Result<Vec<Value>, UpstreamError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let (msg, _) = self.request(Some(conn), "tools/list", params).await?;
            let mut result = self.result_of(msg, "tools/list")?;
            match result.get_mut("tools").map(Value::take) {
                Some(Value::Array(page)) => tools.extend(page),
                _ => {
                    return Err(UpstreamError::Protocol(
                        self.name.clone(),
                        "tools/list without a tools array".into(),
                    ));
                }
            }
            cursor = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                return Ok(tools);
            }
        }
        Err(UpstreamError::Protocol(
            self.name.clone(),
            format!("more than {MAX_PAGES} pages of tools"),
        ))
    }

    /// Opens the upstream's standalone server-to-client stream in `conn` (HTTP GET).
    /// `Ok(None)`: the upstream offers none (405) or answered something else.
    pub async fn listen(&self, conn: &Conn) -> Result<Option<reqwest::Response>, UpstreamError> {
        let mut req = self
            .listen_http
            .get(&self.url)
            .header(header::ACCEPT, "text/event-stream")
            .header(VERSION_HEADER, &conn.protocol_version);
        if let Some(s) = &conn.session_id {
            req = req.header(SESSION_HEADER, s);
        }
        let res = tokio::time::timeout(self.timeout, req.send())
            .await
            .map_err(|_| UpstreamError::Timeout(self.name.clone()))?
            .map_err(|e| self.send_error(&e))?;
        if res.status().as_u16() == 404 && conn.session_id.is_some() {
            return Err(UpstreamError::SessionEnded(self.name.clone()));
        }
        let sse = content_type(res.headers()).is_some_and(|c| c == "text/event-stream");
        Ok((res.status().is_success() && sse).then_some(res))
    }

    /// Ends `conn` (HTTP DELETE); best effort, errors are only logged.
    pub async fn close(&self, conn: &Conn) {
        let Some(id) = &conn.session_id else { return };
        let req = self
            .http
            .delete(&self.url)
            .header(SESSION_HEADER, id)
            .header(VERSION_HEADER, &conn.protocol_version)
            .timeout(self.timeout);
        match req.send().await {
            Ok(res) => {
                tracing::debug!(upstream = %self.name, status = res.status().as_u16(), "upstream session ended")
            }
            Err(e) => {
                tracing::debug!(upstream = %self.name, error = %e, "upstream session not ended")
            }
        }
    }
}

/// The media type of a response, lowercased, without parameters.
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
}

/// Whether `msg` is the response (result or error) to request `id`.
pub fn is_response_to(msg: &Value, id: &Value) -> bool {
    msg.get("id") == Some(id) && (msg.get("result").is_some() || msg.get("error").is_some())
}
