//! Cedar's request and entities made directly in cedar-policy-core's types: no JSON
//! parser, no schema check of a request that is well-typed by construction, no
//! transitive closure of an entity set that is closed already.
//!
//! cedar-policy's public constructors do all three on every request: its schema check
//! copies the whole context into an expression tree to type-check it, and
//! `Entities::from_entities` recomputes the closure of the hierarchy. Here a context is
//! built *guided by the action's declared context type* (Cedar's own resolved type,
//! from its validator schema), one JSON value at a time; anything this does not read
//! exactly (a shape it does not know, a value not of its declared type, a missing
//! required field, an enumerated entity type) makes it give up, and the caller then
//! builds the request through Cedar's parser and schema check, whose answer — success
//! or error — is the one given.
//!
//! INVARIANT (direct request): a request is built here only when Cedar's schema check
//! would accept it, and with exactly the values Cedar's JSON parser would give: the
//! action is declared, `Mandate::Agent` is among its principal types, the resource's
//! type among its resource types and a standard (not enumerated) entity type, and every
//! context value has its declared type (see [`value`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use cedar_policy_core::ast;
use cedar_policy_core::entities::err::EntitiesError;
use cedar_policy_core::entities::{Entities, NoEntitiesSchema, TCComputation};
use cedar_policy_core::extensions::Extensions;
use cedar_policy_core::validator::types::{Attributes, BoolType, EntityKind, Type};
use cedar_policy_core::validator::{ValidatorEntityTypeKind, ValidatorSchema};
use mandate_core::risk::Risk;
use serde_json::Value as Json;

use crate::schema::Fields;

/// What building a request for one `Mandate::Action` needs, worked out when the
/// policies are compiled.
#[derive(Debug, Clone)]
pub(crate) struct ActionShape {
    /// `Mandate::Action::"<id>"`.
    pub(crate) uid: ast::EntityUID,
    /// The action's entity, its groups (transitively, as the schema holds them) its
    /// ancestors.
    pub(crate) entity: Arc<ast::Entity>,
    /// Whether the action applies to some principal type (a group does not).
    pub(crate) applies: bool,
    /// Whether `Mandate::Agent` is one of its principal types.
    agent_principal: bool,
    /// Its resource types that are standard entity types, by name.
    resources: HashSet<String>,
    /// Its context's (closed record) type.
    context: Option<Type>,
}

impl ActionShape {
    /// The shape of the action whose entity (one of the schema's action entities) is
    /// `entity`.
    pub(crate) fn new(
        schema: &ValidatorSchema,
        types: &TypeNames,
        entity: &Arc<ast::Entity>,
    ) -> Self {
        let uid = entity.uid().clone();
        let action = schema.get_action_id(&uid);
        let agent = &types.agent;
        let standard = |t: &ast::EntityType| {
            schema
                .get_entity_type(t)
                .is_some_and(|e| matches!(e.kind, ValidatorEntityTypeKind::Standard(_)))
        };
        Self {
            applies: action.is_some_and(|a| a.principals().next().is_some()),
            agent_principal: action.is_some_and(|a| a.principals().any(|p| p == agent)),
            resources: action
                .into_iter()
                .flat_map(|a| a.resources())
                .filter(|t| standard(t))
                .map(ToString::to_string)
                .collect(),
            context: action
                .filter(|a| !a.is_external())
                .and_then(|a| a.context_type())
                .cloned(),
            uid,
            entity: Arc::clone(entity),
        }
    }

    /// The request, when it can be built directly (see the module's invariant);
    /// `None` when Cedar's parser and schema check must build it. The context is the
    /// caller's `fields`, Mandate's `reserved` fields but `risk`, and `risk`.
    pub(crate) fn request(&self, ask: &Ask<'_>, types: &TypeNames) -> Option<ast::Request> {
        let Ask {
            principal,
            resource,
            resource_type,
            fields,
            reserved,
            risk,
        } = ask;
        if !self.agent_principal
            || principal.entity_type() != &types.agent
            || !self.resources.contains(*resource_type)
        {
            return None;
        }
        let Type::Record { attrs, .. } = self.context.as_ref()? else {
            return None;
        };
        let mut extra = Vec::with_capacity(reserved.len() + 1);
        for (name, v) in *reserved {
            extra.push((*name, value(&attrs.get_attr(name)?.attr_type, v, types, 1)?));
        }
        extra.push((
            "risk",
            risk_value(&attrs.get_attr("risk")?.attr_type, risk, types)?,
        ));
        let ast::ValueKind::Record(record) = record(attrs, fields.caller(), extra, types, 0)?.value
        else {
            return None;
        };
        Some(ast::Request::new_unchecked(
            ast::EntityUIDEntry::known((*principal).clone(), None),
            ast::EntityUIDEntry::known(self.uid.clone(), None),
            ast::EntityUIDEntry::known((*resource).clone(), None),
            Some(ast::Context::Value(record)),
        ))
    }
}

/// What a request is made of.
pub(crate) struct Ask<'a> {
    pub(crate) principal: &'a ast::EntityUID,
    pub(crate) resource: &'a ast::EntityUID,
    /// The resource's type, by name.
    pub(crate) resource_type: &'a str,
    /// The caller's context.
    pub(crate) fields: Fields<'a>,
    /// Mandate's reserved context fields but `risk`, in JSON.
    pub(crate) reserved: &'a [(&'static str, Json)],
    pub(crate) risk: &'a Risk,
}

/// `context.risk` in JSON, as Cedar's parser reads it on the slow path.
pub(crate) fn risk_json(risk: &Risk) -> Json {
    serde_json::json!({
        "score": risk.score,
        "level": risk.level(),
        "anomalies": risk.anomalies,
        "step_up": risk.step_up,
    })
}

/// [`risk_json`] read as type `ty` by [`value`]. Each thread keeps the last one made
/// (almost every request has the same risk, usually none), reused for the same risk
/// and the very same type.
fn risk_value(ty: &Arc<Type>, risk: &Risk, types: &TypeNames) -> Option<ast::Value> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(Arc<Type>, Risk, ast::Value)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| {
        if let Some((t, r, v)) = last.as_ref()
            && Arc::ptr_eq(t, ty)
            && r == risk
        {
            return Some(v.clone());
        }
        let v = value(ty, &risk_json(risk), types, 1)?;
        *last = Some((Arc::clone(ty), risk.clone(), v.clone()));
        Some(v)
    })
}

/// The schema's standard (not enumerated) entity types by name: the entity types a
/// context value may name here (Cedar checks an enumerated type's id as well).
#[derive(Debug, Clone)]
pub(crate) struct TypeNames {
    /// Name → the type and its declared attributes.
    standard: HashMap<String, (ast::EntityType, Attributes)>,
    /// `Mandate::Agent`, every request's principal type.
    agent: ast::EntityType,
}

impl TypeNames {
    pub(crate) fn new(schema: &ValidatorSchema, agent: ast::EntityType) -> Self {
        Self {
            standard: schema
                .entity_types()
                .filter(|e| matches!(e.kind, ValidatorEntityTypeKind::Standard(_)))
                .map(|e| {
                    let attrs = e.attributes().clone();
                    (e.name().to_string(), (e.name().clone(), attrs))
                })
                .collect(),
            agent,
        }
    }

    /// `ty::"id"`, when `ty` is a standard entity type.
    pub(crate) fn uid(&self, ty: &str, id: &str) -> Option<ast::EntityUID> {
        let (ety, _) = self.standard.get(ty)?;
        Some(ast::EntityUID::from_components(
            ety.clone(),
            ast::Eid::new(id),
            None,
        ))
    }

    /// An entity of standard type `ty`, with no tags, whose JSON attributes are read as
    /// [`record`] reads a context: every one declared and of its type, every required
    /// one present — what Cedar's conformance check of an entity asks of attributes.
    /// `None` where Cedar's parser must decide. The caller vouches for `parents` (none,
    /// or groups of a type the schema allows).
    pub(crate) fn entity(
        &self,
        ty: &str,
        id: &str,
        attrs: &Fields<'_>,
        parents: HashSet<ast::EntityUID>,
    ) -> Option<ast::Entity> {
        let (ety, declared) = self.standard.get(ty)?;
        let ast::ValueKind::Record(values) =
            record(declared, attrs.caller(), Vec::new(), self, 0)?.value
        else {
            return None;
        };
        Some(ast::Entity::new_with_attr_partial_value(
            ast::EntityUID::from_components(ety.clone(), ast::Eid::new(id), None),
            Arc::unwrap_or_clone(values)
                .into_iter()
                .map(|(k, v)| (k, ast::PartialValue::Value(v))),
            HashSet::new(),
            parents,
            [],
        ))
    }
}

/// How deep [`value`] goes before leaving a value to Cedar's parser.
const MAX_DEPTH: usize = 8;

/// A record of type `attrs` from JSON `fields` and the values `extra` (already of
/// their declared types): every field declared and of its type, every required one
/// present.
fn record<'j>(
    attrs: &Attributes,
    fields: impl Iterator<Item = (&'j str, &'j Json)>,
    extra: Vec<(&str, ast::Value)>,
    types: &TypeNames,
    depth: usize,
) -> Option<ast::Value> {
    let mut pairs = extra;
    for (k, v) in fields {
        if k.starts_with("__") {
            // An escape (`__entity`, `__extn`, `__expr`): Cedar's parser reads it.
            return None;
        }
        let ty = attrs.get_attr(k)?;
        pairs.push((k, value(&ty.attr_type, v, types, depth + 1)?));
    }
    if attrs
        .iter()
        .any(|(k, a)| a.is_required && !pairs.iter().any(|(n, _)| *n == k.as_str()))
    {
        return None;
    }
    Some(ast::Value::record(pairs, None))
}

/// JSON `v` as a value of type `ty`, or `None` where Cedar's parser must decide. Read
/// here: `Bool`, `Long` (a JSON integer in `i64`), `String`, `Set<T>`, records (see
/// [`record`]), an entity of one standard type as `{"__entity": {"type", "id"}}`
/// naming exactly that type, and `ipaddr` as a string (Cedar's `ip()` of it, as its
/// parser does for a string where the schema says `ipaddr`).
fn value(ty: &Type, v: &Json, types: &TypeNames, depth: usize) -> Option<ast::Value> {
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match (ty, v) {
        (Type::Bool(BoolType::AnyBool), Json::Bool(b)) => ast::Value::from(*b),
        (Type::Long, Json::Number(n)) => ast::Value::from(n.as_i64()?),
        (Type::String, Json::String(s)) => ast::Value::from(s.as_str()),
        (
            Type::Set {
                element_type: Some(el),
            },
            Json::Array(items),
        ) => ast::Value::set(
            items
                .iter()
                .map(|i| value(el, i, types, depth + 1))
                .collect::<Option<Vec<_>>>()?,
            None,
        ),
        (Type::Record { attrs, .. }, Json::Object(m)) => record(
            attrs,
            m.iter().map(|(k, v)| (k.as_str(), v)),
            Vec::new(),
            types,
            depth,
        )?,
        (Type::Entity(EntityKind::Entity(lub)), Json::Object(m)) => {
            let declared = lub.get_single_entity()?;
            let e = m.get("__entity")?.as_object()?;
            if m.len() != 1 || e.len() != 2 {
                return None;
            }
            let name = e.get("type")?.as_str()?;
            let (ty, _) = types.standard.get(name)?;
            if ty != declared {
                return None;
            }
            let id = e.get("id")?.as_str()?;
            ast::Value::from(ast::EntityUID::from_components(
                ty.clone(),
                ast::Eid::new(id),
                None,
            ))
        }
        (Type::ExtensionType { name }, Json::String(s)) if is_ipaddr(name) => ip_value(s)?,
        _ => return None,
    })
}

fn is_ipaddr(name: &ast::Name) -> bool {
    static IPADDR: LazyLock<Option<ast::Name>> = LazyLock::new(|| "ipaddr".parse().ok());
    IPADDR.as_ref() == Some(name)
}

/// Cedar's `ip(s)`, made by Cedar's own evaluator (through the public API). Each thread
/// keeps the values of the addresses it has seen, up to [`IP_CACHE`] of them.
fn ip_value(s: &str) -> Option<ast::Value> {
    thread_local! {
        static SEEN: std::cell::RefCell<HashMap<String, ast::Value>> =
            std::cell::RefCell::default();
    }
    SEEN.with_borrow_mut(|seen| {
        if let Some(v) = seen.get(s) {
            return Some(v.clone());
        }
        let context = cedar_policy::Context::from_pairs([(
            "ip".to_owned(),
            cedar_policy::RestrictedExpression::new_ip(s),
        )])
        .ok()?;
        let ast::Context::Value(record) = AsRef::<ast::Context>::as_ref(&context) else {
            return None;
        };
        let v = record.get("ip")?.clone();
        if seen.len() >= IP_CACHE {
            seen.clear();
        }
        seen.insert(s.to_owned(), v.clone());
        Some(v)
    })
}

/// How many `ip(…)` values a thread keeps.
const IP_CACHE: usize = 1024;

/// An entity set of `entities`, taken as closed.
///
/// INVARIANT (closed): the callers' entities are the request's action (whose ancestors
/// the schema closed transitively — or every action entity of the schema), the
/// principal and the resource (no parents), a user (parents: its groups) and a mandate
/// (no parents). The only parents outside the actions are the user's groups, and a group
/// in the set can only be the resource, which has no parents: every ancestor set is
/// already transitive and there is no cycle, so Cedar's closure would add nothing.
/// Duplicates are refused as `Entities::from_entities` refuses them.
pub(crate) fn closed_entities(
    entities: impl IntoIterator<Item = Arc<ast::Entity>>,
) -> Result<cedar_policy::Entities, Box<EntitiesError>> {
    Entities::new()
        .add_entities(
            entities,
            None::<&NoEntitiesSchema>,
            TCComputation::AssumeAlreadyComputed,
            Extensions::all_available(),
        )
        .map(cedar_policy::Entities::from)
        .map_err(Box::new)
}
