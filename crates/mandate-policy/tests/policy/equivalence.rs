//! The shortcuts in `CompiledPolicies::evaluate` against Cedar.
//!
//! `evaluate` leaves out the policies its index rules out and builds the request and
//! entities directly (`direct.rs`); `evaluate_unindexed` gives Cedar every policy but
//! shares the directly built request. So each request is answered three ways,
//! which must agree:
//!
//! - `evaluate` and `evaluate_unindexed`: the whole [`PolicyOutcome`], errors included;
//! - `evaluate_unindexed` and [`Reference`], built here through Cedar's public API the
//!   way Mandate built requests before either shortcut (Cedar's JSON parser for the
//!   context, every action entity): the decision, approval, determining policies and
//!   whether there were errors (the texts of request errors may differ, since the
//!   checks run in another order).
//!
//! The cases: generated policy sets (every guard form the index reads, and near
//! misses it must not read) against generated requests (right and wrong types,
//! escapes, edge addresses); every IPv4 prefix at and beside its range's ends; the
//! data-table decisions; and regressions found on the way.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicyId, PolicySet, Request, RequestValidationError, RestrictedExpression, Schema,
    SchemaFragment,
};
use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
use mandate_core::id::AgentId;
use mandate_core::mandate::UserRef;
use mandate_core::risk::Risk;
use mandate_core::time::Timestamp;
use mandate_policy::{
    BASE_SCHEMA, CompiledPolicies, OnBehalf, PolicyOutcome, PolicyRequest, RESERVED_CONTEXT,
    compile,
};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{AGENT_ID, cases, crate_dir, fragments, read};

// ---- the schema: the CRM example plus a fragment with richer context types ----

/// Where [`RESERVED_FIELDS`] go in the fragments (compile gets them from Mandate).
const RESERVED_SLOT: &str = "// reserved";

/// Mandate's reserved context fields as its compiler adds them, for the reference.
const RESERVED_FIELDS: &str = "user?: Mandate::User, mandate?: Mandate::Mandate, \
    chain?: Set<Mandate::Agent>, delegation_depth?: Long, \
    risk: {score: Long, level: String, anomalies: Set<String>, step_up: Bool},";

/// Nested records, sets, entity references and extension types, for the directly built
/// context.
const PROBE_SCHEMA: &str = r#"namespace Probe {
  entity Doc {
    owner: Mandate::Agent,
    tags: Set<String>,
    meta: { level: Long, ip?: ipaddr },
  };
}
namespace Mandate {
  // A group within "all": `action in Mandate::Action::"all"` must see through it.
  action "probe:any" in ["all"];
  action "probe:act" in ["probe:any"] appliesTo {
    principal: [Agent],
    resource: [Probe::Doc],
    context: {
      tags?: Set<String>,
      meta?: { level: Long, ip?: ipaddr, note?: String },
      who?: Agent,
      ips?: Set<ipaddr>,
      d?: decimal,
      flag?: Bool,
      ip?: ipaddr,
      at?: datetime,
      // reserved
    },
  };
}
"#;

fn crm_schema() -> String {
    read(&crate_dir().join("../../examples/crm/schema.cedarschema"))
}

/// The fragments the generated policies are compiled with.
fn schema_fragments() -> Vec<String> {
    vec![crm_schema(), PROBE_SCHEMA.replace(RESERVED_SLOT, "")]
}

/// The attributes each entity type declares (undeclared ones are dropped).
fn declared_entity(ty: &str) -> Option<&'static [&'static str]> {
    Some(match ty {
        "Crm::Contact" => &["team", "region"],
        "Crm::Invoice" => &["team", "amount"],
        "Probe::Doc" => &["owner", "tags", "meta"],
        "Mandate::Mandate" => &[
            "agent",
            "intent",
            "actions",
            "resources",
            "data_classes",
            "lifetime_secs",
        ],
        "Mandate::Agent" => &["owner", "name", "status", "labels"],
        "Mandate::User" => &["email"],
        "Mandate::Group" => &[],
        _ => return None,
    })
}

/// The context fields each action declares, Mandate's reserved ones included.
fn declared_context(action: &str) -> Option<Vec<&'static str>> {
    let own: &[&'static str] = match action {
        "crm:read" | "crm:write" => &["data_class", "source_ip"],
        "crm:refund" => &["data_class", "source_ip", "amount", "refunded"],
        "probe:act" => &["tags", "meta", "who", "ips", "d", "flag", "ip", "at"],
        "mandate:request" => &[],
        _ => return None,
    };
    Some(own.iter().chain(RESERVED_CONTEXT).copied().collect())
}

fn keep(declared: Option<&[&str]>, fields: &Map<String, Value>) -> Map<String, Value> {
    fields
        .iter()
        .filter(|(k, _)| declared.is_none_or(|d| d.contains(&k.as_str())))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

// ---- the reference: requests built as before the shortcuts ----

/// [`BASE_SCHEMA`] and `fragments` (whose `Mandate` actions must already declare the
/// reserved context fields), with the reserved fields added to `"mandate:request"`.
fn reference_schema(fragments: &[String]) -> Schema {
    let slot = "resource: [Mandate],\n  };";
    assert_eq!(BASE_SCHEMA.matches(slot).count(), 1, "base schema changed");
    let base = BASE_SCHEMA.replace(
        slot,
        &format!("resource: [Mandate],\n    context: {{ {RESERVED_FIELDS} }},\n  }};"),
    );
    let fragments = std::iter::once(&base).chain(fragments).map(|text| {
        SchemaFragment::from_cedarschema_str(text)
            .map(|(f, _)| f)
            .unwrap_or_else(|e| panic!("reference schema: {e:?}\n{text}"))
    });
    Schema::from_schema_fragments(fragments).expect("reference schema")
}

/// Evaluates requests as `CompiledPolicies::evaluate` did before the policy index and
/// the directly built requests (git history: `crates/mandate-policy/src/evaluate.rs`): the
/// context through `Context::from_json_value` with the schema, the entities checked
/// against the schema (which adds every action entity), every policy evaluated.
struct Reference {
    schema: Schema,
    policies: PolicySet,
    relaxed: Option<PolicySet>,
    approval_ids: HashSet<String>,
    ids: Vec<String>,
    authorizer: Authorizer,
    action_type: EntityTypeName,
}

impl Reference {
    /// The schema of the generated policies, with the reserved fields written out as
    /// the compiler adds them.
    fn schema() -> Schema {
        let crm = crm_schema();
        let ip_field = "source_ip?: ipaddr,";
        assert_eq!(
            crm.matches(ip_field).count(),
            2,
            "crm example schema changed"
        );
        let crm = crm.replace(ip_field, &format!("{ip_field} {RESERVED_FIELDS}"));
        reference_schema(&[crm, PROBE_SCHEMA.replace(RESERVED_SLOT, RESERVED_FIELDS)])
    }

    fn new(schema: Schema, text: &str) -> Self {
        let parsed = PolicySet::from_str(text).expect("compiled, so it parses");
        let mut with_ids: Vec<(String, cedar_policy::Policy)> = parsed
            .policies()
            .map(|p| {
                let id = p
                    .annotation("id")
                    .expect("generated policies have ids")
                    .to_owned();
                (id.clone(), p.new_id(PolicyId::new(id)))
            })
            .collect();
        // Source order: ids are `p<n>`.
        with_ids.sort_by_key(|(id, _)| id.trim_start_matches('p').parse::<usize>().ok());
        let approval_ids: HashSet<String> = with_ids
            .iter()
            .filter(|(_, p)| p.annotation("approval").is_some())
            .map(|(id, _)| id.clone())
            .collect();
        let mut policies = PolicySet::new();
        let mut relaxed = PolicySet::new();
        for (id, p) in &with_ids {
            policies.add(p.clone()).expect("unique ids");
            if !approval_ids.contains(id) {
                relaxed.add(p.clone()).expect("unique ids");
            }
        }
        Self {
            schema,
            policies,
            relaxed: (!approval_ids.is_empty()).then_some(relaxed),
            approval_ids,
            ids: with_ids.into_iter().map(|(id, _)| id).collect(),
            authorizer: Authorizer::new(),
            action_type: EntityTypeName::from_str("Mandate::Action").expect("type name"),
        }
    }

    fn evaluate(&self, req: &PolicyRequest<'_>) -> PolicyOutcome {
        let (request, entities) = match self.build(req) {
            Ok(built) => built,
            Err(e) => {
                return PolicyOutcome {
                    allowed: false,
                    approval_required: false,
                    policy_ids: Vec::new(),
                    errors: vec![e],
                };
            }
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        let mut errored = Vec::new();
        let mut errors = Vec::new();
        for e in response.diagnostics().errors() {
            match e {
                AuthorizationError::PolicyEvaluationError(pe) => {
                    errored.push(AsRef::<str>::as_ref(pe.policy_id()).to_owned());
                }
            }
            errors.push(render(e));
        }
        errors.sort();
        let reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| AsRef::<str>::as_ref(id).to_owned())
            .collect();
        let allowed = response.decision() == Decision::Allow && errors.is_empty();
        let approval_required = !allowed
            && errors.is_empty()
            && !reasons.is_empty()
            && reasons.iter().all(|r| self.approval_ids.contains(r))
            && self.relaxed.as_ref().is_some_and(|relaxed| {
                let r = self.authorizer.is_authorized(&request, relaxed, &entities);
                r.decision() == Decision::Allow && r.diagnostics().errors().next().is_none()
            });
        let mut determining =
            if allowed || (response.decision() == Decision::Deny && !reasons.is_empty()) {
                reasons
            } else {
                errored
            };
        determining.sort_by_key(|id| self.ids.iter().position(|x| x == id));
        determining.dedup();
        PolicyOutcome {
            allowed,
            approval_required,
            policy_ids: determining,
            errors,
        }
    }

    fn build(&self, req: &PolicyRequest<'_>) -> Result<(Request, Entities), String> {
        let action =
            EntityUid::from_type_name_and_id(self.action_type.clone(), EntityId::new(req.action));
        match self
            .schema
            .principals_for_action(&action)
            .map(|mut p| p.next().is_some())
        {
            None => return Err(format!("unknown action `{}`", req.action)),
            Some(false) => return Err(format!("action `{}` applies to nothing", req.action)),
            Some(true) => {}
        }
        let resource_type = EntityTypeName::from_str(req.resource_type)
            .map_err(|e| format!("invalid resource type: {e}"))?;
        let type_text = resource_type.to_string();
        let resource_uid =
            EntityUid::from_type_name_and_id(resource_type, EntityId::new(req.resource_id));
        let principal = agent_entity(req.principal)?;
        let principal_uid = principal.uid();

        // The token's own mandate as the resource has the mandate's attributes.
        let own_mandate = req
            .on_behalf
            .mandate
            .filter(|m| type_text == "Mandate::Mandate" && req.resource_id == m.id.as_str())
            .map(mandate_policy::mandate_attributes);
        let attrs = object(own_mandate.as_ref().unwrap_or(req.resource_attributes))?;
        let resource = Entity::from_json_value(
            json!({
                "uid": {"type": type_text, "id": req.resource_id},
                "attrs": keep(declared_entity(&type_text), &attrs),
                "parents": [],
            }),
            Some(&self.schema),
        )
        .map_err(|e| format!("invalid resource: {}", render(&e)))?;

        let context = object(req.context)?;
        let mut context = keep(declared_context(req.action).as_deref(), &context);
        for k in RESERVED_CONTEXT {
            context.remove(*k);
        }
        let entity = |ty: &str, id: &str| json!({"__entity": {"type": ty, "id": id}});
        let mut extra = Vec::new();
        if let Some(u) = req.on_behalf.user {
            context.insert("user".into(), entity("Mandate::User", &u.sub));
            let mut attrs = Map::new();
            if let Some(e) = &u.email {
                attrs.insert("email".into(), json!(e));
            }
            let parents: Vec<Value> = u
                .groups
                .iter()
                .map(|g| json!({"type": "Mandate::Group", "id": g}))
                .collect();
            extra.push(
                Entity::from_json_value(
                    json!({"uid": {"type": "Mandate::User", "id": u.sub}, "attrs": attrs, "parents": parents}),
                    Some(&self.schema),
                )
                .map_err(|e| format!("invalid user: {}", render(&e)))?,
            );
        }
        if let Some(m) = req.on_behalf.mandate {
            context.insert("mandate".into(), entity("Mandate::Mandate", m.id.as_str()));
            if !(type_text == "Mandate::Mandate" && req.resource_id == m.id.as_str()) {
                extra.push(
                    Entity::from_json_value(
                        json!({
                            "uid": {"type": "Mandate::Mandate", "id": m.id.as_str()},
                            "attrs": mandate_policy::mandate_attributes(m),
                            "parents": [],
                        }),
                        Some(&self.schema),
                    )
                    .map_err(|e| format!("invalid mandate: {}", render(&e)))?,
                );
            }
        }
        if !req.on_behalf.chain.is_empty() {
            let chain: Vec<Value> = req
                .on_behalf
                .chain
                .iter()
                .map(|a| entity("Mandate::Agent", a))
                .collect();
            context.insert("chain".into(), Value::Array(chain));
            context.insert("delegation_depth".into(), json!(req.on_behalf.chain.len()));
        }
        let zero = Risk::default();
        let risk = req.on_behalf.risk.unwrap_or(&zero);
        context.insert(
            "risk".into(),
            json!({
                "score": risk.score,
                "level": risk.level(),
                "anomalies": risk.anomalies,
                "step_up": risk.step_up,
            }),
        );
        let context =
            Context::from_json_value(Value::Object(context), Some((&self.schema, &action)))
                .map_err(|e| format!("invalid context: {}", render(&e)))?;
        let entities = Entities::from_entities(
            [principal, resource].into_iter().chain(extra),
            Some(&self.schema),
        )
        .map_err(|e| format!("invalid entities: {}", render(&e)))?;
        let request = Request::new(
            principal_uid,
            action,
            resource_uid,
            context,
            Some(&self.schema),
        )
        .map_err(|e| match e {
            RequestValidationError::InvalidContext(_) => "invalid context".to_owned(),
            other => format!("invalid request: {}", render(&other)),
        })?;
        Ok((request, entities))
    }
}

fn agent_entity(agent: &Agent) -> Result<Entity, String> {
    let uid = EntityUid::from_type_name_and_id(
        EntityTypeName::from_str("Mandate::Agent").map_err(|e| e.to_string())?,
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
    Entity::new_with_tags(uid, attrs, [], tags).map_err(|e| e.to_string())
}

fn object(v: &Value) -> Result<Map<String, Value>, String> {
    match v {
        Value::Object(m) => Ok(m.clone()),
        Value::Null => Ok(Map::new()),
        _ => Err("not an object".to_owned()),
    }
}

/// Cedar's message and its causes, as Mandate renders them.
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

/// What must agree with the reference: the decision, approval, the determining
/// policies, and whether anything went wrong.
fn summary(o: &PolicyOutcome) -> (bool, bool, &[String], bool) {
    (
        o.allowed,
        o.approval_required,
        &o.policy_ids,
        o.errors.is_empty(),
    )
}

// ---- requests ----

const AGENT_IDS: &[&str] = &[
    AGENT_ID,
    "agt_01JA0000000000000000000001",
    "agt_01JB0000000000000000000002",
];
const LABEL_KEYS: &[&str] = &["team", "region", "role", "clearance", "access", "env"];
const TEAMS: &[&str] = &["sales", "support", "ops"];
const OWNERS: &[&str] = &["alice@example.com", "bob@example.com"];
const NAMES: &[&str] = &["test-bot", "crm-bot"];
const STATUSES: &[&str] = &["active", "suspended"];
const DATA_CLASSES: &[&str] = &["internal", "secret", "public"];
const ANOMALIES: &[&str] = &["rate_spike", "new_action", "deny_burst"];

/// The values a label key takes (small pools, so equalities hit).
fn label_values(key: &str) -> &'static [&'static str] {
    match key {
        "team" => TEAMS,
        "region" => &["emea", "us"],
        "role" => &["billing", "admin"],
        "clearance" => &["secret", "public"],
        "access" => &["write", "read"],
        _ => &["prod", "a=b"],
    }
}

/// Networks the generated ranges and addresses are drawn around.
const BASES: &[u32] = &[
    0x0a00_0000, // 10.0.0.0
    0xc0a8_0100, // 192.168.1.0
    0xac10_0000, // 172.16.0.0
    0x0000_0000,
    0xffff_ffff,
    0x7f00_0001, // 127.0.0.1
];

fn host_mask(prefix: u32) -> u32 {
    u32::MAX.checked_shr(prefix).unwrap_or(0)
}

#[derive(Debug, Clone)]
struct AgentSpec {
    id: &'static str,
    name: &'static str,
    owner: &'static str,
    status: &'static str,
    labels: BTreeMap<String, String>,
}

impl AgentSpec {
    fn build(&self) -> Agent {
        Agent {
            id: AgentId::parse(self.id).expect("agent id"),
            name: AgentName::try_from(self.name.to_owned()).expect("name"),
            owner: Owner::try_from(self.owner.to_owned()).expect("owner"),
            purpose: Purpose::default(),
            labels: Labels::try_from(self.labels.clone()).expect("labels"),
            boundary: Boundary::default(),
            status: AgentStatus::parse(self.status).expect("status"),
            status_reason: None,
            created_at: Timestamp::from_secs(0),
            updated_at: Timestamp::from_secs(0),
        }
    }
}

/// A generated request, owning everything a [`PolicyRequest`] borrows.
#[derive(Clone)]
struct Req {
    agent: AgentSpec,
    action: &'static str,
    resource_type: &'static str,
    resource_id: &'static str,
    attrs: Value,
    context: Value,
    risk: Option<Risk>,
    user: Option<UserRef>,
    chain: Vec<&'static str>,
}

impl fmt::Debug for Req {
    /// In the shape of a test file case, to paste into a regression test.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = json!({
            "principal": {
                "id": self.agent.id, "name": self.agent.name, "owner": self.agent.owner,
                "status": self.agent.status, "labels": self.agent.labels,
            },
            "action": self.action,
            "resource": {"type": self.resource_type, "id": self.resource_id, "attributes": self.attrs},
            "context": self.context,
            "risk": self.risk,
            "user": self.user.as_ref().map(|u| json!({"sub": u.sub, "email": u.email, "groups": u.groups})),
            "chain": self.chain,
        });
        write!(f, "{v:#}")
    }
}

impl Req {
    /// Answers it three ways: indexed, unindexed and the reference.
    fn outcomes(
        &self,
        compiled: &CompiledPolicies,
        reference: &Reference,
    ) -> (PolicyOutcome, PolicyOutcome, PolicyOutcome) {
        let agent = self.agent.build();
        let req = PolicyRequest {
            principal: &agent,
            action: self.action,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            resource_attributes: &self.attrs,
            context: &self.context,
            on_behalf: OnBehalf {
                user: self.user.as_ref(),
                mandate: None,
                chain: &self.chain,
                risk: self.risk.as_ref(),
            },
        };
        (
            compiled.evaluate(&req),
            compiled.evaluate_unindexed(&req),
            reference.evaluate(&req),
        )
    }
}

fn agent_spec() -> impl Strategy<Value = AgentSpec> {
    let labels = proptest::collection::vec(
        select(LABEL_KEYS).prop_flat_map(|k| (Just(k), select(label_values(k)))),
        0..=4,
    )
    .prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    });
    (
        select(AGENT_IDS),
        select(NAMES),
        select(OWNERS),
        select(STATUSES),
        labels,
    )
        .prop_map(|(id, name, owner, status, labels)| AgentSpec {
            id,
            name,
            owner,
            status,
            labels,
        })
}

/// `right`, or in a messy request sometimes missing or `wrong`.
fn field(
    right: impl Strategy<Value = Value> + 'static,
    wrong: impl Strategy<Value = Value> + 'static,
    messy: bool,
) -> BoxedStrategy<Option<Value>> {
    if messy {
        prop_oneof![
            10 => right.prop_map(Some),
            1 => Just(None),
            2 => wrong.prop_map(Some),
        ]
        .boxed()
    } else {
        right.prop_map(Some).boxed()
    }
}

/// Sometimes present: `right`, or in a messy request sometimes `wrong`.
fn optional(
    right: impl Strategy<Value = Value> + 'static,
    wrong: impl Strategy<Value = Value> + 'static,
    messy: bool,
) -> BoxedStrategy<Option<Value>> {
    if messy {
        prop_oneof![
            4 => right.prop_map(Some),
            4 => Just(None),
            2 => wrong.prop_map(Some),
        ]
        .boxed()
    } else {
        proptest::option::of(right).boxed()
    }
}

/// Values of the wrong kind for most fields, escapes included.
fn junk() -> BoxedStrategy<Value> {
    select(vec![
        json!(null),
        json!(1.5),
        json!(u64::MAX),
        json!("x"),
        json!(7),
        json!(true),
        json!([]),
        json!(["a", 1]),
        json!({}),
        json!({"__extn": {"fn": "unknown", "arg": "u"}}),
        json!({"__extn": {"fn": "decimal", "arg": "1.5"}}),
        json!({"__entity": {"type": "Mandate::Agent", "id": AGENT_ID}}),
        json!({"__expr": "1 + 1"}),
        json!({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}),
    ])
    .boxed()
}

/// A Cedar `Long`, near the limits sometimes (sums and products then overflow).
fn long() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => (0i64..100_000).prop_map(Value::from),
        1 => select(vec![
            i64::MAX, i64::MIN, i64::MAX - 1, 50_000, 50_001, -1, 0, 4_611_686_018_427_387_904,
        ])
        .prop_map(Value::from),
    ]
    .boxed()
}

/// An IPv4 address around one of [`BASES`]: inside a random-sized block, at its ends
/// or just outside.
fn ipv4() -> BoxedStrategy<u32> {
    (select(BASES), 0u32..=32, any::<u32>(), 0u8..5)
        .prop_map(|(base, bits, noise, at)| {
            // The low `bits` bits.
            let mask = host_mask(32 - bits);
            let network = base & !mask;
            let broadcast = base | mask;
            match at {
                0 => base ^ (noise & mask),
                1 => network.wrapping_sub(1),
                2 => network,
                3 => broadcast,
                _ => broadcast.wrapping_add(1),
            }
        })
        .boxed()
}

/// Addresses and ranges Cedar's `ip()` reads.
fn ip_json() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => ipv4().prop_map(|a| json!(Ipv4Addr::from(a).to_string())),
        2 => (ipv4(), 0u32..=32).prop_map(|(a, p)| json!(format!("{}/{p}", Ipv4Addr::from(a)))),
        1 => select(vec!["::1", "fe80::1", "2001:db8::1", "::", "::ffff:a00:1", "10.0.0.1/32", "0.0.0.0/0"])
            .prop_map(|s| json!(s)),
    ]
    .boxed()
}

/// What else a caller may send where an `ipaddr` is declared: strings `ip()` refuses,
/// escapes, other kinds.
fn bad_ip_json() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => select(vec![
            "999.1.1.1", "10.0.0", "010.0.0.1", "", " 10.0.0.1", "10.0.0.1 ", "10.0.0.1/33",
            "10.0.0.1/08", "10.0.0.1/", "abc", "1.2.3.4.5", "::ffff:10.0.0.1", "10.0.0.1/-1",
        ])
        .prop_map(|s| json!(s)),
        1 => ipv4().prop_map(|a| json!({"__extn": {"fn": "ip", "arg": Ipv4Addr::from(a).to_string()}})),
        1 => ipv4().prop_map(|a| json!({"fn": "ip", "arg": Ipv4Addr::from(a).to_string()})),
        1 => junk(),
    ]
    .boxed()
}

fn string_from(pool: &'static [&'static str]) -> BoxedStrategy<Value> {
    select(pool).prop_map(|s| json!(s)).boxed()
}

/// A `Mandate::Agent` reference, escaped or (as the schema allows) not.
fn agent_ref() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => select(AGENT_IDS).prop_map(|id| json!({"__entity": {"type": "Mandate::Agent", "id": id}})),
        1 => select(AGENT_IDS).prop_map(|id| json!({"type": "Mandate::Agent", "id": id})),
    ]
    .boxed()
}

/// References of the wrong type or shape.
fn bad_agent_ref() -> BoxedStrategy<Value> {
    prop_oneof![
        1 => Just(json!({"__entity": {"type": "Crm::Contact", "id": "c1"}})),
        1 => Just(json!({"__entity": {"type": "Nope::Thing", "id": "x"}})),
        1 => Just(json!({"__entity": {"type": "Mandate::Agent", "id": AGENT_ID, "x": 1}})),
        1 => Just(json!({"__entity": {"type": "Mandate::Agent", "id": AGENT_ID}, "x": 1})),
        1 => junk(),
    ]
    .boxed()
}

/// Builds a JSON object from optional fields, plus sometimes an undeclared one.
fn record(fields: Vec<(&'static str, BoxedStrategy<Option<Value>>)>) -> BoxedStrategy<Value> {
    let (names, values): (Vec<&'static str>, Vec<_>) = fields.into_iter().unzip();
    (values, any::<bool>())
        .prop_map(move |(values, extra)| {
            let mut m = Map::new();
            for (name, v) in names.iter().zip(values) {
                if let Some(v) = v {
                    m.insert((*name).to_owned(), v);
                }
            }
            if extra {
                m.insert("undeclared".to_owned(), json!({"__extn": "junk"}));
            }
            Value::Object(m)
        })
        .boxed()
}

fn string_set() -> BoxedStrategy<Value> {
    proptest::collection::vec(string_from(&["a", "b"]), 0..3)
        .prop_map(Value::from)
        .boxed()
}

fn resource_attrs(ty: &'static str, messy: bool) -> BoxedStrategy<Value> {
    let team = || {
        field(
            string_from(&["sales", "support", "ops", "Sales"]),
            junk(),
            messy,
        )
    };
    match ty {
        "Crm::Contact" => record(vec![
            ("team", team()),
            (
                "region",
                optional(string_from(&["emea", "us"]), junk(), messy),
            ),
        ]),
        "Crm::Invoice" => record(vec![
            ("team", team()),
            ("amount", field(long(), junk(), messy)),
        ]),
        "Probe::Doc" => record(vec![
            ("owner", field(agent_ref(), bad_agent_ref(), messy)),
            ("tags", field(string_set(), junk(), messy)),
            (
                "meta",
                field(
                    (long(), proptest::option::of(ip_json())).prop_map(|(level, ip)| match ip {
                        Some(ip) => json!({"level": level, "ip": ip}),
                        None => json!({"level": level}),
                    }),
                    prop_oneof![
                        bad_ip_json().prop_map(|ip| json!({"level": 1, "ip": ip})),
                        junk(),
                    ],
                    messy,
                ),
            ),
        ]),
        _ => record(vec![
            ("agent", field(agent_ref(), bad_agent_ref(), messy)),
            (
                "intent",
                field(string_from(&["rotate keys", "x"]), junk(), messy),
            ),
            ("actions", field(Just(json!(["crm:*"])), junk(), messy)),
            ("resources", field(Just(json!(["*"])), junk(), messy)),
            ("data_classes", field(Just(json!([])), junk(), messy)),
            (
                "lifetime_secs",
                field(select(vec![600, 3600]).prop_map(Value::from), junk(), messy),
            ),
        ]),
    }
}

fn context(messy: bool) -> BoxedStrategy<Value> {
    let crm = record(vec![
        (
            "data_class",
            field(string_from(DATA_CLASSES), junk(), messy),
        ),
        ("source_ip", optional(ip_json(), bad_ip_json(), messy)),
        ("amount", field(long(), junk(), messy)),
        ("refunded", field(long(), junk(), messy)),
        // Reserved: always replaced.
        (
            "risk",
            optional(
                Just(
                    json!({"score": 99, "level": "critical", "anomalies": ["deny_burst"], "step_up": true}),
                ),
                junk(),
                messy,
            ),
        ),
        (
            "chain",
            optional(
                Just(json!([{"__entity": {"type": "Mandate::Agent", "id": AGENT_ID}}])),
                junk(),
                messy,
            ),
        ),
    ]);
    let meta = (
        long(),
        proptest::option::of(ip_json()),
        proptest::option::of(string_from(&["x", "y"])),
    )
        .prop_map(|(level, ip, note)| {
            let mut m = Map::new();
            m.insert("level".into(), level);
            if let Some(ip) = ip {
                m.insert("ip".into(), ip);
            }
            if let Some(note) = note {
                m.insert("note".into(), note);
            }
            Value::Object(m)
        });
    let bad_meta = prop_oneof![
        select(vec![
            json!({"level": "1"}),
            json!({"level": 1, "extra": 2}),
            json!({"level": 1.5}),
            json!({}),
            json!({"level": 1, "note": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": "x"}}}}}}}}}),
        ]),
        bad_ip_json().prop_map(|ip| json!({"level": 1, "ip": ip})),
        junk(),
    ];
    let probe = record(vec![
        (
            "tags",
            optional(
                string_set(),
                select(vec![json!("a"), json!([1]), json!([["a"]])]),
                messy,
            ),
        ),
        ("meta", optional(meta, bad_meta, messy)),
        ("who", optional(agent_ref(), bad_agent_ref(), messy)),
        (
            "ips",
            optional(
                select(vec![
                    json!([{"__extn": {"fn": "ip", "arg": "10.0.0.1"}}]),
                    json!([{"__extn": {"fn": "ip", "arg": "10.0.0.1"}}, {"__extn": {"fn": "ip", "arg": "10.0.0.2"}}]),
                    json!([]),
                ]),
                select(vec![
                    json!(["10.0.0.1"]),
                    json!([{"__extn": {"fn": "ip", "arg": "10.0.0.1"}}, "10.0.0.2"]),
                    json!("10.0.0.1"),
                ]),
                messy,
            ),
        ),
        (
            "d",
            optional(
                select(vec![
                    json!("1.5"),
                    json!("2.0"),
                    json!({"__extn": {"fn": "decimal", "arg": "1.5"}}),
                ]),
                select(vec![json!("abc"), json!(1), json!(1.5)]),
                messy,
            ),
        ),
        (
            "flag",
            optional(
                select(vec![json!(true), json!(false)]),
                select(vec![json!("true"), json!(1)]),
                messy,
            ),
        ),
        ("ip", optional(ip_json(), bad_ip_json(), messy)),
        (
            "at",
            optional(
                select(vec![json!("2024-01-01"), json!("2023-01-01T00:00:00Z")]),
                select(vec![json!("nope"), json!(5)]),
                messy,
            ),
        ),
    ]);
    (crm, probe)
        .prop_map(|(crm, probe)| {
            let mut m = object(&crm).unwrap_or_default();
            m.extend(object(&probe).unwrap_or_default());
            Value::Object(m)
        })
        .boxed()
}

fn risk() -> BoxedStrategy<Risk> {
    (
        select(vec![0u8, 10, 40, 55, 70, 92, 93, 95, 100]),
        proptest::sample::subsequence(ANOMALIES, 0..=2),
        any::<bool>(),
    )
        .prop_map(|(score, anomalies, step_up)| Risk {
            score,
            anomalies: anomalies.into_iter().map(str::to_owned).collect(),
            step_up,
        })
        .boxed()
}

fn user() -> BoxedStrategy<UserRef> {
    (
        select(vec!["alice", "bob", "al\"ice"]),
        proptest::option::of(select(vec!["x@example.com", "y@example.com"])),
        proptest::sample::subsequence(vec!["finance", "eng"], 0..=2),
    )
        .prop_map(|(sub, email, groups)| UserRef {
            issuer: "test".to_owned(),
            sub: sub.to_owned(),
            email: email.map(str::to_owned),
            groups: groups.into_iter().map(str::to_owned).collect(),
        })
        .boxed()
}

const ACTIONS: &[&str] = &[
    "crm:read",
    "crm:write",
    "crm:refund",
    "mandate:request",
    "probe:act",
];

/// The resource types an action applies to (the first is its usual one).
fn resource_types(action: &str) -> &'static [&'static str] {
    match action {
        "crm:read" => &["Crm::Contact", "Crm::Invoice"],
        "crm:write" => &["Crm::Contact"],
        "crm:refund" => &["Crm::Invoice"],
        "mandate:request" => &["Mandate::Mandate"],
        _ => &["Probe::Doc"],
    }
}

/// A request; a messy one has values of the wrong kind, missing fields and escapes.
fn request() -> BoxedStrategy<Req> {
    proptest::bool::weighted(0.3)
        .prop_flat_map(request_of)
        .boxed()
}

fn request_of(messy: bool) -> BoxedStrategy<Req> {
    let action = prop_oneof![
        30 => select(ACTIONS),
        1 => select(vec!["all", "crm:nope"]),
    ];
    let target = action.prop_flat_map(move |action| {
        let ty = prop_oneof![
            8 => select(resource_types(action)),
            1 => select(vec!["Crm::Contact", "Crm::Invoice", "Probe::Doc", "Mandate::Mandate"]),
        ];
        (Just(action), ty).prop_flat_map(move |(action, ty)| {
            let ids: &'static [&'static str] = match ty {
                "Crm::Contact" => &["c1", "c2"],
                "Crm::Invoice" => &["i1", "i2"],
                "Probe::Doc" => &["d1"],
                _ => &["m1", "m2"],
            };
            (
                Just(action),
                Just(ty),
                select(ids),
                resource_attrs(ty, messy),
            )
        })
    });
    (
        agent_spec(),
        target,
        context(messy),
        proptest::option::of(risk()),
        proptest::option::weighted(0.3, user()),
        proptest::sample::subsequence(AGENT_IDS, 0..=2),
    )
        .prop_map(
            |(agent, (action, resource_type, resource_id, attrs), context, risk, user, chain)| {
                Req {
                    agent,
                    action,
                    resource_type,
                    resource_id,
                    attrs,
                    context,
                    risk,
                    user,
                    chain,
                }
            },
        )
        .boxed()
}

// ---- policies ----

/// One generated policy, without its `@id`.
#[derive(Debug, Clone)]
struct PolicyText {
    effect: &'static str,
    principal: String,
    action: &'static str,
    resource: &'static str,
    clauses: Vec<(bool, String)>,
}

impl PolicyText {
    fn render(&self, id: usize) -> String {
        let mut out = format!("@id(\"p{id}\")\n");
        let effect = match self.effect {
            "approval" => {
                out.push_str("@approval\n");
                "forbid"
            }
            e => e,
        };
        out.push_str(&format!(
            "{effect} ({}, {}, {})",
            self.principal, self.action, self.resource
        ));
        for (when, body) in &self.clauses {
            let kind = if *when { "when" } else { "unless" };
            out.push_str(&format!("\n{kind} {{ {body} }}"));
        }
        out.push_str(";\n");
        out
    }
}

fn render_set(policies: &[PolicyText]) -> String {
    policies
        .iter()
        .enumerate()
        .map(|(i, p)| p.render(i))
        .collect::<Vec<_>>()
        .join("\n")
}

fn action(id: &str) -> String {
    format!("Mandate::Action::\"{id}\"")
}

/// An IPv4 range literal: a network around one of [`BASES`], any prefix, host bits
/// sometimes set, sometimes a bare address.
fn range_v4() -> BoxedStrategy<String> {
    (select(BASES), 0u32..=32, any::<u32>(), 0u8..4)
        .prop_map(|(base, prefix, noise, form)| {
            let hosts = host_mask(prefix);
            let addr = match form {
                0 => base & !hosts,
                1 => base ^ (noise & hosts),
                _ => base,
            };
            if form == 3 {
                Ipv4Addr::from(addr).to_string()
            } else {
                format!("{}/{prefix}", Ipv4Addr::from(addr))
            }
        })
        .boxed()
}

fn label_pair() -> BoxedStrategy<(&'static str, &'static str)> {
    select(LABEL_KEYS)
        .prop_flat_map(|k| (Just(k), select(label_values(k))))
        .boxed()
}

/// Conditions valid on every action and resource.
fn common_conditions() -> Vec<(u32, BoxedStrategy<String>)> {
    let eq_op = || select(vec!["==", "!="]);
    vec![
        (
            10,
            select(LABEL_KEYS)
                .prop_map(|k| format!("principal.hasTag(\"{k}\")"))
                .boxed(),
        ),
        (
            14,
            (label_pair(), eq_op())
                .prop_map(|((k, v), op)| {
                    format!("principal.hasTag(\"{k}\") && principal.getTag(\"{k}\") {op} \"{v}\"")
                })
                .boxed(),
        ),
        (
            4,
            label_pair()
                .prop_map(|(k, v)| {
                    format!("principal.hasTag(\"{k}\") && \"{v}\" == principal.getTag(\"{k}\")")
                })
                .boxed(),
        ),
        (
            12,
            label_pair()
                .prop_map(|(k, v)| format!("principal.labels.contains(\"{k}={v}\")"))
                .boxed(),
        ),
        (
            2,
            select(vec!["team", "env=a", "env=a=b", "team=sales=x", ""])
                .prop_map(|s| format!("principal.labels.contains(\"{s}\")"))
                .boxed(),
        ),
        (
            8,
            prop_oneof![
                select(OWNERS).prop_map(|v| ("owner", v)),
                select(NAMES).prop_map(|v| ("name", v)),
                select(vec!["active", "suspended", "Active"]).prop_map(|v| ("status", v)),
            ]
            .prop_flat_map(move |(attr, v)| {
                eq_op().prop_map(move |op| format!("principal.{attr} {op} \"{v}\""))
            })
            .boxed(),
        ),
        (
            3,
            select(AGENT_IDS)
                .prop_map(|id| format!("principal == Mandate::Agent::\"{id}\""))
                .boxed(),
        ),
        (
            1,
            Just("principal in Mandate::Group::\"g1\"".to_owned()).boxed(),
        ),
        (
            6,
            (select(vec![">", ">=", "<"]), 0u8..=100)
                .prop_map(|(op, n)| format!("context.risk.score {op} {n}"))
                .boxed(),
        ),
        (
            3,
            select(vec!["none", "low", "high", "critical"])
                .prop_map(|l| format!("context.risk.level == \"{l}\""))
                .boxed(),
        ),
        (
            6,
            select(vec![
                "context.risk.step_up",
                "context.risk.anomalies.contains(\"rate_spike\")",
                "context has risk",
                "context has user",
                "context has chain",
                "context has delegation_depth",
                "context has user && context.user in Mandate::Group::\"finance\"",
                "context has user && context.user has email && context.user.email == \"x@example.com\"",
                "context has chain && context.chain.contains(principal)",
                "context has delegation_depth && context.delegation_depth > 1",
            ])
            .prop_map(str::to_owned)
            .boxed(),
        ),
        // Overflows when the score is 93 or more: an erroring policy.
        (
            3,
            Just("context.risk.score * 100000000000000000 > 1".to_owned()).boxed(),
        ),
        // Action entities named in a condition (every action entity is then loaded).
        (
            3,
            select(vec![
                format!("action == {}", action("crm:write")),
                format!("action in [{}, {}]", action("crm:read"), action("probe:act")),
                format!("action in {}", action("all")),
                format!("action != {}", action("crm:refund")),
            ])
            .boxed(),
        ),
        (
            3,
            select(vec![
                "resource is Crm::Invoice",
                "resource is Crm::Contact",
                "resource == Crm::Contact::\"c1\"",
                "resource == Crm::Invoice::\"i2\"",
            ])
            .prop_map(str::to_owned)
            .boxed(),
        ),
        (
            4,
            (select(DATA_CLASSES), eq_op())
                .prop_map(|(d, op)| {
                    format!("context has data_class && context.data_class {op} \"{d}\"")
                })
                .boxed(),
        ),
        (
            6,
            range_v4()
                .prop_map(|r| {
                    format!("context has source_ip && context.source_ip.isInRange(ip(\"{r}\"))")
                })
                .boxed(),
        ),
        (
            3,
            (select(TEAMS), eq_op())
                .prop_map(|(t, op)| format!("resource has team && resource.team {op} \"{t}\""))
                .boxed(),
        ),
        (
            2,
            select(vec!["emea", "us"])
                .prop_map(|r| format!("resource has region && resource.region == \"{r}\""))
                .boxed(),
        ),
        (
            2,
            select(vec!["true", "false", "!(principal.hasTag(\"team\"))"])
                .prop_map(str::to_owned)
                .boxed(),
        ),
    ]
}

/// Conditions on the CRM's actions (read, write, refund on contacts and invoices).
fn crm_conditions() -> Vec<(u32, BoxedStrategy<String>)> {
    let eq_op = || select(vec!["==", "!="]);
    let mut out = common_conditions();
    out.extend([
        (
            12,
            (
                select(vec!["sales", "support", "ops", "Sales"]),
                eq_op(),
                any::<bool>(),
            )
                .prop_map(|(t, op, swap)| {
                    if swap {
                        format!("\"{t}\" {op} resource.team")
                    } else {
                        format!("resource.team {op} \"{t}\"")
                    }
                })
                .boxed(),
        ),
        (
            6,
            Just(
                "principal.hasTag(\"team\") && principal.getTag(\"team\") == resource.team"
                    .to_owned(),
            )
            .boxed(),
        ),
        (
            10,
            (select(DATA_CLASSES), eq_op())
                .prop_map(|(d, op)| format!("context.data_class {op} \"{d}\""))
                .boxed(),
        ),
        (
            12,
            range_v4()
                .prop_map(|r| {
                    format!("context has source_ip && context.source_ip.isInRange(ip(\"{r}\"))")
                })
                .boxed(),
        ),
        (
            3,
            select(vec!["::1/128", "fe80::/10", "::/0", "::ffff:0:0/96"])
                .prop_map(|r| {
                    format!("context has source_ip && context.source_ip.isInRange(ip(\"{r}\"))")
                })
                .boxed(),
        ),
        (
            4,
            select(vec![
                "context has source_ip",
                "resource has region",
                "context has source_ip && context.source_ip.isIpv4()",
                "context has source_ip && context.source_ip.isLoopback()",
                "context has amount && context.amount > 50000",
                "context has amount && context.amount + context.refunded > 100",
                "resource has amount && resource.amount > 1000",
                "context.risk.score > 50 && context.data_class == \"secret\"",
                "context.data_class == \"secret\" || resource.team == \"sales\"",
            ])
            .prop_map(str::to_owned)
            .boxed(),
        ),
    ]);
    out
}

/// Conditions on refunds (invoices, with amounts).
fn refund_conditions() -> Vec<(u32, BoxedStrategy<String>)> {
    let mut out = crm_conditions();
    out.push((
        12,
        select(vec![
            // Overflows on absurd amounts: an erroring policy.
            "context.amount + context.refunded > resource.amount",
            "context.amount > 50000",
            "context.amount * 1000 > resource.amount",
            "resource.amount - context.amount < 0",
        ])
        .prop_map(str::to_owned)
        .boxed(),
    ));
    out
}

/// Conditions on mandate requests.
fn mandate_conditions() -> Vec<(u32, BoxedStrategy<String>)> {
    let mut out = common_conditions();
    out.push((
        12,
        select(vec![
            "resource.intent == \"rotate keys\"",
            "resource.intent != \"x\"",
            "\"x\" == resource.intent",
            "resource.lifetime_secs > 600",
            "resource.agent == principal",
            "resource.actions.contains(\"crm:*\")",
        ])
        .prop_map(str::to_owned)
        .boxed(),
    ));
    out
}

/// Conditions on the probe action (nested records, sets, entities, extensions).
fn probe_conditions() -> Vec<(u32, BoxedStrategy<String>)> {
    let mut out = common_conditions();
    out.extend([
        (
            20,
            select(vec![
                "resource.owner == principal",
                "resource.meta.level > 2",
                "resource.tags.contains(\"a\")",
                "resource.meta has ip && resource.meta.ip.isInRange(ip(\"10.0.0.0/8\"))",
                "context has meta && context.meta.level > 1",
                "context has meta && context.meta has note && context.meta.note == \"x\"",
                "context has meta && context.meta has ip && context.meta.ip.isIpv4()",
                "context has who && context.who == principal",
                "context has ips && context.ips.contains(ip(\"10.0.0.1\"))",
                "context has d && context.d.greaterThan(decimal(\"1.5\"))",
                "context has flag && context.flag",
                "context has tags && context.tags.contains(\"a\")",
                "context has at && context.at > datetime(\"2023-06-01\")",
                "context has ip",
            ])
            .prop_map(str::to_owned)
            .boxed(),
        ),
        (
            10,
            range_v4()
                .prop_map(|r| format!("context has ip && context.ip.isInRange(ip(\"{r}\"))"))
                .boxed(),
        ),
    ]);
    out
}

fn one_of(weighted: Vec<(u32, BoxedStrategy<String>)>) -> BoxedStrategy<String> {
    proptest::strategy::Union::new_weighted(weighted).boxed()
}

/// 0–2 clauses, each a conjunction of 1–4 conditions, some under `||` or `!`.
fn clauses(conditions: BoxedStrategy<String>) -> BoxedStrategy<Vec<(bool, String)>> {
    let c = conditions.clone();
    let conjunct = prop_oneof![
        10 => c.clone(),
        1 => (c.clone(), c.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
        1 => c.clone().prop_map(|a| format!("!({a})")),
        1 => (c.clone(), c.clone(), c).prop_map(|(a, b, e)| format!("(if {a} then {b} else {e})")),
    ];
    let clause = (
        proptest::bool::weighted(0.75),
        proptest::collection::vec(conjunct, 1..=4).prop_map(|cs| cs.join(" && ")),
    );
    prop_oneof![
        1 => Just(Vec::new()),
        6 => proptest::collection::vec(clause, 1..=2),
    ]
    .boxed()
}

fn principal_scope() -> BoxedStrategy<String> {
    prop_oneof![
        12 => Just("principal".to_owned()),
        4 => select(AGENT_IDS).prop_map(|id| format!("principal == Mandate::Agent::\"{id}\"")),
        2 => Just("principal is Mandate::Agent".to_owned()),
        1 => Just("principal in Mandate::Group::\"g1\"".to_owned()),
        1 => Just("principal is Mandate::Agent in Mandate::Group::\"g1\"".to_owned()),
    ]
    .boxed()
}

/// Policies of one family: their action and resource scopes and the conditions that
/// type-check under them.
fn family(
    actions: Vec<&'static str>,
    resources: Vec<&'static str>,
    conditions: Vec<(u32, BoxedStrategy<String>)>,
) -> BoxedStrategy<PolicyText> {
    (
        select(vec![
            "permit", "permit", "permit", "forbid", "forbid", "approval",
        ]),
        principal_scope(),
        select(actions),
        select(resources),
        clauses(one_of(conditions)),
    )
        .prop_map(
            |(effect, principal, action, resource, clauses)| PolicyText {
                effect,
                principal,
                action,
                resource,
                clauses,
            },
        )
        .boxed()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn policy() -> BoxedStrategy<PolicyText> {
    let a = |id: &str| leak(format!("action == {}", action(id)));
    let crm_actions = vec![
        a("crm:read"),
        a("crm:write"),
        leak(format!(
            "action in [{}, {}]",
            action("crm:read"),
            action("crm:write")
        )),
        leak(format!(
            "action in [{}, {}]",
            action("crm:read"),
            action("crm:refund")
        )),
        leak(format!(
            "action in [{}, {}, {}]",
            action("crm:read"),
            action("crm:write"),
            action("crm:refund")
        )),
    ];
    let crm_resources = vec![
        "resource",
        "resource is Crm::Contact",
        "resource is Crm::Invoice",
        "resource == Crm::Contact::\"c1\"",
        "resource == Crm::Invoice::\"i1\"",
        "resource in Crm::Contact::\"c2\"",
    ];
    let any_actions = vec![
        "action",
        leak(format!("action in {}", action("all"))),
        a("mandate:request"),
        leak(format!(
            "action in [{}, {}]",
            action("crm:write"),
            action("probe:act")
        )),
    ];
    let any_resources = vec![
        "resource",
        "resource is Crm::Contact",
        "resource is Mandate::Mandate",
        "resource == Mandate::Mandate::\"m1\"",
        "resource == Crm::Contact::\"c2\"",
    ];
    // Near misses Cedar's validator refuses (a missing tag or optional attribute is an
    // error, `isInRange` takes one range, an entity literal cannot be dereferenced): a
    // set holding one is skipped, so they are rare.
    let refused = select(vec![
        "principal.getTag(\"team\") == \"sales\"",
        "resource.region == \"emea\"",
        "context.source_ip.isInRange(ip(\"10.0.0.0/8\"))",
        "context has source_ip && context.source_ip.isInRange(ip(\"10.0.0.0/8\"), ip(\"192.168.0.0/16\"))",
        "context.risk == \"high\"",
        "Mandate::Action::\"crm:write\" in Mandate::Action::\"all\"",
    ])
    .prop_map(str::to_owned)
    .boxed();
    prop_oneof![
        1 => family(crm_actions.clone(), crm_resources.clone(), vec![(1, refused)]),
        80 => family(crm_actions, crm_resources, crm_conditions()),
        40 => family(
            vec![a("crm:refund")],
            vec!["resource", "resource is Crm::Invoice", "resource == Crm::Invoice::\"i1\""],
            refund_conditions(),
        ),
        60 => family(any_actions, any_resources, common_conditions()),
        20 => family(
            vec![a("mandate:request")],
            vec!["resource", "resource is Mandate::Mandate"],
            mandate_conditions(),
        ),
        40 => family(
            vec![a("probe:act")],
            vec!["resource", "resource is Probe::Doc", "resource == Probe::Doc::\"d1\""],
            probe_conditions(),
        ),
    ]
    .boxed()
}

// ---- the properties ----

/// Counts over a run, reported at the end.
#[derive(Default)]
struct Stats {
    sets: AtomicUsize,
    refused: AtomicUsize,
    requests: AtomicUsize,
    allowed: AtomicUsize,
    approval: AtomicUsize,
    errors: AtomicUsize,
    bad_requests: AtomicUsize,
}

impl Stats {
    fn add(n: &AtomicUsize) {
        n.fetch_add(1, Ordering::Relaxed);
    }

    fn get(n: &AtomicUsize) -> usize {
        n.load(Ordering::Relaxed)
    }
}

/// Answers every request against one policy set three ways; the first disagreement.
fn check_set(
    schema: &Schema,
    policies: &[PolicyText],
    requests: &[Req],
    stats: &Stats,
) -> Result<(), TestCaseError> {
    Stats::add(&stats.sets);
    let text = render_set(policies);
    let compiled = match compile(&schema_fragments(), &text) {
        Ok(c) => c,
        Err(_) => {
            Stats::add(&stats.refused);
            return Ok(());
        }
    };
    let reference = Reference::new(schema.clone(), &text);
    for r in requests {
        let (indexed, whole, want) = r.outcomes(&compiled, &reference);
        prop_assert_eq!(
            &indexed,
            &whole,
            "evaluate differs from evaluate_unindexed\npolicies:\n{}\nrequest: {:?}",
            text,
            r
        );
        prop_assert_eq!(
            summary(&whole),
            summary(&want),
            "evaluate_unindexed differs from Cedar's JSON parser path\nwhole: {:?}\nreference: {:?}\npolicies:\n{}\nrequest: {:?}",
            whole,
            want,
            text,
            r
        );
        Stats::add(&stats.requests);
        if whole.allowed {
            Stats::add(&stats.allowed);
        }
        if whole.approval_required {
            Stats::add(&stats.approval);
        }
        if whole.policy_ids.is_empty() && !whole.errors.is_empty() {
            Stats::add(&stats.bad_requests);
        } else if !whole.errors.is_empty() {
            Stats::add(&stats.errors);
        }
    }
    Ok(())
}

#[test]
fn generated_sets_match_cedar() {
    // Compiling a set costs about as much as 30 evaluations in a debug build.
    const SETS: u32 = 56;
    const REQUESTS: usize = 36;
    let schema = Reference::schema();
    let stats = Stats::default();
    // `PROPTEST_CASES=<sets>` runs more (or fewer) policy sets.
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SETS);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(policy(), 1..=30),
        proptest::collection::vec(request(), REQUESTS),
    );
    let result = runner.run(&strategy, |(policies, requests)| {
        check_set(&schema, &policies, &requests, &stats)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let sets = Stats::get(&stats.sets);
    let refused = Stats::get(&stats.refused);
    let requests = Stats::get(&stats.requests);
    println!(
        "{sets} policy sets ({refused} refused by the validator), {requests} requests: \
         {} allowed, {} approval required, {} evaluation errors, {} refused requests",
        Stats::get(&stats.allowed),
        Stats::get(&stats.approval),
        Stats::get(&stats.errors),
        Stats::get(&stats.bad_requests),
    );
    assert!(
        refused * 5 <= sets,
        "most generated sets must compile: {refused} of {sets} refused"
    );
    assert!(
        requests >= cases as usize * REQUESTS * 4 / 5,
        "too few requests evaluated: {requests}"
    );
    assert!(
        Stats::get(&stats.allowed) >= requests / 50,
        "too few allows to compare"
    );
}

/// Every IPv4 prefix, the range written with host bits set and without, and the
/// addresses at and just outside both ends of each: the index's `isInRange` must give
/// Cedar's answer (checked against plain arithmetic too).
#[test]
fn ipv4_range_edges_match_cedar() {
    let reference_schema = Reference::schema();
    let mut failures = Vec::new();
    let mut checked = 0;
    // 10.20.30.40 and 245.165.90.95: host bits set under most prefixes.
    for base in [0x0a14_1e28_u32, 0xf5a5_5a5f] {
        let mut ranges: Vec<(String, u32, u32)> = Vec::new();
        for prefix in 0..=32 {
            let network = base & !host_mask(prefix);
            ranges.push((
                format!("{}/{prefix}", Ipv4Addr::from(base)),
                network,
                prefix,
            ));
            ranges.push((
                format!("{}/{prefix}", Ipv4Addr::from(network)),
                network,
                prefix,
            ));
        }
        ranges.push((Ipv4Addr::from(base).to_string(), base, 32));
        let text: String = ranges
            .iter()
            .enumerate()
            .map(|(i, (literal, ..))| {
                format!(
                    "@id(\"p{i}\")\npermit (principal, action == Mandate::Action::\"crm:write\", resource)\n\
                     when {{ context has source_ip && context.source_ip.isInRange(ip(\"{literal}\")) }};\n"
                )
            })
            .collect();
        let compiled = compile(&schema_fragments(), &text).expect("compiles");
        let reference = Reference::new(reference_schema.clone(), &text);

        let mut addresses = std::collections::BTreeSet::new();
        for prefix in 0..=32 {
            let network = base & !host_mask(prefix);
            let broadcast = base | host_mask(prefix);
            addresses.extend(
                [
                    network.checked_sub(1),
                    Some(network),
                    Some(broadcast),
                    broadcast.checked_add(1),
                ]
                .into_iter()
                .flatten(),
            );
        }
        for &addr in &addresses {
            let want: Vec<String> = ranges
                .iter()
                .enumerate()
                .filter(|(_, (_, network, prefix))| {
                    *network <= addr && addr <= (network | host_mask(*prefix))
                })
                .map(|(i, _)| format!("p{i}"))
                .collect();
            let r = Req {
                agent: AgentSpec {
                    id: AGENT_ID,
                    name: "test-bot",
                    owner: "alice@example.com",
                    status: "active",
                    labels: BTreeMap::new(),
                },
                action: "crm:write",
                resource_type: "Crm::Contact",
                resource_id: "c1",
                attrs: json!({"team": "sales"}),
                context: json!({"data_class": "internal", "source_ip": Ipv4Addr::from(addr).to_string()}),
                risk: None,
                user: None,
                chain: Vec::new(),
            };
            let (indexed, whole, cedar) = r.outcomes(&compiled, &reference);
            if indexed != whole || whole != cedar || indexed.policy_ids != want {
                failures.push(format!(
                    "{}: want {want:?}\n  indexed {indexed:?}\n  unindexed {whole:?}\n  reference {cedar:?}",
                    Ipv4Addr::from(addr)
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 120, "{checked} addresses");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- the data-table decisions ----

/// A case of a test file (`mandate_policy::testfile`), as far as the request goes.
#[derive(Deserialize)]
struct TableFile {
    tests: Vec<TableCase>,
}

#[derive(Deserialize)]
struct TableCase {
    name: String,
    principal: TablePrincipal,
    action: String,
    resource: TableResource,
    #[serde(default)]
    context: Value,
    #[serde(default)]
    user: Option<TableUser>,
    #[serde(default)]
    chain: Vec<String>,
    #[serde(default)]
    risk: Option<Risk>,
}

#[derive(Deserialize)]
struct TablePrincipal {
    id: String,
    name: String,
    owner: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct TableResource {
    #[serde(rename = "type")]
    type_name: String,
    id: String,
    #[serde(default)]
    attributes: Value,
}

#[derive(Deserialize)]
struct TableUser {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// Every case of `tests/data/decisions` and `examples/`, answered with and without the
/// index.
#[test]
fn decision_tables_match_unindexed() {
    let tables = cases(&crate_dir().join("tests/data/decisions"))
        .into_iter()
        .map(|dir| (dir, "requests.json"))
        .chain(
            cases(&crate_dir().join("../../examples"))
                .into_iter()
                // Policy examples only (`examples/upstreams` is the sample servers' crate).
                .filter(|dir| dir.join("policies.cedar").exists())
                .map(|dir| (dir, "tests.json")),
        );
    let mut failures = Vec::new();
    let mut count = 0;
    for (dir, tests) in tables {
        let compiled = compile(&fragments(&dir), &read(&dir.join("policies.cedar")))
            .unwrap_or_else(|e| panic!("{}: {e:?}", dir.display()));
        let file: TableFile = serde_json::from_str(&read(&dir.join(tests)))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for t in file.tests {
            let p = &t.principal;
            let agent = Agent {
                id: AgentId::parse(&p.id).expect("agent id"),
                name: AgentName::try_from(p.name.clone()).expect("name"),
                owner: Owner::try_from(p.owner.clone()).expect("owner"),
                purpose: Purpose::default(),
                labels: Labels::try_from(p.labels.clone()).expect("labels"),
                boundary: Boundary::default(),
                status: AgentStatus::parse(p.status.as_deref().unwrap_or("active"))
                    .expect("status"),
                status_reason: None,
                created_at: Timestamp::from_secs(0),
                updated_at: Timestamp::from_secs(0),
            };
            let user = t.user.map(|u| UserRef {
                issuer: "test".to_owned(),
                sub: u.sub,
                email: u.email,
                groups: u.groups,
            });
            let chain: Vec<&str> = t.chain.iter().map(String::as_str).collect();
            let req = PolicyRequest {
                principal: &agent,
                action: &t.action,
                resource_type: &t.resource.type_name,
                resource_id: &t.resource.id,
                resource_attributes: &t.resource.attributes,
                context: &t.context,
                on_behalf: OnBehalf {
                    user: user.as_ref(),
                    mandate: None,
                    chain: &chain,
                    risk: t.risk.as_ref(),
                },
            };
            let (indexed, whole) = (compiled.evaluate(&req), compiled.evaluate_unindexed(&req));
            if indexed != whole {
                failures.push(format!(
                    "{} / {}:\n  indexed {indexed:?}\n  unindexed {whole:?}",
                    dir.display(),
                    t.name
                ));
            }
            count += 1;
        }
    }
    assert!(count >= 50, "only {count} table cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- regressions ----

/// Regression (fails open): a request's entities hold one action entity per action
/// *id* (`CompiledPolicies::action_entities` is keyed by the id alone), so when a
/// fragment also declares an action with the same id in another namespace
/// (`Crm::Action::"a0"` beside `Mandate::Action::"a0"`), the other one can take the
/// place of the requested action. `Mandate::Action::"a0"` is then missing from the
/// entities, its groups with it, and a forbid on `action in Mandate::Action::"all"`
/// no longer applies: the request is allowed. Which entity wins depends on the
/// process's hash seed, so many actions are asked about.
#[test]
fn regression_action_of_another_namespace_with_the_same_id_hides_groups() {
    const N: usize = 16;
    let fragment = |reserved: &str| {
        let crm: String = (0..N).map(|i| format!("action \"a{i}\"; ")).collect();
        let mandate: String = (0..N)
            .map(|i| {
                format!(
                    "action \"a{i}\" in [\"all\"] appliesTo {{ principal: [Agent], \
                     resource: [Crm::Contact], context: {{ {reserved} }} }};\n"
                )
            })
            .collect();
        format!("namespace Crm {{ entity Contact; {crm} }}\nnamespace Mandate {{\n{mandate}}}\n")
    };
    let text = "@id(\"p0\")\npermit (principal, action, resource);\n\
                @id(\"p1\")\nforbid (principal, action in Mandate::Action::\"all\", resource);\n";
    let compiled = compile(&[fragment("")], text).expect("compiles");
    let reference = Reference::new(reference_schema(&[fragment(RESERVED_FIELDS)]), text);
    let agent = super::agent(AGENT_ID, &[]);
    let mut wrong = Vec::new();
    for i in 0..N {
        let action = format!("a{i}");
        let req = PolicyRequest {
            principal: &agent,
            action: &action,
            resource_type: "Crm::Contact",
            resource_id: "c1",
            resource_attributes: &Value::Null,
            context: &Value::Null,
            on_behalf: OnBehalf::default(),
        };
        let want = reference.evaluate(&req);
        assert!(!want.allowed && want.policy_ids == ["p1"], "{want:?}");
        for got in [compiled.evaluate(&req), compiled.evaluate_unindexed(&req)] {
            if got != want {
                wrong.push(format!("{action}: {got:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the forbid on `action in Mandate::Action::\"all\"` must deny every action:\n{}",
        wrong.join("\n")
    );
}

// ---- the direct builders against Cedar's parser, value by value ----

/// Every value kind the direct builders read or must leave to Cedar's parser: enumerated
/// entity types (alone, in sets, through an alias), nested and required records, sets
/// of sets and of records, entity references (explicit, implicit, with extra keys,
/// unnormalized type names), extension types as strings and escapes.
const VALUES_SCHEMA: &str = r#"namespace Ns {
  entity Color enum ["red", "blue"];
  type Alias = { x: Long };
  type Alias2 = Alias;
  entity Tagged { t?: String } tags String;
  entity Kind enum ["a", "b"];
  entity Doc {
    s?: String,
    c?: Color,
    cs?: Set<Color>,
    rec?: { inner?: { deep?: Long } },
    ip?: ipaddr,
    ips?: Set<ipaddr>,
    d?: decimal,
    dt?: datetime,
    du?: duration,
    ag?: Mandate::Agent,
    n?: Long,
    b?: Bool,
    al?: Alias2,
    recs?: Set<{ a: Long, b?: String }>,
    req?: { must: String },
    ss?: Set<Set<Long>>,
    ags?: Set<Mandate::Agent>,
  };
}
namespace Mandate {
  type Color2 = Ns::Color;
  action "v:do" in ["all"] appliesTo {
    principal: [Agent],
    resource: [Ns::Doc, Ns::Kind, Ns::Tagged, Agent, User, Group],
    context: {
      s?: String,
      c?: Color2,
      cs?: Set<Ns::Color>,
      rec?: { inner?: { deep?: Long } },
      ip?: ipaddr,
      ips?: Set<ipaddr>,
      d?: decimal,
      dt?: datetime,
      du?: duration,
      ag?: Agent,
      n?: Long,
      b?: Bool,
      al?: Ns::Alias2,
      recs?: Set<{ a: Long, b?: String }>,
      req?: { must: String },
      ss?: Set<Set<Long>>,
      ags?: Set<Agent>,
      // reserved
    },
  };
}
"#;

/// Policies that read each field of [`VALUES_SCHEMA`], so a value built differently
/// changes the determining policies.
fn values_policies() -> String {
    let conditions = [
        r#"$R has s && $R.s == "x""#,
        r#"$R has c && $R.c == Ns::Color::"red""#,
        r#"$R has cs && $R.cs.contains(Ns::Color::"blue")"#,
        r#"$R has rec && $R.rec has inner && $R.rec.inner has deep && $R.rec.inner.deep == 1"#,
        r#"$R has ip && $R.ip.isInRange(ip("10.0.0.0/8"))"#,
        r#"$R has ip && $R.ip.isIpv6()"#,
        r#"$R has ips && $R.ips.contains(ip("10.0.0.1"))"#,
        r#"$R has ips && $R.ips.contains(ip("10.0.0.1/32"))"#,
        r#"$R has d && $R.d.greaterThan(decimal("1.0"))"#,
        r#"$R has dt && $R.dt > datetime("2023-12-31")"#,
        r#"$R has du && $R.du > duration("30m")"#,
        r#"$R has ag && $R.ag == Mandate::Agent::"a1""#,
        r#"$R has n && $R.n < 0"#,
        r#"$R has n && $R.n == 1"#,
        r#"$R has b && $R.b"#,
        r#"$R has al && $R.al.x == 1"#,
        r#"$R has recs && $R.recs.isEmpty()"#,
        r#"$R has req && $R.req.must == "x""#,
        r#"$R has ss && $R.ss.contains([1])"#,
        r#"$R has ss && $R.ss.contains([2, 1])"#,
        r#"$R has ags && $R.ags.contains(Mandate::Agent::"a")"#,
    ];
    let mut out = String::from("@id(\"p0\")\npermit (principal, action, resource);\n");
    let mut n = 1;
    for var in ["context", "resource"] {
        for c in conditions {
            let cond = c.replace("$R", var);
            out.push_str(&format!(
                "@id(\"p{n}\")\nforbid (principal, action, resource is Ns::Doc) when {{ {cond} }};\n"
            ));
            n += 1;
        }
    }
    out
}

fn probe_values() -> Vec<(&'static str, Value)> {
    let agent = |id: &str| json!({"__entity": {"type": "Mandate::Agent", "id": id}});
    let unknown = json!({"__extn": {"fn": "unknown", "arg": "u"}});
    vec![
        ("s", json!("x")),
        ("s", json!(1)),
        ("s", unknown.clone()),
        ("c", json!({"__entity": {"type": "Ns::Color", "id": "red"}})),
        (
            "c",
            json!({"__entity": {"type": "Ns::Color", "id": "green"}}),
        ),
        ("c", json!({"type": "Ns::Color", "id": "green"})),
        ("c", json!({"type": "Ns::Color", "id": "red"})),
        (
            "cs",
            json!([{"__entity": {"type": "Ns::Color", "id": "green"}}]),
        ),
        (
            "cs",
            json!([{"__entity": {"type": "Ns::Color", "id": "blue"}}]),
        ),
        ("cs", json!([])),
        ("rec", json!({})),
        ("rec", json!({"inner": {}})),
        ("rec", json!({"inner": {"deep": 1}})),
        ("rec", json!({"inner": {"deep": 1, "x": 2}})),
        ("rec", json!({"inner": {"deep": 1.0}})),
        ("rec", json!({"inner": {"deep": u64::MAX}})),
        ("rec", json!({"inner": {"deep": i64::MIN}})),
        ("rec", json!({"inner": null})),
        ("rec", json!({"inner": {"deep": unknown.clone()}})),
        ("rec", unknown.clone()),
        ("ip", json!("10.0.0.1")),
        ("ip", json!("10.0.0.0/8")),
        ("ip", json!("10.255.255.255/7")),
        ("ip", json!("::1")),
        ("ip", json!("::ffff:10.0.0.1")),
        ("ip", json!("fe80::1%eth0")),
        ("ip", json!("010.0.0.1")),
        ("ip", json!("10.0.0.1/33")),
        ("ip", json!("1::/129")),
        ("ip", json!(" 10.0.0.1")),
        ("ip", json!("")),
        ("ip", json!({"__extn": {"fn": "ip", "arg": "10.0.0.1"}})),
        ("ip", json!({"fn": "ip", "arg": "10.0.0.1"})),
        ("ip", json!({"__extn": {"fn": "decimal", "arg": "1.0"}})),
        ("ips", json!(["10.0.0.1", "::1", "10.0.0.1/32"])),
        ("ips", json!(["10.0.0.1/32"])),
        ("ips", json!(["10.0.0.1", "bad"])),
        ("d", json!("1.5")),
        ("d", json!("x")),
        ("dt", json!("2024-01-01")),
        ("dt", json!("2024-01-01T00:00:00Z")),
        ("du", json!("1h")),
        ("ag", agent("a1")),
        ("ag", json!({"type": "Mandate::Agent", "id": "a1"})),
        (
            "ag",
            json!({"__entity": {"type": "Mandate::User", "id": "a1"}}),
        ),
        (
            "ag",
            json!({"__entity": {"type": "Mandate::Agent", "id": "a1", "x": 1}}),
        ),
        (
            "ag",
            json!({"__entity": {"type": "Mandate :: Agent", "id": "a1"}}),
        ),
        (
            "ag",
            json!({"__entity": {"type": "Mandate::Agent", "id": 1}}),
        ),
        (
            "ag",
            json!({"__entity": {"type": "Mandate::Agent", "id": "a1"}, "x": 1}),
        ),
        ("n", json!(1)),
        ("n", json!(-1)),
        ("n", json!(-0)),
        ("n", json!(1.0)),
        ("n", json!(1.5)),
        ("n", json!(1e2)),
        ("n", json!(u64::MAX)),
        ("n", json!(i64::MAX)),
        ("n", json!(i64::MIN)),
        ("n", json!("1")),
        ("b", json!(true)),
        ("b", json!("true")),
        ("al", json!({"x": 1})),
        ("al", json!({})),
        ("al", json!({"x": 1, "y": 2})),
        ("recs", json!([{"a": 1}, {"a": 1, "b": "x"}])),
        ("recs", json!([{"b": "x"}])),
        ("recs", json!([{"a": 1, "z": 1}])),
        ("req", json!({})),
        ("req", json!({"must": "x"})),
        ("req", json!({"must": "x", "__entity": 1})),
        ("ss", json!([[1, 2], [], [1.5]])),
        ("ss", json!([[1, 2], []])),
        (
            "ags",
            json!([{"type": "Mandate::Agent", "id": "a"}, agent("b")]),
        ),
        ("ags", json!([agent("a")])),
        ("ags", agent("a")),
    ]
}

/// Each value of [`probe_values`] as a resource attribute and as a context field, and
/// resources of enumerated, tagged and unnormalized types: `evaluate` (the direct
/// builders where they apply) gives Cedar's parser's answer.
#[test]
fn direct_values_match_cedar_parser() {
    let text = values_policies();
    let compiled = compile(&[VALUES_SCHEMA.replace(RESERVED_SLOT, "")], &text).expect("compiles");
    let reference = Reference::new(
        reference_schema(&[VALUES_SCHEMA.replace(RESERVED_SLOT, RESERVED_FIELDS)]),
        &text,
    );
    let agent = super::agent(AGENT_ID, &[("team", "x")]);
    let mut wrong = Vec::new();
    let mut forbidden = 0;
    let mut direct = 0;
    let mut ask = |rt: &str, rid: &str, attrs: &Value, ctx: &Value| {
        let req = PolicyRequest {
            principal: &agent,
            action: "v:do",
            resource_type: rt,
            resource_id: rid,
            resource_attributes: attrs,
            context: ctx,
            on_behalf: OnBehalf::default(),
        };
        let parsed = mandate_policy::parsed_on_this_thread();
        let (got, want) = (compiled.evaluate(&req), reference.evaluate(&req));
        if mandate_policy::parsed_on_this_thread() == parsed {
            direct += 1;
        }
        if got.errors.is_empty() && !got.allowed {
            forbidden += 1;
        }
        if summary(&got) != summary(&want) {
            wrong.push(format!(
                "{rt}::{rid} attrs {attrs} context {ctx}:\n  got {got:?}\n  want {want:?}"
            ));
        }
    };
    for (k, v) in probe_values() {
        let one = Value::Object([(k.to_owned(), v)].into_iter().collect());
        ask("Ns::Doc", "d1", &one, &Value::Null);
        ask("Ns::Doc", "d1", &Value::Null, &one);
    }
    for (rt, rid) in [
        ("Ns::Kind", "a"),
        ("Ns::Kind", "zzz"),
        ("Ns::Tagged", "t"),
        ("Ns::Doc ", "d"),
        ("Ns :: Doc", "d"),
        ("Mandate::Agent", AGENT_ID),
        ("Mandate::Group", "g"),
        ("Mandate::Mandate", "m"),
    ] {
        ask(rt, rid, &Value::Null, &Value::Null);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        forbidden >= 30,
        "too few values read by a policy: {forbidden}"
    );
}

/// Entities the direct path adds as already closed, where they collide or relate: the
/// resource is the user (same or other attributes, with and without groups), one of
/// the user's groups, the principal itself, or the token's mandate; the action is in a
/// group within a group. `evaluate` gives the answer of Cedar's own closure and
/// duplicate check.
#[test]
fn direct_entities_match_cedar_when_they_collide() {
    use mandate_core::agent::Grant;
    use mandate_core::id::MandateId;
    use mandate_core::mandate::{Mandate, MandateStatus};

    let schema = r#"namespace Ns { entity Doc; }
namespace Mandate {
  action "grp" in ["all"];
  action "y:do" in ["grp"] appliesTo {
    principal: [Agent],
    resource: [Agent, User, Group, Mandate, Ns::Doc],
    context: { // reserved
    },
  };
}
"#;
    let text = r#"@id("p0")
permit (principal, action, resource) when { resource in Mandate::Group::"g" };
@id("p1")
permit (principal, action, resource) when { context has user && context.user in resource };
@id("p2")
permit (principal, action, resource) when { context has mandate && context.mandate.intent == "x" };
@id("p3")
permit (principal, action, resource) when { resource has email };
@id("p4")
permit (principal, action in Mandate::Action::"all", resource);
@id("p5")
permit (principal, action, resource) when { principal in resource };
@id("p6")
permit (principal, action, resource) when { context has user && context.user in Mandate::Group::"g" };
"#;
    let compiled = compile(&[schema.replace(RESERVED_SLOT, "")], text).expect("compiles");
    let reference = Reference::new(
        reference_schema(&[schema.replace(RESERVED_SLOT, RESERVED_FIELDS)]),
        text,
    );
    let mid = "mdt_01JA0000000000000000000000";
    let m = Mandate::requested(
        MandateId::parse(mid).expect("mandate id"),
        AgentId::parse(AGENT_ID).expect("agent id"),
        "x".into(),
        vec![Grant {
            actions: vec!["crm:read".into()],
            resources: vec!["crm:contact/*".into()],
            data_classes: vec![],
        }],
        600,
        MandateStatus::Active,
        Timestamp::from_secs(0),
    );
    let agent = super::agent(AGENT_ID, &[]);
    let user = |email: Option<&str>, groups: &[&str]| UserRef {
        issuer: "i".into(),
        sub: "alice".into(),
        email: email.map(str::to_owned),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    };
    let users = [
        None,
        Some(user(Some("a@x"), &[])),
        Some(user(Some("a@x"), &["g"])),
        Some(user(None, &[])),
    ];
    let resources: Vec<(&str, &str, Value)> = vec![
        ("Mandate::User", "alice", json!({})),
        ("Mandate::User", "alice", json!({"email": "a@x"})),
        ("Mandate::User", "bob", json!({"email": "a@x"})),
        ("Mandate::Group", "g", json!({})),
        ("Mandate::Group", "h", json!({})),
        (
            "Mandate::Agent",
            AGENT_ID,
            json!({"owner": "alice@example.com", "name": "test-bot", "status": "active", "labels": []}),
        ),
        (
            "Mandate::Mandate",
            mid,
            mandate_policy::mandate_attributes(&m),
        ),
        (
            "Mandate::Mandate",
            mid,
            json!({"agent": {"__entity": {"type": "Mandate::Agent", "id": AGENT_ID}},
                   "intent": "y", "actions": [], "resources": [], "data_classes": [],
                   "lifetime_secs": 1}),
        ),
        ("Ns::Doc", "d", json!({})),
    ];
    let mut wrong = Vec::new();
    for user in &users {
        for mandate in [None, Some(&m)] {
            for (rt, rid, attrs) in &resources {
                let req = PolicyRequest {
                    principal: &agent,
                    action: "y:do",
                    resource_type: rt,
                    resource_id: rid,
                    resource_attributes: attrs,
                    context: &Value::Null,
                    on_behalf: OnBehalf {
                        user: user.as_ref(),
                        mandate,
                        chain: &[],
                        risk: None,
                    },
                };
                let (got, want) = (compiled.evaluate(&req), reference.evaluate(&req));
                if summary(&got) != summary(&want) {
                    wrong.push(format!(
                        "{rt}::{rid} {attrs} user {user:?} mandate {}:\n  got {got:?}\n  want {want:?}",
                        mandate.is_some()
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Schemas where the direct request must not be built: an action whose principal is
/// not `Mandate::Agent`, an action group asked for directly, an attribute or context
/// field of an action entity type (Cedar checks the action is declared), a resource
/// type with tags, and forged reserved context fields.
#[test]
fn direct_request_refuses_what_cedar_refuses() {
    let text = "@id(\"p0\")\npermit (principal, action, resource);\n";
    let agent = super::agent(AGENT_ID, &[]);
    let action = |principals: &str, context: &str| {
        format!(
            "namespace Ns {{ entity Doc {{ a?: Mandate::Action, t?: String }} tags String; }}\n\
             namespace Mandate {{ action \"u:do\" in [\"all\"] appliesTo {{ principal: [{principals}], \
             resource: [Ns::Doc, Agent], context: {{ {context} // reserved\n }} }}; }}"
        )
    };
    let act = |id: &str| json!({"a": {"__entity": {"type": "Mandate::Action", "id": id}}});
    let cases: Vec<(String, &str, Value, Value)> = vec![
        (action("User", ""), "u:do", json!({}), json!({})),
        (action("Agent", ""), "all", json!({}), json!({})),
        (
            action("Agent, User", ""),
            "u:do",
            json!({"t": "x"}),
            json!({}),
        ),
        (
            action("Agent", "a?: Action,"),
            "u:do",
            act("zzz"),
            json!({}),
        ),
        (
            action("Agent", "a?: Action,"),
            "u:do",
            json!({}),
            act("zzz"),
        ),
        (
            action("Agent", "a?: Action,"),
            "u:do",
            json!({}),
            act("u:do"),
        ),
        (
            action("Agent", ""),
            "u:do",
            json!({}),
            json!({"risk": 5, "user": "x", "mandate": 1, "chain": 2, "delegation_depth": "x"}),
        ),
    ];
    let mut wrong = Vec::new();
    for (schema, action, attrs, ctx) in &cases {
        let compiled = compile(&[schema.replace(RESERVED_SLOT, "")], text).expect("compiles");
        let reference = Reference::new(
            reference_schema(&[schema.replace(RESERVED_SLOT, RESERVED_FIELDS)]),
            text,
        );
        let req = PolicyRequest {
            principal: &agent,
            action,
            resource_type: "Ns::Doc",
            resource_id: "d",
            resource_attributes: attrs,
            context: ctx,
            on_behalf: OnBehalf::default(),
        };
        let (got, want) = (compiled.evaluate(&req), reference.evaluate(&req));
        if summary(&got) != summary(&want) {
            wrong.push(format!(
                "{schema}\n{action} {attrs} {ctx}:\n  got {got:?}\n  want {want:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
