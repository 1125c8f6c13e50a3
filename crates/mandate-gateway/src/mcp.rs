//! The MCP gateway: one Streamable HTTP endpoint (MCP 2025-11-25, also speaking
//! 2025-06-18, 2025-03-26 and 2024-11-05) in front of one or more upstream MCP servers,
//! where every tool call is decided and recorded by Mandate before it is forwarded.
//!
//! # Who a session belongs to
//!
//! Every request is authenticated with [`Authorizer::authenticate`] before anything
//! else is read or opened: signature, window, audience (`{public_url}/mcp`),
//! revocation, and the whole holder chain (every agent active, the mandate live). It
//! names the **acting agent**: the agent the token was issued to and that
//! authenticated to get it (`client_id`; `act.sub` for an exchanged token), whatever
//! `sub` says (for an exchanged token `sub` is the user, or the agent that delegated).
//! A session, its streams, its calls in flight and the caps all belong to the acting
//! agent: another agent, even one acting for the same user or holding a token
//! delegated by the owner, gets 404 for the session as if it did not exist.
//!
//! No open stream outlives its token's validity: each one re-authenticates its token
//! whenever [`Authorizer::changes`] fires (a suspension, containment, revocation, a
//! stale snapshot: any rebuild), every second besides (a mandate that runs out by
//! time), and before relaying each message; it ends as soon as that fails, its session
//! ends, or its token reaches `exp` (a timer on `McpConfig::clock`, the authorizer's
//! clock) (`lease.rs`), whether or not its client still reads. A token whose holder may
//! not act now (suspended, contained, mandate ended) gets 403 and opens nothing.
//!
//! A stream is re-authenticated, not re-decided. A policy change fires the change feed,
//! but a policy that now denies a tool does not cut a call it allowed when it started
//! (it was decided once, like an HTTP request through the HTTP gateway, and may have
//! acted upstream already), and the standalone stream is not decided at all: it carries
//! notifications, not actions. The next `tools/call` is decided under the new policy;
//! revocation, suspension and containment are what stop running work.
//!
//! # What a client sees
//!
//! - `POST /mcp` takes one JSON-RPC message (a batch array is refused: -32600, HTTP
//!   400). Every request needs `Authorization: Bearer <Mandate access token>` issued for
//!   the resource `{public_url}/mcp`; without a valid one the answer is 401 with
//!   `WWW-Authenticate: Bearer resource_metadata="{public_url}/.well-known/oauth-protected-resource/mcp",
//!   scope="mcp:call_tool"` (plus `error="invalid_token"` when a token was presented),
//!   so a standard MCP client can discover Mandate as the authorization server. A
//!   valid token whose holder may not act now is 403 with JSON-RPC -32003 and
//!   `data: {error: "forbidden", decision: "deny", reasons: [<code>]}` (e.g.
//!   `agent_suspended`; nothing is decided or recorded, and no scope challenge: there
//!   is no scope to step up to).
//! - The body is read only after the token was accepted (origin, token, content type,
//!   `Accept` and protocol version are checked from the headers first). A
//!   `Content-Length` over `max_body_bytes` is 413 at once (as is a body that grows
//!   past it); a body not complete within `body_timeout` is 408; one that breaks off
//!   (the client closed its side, bad chunking) is 400 `body_incomplete`, not 413.
//!   Before a byte is read, the message's size (declared, or `max_body_bytes` when
//!   chunked) is reserved from the body budget shared with the HTTP gateway
//!   ([`crate::budget`]); when it does not fit now the answer is HTTP 503 with
//!   `Retry-After: 1` and -32008 `busy`, the body unread. Every answer sent without
//!   reading the body says `Connection: close`.
//! - `initialize` is answered by the gateway: a new session (`Mcp-Session-Id`, 256
//!   random bits in hex) of the acting agent, the client's protocol version if
//!   supported (else the latest), capabilities `{tools: {listChanged: false}}`. Later
//!   requests must carry the session id (400 without it) and a token of the same
//!   acting agent: an unknown session, or another agent's, is 404 (the spec's "start a
//!   new session"). `MCP-Protocol-Version`, when sent, must be a supported version
//!   (400). An `Origin` header, when sent, must be the public URL's origin (403: DNS
//!   rebinding). At most 32 sessions per acting agent (its least recently used goes)
//!   and 4096 in all (see `session.rs`). A session unused for `session_idle_timeout`
//!   ([`SESSION_IDLE`], 30 minutes, in `mandate serve`) — no request naming it, no
//!   open stream, no call in flight — is ended, and its upstream sessions deleted
//!   (best effort); the client gets 404 next and initializes again.
//! - `tools/list`: every upstream's tools (all pages), renamed `{server}__{tool}`,
//!   keeping those the agent may call (`Authorizer::check` allows or asks for
//!   approval; not recorded: listing is not acting). An upstream that fails is left
//!   out (logged), the others are listed.
//! - `tools/call`: the name is split at its first `__` into server and tool; an unknown
//!   server, or a tool that server does not list, is -32602 before anything is decided.
//!   A session has at most 16 calls in flight: one more is -32007 `too_many_calls`, a
//!   request id already in flight -32600 `duplicate_request_id` (both HTTP 200,
//!   nothing decided). Then `Authorizer::authorize` (action `mcp:call_tool`, resource
//!   `Mcp::Tool` named `{server}__{tool}`, context `{server, tool, tool_arguments}`)
//!   decides and records:
//!   - deny: JSON-RPC error -32003 `denied by Mandate` (HTTP 200) with
//!     `data: {error: "denied", decision: "deny", reasons, decision_id}`; the upstream
//!     is not contacted for the call;
//!   - deny whose first reason is `outside_token_scope`: HTTP 403 with
//!     `WWW-Authenticate: Bearer error="insufficient_scope", scope="mcp:call_tool",
//!     resource_metadata=…` (MCP authorization, scope challenge) and the same -32003;
//!   - approval required: -32004 `approval required` with `data.decision =
//!     "approval_required"` and a `retry` hint: the client may retry once a human
//!     approved (a mandate request or a step-up hold);
//!   - allow: the request goes to the upstream with the tool's own name, in the
//!     upstream session, and the upstream's response is relayed (`forward.rs`): an SSE
//!     response event by event as it arrives, a JSON one whole; only notifications and
//!     the call's own response pass, and the stream ends after that response. If the
//!     token fails a re-check meanwhile, the upstream is asked to cancel the call and
//!     the client gets the error a new request would get (-32001, -32003 `forbidden`,
//!     -32005; -32006 if the session ended). When it ends, `Authorizer::record_result`
//!     gets `{gateway, server, tool, upstream_status, latency_ms, outcome[,
//!     rpc_error_code][, dropped_server_requests]}` with `outcome` one of `ok`,
//!     `tool_error`, `rpc_error`, `incomplete`, `client_disconnected`,
//!     `client_stalled` (the client took no message for `timeout`: the call was given
//!     up and cancelled upstream), `upstream_error`, `upstream_timeout`, `cut_off`.
//! - `ping` is answered by the gateway; `notifications/cancelled` is passed to the
//!   upstream that has the request; other notifications and responses get 202 and go
//!   nowhere (the gateway sends no requests to clients). Other methods: -32601.
//! - `GET /mcp` (in a session) is the standalone server-to-client stream: the
//!   upstreams' own standalone streams merged, notifications only (`listen.rs`: some
//!   servers send a call's progress there, not on the call's stream). One per session:
//!   a second is 409 Conflict (-32600, `stream_conflict`) while the first is open.
//! - `DELETE /mcp` ends the session, its open streams and, best effort, its upstream
//!   sessions (204).
//! - `GET /.well-known/oauth-protected-resource/mcp` (and at the root path): the RFC
//!   9728 metadata naming Mandate's issuer as the authorization server.
//!
//! Error codes (also in `data.error` as a word): -32700 parse, -32600 invalid request
//! (also HTTP 400 `body_incomplete`, 408 `body_timeout`, 409 `stream_conflict`, 413
//! `body_too_large`), -32601 unknown method, -32602 invalid params / unknown tool,
//! -32603 internal, -32001
//! unauthenticated (HTTP 401), -32003 denied (or, HTTP 403, `forbidden`), -32004
//! approval required, -32005 authorization unavailable (HTTP 503), -32006 session not
//! found (HTTP 404), -32007 too many calls in flight, -32008 `busy` (HTTP 503, the body
//! budget is spent), -32010 upstream error, -32011
//! upstream timeout. Upstream failures are JSON-RPC errors with HTTP 200 (an HTTP 5xx
//! would end most clients' whole session, not just the call); if an upstream SSE
//! stream ends without the call's response the gateway adds a -32010/-32011 error
//! event so the client does not wait forever.
//!
//! # Upstreams
//!
//! Upstream sessions are opened lazily, one per (gateway session, upstream):
//! `initialize` (asking for the client's protocol version, offering no client
//! capabilities) and `notifications/initialized`; the upstream's `Mcp-Session-Id` and
//! protocol version go with every later request to it. An upstream that answers 404
//! (it ended the session) gets a new session and the request once more. Requests to
//! upstreams are built from scratch: the agent's token, or any other client header,
//! is never sent on (the MCP spec forbids token passthrough). The gateway's own
//! requests use string ids `mandate-gateway-N`; clients' ids pass through unchanged.
//! Timeouts: `timeout` for each of the gateway's own upstream requests and for the
//! response head of a forwarded call; while a forwarded response streams, `timeout`
//! is the longest silence (so progress notifications keep a long call alive). An
//! upstream's standalone stream silent for `stream_idle_timeout` is closed and opened
//! again. `timeout` is also the longest a client's stream may take no message: a
//! client that stopped reading has its call given up (`client_stalled`) or its
//! standalone stream closed, and a lease keeps watching its token while the gateway
//! waits for such a client. A session holds at most one standalone stream and 16 call streams to each
//! upstream.
//!
//! Not relayed, on any stream: server-to-client requests (sampling, elicitation,
//! roots, ping: no client capabilities are offered upstream, and nothing decided
//! them; they are dropped, logged and counted in the call's record, and the upstream
//! gets no answer), stray responses; nor resources and prompts, nor stream resumption
//! (`Last-Event-ID` and SSE event ids).
//!
//! # Fail closed
//!
//! A call is forwarded only after `authorize` returned allow, which means its decision
//! is durable; an `Unavailable` authorizer is 503 and nothing is forwarded (listing
//! too: a `check` error answers the whole `tools/list` with 401 or 503, it never shows
//! a tool it could not decide), and it ends every open stream. The tools a call may
//! name are those the upstream listed in this session (asked once if the client did
//! not list first; a tool added upstream later becomes callable at the next
//! `tools/list`).

mod forward;
mod listen;
mod rpc;
mod session;
mod sse;
mod upstream;

use mandate_tls::server::Peer;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mandate_core::clock::Clock;
use mandate_core::trace::{AttrValue, RequestTrace, SpanKind};
use serde_json::{Value, json};

use crate::authz::{Ask, Authorizer, AuthzError, Presented, Principal, Reason, Verdict};
use crate::bearer::{agent_token, dpop_proofs};
use crate::budget::BodyBudget;
use crate::http::body::{BodyFault, Limits, Progress, read_whole};
use crate::lease::{self, Access, End, Lease, Watch};
use crate::trace;
use session::{Busy, Session, Sessions};
use upstream::{Conn, SESSION_HEADER, Upstream, UpstreamError, VERSION_HEADER};

/// One upstream MCP server.
#[derive(Debug, Clone)]
pub struct McpServer {
    /// Its name: tools are exposed as `<name>__<tool>`.
    pub name: String,
    /// Its Streamable HTTP endpoint, e.g. `http://127.0.0.1:9100/mcp`.
    pub url: String,
    /// How an `https://` endpoint is trusted and what certificate the gateway presents
    /// to it.
    pub tls: mandate_egress::Settings,
}

/// The MCP gateway's settings.
#[derive(Clone)]
pub struct McpConfig {
    /// The gateway's public base URL (no trailing slash); the MCP endpoint is
    /// `{public_url}/mcp` and that is the resource (token audience) it protects.
    pub public_url: String,
    /// The upstream servers.
    pub servers: Vec<McpServer>,
    /// Per upstream request.
    pub timeout: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long a client has to send a request's whole body, once its token was
    /// accepted (408 after that).
    pub body_timeout: Duration,
    /// How long an upstream's standalone stream may stay silent before it is taken
    /// for dead, closed and opened again.
    pub stream_idle_timeout: Duration,
    /// How long a session may go unused (no request, no open stream, no call in
    /// flight) before it is ended ([`SESSION_IDLE`] in `mandate serve`).
    pub session_idle_timeout: Duration,
    /// The clock tokens are verified with (the authorizer's): an open stream ends at
    /// its token's `exp` by it.
    pub clock: Arc<dyn Clock>,
    /// The bytes both gateways may hold from request bodies at once (shared with the
    /// HTTP gateway's, [`crate::budget`]); a message that does not fit now is 503.
    pub body_budget: BodyBudget,
}

/// How long a session may go unused before the gateway ends it: 30 minutes. An MCP
/// client keeps one session for as long as it runs, often quiet for minutes between
/// tool calls, so this is long; a client that comes back later gets 404 and, as the
/// spec requires, initializes again.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

impl std::fmt::Debug for McpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpConfig")
            .field("public_url", &self.public_url)
            .field("servers", &self.servers)
            .field("timeout", &self.timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("body_timeout", &self.body_timeout)
            .field("stream_idle_timeout", &self.stream_idle_timeout)
            .field("session_idle_timeout", &self.session_idle_timeout)
            .field("body_budget", &self.body_budget)
            .finish_non_exhaustive()
    }
}

/// What is wrong with an [`McpConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpConfigError {
    /// `public_url` is not `http(s)://host[:port]` without a trailing slash.
    #[error(
        "invalid public URL `{0}`: expected http(s)://host[:port], no path, query or trailing slash"
    )]
    PublicUrl(String),
    /// A server name is not 1-64 letters, digits and `-`.
    #[error(
        "invalid MCP server name `{0}`: 1-64 letters, digits or `-` (tools are named `<server>__<tool>`)"
    )]
    ServerName(String),
    /// Two servers with one name.
    #[error("MCP server `{0}` is configured twice")]
    DuplicateServer(String),
    /// A server URL that is not `http(s)://…`.
    #[error("invalid URL `{1}` for MCP server `{0}`")]
    ServerUrl(String, String),
    /// A zero timeout or body limit.
    #[error("the MCP gateway's `{0}` must be greater than zero")]
    Zero(&'static str),
}

fn valid_server_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn valid_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && !r.starts_with('/')
            && r.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    })
}

impl McpConfig {
    /// Checks the settings (the router leaves out servers that fail this, so check at
    /// configuration time).
    pub fn validate(&self) -> Result<(), McpConfigError> {
        let u = &self.public_url;
        let origin_only = valid_http_url(u)
            && u.split_once("://")
                .is_some_and(|(_, r)| !r.contains(['/', '?', '#']));
        if !origin_only {
            return Err(McpConfigError::PublicUrl(u.clone()));
        }
        let mut seen = HashSet::new();
        for s in &self.servers {
            if !valid_server_name(&s.name) {
                return Err(McpConfigError::ServerName(s.name.clone()));
            }
            if !seen.insert(s.name.as_str()) {
                return Err(McpConfigError::DuplicateServer(s.name.clone()));
            }
            if !valid_http_url(&s.url) {
                return Err(McpConfigError::ServerUrl(s.name.clone(), s.url.clone()));
            }
        }
        if self.timeout.is_zero() {
            return Err(McpConfigError::Zero("timeout"));
        }
        if self.max_body_bytes == 0 {
            return Err(McpConfigError::Zero("max_body_bytes"));
        }
        if self.body_timeout.is_zero() {
            return Err(McpConfigError::Zero("body_timeout"));
        }
        if self.stream_idle_timeout.is_zero() {
            return Err(McpConfigError::Zero("stream_idle_timeout"));
        }
        if self.session_idle_timeout.is_zero() {
            return Err(McpConfigError::Zero("session_idle_timeout"));
        }
        Ok(())
    }
}

/// The action every tool call is decided as.
const ACTION: &str = "mcp:call_tool";
/// The entity type of a tool.
const TOOL_TYPE: &str = "Mcp::Tool";
/// Between server and tool in an exposed name.
const SEPARATOR: &str = "__";
/// The protocol versions spoken, latest first.
const VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

struct Gateway {
    authz: Arc<dyn Authorizer>,
    /// `{public_url}/mcp`: the resource, the tokens' audience.
    resource: String,
    /// `{public_url}/.well-known/oauth-protected-resource/mcp`.
    metadata_url: String,
    /// The origin browsers may post from (the public URL's), lowercased.
    origin: String,
    max_body_bytes: usize,
    body_timeout: Duration,
    /// Per upstream request; also the longest a client's stream may go without taking
    /// a message before the client is taken to have stopped reading.
    timeout: Duration,
    stream_idle_timeout: Duration,
    session_idle_timeout: Duration,
    clock: Arc<dyn Clock>,
    body_budget: BodyBudget,
    upstreams: BTreeMap<String, Arc<Upstream>>,
    sessions: Sessions,
}

/// The MCP endpoint (`/mcp`) and its RFC 9728 metadata
/// (`/.well-known/oauth-protected-resource/mcp`).
pub fn router(cfg: McpConfig, authz: Arc<dyn Authorizer>) -> Router {
    let public = cfg.public_url.trim_end_matches('/').to_owned();
    let client = |tls: &mandate_egress::Settings, read_timeout: bool| {
        let b = mandate_egress::builder(tls)
            .map_err(|e| e.to_string())?
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(cfg.timeout);
        let built = if read_timeout {
            b.read_timeout(cfg.timeout).build()
        } else {
            // The standalone streams: their silence is bounded by `stream_idle_timeout`
            // (listen.rs); keepalive probes find a peer that is gone meanwhile.
            b.tcp_keepalive(Duration::from_secs(30)).build()
        };
        built.map_err(|e| e.to_string())
    };
    let mut upstreams = BTreeMap::new();
    for s in cfg.servers {
        if !valid_server_name(&s.name) || !valid_http_url(&s.url) {
            tracing::error!(server = %s.name, "invalid MCP upstream left out");
            continue;
        }
        match (client(&s.tls, true), client(&s.tls, false)) {
            (Ok(http), Ok(listen_http)) => {
                let up = Upstream::new(s.name.clone(), s.url, http, listen_http, cfg.timeout);
                upstreams.insert(s.name, Arc::new(up));
            }
            // Fail closed: an upstream without its HTTP client is left out, so nothing
            // of it is listed or forwarded (`mandate serve` checked its TLS settings
            // at config load already).
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(server = %s.name, error = %e, "MCP upstream without an HTTP client left out");
            }
        }
    }
    let gw = Arc::new(Gateway {
        authz,
        resource: format!("{public}/mcp"),
        metadata_url: format!("{public}/.well-known/oauth-protected-resource/mcp"),
        origin: public.to_ascii_lowercase(),
        max_body_bytes: cfg.max_body_bytes,
        body_timeout: cfg.body_timeout,
        timeout: cfg.timeout,
        stream_idle_timeout: cfg.stream_idle_timeout,
        session_idle_timeout: cfg.session_idle_timeout,
        clock: cfg.clock,
        body_budget: cfg.body_budget,
        upstreams,
        sessions: Sessions::default(),
    });
    expire_sessions(&gw);
    Router::new()
        .route("/mcp", post(post_mcp).get(get_mcp).delete(delete_mcp))
        .route("/.well-known/oauth-protected-resource/mcp", get(metadata))
        .route("/.well-known/oauth-protected-resource", get(metadata))
        .with_state(gw)
}

/// Ends, in the background, the sessions unused for the idle timeout and, best effort,
/// their upstream sessions: a sweep every quarter of the timeout (at most every
/// minute), so a session goes between one and one and a quarter timeouts (at most a
/// minute more) after its last use. The sweep stops once the router is dropped.
fn expire_sessions(gw: &Arc<Gateway>) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::error!("MCP gateway built outside a runtime: idle sessions do not expire");
        return;
    };
    let every =
        (gw.session_idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(60));
    let weak = Arc::downgrade(gw);
    rt.spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(gw) = weak.upgrade() else { return };
            for s in gw.sessions.expire(gw.session_idle_timeout) {
                tracing::debug!(agent = %s.agent, "MCP session expired unused");
                gw.close_upstreams(s);
            }
        }
    });
}

/// A JSON response.
fn rpc_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// A JSON-RPC error at HTTP `status`; `data.error` is `word`.
fn rpc_fail(status: StatusCode, id: &Value, code: i64, word: &str, message: &str) -> Response {
    rpc_response(
        status,
        rpc::error(id, code, message, Some(json!({"error": word}))),
    )
}

/// A response sent without reading the request's body: the connection cannot carry
/// another request, so it says it closes (RFC 9112 §9.6).
fn unread(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// What the client gets when the authorizer refuses (`Unauthenticated` gets its
/// `WWW-Authenticate` challenge on top) or when an open stream's lease ends: the HTTP
/// status and the JSON-RPC error.
fn refusal(id: &Value, e: &End) -> (StatusCode, Value) {
    let fail = |word: &str, code, message: &str| {
        rpc::error(id, code, message, Some(json!({"error": word})))
    };
    match e {
        End::Access(AuthzError::Dpop(d)) => (
            StatusCode::UNAUTHORIZED,
            rpc::error(
                id,
                rpc::UNAUTHENTICATED,
                "the token's DPoP presentation is refused",
                Some(json!({"error": d.error, "reason": d.reason})),
            ),
        ),
        End::Access(AuthzError::Unauthenticated(_)) => (
            StatusCode::UNAUTHORIZED,
            fail(
                "unauthenticated",
                rpc::UNAUTHENTICATED,
                "a valid Mandate access token for this resource is required",
            ),
        ),
        End::Access(AuthzError::Forbidden(reason)) => (
            StatusCode::FORBIDDEN,
            rpc::error(
                id,
                rpc::DENIED,
                "the token's holder may not act now",
                Some(json!({"error": "forbidden", "decision": "deny", "reasons": [reason]})),
            ),
        ),
        End::Access(AuthzError::Unavailable(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            fail(
                "authorization_unavailable",
                rpc::AUTHZ_UNAVAILABLE,
                "Mandate cannot decide or record right now; nothing was forwarded",
            ),
        ),
        End::SessionClosed => (
            StatusCode::NOT_FOUND,
            fail(
                "session_not_found",
                rpc::SESSION_NOT_FOUND,
                "the session ended: initialize a new one",
            ),
        ),
    }
}

/// A request body not taken: 413 `body_too_large` over the limit, 408 `body_timeout`
/// when it did not arrive in time, 400 `body_incomplete` when it broke off (the client
/// closed its side, bad chunking) — a broken stream is not a big message.
fn body_refused(f: BodyFault) -> Response {
    let (status, word, message) = match f {
        BodyFault::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the message is too large",
        ),
        BodyFault::TooSlow => (
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the message did not arrive in time",
        ),
        BodyFault::Broken => (
            StatusCode::BAD_REQUEST,
            "body_incomplete",
            "the message broke off before its end",
        ),
    };
    rpc_fail(status, &Value::Null, rpc::INVALID_REQUEST, word, message)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether an `Accept` header admits `media` (`None`: no header, anything goes).
fn accepts(accept: Option<&str>, media: &str) -> bool {
    let Some(accept) = accept else { return true };
    let (kind, _) = media.split_once('/').unwrap_or((media, ""));
    accept.split(',').any(|part| {
        let m = part
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        m == media || m == "*/*" || m == format!("{kind}/*")
    })
}

/// A fresh session id: 256 bits from the OS, in hex.
fn new_session_id() -> Option<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[expect(
    clippy::disallowed_methods,
    reason = "latency measurement for the audit record, not wall-clock time"
)]
fn stopwatch() -> Instant {
    Instant::now()
}

/// Why a request gets no further: an HTTP response to send instead.
type Refusal = Box<Response>;

impl Gateway {
    fn www_authenticate(&self, extra: &str) -> HeaderValue {
        let v = format!(
            "Bearer resource_metadata=\"{}\", scope=\"{ACTION}\"{extra}",
            self.metadata_url
        );
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }

    /// 401, telling the client where to get a token.
    fn unauthorized(&self, id: &Value, presented: bool) -> Refusal {
        let extra = if presented {
            ", error=\"invalid_token\", error_description=\"the access token is invalid, expired, revoked or not issued for this resource\""
        } else {
            ""
        };
        let (status, body) = refusal(id, &End::Access(AuthzError::Unauthenticated(String::new())));
        let mut r = rpc_response(status, body);
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, self.www_authenticate(extra));
        Box::new(r)
    }

    /// The authorizer's refusal: 401 (with the challenge), 403 for a holder that may
    /// not act now (`data.reasons` names why; nothing was decided or recorded, and
    /// there is no scope to step up to, so no challenge), 503.
    fn authz_error(&self, id: &Value, e: AuthzError) -> Refusal {
        match &e {
            AuthzError::Unauthenticated(why) => {
                tracing::debug!(reason = %why, "MCP gateway: token refused");
                return self.unauthorized(id, true);
            }
            AuthzError::Forbidden(why) => {
                tracing::info!(reason = %why, "MCP gateway: the token's holder may not act");
            }
            AuthzError::Unavailable(why) => {
                tracing::error!(reason = %why, "MCP gateway: authorization unavailable; nothing forwarded");
            }
            AuthzError::Dpop(d) => {
                tracing::debug!(reason = d.reason, "MCP gateway: DPoP presentation refused");
                let (challenge, nonce) = (d.challenge(), d.nonce.clone());
                let (status, body) = refusal(id, &End::Access(e));
                let mut r = rpc_response(status, body);
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
                if let Some(v) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
                    r.headers_mut()
                        .insert(HeaderName::from_static("dpop-nonce"), v);
                }
                return Box::new(r);
            }
        }
        let (status, body) = refusal(id, &End::Access(e));
        Box::new(rpc_response(status, body))
    }

    fn ask(
        &self,
        token: &str,
        server: &str,
        tool: &str,
        arguments: Option<Value>,
        method: &str,
    ) -> Ask {
        let mut context = json!({"server": server, "tool": tool});
        if let (Some(args), Some(c)) = (arguments, context.as_object_mut()) {
            c.insert("tool_arguments".into(), args);
        }
        Ask {
            token: token.to_owned(),
            audience: self.resource.clone(),
            action: ACTION.to_owned(),
            resource_type: TOOL_TYPE.to_owned(),
            resource_id: format!("{server}{SEPARATOR}{tool}"),
            resource_attributes: serde_json::Map::new(),
            context,
            via: json!({"gateway": "mcp", "method": method, "server": server, "tool": tool}),
            trace_id: None,
        }
    }

    /// Authenticates the token for this resource (nothing decided or recorded): the
    /// acting agent, or the refusal (401, 403 for a holder that may not act now, 503).
    /// Authenticates the token of `headers` (under `Bearer` or `DPoP`, with its proof
    /// for `method` on this endpoint, `{public_url}/mcp`) for this resource.
    fn authenticate(
        &self,
        id: &Value,
        headers: &HeaderMap,
        method: &str,
        peer: Option<&Peer>,
    ) -> Result<Principal, Refusal> {
        let Some((token, dpop)) = agent_token(headers) else {
            return Err(self.unauthorized(id, false));
        };
        let presented = Presented {
            token,
            dpop,
            proofs: dpop_proofs(headers),
            method,
            url: self.resource.clone(),
            certificate: peer.and_then(Peer::leaf),
        };
        // INVARIANT (session owner): sessions, streams and caps belong to the acting
        // agent the authorizer names for a token it has just verified for this
        // resource, never to a claim read here.
        self.authz
            .authenticate_presented(&presented, &self.resource)
            .map_err(|e| self.authz_error(id, e))
    }

    /// The lease of a stream opened with `token` (authenticated as `principal`) in
    /// `session`, seeing the changes since `since` (taken before the check the stream
    /// was opened on), ending at the token's `exp`.
    fn lease(&self, token: &str, principal: &Principal, session: &Session, since: Watch) -> Lease {
        Lease::new(
            Access::new(
                Arc::clone(&self.authz),
                token,
                &self.resource,
                &principal.agent,
            ),
            Some(session.closed()),
            since,
            lease::expiry(principal.expires_at, self.clock.as_ref()),
        )
    }

    /// The session the request names, if it is `agent`'s.
    fn session(
        &self,
        headers: &HeaderMap,
        id: &Value,
        agent: &str,
    ) -> Result<Arc<Session>, Refusal> {
        let Some(sid) = header_str(headers, SESSION_HEADER) else {
            return Err(Box::new(rpc_fail(
                StatusCode::BAD_REQUEST,
                id,
                rpc::INVALID_REQUEST,
                "missing_session",
                "no Mcp-Session-Id: send initialize first",
            )));
        };
        self.sessions.get(sid, agent).ok_or_else(|| {
            Box::new(rpc_fail(
                StatusCode::NOT_FOUND,
                id,
                rpc::SESSION_NOT_FOUND,
                "session_not_found",
                "unknown or ended session: initialize a new one",
            ))
        })
    }

    /// Checks the origin (before anything else).
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        match header_str(headers, header::ORIGIN.as_str()) {
            Some(o) if !o.eq_ignore_ascii_case(&self.origin) => Err(Box::new(rpc_fail(
                StatusCode::FORBIDDEN,
                &Value::Null,
                rpc::INVALID_REQUEST,
                "origin_forbidden",
                "requests from this origin are not accepted",
            ))),
            _ => Ok(()),
        }
    }

    /// The open upstream session of `session` with `up`, opening it if need be.
    async fn conn(&self, session: &Session, up: &Upstream) -> Result<Conn, UpstreamError> {
        let slot = session.upstreams.get(&up.name).ok_or_else(|| {
            UpstreamError::Protocol(up.name.clone(), "no slot in this session".into())
        })?;
        let mut g = slot.lock().await;
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        let c = up.open(&session.protocol_version).await?;
        *g = Some(c.clone());
        Ok(c)
    }

    /// Forgets `failed` (the upstream ended it) so the next use opens a new one.
    async fn forget(&self, session: &Session, up: &Upstream, failed: &Conn) {
        if let Some(slot) = session.upstreams.get(&up.name) {
            let mut g = slot.lock().await;
            if g.as_ref() == Some(failed) {
                *g = None;
            }
        }
    }

    /// What `up` lists, remembered in the session.
    async fn upstream_tools(
        &self,
        session: &Session,
        up: &Upstream,
    ) -> Result<Vec<Value>, UpstreamError> {
        let conn = self.conn(session, up).await?;
        let tools = match up.list_tools(&conn).await {
            Err(UpstreamError::SessionEnded(_)) => {
                self.forget(session, up, &conn).await;
                let conn = self.conn(session, up).await?;
                up.list_tools(&conn).await?
            }
            r => r?,
        };
        let names = tools
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        session.set_tools(&up.name, names);
        Ok(tools)
    }

    async fn tools_list(&self, session: &Session, id: &Value, token: &str) -> Response {
        let lists = futures_util::future::join_all(
            self.upstreams
                .values()
                .map(|up| async move { (up, self.upstream_tools(session, up).await) }),
        )
        .await;
        let mut out = Vec::new();
        for (up, listed) in lists {
            let tools = match listed {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(upstream = %up.name, error = %e, "MCP upstream not listed");
                    continue;
                }
            };
            for mut tool in tools {
                let Some(name) = tool.get("name").and_then(Value::as_str).map(str::to_owned) else {
                    continue;
                };
                let ask = self.ask(token, &up.name, &name, None, "tools/list");
                match self.authz.check(&ask) {
                    Ok(Verdict::Allow | Verdict::ApprovalRequired) => {
                        if let Some(t) = tool.as_object_mut() {
                            t.insert("name".into(), ask.resource_id.into());
                            out.push(tool);
                        }
                    }
                    Ok(Verdict::Deny) => {}
                    Err(e) => return *self.authz_error(id, e),
                }
            }
        }
        rpc_response(StatusCode::OK, rpc::result(id, json!({"tools": out})))
    }

    async fn tools_call(
        self: &Arc<Self>,
        session: Arc<Session>,
        id: &Value,
        (token, principal): (&str, &Principal),
        params: Value,
        trace: Option<&RequestTrace>,
    ) -> Response {
        let invalid = |msg: &str| {
            rpc_fail(
                StatusCode::OK,
                id,
                rpc::INVALID_PARAMS,
                "invalid_params",
                msg,
            )
        };
        let Value::Object(mut params) = params else {
            return invalid("tools/call needs params");
        };
        let Some(full) = params
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return invalid("tools/call needs a tool `name`");
        };
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => json!({}),
            Some(a @ Value::Object(_)) => a.clone(),
            Some(_) => return invalid("`arguments` must be an object"),
        };
        let unknown = || invalid(&format!("unknown tool `{full}`"));
        let Some((server, tool)) = full.split_once(SEPARATOR) else {
            return unknown();
        };
        let Some(up) = self.upstreams.get(server).cloned() else {
            return unknown();
        };
        // Only tools the upstream lists can be called (asked once per session if the
        // client did not list first).
        let known = match session.has_tool(server, tool) {
            Some(k) => k,
            None => match self.upstream_tools(&session, &up).await {
                Ok(_) => session.has_tool(server, tool).unwrap_or(false),
                Err(e) => return upstream_failure(id, &e),
            },
        };
        if !known {
            return unknown();
        }
        // Room in the session before anything is decided: a call that cannot be
        // forwarded is not decided either.
        let in_flight = match session.start(id, server) {
            Ok(f) => f,
            Err(Busy::Full) => {
                return rpc_fail(
                    StatusCode::OK,
                    id,
                    rpc::TOO_MANY_CALLS,
                    "too_many_calls",
                    &format!(
                        "this session has {} calls in flight; retry when one has ended",
                        session::MAX_CALLS
                    ),
                );
            }
            Err(Busy::Duplicate) => {
                return rpc_fail(
                    StatusCode::OK,
                    id,
                    rpc::INVALID_REQUEST,
                    "duplicate_request_id",
                    "a request with this id is in flight in this session",
                );
            }
        };

        let mut ask = self.ask(token, server, tool, Some(arguments), "tools/call");
        ask.trace_id = trace.map(|t| t.trace_id);
        // Watched from before the decision: a change while the call is decided and sent
        // upstream (up to `timeout`) reaches the call's lease.
        let since = Watch::start(self.authz.as_ref());
        let answer = match self.authz.authorize(ask).await {
            Ok(a) => a,
            Err(e) => return *self.authz_error(id, e),
        };
        let data = |decision: &str, word: &str| {
            json!({
                "error": word,
                "decision": decision,
                "reasons": answer.reasons(),
                "decision_id": answer.decision_id,
            })
        };
        match answer.verdict() {
            Verdict::Deny => {
                let scope = answer.reason == Reason::OutsideTokenScope;
                let body = rpc::error(
                    id,
                    rpc::DENIED,
                    "denied by Mandate",
                    Some(data("deny", "denied")),
                );
                if !scope {
                    return rpc_response(StatusCode::OK, body);
                }
                let mut r = rpc_response(StatusCode::FORBIDDEN, body);
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    self.www_authenticate(", error=\"insufficient_scope\", error_description=\"the token's scope does not cover mcp:call_tool\""),
                );
                return r;
            }
            Verdict::ApprovalRequired => {
                let mut d = data("approval_required", "approval_required");
                if let Some(o) = d.as_object_mut() {
                    o.insert(
                        "retry".into(),
                        "this call needs a human's approval; retry it once approved".into(),
                    );
                }
                return rpc_response(
                    StatusCode::OK,
                    rpc::error(id, rpc::APPROVAL_REQUIRED, "approval required", Some(d)),
                );
            }
            Verdict::Allow => {}
        }

        // INVARIANT (decided before forwarded): this is the only path to an upstream
        // tools/call, and it is reached only with an allow whose decision is durable.
        params.insert("name".into(), tool.into());
        let body = rpc::request(id, "tools/call", Some(Value::Object(params)));
        // The upstream call's span, child of the gateway's: its id is the upstream's
        // parent-id (`INVARIANT (trace headers are the gateway's)`, trace.rs).
        let mut extra = HeaderMap::new();
        let client_span = trace.and_then(|_| trace::new_span());
        if let (Some(t), Some(span)) = (trace, client_span) {
            trace::set_upstream(&mut extra, t, span);
        }
        let client_timer = trace::Timer::start(self.clock.as_ref());
        let call = forward::Call {
            authz: Arc::clone(&self.authz),
            decision_id: answer.decision_id.clone(),
            server: server.to_owned(),
            tool: tool.to_owned(),
            id: id.clone(),
            in_flight,
            started: stopwatch(),
            recorded: false,
            dropped: 0,
        };
        let sent = match self.conn(&session, &up).await {
            Ok(conn) => match up.send_with(Some(&conn), &body, extra.clone()).await {
                Err(UpstreamError::SessionEnded(_)) => {
                    // The upstream did not take the call: a new session, once more.
                    self.forget(&session, &up, &conn).await;
                    match self.conn(&session, &up).await {
                        Ok(conn) => up.send_with(Some(&conn), &body, extra.clone()).await,
                        Err(e) => Err(e),
                    }
                }
                r => r,
            },
            Err(e) => Err(e),
        };
        if let (Some(t), Some(span)) = (trace, client_span) {
            let status = sent.as_ref().ok().map(reqwest::Response::status);
            let mut attributes = vec![
                ("http.request.method", AttrValue::Str("POST".into())),
                ("mandate.mcp.server", AttrValue::Str(server.to_owned())),
            ];
            if let Some(s) = status {
                attributes.push((
                    "http.response.status_code",
                    AttrValue::Int(i64::from(s.as_u16())),
                ));
            }
            client_timer.finish(
                self.authz.spans(),
                t,
                span,
                Some(t.span_id),
                SpanKind::Client,
                "POST mcp upstream".into(),
                attributes,
                status.is_none(),
            );
        }
        match sent {
            Ok(res) => {
                let lease = self.lease(token, principal, &session, since);
                let gw = Arc::clone(self);
                let request_id = id.clone();
                let cancel: forward::Cancel = Box::new(move |reason| {
                    let params = json!({"requestId": request_id, "reason": reason});
                    gw.cancel(session, params, false);
                });
                forward::respond(res, call, lease, (cancel, refusal), self.timeout).await
            }
            Err(e) => {
                tracing::warn!(upstream = %server, error = %e, "MCP call not forwarded");
                call.record(forward::Outcome {
                    upstream_status: e.status(),
                    outcome: e.outcome(),
                    rpc_error_code: None,
                });
                upstream_failure(id, &e)
            }
        }
    }

    /// Passes `notifications/cancelled` to the upstream that has the request, in the
    /// upstream session it went to (opening one if `may_open` and there is none).
    fn cancel(self: &Arc<Self>, session: Arc<Session>, params: Value, may_open: bool) {
        let Some(request_id) = params.get("requestId").cloned() else {
            return;
        };
        let Some(server) = session.in_flight(&request_id) else {
            return;
        };
        let Some(up) = self.upstreams.get(&server).cloned() else {
            return;
        };
        let gw = Arc::clone(self);
        tokio::spawn(async move {
            let conn = session
                .upstreams
                .get(&server)
                .and_then(|slot| slot.try_lock().ok().and_then(|g| g.clone()));
            let conn = match conn {
                Some(c) => Some(c),
                None if may_open => gw.conn(&session, &up).await.ok(),
                None => None,
            };
            if let Some(conn) = conn
                && let Err(e) = up
                    .notify(&conn, "notifications/cancelled", Some(params))
                    .await
            {
                tracing::debug!(upstream = %up.name, error = %e, "cancellation not passed on");
            }
        });
    }

    /// Ends `session`'s upstream sessions, in the background.
    fn close_upstreams(self: &Arc<Self>, session: Arc<Session>) {
        let gw = Arc::clone(self);
        tokio::spawn(async move {
            for (name, slot) in &session.upstreams {
                let conn = slot.lock().await.take();
                if let (Some(conn), Some(up)) = (conn, gw.upstreams.get(name)) {
                    up.close(&conn).await;
                }
            }
        });
    }
}

fn upstream_failure(id: &Value, e: &UpstreamError) -> Response {
    let word = if e.code() == rpc::UPSTREAM_TIMEOUT {
        "upstream_timeout"
    } else {
        "upstream_error"
    };
    let mut data = json!({"error": word});
    if let (Some(s), Some(d)) = (e.status(), data.as_object_mut()) {
        d.insert("upstream_status".into(), s.into());
    }
    rpc_response(
        StatusCode::OK,
        rpc::error(id, e.code(), &e.to_string(), Some(data)),
    )
}

async fn post_mcp(
    State(gw): State<Arc<Gateway>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let timer = trace::Timer::start(gw.clock.as_ref());
    let t = trace::of_request(gw.authz.as_ref(), &headers);
    let peer = peer.map(|Extension(p)| p);
    let res = match handle_post(&gw, &headers, peer.as_ref(), body, t.as_ref()).await {
        Ok(r) | Err(r) => r,
    };
    if let Some(t) = &t {
        let status = res.status();
        timer.finish(
            gw.authz.spans(),
            t,
            t.span_id,
            t.parent,
            SpanKind::Server,
            "POST mcp".into(),
            vec![
                ("http.request.method", AttrValue::Str("POST".into())),
                (
                    "http.response.status_code",
                    AttrValue::Int(i64::from(status.as_u16())),
                ),
                ("mandate.gateway", AttrValue::Str("mcp".into())),
            ],
            status.is_server_error(),
        );
    }
    res
}

async fn handle_post(
    gw: &Arc<Gateway>,
    headers: &HeaderMap,
    peer: Option<&Peer>,
    body: Body,
    trace: Option<&RequestTrace>,
) -> Result<Response, Response> {
    let null = Value::Null;
    // Everything up to the token's check is answered without reading the body: no
    // body is read for a client that is not authenticated.
    let early = |r: Refusal| unread(*r);
    gw.check_origin(headers).map_err(early)?;
    let token = agent_token(headers)
        .map(|(t, _)| t)
        .ok_or_else(|| unread(*gw.unauthorized(&null, false)))?;
    let json_body = header_str(headers, header::CONTENT_TYPE.as_str())
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));
    if !json_body {
        return Err(unread(rpc_fail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &null,
            rpc::INVALID_REQUEST,
            "unsupported_media_type",
            "post one JSON-RPC message as application/json",
        )));
    }
    let accept = header_str(headers, header::ACCEPT.as_str());
    if !accepts(accept, "application/json") || !accepts(accept, "text/event-stream") {
        return Err(unread(rpc_fail(
            StatusCode::NOT_ACCEPTABLE,
            &null,
            rpc::INVALID_REQUEST,
            "not_acceptable",
            "Accept must list application/json and text/event-stream",
        )));
    }
    if let Some(v) = header_str(headers, VERSION_HEADER)
        && !VERSIONS.contains(&v)
    {
        return Err(unread(rpc_fail(
            StatusCode::BAD_REQUEST,
            &null,
            rpc::INVALID_REQUEST,
            "unsupported_protocol_version",
            &format!("unsupported MCP-Protocol-Version `{v}`"),
        )));
    }
    // INVARIANT (authenticated before read): the body is read only for a token that
    // authenticates for this resource, and its holder may act.
    let principal = gw
        .authenticate(&null, headers, "POST", peer)
        .map_err(early)?;
    let declared = header_str(headers, header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(gw.max_body_bytes).unwrap_or(u64::MAX)) {
        return Err(unread(body_refused(BodyFault::TooLarge)));
    }
    // One body reader for both gateways: the limit, the deadline and a body that broke
    // off are told apart.
    let limits = Limits::new(gw.max_body_bytes, gw.body_timeout);
    // INVARIANT (body budget): the message's size is reserved before a byte is read —
    // the declared length, or the limit when none is declared — and held until this
    // request is answered.
    let want = declared
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(gw.max_body_bytes);
    let Some(held) = gw.body_budget.reserve(want) else {
        let mut busy = rpc_fail(
            StatusCode::SERVICE_UNAVAILABLE,
            &null,
            rpc::BUSY,
            "busy",
            "the gateway holds as many request bodies as it may; retry later",
        );
        busy.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Err(unread(busy));
    };
    let bytes = read_whole(body, limits, &Progress::default(), &held)
        .await
        // The rest is unread (or unreadable): the connection cannot carry another request.
        .map_err(|f| unread(body_refused(f)))?;
    let msg = rpc::read(&bytes).map_err(|e| {
        rpc_fail(
            StatusCode::BAD_REQUEST,
            &null,
            e.code(),
            "invalid_message",
            &e.to_string(),
        )
    })?;
    let id = match &msg {
        rpc::Incoming::Request { id, .. } => id.clone(),
        _ => Value::Null,
    };
    let agent = principal.agent.as_str();
    let has_session = headers.contains_key(SESSION_HEADER);

    match msg {
        rpc::Incoming::Response => {
            if has_session {
                gw.session(headers, &id, agent).map_err(|r| *r)?;
            }
            Ok(StatusCode::ACCEPTED.into_response())
        }
        rpc::Incoming::Notification { method, params } => {
            if has_session {
                let session = gw.session(headers, &id, agent).map_err(|r| *r)?;
                if method == "notifications/cancelled" {
                    gw.cancel(session, params, true);
                }
            }
            Ok(StatusCode::ACCEPTED.into_response())
        }
        rpc::Incoming::Request { method, params, .. } => match method.as_str() {
            "initialize" => Ok(initialize(gw, &id, agent, &params)),
            "ping" => {
                if has_session {
                    gw.session(headers, &id, agent).map_err(|r| *r)?;
                }
                Ok(rpc_response(StatusCode::OK, rpc::result(&id, json!({}))))
            }
            _ => {
                let session = gw.session(headers, &id, agent).map_err(|r| *r)?;
                Ok(match method.as_str() {
                    "tools/list" => gw.tools_list(&session, &id, token).await,
                    "tools/call" => {
                        gw.tools_call(session, &id, (token, &principal), params, trace)
                            .await
                    }
                    other => rpc_fail(
                        StatusCode::OK,
                        &id,
                        rpc::METHOD_NOT_FOUND,
                        "method_not_found",
                        &format!("the MCP gateway does not serve `{other}`"),
                    ),
                })
            }
        },
    }
}

fn initialize(gw: &Arc<Gateway>, id: &Value, agent: &str, params: &Value) -> Response {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = asked
        .and_then(|a| VERSIONS.iter().find(|v| **v == a))
        .or(VERSIONS.first())
        .copied()
        .unwrap_or("2025-11-25");
    let Some(sid) = new_session_id() else {
        tracing::error!("MCP gateway: no randomness for a session id");
        return rpc_fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            id,
            rpc::INTERNAL_ERROR,
            "internal_error",
            "cannot open a session",
        );
    };
    let evicted = gw.sessions.insert(
        sid.clone(),
        agent,
        version,
        gw.upstreams.keys().map(String::as_str),
    );
    for s in evicted {
        gw.close_upstreams(s);
    }
    let result = json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {
            "name": "mandate-mcp-gateway",
            "title": "Mandate MCP gateway",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "instructions": "Tools are named <server>__<tool>. Every call is authorized by Mandate; a denied call returns error -32003, one held for approval -32004 (retry once approved).",
    });
    let mut r = rpc_response(StatusCode::OK, rpc::result(id, result));
    if let Ok(v) = HeaderValue::from_str(&sid) {
        r.headers_mut()
            .insert(HeaderName::from_static(SESSION_HEADER), v);
    }
    r
}

async fn delete_mcp(
    State(gw): State<Arc<Gateway>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    let null = Value::Null;
    let run = || -> Result<Response, Refusal> {
        gw.check_origin(&headers)?;
        let principal = gw.authenticate(
            &null,
            &headers,
            "DELETE",
            peer.as_ref().map(|Extension(p)| p),
        )?;
        let session = gw.session(&headers, &null, &principal.agent)?;
        if let Some(sid) = header_str(&headers, SESSION_HEADER) {
            // Ends the session's open streams too.
            gw.sessions.remove(sid, &principal.agent);
        }
        gw.close_upstreams(session);
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    match run() {
        Ok(r) => r,
        Err(r) => *r,
    }
}

async fn get_mcp(
    State(gw): State<Arc<Gateway>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    let null = Value::Null;
    let run = || -> Result<Response, Refusal> {
        gw.check_origin(&headers)?;
        if !accepts(
            header_str(&headers, header::ACCEPT.as_str()),
            "text/event-stream",
        ) {
            return Err(Box::new(rpc_fail(
                StatusCode::NOT_ACCEPTABLE,
                &null,
                rpc::INVALID_REQUEST,
                "not_acceptable",
                "Accept must list text/event-stream",
            )));
        }
        let token = agent_token(&headers).map(|(t, _)| t);
        let since = Watch::start(gw.authz.as_ref());
        let principal =
            gw.authenticate(&null, &headers, "GET", peer.as_ref().map(|Extension(p)| p))?;
        let session = gw.session(&headers, &null, &principal.agent)?;
        let lease = gw.lease(token.unwrap_or_default(), &principal, &session, since);
        Ok(listen::open(&gw, &session, lease))
    };
    match run() {
        Ok(r) => r,
        Err(r) => *r,
    }
}

async fn metadata(State(gw): State<Arc<Gateway>>) -> Response {
    rpc_response(
        StatusCode::OK,
        json!({
            "resource": gw.resource,
            "authorization_servers": [gw.authz.issuer()],
            "bearer_methods_supported": ["header"],
            "scopes_supported": [ACTION],
            "resource_name": "Mandate MCP gateway",
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_and_bearer() {
        assert!(accepts(None, "text/event-stream"));
        assert!(accepts(
            Some("application/json, text/event-stream"),
            "text/event-stream"
        ));
        assert!(accepts(Some("*/*"), "application/json"));
        assert!(accepts(Some("text/*;q=0.5"), "text/event-stream"));
        assert!(!accepts(Some("application/json"), "text/event-stream"));

        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(agent_token(&h), Some(("abc", false)));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(agent_token(&h), None);
    }

    #[test]
    fn config_validation() {
        let ok = McpConfig {
            public_url: "http://127.0.0.1:8081".into(),
            servers: vec![McpServer {
                name: "files-1".into(),
                url: "http://127.0.0.1:9/mcp".into(),
                tls: mandate_egress::Settings::default(),
            }],
            timeout: Duration::from_secs(5),
            max_body_bytes: 1 << 20,
            body_timeout: Duration::from_secs(5),
            stream_idle_timeout: Duration::from_secs(5),
            session_idle_timeout: SESSION_IDLE,
            clock: Arc::new(mandate_core::clock::SystemClock),
            body_budget: BodyBudget::new(1 << 24),
        };
        assert_eq!(ok.validate(), Ok(()));
        let with = |f: &dyn Fn(&mut McpConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            c.validate()
        };
        assert!(matches!(
            with(&|c| c.public_url = "http://x/".into()),
            Err(McpConfigError::PublicUrl(_))
        ));
        assert!(matches!(
            with(&|c| c.public_url = "ftp://x".into()),
            Err(McpConfigError::PublicUrl(_))
        ));
        assert!(matches!(
            with(&|c| c.servers[0].name = "a__b".into()),
            Err(McpConfigError::ServerName(_))
        ));
        assert!(matches!(
            with(&|c| c.servers.push(c.servers[0].clone())),
            Err(McpConfigError::DuplicateServer(_))
        ));
        assert!(matches!(
            with(&|c| c.servers[0].url = "127.0.0.1:9".into()),
            Err(McpConfigError::ServerUrl(..))
        ));
        assert!(matches!(
            with(&|c| c.timeout = Duration::ZERO),
            Err(McpConfigError::Zero(_))
        ));
        assert!(matches!(
            with(&|c| c.session_idle_timeout = Duration::ZERO),
            Err(McpConfigError::Zero("session_idle_timeout"))
        ));
    }
}
