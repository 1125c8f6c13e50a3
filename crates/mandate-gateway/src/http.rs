//! The HTTP gateway: a reverse proxy in front of APIs that agents call.
//!
//! A [`Route`] maps a path prefix to an upstream, and the request to an action, a
//! resource and a context through small templates. For each request: the agent's
//! bearer token is taken (and never forwarded), Mandate decides and records the
//! decision durably ([`Authorizer::authorize`]), and only on allow is the request
//! forwarded — with the upstream's own credential, which Mandate holds, injected.
//! Bodies stream both ways; upstream failures are 502, timeouts 504.
//!
//! Templates: literal text with placeholders `{method}` (lowercase), `{path}` (the
//! path after the prefix, without the leading `/`), `{path.N}` (its N-th segment,
//! from 0), `{query.NAME}` and `{body.FIELD}` (a top-level field of a JSON body; the
//! body is then read whole, up to the size limit, before forwarding). A placeholder
//! the request does not fill is a 400 `unmapped_request`, nothing is decided or sent.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt as _;
use serde_json::{Value, json};

use crate::authz::{Answer, Ask, Authorizer, AuthzError, Verdict};

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

    /// Fills the template from what the request holds; `None` when a placeholder has
    /// nothing to take.
    fn render(&self, r: &Seen<'_>) -> Option<String> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Method => out.push_str(&r.method.as_str().to_ascii_lowercase()),
                Part::Path => out.push_str(r.rest),
                Part::Segment(n) => {
                    out.push_str(r.rest.split('/').filter(|s| !s.is_empty()).nth(*n)?);
                }
                Part::Query(q) => out.push_str(&r.query.get(q.as_str())?.clone()),
                Part::Body(f) => match r.body.as_ref()?.get(f)? {
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
    /// The path prefix, starting with `/`, without a trailing `/` (`/crm`).
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
    /// The credential to inject, if the upstream needs one.
    pub credential: Option<Credential>,
}

impl Route {
    fn action(&self, method: &Method) -> Option<&Template> {
        self.actions
            .get(method.as_str())
            .or_else(|| self.actions.get("*"))
    }

    fn needs_body(&self) -> bool {
        self.actions.values().any(Template::needs_body)
            || self.resource_id.needs_body()
            || self.context.values().any(Template::needs_body)
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
}

struct Gateway {
    cfg: HttpConfig,
    authz: Arc<dyn Authorizer>,
    client: reqwest::Client,
}

/// What the templates read.
struct Seen<'a> {
    method: &'a Method,
    rest: &'a str,
    query: BTreeMap<String, String>,
    body: Option<Value>,
}

/// The gateway's routes (as the fallback of the returned router, so any path can be a
/// prefix) and their RFC 9728 metadata at `/.well-known/oauth-protected-resource{prefix}`.
pub fn router(cfg: HttpConfig, authz: Arc<dyn Authorizer>) -> Router {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|_| reqwest::Client::new());
    let gw = Arc::new(Gateway { cfg, authz, client });
    Router::new().fallback(handle).with_state(gw)
}

/// An RFC 9457 problem.
fn problem(status: StatusCode, code: &str, detail: &str, extra: Value) -> Response {
    let mut body = json!({
        "type": format!("https://mandate.dev/problems/{code}"),
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

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn matching<'a, 'p>(routes: &'a [Route], path: &'p str) -> Option<(&'a Route, &'p str)> {
    routes
        .iter()
        .filter_map(|r| {
            let rest = path.strip_prefix(r.prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((r, rest))
        })
        .max_by_key(|(r, _)| r.prefix.len())
}

async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if let Some(prefix) = path.strip_prefix("/.well-known/oauth-protected-resource")
        && req.method() == Method::GET
        && let Some((r, "")) = matching(&gw.cfg.routes, prefix)
    {
        return axum::Json(json!({
            "resource": format!("{}{}", gw.cfg.public_url, r.prefix),
            "authorization_servers": [gw.authz.issuer()],
            "bearer_methods_supported": ["header"],
            "resource_name": format!("Mandate HTTP gateway: {}", r.prefix),
        }))
        .into_response();
    }
    let Some((route, rest)) = matching(&gw.cfg.routes, &path) else {
        return problem(
            StatusCode::NOT_FOUND,
            "not_found",
            "no route for this path",
            Value::Null,
        );
    };
    let route = route.clone();
    let rest = rest.to_owned();
    forward(&gw, &route, &rest, req).await
}

async fn forward(gw: &Gateway, route: &Route, rest: &str, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(token) = bearer(&parts.headers).map(str::to_owned) else {
        return unauthorized(gw, &route.prefix, None);
    };
    let Some(action) = route.action(&parts.method) else {
        return problem(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route maps no action to the method",
            Value::Null,
        );
    };
    let too_large = || {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is over the gateway's limit",
            Value::Null,
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > gw.cfg.max_body_bytes) {
        return too_large();
    }
    // The body is read whole only when a template needs a field of it.
    let (buffered, stream) = if route.needs_body() {
        match axum::body::to_bytes(body, gw.cfg.max_body_bytes).await {
            Ok(b) => (Some(b), None),
            Err(_) => return too_large(),
        }
    } else {
        (None, Some(body))
    };
    let query: BTreeMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .map(|(k, v)| (decode(k), decode(v)))
                .collect()
        })
        .unwrap_or_default();
    let seen = Seen {
        method: &parts.method,
        rest: rest.trim_start_matches('/'),
        query,
        body: buffered
            .as_ref()
            .and_then(|b| serde_json::from_slice(b).ok()),
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
    let Some(resource_id) = route.resource_id.render(&seen) else {
        return unmapped("resource id");
    };
    let mut context = serde_json::Map::new();
    for (k, t) in &route.context {
        let Some(v) = t.render(&seen) else {
            return unmapped(&format!("context field `{k}`"));
        };
        context.insert(k.clone(), Value::String(v));
    }
    let ask = Ask {
        token,
        audience: format!("{}{}", gw.cfg.public_url, route.prefix),
        action,
        resource_type: route.resource_type.clone(),
        resource_id,
        context: Value::Object(context),
        via: json!({"gateway": "http", "route": route.prefix, "method": parts.method.as_str(),
                    "path": parts.uri.path()}),
    };
    // INVARIANT (gateway fail closed): nothing is forwarded unless the decision is an
    // allow and its audit event is durable (`authorize` returns only then).
    let answer = match gw.authz.authorize(ask).await {
        Ok(a) => a,
        Err(AuthzError::Unauthenticated(_)) => {
            return unauthorized(gw, &route.prefix, Some("invalid_token"));
        }
        Err(AuthzError::Forbidden(reason)) => {
            return problem(
                StatusCode::FORBIDDEN,
                "denied",
                "the token's holder may not act now; nothing was forwarded",
                json!({"decision": "deny", "reasons": [reason]}),
            );
        }
        Err(AuthzError::Unavailable(e)) => {
            tracing::error!(error = %e, "gateway request refused: no decision");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "decision_unavailable",
                "no decision could be made and recorded; nothing was forwarded",
                Value::Null,
            );
        }
    };
    match answer.verdict {
        Verdict::Allow => {}
        Verdict::Deny | Verdict::ApprovalRequired => return refused(&answer),
    }
    let credential = match resolve(gw, route.credential.as_ref()) {
        Ok(c) => c,
        Err(()) => {
            return problem(
                StatusCode::BAD_GATEWAY,
                "upstream_credential_unavailable",
                "the upstream's credential is not configured; nothing was forwarded",
                Value::Null,
            );
        }
    };
    let url = format!(
        "{}{}{}",
        route.upstream,
        rest,
        parts
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default()
    );
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in &parts.headers {
        if !dropped(k) && k != header::AUTHORIZATION {
            headers.append(k.clone(), v.clone());
        }
    }
    if let Some((name, value)) = credential {
        headers.insert(name, value);
    }
    if let Ok(v) = HeaderValue::from_str(&answer.decision_id) {
        headers.insert(HeaderName::from_static("mandate-decision-id"), v);
    }
    let body = match (buffered, stream) {
        (Some(b), _) => reqwest::Body::from(b),
        (None, Some(b)) => {
            let limit = gw.cfg.max_body_bytes;
            let mut seen = 0usize;
            reqwest::Body::wrap_stream(b.into_data_stream().and_then(move |chunk: Bytes| {
                seen = seen.saturating_add(chunk.len());
                let over = seen > limit;
                async move {
                    if over {
                        Err(axum::Error::new("request body over the gateway's limit"))
                    } else {
                        Ok(chunk)
                    }
                }
            }))
        }
        (None, None) => reqwest::Body::from(Bytes::new()),
    };
    #[expect(
        clippy::disallowed_methods,
        reason = "upstream latency for the record, like the access log's timer"
    )]
    let started = Instant::now();
    let sent = gw
        .client
        .request(parts.method.clone(), &url)
        .headers(headers)
        .body(body)
        .send();
    let result = tokio::time::timeout(gw.cfg.timeout, sent).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let upstream = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let status = if e.is_timeout() {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            tracing::warn!(%url, error = %e, "upstream failed");
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
    for (k, v) in upstream.headers() {
        if !dropped(k) {
            res = res.header(k, v);
        }
    }
    res.body(Body::from_stream(upstream.bytes_stream()))
        .unwrap_or_else(|_| {
            problem(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                "bad upstream response",
                Value::Null,
            )
        })
}

fn record(gw: &Gateway, answer: &Answer, result: Value) {
    // The decision is already durable; the result is recorded without holding the answer.
    tokio::spawn(gw.authz.record_result(answer.decision_id.clone(), result));
}

fn refused(a: &Answer) -> Response {
    let (code, detail) = match a.verdict {
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
        json!({"decision": match a.verdict { Verdict::ApprovalRequired => "approval_required", _ => "deny" },
               "reasons": a.reasons, "decision_id": a.decision_id}),
    )
}

/// The header to inject, with the secret's value; `Err` when the secret is missing.
fn resolve(gw: &Gateway, c: Option<&Credential>) -> Result<Option<(HeaderName, HeaderValue)>, ()> {
    let Some(c) = c else {
        return Ok(None);
    };
    let (name, secret, bearer) = match c {
        Credential::Header { name, secret } => (name.clone(), secret, false),
        Credential::Bearer { secret } => (header::AUTHORIZATION, secret, true),
    };
    let Ok(Some(value)) = gw.authz.secret(secret) else {
        return Err(());
    };
    let text = if bearer {
        format!("Bearer {value}")
    } else {
        value
    };
    let mut v = HeaderValue::from_str(&text).map_err(|_| ())?;
    v.set_sensitive(true);
    Ok(Some((name, v)))
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    i += 2;
                } else {
                    out.push(b);
                }
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_render_and_refuse() {
        let t = Template::parse("crm:{method}/{path.1}?{query.q}").expect("parses");
        assert_eq!(t.to_string(), "crm:{method}/{path.1}?{query.q}");
        let m = Method::GET;
        let seen = Seen {
            method: &m,
            rest: "contacts/c42",
            query: [("q".to_owned(), "x y".to_owned())].into(),
            body: None,
        };
        assert_eq!(t.render(&seen).as_deref(), Some("crm:get/c42?x y"));
        assert_eq!(Template::parse("{path.5}").expect("ok").render(&seen), None);
        for bad in ["{nope}", "{path.x}", "a}b", "{unclosed", "{query.}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        let b = Template::parse("{body.amount}").expect("ok");
        assert!(b.needs_body());
        let seen = Seen {
            body: Some(json!({"amount": 12})),
            ..seen
        };
        assert_eq!(b.render(&seen).as_deref(), Some("12"));
    }

    #[test]
    fn the_longest_prefix_wins_and_only_on_a_segment_boundary() {
        let r = |p: &str| Route {
            prefix: p.to_owned(),
            upstream: "http://u".into(),
            actions: BTreeMap::new(),
            resource_type: "T".into(),
            resource_id: Template::parse("x").expect("ok"),
            context: BTreeMap::new(),
            credential: None,
        };
        let routes = vec![r("/crm"), r("/crm/admin")];
        assert_eq!(
            matching(&routes, "/crm/admin/x").map(|(r, rest)| (r.prefix.as_str(), rest)),
            Some(("/crm/admin", "/x"))
        );
        assert_eq!(matching(&routes, "/crm").map(|(_, rest)| rest), Some(""));
        assert!(matching(&routes, "/crmx").is_none());
        assert_eq!(decode("a%20b+c%zz"), "a b c%zz");
    }
}
