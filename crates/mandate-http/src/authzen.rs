//! The OpenID AuthZEN Authorization API 1.0 (`/access/v1/*`) and its PDP metadata
//! (`/.well-known/authzen-configuration`): a gateway or PDP client that speaks AuthZEN
//! asks Mandate without an adapter. Every decision goes through the one decision path
//! of `/v1/authorize` (authorize.rs `decide_ask`, mandate-service `decisions.rs`): the
//! same callers, the agent's status (the kill switch), its boundary, the policies, the
//! detector, and the audit event committed before the answer. Searches decide each
//! candidate on one snapshot without the detector and record one `authzen.search`
//! event (`decisions::search_event`). The mapping and its limits: docs/authzen.md.
//!
//! Bodies are read as JSON values and checked member by member, not by `serde`
//! derive: AuthZEN requests are open (unknown members are ignored), an invalid item of
//! a batch is a `false` answer for that item rather than a 400 for the batch, and each
//! refusal names the member that is wrong.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mandate_api as api;
use mandate_core::agent::glob_match;
use mandate_core::id::AgentId;
use mandate_core::trace::TraceId;
use mandate_service::decisions::{
    Search, decide_candidate, record_decisions, search_event, verified_claims,
};
use mandate_service::metrics::Surface;
use mandate_token::access::AccessClaims;
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use crate::Node;
use crate::authorize::{Ask, Caller, caller, decide_ask, refuse_unverified};
use crate::decide::{Decision, Principal, Resource, Snapshot, TokenAudience, Verdict};
use crate::error::ApiError;
use crate::extract::{is_json, parse_json, read_body};

/// The most items one Access Evaluations request may hold (as `/v1/authorize/batch`).
pub const MAX_ITEMS: usize = crate::authorize::MAX_BATCH;
/// Search results per page when the request does not say.
const DEFAULT_LIMIT: usize = 100;
/// The largest `page.limit`.
const MAX_LIMIT: usize = 1000;
/// The header AuthZEN identifies a request by; echoed on every answer.
static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

// ---- what is wrong with a request ----

/// Why a request, or one item of a batch, is not a valid evaluation: a stable problem
/// code and a message naming the member.
#[derive(Debug)]
struct Bad {
    code: &'static str,
    message: String,
}

impl Bad {
    fn missing(member: &str) -> Self {
        Self {
            code: "missing_field",
            message: format!("missing field `{member}`"),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: "invalid_field",
            message: message.into(),
        }
    }
}

impl From<Bad> for ApiError {
    fn from(b: Bad) -> Self {
        ApiError::bad_request(b.code, b.message)
    }
}

/// A request that may not be answered at all (403), or one that is bad (400).
enum Refused {
    Forbidden(String),
    Bad(Bad),
    /// A refusal answered as it is (a bound token's missing or failed proof).
    Api(ApiError),
}

impl From<Bad> for Refused {
    fn from(b: Bad) -> Self {
        Self::Bad(b)
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            Refused::Bad(b) => b.into(),
            Refused::Api(e) => e,
        }
    }
}

// ---- the request's members ----

/// A subject or resource as sent: `type`, maybe `id`, maybe `properties`.
#[derive(Debug, Clone, Copy)]
struct Entity<'a> {
    type_name: &'a str,
    id: Option<&'a str>,
    properties: Option<&'a Map<String, Value>>,
}

/// Reads the entity `member` (`subject` or `resource`) from `v`; `need_id` when its
/// `id` is required (an evaluation; the input entities of a search).
fn entity<'a>(v: Option<&'a Value>, member: &str, need_id: bool) -> Result<Entity<'a>, Bad> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Err(Bad::missing(member));
    };
    let Some(o) = v.as_object() else {
        return Err(Bad::invalid(format!("`{member}` must be an object")));
    };
    let type_name = match o.get("type") {
        None | Some(Value::Null) => return Err(Bad::missing(&format!("{member}.type"))),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.as_str(),
        Some(Value::String(_)) => {
            return Err(Bad::invalid(format!("`{member}.type` must be 1-256 bytes")));
        }
        Some(_) => return Err(Bad::invalid(format!("`{member}.type` must be a string"))),
    };
    let id = match o.get("id") {
        None | Some(Value::Null) if need_id => return Err(Bad::missing(&format!("{member}.id"))),
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 1024 => Some(s.as_str()),
        // An id the search ignores need not be a good one.
        Some(Value::String(_)) if !need_id => None,
        Some(Value::String(_)) => {
            return Err(Bad::invalid(format!("`{member}.id` must be 1-1024 bytes")));
        }
        Some(_) => return Err(Bad::invalid(format!("`{member}.id` must be a string"))),
    };
    Ok(Entity {
        type_name,
        id,
        properties: object(o.get("properties"), &format!("{member}.properties"))?,
    })
}

/// An action as sent.
#[derive(Debug, Clone, Copy)]
struct Action<'a> {
    name: &'a str,
    properties: Option<&'a Map<String, Value>>,
}

fn action(v: Option<&Value>) -> Result<Action<'_>, Bad> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Err(Bad::missing("action"));
    };
    let Some(o) = v.as_object() else {
        return Err(Bad::invalid("`action` must be an object"));
    };
    let name = match o.get("name") {
        None | Some(Value::Null) => return Err(Bad::missing("action.name")),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => s.as_str(),
        Some(Value::String(_)) => return Err(Bad::invalid("`action.name` must be 1-256 bytes")),
        Some(_) => return Err(Bad::invalid("`action.name` must be a string")),
    };
    Ok(Action {
        name,
        properties: object(o.get("properties"), "action.properties")?,
    })
}

/// An optional object member (`null` is absent).
fn object<'a>(v: Option<&'a Value>, member: &str) -> Result<Option<&'a Map<String, Value>>, Bad> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(Bad::invalid(format!("`{member}` must be an object"))),
    }
}

/// One evaluation, every member present.
#[derive(Debug, Clone, Copy)]
struct Evaluation<'a> {
    subject: Entity<'a>,
    action: Action<'a>,
    resource: Entity<'a>,
    context: Option<&'a Map<String, Value>>,
}

/// The top level of a request as an evaluation.
fn evaluation(o: &Map<String, Value>) -> Result<Evaluation<'_>, Bad> {
    Ok(Evaluation {
        subject: entity(o.get("subject"), "subject", true)?,
        action: action(o.get("action"))?,
        resource: entity(o.get("resource"), "resource", true)?,
        context: object(o.get("context"), "context")?,
    })
}

/// The top-level defaults of an Access Evaluations request: each checked when present.
#[derive(Debug, Clone, Copy, Default)]
struct Defaults<'a> {
    subject: Option<Entity<'a>>,
    action: Option<Action<'a>>,
    resource: Option<Entity<'a>>,
    context: Option<&'a Map<String, Value>>,
}

fn defaults(o: &Map<String, Value>) -> Result<Defaults<'_>, Bad> {
    let present = |k: &str| o.get(k).is_some_and(|v| !v.is_null());
    Ok(Defaults {
        subject: present("subject")
            .then(|| entity(o.get("subject"), "subject", true))
            .transpose()?,
        action: present("action")
            .then(|| action(o.get("action")))
            .transpose()?,
        resource: present("resource")
            .then(|| entity(o.get("resource"), "resource", true))
            .transpose()?,
        context: object(o.get("context"), "context")?,
    })
}

/// Item `i` with the defaults applied: a member the item has replaces the default
/// whole; one it lacks is the default's.
fn item<'a>(i: usize, v: &'a Value, d: &Defaults<'a>) -> Result<Evaluation<'a>, Bad> {
    let Some(o) = v.as_object() else {
        return Err(Bad::invalid(format!(
            "`evaluations[{i}]` must be an object"
        )));
    };
    let at = |m: &str| format!("evaluations[{i}].{m}");
    let given = |k: &str| o.get(k).is_some_and(|v| !v.is_null());
    let subject = match d.subject {
        Some(s) if !given("subject") => s,
        _ => entity(o.get("subject"), &at("subject"), true)?,
    };
    let action = match d.action {
        Some(a) if !given("action") => a,
        _ => self::action(o.get("action")).map_err(|mut b| {
            b.message = b.message.replace("`action", &format!("`{}", at("action")));
            b
        })?,
    };
    let resource = match d.resource {
        Some(r) if !given("resource") => r,
        _ => entity(o.get("resource"), &at("resource"), true)?,
    };
    let context = if given("context") {
        object(o.get("context"), &at("context"))?
    } else {
        d.context
    };
    Ok(Evaluation {
        subject,
        action,
        resource,
        context,
    })
}

// ---- from AuthZEN to Mandate's question ----

/// The agent a subject names: its id (`agt_…`) or its name. `None` for a subject that
/// is not of type `agent`, or names no agent of the snapshot.
fn resolve(snapshot: &Snapshot, subject: &Entity<'_>) -> Option<AgentId> {
    if subject.type_name != "agent" {
        return None;
    }
    let id = subject.id?;
    if let Ok(a) = AgentId::parse(id) {
        return snapshot.agents.contains_key(&a).then_some(a);
    }
    // Names are unique among registered agents (`register_duplicate_name`).
    snapshot
        .agents
        .values()
        .find(|a| a.name.as_str() == id)
        .map(|a| a.id.clone())
}

/// The agent's access token an enforcement point passes on (`subject.properties.token`).
fn subject_token<'a>(subject: &Entity<'a>) -> Result<Option<&'a str>, Bad> {
    match subject.properties.and_then(|p| p.get("token")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) if !t.is_empty() => Ok(Some(t.as_str())),
        Some(_) => Err(Bad::invalid(
            "`subject.properties.token` must be an agent's access token (a string)",
        )),
    }
}

/// The agent's DPoP proof an enforcement point passes on with a bound token
/// (`subject.properties.dpop`: `{proof, htm, htu}`, as `/v1/authorize`'s `dpop`).
fn subject_dpop(subject: &Entity<'_>) -> Result<Option<crate::dpop::Forwarded>, Bad> {
    match subject.properties.and_then(|p| p.get("dpop")) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|_| {
            Bad::invalid(
                "`subject.properties.dpop` must be {\"proof\", \"htm\", \"htu\"}: the agent's DPoP proof and the request it was made for",
            )
        }),
    }
}

/// The context the policies see: the request's `context`, then each subject property
/// `k` (but `token` and `dpop`) as `subject_<k>` and each action property as `action_<k>`,
/// written over a context field of the same name.
fn context(
    ctx: Option<&Map<String, Value>>,
    subject: Option<&Map<String, Value>>,
    action: Option<&Map<String, Value>>,
) -> Value {
    let mut out = ctx.cloned().unwrap_or_default();
    for (k, v) in subject.into_iter().flatten() {
        if k != "token" && k != "dpop" {
            out.insert(format!("subject_{k}"), v.clone());
        }
    }
    for (k, v) in action.into_iter().flatten() {
        out.insert(format!("action_{k}"), v.clone());
    }
    Value::Object(out)
}

fn resource(e: &Entity<'_>, id: &str) -> Resource {
    Resource {
        type_name: e.type_name.to_owned(),
        id: id.to_owned(),
        attributes: e.properties.cloned().map_or(Value::Null, Value::Object),
    }
}

/// An evaluation ready for the decision path.
struct Prepared {
    action: String,
    resource: Resource,
    context: Value,
    /// For an enforcement point: the agent id (an unknown `agt_…` id as given, the
    /// empty string for a name or a type that names no agent; the decision path denies
    /// both as `unknown_agent`)…
    principal: Option<String>,
    /// …or the agent's token it passes on, with its claims as verified and held to
    /// their binding here (`INVARIANT (decided as checked)`, authorize.rs).
    token: Option<String>,
    checked: Option<Arc<AccessClaims>>,
    /// Why the subject names no agent, for the answer's context.
    unresolved: Option<String>,
}

/// Checks who may ask about `ev`'s subject and turns it into Mandate's question.
///
/// INVARIANT (agent asks for itself): with an agent's own token the subject must be
/// that agent (by id or name), else 403: an agent learns nothing about another
/// agent's permissions. Its token stays the principal, so nothing the body says can
/// make it act as someone else.
fn prepare(
    state: &Node,
    snapshot: &Snapshot,
    who: &Caller<'_>,
    ev: &Evaluation<'_>,
) -> Result<Prepared, Refused> {
    let token = subject_token(&ev.subject)?;
    let agent = resolve(snapshot, &ev.subject);
    let unresolved = agent.is_none().then(|| {
        if ev.subject.type_name == "agent" {
            format!(
                "no registered agent has the id or name `{}`",
                ev.subject.id.unwrap_or_default().escape_debug()
            )
        } else {
            format!(
                "subject type `{}` is not `agent`: Mandate decides for registered agents",
                ev.subject.type_name.escape_debug()
            )
        }
    });
    let now = state.clock.now();
    let (principal, token, checked) = match who {
        Caller::Agent(own, _) => {
            if token.is_some() {
                return Err(Bad::invalid(
                    "an agent asks for itself: `subject.properties.token` is for enforcement points",
                )
                .into());
            }
            // A token that does not verify here is decided (and denied) by the path.
            if let Some(c) = verified_claims(state, snapshot, own, now)
                && agent.as_ref().is_none_or(|a| a.as_str() != c.client_id)
            {
                return Err(Refused::Forbidden(
                    "an agent may only ask about itself: the subject must be the agent of the bearer token"
                        .to_owned(),
                ));
            }
            (None, None, None)
        }
        Caller::Service(_) => match token {
            Some(t) => {
                let forwarded = subject_dpop(&ev.subject)?;
                let checked = verified_claims(state, snapshot, t, now);
                if let Some(c) = &checked {
                    if agent.as_ref().is_none_or(|a| a.as_str() != c.client_id) {
                        return Err(Bad::invalid(
                            "`subject.properties.token` is not a token of the agent the subject names",
                        )
                        .into());
                    }
                    // INVARIANT (bound stays bound): a bound token passed on needs the
                    // agent's proof, checked as if the agent had called.
                    crate::dpop::check_forwarded(
                        state,
                        t,
                        c,
                        forwarded.as_ref(),
                        "/access/v1/evaluation",
                    )
                    .map_err(Refused::Api)?;
                }
                (None, Some(t.to_owned()), checked)
            }
            // An unknown agent id is passed on, so its `unknown_agent` event names
            // it; a name or another type is no id at all.
            None => (
                Some(match (&agent, ev.subject.id) {
                    (Some(a), _) => a.to_string(),
                    (None, Some(id))
                        if ev.subject.type_name == "agent" && AgentId::parse(id).is_ok() =>
                    {
                        id.to_owned()
                    }
                    (None, _) => String::new(),
                }),
                None,
                None,
            ),
        },
    };
    Ok(Prepared {
        action: ev.action.name.to_owned(),
        resource: resource(&ev.resource, ev.resource.id.unwrap_or_default()),
        context: context(ev.context, ev.subject.properties, ev.action.properties),
        principal,
        token,
        checked,
        unresolved,
    })
}

// ---- answers ----

/// A decision as AuthZEN answers it: `true` only for `allow`.
fn answer(
    state: &Node,
    d: &Decision,
    decision_id: String,
    note: Option<&String>,
) -> api::AuthzenDecision {
    let mut ctx = Map::new();
    ctx.insert("decision_id".into(), json!(decision_id));
    ctx.insert("reason".into(), json!(d.reason().code()));
    if !d.is_allowed() {
        ctx.insert("reasons".into(), json!(d.reasons()));
    }
    if !d.policy_ids.is_empty() {
        ctx.insert("policy_ids".into(), json!(d.policy_ids));
    }
    if let Some(n) = note {
        ctx.insert("detail".into(), json!(n));
    }
    if d.verdict() == Verdict::ApprovalRequired {
        let iss = &state.config.issuer;
        ctx.insert(
            "approval".into(),
            json!({
                "required": true,
                "endpoint": format!("{iss}/v1/mandates"),
                "how": "the agent asks for a mandate that covers this action (POST the endpoint \
                        with its own access token); once a human approves it, the agent acts \
                        with the mandate's token",
            }),
        );
    }
    api::AuthzenDecision {
        decision: d.is_allowed(),
        context: Some(ctx),
    }
}

/// The answer for an item that is not a valid evaluation: not decided, `false`.
fn invalid_item(b: &Bad) -> api::AuthzenDecision {
    let mut ctx = Map::new();
    ctx.insert("reason".into(), json!("invalid_request"));
    ctx.insert(
        "error".into(),
        json!({"status": 400, "code": b.code, "message": b.message}),
    );
    api::AuthzenDecision {
        decision: false,
        context: Some(ctx),
    }
}

// ---- the body and the request id ----

/// The request's JSON object. A body not declared as JSON is a 400 here (AuthZEN's
/// certification requires it), not the admin API's 415.
async fn body(state: &Node, headers: &HeaderMap, b: Body) -> Result<Map<String, Value>, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::bad_request(
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ));
    }
    let bytes = read_body(b, state.config.max_body_bytes).await?;
    match parse_json::<Value>(&bytes)? {
        Value::Object(o) => Ok(o),
        _ => Err(ApiError::bad_request(
            "invalid_field",
            "expected a JSON object",
        )),
    }
}

/// The caller's `X-Request-ID`, as recorded with the decision (at most 128 bytes of
/// text; a longer or binary one is echoed but not recorded).
fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
}

/// Answers `result`, with the request's `X-Request-ID` echoed on success and failure.
fn echoed(id: Option<HeaderValue>, result: Result<Response, ApiError>) -> Response {
    let mut res = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(v) = id {
        res.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    res
}

// ---- evaluation and evaluations ----

/// `POST /access/v1/evaluation`.
pub(crate) async fn evaluation_handler(
    State(state): State<Arc<Node>>,
    req: Request<Body>,
) -> Response {
    let id = req.headers().get(&REQUEST_ID).cloned();
    echoed(id, evaluate(state, req, false).await)
}

/// `POST /access/v1/evaluations`.
pub(crate) async fn evaluations_handler(
    State(state): State<Arc<Node>>,
    req: Request<Body>,
) -> Response {
    let id = req.headers().get(&REQUEST_ID).cloned();
    echoed(id, evaluate(state, req, true).await)
}

/// How the items of a batch are evaluated.
fn semantic(o: &Map<String, Value>) -> Result<api::EvaluationsSemantic, Bad> {
    let options = object(o.get("options"), "options")?;
    match options.and_then(|o| o.get("evaluations_semantic")) {
        None | Some(Value::Null) => Ok(api::EvaluationsSemantic::ExecuteAll),
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
            Bad::invalid(
                "`options.evaluations_semantic` must be `execute_all`, `deny_on_first_deny` or \
                 `permit_on_first_permit`",
            )
        }),
    }
}

async fn evaluate(state: Arc<Node>, req: Request<Body>, batch: bool) -> Result<Response, ApiError> {
    let (parts, b) = req.into_parts();
    let who = caller(
        &state,
        &parts.headers,
        parts.extensions.get::<crate::conn::Peer>(),
        Some((parts.method.as_str(), parts.uri.path())),
    )
    .await?;
    refuse_unverified(&state, &*state.snapshot()?, &who, "/access/v1/evaluation")?;
    let o = body(&state, &parts.headers, b).await?;
    let rid = request_id(&parts.headers);
    let tid = crate::traces::trace_id(&parts.extensions);
    let items = match o.get("evaluations") {
        _ if !batch => None,
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(Value::Array(a)) if a.len() > MAX_ITEMS => {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("`evaluations` holds at most {MAX_ITEMS} items"),
            ));
        }
        Some(Value::Array(a)) => Some(a),
        Some(_) => return Err(Bad::invalid("`evaluations` must be an array").into()),
    };
    // INVARIANT (decided on the snapshot of now): taken once the body is in, as
    // `/v1/authorize` does; every item is decided on it.
    let snapshot = state.snapshot()?;
    let Some(items) = items else {
        // One evaluation (also an Access Evaluations request without items).
        let ev = evaluation(&o)?;
        let p = prepare(&state, &snapshot, &who, &ev)?;
        let (d, event, seen) = decide_ask(&state, &snapshot, &who, ask(&p, rid.clone(), tid));
        let ids = record_decisions(
            &state,
            Surface::Authzen,
            vec![event],
            seen.raised,
            rid.as_deref(),
        )
        .await?;
        let id = ids.into_iter().next().unwrap_or_default();
        return Ok(Json(answer(&state, &d, id, p.unresolved.as_ref())).into_response());
    };
    let d = defaults(&o)?;
    let semantic = semantic(&o)?;
    // Every item is read and its caller checked before any is decided: a 403 for one
    // item refuses the request with nothing decided.
    let mut prepared = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        prepared.push(match item(i, v, &d) {
            Ok(ev) => match prepare(&state, &snapshot, &who, &ev) {
                Ok(p) => Ok(p),
                Err(Refused::Bad(b)) => Err(b),
                Err(forbidden) => return Err(forbidden.into()),
            },
            Err(b) => Err(b),
        });
    }
    // In order; a short-circuit semantic stops after the answer that decides it. An
    // invalid item counts as a deny.
    let mut slots: Vec<Result<(Decision, Option<String>), Bad>> = Vec::with_capacity(items.len());
    let mut events = Vec::new();
    let mut raised = Vec::new();
    for p in prepared {
        let allowed = match p {
            Err(b) => {
                slots.push(Err(b));
                false
            }
            Ok(p) => {
                let (d, event, seen) =
                    decide_ask(&state, &snapshot, &who, ask(&p, rid.clone(), tid));
                events.push(event);
                raised.extend(seen.raised);
                let allowed = d.is_allowed();
                slots.push(Ok((d, p.unresolved)));
                allowed
            }
        };
        let stop = match semantic {
            api::EvaluationsSemantic::ExecuteAll => false,
            api::EvaluationsSemantic::DenyOnFirstDeny => !allowed,
            api::EvaluationsSemantic::PermitOnFirstPermit => allowed,
        };
        if stop {
            break;
        }
    }
    let mut ids = record_decisions(&state, Surface::Authzen, events, raised, rid.as_deref())
        .await?
        .into_iter();
    let mut out = Vec::with_capacity(slots.len());
    for slot in &slots {
        out.push(match slot {
            Ok((d, note)) => answer(&state, d, ids.next().unwrap_or_default(), note.as_ref()),
            Err(b) => invalid_item(b),
        });
    }
    Ok(Json(api::AuthzenEvaluations { evaluations: out }).into_response())
}

fn ask(p: &Prepared, request_id: Option<String>, trace_id: Option<TraceId>) -> Ask<'_> {
    Ask {
        action: &p.action,
        resource: &p.resource,
        context: &p.context,
        principal: p.principal.as_deref(),
        token: p.token.as_deref(),
        checked: p.checked.clone(),
        request_id,
        trace_id,
        audience: None,
    }
}

// ---- search ----

/// Which entity a search looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Subject,
    Resource,
    Action,
}

impl Kind {
    fn code(self) -> &'static str {
        match self {
            Self::Subject => "subject",
            Self::Resource => "resource",
            Self::Action => "action",
        }
    }
}

/// `POST /access/v1/search/subject`.
pub(crate) async fn search_subject(State(state): State<Arc<Node>>, req: Request<Body>) -> Response {
    let id = req.headers().get(&REQUEST_ID).cloned();
    echoed(id, search(state, req, Kind::Subject).await)
}

/// `POST /access/v1/search/resource`.
pub(crate) async fn search_resource(
    State(state): State<Arc<Node>>,
    req: Request<Body>,
) -> Response {
    let id = req.headers().get(&REQUEST_ID).cloned();
    echoed(id, search(state, req, Kind::Resource).await)
}

/// `POST /access/v1/search/action`.
pub(crate) async fn search_action(State(state): State<Arc<Node>>, req: Request<Body>) -> Response {
    let id = req.headers().get(&REQUEST_ID).cloned();
    echoed(id, search(state, req, Kind::Action).await)
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy)]
struct Page {
    offset: usize,
    limit: usize,
}

/// What a page token commits to: the whole request but the token, so a token is only
/// good for the request that produced it.
fn fingerprint(kind: Kind, o: &Map<String, Value>) -> String {
    let mut o = o.clone();
    if let Some(Value::Object(p)) = o.get_mut("page") {
        p.remove("token");
    }
    let canon = mandate_audit::canonical::canonical_json(&Value::Object(o));
    let mut h = sha2::Sha256::new();
    h.update(kind.code().as_bytes());
    h.update([0]);
    h.update(&canon);
    let digest = h.finalize();
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

fn page(kind: Kind, o: &Map<String, Value>) -> Result<Page, Bad> {
    let Some(p) = object(o.get("page"), "page")? else {
        return Ok(Page {
            offset: 0,
            limit: DEFAULT_LIMIT,
        });
    };
    let limit = match p.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        // `5.0` is the integer 5 (RFC 8259, JSON Schema), as in every typed body.
        Some(v) => mandate_core::integer::whole::<_, u64>(v)
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Bad::invalid(format!("`page.limit` must be an integer 1-{MAX_LIMIT}"))
            })?,
    };
    let offset = match p.get("token") {
        None | Some(Value::Null) => 0,
        Some(Value::String(t)) if t.is_empty() => 0,
        Some(Value::String(t)) => {
            let bad = || Bad::invalid("`page.token` is not a token this search gave");
            let raw = URL_SAFE_NO_PAD.decode(t).map_err(|_| bad())?;
            let raw = String::from_utf8(raw).map_err(|_| bad())?;
            let (offset, print) = raw.split_once('.').ok_or_else(bad)?;
            if print != fingerprint(kind, o) {
                return Err(Bad::invalid(
                    "`page.token` belongs to another request: apart from the token, a request \
                     for the next page must be the same as the first",
                ));
            }
            offset.parse().map_err(|_| bad())?
        }
        Some(_) => return Err(Bad::invalid("`page.token` must be a string")),
    };
    Ok(Page { offset, limit })
}

/// The permitted entities of one search, every page of them.
struct Found {
    /// The agent the search is about (resource and action search).
    agent: Option<AgentId>,
    candidates: usize,
    /// (key recorded in the audit event, the entity answered), in answer order.
    results: Vec<(String, Value)>,
    /// Boundary patterns that could not be listed (resource search).
    skipped: Vec<String>,
}

async fn search(state: Arc<Node>, req: Request<Body>, kind: Kind) -> Result<Response, ApiError> {
    let (parts, b) = req.into_parts();
    let who = caller(
        &state,
        &parts.headers,
        parts.extensions.get::<crate::conn::Peer>(),
        Some((parts.method.as_str(), parts.uri.path())),
    )
    .await?;
    refuse_unverified(&state, &*state.snapshot()?, &who, "/access/v1/search")?;
    if kind == Kind::Subject && matches!(who, Caller::Agent(..)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only an enforcement point (a service or admin token) may search subjects: an \
             agent learns nothing about other agents",
        ));
    }
    let o = body(&state, &parts.headers, b).await?;
    let rid = request_id(&parts.headers);
    let subject = entity(o.get("subject"), "subject", kind != Kind::Subject)?;
    let act = match kind {
        Kind::Action => None,
        _ => Some(action(o.get("action"))?),
    };
    let res = entity(o.get("resource"), "resource", kind != Kind::Resource)?;
    let ctx = object(o.get("context"), "context")?;
    let page = page(kind, &o)?;
    let snapshot = state.snapshot()?;
    let now = state.clock.now();
    let context = context(ctx, subject.properties, act.and_then(|a| a.properties));

    let found = match kind {
        Kind::Subject => {
            if subject_token(&subject)?.is_some() {
                return Err(Bad::invalid(
                    "a subject search names no agent: `subject.properties.token` has no place in it",
                )
                .into());
            }
            let act = act.map(|a| a.name).unwrap_or_default();
            let r = resource(&res, res.id.unwrap_or_default());
            let mut agents: Vec<_> = if subject.type_name == "agent" {
                snapshot.agents.values().collect()
            } else {
                Vec::new()
            };
            agents.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
            let mut results = Vec::new();
            for a in &agents {
                let d = decide_candidate(
                    &snapshot,
                    now,
                    Principal::Agent(a.id.as_str()),
                    act,
                    &r,
                    &context,
                );
                if d.is_allowed() {
                    results.push((
                        a.id.to_string(),
                        json!({"type": "agent", "id": a.id.as_str(),
                               "properties": {"name": a.name.as_str()}}),
                    ));
                }
            }
            Found {
                agent: None,
                candidates: agents.len(),
                results,
                skipped: Vec::new(),
            }
        }
        Kind::Resource | Kind::Action => {
            let ev = Evaluation {
                subject,
                action: act.unwrap_or(Action {
                    name: "",
                    properties: None,
                }),
                resource: res,
                context: ctx,
            };
            let p = prepare(&state, &snapshot, &who, &ev)?;
            search_as(&state, &snapshot, &who, &ev, &p, kind, &context)
        }
    };

    let results: Vec<String> = found.results.iter().map(|(k, _)| k.clone()).collect();
    let total = found.results.len();
    let resource_json = match kind {
        Kind::Resource => json!({"type": res.type_name}),
        _ => json!({"type": res.type_name, "id": res.id}),
    };
    let event = search_event(
        &state,
        &snapshot,
        Search {
            kind: kind.code(),
            agent: found.agent.as_ref().map(ToString::to_string),
            actor: match &who {
                Caller::Service(id) => Some(id.clone()),
                Caller::Agent(..) => None,
            },
            action: act.map(|a| a.name),
            resource: resource_json,
            context: &context,
            request_id: rid.clone(),
            trace_id: crate::traces::trace_id(&parts.extensions),
            candidates: found.candidates,
            results,
        },
    );
    // INVARIANT (durable before the answer): the search is in the log before any of
    // its results leave.
    let id = record_decisions(
        &state,
        Surface::Authzen,
        vec![event],
        Vec::new(),
        rid.as_deref(),
    )
    .await?
    .into_iter()
    .next()
    .unwrap_or_default();

    let end = page.offset.saturating_add(page.limit).min(total);
    let this: Vec<Value> = found
        .results
        .into_iter()
        .skip(page.offset)
        .take(end.saturating_sub(page.offset))
        .map(|(_, v)| v)
        .collect();
    let next_token = if end < total {
        URL_SAFE_NO_PAD.encode(format!("{end}.{}", fingerprint(kind, &o)))
    } else {
        String::new()
    };
    let mut ctx = Map::new();
    ctx.insert("decision_id".into(), json!(id));
    if !found.skipped.is_empty() {
        ctx.insert("incomplete".into(), json!(true));
        ctx.insert("skipped_patterns".into(), json!(found.skipped));
    }
    Ok(Json(api::AuthzenSearchResponse {
        page: api::AuthzenPage {
            next_token,
            count: this.len() as u64,
            total: total as u64,
        },
        context: Some(ctx),
        results: this,
    })
    .into_response())
}

/// Resource and action search: the candidates for the subject's agent, each decided
/// as that agent (through its token when there is one).
fn search_as(
    state: &Node,
    snapshot: &Snapshot,
    who: &Caller<'_>,
    ev: &Evaluation<'_>,
    p: &Prepared,
    kind: Kind,
    context: &Value,
) -> Found {
    let now = state.clock.now();
    // The principal, as `decide_ask` would have it: the claims the edge checked
    // (`INVARIANT (decided as checked)`, authorize.rs); a token that did not verify then
    // lists nothing.
    let (token, claims) = match who {
        Caller::Agent(t, c) => (Some(*t), c.clone()),
        Caller::Service(_) => (p.token.as_deref(), p.checked.clone()),
    };
    // INVARIANT (audience), decide.rs: `decide_candidate` does not check what a token
    // was issued for (`decide_question` does), so a token for another API is refused
    // here: it lists nothing, as its evaluation is a `wrong_audience` deny.
    if let Some(c) = &claims
        && !TokenAudience::Mandate.accepts(snapshot, c)
    {
        return Found {
            agent: AgentId::parse(&c.client_id).ok(),
            candidates: 0,
            results: Vec::new(),
            skipped: Vec::new(),
        };
    }
    let agent = match (&claims, &p.principal) {
        (Some(c), _) => AgentId::parse(&c.client_id).ok(),
        (None, Some(id)) => AgentId::parse(id).ok(),
        (None, None) => None,
    };
    let principal = match (&claims, token, &p.principal) {
        (Some(c), _, _) => Principal::Verified(c),
        (None, Some(t), _) => Principal::Token(t),
        (None, None, id) => Principal::Agent(id.as_deref().unwrap_or("")),
    };
    let Some(holder) = agent.as_ref().and_then(|a| snapshot.agents.get(a)) else {
        return Found {
            agent,
            candidates: 0,
            results: Vec::new(),
            skipped: Vec::new(),
        };
    };
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    let candidates = match kind {
        Kind::Resource => {
            let prefix = format!("{}/", ev.resource.type_name);
            let mut ids = std::collections::BTreeSet::new();
            for g in &holder.boundary.grants {
                if !g.actions.iter().any(|a| glob_match(a, ev.action.name)) {
                    continue;
                }
                for r in &g.resources {
                    let literal = r.split('*').next().unwrap_or_default();
                    if r.contains('*') {
                        if prefix.starts_with(literal) || literal.starts_with(&prefix) {
                            skipped.push(r.clone());
                        }
                    } else if let Some(id) = r.strip_prefix(&prefix)
                        && !id.is_empty()
                    {
                        ids.insert(id.to_owned());
                    }
                }
            }
            skipped.sort();
            skipped.dedup();
            for id in &ids {
                let r = resource(&ev.resource, id);
                let d = decide_candidate(snapshot, now, principal, ev.action.name, &r, context);
                if d.is_allowed() {
                    results.push((id.clone(), json!({"type": ev.resource.type_name, "id": id})));
                }
            }
            ids.len()
        }
        Kind::Action | Kind::Subject => {
            let actions = snapshot
                .policies
                .as_ref()
                .map(|p| p.actions_for(ev.resource.type_name))
                .unwrap_or_default();
            for a in &actions {
                let d = decide_candidate(snapshot, now, principal, a, &p.resource, context);
                if d.is_allowed() {
                    results.push((a.clone(), json!({"name": a})));
                }
            }
            actions.len()
        }
    };
    Found {
        agent,
        candidates,
        results,
        skipped,
    }
}

// ---- discovery ----

/// `GET /.well-known/authzen-configuration` (AuthZEN 1.0 PDP metadata): the issuer
/// is the `policy_decision_point`, every endpoint an absolute URL under it.
pub(crate) async fn configuration(State(state): State<Arc<Node>>, headers: HeaderMap) -> Response {
    let iss = &state.config.issuer;
    let doc = api::AuthzenConfiguration {
        policy_decision_point: iss.clone(),
        access_evaluation_endpoint: format!("{iss}/access/v1/evaluation"),
        access_evaluations_endpoint: format!("{iss}/access/v1/evaluations"),
        search_subject_endpoint: format!("{iss}/access/v1/search/subject"),
        search_resource_endpoint: format!("{iss}/access/v1/search/resource"),
        search_action_endpoint: format!("{iss}/access/v1/search/action"),
    };
    echoed(
        headers.get(&REQUEST_ID).cloned(),
        Ok(Json(doc).into_response()),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::{Kind, page};

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(o) => o,
            _ => unreachable!(),
        }
    }

    /// Regression (issue 25): `page.limit` `5.0` (an integer to RFC 8259 and JSON
    /// Schema) was refused with "`page.limit` must be an integer 1-1000".
    #[test]
    fn a_page_limit_written_with_a_fraction_is_read() {
        let p = page(Kind::Action, &body(json!({"page": {"limit": 5.0}}))).unwrap();
        assert_eq!(p.limit, 5);
        for bad in [
            json!(5.5),
            json!(0.0),
            json!(-1.0),
            json!(1001.0),
            json!("5"),
        ] {
            assert!(
                page(Kind::Action, &body(json!({"page": {"limit": bad}}))).is_err(),
                "{bad} was read"
            );
        }
    }
}
