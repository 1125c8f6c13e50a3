//! The decision function: a pure function of an immutable [`Snapshot`] and a request.
//! It does no IO, reads no clock (the time is a parameter), and every gate fails closed.
//!
//! Gates, in order: token valid (signature, type, issuer, window, not revoked, after the
//! agent's cutoff) → agent known and active → action inside the token's scope → inside
//! the boundary → Cedar policies (default deny, forbid wins, any error denies) → allow.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mandate_core::agent::{Agent, AgentStatus, Boundary, glob_match};
use mandate_core::id::AgentId;
use mandate_core::time::Timestamp;
use mandate_policy::{CompiledPolicies, PolicyRequest};
use mandate_token::access::{self, AccessClaims};
use mandate_token::keys::KeyRing;
use serde_json::Value;

/// Everything a decision needs, read from the store at one moment and never changed.
///
/// INVARIANT (snapshot): a snapshot is rebuilt from the store after every change that
/// can alter a decision (agents, boundaries, policy activation, revocations, keys) and
/// swapped in before the change's response is sent, so the next decision sees it.
pub struct Snapshot {
    /// Agents by id.
    pub agents: HashMap<AgentId, Agent>,
    /// The active policy set: `None` when no version is active (everything is denied).
    pub policies: Option<Arc<CompiledPolicies>>,
    /// Which version that is.
    pub policy_version: Option<i64>,
    /// Keys that verify access tokens.
    pub ring: Arc<KeyRing>,
    /// The issuer tokens must name.
    pub issuer: String,
    /// Tokens with `iat` at or before an agent's cutoff are dead.
    pub cutoffs: HashMap<AgentId, Timestamp>,
    /// Revoked token ids (not yet expired).
    pub revoked: HashSet<String>,
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
    /// Allowed?
    pub allow: bool,
    /// Stable reason codes, first the deciding one (`allowed_by_policy`, `invalid_token`,
    /// `token_revoked`, `unknown_agent`, `agent_suspended`, `agent_decommissioned`,
    /// `outside_token_scope`, `outside_boundary`, `no_active_policy`, `no_permit`,
    /// `forbidden_by_policy`, `policy_error`), then details.
    pub reasons: Vec<String>,
    /// Policies that decided.
    pub policy_ids: Vec<String>,
    /// The agent the request was resolved to, when it was.
    pub agent: Option<AgentId>,
    /// The token's `jti`, when a token was presented and verified.
    pub token_id: Option<String>,
}

impl Decision {
    fn deny(reason: &str, agent: Option<AgentId>, token_id: Option<String>) -> Self {
        Self {
            allow: false,
            reasons: vec![reason.to_owned()],
            policy_ids: Vec::new(),
            agent,
            token_id,
        }
    }
}

/// Whether the boundary allows `action` on `resource` (and, when the context names a
/// `data_class`, that data class).
///
/// INVARIANT (ceiling): a request is inside the boundary only if one grant matches its
/// action, its resource and — when it names one — its data class; a grant without data
/// classes covers only requests that name none.
pub fn inside_boundary(
    b: &Boundary,
    action: &str,
    resource: &str,
    data_class: Option<&str>,
) -> bool {
    b.grants.iter().any(|g| {
        g.actions.iter().any(|p| glob_match(p, action))
            && g.resources.iter().any(|p| glob_match(p, resource))
            && data_class.is_none_or(|dc| g.data_classes.iter().any(|p| glob_match(p, dc)))
    })
}

/// Decides one request against one snapshot at `now`.
pub fn decide(s: &Snapshot, req: &DecisionRequest<'_>, now: Timestamp) -> Decision {
    enum Who {
        Named(AgentId),
        Token(AccessClaims),
    }
    let who = match req.principal {
        Principal::Agent(name) => {
            let Ok(id) = AgentId::parse(name) else {
                return Decision::deny("unknown_agent", None, None);
            };
            Who::Named(id)
        }
        Principal::Token(token) => match access::verify(&s.ring, token, &s.issuer, now) {
            Ok(c) => Who::Token(c),
            Err(e) => {
                let mut d = Decision::deny("invalid_token", None, None);
                d.reasons.push(e.to_string());
                return d;
            }
        },
        // The signature was checked when the token was first seen; the window and the
        // issuer are checked again, now.
        Principal::Verified(c) => {
            if c.iss != s.issuer || now.secs() >= c.exp || now.secs() < c.nbf {
                let mut d = Decision::deny("invalid_token", None, None);
                d.reasons
                    .push("expired, not yet valid or wrong issuer".into());
                return d;
            }
            Who::Token(c.clone())
        }
    };
    let (agent_id, scope, token_id) = match who {
        Who::Named(id) => (id, None, None),
        Who::Token(claims) => {
            let Ok(id) = AgentId::parse(&claims.client_id) else {
                return Decision::deny("invalid_token", None, Some(claims.jti));
            };
            let cut = s.cutoffs.get(&id).is_some_and(|c| claims.iat <= c.secs());
            if cut || s.revoked.contains(&claims.jti) {
                return Decision::deny("token_revoked", Some(id), Some(claims.jti));
            }
            (id, claims.scope, Some(claims.jti))
        }
    };
    let Some(agent) = s.agents.get(&agent_id) else {
        return Decision::deny("unknown_agent", Some(agent_id), token_id);
    };
    match agent.status {
        AgentStatus::Active => {}
        AgentStatus::Suspended => {
            return Decision::deny("agent_suspended", Some(agent_id), token_id);
        }
        AgentStatus::Decommissioned => {
            return Decision::deny("agent_decommissioned", Some(agent_id), token_id);
        }
    }
    // A token with a scope may only be used for the actions that scope names.
    if let Some(scope) = &scope
        && !scope.split(' ').any(|t| glob_match(t, req.action))
    {
        return Decision::deny("outside_token_scope", Some(agent_id), token_id);
    }
    // A `data_class` that is present but not a string cannot be matched: outside.
    let data_class = match req.context.get("data_class") {
        None => None,
        Some(Value::String(dc)) => Some(dc.as_str()),
        Some(_) => return Decision::deny("outside_boundary", Some(agent_id), token_id),
    };
    if !inside_boundary(
        &agent.boundary,
        req.action,
        &req.resource.boundary_name(),
        data_class,
    ) {
        return Decision::deny("outside_boundary", Some(agent_id), token_id);
    }
    let Some(policies) = &s.policies else {
        return Decision::deny("no_active_policy", Some(agent_id), token_id);
    };
    let outcome = policies.evaluate(&PolicyRequest {
        principal: agent,
        action: req.action,
        resource_type: &req.resource.type_name,
        resource_id: &req.resource.id,
        resource_attributes: &req.resource.attributes,
        context: req.context,
        on_behalf: Default::default(),
    });
    let reason = if outcome.allowed {
        "allowed_by_policy"
    } else if !outcome.errors.is_empty() {
        "policy_error"
    } else if outcome.policy_ids.is_empty() {
        "no_permit"
    } else {
        "forbidden_by_policy"
    };
    let mut reasons = vec![reason.to_owned()];
    reasons.extend(outcome.errors);
    Decision {
        allow: outcome.allowed,
        reasons,
        policy_ids: outcome.policy_ids,
        agent: Some(agent_id),
        token_id,
    }
}
