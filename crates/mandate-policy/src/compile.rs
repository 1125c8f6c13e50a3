//! Turning operator text (schema fragments and a policy set) into a validated,
//! compiled policy set, with every problem located in the text it came from.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, EntityId, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, Schema,
    SchemaFragment, ValidationMode, Validator,
};
use miette::{Diagnostic, SourceSpan};
use serde::Serialize;

use crate::schema::{ALL_ACTIONS, BASE_SCHEMA, DeclaredAttrs, NAMESPACE, inject_reserved_context};

/// How many entity hops a policy may take from the request's principal and resource
/// (Cedar level validation, RFC 76). Only those two entities are loaded for a request,
/// so a policy reading an entity reached through an attribute (`resource.owner.email`,
/// `resource.owner in …`) would always fail or silently be false: it is refused when
/// compiled instead.
const MAX_DEREF_LEVEL: u32 = 1;

/// The annotation that turns a `forbid` into "forbid unless a human approves":
/// `@approval forbid(…) when { … };`. A request such a forbid alone denies, and which
/// the other policies allow, is answered `approval_required`. Only on forbids.
pub const APPROVAL: &str = "approval";

/// The source name of the policy text in a [`PolicyError`].
pub const POLICIES_SOURCE: &str = "policies";

/// The source name of [`BASE_SCHEMA`] in a [`PolicyError`] (an operator fragment can
/// clash with it, e.g. by declaring `Mandate::Agent` again).
pub const BASE_SCHEMA_SOURCE: &str = "base schema";

/// One problem with a policy set or schema fragment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyError {
    /// Where: `"policies"`, `"schema fragment N"` (1-based: `fragments[0]` is
    /// `"schema fragment 1"`), `"base schema"`, or `"schema"` when Cedar does not say
    /// which fragment.
    pub source: String,
    /// 1-based line in that source of the first character Cedar points at, when it
    /// reports a location.
    pub line: Option<u32>,
    /// 1-based column of that character, counted in characters (not bytes).
    pub column: Option<u32>,
    /// Cedar's message, with its label and hint when it gives them.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PolicyError {}

/// A validated, compiled policy set with the schema it was validated against.
///
/// Cheap to share: put it in an `Arc` and swap it when the policies change. It is
/// `Send + Sync`.
#[derive(Debug, Clone)]
pub struct CompiledPolicies {
    pub(crate) schema: Schema,
    pub(crate) policies: PolicySet,
    /// Policy ids in source order.
    pub(crate) ids: Vec<String>,
    pub(crate) declared: DeclaredAttrs,
    pub(crate) authorizer: Authorizer,
    /// `Mandate::Action`.
    pub(crate) action_type: EntityTypeName,
    /// `Mandate::Agent`.
    pub(crate) agent_type: EntityTypeName,
    /// Ids of the `@approval` forbids: a request they alone deny, and the rest allow,
    /// needs a human's approval rather than being refused.
    pub(crate) approval_ids: std::collections::HashSet<String>,
    /// The policies without the `@approval` forbids; `None` when there are none.
    pub(crate) relaxed: Option<PolicySet>,
    /// The policies by action and resource type, with what rules each out.
    pub(crate) index: crate::index::Index,
    /// The schema's action entities (with their groups, transitively), of every
    /// namespace.
    pub(crate) action_entities: Vec<std::sync::Arc<cedar_policy_core::ast::Entity>>,
    /// The requestable ones (`Mandate::Action`) by id, with what building a request
    /// for each needs: a request's entities hold its action's, so `action in …` sees
    /// the hierarchy.
    pub(crate) request_actions: HashMap<String, crate::direct::ActionShape>,
    /// The entity types a directly built context may name.
    pub(crate) direct_types: crate::direct::TypeNames,
    /// The schema's entity types by name, parsed once.
    pub(crate) type_names: HashMap<String, EntityTypeName>,
    /// Whether some policy may name an action entity outside its scope (`Mandate::
    /// Action::"x" in …` in a condition: any type name ending in `Action` in its
    /// conditions): then every request holds every action entity.
    pub(crate) all_action_entities: bool,
    warnings: Vec<PolicyError>,
    /// The version's Rego part (empty unless set by [`CompiledPolicies::with_rego`]);
    /// Cedar's decisions never read it.
    rego: std::sync::Arc<crate::RegoPolicies>,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<CompiledPolicies>();
};

impl CompiledPolicies {
    /// The policies' ids, in source order: each policy's `@id("…")` annotation when it
    /// has one, else Cedar's positional id (`policy0`, `policy1`, … counting every
    /// policy in the text).
    pub fn policy_ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    /// How many policies there are.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no policies (every request is then denied).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Problems that do not stop compilation: Cedar's warnings (e.g. a policy that can
    /// never apply, confusable identifiers, a schema declaration shadowing a builtin
    /// type), and each `Mandate` action declared outside the `"all"` group (which a
    /// policy on `action in Mandate::Action::"all"` then does not cover).
    pub fn warnings(&self) -> &[PolicyError] {
        &self.warnings
    }

    /// The requestable actions (`Mandate::Action` ids) whose `appliesTo` names an agent
    /// principal and the resource type `resource_type`, sorted: what an agent could be
    /// asked to do on such a resource (AuthZEN's action search decides each). Empty for
    /// a type the schema does not know or cannot name.
    pub fn actions_for(&self, resource_type: &str) -> Vec<String> {
        let resource = match self.type_names.get(resource_type) {
            Some(t) => t.clone(),
            None => match EntityTypeName::from_str(resource_type) {
                Ok(t) => t,
                Err(_) => return Vec::new(),
            },
        };
        let mut out: Vec<String> = self
            .schema
            .actions_for_principal_and_resource(&self.agent_type, &resource)
            .filter(|uid| uid.type_name() == &self.action_type)
            .map(|uid| uid.id().unescaped().to_owned())
            .filter(|id| self.request_actions.get(id).is_some_and(|s| s.applies))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The same policies with the version's compiled Rego part (from
    /// [`crate::compile_rego`]) beside them, answered by the Data API.
    #[must_use]
    pub fn with_rego(mut self, rego: crate::RegoPolicies) -> Self {
        self.rego = std::sync::Arc::new(rego);
        self
    }

    /// The version's Rego part; empty when it has none.
    pub fn rego(&self) -> &crate::RegoPolicies {
        &self.rego
    }
}

/// A source the errors of one Cedar call may point into.
struct Source<'a> {
    name: String,
    text: &'a str,
}

/// Parses and validates `policies` against [`BASE_SCHEMA`] plus the operator's schema
/// `fragments` (each in Cedar schema syntax).
///
/// Fragments are separate texts combined into one schema. A namespace may be declared
/// in several of them: operators add their actions by opening `namespace Mandate`
/// again in their own fragment (`namespace Mandate { action "crm:read" in ["all"]
/// appliesTo { principal: [Agent], resource: [Crm::Contact] }; }`) and may refer to
/// types declared in any other fragment. Declaring the same type or action twice is an
/// error.
///
/// Validation is Cedar's strict mode plus level validation at depth 1 (a policy may
/// read the principal's and the resource's attributes, tags and groups, but not those
/// of entities reached through them, which are never loaded).
///
/// Every problem found is returned, none is fatal-first: every fragment's syntax
/// errors, the policies' syntax errors, and, when both parse, the first error Cedar
/// finds combining the fragments or all validation errors. Policies with slots
/// (templates) are refused, as are two policies with the same id.
pub fn compile(fragments: &[String], policies: &str) -> Result<CompiledPolicies, Vec<PolicyError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();

    let schema = build_schema(fragments, &mut errors, &mut warnings);
    let policy_set = build_policy_set(policies, &mut errors);
    let action_type = type_name(&format!("{NAMESPACE}::Action"), &mut errors);
    let agent_type = type_name(&format!("{NAMESPACE}::Agent"), &mut errors);

    let (Some((schema, declared)), Some((policy_set, ids)), Some(action_type), Some(agent_type)) =
        (schema, policy_set, action_type, agent_type)
    else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }

    warnings.extend(ungrouped_actions(&schema, &action_type));

    let policy_source = [Source {
        name: POLICIES_SOURCE.to_owned(),
        text: policies,
    }];
    let result = Validator::new(schema.clone()).validate_with_level(
        &policy_set,
        ValidationMode::Strict,
        MAX_DEREF_LEVEL,
    );
    for e in result.validation_errors() {
        let id = e.policy_id().to_string();
        errors.extend(
            diagnostic_errors(e, &policy_source)
                .into_iter()
                .map(|pe| name_policy(pe, &id)),
        );
    }
    for w in result.validation_warnings() {
        let id = w.policy_id().to_string();
        warnings.extend(
            diagnostic_errors(w, &policy_source)
                .into_iter()
                .map(|pe| name_policy(pe, &id)),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let approval_ids: std::collections::HashSet<String> = policy_set
        .policies()
        .filter(|p| p.annotation(APPROVAL).is_some())
        .map(|p| AsRef::<str>::as_ref(p.id()).to_owned())
        .collect();
    let relaxed = if approval_ids.is_empty() {
        None
    } else {
        let mut r = PolicySet::new();
        for p in policy_set
            .policies()
            .filter(|p| !approval_ids.contains(AsRef::<str>::as_ref(p.id())))
        {
            r.add(p.clone()).map_err(|e| {
                vec![PolicyError {
                    source: POLICIES_SOURCE.to_owned(),
                    line: None,
                    column: None,
                    message: e.to_string(),
                }]
            })?;
        }
        Some(r)
    };
    let index = crate::index::Index::build(&schema, &policy_set, &approval_ids, &action_type);
    let action_entities: Vec<std::sync::Arc<cedar_policy_core::ast::Entity>> = schema
        .action_entities()
        .map(|e| {
            e.iter()
                .map(|a| {
                    std::sync::Arc::new(AsRef::<cedar_policy_core::ast::Entity>::as_ref(a).clone())
                })
                .collect()
        })
        .map_err(|e| {
            vec![PolicyError {
                source: "schema".to_owned(),
                line: None,
                column: None,
                message: format!("the schema's actions do not form entities: {e}"),
            }]
        })?;
    let core_schema: &cedar_policy_core::validator::ValidatorSchema = schema.as_ref();
    let direct_types = crate::direct::TypeNames::new(core_schema, agent_type.as_ref().clone());
    // Keyed by id only within `Mandate::Action`: another namespace may declare an
    // action with the same id.
    let action_core_type: &cedar_policy_core::ast::EntityType = action_type.as_ref();
    let request_actions = action_entities
        .iter()
        .filter(|a| a.uid().entity_type() == action_core_type)
        .map(|a| {
            let shape = crate::direct::ActionShape::new(core_schema, &direct_types, a);
            (AsRef::<str>::as_ref(a.uid().eid()).to_owned(), shape)
        })
        .collect();
    let all_action_entities = policy_set.policies().any(|p| {
        p.to_json().map_or(true, |est| {
            est.get("conditions")
                .is_some_and(|c| c.to_string().contains("Action\""))
        })
    });
    let type_names = schema
        .entity_types()
        .map(|t| (t.to_string(), t.clone()))
        .collect();
    Ok(CompiledPolicies {
        type_names,
        index,
        action_entities,
        request_actions,
        direct_types,
        all_action_entities,
        schema,
        policies: policy_set,
        ids,
        declared,
        authorizer: Authorizer::new(),
        action_type,
        agent_type,
        approval_ids,
        relaxed,
        warnings,
        rego: std::sync::Arc::default(),
    })
}

/// A warning for each requestable `Mandate` action outside the `"all"` group: a
/// policy on `action in Mandate::Action::"all"` (a blanket forbid, say) misses it.
fn ungrouped_actions(schema: &Schema, action_type: &EntityTypeName) -> Vec<PolicyError> {
    let Ok(actions) = schema.action_entities() else {
        return Vec::new();
    };
    let all = EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(ALL_ACTIONS));
    let mut out: Vec<PolicyError> = schema
        .actions()
        .filter(|a| a.type_name() == action_type && *a != &all)
        .filter(|a| {
            schema
                .principals_for_action(a)
                .is_some_and(|mut p| p.next().is_some())
        })
        .filter(|a| !actions.is_ancestor_of(&all, a))
        .map(|a| PolicyError {
            source: "schema".to_owned(),
            line: None,
            column: None,
            message: format!(
                "action `{}` is not in the `{ALL_ACTIONS}` group: policies on \
                 `action in Mandate::Action::\"{ALL_ACTIONS}\"` do not cover it",
                a.id().unescaped().escape_debug()
            ),
        })
        .collect();
    out.sort_by(|x, y| x.message.cmp(&y.message));
    out
}

fn type_name(name: &str, errors: &mut Vec<PolicyError>) -> Option<EntityTypeName> {
    EntityTypeName::from_str(name)
        .map_err(|e| {
            errors.push(PolicyError {
                source: BASE_SCHEMA_SOURCE.to_owned(),
                line: None,
                column: None,
                message: format!("invalid entity type name `{name}`: {e}"),
            });
        })
        .ok()
}

/// Prefixes a validation message with its policy id unless Cedar already named it.
fn name_policy(mut e: PolicyError, id: &str) -> PolicyError {
    if !e.message.contains(&format!("`{id}`")) {
        e.message = format!("in policy `{id}`: {}", e.message);
    }
    e
}

/// The combined schema and its attribute index, or `None` with the errors recorded.
fn build_schema(
    fragments: &[String],
    errors: &mut Vec<PolicyError>,
    warnings: &mut Vec<PolicyError>,
) -> Option<(Schema, DeclaredAttrs)> {
    let sources: Vec<Source<'_>> = std::iter::once(Source {
        name: BASE_SCHEMA_SOURCE.to_owned(),
        text: BASE_SCHEMA,
    })
    .chain(fragments.iter().enumerate().map(|(i, text)| Source {
        name: format!("schema fragment {}", i + 1),
        text,
    }))
    .collect();

    let mut parsed = Vec::with_capacity(sources.len());
    let mut json = Vec::with_capacity(sources.len());
    for source in &sources {
        let one = std::slice::from_ref(source);
        match SchemaFragment::from_cedarschema_str(source.text) {
            Ok((fragment, warns)) => {
                for w in warns {
                    warnings.extend(diagnostic_errors(&w, one));
                }
                // The combined schema is rebuilt from the JSON form (with Mandate's
                // reserved context fields added), so a fragment must convert.
                match fragment.clone().to_json_value() {
                    Ok(v) => json.push(v),
                    Err(e) => errors.extend(diagnostic_errors(&e, one)),
                }
                parsed.push(fragment);
            }
            Err(e) => errors.extend(diagnostic_errors(&e, one)),
        }
    }
    if parsed.len() != sources.len() || json.len() != sources.len() {
        return None;
    }
    match Schema::from_schema_fragments(parsed) {
        // The fragments combine (any error so far is located in the operator's text);
        // now the same schema with Mandate's reserved context fields added.
        Ok(_) => with_reserved_context(json, errors),
        Err(e) => {
            errors.extend(diagnostic_errors(&e, &sources).into_iter().map(|mut pe| {
                // Cedar points a duplicate at its first declaration, which for a clash
                // with Mandate's own types is in the base schema.
                if pe.source == BASE_SCHEMA_SOURCE && pe.message.starts_with("duplicate") {
                    pe.message
                        .push_str(" (already declared by Mandate's base schema)");
                }
                pe
            }));
            None
        }
    }
}

/// The schema rebuilt from the fragments' JSON form with [`crate::RESERVED_CONTEXT`] added to
/// every `Mandate` action's context.
fn with_reserved_context(
    mut json: Vec<serde_json::Value>,
    errors: &mut Vec<PolicyError>,
) -> Option<(Schema, DeclaredAttrs)> {
    let schema_error = |message: String| PolicyError {
        source: "schema".to_owned(),
        line: None,
        column: None,
        message,
    };
    let problems = inject_reserved_context(&mut json);
    if !problems.is_empty() {
        errors.extend(problems.into_iter().map(schema_error));
        return None;
    }
    let fragments: Result<Vec<SchemaFragment>, String> = json
        .iter()
        .map(|v| SchemaFragment::from_json_value(v.clone()).map_err(|e| e.to_string()))
        .collect();
    let built = fragments.and_then(|f| Schema::from_schema_fragments(f).map_err(|e| e.to_string()));
    match built {
        Ok(schema) => Some((schema, DeclaredAttrs::from_json_fragments(&json))),
        Err(e) => {
            errors.push(schema_error(format!(
                "adding Mandate's context fields to the schema failed: {e}"
            )));
            None
        }
    }
}

/// The policy set re-keyed by `@id` annotations, with its ids in source order, or
/// `None` with the errors recorded.
fn build_policy_set(text: &str, errors: &mut Vec<PolicyError>) -> Option<(PolicySet, Vec<String>)> {
    let source = [Source {
        name: POLICIES_SOURCE.to_owned(),
        text,
    }];
    let parsed = match PolicySet::from_str(text) {
        Ok(p) => p,
        Err(e) => {
            errors.extend(diagnostic_errors(&e, &source));
            return None;
        }
    };

    // Cedar numbers policies and templates together (`policy0`, `policy1`, …) in
    // source order; walk them in that order to find each one's text.
    enum Item<'p> {
        Static(&'p Policy),
        Template(PolicyId),
    }
    let mut items: Vec<(usize, String, Option<String>, Item<'_>)> = parsed
        .policies()
        .map(|p| {
            (
                position(p.id()),
                p.id().to_string(),
                p.to_cedar(),
                Item::Static(p),
            )
        })
        .chain(parsed.templates().map(|t| {
            (
                position(t.id()),
                t.id().to_string(),
                Some(t.to_cedar()),
                Item::Template(t.id().clone()),
            )
        }))
        .collect();
    items.sort_by_key(|(pos, ..)| *pos);

    let mut set = PolicySet::new();
    let mut ids = Vec::with_capacity(items.len());
    let mut first_use: HashMap<String, String> = HashMap::new();
    let mut search_from = 0usize;
    let mut ok = true;
    for (_, cedar_id, policy_text, item) in items {
        let at = policy_text
            .as_deref()
            .and_then(|t| find_from(text, t, search_from));
        if let (Some(start), Some(t)) = (at, policy_text.as_deref()) {
            search_from = start.saturating_add(t.len());
        }
        let here = |message: String| {
            let (line, column) = at.map_or((None, None), |o| line_column(text, o));
            PolicyError {
                source: POLICIES_SOURCE.to_owned(),
                line,
                column,
                message,
            }
        };
        let policy = match item {
            Item::Template(id) => {
                errors.push(here(format!(
                    "policy `{id}` has a slot (`?principal` or `?resource`): templates are not supported"
                )));
                ok = false;
                continue;
            }
            Item::Static(p) => p,
        };
        if policy.annotation(APPROVAL).is_some() && policy.effect() == cedar_policy::Effect::Permit
        {
            errors.push(here(format!(
                "policy `{cedar_id}`: `@{APPROVAL}` applies to forbid policies only (\"forbid unless a human approves\")"
            )));
            ok = false;
            continue;
        }
        let id = match policy.annotation("id") {
            Some(id) if id.trim().is_empty() => {
                errors.push(here(format!("policy `{cedar_id}` has an empty `@id`")));
                ok = false;
                continue;
            }
            Some(id) => id.to_owned(),
            None => cedar_id.clone(),
        };
        if let Some(first) = first_use.get(&id) {
            errors.push(here(format!(
                "duplicate policy id `{id}` (policy `{cedar_id}` has the same id as policy `{first}`)"
            )));
            ok = false;
            continue;
        }
        first_use.insert(id.clone(), cedar_id);
        if let Err(e) = set.add(policy.new_id(PolicyId::new(&id))) {
            errors.push(here(format!("policy `{id}`: {e}")));
            ok = false;
            continue;
        }
        ids.push(id);
    }
    ok.then_some((set, ids))
}

/// Cedar's positional ids are `policy<N>`; anything else sorts last.
fn position(id: &PolicyId) -> usize {
    id.to_string()
        .strip_prefix("policy")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

fn find_from(haystack: &str, needle: &str, from: usize) -> Option<usize> {
    haystack
        .get(from..)
        .and_then(|rest| rest.find(needle))
        .map(|i| i.saturating_add(from))
        .or_else(|| haystack.find(needle))
}

/// The 1-based line and character column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (Option<u32>, Option<u32>) {
    let mut line = 1usize;
    let mut column = 1usize;
    for (i, c) in text.char_indices() {
        if i >= offset {
            break;
        }
        if c == '\n' {
            line = line.saturating_add(1);
            column = 1;
        } else {
            column = column.saturating_add(1);
        }
    }
    (u32::try_from(line).ok(), u32::try_from(column).ok())
}

/// Every problem in a Cedar diagnostic (Cedar chains the second and later errors of
/// one call as `related`), located in whichever of `sources` its span points into.
fn diagnostic_errors(d: &dyn Diagnostic, sources: &[Source<'_>]) -> Vec<PolicyError> {
    let mut out = vec![one_error(d, sources)];
    if let Some(related) = d.related() {
        out.extend(related.map(|r| one_error(r, sources)));
    }
    out
}

fn one_error(d: &dyn Diagnostic, sources: &[Source<'_>]) -> PolicyError {
    let label = d.labels().and_then(|mut labels| {
        let all: Vec<_> = labels.by_ref().collect();
        let primary = all.iter().position(|l| l.primary()).unwrap_or(0);
        all.into_iter().nth(primary)
    });
    let mut message = d.to_string();
    if let Some(text) = label.as_ref().and_then(|l| l.label())
        && !message.contains(text)
    {
        message = format!("{message}: {text}");
    }
    if let Some(help) = d.help() {
        message = format!("{message}; {help}");
    }

    let source = which_source(d, sources);
    let (line, column) = match (source, &label) {
        (Some(s), Some(l)) => line_column(s.text, l.offset()),
        _ => (None, None),
    };
    PolicyError {
        source: source.map_or_else(|| "schema".to_owned(), |s| s.name.clone()),
        line,
        column,
        message,
    }
}

/// The source a diagnostic's span points into: the only candidate, or the one whose
/// text is the diagnostic's own source text.
fn which_source<'s, 'a>(d: &dyn Diagnostic, sources: &'s [Source<'a>]) -> Option<&'s Source<'a>> {
    if let [only] = sources {
        return Some(only);
    }
    let code = d.source_code()?;
    // With unlimited context lines, miette returns the whole text.
    let whole = code
        .read_span(&SourceSpan::from((0, 0)), usize::MAX, usize::MAX)
        .ok()?;
    let whole = std::str::from_utf8(whole.data()).ok()?;
    sources.iter().find(|s| s.text == whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_at(errors: &[PolicyError], line: u32, column: u32) -> &PolicyError {
        errors
            .iter()
            .find(|e| e.line == Some(line) && e.column == Some(column))
            .unwrap_or_else(|| panic!("no error at {line}:{column} in {errors:#?}"))
    }

    #[test]
    fn actions_for_lists_the_actions_that_apply_to_a_resource_type() {
        let schema = r#"namespace Doc { entity Page; entity Folder; }
namespace Mandate {
  action "doc:write" in ["all"] appliesTo { principal: [Agent], resource: [Doc::Page] };
  action "doc:read" in ["all"] appliesTo { principal: [Agent], resource: [Doc::Page, Doc::Folder] };
  action "doc:list" in ["all"] appliesTo { principal: [Agent], resource: [Doc::Folder] };
}"#;
        let p = compile(&[schema.to_owned()], "").unwrap();
        assert_eq!(p.actions_for("Doc::Page"), ["doc:read", "doc:write"]);
        assert_eq!(p.actions_for("Doc::Folder"), ["doc:list", "doc:read"]);
        // Unknown or unnameable types: nothing, never an error.
        assert!(p.actions_for("Doc::Nope").is_empty());
        assert!(p.actions_for("not a type!").is_empty());
    }

    #[test]
    fn syntax_errors_point_at_the_bad_token() {
        let policies = "@id(\"ok\")\npermit(principal, action, resource);\n\npermit(principal, action, resource)\n  when { 1 + };\nforbid(principal, action, resource) when { ! };\n";
        let errors = compile(&[], policies).unwrap_err();
        // The `}` after `1 +` on line 5, and the `}` after `!` on line 6.
        let e = err_at(&errors, 5, 14);
        assert_eq!(e.source, "policies");
        assert!(e.message.contains("unexpected token `}`"), "{e}");
        err_at(&errors, 6, 46);
        assert_eq!(errors.len(), 2, "{errors:#?}");
    }

    #[test]
    fn validation_errors_name_the_policy_and_place() {
        let policies = "@id(\"typo\")\npermit(principal, action, resource)\nwhen { principal.nmae == \"x\" };\n";
        let errors = compile(&[], policies).unwrap_err();
        let e = err_at(&errors, 3, 8);
        assert!(
            e.message.contains("`typo`") && e.message.contains("`nmae`"),
            "{e}"
        );
        assert!(e.message.contains("did you mean `name`?"), "{e}");
        assert_eq!(e.to_string(), format!("policies:3:8: {}", e.message));
    }

    #[test]
    fn columns_count_characters() {
        // `é` is two bytes: the `}` is character 51 of the line, byte 53.
        let errors = compile(
            &[],
            r#"permit(principal, action, resource) when { "éé" + };"#,
        )
        .unwrap_err();
        assert_eq!(
            (errors[0].line, errors[0].column),
            (Some(1), Some(51)),
            "{errors:#?}"
        );
    }

    #[test]
    fn schema_fragment_errors_name_the_fragment() {
        let good = "namespace Crm { entity Contact; }".to_owned();
        let bad = "namespace Ops {\n  entity Job { a: String };\n  entity ;\n}".to_owned();
        let errors = compile(&[good.clone(), bad], "").unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].source, "schema fragment 2");
        assert_eq!((errors[0].line, errors[0].column), (Some(3), Some(10)));
        assert!(
            errors[0].message.contains("expected identifier"),
            "{}",
            errors[0]
        );

        // An unresolvable type is found only when the fragments are combined.
        let unknown = "namespace Ops {\n  entity Job { a: Strin };\n}".to_owned();
        let errors = compile(&[good, unknown], "").unwrap_err();
        assert_eq!(errors[0].source, "schema fragment 2", "{errors:#?}");
        assert_eq!((errors[0].line, errors[0].column), (Some(2), Some(19)));
    }

    #[test]
    fn policy_and_schema_errors_are_reported_together() {
        let errors = compile(&["namespace {".to_owned()], "permit(").unwrap_err();
        assert!(
            errors.iter().any(|e| e.source == "schema fragment 1"),
            "{errors:#?}"
        );
        assert!(errors.iter().any(|e| e.source == "policies"), "{errors:#?}");
    }

    #[test]
    fn ids_come_from_annotations_in_source_order() {
        let c = compile(
            &[],
            "@id(\"first\") permit(principal, action, resource);\nforbid(principal, action, resource);\n@id(\"third\") permit(principal, action, resource);",
        )
        .unwrap();
        assert_eq!(c.policy_ids(), ["first", "policy1", "third"]);
        assert_eq!(c.len(), 3);
        assert!(compile(&[], "").unwrap().is_empty());
    }

    #[test]
    fn duplicate_ids_and_templates_are_refused() {
        let errors = compile(
            &[],
            "@id(\"a\") permit(principal, action, resource);\n@id(\"a\") forbid(principal, action, resource);\npermit(principal == ?principal, action, resource);\n@id(\" \") permit(principal, action, resource);",
        )
        .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].message.contains("duplicate policy id `a`"));
        assert_eq!(errors[0].line, Some(2));
        assert!(errors[1].message.contains("templates are not supported"));
        assert_eq!(errors[1].line, Some(3));
        assert!(errors[2].message.contains("empty `@id`"));
        assert_eq!((errors[2].line, errors[2].column), (Some(4), Some(1)));
    }

    #[test]
    fn redeclaring_a_base_type_is_refused() {
        let errors = compile(&["namespace Mandate { entity Agent; }".to_owned()], "").unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].source, "base schema");
        assert_eq!(
            errors[0].message,
            "duplicate entity type `Mandate::Agent` (already declared by Mandate's base schema)"
        );
    }

    #[test]
    fn actions_outside_the_group_are_warned_about() {
        let c = compile(
            &["namespace Crm { entity Contact; }\nnamespace Mandate {\n  action \"crm:read\" in [\"all\"] appliesTo { principal: [Agent], resource: [Crm::Contact] };\n  action \"crm:write\" appliesTo { principal: [Agent], resource: [Crm::Contact] };\n  action \"crm:group\";\n}".to_owned()],
            "",
        )
        .unwrap();
        let warnings: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [
                "schema: action `crm:write` is not in the `all` group: policies on \
              `action in Mandate::Action::\"all\"` do not cover it"
            ]
        );
    }

    #[test]
    fn base_schema_alone_compiles() {
        let c = compile(
            &[],
            "permit(principal, action == Mandate::Action::\"mandate:request\", resource);",
        )
        .unwrap();
        assert!(c.warnings().is_empty(), "{:#?}", c.warnings());
    }
}
