//! The HTTP gateway: a reverse proxy in front of APIs that agents call.
//!
//! A [`Route`] maps a path prefix to an upstream, and the request to an action, a
//! resource and a context through small templates. For each request: the agent's
//! bearer token is taken (and never forwarded), Mandate decides and records the
//! decision durably ([`Authorizer::authorize`]), and only on allow is the request
//! forwarded — with the upstream's own credential, which Mandate holds, injected.
//! Bodies stream both ways; upstream failures are 502, an answer that does not begin
//! within `timeout` is 504, and a response body silent for longer than `timeout`, or
//! still streaming when its token stops authenticating as the agent it was decided for
//! (containment, suspension, revocation, `exp`: the lease (`crate::lease`), as at the MCP
//! gateway), is cut off with an error (`stream`: the agent's connection is aborted, so
//! a truncated body never looks whole; the decision's recorded result keeps the status,
//! the cut is logged).
//!
//! # One reading of the request
//!
//! The gateway decides on exactly the request it forwards. The path is read once into
//! its canonical form ([`path`]: decoded once, dot segments removed, anything two
//! readers could take differently refused with 400 `ambiguous_path`); the route is
//! picked on that form, and the decision, the audit record (`via.path`, plus
//! `via.raw_path` when the path as sent differs) and the upstream URL all come from it.
//! The upstream URL is built from the route's upstream base, the [`path::RoutedPath`]
//! and the `query::Query` alone — the request's own URI is not passed on past the
//! reading. Likewise the query (`query`: a parameter a template reads may appear only
//! once, only as the template spells it — `ID` is `id` to a case-insensitive binder
//! (`name`) — and not again as `id[]`/`id[0]`/`id.x`; `access_token` in any spelling
//! and `_method` are refused; the pairs are re-encoded one way) and a JSON body a
//! template reads (`body::json_fields`: a repeated top-level name, a read one in
//! another case or with `[`/`.` after it, or `_method`, is refused; the body must be
//! declared UTF-8 JSON). Names templates read are printable ASCII
//! ([`HttpConfig::validate`]).
//!
//! # Order of work
//!
//! 1. path → route (400 `ambiguous_path`, 404 `not_found`), query (400
//!    `ambiguous_query`, 400 `token_in_query`, 400 `ambiguous_request` for `_method`),
//!    a header asking for another method or
//!    target — `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`,
//!    `X-Original-Method`, `X-Original-URL`, `X-Rewrite-URL` (400 `ambiguous_request`:
//!    anything ambiguous is refused, never guessed);
//! 2. the bearer token is authenticated for the route's resource
//!    ([`Authorizer::authenticate`]: 401, or 403 when its holder may not act, 503 when
//!    nothing can be decided) — before any of the body is read;
//! 3. method → action (405 `method_not_allowed`), a parameter a template reads sent
//!    twice, in another case or with array/object syntax (400 `ambiguous_query`),
//!    declared size (413
//!    `body_too_large`);
//! 4. the body, only when a template reads a field of it: declared as one
//!    `Content-Type: application/json` or `application/…+json`, UTF-8 (else 415
//!    `unsupported_media_type` — 415 rather than 400, as RFC 9110 §15.5.16 names it;
//!    checked before a byte is read), its size reserved from the gateways' shared body
//!    budget ([`crate::budget`]: the declared length, or `max_body_bytes` when none is
//!    declared; 503 `busy` with `Retry-After` when it does not fit now), read whole
//!    within `max_body_bytes` (413) and
//!    `body_timeout` (408 `request_timeout`), one JSON object without a repeated
//!    top-level name and without a field a template reads sent again, or only, in
//!    another case or with `[`/`.` after it (400 `ambiguous_body`), without `_method`
//!    (400 `ambiguous_request`);
//! 5. templates (400 `unmapped_request`), then the decision (403 `denied` /
//!    `approval_required`, 503 `decision_unavailable`);
//! 6. forward: headers the client names in `Connection` are dropped with the other
//!    hop-by-hop headers (RFC 9110 §7.6.1), and so are those the upstream names in its
//!    answer; the client's `Forwarded`, `X-Forwarded-*` and `X-Real-IP` are dropped (a
//!    client is no proxy the upstream should believe), and so are headers in the
//!    gateway's namespace (`Mandate-*`) both ways: only the gateway sends
//!    `Mandate-Decision-Id`; a relayed body is held to the same size limit and deadline
//!    (413/408 when it breaks one before the upstream answers).
//!
//! Any answer sent before the request body was read to its end says `Connection:
//! close` (RFC 9112 §9.6): the connection cannot carry another request, and a pooled
//! client must not take it for one that can.
//!
//! Templates: literal text with placeholders `{method}` (lowercase), `{path}` (the
//! canonical path after the prefix, decoded, without the leading `/`), `{path.N}` (its
//! N-th segment, from 0), `{query.NAME}` and `{body.FIELD}` (a top-level field of a JSON
//! body; the body is then read whole before forwarding). A placeholder the request does
//! not fill is a 400 `unmapped_request`, nothing is decided or sent; so is a resource id
//! that renders empty (`?id=` for `{query.id}`).
//!
//! The decision's `via` (the audit record) holds the route, the method, the canonical
//! `path` (and `raw_path` when the path as sent differs) and, when there is one, the
//! `query` exactly as forwarded (re-encoded, without `?`).

pub(crate) mod body;
mod name;
pub mod path;
mod percent;
mod query;
mod stream;

use mandate_tls::server::Peer;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};

use mandate_core::clock::Clock;
use mandate_core::trace::{AttrValue, RequestTrace, SpanKind};

use crate::authz::{Answer, Ask, Authorizer, AuthzError, Presented, Verdict};
use crate::bearer::{agent_token, dpop_proofs};
use crate::budget::{BodyBudget, DEFAULT_MAX_BUFFERED_BYTES};
use crate::lease::{self, Access, Lease, Watch};
use crate::trace;
use body::{BodyFault, Limits, Progress};
use path::{CanonicalPath, PathError, RoutedPath};
use query::{Query, QueryError};

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Method,
    Path,
    Segment(usize),
    Query(String),
    Body(String),
}

/// A string with placeholders, checked when the configuration is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

/// A template that does not parse.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("template `{template}`: {problem}")]
pub struct TemplateError {
    template: String,
    problem: String,
}

impl Template {
    /// Parses `{method}`, `{path}`, `{path.N}`, `{query.NAME}`, `{body.FIELD}` and text.
    pub fn parse(s: &str) -> Result<Self, TemplateError> {
        let err = |p: &str| TemplateError {
            template: s.to_owned(),
            problem: p.to_owned(),
        };
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            let (text, after) = rest.split_at(open);
            if text.contains('}') {
                return Err(err("unmatched `}`"));
            }
            if !text.is_empty() {
                parts.push(Part::Text(text.to_owned()));
            }
            let after = after.get(1..).unwrap_or("");
            let close = after.find('}').ok_or_else(|| err("unclosed `{`"))?;
            let name = after.get(..close).unwrap_or("");
            parts.push(match name.split_once('.') {
                None if name == "method" => Part::Method,
                None if name == "path" => Part::Path,
                Some(("path", n)) => {
                    Part::Segment(n.parse().map_err(|_| err("`path.N` needs a number"))?)
                }
                Some(("query", q)) if !q.is_empty() => Part::Query(q.to_owned()),
                Some(("body", f)) if !f.is_empty() => Part::Body(f.to_owned()),
                _ => return Err(err(&format!("unknown placeholder `{{{name}}}`"))),
            });
            rest = after.get(close + 1..).unwrap_or("");
        }
        if rest.contains('}') {
            return Err(err("unmatched `}`"));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self(parts))
    }

    fn needs_body(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Part::Body(_)))
    }

    /// The query parameters the template reads.
    fn query_names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Part::Query(q) => Some(q.as_str()),
            _ => None,
        })
    }

    /// The top-level body fields the template reads.
    fn body_names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Part::Body(f) => Some(f.as_str()),
            _ => None,
        })
    }

    /// Fills the template from what the request holds; `None` when a placeholder has
    /// nothing to take.
    fn render(&self, r: &Seen<'_>) -> Option<String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Method => out.push_str(&r.method.as_str().to_ascii_lowercase()),
                Part::Path => out.push_str(&r.path.text()),
                Part::Segment(n) => out.push_str(r.path.segments().get(*n)?),
                Part::Query(q) => out.push_str(r.query.get(q)?),
                Part::Body(f) => match r.body?.get(f)? {
                    Value::String(s) => out.push_str(s),
                    v @ (Value::Number(_) | Value::Bool(_)) => out.push_str(&v.to_string()),
                    _ => return None,
                },
            }
        }
        Some(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            match p {
                Part::Text(t) => f.write_str(t)?,
                Part::Method => f.write_str("{method}")?,
                Part::Path => f.write_str("{path}")?,
                Part::Segment(n) => write!(f, "{{path.{n}}}")?,
                Part::Query(q) => write!(f, "{{query.{q}}}")?,
                Part::Body(b) => write!(f, "{{body.{b}}}")?,
            }
        }
        Ok(())
    }
}

/// How the upstream's own credential is sent. The value is a secret Mandate holds
/// (by name); it is never logged and never returned by any API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `<header>: <secret>`, e.g. an API key header.
    Header {
        /// The header's name.
        name: HeaderName,
        /// The secret's name.
        secret: String,
    },
    /// `Authorization: Bearer <secret>`.
    Bearer {
        /// The secret's name.
        secret: String,
    },
}

/// One route.
#[derive(Debug, Clone)]
pub struct Route {
    /// The path prefix, starting with `/`, without a trailing `/` (`/crm`), in canonical
    /// form ([`path::check_prefix`]; [`HttpConfig::validate`]).
    pub prefix: String,
    /// Where it goes (`http://127.0.0.1:9000/api`), without a trailing `/`.
    pub upstream: String,
    /// The action by HTTP method (`GET` → `crm:read`); `*` is the fallback. A method
    /// with no action is refused (405), nothing decided.
    pub actions: BTreeMap<String, Template>,
    /// The resource's entity type (`Crm::Contact`).
    pub resource_type: String,
    /// The resource's id (`{path.1}`).
    pub resource_id: Template,
    /// Context fields (`data_class` → `internal`).
    pub context: BTreeMap<String, Template>,
    /// The resource's attributes (`team` → `sales`), strings, passed into the decision
    /// as the resource entity's attributes (what `/v1/authorize` takes as
    /// `resource.attributes`). A static value (no placeholder) is the operator's word
    /// about every resource of the route; a value rendered from the request is the
    /// caller's claim, no more trustworthy than a body field — policies should not
    /// authorize on it.
    pub resource_attributes: BTreeMap<String, Template>,
    /// The credential to inject, if the upstream needs one.
    pub credential: Option<Credential>,
    /// How an `https://` upstream is trusted and what certificate the gateway presents
    /// to it (system roots or `ca_file`, `client_cert_file`/`client_key_file`,
    /// `server_name`); read when the router is built.
    pub tls: mandate_egress::Settings,
}

impl Route {
    fn action(&self, method: &Method) -> Option<&Template> {
        self.actions
            .get(method.as_str())
            .or_else(|| self.actions.get("*"))
    }

    /// The templates a request with `action` fills.
    fn templates<'a>(&'a self, action: &'a Template) -> impl Iterator<Item = &'a Template> {
        std::iter::once(action)
            .chain(std::iter::once(&self.resource_id))
            .chain(self.context.values())
            .chain(self.resource_attributes.values())
    }
}

/// The HTTP gateway's settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The gateway's public base URL (no trailing slash); a route's resource (the token
    /// audience it accepts) is `{public_url}{prefix}`.
    pub public_url: String,
    /// The routes (the longest matching prefix wins).
    pub routes: Vec<Route>,
    /// Until the upstream's response headers arrive.
    pub timeout: Duration,
    /// The largest request body forwarded.
    pub max_body_bytes: usize,
    /// How long the whole request body may take to arrive, from the request's head.
    pub body_timeout: Duration,
}

/// A configuration the gateway cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpConfigError {
    /// A prefix that is not its own canonical form.
    #[error(
        "route prefix `{0}` must be `/` and non-empty segments of unreserved characters, \
         sub-delims, `:` or `@` (no `%`, no `.` or `..` segment, no trailing `/`)"
    )]
    Prefix(String),
    /// An upstream base that ends in `/` or holds a query or fragment.
    #[error("route `{0}`: the upstream must not end with `/` or hold a query or fragment")]
    Upstream(String),
    /// Two routes with one prefix: the second could never be matched.
    #[error("route prefix `{0}` is configured more than once")]
    Repeated(String),
    /// A template reads a query parameter or body field whose name is not ASCII.
    #[error(
        "route `{prefix}`: template name `{name}` must be printable ASCII (no space): a name \
         beyond ASCII cannot be compared with what is sent as every upstream compares it"
    )]
    ReadName {
        /// The route's prefix.
        prefix: String,
        /// The name read.
        name: String,
    },
}

impl HttpConfig {
    /// Checks that every route can be matched and forwarded as the canonical form says.
    /// A prefix configured twice is refused: the second route would be dead, and the
    /// operator meant something by it. Every query parameter and body field a template
    /// reads is printable ASCII: whether a sent name is "the same" is then a question of
    /// ASCII folding and the few code points that fold to ASCII letters (`name`).
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.routes {
            if !path::check_prefix(&r.prefix) {
                return Err(HttpConfigError::Prefix(r.prefix.clone()));
            }
            if r.upstream.ends_with('/') || r.upstream.contains(['?', '#']) {
                return Err(HttpConfigError::Upstream(r.prefix.clone()));
            }
            if !seen.insert(r.prefix.as_str()) {
                return Err(HttpConfigError::Repeated(r.prefix.clone()));
            }
            let templates = r
                .actions
                .values()
                .chain(std::iter::once(&r.resource_id))
                .chain(r.context.values())
                .chain(r.resource_attributes.values());
            // INVARIANT (ASCII read names): every name a template reads is printable
            // ASCII; `name::same_name` relies on it.
            for n in templates.flat_map(|t| t.query_names().chain(t.body_names())) {
                if !n.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(HttpConfigError::ReadName {
                        prefix: r.prefix.clone(),
                        name: n.to_owned(),
                    });
                }
            }
        }
        Ok(())
    }
}

struct Gateway {
    cfg: HttpConfig,
    authz: Arc<dyn Authorizer>,
    /// The upstream client of each route, by prefix (routes without TLS settings of
    /// their own share one).
    clients: BTreeMap<String, reqwest::Client>,
    /// The authorizer's clock: a streaming response ends at its token's `exp` by it.
    clock: Arc<dyn Clock>,
    /// The bytes both gateways may hold from request bodies.
    budget: BodyBudget,
}

/// What the templates read: the request as the gateway reads it, once.
struct Seen<'a> {
    method: &'a Method,
    path: &'a RoutedPath,
    query: &'a Query,
    body: Option<&'a Map<String, Value>>,
}

/// The request past its reading: its URI is gone, the path and query are the
/// canonical ones.
struct Incoming {
    method: Method,
    headers: HeaderMap,
    body: Body,
    path: RoutedPath,
    query: Query,
    /// The connection (its client certificate, for a certificate-bound token).
    peer: Option<Peer>,
}

/// Why the HTTP gateway cannot be built: `mandate serve` refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The configuration does not pass [`HttpConfig::validate`].
    #[error(transparent)]
    Config(#[from] HttpConfigError),
    /// The upstream HTTP client could not be built.
    #[error("cannot build the gateway's upstream HTTP client")]
    Client(#[source] reqwest::Error),
    /// A route's TLS settings do not build (a file missing or not parsing, half a
    /// client identity).
    #[error("route `{prefix}`: {source}")]
    Tls {
        /// The route's prefix.
        prefix: String,
        /// Why.
        source: mandate_egress::TlsError,
    },
}

/// The gateway's routes (as the fallback of the returned router, so any path can be a
/// prefix) and their RFC 9728 metadata at `/.well-known/oauth-protected-resource{prefix}`.
///
/// Fails closed: a configuration that does not [validate](HttpConfig::validate), or an
/// upstream client that cannot be built as below, is an error — never a gateway with a
/// default client. The client follows no redirect (a `Location` would take the
/// injected credential to another URL, and the upstream's 3xx goes back to the agent
/// as it is) and uses no proxy, whatever `HTTP_PROXY`/`ALL_PROXY` say: an environment
/// proxy would see every request with the injected credential.
///
/// Tokens' `exp` is read on the system clock, and the bodies this gateway buffers have
/// a budget of their own ([`DEFAULT_MAX_BUFFERED_BYTES`]); [`router_with`] takes the
/// authorizer's clock and a budget shared with the MCP gateway.
pub fn router(cfg: HttpConfig, authz: Arc<dyn Authorizer>) -> Result<Router, RouterError> {
    router_with(
        cfg,
        authz,
        Arc::new(mandate_core::clock::SystemClock),
        BodyBudget::new(DEFAULT_MAX_BUFFERED_BYTES),
    )
}

/// [`router`], with `clock` the clock `authz` verifies tokens with (a streaming
/// response ends at its token's `exp` by it) and `budget` the bytes the gateways may
/// hold from request bodies at once ([`crate::budget`]; give the MCP gateway the same).
pub fn router_with(
    cfg: HttpConfig,
    authz: Arc<dyn Authorizer>,
    clock: Arc<dyn Clock>,
    budget: BodyBudget,
) -> Result<Router, RouterError> {
    cfg.validate()?;
    let build = |tls: &mandate_egress::Settings, prefix: &str| {
        mandate_egress::builder(tls)
            .map_err(|source| RouterError::Tls {
                prefix: prefix.to_owned(),
                source,
            })?
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(RouterError::Client)
    };
    let shared = build(&mandate_egress::Settings::default(), "")?;
    let mut clients = BTreeMap::new();
    for r in &cfg.routes {
        let client = if r.tls == mandate_egress::Settings::default() {
            shared.clone()
        } else {
            build(&r.tls, &r.prefix)?
        };
        clients.insert(r.prefix.clone(), client);
    }
    let gw = Arc::new(Gateway {
        cfg,
        authz,
        clients,
        clock,
        budget,
    });
    Ok(Router::new().fallback(handle).with_state(gw))
}

/// An RFC 9457 problem.
fn problem(status: StatusCode, code: &str, detail: &str, extra: Value) -> Response {
    let mut body = json!({
        "type": mandate_core::problem::type_uri(code),
        "title": status.canonical_reason().unwrap_or(""),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

fn unauthorized(gw: &Gateway, prefix: &str, error: Option<&str>) -> Response {
    let metadata = format!(
        "{}/.well-known/oauth-protected-resource{prefix}",
        gw.cfg.public_url
    );
    let mut challenge = format!("Bearer resource_metadata=\"{metadata}\"");
    if let Some(e) = error {
        challenge.push_str(&format!(", error=\"{e}\""));
    }
    let mut res = problem(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "a valid Mandate access token for this resource is required",
        Value::Null,
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and what the gateway owns: never forwarded.
fn dropped(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// Headers with which a client asks the upstream's framework for another method or
/// another target than the request line's (honoured, when enabled, by Symfony, Laravel,
/// ASP.NET Core, Express's `method-override`, IIS URL Rewrite and the like). The
/// decision is on the request line, so a request carrying one is refused (400
/// `ambiguous_request`) rather than guessed about.
const OVERRIDES: [&str; 6] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
    "x-original-url",
    "x-rewrite-url",
];

/// The first header of [`OVERRIDES`] that `headers` holds.
fn override_header(headers: &HeaderMap) -> Option<&'static str> {
    OVERRIDES.into_iter().find(|h| headers.contains_key(*h))
}

/// What a proxy says about the client and the URL it was called at: `Forwarded`
/// (RFC 7239), `X-Forwarded-*` (`-For`, `-Host`, `-Proto`, `-Prefix`, `-Path`, …) and
/// `X-Real-IP`. Coming from the client they are its own claims — it is no proxy the
/// upstream should trust, and an upstream may route on `X-Forwarded-Prefix` — so they
/// are dropped, never forwarded.
fn client_claimed_routing(name: &HeaderName) -> bool {
    let n = name.as_str();
    n == "forwarded" || n == "x-real-ip" || n.starts_with("x-forwarded-")
}

/// Headers in the gateway's own namespace (`Mandate-*`, e.g. `Mandate-Decision-Id`):
/// only the gateway says them, so the client's are dropped from the forwarded request
/// and an upstream's from its answer — neither side may pass its own claim off as the
/// gateway's.
fn gateway_owned(name: &HeaderName) -> bool {
    name.as_str().starts_with("mandate-")
}

/// The headers `headers` names in its `Connection` field(s): hop-by-hop for this
/// connection only (RFC 9110 §7.6.1), never forwarded.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect()
}

/// `from` without hop-by-hop headers, those it names in `Connection`, and those `also`
/// picks.
fn end_to_end(from: &HeaderMap, also: fn(&HeaderName) -> bool) -> HeaderMap {
    let named = connection_named(from);
    let mut out = HeaderMap::new();
    for (k, v) in from {
        if !dropped(k) && !named.contains(k) && !also(k) {
            out.append(k.clone(), v.clone());
        }
    }
    out
}

fn ambiguous_path(e: &PathError) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "ambiguous_path",
        &format!("{e}; nothing was decided or forwarded"),
        Value::Null,
    )
}

fn bad_query(e: &QueryError) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        e.code(),
        &format!("{e}; nothing was decided or forwarded"),
        Value::Null,
    )
}

fn body_refused(f: BodyFault) -> Response {
    problem(f.status(), f.code(), &f.to_string(), Value::Null)
}

/// The answer when the body's size does not fit the gateways' body budget now: 503
/// `busy`, retry in a second, the connection closed (the body is unread).
fn busy() -> Response {
    let mut res = problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "the gateway holds as many request bodies as it may; nothing was decided or \
         forwarded; retry later",
        Value::Null,
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// The route whose RFC 9728 metadata `path` asks for.
fn metadata_route<'a>(routes: &'a [Route], path: &CanonicalPath) -> Option<&'a Route> {
    let (well_known, rest) = path.segments().split_at_checked(2)?;
    if well_known != [".well-known", "oauth-protected-resource"]
        || rest.is_empty()
        || path.trailing_slash()
    {
        return None;
    }
    let prefix = format!("/{}", rest.join("/"));
    routes.iter().find(|r| r.prefix == prefix)
}

async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let progress = Progress::of(&body);
    let timer = trace::Timer::start(gw.clock.as_ref());
    let mut traced = Traced {
        trace: trace::of_request(gw.authz.as_ref(), &parts.headers),
        decision: None,
        agent: None,
    };
    let method = parts.method.clone();
    let span_path = parts.uri.path().to_owned();
    let mut res = respond(&gw, parts, body, &progress, &mut traced).await;
    if let Some(t) = &traced.trace {
        let status = res.status();
        let mut attributes = vec![
            (
                "http.request.method",
                AttrValue::Str(method.as_str().to_owned()),
            ),
            ("url.path", AttrValue::Str(span_path)),
            (
                "http.response.status_code",
                AttrValue::Int(i64::from(status.as_u16())),
            ),
            ("mandate.gateway", AttrValue::Str("http".into())),
        ];
        if let Some(d) = traced.decision {
            attributes.push(("mandate.decision", AttrValue::Str(d.into())));
        }
        if let Some(a) = traced.agent.take() {
            attributes.push(("mandate.agent", AttrValue::Str(a)));
        }
        timer.finish(
            gw.authz.spans(),
            t,
            t.span_id,
            t.parent,
            SpanKind::Server,
            format!("{} gateway", method.as_str()),
            attributes,
            status.is_server_error(),
        );
    }
    // INVARIANT (connection close): an answer sent before the request body was read to
    // its end closes the connection and says so (RFC 9112 §9.6).
    if !progress.done() {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// Reads the request's target once and hands the rest on without it.
async fn respond(
    gw: &Gateway,
    parts: Parts,
    body: Body,
    progress: &Progress,
    traced: &mut Traced,
) -> Response {
    let limits = Limits::new(gw.cfg.max_body_bytes, gw.cfg.body_timeout);
    let Parts {
        method,
        uri,
        headers,
        extensions,
        ..
    } = parts;
    let peer = extensions.get::<Peer>().cloned();
    let path = match CanonicalPath::parse(uri.path()) {
        Ok(p) => p,
        Err(e) => return ambiguous_path(&e),
    };
    if method == Method::GET
        && let Some(r) = metadata_route(&gw.cfg.routes, &path)
    {
        return axum::Json(json!({
            "resource": format!("{}{}", gw.cfg.public_url, r.prefix),
            "authorization_servers": [gw.authz.issuer()],
            "bearer_methods_supported": ["header"],
            "resource_name": format!("Mandate HTTP gateway: {}", r.prefix),
        }))
        .into_response();
    }
    let not_found = || {
        problem(
            StatusCode::NOT_FOUND,
            "not_found",
            "no route for this path",
            Value::Null,
        )
    };
    let (route, path) = match path.route(gw.cfg.routes.iter().map(|r| r.prefix.as_str())) {
        Ok(Some((i, p))) => match gw.cfg.routes.get(i) {
            Some(r) => (r, p),
            None => return not_found(),
        },
        Ok(None) => return not_found(),
        Err(e) => return ambiguous_path(&e),
    };
    let query = match Query::parse(uri.query()) {
        Ok(q) => q,
        Err(e) => return bad_query(&e),
    };
    if let Some(h) = override_header(&headers) {
        return problem(
            StatusCode::BAD_REQUEST,
            "ambiguous_request",
            &format!(
                "header `{h}` asks the upstream for another method or target than the one \
                 decided; nothing was decided or forwarded"
            ),
            Value::Null,
        );
    }
    // INVARIANT (one reading): past this point the request's target exists only as
    // `path` and `query`; the decision, the record and the upstream URL read them alone.
    drop(uri);
    let req = Incoming {
        method,
        headers,
        body,
        path,
        query,
        peer,
    };
    forward(gw, route, req, limits, progress, traced).await
}

/// The answer to an authorizer's error: nothing is forwarded.
fn refused_by(gw: &Gateway, route: &Route, e: AuthzError) -> Response {
    match e {
        AuthzError::Unauthenticated(_) => unauthorized(gw, &route.prefix, Some("invalid_token")),
        AuthzError::Dpop(d) => dpop_refused(&d),
        AuthzError::Forbidden(reason) => problem(
            StatusCode::FORBIDDEN,
            "denied",
            "the token's holder may not act now; nothing was forwarded",
            json!({"decision": "deny", "reasons": [reason]}),
        ),
        AuthzError::Unavailable(e) => {
            tracing::error!(error = %e, "gateway request refused: no decision");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "decision_unavailable",
                "no decision could be made and recorded; nothing was forwarded",
                Value::Null,
            )
        }
    }
}

/// A token refused for its DPoP presentation: 401 with the `DPoP` challenge (and a
/// fresh `DPoP-Nonce` for `use_dpop_nonce`).
fn dpop_refused(d: &crate::authz::DpopRefusal) -> Response {
    let mut res = problem(
        StatusCode::UNAUTHORIZED,
        d.error,
        "the token's DPoP presentation is refused; nothing was forwarded",
        json!({"reason": d.reason}),
    );
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&d.challenge()) {
        h.insert(header::WWW_AUTHENTICATE, v);
    }
    if let Some(v) = d
        .nonce
        .as_deref()
        .and_then(|n| HeaderValue::from_str(n).ok())
    {
        h.insert(HeaderName::from_static("dpop-nonce"), v);
    }
    res
}

async fn forward(
    gw: &Gateway,
    route: &Route,
    req: Incoming,
    limits: Limits,
    progress: &Progress,
    traced: &mut Traced,
) -> Response {
    let Incoming {
        method,
        headers,
        body,
        path,
        query,
        peer,
    } = req;
    let Some((token, dpop)) = agent_token(&headers) else {
        return unauthorized(gw, &route.prefix, None);
    };
    let token = token.to_owned();
    let audience = format!("{}{}", gw.cfg.public_url, route.prefix);
    let presented = Presented {
        token: &token,
        dpop,
        proofs: dpop_proofs(&headers),
        method: method.as_str(),
        // RFC 9449 §4.3: the URL the agent used, checked against this gateway's own.
        url: format!("{}{}", gw.cfg.public_url, path.raw()),
        certificate: peer.as_ref().and_then(Peer::leaf),
    };
    // INVARIANT (authenticate before the body): not a byte of the body is read until
    // the token has verified for this route's resource (and its DPoP proof, if bound).
    let principal = match gw.authz.authenticate_presented(&presented, &audience) {
        Ok(p) => p,
        Err(e) => return refused_by(gw, route, e),
    };
    let Some(action) = route.action(&method) else {
        return problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route maps no action to the method",
            Value::Null,
        );
    };
    if let Err(e) = query.check_read(route.templates(action).flat_map(Template::query_names)) {
        return bad_query(&e);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > gw.cfg.max_body_bytes) {
        return body_refused(BodyFault::TooLarge);
    }
    // The body is read whole only when a template needs a field of it, and then only
    // a body declared as UTF-8 JSON.
    let (buffered, fields, relayed, _held) = if route.templates(action).any(Template::needs_body) {
        if !body::declares_json(&headers) {
            return problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "this route reads the body's fields: it must be sent as one `Content-Type: \
                 application/json` (or `application/…+json`), UTF-8; nothing was decided or \
                 forwarded",
                Value::Null,
            );
        }
        // INVARIANT (body budget): the body's size is reserved before a byte is read —
        // the declared length, or the limit when none is declared — and held until the
        // request is done with it.
        let Some(held) = gw.budget.reserve(declared.unwrap_or(gw.cfg.max_body_bytes)) else {
            return busy();
        };
        let bytes = match body::read_whole(body, limits, progress, &held).await {
            Ok(b) => b,
            Err(f) => return body_refused(f),
        };
        let read = route.templates(action).flat_map(Template::body_names);
        let fields = match body::json_fields(&bytes, read) {
            Ok(f) => f,
            Err(e) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    e.code(),
                    &format!("{e}; nothing was decided or forwarded"),
                    Value::Null,
                );
            }
        };
        (Some(bytes), fields, None, Some(held))
    } else {
        (None, None, Some((body, limits)), None)
    };
    let seen = Seen {
        method: &method,
        path: &path,
        query: &query,
        body: fields.as_ref(),
    };
    let unmapped = |what: &str| {
        problem(
            StatusCode::BAD_REQUEST,
            "unmapped_request",
            &format!("the request does not fill the route's {what}"),
            Value::Null,
        )
    };
    let Some(action) = action.render(&seen) else {
        return unmapped("action");
    };
    // An empty resource id names nothing (`/v1/authorize` refuses one too): `?id=`
    // fills `{query.id}` with nothing.
    let Some(resource_id) = route.resource_id.render(&seen).filter(|id| !id.is_empty()) else {
        return unmapped("resource id");
    };
    // Each named template rendered to a string, or the first name it cannot fill.
    let render_all = |templates: &BTreeMap<String, Template>| {
        let mut out = serde_json::Map::new();
        for (k, t) in templates {
            let v = t.render(&seen).ok_or_else(|| k.clone())?;
            out.insert(k.clone(), Value::String(v));
        }
        Ok::<_, String>(out)
    };
    let context = match render_all(&route.context) {
        Ok(c) => c,
        Err(k) => return unmapped(&format!("context field `{k}`")),
    };
    let resource_attributes = match render_all(&route.resource_attributes) {
        Ok(a) => a,
        Err(k) => return unmapped(&format!("resource attribute `{k}`")),
    };
    let canonical = path.canonical();
    let mut via = json!({"gateway": "http", "route": route.prefix, "method": method.as_str(),
                         "path": canonical});
    if let Some(v) = via.as_object_mut() {
        if path.raw() != canonical {
            v.insert("raw_path".into(), Value::String(path.raw().to_owned()));
        }
        // The query exactly as forwarded (re-encoded, without `?`), when there is one.
        let forwarded = query.upstream();
        if let Some(q) = forwarded.strip_prefix('?') {
            v.insert("query".into(), Value::String(q.to_owned()));
        }
    }
    // Changes from here on reach the response's lease; those before are covered by the
    // decision.
    let since = Watch::start(gw.authz.as_ref());
    let access = Access::new(Arc::clone(&gw.authz), &token, &audience, &principal.agent);
    let ask = Ask {
        token,
        audience,
        action,
        resource_type: route.resource_type.clone(),
        resource_id,
        resource_attributes,
        context: Value::Object(context),
        via,
        trace_id: traced.trace.as_ref().map(|t| t.trace_id),
    };
    // INVARIANT (gateway fail closed): nothing is forwarded unless the decision is an
    // allow and its audit event is durable (`authorize` returns only then).
    let answer = match gw.authz.authorize(ask).await {
        Ok(a) => a,
        Err(e) => return refused_by(gw, route, e),
    };
    traced.decision = Some(answer.verdict().code());
    traced.agent.clone_from(&answer.agent);
    match answer.verdict() {
        Verdict::Allow => {}
        Verdict::Deny | Verdict::ApprovalRequired => return refused(&answer),
    }
    let credential = match resolve(gw, route.credential.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(route = %route.prefix, error = %e, "gateway request not forwarded");
            return problem(
                StatusCode::BAD_GATEWAY,
                "upstream_credential_unavailable",
                "the upstream's credential is not configured; nothing was forwarded",
                Value::Null,
            );
        }
    };
    // INVARIANT (forward what was decided): the upstream URL is the route's upstream
    // base, the decided path below the prefix and the decided query — nothing else of
    // the request's target reaches it. The method is the decided one too, and no header
    // names another: a method or URL override was refused in `respond` (OVERRIDES), and
    // the client's own routing claims (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`) are
    // dropped here with the token, and so is its `DPoP` proof (RFC 9449): the proof is
    // for the gateway, and the agent's public key is none of the upstream's business.
    let url = format!(
        "{}{}{}",
        route.upstream,
        path.upstream_path(),
        query.upstream()
    );
    let mut headers = end_to_end(&headers, |h| {
        h == header::AUTHORIZATION
            || h == "dpop"
            || client_claimed_routing(h)
            || gateway_owned(h)
            || trace::is_trace_header(h)
    });
    // The upstream call's own span, child of the gateway's: its id is the upstream's
    // parent-id (`INVARIANT (trace headers are the gateway's)`, trace.rs).
    let client_span = traced.trace.as_ref().and_then(|_| trace::new_span());
    if let (Some(t), Some(span)) = (&traced.trace, client_span) {
        trace::set_upstream(&mut headers, t, span);
    }
    let client_timer = trace::Timer::start(gw.clock.as_ref());
    if let Some((name, value)) = credential {
        headers.insert(name, value);
    }
    if let Ok(v) = HeaderValue::from_str(&answer.decision_id) {
        headers.insert(HeaderName::from_static("mandate-decision-id"), v);
    }
    let body = match (buffered, relayed) {
        (Some(b), _) => reqwest::Body::from(b),
        (None, Some((b, limits))) => body::relay(b, limits, progress),
        (None, None) => reqwest::Body::from(Vec::new()),
    };
    #[expect(
        clippy::disallowed_methods,
        reason = "upstream latency for the record, like the access log's timer"
    )]
    let started = Instant::now();
    // INVARIANT (route's own trust): the upstream is reached with the client built from
    // this route's TLS settings; a route without one is never sent (fail closed).
    let Some(client) = gw.clients.get(&route.prefix) else {
        return problem(
            StatusCode::BAD_GATEWAY,
            "upstream_failed",
            "the route has no upstream client; nothing was forwarded",
            Value::Null,
        );
    };
    let sent = client
        .request(method.clone(), &url)
        .headers(headers)
        .body(body)
        .send();
    let result = tokio::time::timeout(gw.cfg.timeout, sent).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let (Some(t), Some(span)) = (&traced.trace, client_span) {
        let status = match &result {
            Ok(Ok(r)) => Some(r.status()),
            _ => None,
        };
        let mut attributes = vec![
            (
                "http.request.method",
                AttrValue::Str(method.as_str().to_owned()),
            ),
            ("url.path", AttrValue::Str(path.upstream_path())),
            ("mandate.route", AttrValue::Str(route.prefix.clone())),
        ];
        if let Some(s) = status {
            attributes.push((
                "http.response.status_code",
                AttrValue::Int(i64::from(s.as_u16())),
            ));
        }
        client_timer.finish(
            gw.authz.spans(),
            t,
            span,
            Some(t.span_id),
            SpanKind::Client,
            format!("{} upstream", method.as_str()),
            attributes,
            status.is_none_or(|s| s.is_server_error()),
        );
    }
    let upstream = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            if let Some(f) = progress.fault() {
                record(
                    gw,
                    &answer,
                    json!({"request_body_error": f.code(), "latency_ms": latency_ms}),
                );
                return body_refused(f);
            }
            let status = if e.is_timeout() {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            tracing::warn!(
                route = %route.prefix,
                error = %mandate_egress::error_chain(&e),
                "upstream failed"
            );
            record(
                gw,
                &answer,
                json!({"upstream_error": status.as_u16(), "latency_ms": latency_ms}),
            );
            return problem(
                status,
                "upstream_failed",
                "the upstream did not answer",
                Value::Null,
            );
        }
        Err(_) => {
            record(
                gw,
                &answer,
                json!({"upstream_error": 504, "latency_ms": latency_ms}),
            );
            return problem(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the upstream did not answer in time",
                Value::Null,
            );
        }
    };
    record(
        gw,
        &answer,
        json!({"upstream_status": upstream.status().as_u16(), "latency_ms": latency_ms}),
    );
    let mut res = Response::builder().status(upstream.status());
    if let Some(h) = res.headers_mut() {
        *h = end_to_end(upstream.headers(), gateway_owned);
    }
    // The head came within `timeout`; the body may take longer in all, but is never
    // silent for longer than `timeout`, and lives only while the token holds — else it
    // is cut off with an error.
    let lease = Lease::new(
        access,
        None,
        since,
        lease::expiry(principal.expires_at, gw.clock.as_ref()),
    );
    let prefix = route.prefix.clone();
    let relayed = stream::relay(upstream.bytes_stream(), gw.cfg.timeout, lease).inspect(move |r| {
        if let Err(e) = r {
            tracing::warn!(route = %prefix, error = %e, "upstream response cut off");
        }
    });
    res.body(Body::from_stream(relayed)).unwrap_or_else(|_| {
        problem(
            StatusCode::BAD_GATEWAY,
            "upstream_failed",
            "bad upstream response",
            Value::Null,
        )
    })
}

/// What the gateway's server span reports of a request: its trace, and once decided,
/// the verdict and the agent.
struct Traced {
    trace: Option<RequestTrace>,
    decision: Option<&'static str>,
    agent: Option<String>,
}

fn record(gw: &Gateway, answer: &Answer, result: Value) {
    // The decision is already durable; the result is recorded without holding the answer.
    tokio::spawn(gw.authz.record_result(answer.decision_id.clone(), result));
}

fn refused(a: &Answer) -> Response {
    let (code, detail) = match a.verdict() {
        Verdict::ApprovalRequired => (
            "approval_required",
            "a human must approve this first (a mandate approval or a step-up hold); retry after",
        ),
        _ => (
            "denied",
            "Mandate denied this request; nothing was forwarded",
        ),
    };
    problem(
        StatusCode::FORBIDDEN,
        code,
        detail,
        json!({"decision": match a.verdict() { Verdict::ApprovalRequired => "approval_required", _ => "deny" },
               "reasons": a.reasons(), "decision_id": a.decision_id}),
    )
}

/// Why a route's upstream credential cannot be injected: nothing is forwarded (502
/// `upstream_credential_unavailable`). The messages name the secret, never its value.
#[derive(Debug, thiserror::Error)]
enum CredentialError {
    /// No secret by that name is set.
    #[error("upstream secret `{0}` is not set")]
    Missing(String),
    /// The secret could not be read.
    #[error("upstream secret `{0}` could not be read")]
    Unavailable(String, #[source] AuthzError),
    /// The secret's value cannot be sent in a header.
    #[error("upstream secret `{0}` is not a valid header value")]
    NotAHeaderValue(String),
}

/// The header to inject, with the secret's value (`None`: the route injects nothing).
fn resolve(
    gw: &Gateway,
    c: Option<&Credential>,
) -> Result<Option<(HeaderName, HeaderValue)>, CredentialError> {
    let Some(c) = c else {
        return Ok(None);
    };
    let (name, secret, bearer) = match c {
        Credential::Header { name, secret } => (name.clone(), secret, false),
        Credential::Bearer { secret } => (header::AUTHORIZATION, secret, true),
    };
    let value = gw
        .authz
        .secret(secret)
        .map_err(|e| CredentialError::Unavailable(secret.clone(), e))?
        .ok_or_else(|| CredentialError::Missing(secret.clone()))?;
    let text = if bearer {
        format!("Bearer {value}")
    } else {
        value
    };
    let mut v = HeaderValue::from_str(&text)
        .map_err(|_| CredentialError::NotAHeaderValue(secret.clone()))?;
    v.set_sensitive(true);
    Ok(Some((name, v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_render_and_refuse() {
        let t = Template::parse("crm:{method}/{path.1}?{query.q}").expect("parses");
        assert_eq!(t.to_string(), "crm:{method}/{path.1}?{query.q}");
        assert_eq!(t.query_names().collect::<Vec<_>>(), ["q"]);
        let m = Method::GET;
        let (_, path) = CanonicalPath::parse("/crm/contacts/c42")
            .and_then(|p| p.route(["/crm"]))
            .expect("canonical")
            .expect("routed");
        let query = Query::parse(Some("q=x+y")).expect("query");
        let seen = Seen {
            method: &m,
            path: &path,
            query: &query,
            body: None,
        };
        assert_eq!(t.render(&seen).as_deref(), Some("crm:get/c42?x y"));
        assert_eq!(
            Template::parse("{path}")
                .expect("ok")
                .render(&seen)
                .as_deref(),
            Some("contacts/c42")
        );
        assert_eq!(Template::parse("{path.5}").expect("ok").render(&seen), None);
        for bad in ["{nope}", "{path.x}", "a}b", "{unclosed", "{query.}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        let b = Template::parse("{body.amount}").expect("ok");
        assert!(b.needs_body());
        let fields = json!({"amount": 12}).as_object().cloned().expect("object");
        let seen = Seen {
            body: Some(&fields),
            ..seen
        };
        assert_eq!(b.render(&seen).as_deref(), Some("12"));
    }

    #[test]
    fn connection_named_headers_are_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        h.append(header::CONNECTION, HeaderValue::from_static("x-other"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-other", HeaderValue::from_static("2"));
        h.insert("x-kept", HeaderValue::from_static("3"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        let out = end_to_end(&h, |h| h == header::AUTHORIZATION);
        assert_eq!(
            out.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            ["x-kept"]
        );
    }

    #[test]
    fn prefixes_and_upstreams_are_validated() {
        let r = |p: &str, u: &str| Route {
            prefix: p.to_owned(),
            upstream: u.to_owned(),
            actions: BTreeMap::new(),
            resource_type: "T".into(),
            resource_id: Template::parse("x").expect("ok"),
            context: BTreeMap::new(),
            resource_attributes: BTreeMap::new(),
            credential: None,
            tls: mandate_egress::Settings::default(),
        };
        let cfg = |routes| HttpConfig {
            public_url: "http://gw".into(),
            routes,
            timeout: Duration::from_secs(1),
            max_body_bytes: 1,
            body_timeout: Duration::from_secs(1),
        };
        assert_eq!(
            cfg(vec![r("/crm/admin", "http://u/api")]).validate(),
            Ok(())
        );
        for (p, u) in [
            ("/crm/", "http://u"),
            ("/%63rm", "http://u"),
            ("/a/../b", "http://u"),
        ] {
            assert_eq!(
                cfg(vec![r(p, u)]).validate(),
                Err(HttpConfigError::Prefix(p.into()))
            );
        }
        for u in ["http://u/", "http://u/a?x=1", "http://u#f"] {
            assert_eq!(
                cfg(vec![r("/crm", u)]).validate(),
                Err(HttpConfigError::Upstream("/crm".into()))
            );
        }
        // Issue 18 follow-up 4: a second route with the same prefix would never be
        // matched; it is refused, not silently dead.
        assert_eq!(
            cfg(vec![
                r("/crm", "http://u/a"),
                r("/crm/admin", "http://u/b"),
                r("/crm", "http://u/c"),
            ])
            .validate(),
            Err(HttpConfigError::Repeated("/crm".into()))
        );
        // Issue 18 follow-up 6 (1): a read name beyond ASCII cannot be compared with
        // what is sent as every upstream compares it.
        for t in [
            "{query.ta\u{17F}k}",
            "{body.\u{212A}}",
            "{query.caf\u{E9}}",
            "{body.a b}",
        ] {
            let mut route = r("/crm", "http://u/a");
            route
                .context
                .insert("c".into(), Template::parse(t).expect("ok"));
            assert!(
                matches!(
                    cfg(vec![route]).validate(),
                    Err(HttpConfigError::ReadName { .. })
                ),
                "{t}"
            );
        }
        let mut route = r("/crm", "http://u/a");
        route.resource_id = Template::parse("{query.task}/{body.k}").expect("ok");
        assert_eq!(cfg(vec![route]).validate(), Ok(()));
    }
}
