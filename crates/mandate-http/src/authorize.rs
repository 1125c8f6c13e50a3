//! `POST /v1/authorize` and `/v1/authorize/batch`: the decision path as an API. The
//! caller is the agent itself (its access token as the bearer) or a trusted enforcement
//! point (a `service` or `admin` token as the bearer, naming the agent or passing its
//! token in the body). Every decision is recorded durably before it is answered.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use mandate_audit::event::AuditEvent;
use mandate_core::admin::Role;
use mandate_core::trace::TraceId;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Node;
use crate::decide::{Decision, Principal, Resource, TokenAudience};
use crate::error::ApiError;
use crate::extract::{looks_like_jwt, lookup_admin_token, parse_json, read_body};
use mandate_service::decisions::{
    Question, decide_question, record_decision, record_decisions, verified_claims,
};
use mandate_service::detect::Observed;
use mandate_service::metrics::Surface;
use mandate_token::access::AccessClaims;

/// The most requests one batch may hold.
pub const MAX_BATCH: usize = 100;

/// One authorization question.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthorizeRequest {
    action: String,
    resource: Resource,
    #[serde(default)]
    context: Value,
    /// For enforcement points: the agent id…
    principal: Option<String>,
    /// …or the agent's access token.
    token: Option<String>,
    /// The caller's request id, recorded with the decision.
    request_id: Option<String>,
    /// With `token`: the resource the enforcement point serves, which the token must be
    /// issued for. Without it the token must be issued for Mandate itself.
    audience: Option<String>,
    /// With `token`: the agent's DPoP proof and the request it was made for; required
    /// when the token is DPoP-bound (`INVARIANT (bound stays bound)`).
    dpop: Option<crate::dpop::Forwarded>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    requests: Vec<AuthorizeRequest>,
}

/// Who called (`/v1/authorize` and AuthZEN's endpoints, authzen.rs).
pub(crate) enum Caller<'h> {
    /// The agent, with its own token (borrowed from the request's headers) and its
    /// claims as the edge verified them and held them to their binding (`None`: the
    /// token did not verify then).
    Agent(&'h str, Option<Arc<AccessClaims>>),
    /// An enforcement point's token id.
    Service(String),
}

/// Authenticates the caller of a decision endpoint: an agent's own access token (any
/// bearer that looks like a JWT, under `Bearer` or `DPoP`), or a `service` or `admin`
/// admin token (under `Bearer`). An agent's token is held to how it was presented
/// (`INVARIANT (bound stays bound)`, mandate_service::dpop) for a request of `at`
/// (method, path; `None`: a surface with no DPoP, where a bound token is refused).
pub(crate) async fn caller<'h>(
    state: &Arc<Node>,
    headers: &'h HeaderMap,
    peer: Option<&crate::conn::Peer>,
    at: Option<(&str, &str)>,
) -> Result<Caller<'h>, ApiError> {
    let (token, scheme) = crate::dpop::agent_token(headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a bearer token is required",
        )
    })?;
    if looks_like_jwt(token) {
        let checked = crate::dpop::check_caller(state, headers, peer, token, scheme, at)?;
        return Ok(Caller::Agent(token, checked));
    }
    if scheme != mandate_service::dpop::Scheme::Bearer {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "service and admin tokens are bearer tokens",
        ));
    }
    match lookup_admin_token(state, token).await? {
        Some(t) if matches!(t.role, Role::Service | Role::Admin) => {
            Ok(Caller::Service(t.id.to_string()))
        }
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only agents, service tokens and admin tokens may ask for decisions",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "unknown or revoked token",
        )),
    }
}

/// Refuses an agent's own bearer token that does not verify as a Mandate access token
/// at all (format, signature, signing key, issuer, lifetime, window): 401
/// `invalid_token` (RFC 6750 §3.1), before the body is read. There is no principal to
/// decide for, so nothing of the request is recorded, only a compact best-effort
/// `token.refused` event: an unauthenticated caller cannot grow the audit log with
/// contexts of its own making. A token that verifies but may not act (revoked, cut off,
/// its agent suspended, issued for another audience) is decided — a recorded `deny`
/// naming the agent.
///
/// `surface` names the endpoint in the event (`/v1/authorize`, `/access/v1/…`).
pub(crate) fn refuse_unverified(
    state: &Node,
    snapshot: &crate::decide::Snapshot,
    caller: &Caller<'_>,
    surface: &str,
) -> Result<(), ApiError> {
    let Caller::Agent(token, _) = caller else {
        return Ok(());
    };
    let now = state.clock.now();
    if verified_claims(state, snapshot, token, now).is_some() {
        return Ok(());
    }
    let why = match mandate_token::access::verify(&snapshot.ring, token, &snapshot.expected(), now)
    {
        Err(e) => e.to_string(),
        // Verified on the second try (a key published a moment later): decide it.
        Ok(_) => return Ok(()),
    };
    let mut ev = state.event("token.refused");
    ev.details = Some(json!({"surface": surface, "error": "invalid_token", "reason": why}));
    state.audit.record_lazy(ev);
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        format!("the access token does not verify: {why}"),
    ))
}

fn check(req: &AuthorizeRequest, caller: &Caller<'_>) -> Result<(), ApiError> {
    let bad = |m: &str| ApiError::bad_request("invalid_field", m);
    match caller {
        Caller::Agent(..) if req.principal.is_some() || req.token.is_some() => Err(bad(
            "an agent authorizes for itself: principal and token are for service callers",
        )),
        Caller::Service(_) if req.principal.is_some() == req.token.is_some() => Err(bad(
            "a service caller names exactly one of principal or token",
        )),
        _ if req.audience.is_some() && req.token.is_none() => Err(bad(
            "audience goes with token: it is what the token must be issued for",
        )),
        _ if req.dpop.is_some() && req.token.is_none() => Err(bad(
            "dpop goes with token: it is the proof the agent sent with it",
        )),
        _ if req
            .audience
            .as_ref()
            .is_some_and(|a| a.is_empty() || a.len() > 1024) =>
        {
            Err(bad("audience must be 1-1024 bytes"))
        }
        _ if req.action.is_empty() || req.action.len() > 256 => {
            Err(bad("action must be 1-256 bytes"))
        }
        _ if req.resource.type_name.is_empty() || req.resource.id.is_empty() => {
            Err(bad("resource needs a type and an id"))
        }
        _ if !(req.context.is_object() || req.context.is_null()) => {
            Err(bad("context must be an object"))
        }
        _ if !(req.resource.attributes.is_object() || req.resource.attributes.is_null()) => {
            Err(bad("resource attributes must be an object"))
        }
        _ if req.request_id.as_ref().is_some_and(|r| r.len() > 128) => {
            Err(bad("request_id is at most 128 bytes"))
        }
        _ => Ok(()),
    }
}

/// A token an enforcement point passes on, held to its binding: a bound token needs the
/// agent's proof in `dpop` (`crate::dpop::check_forwarded`). Its claims as checked, for
/// the decision (`INVARIANT (decided as checked)`); `None` for a token that does not
/// verify, left to the decision, which denies it.
fn forwarded_proof(
    state: &Node,
    r: &AuthorizeRequest,
) -> Result<Option<Arc<AccessClaims>>, ApiError> {
    let Some(token) = r.token.as_deref() else {
        return Ok(None);
    };
    let snapshot = state.snapshot()?;
    match verified_claims(state, &snapshot, token, state.clock.now()) {
        Some(c) => {
            crate::dpop::check_forwarded(state, token, &c, r.dpop.as_ref(), "/v1/authorize")?;
            Ok(Some(c))
        }
        None => Ok(None),
    }
}

/// Decides one `/v1/authorize` request and drafts its audit event.
fn decide_one(
    state: &Node,
    snapshot: &crate::decide::Snapshot,
    req: &AuthorizeRequest,
    checked: Option<Arc<AccessClaims>>,
    caller: &Caller<'_>,
    trace_id: Option<TraceId>,
) -> (Decision, AuditEvent, Observed) {
    decide_ask(
        state,
        snapshot,
        caller,
        Ask {
            action: &req.action,
            resource: &req.resource,
            context: &req.context,
            principal: req.principal.as_deref(),
            token: req.token.as_deref(),
            checked,
            request_id: req.request_id.clone(),
            trace_id,
            audience: req.audience.as_deref(),
        },
    )
}

/// One checked question, whatever the wire it came on (`/v1/authorize`, AuthZEN).
pub(crate) struct Ask<'a> {
    pub(crate) action: &'a str,
    pub(crate) resource: &'a Resource,
    /// A JSON object, or `null` for none.
    pub(crate) context: &'a Value,
    /// For a service caller: the agent id…
    pub(crate) principal: Option<&'a str>,
    /// …or the agent's access token…
    pub(crate) token: Option<&'a str>,
    /// …with its claims as the edge verified them and held them to their binding
    /// (`None`: the token did not verify then).
    pub(crate) checked: Option<Arc<AccessClaims>>,
    pub(crate) request_id: Option<String>,
    /// The request's W3C trace (`crate::traces`), recorded with the decision.
    pub(crate) trace_id: Option<TraceId>,
    /// With `token`: what the token must be issued for (else Mandate).
    pub(crate) audience: Option<&'a str>,
}

/// Decides one question through the decision path (`decide_question`: token, agent,
/// boundary, policies, detector) and drafts its audit event. The one way every
/// decision endpoint of this crate decides.
pub(crate) fn decide_ask(
    state: &Node,
    snapshot: &crate::decide::Snapshot,
    caller: &Caller<'_>,
    ask: Ask<'_>,
) -> (Decision, AuditEvent, Observed) {
    let now = state.clock.now();
    // The agent's token (its own, or one a service passes on without naming the agent),
    // and its claims as the edge checked them.
    //
    // INVARIANT (decided as checked): a token is decided as verified only with the
    // claims the edge verified and held to their binding (DPoP proof, certificate) on
    // this request. One that did not verify then goes to `decide` as a bare token, which
    // verifies it again (so its answer names why it is bad) and denies a bound one: a
    // token verifying a moment later (its `nbf` reached, a key learnt) had no proof
    // checked, and is never decided as if it had.
    let (token, checked) = match (caller, ask.principal, ask.token) {
        (Caller::Agent(t, c), _, _) => (Some(*t), c.as_ref()),
        (Caller::Service(_), None, Some(t)) => (Some(t), ask.checked.as_ref()),
        (Caller::Service(_), _, _) => (None, None),
    };
    let principal = match token {
        Some(t) => match checked {
            Some(c) => Principal::Verified(c),
            None => Principal::Token(t),
        },
        // With neither a principal nor a token (`check` rules it out) the empty id
        // matches no agent: a deny rather than a guess.
        None => Principal::Agent(ask.principal.unwrap_or("")),
    };
    let empty;
    let context = if ask.context.is_null() {
        empty = json!({});
        &empty
    } else {
        ask.context
    };
    decide_question(
        state,
        snapshot,
        now,
        Question {
            principal,
            action: ask.action,
            resource: ask.resource,
            context,
            request_id: ask.request_id,
            trace_id: ask.trace_id,
            actor: match caller {
                Caller::Service(id) => Some(id.clone()),
                Caller::Agent(..) => None,
            },
            via: None,
            audience: match ask.audience {
                Some(a) => TokenAudience::Resource(a),
                None => TokenAudience::Mandate,
            },
        },
    )
}

/// `allow`, `approval_required` or `deny`.
pub(crate) fn verdict(d: &Decision) -> &'static str {
    d.verdict().code()
}

/// The answer to one question, serialized straight from the decision without a `Value`
/// tree in between.
///
/// INVARIANT (answer bytes): the fields are declared in the order the `json!` object
/// this replaced wrote them (serde_json's `preserve_order` is on in this workspace), so
/// the bytes on the wire are unchanged; `answer_bytes_are_those_of_the_json_object`
/// compares the two.
#[derive(serde::Serialize)]
struct Answer<'a> {
    decision: &'static str,
    reasons: Reasons<'a>,
    policy_ids: &'a [String],
    decision_id: String,
}

/// A decision's reasons as [`Decision::reasons`] lists them (the code, then the
/// details), written without building the list.
struct Reasons<'a>(&'a Decision);

impl serde::Serialize for Reasons<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        let mut seq = s.serialize_seq(Some(1 + self.0.details.len()))?;
        seq.serialize_element(self.0.reason().code())?;
        for d in &self.0.details {
            seq.serialize_element(d)?;
        }
        seq.end()
    }
}

fn answer(d: &Decision, decision_id: String) -> Answer<'_> {
    Answer {
        decision: verdict(d),
        reasons: Reasons(d),
        policy_ids: &d.policy_ids,
        decision_id,
    }
}

/// The JSON body, after its content type (`application/json` or `…+json`, any case).
pub(crate) async fn body<T: serde::de::DeserializeOwned>(
    state: &Node,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim().as_bytes();
    let json_suffix = media
        .len()
        .checked_sub(5)
        .and_then(|at| media.get(at..))
        .is_some_and(|t| t.eq_ignore_ascii_case(b"+json"));
    if !media.eq_ignore_ascii_case(b"application/json") && !json_suffix {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ));
    }
    let bytes = read_body(body, state.config.max_body_bytes).await?;
    parse_json(&bytes)
}

/// `POST /v1/authorize`.
pub(crate) async fn authorize(
    State(state): State<Arc<Node>>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    let (parts, b) = req.into_parts();
    let who = caller(
        &state,
        &parts.headers,
        parts.extensions.get::<crate::conn::Peer>(),
        Some((parts.method.as_str(), parts.uri.path())),
    )
    .await?;
    refuse_unverified(&state, &*state.snapshot()?, &who, "/v1/authorize")?;
    let r: AuthorizeRequest = body(&state, &parts.headers, b).await?;
    // `mandate_decision_duration_seconds`: from the body in to the answer ready.
    #[expect(
        clippy::disallowed_methods,
        reason = "monotonic time for the decision latency metric, not the time of day"
    )]
    let started = std::time::Instant::now();
    check(&r, &who)?;
    let checked = forwarded_proof(&state, &r)?;
    // INVARIANT (decided on the snapshot of now): the snapshot is taken once the body is
    // in, never before: a body may take up to the body deadline to arrive, and a
    // suspension or revocation made meanwhile must govern this decision
    // (`INVARIANT (fresh or refused)`, mandate-service freshness.rs).
    let snapshot = state.snapshot()?;
    let trace_id = crate::traces::trace_id(&parts.extensions);
    let (d, event, seen) = decide_one(&state, &snapshot, &r, checked, &who, trace_id);
    let id = record_decision(
        &state,
        Surface::Authorize,
        event,
        seen,
        r.request_id.as_deref(),
    )
    .await?;
    let mut answer = Json(answer(&d, id)).into_response();
    crate::traces::note(
        &mut answer,
        verdict(&d),
        d.agent.as_ref().map(ToString::to_string),
    );
    mandate_service::metrics::decision_timed(started.elapsed());
    Ok(answer)
}

/// `POST /v1/authorize/batch`: up to [`MAX_BATCH`] requests, one group commit.
pub(crate) async fn authorize_batch(
    State(state): State<Arc<Node>>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    let (parts, b) = req.into_parts();
    let who = caller(
        &state,
        &parts.headers,
        parts.extensions.get::<crate::conn::Peer>(),
        Some((parts.method.as_str(), parts.uri.path())),
    )
    .await?;
    refuse_unverified(&state, &*state.snapshot()?, &who, "/v1/authorize")?;
    let b: BatchRequest = body(&state, &parts.headers, b).await?;
    if b.requests.is_empty() || b.requests.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("a batch holds 1 to {MAX_BATCH} requests"),
        ));
    }
    let mut checked = Vec::with_capacity(b.requests.len());
    for r in &b.requests {
        check(r, &who)?;
        checked.push(forwarded_proof(&state, r)?);
    }
    let mut decisions = Vec::with_capacity(b.requests.len());
    let mut events = Vec::with_capacity(b.requests.len());
    let mut raised = Vec::new();
    // One snapshot for the whole batch, taken once its body is in (`INVARIANT (decided
    // on the snapshot of now)`): every answer in it comes from the same state.
    let snapshot = state.snapshot()?;
    let trace_id = crate::traces::trace_id(&parts.extensions);
    for (r, checked) in b.requests.iter().zip(checked) {
        let (d, e, seen) = decide_one(&state, &snapshot, r, checked, &who, trace_id);
        decisions.push(d);
        events.push(e);
        raised.extend(seen.raised);
    }
    let ids = record_decisions(&state, Surface::Authorize, events, raised, None).await?;
    let mut results = Vec::with_capacity(ids.len());
    for (d, id) in decisions.iter().zip(ids) {
        results.push(answer(d, id));
    }
    Ok(Json(json!({"results": results})).into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{answer, verdict};
    use crate::decide::{Decision, Reason};

    /// INVARIANT (answer bytes): the struct writes what the `json!` object wrote.
    #[test]
    fn answer_bytes_are_those_of_the_json_object() {
        // The reason code and details are written by `Reasons`, not copied: a decision
        // with details and policies, and one with neither.
        let mut allowed = Decision::new(Reason::AllowedByPolicy);
        allowed.details = vec!["a \"quoted\" detail".into()];
        allowed.policy_ids = vec!["team-reads-contacts".into()];
        for d in [allowed, Decision::new(Reason::NoPermit)] {
            let id = "evt_01JA0000000000000000000000".to_owned();
            let old = json!({
                "decision": verdict(&d),
                "reasons": d.reasons(),
                "policy_ids": d.policy_ids,
                "decision_id": id,
            });
            let new = serde_json::to_vec(&answer(&d, id)).unwrap();
            assert_eq!(
                String::from_utf8(new).unwrap(),
                serde_json::to_string(&old).unwrap()
            );
        }
    }
}
