//! The mandate use cases, whatever edge asked: an agent asks for a task-scoped grant,
//! which policy grants, refuses or holds for a human; the agent, its user, admins and
//! approvers read it (the agent long-polls while it waits); the agent completes it; an
//! admin or the agent's owner revokes it. Each is one function returning a
//! [`MandateError`]; the lapsed ones are written by the sweeper (jobs.rs), the human
//! decisions live in approvals.rs.
//!
//! Who may see a mandate that they may not change is told [`MandateError::NotAllowed`];
//! who may not even see it is told [`MandateError::Unknown`], so its existence is not
//! revealed.

use std::sync::Arc;
use std::time::Duration;

use mandate_audit::event::AuditEvent;
use mandate_core::admin::{AdminToken, Role};
use mandate_core::agent::{Agent, AgentStatus, Grant, ValidationError};
use mandate_core::id::{AgentId, MandateId};
use mandate_core::identity::Person;
use mandate_core::mandate::{
    Mandate, MandateStatus, Miss, UserRef, check_request, grant_miss, scope_within,
};
use mandate_core::random::RandomError;
use mandate_core::time::Timestamp;
use mandate_engine::decide::{Reason, Snapshot, Verdict, policy_reason};
use mandate_policy::{OnBehalf, PolicyRequest, mandate_attributes};
use mandate_store::prelude::*;
use mandate_store::{MandateFilter, StoreError};
use mandate_token::access::AccessClaims;
use mandate_token::user::{UserTokenError, VerifiedUser};
use serde_json::{Value, json};

use crate::Node;
use crate::actor::{Actor, System};
use crate::acts::{self, ActError};
use crate::error::ServiceError;
use crate::write_path::Recorded;

/// The lifetime of a mandate requested without one (capped by the configured maximum).
pub const DEFAULT_LIFETIME_SECS: u32 = 600;

/// Why a mandate use case did not complete.
#[derive(Debug, thiserror::Error)]
pub enum MandateError {
    /// Only an agent may request a mandate.
    #[error("only an agent, with its own access token, may request a mandate")]
    AgentsOnly,
    /// A mandate was requested with a mandate token rather than the agent's own.
    #[error("a mandate cannot be requested with a mandate token; use the agent's own token")]
    MandateToken,
    /// The request's text, scope or lifetime breaks a rule of `mandate_core`.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The lifetime asked for is longer than the configured maximum.
    #[error("lifetime_secs must be at most {max}")]
    LifetimeTooLong {
        /// The configured maximum.
        max: u32,
    },
    /// The user token naming the human does not verify (the message never echoes it).
    #[error(transparent)]
    UserToken(UserTokenError),
    /// The scope is not within the agent's boundary (`INVARIANT (narrowing)`); nothing
    /// was stored, the refusal was recorded.
    #[error("the scope is not within the agent's boundary: {detail}")]
    OutsideBoundary {
        /// The first grant outside it, and which part fails.
        detail: String,
    },
    /// No such mandate, or one this caller may not know of.
    #[error("unknown mandate `{}`", .0.as_str().escape_debug())]
    Unknown(MandateId),
    /// The caller may see the mandate but not do this (the message says who may).
    #[error("{0}")]
    NotAllowed(&'static str),
    /// The mandate is not active (its status at the time of the act).
    #[error("mandate `{id}` is {}", status.as_str())]
    NotActive {
        /// The mandate.
        id: MandateId,
        /// Its status then.
        status: MandateStatus,
    },
    /// No mandate id could be made.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// A domain act refused (revocation).
    #[error(transparent)]
    Act(#[from] ActError),
    /// The node failed (the audit log, a stale snapshot, a blocking task).
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who asks, as the mandate use cases tell callers apart. Each edge authenticates its
/// caller (as fully as on its own endpoints) and says which of these it is.
#[derive(Debug)]
pub enum Party {
    /// An admin token (any role but `service`).
    Admin(AdminToken),
    /// An agent, with a valid access token of its own (its agent active).
    Agent {
        /// The agent as the snapshot holds it.
        agent: Box<Agent>,
        /// The token's claims.
        claims: Box<AccessClaims>,
    },
    /// A human, with a verified user token.
    User(Box<VerifiedUser>),
}

impl Party {
    /// The audit `actor` for this party: an admin token id, the agent id, or
    /// `user:<sub>`.
    pub fn actor(&self) -> Actor {
        match self {
            Self::Admin(t) => Actor::Admin(t.id.clone()),
            Self::Agent { agent, .. } => Actor::Agent(agent.id.clone()),
            Self::User(u) => Actor::User(u.user.sub.clone()),
        }
    }

    /// Whether this party may approve or deny requests: an admin or approver token, or
    /// a user in the configured approver group.
    pub fn is_approver(&self, node: &Node) -> bool {
        match self {
            Self::Admin(t) => matches!(t.role, Role::Admin | Role::Approver),
            Self::Agent { .. } => false,
            Self::User(u) => node
                .config
                .mandates
                .approver_group
                .as_ref()
                .is_some_and(|g| u.user.groups.iter().any(|x| x == g)),
        }
    }

    /// Whether this party may see `m`: admins of any role, approvers, the mandate's
    /// agent and the user it acts for.
    pub fn may_read(&self, node: &Node, m: &Mandate) -> bool {
        match self {
            Self::Admin(_) => true,
            Self::Agent { agent, .. } => agent.id == m.agent,
            Self::User(u) => is_mandate_user(&u.user, m) || self.is_approver(node),
        }
    }
}

/// A mandate and the time it was read or changed at: what [`view`] shows.
#[derive(Debug)]
pub struct AsOf {
    /// The stored record.
    pub mandate: Mandate,
    /// When it was read or changed.
    pub now: Timestamp,
}

impl AsOf {
    /// The mandate as readers see it ([`view`]).
    pub fn view(&self) -> Value {
        view(&self.mandate, self.now)
    }
}

/// A mandate as readers (the API, the approval webhook) see it: the stored record, with
/// `status` as of `now` (a request past its deadline shows `denied`, a mandate past its
/// expiry `expired`, even before the sweeper has written that).
pub fn view(m: &Mandate, now: Timestamp) -> Value {
    let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.insert("status".to_owned(), json!(m.status_at(now)));
    }
    v
}

/// `{"id", "name", "owner"}` of the agent holding a mandate, for approvers.
/// While decisions are held (`snapshot` is `None`, see [`Node::refresh`]) only the id.
pub fn agent_summary(snapshot: Option<&Snapshot>, id: &AgentId) -> Value {
    match snapshot.and_then(|s| s.agents.get(id)) {
        Some(a) => json!({"id": a.id, "name": a.name, "owner": a.owner}),
        None => json!({"id": id, "name": null, "owner": null}),
    }
}

/// The cursor after a page: the last id, when the page is full.
pub fn next_cursor(page: &[Mandate], limit: u32) -> Option<String> {
    (page.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| page.last().map(|m| m.id.to_string()))
        .flatten()
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

/// A draft audit event about a mandate of `agent` for `user`, caused by `actor`.
fn event(
    node: &Node,
    kind: &str,
    actor: &Actor,
    agent: &AgentId,
    user: Option<&UserRef>,
    details: Value,
) -> AuditEvent {
    let mut e = node.event(kind);
    e.actor = Some(actor.name());
    e.agent = Some(agent.to_string());
    e.user = user.map(|u| u.sub.clone());
    e.details = Some(details);
    e
}

// ---- request ----

/// A mandate request as the agent sent it. Its `Debug` never shows the user token.
pub struct MandateRequest {
    /// What the agent says it will do.
    pub intent: String,
    /// What it asks to be allowed.
    pub scope: Vec<Grant>,
    /// How long, once active (default [`DEFAULT_LIFETIME_SECS`], capped by the
    /// configured maximum).
    pub lifetime_secs: Option<u32>,
    /// Why, in the agent's words.
    pub justification: Option<String>,
    /// A trusted issuer's token naming the human the agent acts for.
    pub user_token: Option<String>,
}

impl std::fmt::Debug for MandateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MandateRequest")
            .field("intent", &self.intent)
            .field("scope", &self.scope)
            .field("lifetime_secs", &self.lifetime_secs)
            .field("justification", &self.justification)
            .field("user_token", &self.user_token.as_ref().map(|_| "…"))
            .finish()
    }
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

/// The first requested grant no single boundary grant covers, and the part that fails
/// (`grant_miss`: action, resource or data class), as the refusal names it.
fn outside_boundary(scope: &[Grant], agent: &Agent) -> Option<String> {
    let outside = scope.iter().enumerate().find_map(|(i, g)| {
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
        scope_within(scope, &agent.boundary.grants)
    );
    outside
}

/// An agent asks for a mandate. Policy grants it (`active`), holds it for an approver
/// (`pending_approval`, announced by the mandate webhook) or refuses it (`denied`); each
/// is stored and recorded as `mandate.requested`. A scope outside the agent's boundary
/// is refused ([`MandateError::OutsideBoundary`]), recorded as `mandate.refused` (best
/// effort) and not stored.
pub async fn request(
    node: &Arc<Node>,
    party: Party,
    req: MandateRequest,
) -> Result<AsOf, MandateError> {
    let Party::Agent { agent, claims } = party else {
        return Err(MandateError::AgentsOnly);
    };
    let max = node.config.mandates.max_lifetime_secs;
    let lifetime = req.lifetime_secs.unwrap_or(DEFAULT_LIFETIME_SECS.min(max));
    check_request(
        &req.intent,
        req.justification.as_deref(),
        &req.scope,
        lifetime,
    )?;
    if lifetime > max {
        return Err(MandateError::LifetimeTooLong { max });
    }
    if claims.mandate.is_some() {
        return Err(MandateError::MandateToken);
    }
    let now = node.clock.now();
    let user = match &req.user_token {
        None => None,
        // The error's text never echoes the token.
        Some(t) => Some(
            node.verify_user_token(t, now)
                .map_err(MandateError::UserToken)?
                .user,
        ),
    };
    let actor = Actor::Agent(agent.id.clone());
    // INVARIANT (narrowing): a mandate never reaches beyond its agent's boundary.
    // The detail names the first requested grant no single boundary grant covers, and
    // the part that fails (`grant_miss`): action, resource or data class.
    if let Some(detail) = outside_boundary(&req.scope, &agent) {
        let details = json!({"intent": req.intent, "scope": req.scope,
            "lifetime_secs": lifetime, "reasons": [Reason::OutsideBoundary, detail]});
        let e = event(
            node,
            "mandate.refused",
            &actor,
            &agent.id,
            user.as_ref(),
            details,
        );
        // Best effort, like a refused token: a flood of refusals must not become a
        // flood of errors.
        if let Err(err) = node.audit.record(e).await {
            tracing::warn!(error = %err, agent = %agent.id, "mandate refusal not recorded");
        }
        return Err(MandateError::OutsideBoundary { detail });
    }
    let timeout = i64::from(node.config.mandates.approval_timeout_secs);
    let m = node
        .perform("mandate.requested", &actor, move |s| {
            let id = MandateId::generate(s.clock.as_ref(), s.random.as_ref())?;
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
            let snapshot = s.snapshot().map_err(ServiceError::from)?;
            // INVARIANT (decided on the snapshot of now): the agent as it is now, not as
            // it was when the caller was authenticated (before the request body arrived,
            // which may take up to the body deadline): one suspended, contained or
            // narrowed meanwhile gets no mandate beyond what it may have now.
            let agent = match snapshot.agents.get(&agent.id) {
                Some(now_agent) if now_agent.status == AgentStatus::Active => now_agent,
                _ => return Err(MandateError::NotAllowed("the agent is not active")),
            };
            if let Some(detail) = outside_boundary(&m.scope, agent) {
                return Err(MandateError::OutsideBoundary { detail });
            }
            let verdict = policy_verdict(&snapshot, agent, &m);
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
            Ok::<_, MandateError>((m, rec))
        })
        .await?;
    tracing::info!(mandate = %m.id, agent = %m.agent, status = m.status.as_str(), "mandate requested");
    Ok(AsOf { mandate: m, now })
}

// ---- read ----

/// A page of mandates, in id (creation) order.
#[derive(Debug)]
pub struct Page {
    /// The mandates this party may see, as stored.
    pub mandates: Vec<Mandate>,
    /// Where the next page starts, when this one was full.
    pub next_cursor: Option<String>,
    /// When the page was read (the time [`view`] shows statuses at).
    pub now: Timestamp,
}

/// The mandates matching `filter` after `cursor`, at most `limit`: admins and approvers
/// see every mandate, an agent its own, a user those acting for them (same subject and
/// same issuer). A filter naming someone else's finds nothing. `status` filters on the
/// stored status (a lapsed one is written by the sweeper within a second or so).
pub async fn list(
    node: &Arc<Node>,
    party: &Party,
    mut filter: MandateFilter,
    cursor: Option<MandateId>,
    limit: u32,
) -> Result<Page, MandateError> {
    let empty = |node: &Node| Page {
        mandates: Vec::new(),
        next_cursor: None,
        now: node.clock.now(),
    };
    // Only a user's own mandates: same subject (the store filter) and same issuer.
    let mut issuer = None;
    match party {
        Party::Admin(_) => {}
        Party::User(_) if party.is_approver(node) => {}
        Party::Agent { agent, .. } => {
            if filter.agent.as_ref().is_some_and(|a| *a != agent.id) {
                return Ok(empty(node));
            }
            filter.agent = Some(agent.id.clone());
        }
        Party::User(u) => {
            if filter.user_sub.as_ref().is_some_and(|s| *s != u.user.sub) {
                return Ok(empty(node));
            }
            filter.user_sub = Some(u.user.sub.clone());
            issuer = Some(u.user.issuer.clone());
        }
    }
    let (page, now) = node
        .blocking(move |s| {
            s.store()
                .list_mandates(&filter, cursor.as_ref(), limit)
                .map(|p| (p, s.clock.now()))
        })
        .await
        .map_err(ServiceError::from)??;
    let next_cursor = next_cursor(&page, limit);
    let mandates = page
        .into_iter()
        .filter(|m| {
            issuer
                .as_ref()
                .is_none_or(|i| m.user.as_ref().is_some_and(|u| u.issuer == *i))
        })
        .collect();
    Ok(Page {
        mandates,
        next_cursor,
        now,
    })
}

/// One mandate from the store, or [`MandateError::Unknown`].
async fn load(node: &Arc<Node>, id: &MandateId) -> Result<Mandate, MandateError> {
    let key = id.clone();
    node.blocking(move |s| s.store().get_mandate(&key))
        .await
        .map_err(ServiceError::from)??
        .ok_or_else(|| MandateError::Unknown(id.clone()))
}

/// One mandate, if `party` may see it. With a `wait` and the mandate pending, the answer
/// waits until it is decided, its approval deadline passes or `wait` runs out,
/// whichever comes first (CIBA-style polling).
pub async fn show(
    node: &Arc<Node>,
    party: &Party,
    id: &MandateId,
    wait: Duration,
) -> Result<AsOf, MandateError> {
    // Subscribed before the first read, so a change after it wakes the wait below.
    let mut changes = node.mandate_changes();
    let mut m = load(node, id).await?;
    if !party.may_read(node, &m) {
        return Err(MandateError::Unknown(id.clone()));
    }
    let wait_over = tokio::time::sleep(wait);
    tokio::pin!(wait_over);
    let mut finished = wait.is_zero();
    loop {
        let now = node.clock.now();
        let to_deadline = m
            .approval_deadline
            .map_or(0, |d| d.secs().saturating_sub(now.secs()));
        if finished || m.status_at(now) != MandateStatus::PendingApproval || to_deadline <= 0 {
            return Ok(AsOf { mandate: m, now });
        }
        tokio::select! {
            () = &mut wait_over => finished = true,
            changed = tokio::time::timeout(
                Duration::from_secs(to_deadline.unsigned_abs()),
                changes.changed(),
            ) => {
                // The sender lives as long as the node; if it is gone, answer now.
                if matches!(changed, Ok(Err(_))) {
                    finished = true;
                }
            }
        }
        m = load(node, id).await?;
    }
}

// ---- complete, revoke ----

/// The agent says the task is done: its active mandate becomes `completed` and stops
/// granting anything now (recorded as `mandate.completed`). Only the mandate's agent
/// may; another party that may see it is [`MandateError::NotAllowed`].
pub async fn complete(node: &Arc<Node>, party: Party, id: MandateId) -> Result<AsOf, MandateError> {
    let actor = party.actor();
    let by = actor.clone();
    let asked = id.clone();
    let (m, now) = node
        .perform("mandate.completed", &actor, move |s| {
            let now = s.clock.now();
            let m = s.store().modify_mandate(&id, |m| {
                match &party {
                    Party::Agent { agent, .. } if agent.id == m.agent => {}
                    p if p.may_read(s, m) => {
                        return Err(MandateError::NotAllowed(
                            "only the mandate's agent may complete it",
                        ));
                    }
                    _ => return Err(MandateError::Unknown(id.clone())),
                }
                let status = m.status_at(now);
                if status != MandateStatus::Active {
                    return Err(MandateError::NotActive {
                        id: m.id.clone(),
                        status,
                    });
                }
                m.status = MandateStatus::Completed;
                m.ended_at = Some(now);
                m.ended_by = Some(by.name());
                Ok(())
            })?;
            s.mandates_changed();
            let details = json!({"mandate": m.id, "status": m.status, "intent": m.intent});
            let rec = Recorded::mandate(&m, details);
            Ok::<_, MandateError>(((m, now), rec))
        })
        .await
        .map_err(|e| match e {
            // A missing mandate answers as a hidden one does, so the answer never tells
            // a caller that a mandate it may not see exists.
            MandateError::Store(StoreError::NotFound(_)) => MandateError::Unknown(asked),
            e => e,
        })?;
    tracing::info!(mandate = %m.id, %actor, "mandate completed");
    Ok(AsOf { mandate: m, now })
}

/// An admin (write role) or the agent's owner ends a pending or active mandate now
/// (recorded as `mandate.revoked`, with `reason`). The owner is read from the store in
/// the same transaction as the change ([`acts::revoke_mandate`]).
pub async fn revoke(
    node: &Arc<Node>,
    party: Party,
    id: MandateId,
    reason: Option<String>,
) -> Result<AsOf, MandateError> {
    let actor = party.actor();
    let by = actor.clone();
    let (m, now) = node
        .perform("mandate.revoked", &actor, move |s| {
            let now = s.clock.now();
            // The owner from the store, in the same transaction: revoking is a human act
            // that keeps working while decisions are held (a stale snapshot).
            let (m, was) = acts::revoke_mandate(&s.store(), &id, &by, now, |m, owner| {
                let allowed = match &party {
                    Party::Admin(t) => t.role.can_write(),
                    Party::User(u) => owner.is_some_and(|o| is_owner(&u.user, o)),
                    Party::Agent { .. } => false,
                };
                if allowed {
                    Ok(())
                } else if party.may_read(s, m) {
                    Err(ActError::NotAllowed(
                        "only an admin token or the agent's owner may revoke a mandate",
                    ))
                } else {
                    Err(ActError::UnknownMandate(m.id.clone()))
                }
            })?;
            s.mandates_changed();
            let details = json!({"mandate": m.id, "status": m.status, "previous_status": was,
            "intent": m.intent, "reason": reason});
            let rec = Recorded::mandate(&m, details);
            Ok::<_, MandateError>(((m, now), rec))
        })
        .await?;
    tracing::info!(mandate = %m.id, %actor, "mandate revoked");
    Ok(AsOf { mandate: m, now })
}
