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
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::decide::{
    Decision, DecisionRequest, Principal, Resource, TokenAudience, Verdict, decide_with,
};
use crate::detect::{self, Observed};
use crate::error::ApiError;
use crate::extract::{bearer, looks_like_jwt, lookup_admin_token, parse_json, read_body};

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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    requests: Vec<AuthorizeRequest>,
}

/// Who called.
enum Caller<'h> {
    /// The agent, with its own token (borrowed from the request's headers).
    Agent(&'h str),
    /// An enforcement point's token id.
    Service(String),
}

async fn caller<'h>(state: &Arc<AppState>, headers: &'h HeaderMap) -> Result<Caller<'h>, ApiError> {
    let token = bearer(headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a bearer token is required",
        )
    })?;
    if looks_like_jwt(token) {
        return Ok(Caller::Agent(token));
    }
    match lookup_admin_token(state, token).await? {
        Some(t) if matches!(t.role, Role::Service | Role::Admin) => {
            Ok(Caller::Service(t.id.to_string()))
        }
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only agents, service tokens and admin tokens may call /v1/authorize",
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
fn refuse_unverified(
    state: &AppState,
    snapshot: &crate::decide::Snapshot,
    caller: &Caller<'_>,
) -> Result<(), ApiError> {
    let Caller::Agent(token) = caller else {
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
    ev.details = Some(json!({"surface": "/v1/authorize", "error": "invalid_token", "reason": why}));
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
        Caller::Agent(_) if req.principal.is_some() || req.token.is_some() => Err(bad(
            "an agent authorizes for itself: principal and token are for service callers",
        )),
        Caller::Service(_) if req.principal.is_some() == req.token.is_some() => Err(bad(
            "a service caller names exactly one of principal or token",
        )),
        _ if req.audience.is_some() && req.token.is_none() => Err(bad(
            "audience goes with token: it is what the token must be issued for",
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

/// The claims of `token` from the verified-token cache, or verified now (and cached).
/// The Ed25519 check is the costliest step of a decision: done once per token.
pub(crate) fn verified_claims(
    state: &AppState,
    snapshot: &crate::decide::Snapshot,
    token: &str,
    now: mandate_core::time::Timestamp,
) -> Option<Arc<mandate_token::access::AccessClaims>> {
    state.verified_tokens.get(token, now).or_else(|| {
        let v =
            mandate_token::access::verify_bounded(&snapshot.ring, token, &snapshot.expected(), now)
                .ok()?;
        let c = Arc::new(v.claims);
        state
            .verified_tokens
            .insert(token, Arc::clone(&c), v.valid_until);
        Some(c)
    })
}

/// One question to the decision path, from any enforcement point.
pub(crate) struct Question<'a> {
    pub principal: Principal<'a>,
    pub action: &'a str,
    pub resource: &'a Resource,
    /// A JSON object.
    pub context: &'a Value,
    pub request_id: Option<String>,
    /// Who asked for the agent (a service token id), when not the agent itself.
    pub actor: Option<String>,
    /// The enforcement point and what it saw (gateways), recorded in `details.via`.
    pub via: Option<Value>,
    /// What a token principal must be issued for (`INVARIANT (audience)`, decide.rs).
    pub audience: TokenAudience<'a>,
}

/// Decides one question (pure but for the detector's learning) and drafts its audit
/// event.
pub(crate) fn decide_question(
    state: &AppState,
    snapshot: &crate::decide::Snapshot,
    now: mandate_core::time::Timestamp,
    q: Question<'_>,
) -> (Decision, AuditEvent, Observed) {
    let question = DecisionRequest {
        principal: q.principal,
        action: q.action,
        resource: q.resource,
        context: q.context,
    };
    let mut seen = Observed::default();
    let detector = state.detector.as_ref();
    // A token that did not verify through the cache is verified by `decide` again (so
    // its answer says why); should it verify there after all, it is held to the
    // audience too, so the audience never rests on the two verifications agreeing.
    let late;
    let verified = match q.principal {
        Principal::Verified(c) => Some(c),
        Principal::Token(t) => {
            late = mandate_token::access::verify(&snapshot.ring, t, &snapshot.expected(), now).ok();
            late.as_ref()
        }
        Principal::Agent(_) => None,
    };
    let d = match verified {
        // Refused before the detector: a token used where it was not issued for is not
        // the agent's behaviour to learn.
        Some(c) if !q.audience.accepts(snapshot, c) => Decision::wrong_audience(c),
        _ => decide_with(
            snapshot,
            &question,
            now,
            detect::assess(detector, &question, now, &mut seen),
        ),
    };
    detect::outcome(detector, &mut seen, now, d.verdict() == Verdict::Deny);
    let mut e = AuditEvent::new(0, state.clock.now(), state.audit.node().clone(), "decision");
    e.agent = d.agent.as_ref().map(ToString::to_string);
    e.user.clone_from(&d.user);
    e.actor = q.actor;
    e.action = Some(q.action.to_owned());
    e.resource = Some(json!({"type": q.resource.type_name, "id": q.resource.id}));
    e.context = Some(state.redact(q.context));
    e.decision = Some(verdict(&d).to_owned());
    e.policy_ids = d.policy_ids.clone();
    e.reasons = d.reasons();
    e.request_id = q.request_id;
    let mut details = serde_json::Map::new();
    if let Some(jti) = &d.token_id {
        details.insert("token_id".into(), json!(jti));
    }
    if let Some(m) = &d.mandate {
        details.insert("mandate".into(), json!(m));
    }
    if !d.chain.is_empty() {
        details.insert("chain".into(), json!(d.chain));
    }
    if let Some(v) = snapshot.policy_version {
        details.insert("policy_version".into(), json!(v));
    }
    if d.risk != Default::default() {
        details.insert("risk".into(), json!(d.risk));
    }
    if let Some(via) = q.via {
        details.insert("via".into(), via);
    }
    e.details = (!details.is_empty()).then_some(Value::Object(details));
    (d, e, seen)
}

/// Records a decision's event (with what the detector raised) durably; its id.
pub(crate) async fn record_decision(
    state: &Arc<AppState>,
    event: AuditEvent,
    seen: Observed,
    request_id: Option<&str>,
) -> Result<String, ApiError> {
    if seen.raised.is_empty() {
        // INVARIANT (durable before the answer): no decision leaves before its event commits.
        return state.audit.record(event).await.map_err(|e| unavailable(&e));
    }
    let mut events = vec![event];
    events.extend(detect::act(state, seen.raised, request_id).await?);
    let mut ids = state.audit.record_all(events).await.into_iter();
    let id = ids
        .next()
        .unwrap_or(Err(crate::audit::AuditError::Unavailable))
        .map_err(|e| unavailable(&e))?;
    for other in ids {
        other.map_err(|e| unavailable(&e))?;
    }
    Ok(id)
}

/// Decides one `/v1/authorize` request and drafts its audit event.
fn decide_one(
    state: &AppState,
    snapshot: &crate::decide::Snapshot,
    req: &AuthorizeRequest,
    caller: &Caller<'_>,
) -> (Decision, AuditEvent, Observed) {
    let now = state.clock.now();
    // The agent's token (its own, or one a service passes on without naming the agent).
    let token = match (caller, &req.principal, &req.token) {
        (Caller::Agent(t), _, _) => Some(*t),
        (Caller::Service(_), None, Some(t)) => Some(t.as_str()),
        (Caller::Service(_), _, _) => None,
    };
    let verified;
    let principal = match token {
        Some(t) => {
            verified = verified_claims(state, snapshot, t, now);
            match &verified {
                Some(c) => Principal::Verified(c),
                // Let `decide` verify again, so its answer names why the token is bad.
                None => Principal::Token(t),
            }
        }
        // With neither a principal nor a token (`check` rules it out) the empty id
        // matches no agent: a deny rather than a guess.
        None => Principal::Agent(req.principal.as_deref().unwrap_or("")),
    };
    let empty;
    let context = if req.context.is_null() {
        empty = json!({});
        &empty
    } else {
        &req.context
    };
    decide_question(
        state,
        snapshot,
        now,
        Question {
            principal,
            action: &req.action,
            resource: &req.resource,
            context,
            request_id: req.request_id.clone(),
            actor: match caller {
                Caller::Service(id) => Some(id.clone()),
                Caller::Agent(_) => None,
            },
            via: None,
            audience: match &req.audience {
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

fn unavailable(e: &crate::audit::AuditError) -> ApiError {
    tracing::error!(error = %e, "decision not answered: the audit log cannot be written");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        "the audit log cannot be written; no decision is given",
    )
}

/// The JSON body, after its content type (`application/json` or `…+json`, any case).
async fn body<T: serde::de::DeserializeOwned>(
    state: &AppState,
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
    State(state): State<Arc<AppState>>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    let (parts, b) = req.into_parts();
    let who = caller(&state, &parts.headers).await?;
    let snapshot = state.snapshot()?;
    refuse_unverified(&state, &snapshot, &who)?;
    let r: AuthorizeRequest = body(&state, &parts.headers, b).await?;
    check(&r, &who)?;
    let (d, event, seen) = decide_one(&state, &snapshot, &r, &who);
    let id = record_decision(&state, event, seen, r.request_id.as_deref()).await?;
    Ok(Json(answer(&d, id)).into_response())
}

/// `POST /v1/authorize/batch`: up to [`MAX_BATCH`] requests, one group commit.
pub(crate) async fn authorize_batch(
    State(state): State<Arc<AppState>>,
    req: Request<Body>,
) -> Result<Response, ApiError> {
    let (parts, b) = req.into_parts();
    let who = caller(&state, &parts.headers).await?;
    refuse_unverified(&state, &*state.snapshot()?, &who)?;
    let b: BatchRequest = body(&state, &parts.headers, b).await?;
    if b.requests.is_empty() || b.requests.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("a batch holds 1 to {MAX_BATCH} requests"),
        ));
    }
    for r in &b.requests {
        check(r, &who)?;
    }
    let mut decisions = Vec::with_capacity(b.requests.len());
    let mut events = Vec::with_capacity(b.requests.len());
    let mut raised = Vec::new();
    // One snapshot for the whole batch: every answer in it comes from the same state.
    let snapshot = state.snapshot()?;
    for r in &b.requests {
        let (d, e, seen) = decide_one(&state, &snapshot, r, &who);
        decisions.push(d);
        events.push(e);
        raised.extend(seen.raised);
    }
    let more = detect::act(&state, raised, None).await?;
    let n = events.len();
    events.extend(more);
    let mut ids = state.audit.record_all(events).await;
    for extra in ids.split_off(n) {
        extra.map_err(|e| unavailable(&e))?;
    }
    let mut results = Vec::with_capacity(ids.len());
    for (d, id) in decisions.iter().zip(ids) {
        results.push(answer(d, id.map_err(|e| unavailable(&e))?));
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
