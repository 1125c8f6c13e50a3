//! Mandate's base Cedar schema, and an index of the attribute names a combined schema
//! declares, so that undeclared request fields can be dropped before Cedar sees them.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

/// Mandate's base schema, in Cedar's human-readable schema syntax.
///
/// Everything lives in the `Mandate` namespace:
///
/// - `Mandate::Agent` — the principal of every request. Attributes: `owner`, `name`,
///   `status` (`"active"`, `"suspended"` or `"decommissioned"`) and `labels`, a
///   `Set<String>` of `"key=value"` strings. The same labels are also the agent's Cedar
///   *tags*, so a policy can read one value: `principal.hasTag("team") &&
///   principal.getTag("team") == resource.team` (Cedar has no string concatenation,
///   so the set alone cannot be matched against another attribute).
/// - `Mandate::User` (optional `email`) and `Mandate::Group`; agents and users may be
///   `in` groups. Mandate does not yet load any group membership, so `principal in
///   Mandate::Group::"…"` is false for now.
/// - `Mandate::Mandate` — a task-scoped grant, the resource of `"mandate:request"`,
///   with `agent`, `intent`, `lifetime_secs` and its scope's `actions`, `resources` and
///   `data_classes` patterns.
/// - `Mandate::Action::"all"` — an action group. Operators should declare their actions
///   `in ["all"]`, so one policy (`action in Mandate::Action::"all"`) can cover every
///   action. It applies to nothing itself and cannot be requested.
/// - `Mandate::Action::"mandate:request"` — an agent asks for a mandate.
///
/// Every action's context in the `Mandate` namespace also gets Mandate's own optional
/// fields ([`RESERVED_CONTEXT`]), filled from the verified token, never from the
/// caller: `context.user` (the `Mandate::User` the agent acts for, `in` their groups),
/// `context.mandate` (the `Mandate::Mandate` the token is bound to), `context.chain`
/// (the agents that delegated to the principal), `context.delegation_depth`, and
/// `context.risk` (always present: the anomaly detector's view of the request, a record
/// `{score: Long 0–100, level: "none"|"low"|"medium"|"high"|"critical", anomalies:
/// Set<String>, step_up: Bool}`).
pub const BASE_SCHEMA: &str = r#"// Mandate's base schema. Operators extend it with schema fragments: their own
// namespaces for resource types, and their actions declared in `namespace Mandate`.
namespace Mandate {
  // A group of agents or users.
  entity Group;

  // A human, e.g. the user an agent acts for.
  entity User in [Group] {
    email?: String,
  };

  // An AI agent: the principal of every request. `labels` holds "key=value" strings;
  // the same labels are the agent's tags (`principal.getTag("team")`).
  entity Agent in [Group] {
    owner: String,
    name: String,
    status: String,
    labels: Set<String>,
  } tags String;

  // A task-scoped, time-bound grant: the resource of "mandate:request", and
  // `context.mandate` of a request made with a token bound to one. `actions`,
  // `resources` and `data_classes` are the patterns of its scope's grants.
  entity Mandate {
    agent: Agent,
    intent: String,
    actions: Set<String>,
    resources: Set<String>,
    data_classes: Set<String>,
    lifetime_secs: Long,
  };

  // The group of every action: declare operator actions `in ["all"]`.
  action "all";

  // An agent asks for a mandate.
  action "mandate:request" in ["all"] appliesTo {
    principal: [Agent],
    resource: [Mandate],
  };
}
"#;

/// Context fields Mandate fills itself on every `Mandate` action, and their JSON-schema
/// types. A schema fragment declaring one of them is refused; a caller sending one has
/// it replaced.
pub const RESERVED_CONTEXT: &[&str] = &["user", "mandate", "chain", "delegation_depth", "risk"];

fn reserved_types() -> Map<String, Value> {
    let entity = |n: &str| serde_json::json!({"type": "Entity", "name": n, "required": false});
    let mut m = Map::new();
    m.insert("user".into(), entity("Mandate::User"));
    m.insert("mandate".into(), entity("Mandate::Mandate"));
    m.insert(
        "chain".into(),
        serde_json::json!({"type": "Set", "element": {"type": "Entity", "name": "Mandate::Agent"}, "required": false}),
    );
    m.insert(
        "delegation_depth".into(),
        serde_json::json!({"type": "Long", "required": false}),
    );
    // Always present (a request the detector has not scored has score 0), so policies
    // can read it without `has`.
    m.insert(
        "risk".into(),
        serde_json::json!({"type": "Record", "required": true, "attributes": {
            "score": {"type": "Long"},
            "level": {"type": "String"},
            "anomalies": {"type": "Set", "element": {"type": "String"}},
            "step_up": {"type": "Boolean"},
        }}),
    );
    m
}

/// Adds [`RESERVED_CONTEXT`] to the context of every action in the `Mandate` namespace
/// of JSON-schema `fragments`: into an inline record, into the common type a context
/// names (resolved through aliases; it is a record shared by whoever uses it), or as a
/// new record where an action declares none. Returns the problems: a context that
/// already declares a reserved field, or one that cannot be resolved to a record.
pub(crate) fn inject_reserved_context(fragments: &mut [Value]) -> Vec<String> {
    let mut problems = Vec::new();
    // Which common types (qualified) need the fields, found first, changed after.
    let mut common_targets: Vec<String> = Vec::new();
    let common_names: HashMap<String, (String, Value)> = fragments
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|f| f.iter())
        .flat_map(|(ns, def)| {
            def.get("commonTypes")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(move |(n, t)| (qualify(ns, n), (ns.clone(), t.clone())))
        })
        .collect();
    for fragment in fragments.iter_mut() {
        let Some(actions) = fragment
            .get_mut(NAMESPACE)
            .and_then(|d| d.get_mut("actions"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (id, action) in actions.iter_mut() {
            let Some(applies) = action.get_mut("appliesTo").and_then(Value::as_object_mut) else {
                continue;
            };
            let ctx = applies
                .entry("context")
                .or_insert_with(|| serde_json::json!({"type": "Record", "attributes": {}}));
            match ctx.get("type").and_then(Value::as_str) {
                Some("Record") => add_reserved(ctx, &format!("action `{id}`"), &mut problems),
                _ => match resolve_common(ctx, NAMESPACE, &common_names, 0) {
                    Some(name) => common_targets.push(name),
                    None => problems.push(format!("the context of action `{id}` is not a record")),
                },
            }
        }
    }
    common_targets.sort();
    common_targets.dedup();
    for name in common_targets {
        let (ns, local) = match name.rsplit_once("::") {
            Some((ns, local)) => (ns.to_owned(), local.to_owned()),
            None => (String::new(), name.clone()),
        };
        for fragment in fragments.iter_mut() {
            if let Some(ty) = fragment
                .get_mut(&ns)
                .and_then(|d| d.get_mut("commonTypes"))
                .and_then(|c| c.get_mut(&local))
            {
                add_reserved(ty, &format!("common type `{name}`"), &mut problems);
            }
        }
    }
    problems
}

fn add_reserved(record: &mut Value, what: &str, problems: &mut Vec<String>) {
    let Some(attrs) = record
        .as_object_mut()
        .map(|r| {
            r.entry("attributes")
                .or_insert_with(|| Value::Object(Map::new()))
        })
        .and_then(Value::as_object_mut)
    else {
        problems.push(format!("{what} is not a record"));
        return;
    };
    for (k, v) in reserved_types() {
        if attrs.contains_key(&k) {
            problems.push(format!(
                "{what} declares context field `{k}`, which Mandate reserves (it fills \
                 it from the verified token)"
            ));
        } else {
            attrs.insert(k, v);
        }
    }
}

/// The qualified name of the record common type `ty` refers to, through aliases.
fn resolve_common(
    ty: &Value,
    namespace: &str,
    common: &HashMap<String, (String, Value)>,
    depth: usize,
) -> Option<String> {
    if depth > MAX_ALIAS_DEPTH {
        return None;
    }
    let kind = ty.get("type").and_then(Value::as_str)?;
    let reference = match kind {
        "EntityOrCommon" => ty.get("name").and_then(Value::as_str)?,
        "Record" | "String" | "Long" | "Boolean" | "Set" | "Entity" | "Extension" => {
            return None;
        }
        other => other,
    };
    let (name, (ns, found)) = if reference.contains("::") {
        common.get_key_value(reference)?
    } else {
        common
            .get_key_value(&qualify(namespace, reference))
            .or_else(|| common.get_key_value(reference))?
    };
    if found.get("type").and_then(Value::as_str) == Some("Record") {
        Some(name.clone())
    } else {
        resolve_common(found, ns, common, depth + 1)
    }
}

/// The namespace of Mandate's own types and of every action Mandate decides.
pub(crate) const NAMESPACE: &str = "Mandate";

/// The action group every action should join, so that one policy can cover them all.
pub(crate) const ALL_ACTIONS: &str = "all";

/// How deep common-type aliases are followed before giving up.
const MAX_ALIAS_DEPTH: usize = 32;

/// The top-level attribute names declared for each entity type's shape and each
/// `Mandate` action's context. A type or action missing here (its shape could not be
/// resolved to a record) is passed to Cedar unfiltered, so Cedar's own check decides.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeclaredAttrs {
    /// Fully qualified entity type name (`Crm::Contact`) → attribute names.
    entities: HashMap<String, BTreeSet<String>>,
    /// Action id in the `Mandate` namespace (`crm:read`) → context attribute names.
    contexts: HashMap<String, BTreeSet<String>>,
}

/// A common type and the namespace its own references resolve in.
struct CommonType<'a> {
    namespace: &'a str,
    ty: &'a Value,
}

impl DeclaredAttrs {
    /// Indexes schema fragments given in Cedar's JSON schema format (as
    /// `SchemaFragment::to_json_value` writes them).
    pub(crate) fn from_json_fragments(fragments: &[Value]) -> Self {
        let namespaces: Vec<(&str, &Map<String, Value>)> = fragments
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|f| f.iter())
            .filter_map(|(ns, def)| def.as_object().map(|d| (ns.as_str(), d)))
            .collect();

        let mut common = HashMap::new();
        for (ns, def) in &namespaces {
            for (name, ty) in def
                .get("commonTypes")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                common.insert(qualify(ns, name), CommonType { namespace: ns, ty });
            }
        }

        let mut out = Self::default();
        for (ns, def) in &namespaces {
            for (name, ety) in def
                .get("entityTypes")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let attrs = match ety.get("shape") {
                    None => Some(&*EMPTY),
                    Some(shape) => record_attrs(shape, ns, &common, 0),
                };
                if let Some(attrs) = attrs {
                    out.entities.insert(qualify(ns, name), names(attrs));
                }
            }
            if *ns != NAMESPACE {
                continue;
            }
            for (id, action) in def
                .get("actions")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let Some(applies) = action.get("appliesTo") else {
                    continue;
                };
                let attrs = match applies.get("context") {
                    None => Some(&*EMPTY),
                    Some(ctx) => record_attrs(ctx, ns, &common, 0),
                };
                if let Some(attrs) = attrs {
                    out.contexts.insert(id.clone(), names(attrs));
                }
            }
        }
        out
    }

    /// Entity type `ty`'s attributes as Cedar receives them: `attrs` without the
    /// top-level fields the type does not declare.
    pub(crate) fn entity_fields<'a>(
        &'a self,
        ty: &str,
        attrs: &'a Map<String, Value>,
    ) -> Fields<'a> {
        Fields {
            json: attrs,
            declared: self.entities.get(ty),
            reserved: None,
        }
    }

    /// The context of `Mandate::Action::"<action>"` as Cedar receives it: `context`
    /// without the top-level fields the action does not declare, and Mandate's reserved
    /// fields, those in `reserved`, in place of any the caller sent.
    pub(crate) fn context_fields<'a>(
        &'a self,
        action: &str,
        context: &'a Map<String, Value>,
        reserved: Reserved,
    ) -> Fields<'a> {
        Fields {
            json: context,
            declared: self.contexts.get(action),
            reserved: Some(reserved),
        }
    }
}

/// Which of Mandate's reserved context fields a request has (`risk` always).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Reserved {
    pub(crate) user: bool,
    pub(crate) mandate: bool,
    /// `chain` and `delegation_depth`.
    pub(crate) chain: bool,
}

impl Reserved {
    fn has(self, name: &str) -> bool {
        match name {
            "user" => self.user,
            "mandate" => self.mandate,
            "chain" | "delegation_depth" => self.chain,
            _ => name == "risk",
        }
    }
}

/// A record of a request (a resource's attributes, a context) as Cedar receives it,
/// read in place from the caller's JSON: fields a schema does not declare are not
/// there (a type or action whose declarations could not be resolved keeps them all,
/// for Cedar's own check), and in a context the reserved fields are Mandate's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    json: &'a Map<String, Value>,
    declared: Option<&'a BTreeSet<String>>,
    /// `Some` for a context.
    reserved: Option<Reserved>,
}

/// One field of [`Fields`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field<'a> {
    Missing,
    /// A field of the caller's.
    Json(&'a Value),
    /// One of Mandate's reserved context fields (its value is not the caller's).
    Reserved,
}

impl<'a> Fields<'a> {
    /// All of `json`, as it is: for records Mandate makes itself.
    pub(crate) fn all(json: &'a Map<String, Value>) -> Self {
        Self {
            json,
            declared: None,
            reserved: None,
        }
    }

    pub(crate) fn get(&self, name: &str) -> Field<'a> {
        if let Some(r) = self.reserved
            && RESERVED_CONTEXT.contains(&name)
        {
            return if r.has(name) {
                Field::Reserved
            } else {
                Field::Missing
            };
        }
        if self.declared.is_some_and(|d| !d.contains(name)) {
            return Field::Missing;
        }
        self.json.get(name).map_or(Field::Missing, Field::Json)
    }

    /// The caller's fields (the reserved ones are not among them).
    pub(crate) fn caller(self) -> impl Iterator<Item = (&'a str, &'a Value)> {
        let (declared, context) = (self.declared, self.reserved.is_some());
        self.json
            .iter()
            .filter(move |(k, _)| {
                declared.is_none_or(|d| d.contains(k.as_str()))
                    && !(context && RESERVED_CONTEXT.contains(&k.as_str()))
            })
            .map(|(k, v)| (k.as_str(), v))
    }

    /// The caller's fields as a JSON object.
    pub(crate) fn to_json(self) -> Map<String, Value> {
        self.caller()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect()
    }
}

fn qualify(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}::{name}")
    }
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

fn names(attrs: &Map<String, Value>) -> BTreeSet<String> {
    attrs.keys().cloned().collect()
}

/// The attributes (name → JSON-schema type) of a JSON-schema type that is a record,
/// directly or through common-type aliases; `None` if it is not (or cannot be resolved
/// to) a record.
fn record_attrs<'a>(
    ty: &'a Value,
    namespace: &str,
    common: &HashMap<String, CommonType<'a>>,
    depth: usize,
) -> Option<&'a Map<String, Value>> {
    if depth > MAX_ALIAS_DEPTH {
        return None;
    }
    let kind = ty.get("type").and_then(Value::as_str)?;
    let reference = match kind {
        "Record" => {
            return ty.get("attributes").and_then(Value::as_object);
        }
        "EntityOrCommon" => ty.get("name").and_then(Value::as_str)?,
        "String" | "Long" | "Boolean" | "Set" | "Entity" | "Extension" => return None,
        other => other,
    };
    // A qualified name means exactly that type; an unqualified one is looked up in the
    // current namespace first, then in the empty namespace (Cedar's resolution order).
    let found = if reference.contains("::") {
        common.get(reference)
    } else {
        common
            .get(&qualify(namespace, reference))
            .or_else(|| common.get(reference))
    }?;
    record_attrs(found.ty, found.namespace, common, depth + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_records_and_aliases() {
        let frag = json!({
            "Crm": {
                "commonTypes": {
                    "Ctx": {"type": "Record", "attributes": {"data_class": {"type": "String"}}},
                    "Alias": {"type": "EntityOrCommon", "name": "Ctx"},
                    "Loop": {"type": "Loop"}
                },
                "entityTypes": {
                    "Contact": {"shape": {"type": "Record", "attributes": {"team": {"type": "String"}}}},
                    "Bare": {},
                    "Looped": {"shape": {"type": "Loop"}}
                },
                "actions": {"ignored": {"appliesTo": {"context": {"type": "Ctx"}}}}
            },
            "Mandate": {
                "entityTypes": {},
                "actions": {
                    "crm:read": {"appliesTo": {"context": {"type": "Crm::Alias"}}},
                    "crm:none": {"appliesTo": {}},
                    "group": {}
                }
            }
        });
        let d = DeclaredAttrs::from_json_fragments(&[frag]);
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        assert_eq!(d.entities.get("Crm::Contact"), Some(&set(&["team"])));
        assert_eq!(d.entities.get("Crm::Bare"), Some(&set(&[])));
        assert_eq!(
            d.entities.get("Crm::Looped"),
            None,
            "an alias loop is left to cedar"
        );
        assert_eq!(d.contexts.get("crm:read"), Some(&set(&["data_class"])));
        assert_eq!(d.contexts.get("crm:none"), Some(&set(&[])));
        assert!(!d.contexts.contains_key("group") && !d.contexts.contains_key("ignored"));

        let ctx = json!({"data_class": "pii", "extra": 1});
        let ctx = ctx.as_object().unwrap();
        assert_eq!(
            Value::Object(
                d.context_fields("crm:read", ctx, Reserved::default())
                    .to_json()
            ),
            json!({"data_class": "pii"})
        );
        assert_eq!(
            Value::Object(
                d.context_fields("unknown", ctx, Reserved::default())
                    .to_json()
            ),
            Value::Object(ctx.clone())
        );
    }
}
