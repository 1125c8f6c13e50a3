//! The OPA-compatible API, on its own listener (`opa.listen`): OPA's paths clash with
//! Mandate's own (`/v1/policies`), so it is a separate router ([`opa_router`]).
//!
//! - Data API: `POST /v1/data/{path}` with `{"input": …}` and `GET /v1/data/{path}`
//!   (`?input=` JSON) answer `{"result": …, "decision_id": …}`, without `result` when
//!   the document is undefined; `?pretty` indents. Every query is recorded before it is
//!   answered (mandate-service `opa.rs`); `decision_id` is its audit event id.
//! - Policy API: `GET /v1/policies`, `GET`/`PUT`/`DELETE /v1/policies/{id}` on the
//!   active version's Rego modules; a change makes and activates a new version.
//!   Always an admin token, whatever `opa.authentication` says.
//! - Health API: `GET /health`, 200 `{}` while this node's snapshot is fresh.
//!
//! Errors are in OPA's shape, `{"code": …, "message": …}` (and `errors` for a module
//! that does not compile), with OPA's codes where OPA has one (`invalid_parameter`,
//! `unauthorized`, `resource_not_found`, `internal_error`) and Mandate's stable reason
//! code for a refused agent (403, which OPA has no code for).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use mandate_core::admin::Role;
use mandate_core::trace::{RequestTrace, TraceId};
use mandate_policy::{Budget, RegoError};
use mandate_service::decisions::verified_claims;
use mandate_service::dpop::{Presentation, Scheme, check_sender};
use mandate_service::opa::{DataCaller, DataOutcome, DataQuery};
use mandate_service::policies::{self as service, ModuleError, PolicyError};
use serde_json::{Value, json};

use crate::Node;
use crate::error::ApiError;
use crate::extract::{bearer, looks_like_jwt, lookup_admin_token, parse_pairs, read_body};

/// Who must authenticate on the OPA listener (`opa.authentication`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpaAuthentication {
    /// A bearer token on every Data API query: an agent's access token, or a `service`
    /// or `admin` token (the default).
    Token,
    /// None on the Data API (OPA's own default); the binary allows it on a loopback
    /// listener only. A bearer token given anyway is still checked and used.
    Off,
}

/// The OPA-compatible router (mounted on `opa.listen` by the binary).
pub fn opa_router(state: Arc<Node>, auth: OpaAuthentication) -> Router {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let ctx = Arc::new(Ctx {
        node: state,
        auth,
        rego_slots: Arc::new(tokio::sync::Semaphore::new(REGO_SLOTS_PER_CORE * cores)),
    });
    Router::new()
        .route("/v1/data", get(data_get).post(data_post).fallback(no_write))
        .route(
            "/v1/data/{*path}",
            get(data_get).post(data_post).fallback(no_write),
        )
        .route("/v1/policies", get(list_modules))
        .route(
            "/v1/policies/{*id}",
            get(get_module).put(put_module).delete(delete_module),
        )
        .route("/health", get(health))
        .fallback(not_found)
        // Every request joins the caller's W3C trace or starts one, as on the API
        // (traces.rs): its `opa.decision` carries the trace id, its span goes to OTLP.
        .layer(crate::traces::TraceLayer {
            random: Arc::clone(&ctx.node.random),
            clock: Arc::clone(&ctx.node.clock),
        })
        .with_state(ctx)
}

struct Ctx {
    node: Arc<Node>,
    auth: OpaAuthentication,
    /// Rego evaluations running at once (`INVARIANT (Rego off the async workers)`).
    rego_slots: Arc<tokio::sync::Semaphore>,
}

/// How many Rego evaluations may run at once, per core: the rest wait their turn, so
/// slow queries never fill the blocking pool the store's work runs on too.
const REGO_SLOTS_PER_CORE: usize = 4;

/// An answer in OPA's error shape.
#[derive(Debug)]
pub struct OpaError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// OPA's `errors` list, for a module that does not compile (boxed: rarely there).
    errors: Option<Box<Value>>,
}

impl OpaError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: None,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
    }
}

impl From<ApiError> for OpaError {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        let code = match status {
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => "invalid_parameter",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::NOT_FOUND => "resource_not_found",
            StatusCode::INTERNAL_SERVER_ERROR => "internal_error",
            _ => e.code(),
        };
        Self::new(status, code, e.detail())
    }
}

impl From<mandate_service::error::ServiceError> for OpaError {
    fn from(e: mandate_service::error::ServiceError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for OpaError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "message": self.message});
        if let (Some(errors), Value::Object(o)) = (self.errors, &mut body) {
            o.insert("errors".into(), *errors);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

/// The query string's pairs.
fn params(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| parse_pairs(q.as_bytes())).unwrap_or_default()
}

/// OPA's boolean parameters: present (`?pretty`, `?pretty=true`) and not `false`.
fn flag(params: &[(String, String)], name: &str) -> bool {
    params
        .iter()
        .any(|(k, v)| k == name && !v.eq_ignore_ascii_case("false"))
}

/// `value` as JSON, indented with `?pretty`.
fn json_answer(status: StatusCode, value: &Value, pretty: bool) -> Response {
    let bytes = if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    }
    .unwrap_or_default();
    let mut r = (status, bytes).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Who calls, before the body is read: an agent's token (verified once the body is in,
/// against the snapshot of then), an enforcement point or admin, or nobody.
enum Who<'h> {
    Agent(&'h str),
    Enforcer(String),
    Anonymous,
}

async fn who<'h>(ctx: &Ctx, headers: &'h HeaderMap) -> Result<Who<'h>, OpaError> {
    if bearer(headers).is_none() {
        return match ctx.auth {
            OpaAuthentication::Off => Ok(Who::Anonymous),
            OpaAuthentication::Token => Err(OpaError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a bearer token is required: the agent's access token, or a service or admin token",
            )),
        };
    }
    // The same check as every decision surface (`/v1/authorize`, AuthZEN).
    // No DPoP on this listener (its public URL is not configured): a DPoP-bound token
    // is refused here (`INVARIANT (bound stays bound)`); no client certificate is
    // looked at either, so a certificate-bound one is refused too.
    Ok(
        match crate::authorize::caller(&ctx.node, headers, None, None).await? {
            crate::authorize::Caller::Agent(t, _) => Who::Agent(t),
            crate::authorize::Caller::Service(id) => Who::Enforcer(id),
        },
    )
}

/// `/v1/data/{path}` as the Data API's slash path, checked: segments of at most 256
/// bytes each, 1 KiB in all, none empty (a trailing slash is OPA's same document).
fn data_path(path: Option<&str>) -> Result<String, OpaError> {
    let p = path.unwrap_or("").trim_end_matches('/');
    if p.len() > 1024
        || p.split('/').any(|s| s.len() > 256)
        || (!p.is_empty() && p.split('/').any(str::is_empty))
    {
        return Err(OpaError::invalid(
            "the data path must be non-empty segments separated by `/`, at most 1024 bytes",
        ));
    }
    Ok(p.to_owned())
}

/// `POST /v1/data/{path}`: the body is `{"input": …}` (other members are ignored, as OPA
/// does; an empty body has no input). Any content type is read as JSON, since OPA's
/// documented call is `curl -d` (which says `application/x-www-form-urlencoded`).
async fn data_post(
    State(ctx): State<Arc<Ctx>>,
    trace: Option<Extension<RequestTrace>>,
    path: Option<axum::extract::Path<String>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = params(q.as_deref());
    let pretty = flag(&params, "pretty");
    let r = async {
        let path = data_path(path.as_ref().map(|p| p.0.as_str()))?;
        let who = who(&ctx, &headers).await?;
        let bytes = read_body(body, ctx.node.config.max_body_bytes).await?;
        let input = input_of_body(&bytes)?;
        let trace_id = trace.map(|t| t.0.trace_id);
        data(&ctx, who, &path, input, bytes.len(), trace_id).await
    }
    .await;
    finish(r, pretty)
}

/// `GET /v1/data/{path}`: `?input=` is the input document as JSON.
async fn data_get(
    State(ctx): State<Arc<Ctx>>,
    trace: Option<Extension<RequestTrace>>,
    path: Option<axum::extract::Path<String>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = params(q.as_deref());
    let pretty = flag(&params, "pretty");
    let r = async {
        let path = data_path(path.as_ref().map(|p| p.0.as_str()))?;
        let who = who(&ctx, &headers).await?;
        let (input, size) = match params.iter().find(|(k, _)| k == "input") {
            None => (None, 0),
            Some((_, v)) => (
                Some(serde_json::from_str::<Value>(v).map_err(|e| {
                    OpaError::invalid(format!("the `input` parameter is not JSON: {e}"))
                })?),
                v.len(),
            ),
        };
        data(&ctx, who, &path, input, size, trace.map(|t| t.0.trace_id)).await
    }
    .await;
    finish(r, pretty)
}

fn finish(r: Result<Value, OpaError>, pretty: bool) -> Response {
    match r {
        Ok(v) => json_answer(StatusCode::OK, &v, pretty),
        Err(e) => e.into_response(),
    }
}

/// The `input` member of a Data API body (`None`: absent, or an empty body).
fn input_of_body(bytes: &Bytes) -> Result<Option<Value>, OpaError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| OpaError::invalid(format!("the body is not JSON: {e}")))?;
    match v {
        Value::Object(mut o) => Ok(o.remove("input")),
        _ => Err(OpaError::invalid(
            "the body must be a JSON object: {\"input\": …}",
        )),
    }
}

/// The caller of a query, owned, to take to the blocking thread that evaluates it.
enum Caller {
    Agent(Arc<mandate_token::access::AccessClaims>),
    Enforcer(String),
    Anonymous,
}

impl Caller {
    fn as_data_caller(&self) -> DataCaller<'_> {
        match self {
            Caller::Agent(c) => DataCaller::Agent(c),
            Caller::Enforcer(id) => DataCaller::Enforcer(id.clone()),
            Caller::Anonymous => DataCaller::Anonymous,
        }
    }
}

/// Runs a query with the full time limit on a blocking thread: at most
/// `REGO_SLOTS_PER_CORE` per core at once, since the blocking pool also runs the store's
/// work (a suspension's write), which a flood of slow queries must not crowd out.
async fn off_the_worker(
    ctx: &Ctx,
    snapshot: Arc<mandate_engine::decide::Snapshot>,
    caller: Caller,
    path: &str,
    input: Option<Value>,
) -> Result<(DataOutcome, mandate_audit::event::AuditEvent), OpaError> {
    let slot = Arc::clone(&ctx.rego_slots)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::internal("the Rego slots are closed"))?;
    let state = Arc::clone(&ctx.node);
    let path = path.to_owned();
    Ok(tokio::task::spawn_blocking(move || {
        let _slot = slot;
        mandate_service::opa::query(
            &state,
            &snapshot,
            DataQuery {
                path: &path,
                input,
                caller: caller.as_data_caller(),
                budget: Budget::Full,
            },
        )
    })
    .await
    .map_err(mandate_service::error::ServiceError::from)?)
}

/// Decides one query on the snapshot of now and records it before answering.
/// `input_bytes` is the size of the input as sent (it decides whether Rego may be tried
/// on this worker); `trace_id` is the request's W3C trace, recorded with the query.
async fn data(
    ctx: &Ctx,
    who: Who<'_>,
    path: &str,
    input: Option<Value>,
    input_bytes: usize,
    trace_id: Option<TraceId>,
) -> Result<Value, OpaError> {
    let state = &ctx.node;
    // INVARIANT (decided on the snapshot of now), as /v1/authorize: taken once the body
    // is in.
    let snapshot = state.snapshot().map_err(ApiError::from)?;
    let caller = match who {
        Who::Agent(token) => {
            let Some(c) = verified_claims(state, &snapshot, token, state.clock.now()) else {
                // Nothing to decide for: not recorded as a query, only a compact
                // best-effort refusal (as /v1/authorize).
                let mut ev = state.event("token.refused");
                ev.details = Some(json!({"surface": "opa /v1/data", "error": "invalid_token"}));
                state.audit.record_lazy(ev);
                return Err(OpaError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the access token does not verify",
                ));
            };
            // INVARIANT (bound stays bound): held to its binding again here, on the
            // claims the query is decided with. The edge (`who`) checks only a token
            // that verified there; one that verifies only now (its `nbf` reached, a key
            // learnt, while the body came in) had nothing checked. This listener has no
            // proof or certificate to check, so a bound token is refused.
            check_sender(
                state,
                &c,
                token,
                &Presentation {
                    scheme: Scheme::Bearer,
                    proofs: &[],
                    method: "",
                    url: "",
                    certificate: None,
                },
                "/v1/data",
            )
            .map_err(|e| OpaError::from(crate::dpop::refusal(state, e)))?;
            if !input.as_ref().is_none_or(Value::is_object) {
                return Err(OpaError::invalid(
                    "with an agent's token the input must be an object: Mandate puts the \
                     verified `subject` in it",
                ));
            }
            Caller::Agent(c)
        }
        Who::Enforcer(id) => Caller::Enforcer(id),
        Who::Anonymous => Caller::Anonymous,
    };
    // INVARIANT (Rego off the async workers): a query may stall this worker for at most
    // INLINE_TIME_LIMIT plus one short step. It is tried here only with a small input and
    // policies that call no builtin doing work out of proportion to its arguments
    // (`net.cidr_expand`, `bits.lsh`, `numbers.range`, a `sprintf` width from the input:
    // `RegoPolicies::may_run_inline`), and under the inline time limit; anything else,
    // and a query that reaches that limit, runs on a blocking thread (queries are pure,
    // so running it again answers the same). On a worker, a slow query would stall every
    // other request of the node, the kill switch included.
    let inline = input_bytes <= mandate_policy::INLINE_INPUT_BYTES
        && snapshot
            .policies
            .as_ref()
            .is_none_or(|p| p.rego().may_run_inline());
    let tried = match inline {
        true => match mandate_service::opa::query(
            state,
            &snapshot,
            DataQuery {
                path,
                input: input.clone(),
                caller: caller.as_data_caller(),
                budget: Budget::Inline,
            },
        ) {
            (DataOutcome::Failed(RegoError::TimeLimit), _) => None,
            done => Some(done),
        },
        false => None,
    };
    let (outcome, mut event) = match tried {
        Some(done) => done,
        None => off_the_worker(ctx, snapshot, caller, path, input).await?,
    };
    event.trace_id = trace_id;
    let id = mandate_service::opa::record(state, event).await?;
    match outcome {
        DataOutcome::Answered(Some(v)) => Ok(json!({"result": v, "decision_id": id})),
        DataOutcome::Answered(None) => Ok(json!({"decision_id": id})),
        DataOutcome::Refused(r) => {
            let mut message = format!("the agent may not act: {}", r.reason.code());
            if let Some(d) = &r.detail {
                message.push_str(&format!(" ({d})"));
            }
            Err(OpaError::new(StatusCode::FORBIDDEN, r.reason.code(), message).with_decision(id))
        }
        // OPA answers an evaluation error 500 `internal_error`; so does Mandate (an
        // enforcement point denies on it), with the decision id of its record. An input
        // Rego cannot take is the caller's: 400.
        DataOutcome::Failed(err) => {
            let status = if err.code() == "invalid_parameter" {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            Err(OpaError::new(status, err.code(), err.to_string()).with_decision(id))
        }
    }
}

impl OpaError {
    /// Names the record of a refused or failed query in the message.
    fn with_decision(mut self, id: String) -> Self {
        self.message = format!("{} (decision_id {id})", self.message);
        self
    }
}

/// Refused unless `headers` carry a writing admin token: the Policy API changes what
/// every query answers, so it never goes without one.
async fn admin(
    ctx: &Ctx,
    headers: &HeaderMap,
    write: bool,
) -> Result<crate::actor::Actor, OpaError> {
    let Some(token) = bearer(headers).filter(|t| !looks_like_jwt(t)) else {
        return Err(OpaError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the Policy API needs an admin bearer token",
        ));
    };
    match lookup_admin_token(&ctx.node, token).await? {
        Some(t) if t.role == Role::Admin || (!write && t.role != Role::Service) => {
            Ok(crate::actor::Actor::Admin(t.id))
        }
        Some(_) => Err(OpaError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the Policy API needs an admin token (reading: admin, auditor or approver)",
        )),
        None => Err(OpaError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown or revoked admin token",
        )),
    }
}

fn policy_error(e: PolicyError) -> OpaError {
    match e {
        PolicyError::Rejected(errs) => {
            let errors: Vec<Value> = errs
                .iter()
                .map(|e| {
                    json!({
                        "code": "rego_parse_error",
                        "message": e.message,
                        "location": {"file": e.source, "row": e.line, "col": e.column},
                    })
                })
                .collect();
            let mut o = OpaError::invalid("error(s) occurred while compiling module(s)");
            o.errors = Some(Box::new(Value::Array(errors)));
            o
        }
        PolicyError::Invalid { why, .. } => OpaError::invalid(why),
        other => ApiError::from(other).into(),
    }
}

/// OPA's answer for a module id the active version does not have.
fn no_module(id: &str) -> OpaError {
    OpaError::new(
        StatusCode::NOT_FOUND,
        "resource_not_found",
        format!("storage_not_found_error: policy id \"{id}\""),
    )
}

/// OPA's `?pretty` parameter of a Policy API request.
struct Pretty(bool);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Pretty {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(flag(&params(parts.uri.query()), "pretty")))
    }
}

fn module_json(m: &mandate_policy::RegoModule) -> Value {
    json!({"id": m.id, "raw": m.source})
}

/// `GET /v1/policies`: the active version's Rego modules.
async fn list_modules(
    State(ctx): State<Arc<Ctx>>,
    Pretty(pretty): Pretty,
    headers: HeaderMap,
) -> Response {
    let r = async {
        admin(&ctx, &headers, false).await?;
        let modules = service::active_modules(&ctx.node)
            .await
            .map_err(policy_error)?;
        Ok(json!({"result": modules.iter().map(module_json).collect::<Vec<_>>()}))
    }
    .await;
    finish(r, pretty)
}

/// `GET /v1/policies/{id}`.
async fn get_module(
    State(ctx): State<Arc<Ctx>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Pretty(pretty): Pretty,
    headers: HeaderMap,
) -> Response {
    let r = async {
        admin(&ctx, &headers, false).await?;
        let modules = service::active_modules(&ctx.node)
            .await
            .map_err(policy_error)?;
        let m = modules
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| no_module(&id))?;
        Ok(json!({"result": module_json(m)}))
    }
    .await;
    finish(r, pretty)
}

/// `PUT /v1/policies/{id}`: the body is the module's text (Rego v1).
async fn put_module(
    State(ctx): State<Arc<Ctx>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Pretty(pretty): Pretty,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let r = async {
        let actor = admin(&ctx, &headers, true).await?;
        let bytes = read_body(body, ctx.node.config.max_body_bytes).await?;
        let source = String::from_utf8(bytes.to_vec())
            .map_err(|_| OpaError::invalid("the module is not UTF-8 text"))?;
        service::put_module(&ctx.node, &actor, id, source)
            .await
            .map_err(module_error)?;
        Ok(json!({}))
    }
    .await;
    finish(r, pretty)
}

/// `DELETE /v1/policies/{id}`.
async fn delete_module(
    State(ctx): State<Arc<Ctx>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Pretty(pretty): Pretty,
    headers: HeaderMap,
) -> Response {
    let r = async {
        let actor = admin(&ctx, &headers, true).await?;
        service::delete_module(&ctx.node, &actor, id)
            .await
            .map_err(module_error)?;
        Ok(json!({}))
    }
    .await;
    finish(r, pretty)
}

fn module_error(e: ModuleError) -> OpaError {
    match e {
        ModuleError::UnknownModule(id) => no_module(&id),
        ModuleError::Policy(p) => policy_error(p),
    }
}

/// `GET /health`: 200 `{}` while this node may decide (its snapshot fresh), else 503
/// with the reason (OPA answers 500 when unhealthy; any non-200 is unhealthy to a load
/// balancer).
async fn health(State(ctx): State<Arc<Ctx>>) -> Response {
    match ctx.node.snapshot() {
        Ok(_) => json_answer(StatusCode::OK, &json!({}), false),
        Err(e) => {
            let e = ApiError::from(e);
            json_answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": e.detail()}),
                false,
            )
        }
    }
}

/// `PUT`/`PATCH`/`DELETE /v1/data`: Mandate's `data` comes from policy versions.
async fn no_write() -> OpaError {
    OpaError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "the data document is part of a policy version: change it with `mandate policy add` \
         (a bundle's data.json, or data.json beside the modules)",
    )
}

async fn not_found() -> OpaError {
    OpaError::new(
        StatusCode::NOT_FOUND,
        "resource_not_found",
        "not an API of Mandate's OPA-compatible listener: /v1/data, /v1/policies, /health",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_paths_are_checked_and_a_trailing_slash_is_the_same_document() {
        assert_eq!(data_path(Some("http/authz/")).unwrap(), "http/authz");
        assert_eq!(data_path(None).unwrap(), "");
        assert!(data_path(Some("a//b")).is_err());
        assert!(data_path(Some(&"x".repeat(300))).is_err());
    }

    #[test]
    fn a_body_without_input_has_none_and_a_non_object_is_refused() {
        assert_eq!(input_of_body(&Bytes::from_static(b"  ")).unwrap(), None);
        assert_eq!(
            input_of_body(&Bytes::from_static(br#"{"input": {"a": 1}}"#)).unwrap(),
            Some(json!({"a": 1}))
        );
        assert_eq!(input_of_body(&Bytes::from_static(b"{}")).unwrap(), None);
        assert!(input_of_body(&Bytes::from_static(b"[1]")).is_err());
        assert!(input_of_body(&Bytes::from_static(b"{")).is_err());
    }
}
