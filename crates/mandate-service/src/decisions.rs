//! The decision path shared by every enforcement point (`/v1/authorize` and the
//! gateways): verify the agent's token once ([`verified_claims`]), decide one
//! [`Question`] against the snapshot with the detector's assessment
//! ([`decide_question`]), and record it durably before anyone is answered
//! ([`record_decision`]).

use std::sync::Arc;

use mandate_audit::event::AuditEvent;
use mandate_core::decision::Reason;
use mandate_engine::decide::{
    Decision, DecisionRequest, Principal, Resource, Snapshot, TokenAudience, Verdict, decide_with,
};
use serde_json::{Value, json};

use crate::Node;
use crate::detect::{self, Observed};
use crate::error::ServiceError;
use crate::metrics::Surface;

/// The claims of `token` from the verified-token cache, or verified now (and cached).
/// The Ed25519 check is the costliest step of a decision: done once per token.
pub fn verified_claims(
    state: &Node,
    snapshot: &Snapshot,
    token: &str,
    now: mandate_core::time::Timestamp,
) -> Option<Arc<mandate_token::access::AccessClaims>> {
    state.verified_tokens().get(token, now).or_else(|| {
        let v =
            mandate_token::access::verify_bounded(&snapshot.ring, token, &snapshot.expected(), now)
                .ok()?;
        let c = Arc::new(v.claims);
        state
            .verified_tokens()
            .insert(token, Arc::clone(&c), v.valid_until);
        Some(c)
    })
}

/// One question to the decision path, from any enforcement point.
pub struct Question<'a> {
    /// Who acts: a token (verified or not) or an agent named by a trusted caller.
    pub principal: Principal<'a>,
    /// The action asked for.
    pub action: &'a str,
    /// What it is asked on.
    pub resource: &'a Resource,
    /// A JSON object.
    pub context: &'a Value,
    /// The caller's id for the request, recorded with the decision.
    pub request_id: Option<String>,
    /// The W3C trace of the request (the caller's `traceparent`'s or a new one),
    /// recorded with the decision.
    pub trace_id: Option<mandate_core::trace::TraceId>,
    /// Who asked for the agent (a service token id), when not the agent itself.
    pub actor: Option<String>,
    /// The enforcement point and what it saw (gateways), recorded in `details.via`.
    pub via: Option<Value>,
    /// What a token principal must be issued for (`INVARIANT (audience)`, decide.rs).
    pub audience: TokenAudience<'a>,
}

/// Decides one question (pure but for the detector's learning) and drafts its audit
/// event.
pub fn decide_question(
    state: &Node,
    snapshot: &Snapshot,
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
    let detector = state.detector();
    // A token that did not verify through the cache is verified by `decide` again (so
    // its answer says why); should it verify there after all, it is held to the
    // audience too, so the audience never rests on the two verifications agreeing.
    //
    // INVARIANT (bound stays bound): the edge checks a sender-constrained token's proof
    // only for a token it verified (`Principal::Verified`); one that verifies only on
    // this second try (a key learnt, or an `iat` reached, in between) had no proof
    // checked, so a bound one is denied here rather than decided as a bearer token.
    let late;
    let (verified, proven) = match q.principal {
        Principal::Verified(c) => (Some(c), true),
        Principal::Token(t) => {
            late = mandate_token::access::verify(&snapshot.ring, t, &snapshot.expected(), now).ok();
            (late.as_ref(), false)
        }
        Principal::Agent(_) => (None, true),
    };
    let d = match verified {
        // Refused before the detector: a token used where it was not issued for is not
        // the agent's behaviour to learn.
        Some(c) if !q.audience.accepts(snapshot, c) => Decision::wrong_audience(c),
        Some(c) if !proven && c.cnf.is_some() => Decision::sender_unproven(c),
        _ => decide_with(
            snapshot,
            &question,
            now,
            detect::assess(detector, &question, now, &mut seen),
        ),
    };
    detect::outcome(detector, &mut seen, now, d.verdict() == Verdict::Deny);
    // Its last activity (activity.rs): a registered, active agent whose request passed
    // the token and status gates. An id nobody registered is not noted (callers cannot
    // grow the map), and neither is a refusal for a revoked or invalid token or a
    // suspended or decommissioned agent: anyone holding a service token or an old
    // revoked token could otherwise keep a dormant agent looking alive.
    let gated = matches!(
        d.reason(),
        Reason::InvalidToken
            | Reason::TokenRevoked
            | Reason::UnknownAgent
            | Reason::AgentSuspended
            | Reason::AgentDecommissioned
    );
    if let Some(a) = d.agent.as_ref().filter(|a| {
        !gated
            && snapshot
                .agents
                .get(a)
                .is_some_and(|ag| ag.status == mandate_core::agent::AgentStatus::Active)
    }) {
        state.activity.saw(a.as_str(), now);
    }
    let mut e = AuditEvent::new(0, state.clock.now(), state.audit.node().clone(), "decision");
    e.agent = d.agent.as_ref().map(ToString::to_string);
    e.user.clone_from(&d.user);
    e.actor = q.actor;
    e.action = Some(q.action.to_owned());
    // The resource's attributes are kept (redacted as the context is) when it has any,
    // so a policy replay (replay.rs) re-decides the request the policies saw.
    let mut resource = serde_json::Map::new();
    resource.insert("type".into(), json!(q.resource.type_name));
    resource.insert("id".into(), json!(q.resource.id));
    let bare = match &q.resource.attributes {
        Value::Null => true,
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if !bare {
        resource.insert("attributes".into(), state.redact(&q.resource.attributes));
    }
    e.resource = Some(Value::Object(resource));
    e.context = Some(state.redact(q.context));
    e.decision = Some(d.verdict().code().to_owned());
    e.policy_ids = d.policy_ids.clone();
    e.reasons = d.reasons();
    e.request_id = q.request_id;
    e.trace_id = q.trace_id;
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

/// Records a decision's event durably and returns its id (see [`record_decisions`]).
///
/// INVARIANT (durable before the answer): no decision leaves before its event commits;
/// when it cannot be recorded the answer is [`ServiceError::DecisionUnrecorded`].
pub async fn record_decision(
    state: &Arc<Node>,
    surface: Surface,
    event: AuditEvent,
    seen: Observed,
    request_id: Option<&str>,
) -> Result<String, ServiceError> {
    record_decisions(state, surface, vec![event], seen.raised, request_id)
        .await?
        .into_iter()
        .next()
        .ok_or(ServiceError::DecisionUnrecorded)
}

/// Records decisions' events durably and returns their ids, in order. With what the
/// detector raised, also stores the findings, carries out their responses and records
/// their events after the decisions', all under the act order (`INVARIANT (act
/// order)`, write_path.rs), so a detector's suspension and an admin's act on the same
/// agent are logged in the order they were made. Any event that cannot be recorded
/// fails the whole answer with [`ServiceError::DecisionUnrecorded`]. Once recorded, the
/// decisions are counted under `surface` (`mandate_decisions_total`).
pub async fn record_decisions(
    state: &Arc<Node>,
    surface: Surface,
    events: Vec<AuditEvent>,
    raised: Vec<detect::Raised>,
    request_id: Option<&str>,
) -> Result<Vec<String>, ServiceError> {
    let n = events.len();
    // Labels read before the events move to the writer; counted once all are recorded.
    let counted: Vec<_> = events
        .iter()
        .filter_map(crate::metrics::decision_labels)
        .collect();
    if raised.is_empty() {
        let mut ids = Vec::with_capacity(n);
        for outcome in state.audit.record_all(events).await {
            ids.push(outcome.map_err(|e| {
                tracing::error!(error = %e, "decision not answered: the audit log cannot be written");
                ServiceError::DecisionUnrecorded
            })?);
        }
        crate::metrics::decisions_recorded(surface, &counted);
        return Ok(ids);
    }
    let request_id = request_id.map(str::to_owned);
    // The request's trace, as its decisions recorded it (one request, one trace).
    let trace_id = events.iter().find_map(|e| e.trace_id);
    let (_, mut ids) = state
        .act_batch("decision", move |s| {
            let mut all = events;
            all.extend(detect::respond(s, raised, request_id.as_deref(), trace_id)?);
            Ok::<_, ServiceError>(((), all))
        })
        .await
        .map_err(|e| match e {
            ServiceError::AuditUnavailable => ServiceError::DecisionUnrecorded,
            other => other,
        })?;
    ids.truncate(n);
    crate::metrics::decisions_recorded(surface, &counted);
    Ok(ids)
}

/// Decides one candidate of a search (AuthZEN's subject, resource and action search):
/// the same gates as every decision — the agent known and active, the boundary, the
/// active policies — on the same snapshot, but hypothetical: the anomaly detector
/// neither scores it nor learns from it (no agent asked to act), and it has no audit
/// event of its own; the search is recorded once, by [`search_event`].
pub fn decide_candidate(
    snapshot: &Snapshot,
    now: mandate_core::time::Timestamp,
    principal: Principal<'_>,
    action: &str,
    resource: &Resource,
    context: &Value,
) -> Decision {
    mandate_engine::decide::decide(
        snapshot,
        &DecisionRequest {
            principal,
            action,
            resource,
            context,
        },
        now,
    )
}

/// What a search asked and found, for its one audit event.
pub struct Search<'a> {
    /// `subject`, `resource` or `action`.
    pub kind: &'static str,
    /// The agent the search is about (resource and action search), when known.
    pub agent: Option<String>,
    /// Who asked (a service token id), when not the agent itself.
    pub actor: Option<String>,
    /// The action searched with (subject and resource search).
    pub action: Option<&'a str>,
    /// The resource searched with, or the type searched for.
    pub resource: Value,
    /// The context, redacted when recorded.
    pub context: &'a Value,
    /// The caller's request id.
    pub request_id: Option<String>,
    /// The request's W3C trace id.
    pub trace_id: Option<mandate_core::trace::TraceId>,
    /// How many candidates were decided.
    pub candidates: usize,
    /// The permitted entities, in answer order (ids or action names).
    pub results: Vec<String>,
}

/// The audit event of one search (`authzen.search`): what was asked, how many
/// candidates were decided, and every permitted one (the whole result set, not one
/// page). Recorded with [`record_decisions`] before any page of it is answered.
pub fn search_event(state: &Node, snapshot: &Snapshot, s: Search<'_>) -> AuditEvent {
    let mut e = AuditEvent::new(
        0,
        state.clock.now(),
        state.audit.node().clone(),
        "authzen.search",
    );
    e.agent = s.agent;
    e.actor = s.actor;
    e.action = s.action.map(str::to_owned);
    e.resource = Some(s.resource);
    e.context = Some(state.redact(s.context));
    e.request_id = s.request_id;
    e.trace_id = s.trace_id;
    let mut details = serde_json::Map::new();
    details.insert("search".into(), json!(s.kind));
    details.insert("candidates".into(), json!(s.candidates));
    details.insert("count".into(), json!(s.results.len()));
    details.insert("results".into(), json!(s.results));
    if let Some(v) = snapshot.policy_version {
        details.insert("policy_version".into(), json!(v));
    }
    e.details = Some(Value::Object(details));
    e
}
