//! Evaluating one request against compiled policies: building Cedar's request and
//! entities from Mandate's types, and failing closed on every error.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{
    AuthorizationError, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    Request, RequestValidationError, RestrictedExpression,
};
use cedar_policy_core::ast;
use cedar_policy_core::evaluator::Evaluator;
use cedar_policy_core::extensions::Extensions;
use mandate_core::agent::Agent;
use mandate_core::mandate::{Mandate, UserRef};
use mandate_core::risk::Risk;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::compile::CompiledPolicies;
use crate::index::Facts;
use crate::schema::{Fields, Reserved};

/// A Cedar entity named by type and id, e.g. `Crm::Contact::"c1"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct EntityRef {
    /// The fully qualified entity type, e.g. `Mandate::Agent` or `Crm::Contact`.
    pub type_name: String,
    /// The entity id.
    pub id: String,
}

impl fmt::Display for EntityRef {
    /// Cedar's syntax: `Crm::Contact::"c1"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::\"{}\"", self.type_name, self.id.escape_debug())
    }
}

/// One question: may this agent do this action on this resource, in this context?
#[derive(Debug, Clone, Copy)]
pub struct PolicyRequest<'a> {
    /// The agent asking; it becomes `Mandate::Agent::"<agt_id>"` with attributes
    /// `owner`, `name`, `status` and `labels` (`"key=value"` strings) and its labels
    /// as tags. It is in no group.
    pub principal: &'a Agent,
    /// The action id; it becomes `Mandate::Action::"<action>"` and must be declared in
    /// the schema (an undeclared action is denied with an error).
    pub action: &'a str,
    /// The resource's fully qualified entity type, e.g. `Crm::Contact`.
    pub resource_type: &'a str,
    /// The resource's id.
    pub resource_id: &'a str,
    /// The resource's attributes: a JSON object (or `null` for none) whose values
    /// follow Cedar's JSON entity format (`{"__entity": …}` / `{"__extn": …}` escapes,
    /// or plain values where the schema gives the type, e.g. an IP address as a
    /// string for an `ipaddr` attribute). Top-level fields the entity type does not
    /// declare are dropped; declared ones must have their declared types and required
    /// ones must be present.
    pub resource_attributes: &'a Value,
    /// The request context: a JSON object (or `null`) with the same value rules.
    /// Top-level fields the action's `context` type does not declare are dropped (a
    /// validated policy cannot read them); declared fields must have their declared
    /// types (nested records included) and required ones must be present. Mandate's
    /// reserved fields (`user`, `mandate`, `chain`, `delegation_depth`, `risk`) are
    /// always replaced by [`PolicyRequest::on_behalf`].
    pub context: &'a Value,
    /// Who the principal acts for and under what authority, from a verified token.
    pub on_behalf: OnBehalf<'a>,
}

/// The human, mandate and delegation chain behind a request: what fills the reserved
/// context fields. Only a verified token may supply them.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnBehalf<'a> {
    /// `context.user`: a `Mandate::User` whose id is the user's `sub`, with `email` and
    /// their groups as `Mandate::Group` parents.
    pub user: Option<&'a UserRef>,
    /// `context.mandate`: the mandate the token is bound to (see
    /// [`mandate_attributes`] for its attributes).
    pub mandate: Option<&'a Mandate>,
    /// `context.chain`: the agents that delegated to the principal, nearest first;
    /// `context.delegation_depth` is its length. Both absent when empty.
    pub chain: &'a [&'a str],
    /// `context.risk`: the anomaly detector's view of the request; `None` fills in a
    /// zero risk (score 0, level `none`).
    pub risk: Option<&'a Risk>,
}

/// The Cedar attributes of a `Mandate::Mandate` entity, in Cedar's JSON entity format:
/// what a `"mandate:request"` resource and `context.mandate` carry.
pub fn mandate_attributes(m: &Mandate) -> Value {
    let patterns = |f: fn(&mandate_core::agent::Grant) -> &Vec<String>| {
        let mut v: Vec<&String> = m.scope.iter().flat_map(f).collect();
        v.sort();
        v.dedup();
        v
    };
    json!({
        "agent": {"__entity": {"type": "Mandate::Agent", "id": m.agent.as_str()}},
        "intent": m.intent,
        "actions": patterns(|g| &g.actions),
        "resources": patterns(|g| &g.resources),
        "data_classes": patterns(|g| &g.data_classes),
        "lifetime_secs": m.lifetime_secs,
    })
}

impl PolicyRequest<'_> {
    /// The resource as an entity reference.
    pub fn resource(&self) -> EntityRef {
        EntityRef {
            type_name: self.resource_type.to_owned(),
            id: self.resource_id.to_owned(),
        }
    }
}

/// The answer to a [`PolicyRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyOutcome {
    /// Whether the action is allowed.
    pub allowed: bool,
    /// Denied only by `@approval` forbids, with a permit that would otherwise allow:
    /// a human may approve it. Never true when `allowed` is.
    pub approval_required: bool,
    /// The policies that determined the decision, in source order: the matching
    /// permits when allowed; the matching forbids when a forbid denied; otherwise the
    /// policies whose evaluation failed, if any; empty for a default deny.
    pub policy_ids: Vec<String>,
    /// Everything that went wrong building or evaluating the request. Never empty
    /// when an error caused the deny; always empty when allowed.
    pub errors: Vec<String>,
}

impl PolicyOutcome {
    fn refused(error: String) -> Self {
        Self {
            allowed: false,
            approval_required: false,
            policy_ids: Vec::new(),
            errors: vec![error],
        }
    }
}

impl CompiledPolicies {
    /// Evaluates one request.
    ///
    /// Cedar decides with default deny (nothing allows unless a permit matches) and
    /// forbid beats permit. On top of that Mandate fails closed: when the request
    /// cannot be built (undeclared action, a resource type the action does not apply
    /// to, attributes or context of the wrong shape) or evaluating any policy fails,
    /// `allowed` is false even if a permit matched, with the errors reported. (Cedar
    /// alone skips a policy whose evaluation fails, so an erroring forbid would let a
    /// permit through.)
    ///
    /// Never panics.
    pub fn evaluate(&self, req: &PolicyRequest<'_>) -> PolicyOutcome {
        self.evaluate_with(req, true)
    }

    /// [`CompiledPolicies::evaluate`] with Cedar evaluating every policy, none ruled out
    /// by the index: the reference the equivalence tests compare with.
    #[doc(hidden)]
    pub fn evaluate_unindexed(&self, req: &PolicyRequest<'_>) -> PolicyOutcome {
        self.evaluate_with(req, false)
    }

    fn evaluate_with(&self, req: &PolicyRequest<'_>, indexed: bool) -> PolicyOutcome {
        let (request, entities, sets) = match self.build(req, indexed) {
            Ok(built) => built,
            Err(e) => return PolicyOutcome::refused(e),
        };
        let (policies, relaxed) = match &sets {
            Sets::Whole => (&self.policies, self.relaxed.as_ref()),
            Sets::Sliced(c) => (&c.all, self.relaxed.as_ref().map(|_| &c.relaxed)),
        };
        if let Some(outcome) = self.decide_concretely(&request, policies, relaxed, &entities) {
            return outcome;
        }
        // A policy failed to evaluate: Cedar's own authorizer gives the decision and the
        // diagnostics (its error messages are what callers and tests see).
        let response = self.authorizer.is_authorized(&request, policies, &entities);

        let mut errored = Vec::new();
        let mut errors = Vec::new();
        for e in response.diagnostics().errors() {
            match e {
                AuthorizationError::PolicyEvaluationError(pe) => {
                    errored.push(raw_id(pe.policy_id()));
                }
            }
            errors.push(render(e));
        }
        errors.sort();
        let reasons: Vec<String> = response.diagnostics().reason().map(raw_id).collect();

        // INVARIANT (fail closed): an allow is returned only when Cedar allows and no
        // policy failed to evaluate.
        let allowed = response.decision() == Decision::Allow && errors.is_empty();
        // INVARIANT (approval): `approval_required` only when every deciding forbid is
        // an `@approval` one, nothing errored, and the same request is allowed — again
        // without errors — by the policies minus those forbids.
        let approval_required = !allowed
            && errors.is_empty()
            && !reasons.is_empty()
            && reasons.iter().all(|r| self.approval_ids.contains(r))
            && relaxed.is_some_and(|relaxed| {
                let r = self.authorizer.is_authorized(&request, relaxed, &entities);
                r.decision() == Decision::Allow && r.diagnostics().errors().next().is_none()
            });
        let determining =
            if allowed || (response.decision() == Decision::Deny && !reasons.is_empty()) {
                reasons
            } else {
                errored
            };
        PolicyOutcome {
            allowed,
            approval_required,
            policy_ids: self.in_source_order(determining),
            errors,
        }
    }

    /// What Cedar's authorizer decides, computed as it does (default deny, forbid beats
    /// permit, the determining policies are the satisfied forbids, else the satisfied
    /// permits) but by evaluating each policy concretely, without the bookkeeping of
    /// its partial-evaluation response (a copy of every policy id and annotation map per
    /// request). `None` when any policy fails to evaluate: the caller then asks Cedar's
    /// authorizer, which reports the errors. The equivalence tests hold the two to the
    /// same outcome.
    fn decide_concretely(
        &self,
        request: &Request,
        policies: &cedar_policy::PolicySet,
        relaxed: Option<&cedar_policy::PolicySet>,
        entities: &Entities,
    ) -> Option<PolicyOutcome> {
        let eval = Evaluator::new(
            request.as_ref().clone(),
            entities.as_ref(),
            Extensions::all_available(),
        );
        let (permits, forbids) = satisfied(&eval, policies.as_ref())?;
        let allowed = forbids.is_empty() && !permits.is_empty();
        let determining = if forbids.is_empty() { permits } else { forbids };
        let determining: Vec<String> = determining.iter().map(|id| raw_id(*id)).collect();
        // INVARIANT (approval), as in `evaluate_with`: only forbids decided, all of them
        // `@approval` ones, and the policies without them allow with no error.
        let approval_required = !allowed
            && !determining.is_empty()
            && determining.iter().all(|r| self.approval_ids.contains(r))
            && relaxed.is_some_and(|relaxed| {
                satisfied(&eval, relaxed.as_ref())
                    .is_some_and(|(p, f)| f.is_empty() && !p.is_empty())
            });
        Some(PolicyOutcome {
            allowed,
            approval_required,
            policy_ids: self.in_source_order(determining),
            errors: Vec::new(),
        })
    }

    fn in_source_order(&self, mut ids: Vec<String>) -> Vec<String> {
        ids.sort_by_key(|id| self.ids.iter().position(|x| x == id).unwrap_or(usize::MAX));
        ids.dedup();
        ids
    }

    /// Cedar's request and entities (the principal, the resource and the schema's
    /// actions), checked against the schema, and the policies to evaluate them
    /// against: with `indexed`, those of the request's slice it does not rule out.
    ///
    /// Both are built directly (`direct.rs`) where that can be done exactly; anything
    /// else goes through Cedar's parser and schema check, which decide.
    fn build(
        &self,
        req: &PolicyRequest<'_>,
        indexed: bool,
    ) -> Result<(Request, Entities, Sets), String> {
        let shape = self.request_actions.get(req.action);
        if !shape.is_some_and(|s| s.applies) {
            let action = self.action_uid(req.action);
            match self
                .schema
                .principals_for_action(&action)
                .map(|mut p| p.next().is_some())
            {
                None => {
                    return Err(format!(
                        "unknown action `{}`: it is not declared in the schema",
                        req.action.escape_debug()
                    ));
                }
                Some(false) => {
                    return Err(format!(
                        "action `{}` applies to nothing (an action group cannot be requested)",
                        req.action.escape_debug()
                    ));
                }
                Some(true) => {}
            }
        }

        let resource_type = match self.type_names.get(req.resource_type) {
            Some(t) => t.clone(),
            None => EntityTypeName::from_str(req.resource_type).map_err(|e| {
                format!(
                    "invalid resource type `{}`: {e}",
                    req.resource_type.escape_debug()
                )
            })?,
        };
        let type_text = req.resource_type;
        let resource_uid =
            EntityUid::from_type_name_and_id(resource_type, EntityId::new(req.resource_id));

        let principal = principal_entity(req.principal, |a| self.agent_entity(a))?;
        let principal_uid = principal.uid().clone();

        let on_behalf = &req.on_behalf;
        // INVARIANT (own mandate): a request whose resource is the mandate its token is
        // bound to sees that mandate's attributes, not the caller's: the resource and
        // `context.mandate` are one entity, and the caller must not be able to forge it.
        let own_mandate = on_behalf
            .mandate
            .filter(|m| type_text == "Mandate::Mandate" && req.resource_id == m.id.as_str())
            .map(mandate_attributes);
        let attrs = match &own_mandate {
            Some(attrs) => object(attrs, "mandate attributes")?,
            None => object(req.resource_attributes, "resource attributes")?,
        };
        let attrs = self.declared.entity_fields(type_text, attrs);

        let context = object(req.context, "context")?;
        let context = self.declared.context_fields(
            req.action,
            context,
            Reserved {
                user: on_behalf.user.is_some(),
                mandate: on_behalf.mandate.is_some(),
                chain: !on_behalf.chain.is_empty(),
            },
        );
        // Mandate's reserved context fields but `risk`, in JSON.
        let entity = |ty: &str, id: &str| json!({"__entity": {"type": ty, "id": id}});
        let mut reserved: Vec<(&'static str, Value)> = Vec::new();
        let mut extra: Vec<Arc<ast::Entity>> = Vec::new();
        if let Some(u) = on_behalf.user {
            reserved.push(("user", entity("Mandate::User", &u.sub)));
            extra.push(Arc::new(self.user_entity(u)?));
        }
        if let Some(m) = on_behalf.mandate {
            reserved.push(("mandate", entity("Mandate::Mandate", m.id.as_str())));
            if own_mandate.is_none() {
                let attrs = mandate_attributes(m);
                let attrs = object(&attrs, "mandate attributes")?;
                extra.push(Arc::new(self.entity(
                    "Mandate::Mandate",
                    m.id.as_str(),
                    Fields::all(attrs),
                    &[],
                    "mandate",
                )?));
            }
        }
        if !on_behalf.chain.is_empty() {
            let chain: Vec<Value> = on_behalf
                .chain
                .iter()
                .map(|a| entity("Mandate::Agent", a))
                .collect();
            reserved.push(("chain", Value::Array(chain)));
            reserved.push(("delegation_depth", json!(on_behalf.chain.len())));
        }
        let zero = Risk::default();
        let risk = on_behalf.risk.unwrap_or(&zero);
        let sets = match self.index.slice(req.action, type_text) {
            Some(slice) if indexed => Sets::Sliced(slice.candidates(&Facts {
                principal: req.principal,
                resource_id: req.resource_id,
                resource_attrs: attrs,
                context,
            })?),
            _ => Sets::Whole,
        };
        let resource = self.entity(type_text, req.resource_id, attrs, &[], "resource")?;
        // Every entity was checked against the schema as it was made (the principal is
        // made by Mandate in the schema's shape), so none is checked again here.
        let mut entities: Vec<Arc<ast::Entity>> = Vec::with_capacity(4 + extra.len());
        if self.all_action_entities {
            entities.extend(self.action_entities.iter().cloned());
        } else if let Some(shape) = shape {
            entities.push(shape.entity.clone());
        }
        entities.push(principal);
        entities.push(Arc::new(resource));
        entities.extend(extra);
        let entities = crate::direct::closed_entities(entities)
            .map_err(|e| format!("invalid entities: {}", render(&*e)))?;

        let direct = shape.and_then(|s| {
            let ask = crate::direct::Ask {
                principal: &principal_uid,
                resource: resource_uid.as_ref(),
                resource_type: type_text,
                fields: context,
                reserved: &reserved,
                risk,
            };
            s.request(&ask, &self.direct_types)
        });
        let request = match direct {
            Some(request) => Request::from(request),
            None => {
                count_parsed();
                let action = self.action_uid(req.action);
                let mut context = context.to_json();
                context.extend(reserved.into_iter().map(|(k, v)| (k.to_owned(), v)));
                context.insert("risk".to_owned(), crate::direct::risk_json(risk));
                let context =
                    Context::from_json_value(Value::Object(context), Some((&self.schema, &action)))
                        .map_err(|e| format!("invalid context: {}", render(&e)))?;
                Request::new(
                    EntityUid::from(principal_uid),
                    action,
                    resource_uid,
                    context,
                    Some(&self.schema),
                )
                .map_err(|e| match e {
                    // Cedar's message quotes the whole context, which may hold data
                    // that must not reach logs; name the action instead.
                    RequestValidationError::InvalidContext(_) => format!(
                        "invalid context: a field does not have the type action `{}` declares",
                        req.action.escape_debug()
                    ),
                    other => format!("invalid request: {}", render(&other)),
                })?
            }
        };
        Ok((request, entities, sets))
    }

    /// `Mandate::Action::"<id>"`.
    fn action_uid(&self, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.action_type.clone(), EntityId::new(id))
    }

    /// `Mandate::User::"<sub>"` with its email and its groups as parents, in the base
    /// schema's shape.
    fn user_entity(&self, u: &UserRef) -> Result<ast::Entity, String> {
        let mut attrs = Map::new();
        if let Some(e) = &u.email {
            attrs.insert("email".to_owned(), Value::String(e.clone()));
        }
        let groups: Vec<(&str, &str)> = u
            .groups
            .iter()
            .map(|g| ("Mandate::Group", g.as_str()))
            .collect();
        self.entity(
            "Mandate::User",
            &u.sub,
            Fields::all(&attrs),
            &groups,
            "user",
        )
    }

    /// Entity `ty::"id"` with attributes `attrs` and parents `parents` (type, id): built
    /// directly where `direct.rs` reads it exactly, else by Cedar's parser against the
    /// schema, whose answer stands (an error names the entity as a `what`).
    fn entity(
        &self,
        ty: &str,
        id: &str,
        attrs: Fields<'_>,
        parents: &[(&str, &str)],
        what: &str,
    ) -> Result<ast::Entity, String> {
        let uids: Option<std::collections::HashSet<ast::EntityUID>> = parents
            .iter()
            .map(|(t, i)| self.direct_types.uid(t, i))
            .collect();
        if let Some(e) = uids.and_then(|p| self.direct_types.entity(ty, id, &attrs, p)) {
            return Ok(e);
        }
        count_parsed();
        let parents: Vec<Value> = parents
            .iter()
            .map(|(t, i)| json!({"type": t, "id": i}))
            .collect();
        Entity::from_json_value(
            json!({"uid": {"type": ty, "id": id}, "attrs": attrs.to_json(), "parents": parents}),
            Some(&self.schema),
        )
        .map(core_entity)
        .map_err(|e| {
            format!(
                "invalid {what} `{ty}::\"{}\"`: {}",
                id.escape_debug(),
                render(&e)
            )
        })
    }

    fn agent_entity(&self, agent: &Agent) -> Result<ast::Entity, String> {
        let uid = EntityUid::from_type_name_and_id(
            self.agent_type.clone(),
            EntityId::new(agent.id.as_str()),
        );
        let labels = agent
            .labels
            .iter()
            .map(|(k, v)| RestrictedExpression::new_string(format!("{k}={v}")));
        let attrs = [
            (
                "owner",
                RestrictedExpression::new_string(agent.owner.as_str().to_owned()),
            ),
            (
                "name",
                RestrictedExpression::new_string(agent.name.as_str().to_owned()),
            ),
            (
                "status",
                RestrictedExpression::new_string(agent.status.as_str().to_owned()),
            ),
            ("labels", RestrictedExpression::new_set(labels)),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        let tags = agent
            .labels
            .iter()
            .map(|(k, v)| (k.to_owned(), RestrictedExpression::new_string(v.to_owned())));
        Entity::new_with_tags(uid, attrs, [], tags)
            .map(core_entity)
            .map_err(|e| format!("invalid principal `{}`: {e}", agent.id))
    }
}

thread_local! {
    static PARSED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many requests, resources and mandates this thread has had built through Cedar's
/// parser rather than directly: for tests that well-typed requests take the direct
/// path.
#[doc(hidden)]
pub fn parsed_on_this_thread() -> u64 {
    PARSED.get()
}

fn count_parsed() {
    PARSED.set(PARSED.get() + 1);
}

/// cedar-policy's entity as cedar-policy-core's.
fn core_entity(e: Entity) -> ast::Entity {
    AsRef::<ast::Entity>::as_ref(&e).clone()
}

/// What a principal entity is made of: the agent's id, owner, name, status and labels.
struct PrincipalKey {
    owner: String,
    name: String,
    status: mandate_core::agent::AgentStatus,
    labels: Vec<(String, String)>,
}

impl PrincipalKey {
    fn of(a: &Agent) -> Self {
        Self {
            owner: a.owner.as_str().to_owned(),
            name: a.name.as_str().to_owned(),
            status: a.status,
            labels: a
                .labels
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    fn matches(&self, a: &Agent) -> bool {
        self.owner == a.owner.as_str()
            && self.name == a.name.as_str()
            && self.status == a.status
            && self
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .eq(a.labels.iter())
    }
}

/// The agent's Cedar entity. Each thread keeps the entities of the agents it has met
/// (up to [`PRINCIPALS_KEPT`]), each with what it was made of; one is reused only when
/// the agent still has exactly those values, so a changed agent gets a new entity.
fn principal_entity(
    agent: &Agent,
    make: impl Fn(&Agent) -> Result<ast::Entity, String>,
) -> Result<Arc<ast::Entity>, String> {
    thread_local! {
        static MADE: std::cell::RefCell<std::collections::HashMap<String, (PrincipalKey, Arc<ast::Entity>)>> =
            std::cell::RefCell::default();
    }
    MADE.with_borrow_mut(|made| {
        if let Some((key, entity)) = made.get(agent.id.as_str())
            && key.matches(agent)
        {
            return Ok(entity.clone());
        }
        let entity = Arc::new(make(agent)?);
        if made.len() >= PRINCIPALS_KEPT {
            made.clear();
        }
        made.insert(
            agent.id.as_str().to_owned(),
            (PrincipalKey::of(agent), entity.clone()),
        );
        Ok(entity)
    })
}

/// How many principal entities a thread keeps.
const PRINCIPALS_KEPT: usize = 4096;

/// The policies a request is evaluated against.
enum Sets {
    /// The whole set (and its relaxed form).
    Whole,
    /// The request's slice without the policies it rules out.
    Sliced(std::sync::Arc<crate::index::Candidates>),
}

/// Cedar's message followed by its causes (`a: b: c`), skipping a cause whose text
/// the message already holds.
fn render(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        cause = c.source();
    }
    out
}

/// A JSON object, with `null` read as an empty one.
fn object<'v>(value: &'v Value, what: &str) -> Result<&'v Map<String, Value>, String> {
    static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
    match value {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(&EMPTY),
        other => Err(format!("{what} must be a JSON object, not {}", kind(other))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A policy id as written in its `@id` (what `CompiledPolicies::policy_ids` lists), not
/// its `Display` form, which escapes quotes, backslashes and control characters.
fn raw_id(id: &impl AsRef<str>) -> String {
    id.as_ref().to_owned()
}

/// The ids of the permits and of the forbids in `policies` that `eval`'s request
/// satisfies; `None` as soon as one fails to evaluate.
fn satisfied<'p>(
    eval: &Evaluator<'_>,
    policies: &'p ast::PolicySet,
) -> Option<(Vec<&'p ast::PolicyID>, Vec<&'p ast::PolicyID>)> {
    let mut permits = Vec::new();
    let mut forbids = Vec::new();
    for p in policies.policies() {
        if eval.evaluate(p).ok()? {
            match p.effect() {
                ast::Effect::Permit => permits.push(p.id()),
                ast::Effect::Forbid => forbids.push(p.id()),
            }
        }
    }
    Some((permits, forbids))
}
