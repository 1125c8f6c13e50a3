//! Mandates through the API: an agent asks for a task-scoped grant, which policy grants,
//! refuses or holds for a human; the agent, its user, admins and approvers read it (the
//! agent long-polls while it waits); the agent completes it; an admin or the agent's
//! owner revokes it; and a sweeper writes lapsed requests denied and lapsed mandates
//! expired.
//!
//! Who may see a mandate that they may not change gets 403; who may not even see it gets
//! 404, so its existence is not revealed.

use mandate_store::prelude::*;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_audit::event::AuditEvent;
use mandate_core::agent::{Agent, Grant};
use mandate_core::id::{AgentId, MandateId};
use mandate_core::identity::Person;
use mandate_core::mandate::{
    MAX_TEXT_CHARS, Mandate, MandateStatus, Miss, UserRef, check_request, grant_miss, scope_within,
};
use mandate_core::time::Timestamp;
use mandate_policy::{OnBehalf, PolicyRequest, mandate_attributes};
use mandate_store::MandateFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Node;
use crate::act::Acts as _;
use crate::actor::{Actor, System};
use crate::acts;
use crate::audit_api::query;
use crate::caller::Caller;
use crate::decide::{Reason, Snapshot, Verdict, policy_reason};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, OptionalJson};
use mandate_service::Recorded;

/// The lifetime of a mandate requested without one (capped by the configured maximum).
const DEFAULT_LIFETIME_SECS: u32 = 600;
/// The longest a `GET /v1/mandates/{id}?wait=` may hold the request.
const MAX_WAIT_SECS: u64 = 60;
/// List page sizes.
pub(crate) const DEFAULT_PAGE: u32 = 100;
pub(crate) const MAX_PAGE: u32 = 500;

// ---- shared with approvals.rs ----

/// A mandate as the API shows it: the stored record, with `status` as of `now` (a
/// request past its deadline shows `denied`, a mandate past its expiry `expired`, even
/// before the sweeper has written that).
pub(crate) fn view(m: &Mandate, now: Timestamp) -> Value {
    let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.insert("status".to_owned(), json!(m.status_at(now)));
    }
    v
}

/// `{"id", "name", "owner"}` of the agent holding a mandate, for approvers.
/// While decisions are held (`snapshot` is `None`, see lib.rs `refresh`) only the id.
pub(crate) fn agent_summary(snapshot: Option<&Snapshot>, id: &AgentId) -> Value {
    match snapshot.and_then(|s| s.agents.get(id)) {
        Some(a) => json!({"id": a.id, "name": a.name, "owner": a.owner}),
        None => json!({"id": id, "name": null, "owner": null}),
    }
}

/// A path id; anything that is not a mandate id is as unknown as a missing one.
pub(crate) fn mandate_id(s: &str) -> Result<MandateId, ApiError> {
    MandateId::parse(s).map_err(|_| unknown(s))
}

pub(crate) fn unknown(id: &str) -> ApiError {
    ApiError::not_found(format!("unknown mandate `{}`", id.escape_debug()))
}

/// Whether `caller` may see `m`: admins of any role, approvers, the mandate's agent and
/// the user it acts for.
pub(crate) fn may_read(caller: &Caller, state: &Node, m: &Mandate) -> bool {
    match caller {
        Caller::Admin(_) => true,
        Caller::Agent { agent, .. } => agent.id == m.agent,
        Caller::User(u) => is_mandate_user(&u.user, m) || caller.is_approver(state),
    }
}

/// Whether `u` is the human `m` acts for (same issuer, same subject).
fn is_mandate_user(u: &UserRef, m: &Mandate) -> bool {
    m.user
        .as_ref()
        .is_some_and(|mu| mu.issuer == u.issuer && mu.sub == u.sub)
}

/// A user as a person to compare (`mandate_core::identity`).
pub(crate) fn person(u: &UserRef) -> Person<'_> {
    Person {
        sub: &u.sub,
        email: u.email.as_deref(),
    }
}

/// Whether `u` is the agent's accountable owner: their subject is the agent's `owner`
/// exactly, or one of their addresses (the verified email, or a subject that is an
/// address) is, in canonical form (`mandate_core::identity`: case-insensitive).
pub(crate) fn is_owner(u: &UserRef, owner: &str) -> bool {
    person(u).is_named(owner)
}

/// Checks optional free text (a comment or reason): at most [`MAX_TEXT_CHARS`]
/// characters, no control characters but newlines and tabs.
pub(crate) fn check_text(field: &str, value: Option<&str>) -> Result<(), ApiError> {
    let ok = |s: &str| {
        s.chars().count() <= MAX_TEXT_CHARS
            && !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
    };
    if value.is_some_and(|s| !ok(s)) {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!(
                "{field} must be at most {MAX_TEXT_CHARS} characters, no control characters but newlines"
            ),
        ));
    }
    Ok(())
}

/// A draft audit event about a mandate of `agent` for `user`, caused by `actor`.
fn event(
    state: &Node,
    kind: &str,
    actor: &Actor,
    agent: &AgentId,
    user: Option<&UserRef>,
    details: Value,
) -> AuditEvent {
    let mut e = state.event(kind);
    e.actor = Some(actor.name());
    e.agent = Some(agent.to_string());
    e.user = user.map(|u| u.sub.clone());
    e.details = Some(details);
    e
}

fn not_active(m: &Mandate, now: Timestamp) -> ApiError {
    ApiError::conflict(
        "mandate_not_active",
        format!("mandate `{}` is {}", m.id, m.status_at(now).as_str()),
    )
}

fn forbidden(msg: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", msg)
}

// ---- request ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewMandate {
    intent: String,
    scope: Vec<Grant>,
    lifetime_secs: Option<u32>,
    justification: Option<String>,
    /// A trusted issuer's token naming the human the agent acts for.
    user_token: Option<String>,
}

/// What policy said about a mandate request: the status it starts in, and why.
struct PolicyFinding {
    status: MandateStatus,
    /// The deciding reason, as the decision path names them.
    reason: Reason,
    policy_ids: Vec<String>,
    errors: Vec<String>,
}

/// Asks the active policies whether `agent` may have `m` (`"mandate:request"` on the
/// mandate as a `Mandate::Mandate`). Fails closed: no policy set, or any error, denies.
fn policy_verdict(snapshot: &Snapshot, agent: &Agent, m: &Mandate) -> PolicyFinding {
    let Some(policies) = &snapshot.policies else {
        return PolicyFinding {
            status: MandateStatus::Denied,
            reason: Reason::NoActivePolicy,
            policy_ids: Vec::new(),
            errors: Vec::new(),
        };
    };
    let attributes = mandate_attributes(m);
    let context = json!({});
    let out = policies.evaluate(&PolicyRequest {
        principal: agent,
        action: "mandate:request",
        resource_type: "Mandate::Mandate",
        resource_id: m.id.as_str(),
        resource_attributes: &attributes,
        context: &context,
        on_behalf: OnBehalf {
            user: m.user.as_ref(),
            mandate: None,
            chain: &[],
            risk: None,
        },
    });
    let reason = policy_reason(&out);
    let status = match reason.verdict() {
        Verdict::Allow => MandateStatus::Active,
        Verdict::ApprovalRequired => MandateStatus::PendingApproval,
        Verdict::Deny => MandateStatus::Denied,
    };
    PolicyFinding {
        status,
        reason,
        policy_ids: out.policy_ids,
        errors: out.errors,
    }
}

/// `POST /v1/mandates`: an agent asks for a mandate. Policy grants it (`active`), holds
/// it for an approver (`pending_approval`) or refuses it (`denied`); each is stored and
/// answered 201. A scope outside the agent's boundary is refused (403) and not stored.
pub(crate) async fn request(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiJson(req): ApiJson<NewMandate>,
) -> Result<Response, ApiError> {
    let Caller::Agent { agent, claims } = caller else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "agents_only",
            "only an agent, with its own access token, may request a mandate",
        ));
    };
    let max = state.config.mandates.max_lifetime_secs;
    let lifetime = req.lifetime_secs.unwrap_or(DEFAULT_LIFETIME_SECS.min(max));
    check_request(
        &req.intent,
        req.justification.as_deref(),
        &req.scope,
        lifetime,
    )
    .map_err(|e| ApiError::bad_request("invalid_field", e.to_string()))?;
    if lifetime > max {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("lifetime_secs must be at most {max}"),
        ));
    }
    if claims.mandate.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "mandate_token_forbidden",
            "a mandate cannot be requested with a mandate token; use the agent's own token",
        ));
    }
    let now = state.clock.now();
    let user = match &req.user_token {
        None => None,
        // The error's text never echoes the token.
        Some(t) => Some(
            state
                .config
                .users
                .verify(t, now)
                .map_err(|e| ApiError::bad_request("invalid_user_token", e.to_string()))?
                .user,
        ),
    };
    let actor = Actor::Agent(agent.id.clone());
    // INVARIANT (narrowing): a mandate never reaches beyond its agent's boundary.
    // The detail names the first requested grant no single boundary grant covers, and
    // the part that fails (`grant_miss`): action, resource or data class.
    let outside = req.scope.iter().enumerate().find_map(|(i, g)| {
        grant_miss(g, &agent.boundary.grants).map(|miss| {
            let why = match miss {
                Miss::Action => "no grant names all its actions",
                Miss::Resource => "no grant naming its actions covers all its resources",
                Miss::DataClass => {
                    "no grant covering its actions and resources covers all its data classes"
                }
            };
            format!(
                "{}: scope[{i}] is not within the agent's boundary: {why}",
                miss.as_str()
            )
        })
    });
    debug_assert_eq!(
        outside.is_none(),
        scope_within(&req.scope, &agent.boundary.grants)
    );
    if let Some(detail) = outside {
        let details = json!({"intent": req.intent, "scope": req.scope,
            "lifetime_secs": lifetime, "reasons": [Reason::OutsideBoundary, detail]});
        let e = event(
            &state,
            "mandate.refused",
            &actor,
            &agent.id,
            user.as_ref(),
            details,
        );
        // Best effort, like a refused token: a flood of refusals must not become a
        // flood of errors.
        if let Err(err) = state.audit.record(e).await {
            tracing::warn!(error = %err, agent = %agent.id, "mandate refusal not recorded");
        }
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            Reason::OutsideBoundary.code(),
            format!("the scope is not within the agent's boundary: {detail}"),
        ));
    }
    let timeout = i64::from(state.config.mandates.approval_timeout_secs);
    let m = state.act("mandate.requested", &actor, move |s| {
        let id =
            MandateId::generate(s.clock.as_ref(), s.random.as_ref()).map_err(ApiError::internal)?;
        let mut m = Mandate {
            user,
            justification: req.justification,
            ..Mandate::requested(
                id,
                agent.id.clone(),
                req.intent,
                req.scope,
                lifetime,
                MandateStatus::Denied,
                now,
            )
        };
        let verdict = policy_verdict(&*s.snapshot()?, &agent, &m);
        m.status = verdict.status;
        m.policy_ids.clone_from(&verdict.policy_ids);
        match verdict.status {
            MandateStatus::PendingApproval => {
                m.approval_deadline = Some(now.plus_secs(timeout));
            }
            status => {
                if status == MandateStatus::Active {
                    m.activated_at = Some(now);
                    m.expires_at = Some(now.plus_secs(i64::from(lifetime)));
                }
                m.decided_by = Some(Actor::System(System::Policy).name());
                m.decided_at = Some(now);
            }
        }
        s.store().insert_mandate(&m)?;
        s.mandates_changed();
        // Announced even if the audit record fails: the request stands either way.
        if m.status == MandateStatus::PendingApproval
            && let Some(hook) = &s.config.mandates.webhook
        {
            let agent = agent_summary(s.snapshot().ok().as_deref(), &m.agent);
            s.send_webhook(
                hook,
                now.secs(),
                json!({"type": "mandate.pending_approval", "mandate": view(&m, now), "agent": agent}),
            );
        }
        let details = json!({
            "mandate": m.id,
            "status": m.status,
            "intent": m.intent,
            "justification": m.justification,
            "scope": m.scope,
            "lifetime_secs": m.lifetime_secs,
            "policy_ids": m.policy_ids,
            "reasons": [verdict.reason],
            "errors": verdict.errors,
        });
        let rec = Recorded::mandate(&m, details)
            .decided(m.policy_ids.clone(), vec![verdict.reason.code().to_owned()]);
        Ok((m, rec))
    })
    .await?;
    tracing::info!(mandate = %m.id, agent = %m.agent, status = m.status.as_str(), "mandate requested");
    Ok((StatusCode::CREATED, Json(view(&m, now))).into_response())
}

// ---- read ----

fn bad_query(m: String) -> ApiError {
    ApiError::bad_request("invalid_query", m)
}

/// Parses `limit` (1..=[`MAX_PAGE`]).
pub(crate) fn page_limit(v: &str) -> Result<u32, ApiError> {
    v.parse()
        .ok()
        .filter(|l| (1..=MAX_PAGE).contains(l))
        .ok_or_else(|| bad_query(format!("limit must be 1..={MAX_PAGE}")))
}

/// Parses a `cursor` (a mandate id).
pub(crate) fn page_cursor(v: &str) -> Result<MandateId, ApiError> {
    MandateId::parse(v).map_err(|e| bad_query(e.to_string()))
}

/// The cursor after a page: the last id, when the page is full.
pub(crate) fn next_cursor(page: &[Mandate], limit: u32) -> Option<String> {
    (page.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| page.last().map(|m| m.id.to_string()))
        .flatten()
}

/// `GET /v1/mandates?agent=&status=&user=&cursor=&limit=`: admins and approvers see
/// every mandate, an agent its own, a user those acting for them. A filter naming
/// someone else's finds nothing. `status` filters on the stored status (a lapsed one
/// is written by the sweeper within a second or so).
pub(crate) async fn list(
    State(state): State<Arc<Node>>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let mut filter = MandateFilter::default();
    let mut limit = DEFAULT_PAGE;
    let mut cursor = None;
    for (k, v) in query(q, &["agent", "status", "user", "cursor", "limit"])? {
        match k.as_str() {
            "agent" => {
                filter.agent = Some(AgentId::parse(&v).map_err(|e| bad_query(e.to_string()))?);
            }
            "status" => {
                filter.status =
                    Some(MandateStatus::parse(&v).ok_or_else(|| {
                        bad_query(format!("unknown status `{}`", v.escape_debug()))
                    })?);
            }
            "user" => filter.user_sub = Some(v),
            "cursor" => cursor = Some(page_cursor(&v)?),
            _ => limit = page_limit(&v)?,
        }
    }
    let empty = || Json(json!({"items": [], "next_cursor": null}));
    // Only a user's own mandates: same subject (the store filter) and same issuer.
    let mut issuer = None;
    match &caller {
        Caller::Admin(_) => {}
        Caller::User(_) if caller.is_approver(&state) => {}
        Caller::Agent { agent, .. } => {
            if filter.agent.as_ref().is_some_and(|a| *a != agent.id) {
                return Ok(empty());
            }
            filter.agent = Some(agent.id.clone());
        }
        Caller::User(u) => {
            if filter.user_sub.as_ref().is_some_and(|s| *s != u.user.sub) {
                return Ok(empty());
            }
            filter.user_sub = Some(u.user.sub.clone());
            issuer = Some(u.user.issuer.clone());
        }
    }
    let (page, now) = crate::blocking(&state, move |s| {
        s.store()
            .list_mandates(&filter, cursor.as_ref(), limit)
            .map(|p| (p, s.clock.now()))
    })
    .await??;
    let next = next_cursor(&page, limit);
    let items: Vec<Value> = page
        .iter()
        .filter(|m| {
            issuer
                .as_ref()
                .is_none_or(|i| m.user.as_ref().is_some_and(|u| u.issuer == *i))
        })
        .map(|m| view(m, now))
        .collect();
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

async fn load(state: &Arc<Node>, id: &MandateId) -> Result<Mandate, ApiError> {
    let key = id.clone();
    crate::blocking(state, move |s| s.store().get_mandate(&key))
        .await??
        .ok_or_else(|| unknown(id.as_str()))
}

/// `GET /v1/mandates/{id}?wait=`: one mandate. With `wait` (seconds, at most 60) and
/// the mandate pending, the answer waits until it is decided, its approval deadline
/// passes or `wait` runs out, whichever comes first (CIBA-style polling).
pub(crate) async fn show(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let mut wait = 0;
    for (_, v) in query(q, &["wait"])? {
        wait = v
            .parse()
            .ok()
            .filter(|w| *w <= MAX_WAIT_SECS)
            .ok_or_else(|| bad_query(format!("wait must be 0..={MAX_WAIT_SECS} seconds")))?;
    }
    let id = mandate_id(&id)?;
    // Subscribed before the first read, so a change after it wakes the wait below.
    let mut changes = state.mandate_changes();
    let mut m = load(&state, &id).await?;
    if !may_read(&caller, &state, &m) {
        return Err(unknown(id.as_str()));
    }
    let wait_over = tokio::time::sleep(Duration::from_secs(wait));
    tokio::pin!(wait_over);
    let mut finished = wait == 0;
    loop {
        let now = state.clock.now();
        let to_deadline = m
            .approval_deadline
            .map_or(0, |d| d.secs().saturating_sub(now.secs()));
        if finished || m.status_at(now) != MandateStatus::PendingApproval || to_deadline <= 0 {
            return Ok(Json(view(&m, now)));
        }
        tokio::select! {
            () = &mut wait_over => finished = true,
            changed = tokio::time::timeout(
                Duration::from_secs(to_deadline.unsigned_abs()),
                changes.changed(),
            ) => {
                // The sender lives as long as the state; if it is gone, answer now.
                if matches!(changed, Ok(Err(_))) {
                    finished = true;
                }
            }
        }
        m = load(&state, &id).await?;
    }
}

// ---- complete, revoke ----

/// `POST /v1/mandates/{id}/complete`: the agent says the task is done; the mandate stops
/// granting anything now.
pub(crate) async fn complete(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id = mandate_id(&id)?;
    let actor = caller.actor();
    let by = actor.clone();
    let (m, now) = state
        .act("mandate.completed", &actor, move |s| {
            let now = s.clock.now();
            let m = s.store().modify_mandate(&id, |m| {
                match &caller {
                    Caller::Agent { agent, .. } if agent.id == m.agent => {}
                    c if may_read(c, s, m) => {
                        return Err(forbidden("only the mandate's agent may complete it"));
                    }
                    _ => return Err(unknown(id.as_str())),
                }
                if m.status_at(now) != MandateStatus::Active {
                    return Err(not_active(m, now));
                }
                m.status = MandateStatus::Completed;
                m.ended_at = Some(now);
                m.ended_by = Some(by.name());
                Ok(())
            })?;
            s.mandates_changed();
            let details = json!({"mandate": m.id, "status": m.status, "intent": m.intent});
            let rec = Recorded::mandate(&m, details);
            Ok(((m, now), rec))
        })
        .await?;
    tracing::info!(mandate = %m.id, %actor, "mandate completed");
    Ok(Json(view(&m, now)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Revoke {
    reason: Option<String>,
}

/// `POST /v1/mandates/{id}/revoke`: an admin (write role) or the agent's owner ends a
/// pending or active mandate now.
pub(crate) async fn revoke(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<Revoke>,
) -> Result<Json<Value>, ApiError> {
    let reason = body.and_then(|b| b.reason);
    check_text("reason", reason.as_deref())?;
    let id = mandate_id(&id)?;
    let actor = caller.actor();
    let by = actor.clone();
    let (m, now) = state
        .act("mandate.revoked", &actor, move |s| {
            let now = s.clock.now();
            // The owner from the store, in the same transaction: revoking is a human act
            // that keeps working while decisions are held (a stale snapshot).
            let (m, was) = acts::revoke_mandate(&s.store(), &id, &by, now, |m, owner| {
                let allowed = match &caller {
                    Caller::Admin(t) => t.role.can_write(),
                    Caller::User(u) => owner.is_some_and(|o| is_owner(&u.user, o)),
                    Caller::Agent { .. } => false,
                };
                if allowed {
                    Ok(())
                } else if may_read(&caller, s, m) {
                    Err(acts::ActError::NotAllowed(
                        "only an admin token or the agent's owner may revoke a mandate",
                    ))
                } else {
                    Err(acts::ActError::UnknownMandate(m.id.clone()))
                }
            })?;
            s.mandates_changed();
            let details = json!({"mandate": m.id, "status": m.status, "previous_status": was,
            "intent": m.intent, "reason": reason});
            let rec = Recorded::mandate(&m, details);
            Ok(((m, now), rec))
        })
        .await?;
    tracing::info!(mandate = %m.id, %actor, "mandate revoked");
    Ok(Json(view(&m, now)))
}
