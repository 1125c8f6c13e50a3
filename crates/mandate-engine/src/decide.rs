//! The decision function: a pure function of an immutable [`Snapshot`] and a request.
//! It does no IO, reads no clock (the time is a parameter), and every gate fails closed.
//!
//! Gates, in order: token valid (signature, type, issuer, window, not revoked, after the
//! agent's cutoff — and the same for every token it was exchanged from) → agent known
//! and active (and every delegating agent) → mandate active → action inside the token's
//! scope → inside the boundary (of every agent of the chain) → inside the mandate's
//! scope → Cedar policies (default deny, forbid wins, any error denies; `@approval`
//! forbids alone give `approval_required`; `context.risk` is the anomaly detector's
//! score) → risk gate (an open step-up hold turns an allow into `approval_required`)
//! → allow.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mandate_core::agent::{Agent, AgentStatus, Boundary, glob_match};
pub use mandate_core::decision::{Reason, Verdict};
use mandate_core::id::{AgentId, MandateId};
use mandate_core::mandate::Mandate;
use mandate_core::mandate::{Miss, grants_allow, grants_miss};
use mandate_core::risk::Risk;
use mandate_core::time::Timestamp;
use mandate_policy::{CompiledPolicies, OnBehalf, PolicyOutcome, PolicyRequest};
use mandate_token::access::{self, AccessClaims, Audience};
use mandate_token::keys::KeyRing;
use serde_json::Value;

use crate::agent_index::AgentIndex;

/// Everything a decision needs, read from the store at one moment and never changed.
///
/// INVARIANT (snapshot): a snapshot is rebuilt from the store after every change that
/// can alter a decision (agents, boundaries, policy activation, revocations, keys) and
/// swapped in before the change's response is sent, so the next decision sees it.
pub struct Snapshot {
    /// Agents by id; an agent that did not change is shared with the previous snapshot.
    pub agents: AgentIndex,
    /// The active policy set: `None` when no version is active (everything is denied).
    pub policies: Option<Arc<CompiledPolicies>>,
    /// Which version that is.
    pub policy_version: Option<i64>,
    /// Keys that verify access tokens.
    pub ring: Arc<KeyRing>,
    /// The issuer tokens must name.
    pub issuer: String,
    /// The audiences that name Mandate itself (the issuer and `token.default_audience`):
    /// Mandate's own endpoints accept only tokens issued for one of them.
    pub audiences: Vec<String>,
    /// `token.max_lifetime_secs`: no token living longer verifies.
    pub max_token_lifetime_secs: i64,
    /// Tokens with `iat` at or before an agent's cutoff are dead.
    pub cutoffs: HashMap<AgentId, Timestamp>,
    /// Users whose sessions their IdP revoked (a Shared Signal), by `(issuer, sub)`: their
    /// user tokens issued at or before it are refused ([`Snapshot::user_token_revoked`]).
    pub user_cutoffs: HashMap<(String, String), Timestamp>,
    /// Revoked token ids (not yet expired).
    pub revoked: HashSet<String>,
    /// Mandates active when the snapshot was taken (a decision checks the expiry
    /// again); revoking or completing one removes it.
    pub mandates: HashMap<MandateId, Arc<Mandate>>,
}

impl Snapshot {
    /// Whether a user token of `issuer`/`sub` issued at `issued_at` was ended by a
    /// revocation of the user's sessions: issued at or before their cutoff, or (with a
    /// cutoff) saying nothing of when it was issued.
    ///
    /// INVARIANT (a revoked session stays revoked): after a Shared Signal ends a person's
    /// mandates, a user token of theirs from before it cannot start a new one.
    pub fn user_token_revoked(
        &self,
        issuer: &str,
        sub: &str,
        issued_at: Option<Timestamp>,
    ) -> bool {
        match self.user_cutoffs.get(&(issuer.to_owned(), sub.to_owned())) {
            None => false,
            Some(cut) => issued_at.is_none_or(|t| t.secs() <= cut.secs()),
        }
    }

    /// What every access token must satisfy, wherever it is used.
    pub fn expected(&self) -> access::Expected<'_> {
        access::Expected {
            issuer: &self.issuer,
            max_lifetime_secs: self.max_token_lifetime_secs,
        }
    }

    /// Whether `claims` were issued for Mandate itself (RFC 8725 §3.9, RFC 9068 §4).
    ///
    /// INVARIANT (audience): an agent token reaches Mandate's own endpoints
    /// (`/v1/authorize`, `/v1/mandates*`, `/v1/approvals*`, the `actor_token` of a
    /// token exchange) only if its `aud` names Mandate; a token issued for a gateway
    /// route or any other resource is refused there, so whoever receives it cannot act
    /// as the agent at Mandate.
    ///
    /// Every audience the token names must be Mandate's: a token for Mandate *and* an
    /// API (which Mandate no longer issues, `granted_audience` in mandate-service tokens.rs) is in that
    /// API's hands too, so it is refused here.
    pub fn is_for_mandate(&self, claims: &AccessClaims) -> bool {
        match &claims.aud {
            Audience::One(a) => self.audiences.contains(a),
            Audience::Many(v) => !v.is_empty() && v.iter().all(|a| self.audiences.contains(a)),
        }
    }
}

/// Which audience a token must be issued for where it is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAudience<'a> {
    /// Mandate's own endpoints: one of [`Snapshot::audiences`].
    Mandate,
    /// An enforcement point's resource (a gateway route, an API behind a PEP).
    Resource(&'a str),
}

impl TokenAudience<'_> {
    /// Whether `claims` were issued for this audience in `s`.
    pub fn accepts(&self, s: &Snapshot, claims: &AccessClaims) -> bool {
        match self {
            Self::Mandate => s.is_for_mandate(claims),
            Self::Resource(r) => claims.aud.contains(r),
        }
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("agents", &self.agents.len())
            .field("policy_version", &self.policy_version)
            .finish_non_exhaustive()
    }
}

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub enum Principal<'a> {
    /// The agent's access token.
    Token(&'a str),
    /// An agent named by a trusted enforcement point (service token).
    Agent(&'a str),
    /// The claims of an access token whose signature this node already verified (the
    /// verified-token cache); expiry, issuer and revocation are still checked here.
    Verified(&'a AccessClaims),
}

/// The resource acted on.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// Fully qualified entity type, e.g. `Crm::Contact`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Its id.
    pub id: String,
    /// Attributes for policies (Cedar JSON entity value rules).
    #[serde(default)]
    pub attributes: Value,
}

impl Resource {
    /// The string boundary resource patterns match: `{type}/{id}`, e.g. `Crm::Contact/c1`.
    pub fn boundary_name(&self) -> String {
        format!("{}/{}", self.type_name, self.id)
    }
}

/// One question.
#[derive(Debug, Clone, Copy)]
pub struct DecisionRequest<'a> {
    /// Who.
    pub principal: Principal<'a>,
    /// What action (`crm:read`).
    pub action: &'a str,
    /// On what.
    pub resource: &'a Resource,
    /// In what context (a JSON object; `data_class` is read by the boundary gate).
    pub context: &'a Value,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// The deciding reason; the verdict follows from it (`INVARIANT (verdict)`).
    reason: Reason,
    /// Details for humans after the reason: the token verifier's message after
    /// `invalid_token`, Cedar's errors after `policy_error`, the part that failed after
    /// `outside_boundary`, `allowed_by_policy` after `step_up_required`.
    pub details: Vec<String>,
    /// Policies that decided.
    pub policy_ids: Vec<String>,
    /// The agent the request was resolved to, when it was.
    pub agent: Option<AgentId>,
    /// The token's `jti`, when a token was presented and verified.
    pub token_id: Option<String>,
    /// The human the agent acted for (their `sub`), for a mandate token with a user.
    pub user: Option<String>,
    /// The mandate the token is bound to.
    pub mandate: Option<String>,
    /// The agents that delegated to the agent, nearest first.
    pub chain: Vec<String>,
    /// What the anomaly detector made of the request (score 0 when it was not asked).
    pub risk: Risk,
}

impl Decision {
    /// A decision for `reason`, with no details, policies or principal yet.
    ///
    /// INVARIANT (verdict): a decision stores only its reason, and its verdict is
    /// [`Reason::verdict`] of it, so an allow always has reason `allowed_by_policy`, an
    /// `approval_required` one `approval_required` or `step_up_required`, and no
    /// decision is both allowed and held for a human.
    pub fn new(reason: Reason) -> Self {
        Self {
            reason,
            details: Vec::new(),
            policy_ids: Vec::new(),
            agent: None,
            token_id: None,
            user: None,
            mandate: None,
            chain: Vec::new(),
            risk: Risk::default(),
        }
    }

    /// Allow, deny or approval required.
    pub fn verdict(&self) -> Verdict {
        self.reason.verdict()
    }

    /// The deciding reason.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// Allowed?
    pub fn is_allowed(&self) -> bool {
        self.verdict() == Verdict::Allow
    }

    /// The reasons as on the wire and in the audit log: the code, then the details.
    pub fn reasons(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(1 + self.details.len());
        v.push(self.reason.code().to_owned());
        v.extend(self.details.iter().cloned());
        v
    }

    /// The risk gate: an allow becomes `step_up_required`, the allow's code its first
    /// detail. Anything else is left as it is.
    fn step_up(&mut self) {
        if self.is_allowed() {
            self.details.insert(0, self.reason.code().to_owned());
            self.reason = Reason::StepUpRequired;
        }
    }

    fn refused(r: Refusal, token_id: Option<String>) -> Self {
        let mut d = Self::deny(r.reason, r.agent, token_id);
        d.details.extend(r.detail);
        d
    }

    /// A token that verified but was not issued for where it is presented: denied as
    /// `invalid_token`, naming the agent and token so the record says who tried.
    pub fn wrong_audience(claims: &AccessClaims) -> Self {
        let mut d = Self::deny(
            Reason::InvalidToken,
            AgentId::parse(&claims.client_id).ok(),
            Some(claims.jti.clone()),
        );
        d.details
            .push("the token is not issued for this audience".to_owned());
        d
    }

    /// A sender-constrained token (`cnf`) whose proof of possession no edge checked:
    /// denied as `invalid_token`. Only the edge sees the proof; a bound token that
    /// reaches the decision unchecked (it verified only on the decision's own second
    /// try) is refused, never decided as if it were a bearer token.
    pub fn sender_unproven(claims: &AccessClaims) -> Self {
        let mut d = Self::deny(
            Reason::InvalidToken,
            AgentId::parse(&claims.client_id).ok(),
            Some(claims.jti.clone()),
        );
        d.details
            .push("the token is sender-constrained and its proof was not checked".to_owned());
        d
    }

    fn deny(reason: Reason, agent: Option<AgentId>, token_id: Option<String>) -> Self {
        Self {
            agent,
            token_id,
            ..Self::new(reason)
        }
    }
}

/// Whether the boundary allows `action` on `resource` (and, when the context names a
/// `data_class`, that data class). See `INVARIANT (ceiling)` in `mandate_core::mandate`.
pub fn inside_boundary(
    b: &Boundary,
    action: &str,
    resource: &str,
    data_class: Option<&str>,
) -> bool {
    grants_allow(&b.grants, action, resource, data_class)
}

/// The detail of an `outside_boundary` refusal: the part no grant covers first (`action`,
/// `resource`, `data_class` — stable, so a reader can match on it), then in words what
/// was asked and whose boundary refused it (a delegating agent's, when not the asker's).
fn boundary_miss(
    miss: Miss,
    whose: Option<&AgentId>,
    action: &str,
    resource: &str,
    data_class: Option<&str>,
) -> String {
    let boundary = match whose {
        Some(a) => format!("the boundary of delegating agent {a}"),
        None => "the agent's boundary".to_owned(),
    };
    match miss {
        Miss::Action => format!("action: no grant of {boundary} names action {action:?}"),
        Miss::Resource => format!(
            "resource: no grant of {boundary} for action {action:?} covers resource {resource:?}"
        ),
        Miss::DataClass => format!(
            "data_class: no grant of {boundary} for action {action:?} on {resource:?} covers \
             data class {:?}",
            data_class.unwrap_or_default()
        ),
    }
}

/// Who a valid token acts for: the agent holding it, the agents that delegated to it
/// and the mandate it is bound to.
#[derive(Debug, Clone)]
pub struct Holder<'s> {
    /// The agent presenting the token (`client_id`, the current actor).
    pub agent: &'s Agent,
    /// The agents that delegated to it, nearest first (empty unless delegated).
    pub chain: Vec<&'s Agent>,
    /// The mandate the token is bound to.
    pub mandate: Option<&'s Arc<Mandate>>,
}

/// Why a token cannot act: a stable reason code and, sometimes, a detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `invalid_token`, `token_revoked`, `unknown_agent`, `agent_suspended`,
    /// `agent_decommissioned`, `outside_boundary` (a delegate no longer listed),
    /// `mandate_inactive`.
    pub reason: Reason,
    /// Which agent it concerns, when known.
    pub agent: Option<AgentId>,
    /// More, for the log.
    pub detail: Option<String>,
}

impl Refusal {
    /// The anomaly detector suspended `agent` (in force before the store says so).
    pub fn suspended_by_detector(agent: &AgentId) -> Self {
        Self::new(Reason::AgentSuspended, Some(agent.clone()))
            .detail(format!("{agent} was suspended by the anomaly detector"))
    }

    /// A token that verified but was not issued for where it is presented
    /// (`invalid_token`, as [`Decision::wrong_audience`]).
    pub fn wrong_audience(agent: AgentId) -> Self {
        Self::new(Reason::InvalidToken, Some(agent))
            .detail("the token is not issued for this audience")
    }

    fn new(reason: Reason, agent: Option<AgentId>) -> Self {
        Self {
            reason,
            agent,
            detail: None,
        }
    }

    fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}

fn usable<'s>(s: &'s Snapshot, id: &AgentId) -> Result<&'s Agent, Refusal> {
    let Some(agent) = s.agents.get(id) else {
        return Err(Refusal::new(Reason::UnknownAgent, Some(id.clone())));
    };
    match agent.status {
        AgentStatus::Active => Ok(agent),
        AgentStatus::Suspended => Err(Refusal::new(Reason::AgentSuspended, Some(id.clone()))),
        AgentStatus::Decommissioned => {
            Err(Refusal::new(Reason::AgentDecommissioned, Some(id.clone())))
        }
    }
}

/// Checks everything about an access token whose signature verified, except what it
/// is used for: issuer and time window, revocation (its own `jti` and its agent's
/// cutoff, and the same for every token it was exchanged from), every agent of its
/// `act` chain known and active, each delegating agent's boundary still naming the
/// agent it delegated to among its `delegates`, and its mandate active and held by the
/// chain's first agent for the token's subject.
///
/// INVARIANT (chain): a delegated token acts only while every link above it — each
/// parent token, each delegating agent (active, still listing its delegate) and the
/// mandate — is still good, so revoking or suspending any of them, or taking the
/// delegate off the list, stops it on the next request.
pub fn holder<'s>(
    s: &'s Snapshot,
    c: &AccessClaims,
    now: Timestamp,
) -> Result<Holder<'s>, Refusal> {
    if c.iss != s.issuer || now.secs() >= c.exp || now.secs() < c.nbf {
        return Err(Refusal::new(Reason::InvalidToken, None)
            .detail("expired, not yet valid or wrong issuer"));
    }
    let Ok(id) = AgentId::parse(&c.client_id) else {
        return Err(Refusal::new(Reason::InvalidToken, None));
    };
    let cut = |agent: &AgentId, iat: i64| s.cutoffs.get(agent).is_some_and(|t| iat <= t.secs());
    if cut(&id, c.iat) || s.revoked.contains(&c.jti) {
        return Err(Refusal::new(Reason::TokenRevoked, Some(id)));
    }
    let actors = c.actors();
    let malformed = || Refusal::new(Reason::InvalidToken, Some(id.clone()));
    // A plain client-credentials token: the agent is its own subject.
    if actors.is_empty() {
        if c.mandate.is_some() || !c.parents.is_empty() || c.sub != c.client_id {
            return Err(malformed());
        }
        return Ok(Holder {
            agent: usable(s, &id)?,
            chain: Vec::new(),
            mandate: None,
        });
    }
    // A mandate token: act.sub is the holder, parents line up with the rest of the chain.
    if actors.first() != Some(&c.client_id.as_str()) || c.parents.len() + 1 != actors.len() {
        return Err(malformed());
    }
    let Some(mandate_id) = c.mandate.as_deref().and_then(|m| MandateId::parse(m).ok()) else {
        return Err(malformed());
    };
    let mut chain_ids = Vec::with_capacity(actors.len() - 1);
    for a in actors.iter().skip(1) {
        chain_ids.push(AgentId::parse(a).map_err(|_| malformed())?);
    }
    for (p, agent) in c.parents.iter().zip(&chain_ids) {
        if s.revoked.contains(&p.jti) || cut(agent, p.iat) {
            return Err(Refusal::new(Reason::TokenRevoked, Some(id.clone()))
                .detail(format!("the token delegated by {agent} was revoked")));
        }
    }
    let agent = usable(s, &id)?;
    let mut chain = Vec::with_capacity(chain_ids.len());
    for a in &chain_ids {
        chain.push(usable(s, a).map_err(|r| r.detail(format!("delegating agent {a}")))?);
    }
    let Some(mandate) = s.mandates.get(&mandate_id).filter(|m| m.is_active_at(now)) else {
        return Err(Refusal::new(Reason::MandateInactive, Some(id)));
    };
    let first = chain_ids.last().unwrap_or(&id);
    let subject_ok = match &mandate.user {
        Some(u) => u.sub == c.sub,
        None => c.sub == mandate.agent.as_str(),
    };
    if mandate.agent != *first || !subject_ok {
        return Err(malformed());
    }
    // INVARIANT (delegation): each link still holds as the exchange checked it: the
    // delegating agent's boundary, as it is now, names the agent it delegated to. So
    // taking an agent off `delegates` stops its delegated tokens on the next request,
    // as narrowing a delegating agent's grants does. Checked after the chain's shape,
    // so a forged chain stays `invalid_token`.
    delegation_holds(agent, &chain)?;
    Ok(Holder {
        agent,
        chain,
        mandate: Some(mandate),
    })
}

/// Whether every link of a delegation still holds: each delegating agent's boundary, as
/// it is now, names the agent it delegated to (`INVARIANT (delegation)`).
fn delegation_holds(agent: &Agent, chain: &[&Agent]) -> Result<(), Refusal> {
    let delegates = std::iter::once(agent).chain(chain.iter().copied());
    for (to, from) in delegates.zip(chain) {
        if !from.boundary.delegates.contains(&to.id) {
            return Err(
                Refusal::new(Reason::OutsideBoundary, Some(agent.id.clone())).detail(format!(
                    "the boundary of delegating agent {} no longer names {} among its delegates",
                    from.id, to.id
                )),
            );
        }
    }
    Ok(())
}

/// Re-decides a request whose holder is already known — a recorded decision replayed
/// (mandate-service replay.rs) — with `policies` in place of the snapshot's: the
/// delegation links, every boundary of the chain, the mandate's scope, the policies and
/// the risk gate, exactly as [`decide_with`] runs them after the token. The token gates
/// (signature, window, revocation, status, token scope) are not run: the caller
/// replays only decisions that passed them. Every gate fails closed as in `decide`.
pub fn decide_for_holder(
    h: &Holder<'_>,
    policies: Option<&CompiledPolicies>,
    req: &DecisionRequest<'_>,
    risk: Risk,
) -> Decision {
    let mut d = match delegation_holds(h.agent, &h.chain) {
        Ok(()) => decide_for(policies, h, None, req, risk),
        Err(r) => Decision::refused(r, None),
    };
    name_holder(&mut d, h);
    d
}

/// Names in `d` who decided it: the holder's agent, its mandate and that mandate's user,
/// and the delegation chain.
fn name_holder(d: &mut Decision, h: &Holder<'_>) {
    d.agent = Some(h.agent.id.clone());
    if let Some(m) = h.mandate {
        d.mandate = Some(m.id.to_string());
        d.user = m.user.as_ref().map(|u| u.sub.clone());
    }
    d.chain = h.chain.iter().map(|a| a.id.to_string()).collect();
}

/// Decides one request against one snapshot at `now`, without anomaly scoring.
pub fn decide(s: &Snapshot, req: &DecisionRequest<'_>, now: Timestamp) -> Decision {
    decide_with(s, req, now, |_| Ok(Risk::default()))
}

/// Decides one request, asking `assess` for its risk once the token's holder is known
/// (the anomaly detector: it may also refuse, for an agent it has just suspended). Its
/// risk is `context.risk` for the policies and drives the risk gate.
pub fn decide_with(
    s: &Snapshot,
    req: &DecisionRequest<'_>,
    now: Timestamp,
    assess: impl FnOnce(&Holder<'_>) -> Result<Risk, Refusal>,
) -> Decision {
    let verified;
    let claims = match req.principal {
        // A trusted enforcement point names the agent: no token, no chain, no mandate.
        Principal::Agent(name) => {
            let Ok(id) = AgentId::parse(name) else {
                return Decision::deny(Reason::UnknownAgent, None, None);
            };
            let agent = match usable(s, &id) {
                Ok(agent) => agent,
                Err(r) => return Decision::refused(r, None),
            };
            let h = Holder {
                agent,
                chain: Vec::new(),
                mandate: None,
            };
            let mut d = match assess(&h) {
                Ok(risk) => decide_for(s.policies.as_deref(), &h, None, req, risk),
                Err(r) => Decision::refused(r, None),
            };
            d.agent = Some(id);
            return d;
        }
        Principal::Token(token) => match access::verify(&s.ring, token, &s.expected(), now) {
            Ok(c) => {
                verified = c;
                &verified
            }
            Err(e) => {
                let mut d = Decision::deny(Reason::InvalidToken, None, None);
                d.details.push(e.to_string());
                return d;
            }
        },
        // The signature was checked when the token was first seen; everything else is
        // checked again, now.
        Principal::Verified(c) => c,
    };
    let h = match holder(s, claims, now) {
        Ok(h) => h,
        Err(r) => {
            // The signature verified, so what the token claims is worth recording even
            // though it no longer acts (a revoked mandate, a broken chain).
            let mut d = Decision::refused(r, Some(claims.jti.clone()));
            d.mandate.clone_from(&claims.mandate);
            if claims.mandate.is_some() && claims.sub != claims.client_id {
                d.user = Some(claims.sub.clone());
            }
            d.chain = claims
                .actors()
                .iter()
                .skip(1)
                .map(|a| (*a).to_owned())
                .collect();
            return d;
        }
    };
    let mut d = match assess(&h) {
        Ok(risk) => decide_for(
            s.policies.as_deref(),
            &h,
            claims.scope.as_deref(),
            req,
            risk,
        ),
        Err(r) => Decision::refused(r, None),
    };
    name_holder(&mut d, &h);
    d.token_id = Some(claims.jti.clone());
    d
}

/// The gates after the token: scope, every boundary of the chain, the mandate's scope,
/// the policies, then the risk gate.
fn decide_for(
    policies: Option<&CompiledPolicies>,
    h: &Holder<'_>,
    scope: Option<&str>,
    req: &DecisionRequest<'_>,
    risk: Risk,
) -> Decision {
    let mut d = gates(policies, h, scope, req, &risk);
    // The risk gate: an open step-up hold never lets an allow through unseen.
    if risk.step_up {
        d.step_up();
    }
    d.risk = risk;
    d
}

fn gates(
    policies: Option<&CompiledPolicies>,
    h: &Holder<'_>,
    scope: Option<&str>,
    req: &DecisionRequest<'_>,
    risk: &Risk,
) -> Decision {
    let deny = |reason: Reason| Decision::deny(reason, None, None);
    // A token with a scope may only be used for the actions that scope names.
    if let Some(scope) = scope
        && !scope.split(' ').any(|t| glob_match(t, req.action))
    {
        return deny(Reason::OutsideTokenScope);
    }
    // A `data_class` that is present but not a string cannot be matched: outside.
    let data_class = match req.context.get("data_class") {
        None => None,
        Some(Value::String(dc)) => Some(dc.as_str()),
        Some(_) => {
            let mut d = deny(Reason::OutsideBoundary);
            d.details
                .push("data_class: context.data_class is not a string".to_owned());
            return d;
        }
    };
    let resource = req.resource.boundary_name();
    for a in std::iter::once(h.agent).chain(h.chain.iter().copied()) {
        // The allow path costs one pass over the grants; only a refusal asks which part
        // failed.
        if inside_boundary(&a.boundary, req.action, &resource, data_class) {
            continue;
        }
        // Denied whatever the detail says: the detail only explains the refusal.
        let mut d = deny(Reason::OutsideBoundary);
        if let Some(miss) = grants_miss(&a.boundary.grants, req.action, &resource, data_class) {
            let whose = (a.id != h.agent.id).then_some(&a.id);
            d.details.push(boundary_miss(
                miss, whose, req.action, &resource, data_class,
            ));
        }
        return d;
    }
    if let Some(m) = h.mandate
        && !grants_allow(&m.scope, req.action, &resource, data_class)
    {
        return deny(Reason::OutsideMandate);
    }
    let Some(policies) = policies else {
        return deny(Reason::NoActivePolicy);
    };
    let chain: Vec<&str> = h.chain.iter().map(|a| a.id.as_str()).collect();
    let outcome = policies.evaluate(&PolicyRequest {
        principal: h.agent,
        action: req.action,
        resource_type: &req.resource.type_name,
        resource_id: &req.resource.id,
        resource_attributes: &req.resource.attributes,
        context: req.context,
        on_behalf: OnBehalf {
            user: h.mandate.and_then(|m| m.user.as_ref()),
            mandate: h.mandate.map(AsRef::as_ref),
            chain: &chain,
            risk: Some(risk),
        },
    });
    let mut d = Decision::new(policy_reason(&outcome));
    d.details = outcome.errors;
    d.policy_ids = outcome.policy_ids;
    d
}

/// The reason a policy evaluation decides: allowed, held for approval (`@approval`
/// forbids alone), an error, no permit, or a forbid — in that order. Mandate requests
/// are judged by the same words.
pub fn policy_reason(outcome: &PolicyOutcome) -> Reason {
    if outcome.allowed {
        Reason::AllowedByPolicy
    } else if outcome.approval_required {
        Reason::ApprovalRequired
    } else if !outcome.errors.is_empty() {
        Reason::PolicyError
    } else if outcome.policy_ids.is_empty() {
        Reason::NoPermit
    } else {
        Reason::ForbiddenByPolicy
    }
}
