//! Which policies can apply to a request: the policy set sliced by action and resource
//! type, and each policy's leading `when` conditions that can be read off the request
//! without Cedar, so that Cedar evaluates only the policies that might match.
//!
//! This is rule indexing (as OPA does on equality with constants), not a second
//! evaluator: Cedar still decides, over the policies that remain. A policy is left out
//! only when Cedar would evaluate it to `false` *without an error*, so the response —
//! decision, determining policies and errors — is the one Cedar gives over the whole
//! set. Two facts about Cedar make that exact:
//!
//! - A policy's condition is `principal-constraint && (action-constraint &&
//!   (resource-constraint && when₁ && … && !unless₁ …))` (cedar-policy-core
//!   `TemplateBody::condition`), and `&&` evaluates left to right and stops at the first
//!   `false`. Scope constraints never fail, so a policy whose scope does not match is
//!   `false` with no error, and so is one whose first `when` clause has a leading run of
//!   conjuncts that are `true`, `true`, …, then `false`.
//! - The conjuncts read here ([`Guard`]) are only those whose value is certain from
//!   the request: principal tags, labels and attributes (built by Mandate from the
//!   agent), `has` on the resource and context, string (in)equality, and IPv4
//!   `isInRange` on a plain dotted-quad string. Whenever Cedar might raise an error (a
//!   missing tag or attribute) or the value might differ from what the JSON shows (an
//!   escape, a non-string), the answer is *unknown* and the policy is kept.
//!
//! `tests/policy/equivalence.rs` checks the whole evaluation against Cedar over every
//! policy, on generated policy sets and requests.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use cedar_policy::{Entities, EntityTypeName, EntityUid, Policy, PolicySet, Schema};
use mandate_core::agent::Agent;
use serde_json::Value;

use crate::schema::{Field, Fields};

/// A policy with what can rule it out.
#[derive(Debug, Clone)]
pub(crate) struct Indexed {
    pub(crate) policy: Policy,
    /// Whether it is an `@approval` forbid.
    pub(crate) approval: bool,
    /// The leading conjuncts of its first `when` clause (and its principal or resource
    /// equality), in evaluation order, up to the first one not in [`Guard`]'s fragment.
    guards: Vec<Guard>,
}

/// The policies that can apply to one action on one resource type, in source order.
#[derive(Debug, Default)]
pub(crate) struct Slice {
    pub(crate) policies: Vec<Indexed>,
    /// What the guards read (shared by the index's slices).
    lookups: Arc<[Lookup]>,
    /// The Cedar policy sets made for each set of candidates met so far (by the bit
    /// mask of the slice's policies kept), up to [`SETS_KEPT`]: building a policy set
    /// costs more than evaluating a few policies.
    sets: Mutex<HashMap<Vec<u64>, Arc<Candidates>>>,
    /// The policies by the lookup and literal that rule most of them out at once.
    keys: Keys,
}

/// A slice's policies keyed by what rules them out together: a policy whose guards are
/// `has` tests of one lookup and then that lookup's equality to a string literal
/// (`principal.hasTag("team") && principal.getTag("team") == "a"`, `resource.team ==
/// "a"`) is ruled out whenever the lookup finds a string other than its literal (the
/// `has` tests are then true and the equality false, for a tag and for a field alike).
/// So a request reads the lookup once and looks at only the policies keyed by the
/// string it found; when it finds anything else, at all of them.
#[derive(Debug, Default, Clone)]
struct Keys {
    /// Lookup → literal → the policies (positions in the slice), in source order.
    by_lookup: Vec<(usize, HashMap<String, Vec<usize>>)>,
    /// The policies not keyed.
    rest: Vec<usize>,
}

impl Keys {
    fn new(policies: &[Indexed]) -> Self {
        let mut keys = Self::default();
        for (i, p) in policies.iter().enumerate() {
            let Some((lookup, literal)) = key(&p.guards) else {
                keys.rest.push(i);
                continue;
            };
            let at = match keys.by_lookup.iter().position(|(l, _)| *l == lookup) {
                Some(at) => at,
                None => {
                    keys.by_lookup.push((lookup, HashMap::new()));
                    keys.by_lookup.len() - 1
                }
            };
            if let Some((_, literals)) = keys.by_lookup.get_mut(at) {
                literals.entry(literal.to_owned()).or_default().push(i);
            }
        }
        keys
    }
}

/// The lookup and literal a policy is keyed by (see [`Keys`]).
fn key(guards: &[Guard]) -> Option<(usize, &str)> {
    let mut has = None;
    for g in guards {
        match g {
            Guard::Has(l) if has.is_none_or(|h| h == *l) => has = Some(*l),
            Guard::Eq {
                operand: Operand::Tag(l) | Operand::Field(l),
                literal,
                negated: false,
            } if has.is_none_or(|h| h == *l) => return Some((*l, literal)),
            _ => return None,
        }
    }
    None
}

/// A request's candidate policies as Cedar policy sets: all of them, and all but the
/// `@approval` forbids.
#[derive(Debug)]
pub(crate) struct Candidates {
    pub(crate) all: PolicySet,
    pub(crate) relaxed: PolicySet,
}

/// How many candidate sets a slice keeps (it forgets them all when full).
const SETS_KEPT: usize = 256;

impl Clone for Slice {
    fn clone(&self) -> Self {
        Self {
            policies: self.policies.clone(),
            lookups: Arc::clone(&self.lookups),
            sets: Mutex::default(),
            keys: self.keys.clone(),
        }
    }
}

/// The slices of a policy set, by action id and resource type.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    slices: HashMap<String, HashMap<String, Slice>>,
}

impl Index {
    /// Slices `policies` for every action of `action_type` the schema lets be requested,
    /// and every resource type it applies to. A policy whose scope cannot be read (it
    /// never happens for a validated static policy) goes into every slice.
    pub(crate) fn build(
        schema: &Schema,
        policies: &PolicySet,
        approval_ids: &HashSet<String>,
        action_type: &EntityTypeName,
    ) -> Self {
        let hierarchy = schema.action_entities().ok();
        let mut lookups = Lookups::default();
        let scopes: Vec<(Indexed, Scope)> = policies
            .policies()
            .map(|p| {
                let est = p.to_json().ok();
                let scope = est.as_ref().map_or(Scope::ANY, Scope::read);
                let guards = est
                    .as_ref()
                    .map(|e| guards(e, &mut lookups))
                    .unwrap_or_default();
                let indexed = Indexed {
                    policy: p.clone(),
                    approval: approval_ids.contains(AsRef::<str>::as_ref(p.id())),
                    guards,
                };
                (indexed, scope)
            })
            .collect();
        let lookups: Arc<[Lookup]> = lookups.list.into();
        let mut slices: HashMap<String, HashMap<String, Slice>> = HashMap::new();
        for action in schema.actions().filter(|a| a.type_name() == action_type) {
            let Some(resources) = schema.resources_for_action(action) else {
                continue;
            };
            let resources: Vec<String> = resources.map(ToString::to_string).collect();
            for resource_type in resources {
                let policies: Vec<Indexed> = scopes
                    .iter()
                    .filter(|(_, s)| {
                        s.action_matches(action, hierarchy.as_ref())
                            && s.resource_type_matches(&resource_type)
                    })
                    .map(|(p, _)| p.clone())
                    .collect();
                slices
                    .entry(action.id().unescaped().to_owned())
                    .or_default()
                    .insert(
                        resource_type,
                        Slice {
                            keys: Keys::new(&policies),
                            policies,
                            lookups: Arc::clone(&lookups),
                            sets: Mutex::default(),
                        },
                    );
            }
        }
        Self { slices }
    }

    /// The slice for `action` on `resource_type`, if the schema allows the pair.
    pub(crate) fn slice(&self, action: &str, resource_type: &str) -> Option<&Slice> {
        self.slices.get(action)?.get(resource_type)
    }
}

/// What a request offers the guards: the principal, the resource and the context
/// exactly as Cedar receives them (undeclared fields dropped, Mandate's reserved
/// context fields in place).
pub(crate) struct Facts<'a> {
    pub(crate) principal: &'a Agent,
    pub(crate) resource_id: &'a str,
    pub(crate) resource_attrs: Fields<'a>,
    pub(crate) context: Fields<'a>,
}

impl Slice {
    /// The policies of the slice that the request does not rule out.
    pub(crate) fn candidates(&self, facts: &Facts<'_>) -> Result<Arc<Candidates>, String> {
        let mut memo = Memo {
            facts,
            lookups: &self.lookups,
            found: vec![None; self.lookups.len()],
        };
        let mut mask = vec![0_u64; self.policies.len().div_ceil(64)];
        let mut consider = |i: usize, memo: &mut Memo<'_, '_>| {
            if let Some(p) = self.policies.get(i)
                && !ruled_out(&p.guards, memo)
                && let Some(word) = mask.get_mut(i / 64)
            {
                *word |= 1 << (i % 64);
            }
        };
        for &i in &self.keys.rest {
            consider(i, &mut memo);
        }
        for (lookup, literals) in &self.keys.by_lookup {
            if let Found::Str(found, _) = memo.get(*lookup) {
                // Every other literal's policies are ruled out (see `Keys`).
                for &i in literals.get(found).into_iter().flatten() {
                    consider(i, &mut memo);
                }
            } else {
                for &i in literals.values().flatten() {
                    consider(i, &mut memo);
                }
            }
        }
        // A poisoned lock only costs the cache.
        if let Ok(sets) = self.sets.lock()
            && let Some(found) = sets.get(&mask)
        {
            return Ok(Arc::clone(found));
        }
        let mut all = PolicySet::new();
        let mut relaxed = PolicySet::new();
        for (i, p) in self.policies.iter().enumerate() {
            let kept = mask.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0);
            if !kept {
                continue;
            }
            all.add(p.policy.clone()).map_err(|e| e.to_string())?;
            if !p.approval {
                relaxed.add(p.policy.clone()).map_err(|e| e.to_string())?;
            }
        }
        let made = Arc::new(Candidates { all, relaxed });
        if let Ok(mut sets) = self.sets.lock() {
            if sets.len() >= SETS_KEPT {
                sets.clear();
            }
            sets.insert(mask, Arc::clone(&made));
        }
        Ok(made)
    }
}

/// True when the guards, evaluated in order, give `true`s then a certain `false`.
fn ruled_out(guards: &[Guard], memo: &mut Memo<'_, '_>) -> bool {
    for g in guards {
        match g.eval(memo) {
            Some(true) => {}
            Some(false) => return true,
            None => return false,
        }
    }
    false
}

/// A policy's scope, as far as slicing needs it.
#[derive(Debug, Clone)]
struct Scope {
    /// `None`: any action. Otherwise the action must be one of these or (for `in`)
    /// a descendant of one.
    actions: Option<(Vec<EntityUid>, bool)>,
    /// `None`: any resource type (or one that cannot be told from the scope).
    resource_type: Option<String>,
}

impl Scope {
    const ANY: Self = Self {
        actions: None,
        resource_type: None,
    };

    fn read(est: &Value) -> Self {
        let uid = |v: &Value| -> Option<EntityUid> {
            let ty = EntityTypeName::from_str(v.get("type")?.as_str()?).ok()?;
            let id = v.get("id")?.as_str()?;
            Some(EntityUid::from_type_name_and_id(
                ty,
                cedar_policy::EntityId::new(id),
            ))
        };
        let action = est.get("action");
        let actions = match action.and_then(|a| a.get("op")).and_then(Value::as_str) {
            Some("==") => action
                .and_then(|a| a.get("entity"))
                .and_then(uid)
                .map(|u| (vec![u], false)),
            Some("in") => {
                let a = action.unwrap_or(&Value::Null);
                if let Some(e) = a.get("entity") {
                    uid(e).map(|u| (vec![u], true))
                } else {
                    a.get("entities")
                        .and_then(Value::as_array)
                        .and_then(|es| es.iter().map(uid).collect::<Option<Vec<_>>>())
                        .map(|us| (us, true))
                }
            }
            _ => None,
        };
        let resource = est.get("resource");
        let resource_type = match resource.and_then(|r| r.get("op")).and_then(Value::as_str) {
            Some("is") => resource
                .and_then(|r| r.get("entity_type"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            Some("==") => resource
                .and_then(|r| r.get("entity"))
                .and_then(|e| e.get("type"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        Self {
            actions,
            resource_type,
        }
    }

    fn action_matches(&self, action: &EntityUid, hierarchy: Option<&Entities>) -> bool {
        match &self.actions {
            None => true,
            Some((uids, false)) => uids.contains(action),
            Some((uids, true)) => uids.iter().any(|u| {
                u == action
                    // Without the hierarchy nothing can be ruled out.
                    || hierarchy.is_none_or(|h| h.is_ancestor_of(u, action))
            }),
        }
    }

    fn resource_type_matches(&self, resource_type: &str) -> bool {
        // Cedar prints a type name in the same canonical form the schema gives it.
        self.resource_type
            .as_deref()
            .is_none_or(|t| canonical(t) == canonical(resource_type))
    }
}

fn canonical(type_name: &str) -> String {
    EntityTypeName::from_str(type_name).map_or_else(|_| type_name.to_owned(), |t| t.to_string())
}

/// A conjunct whose value can be read off the request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Guard {
    /// `principal == Mandate::Agent::"id"` (the scope).
    PrincipalIs(String),
    /// `resource == T::"id"` (the scope; the type is the slice's).
    ResourceIs(String),
    /// `principal.hasTag("k")`, `resource has a`, `context has f`: whether the
    /// [`Lookup`] finds something.
    Has(usize),
    /// `x == "lit"` (or `!=` when `negated`).
    Eq {
        operand: Operand,
        literal: String,
        negated: bool,
    },
    /// `principal.labels.contains("k=v")`.
    LabelsContain(String),
    /// `x.isInRange(ip("a.b.c.d/p"), …)` for IPv4 literals, `x` a field [`Lookup`].
    InRange(usize, Vec<(u32, u8)>),
}

/// Which record a field lookup reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Var {
    Resource,
    Context,
}

/// Something a guard reads from the request, looked up at most once per request
/// however many policies read it. Guards name lookups by their index in
/// [`Lookups::list`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Lookup {
    /// `principal.getTag("k")` (and `hasTag`).
    Tag(String),
    /// `resource.a` / `context.f` (and `has`).
    Field(Var, String),
}

/// The distinct lookups of an index's guards.
#[derive(Debug, Default)]
struct Lookups {
    list: Vec<Lookup>,
    ids: HashMap<Lookup, usize>,
}

impl Lookups {
    fn id(&mut self, l: Lookup) -> usize {
        if let Some(id) = self.ids.get(&l) {
            return *id;
        }
        let id = self.list.len();
        self.list.push(l.clone());
        self.ids.insert(l, id);
        id
    }
}

/// A value a guard compares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    /// `principal.getTag("k")`: a [`Lookup::Tag`].
    Tag(usize),
    /// `principal.owner` / `.name` / `.status`.
    PrincipalAttr(PrincipalAttr),
    /// `resource.a` / `context.f`: a [`Lookup::Field`].
    Field(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrincipalAttr {
    Owner,
    Name,
    Status,
}

/// What a [`Lookup`] found.
#[derive(Debug, Clone, Copy)]
enum Found<'a> {
    /// Nothing: reading it is an error in Cedar.
    Missing,
    /// A JSON string (a tag's value is always one), with the IPv4 address it is when
    /// it is a plain dotted quad.
    Str(&'a str, Option<u32>),
    /// A number, boolean or array: never equal to a string.
    NotString,
    /// Something whose Cedar value the JSON does not settle (an object, which may be
    /// an escape; a reserved context field).
    Opaque,
}

fn look_up<'a>(l: &Lookup, f: &Facts<'a>) -> Found<'a> {
    let value = match l {
        Lookup::Tag(k) => {
            return f
                .principal
                .labels
                .iter()
                .find(|(key, _)| *key == k.as_str())
                .map_or(Found::Missing, |(_, v)| Found::Str(v, None));
        }
        Lookup::Field(var, name) => {
            let record = match var {
                Var::Resource => &f.resource_attrs,
                Var::Context => &f.context,
            };
            match record.get(name) {
                Field::Missing => return Found::Missing,
                // Mandate's reserved context fields: their Cedar values are not JSON
                // the caller sent.
                Field::Reserved => return Found::Opaque,
                Field::Json(v) => v,
            }
        }
    };
    match value {
        Value::String(s) => Found::Str(s, ipv4(s)),
        Value::Number(_) | Value::Bool(_) | Value::Array(_) => Found::NotString,
        Value::Object(_) | Value::Null => Found::Opaque,
    }
}

/// A plain dotted quad is what Cedar's `ip()` reads as that IPv4 address with prefix
/// 32; anything else (a range, IPv6, forms Cedar may read differently) is `None`.
fn ipv4(s: &str) -> Option<u32> {
    if s.len() > 15 || s.contains(['/', ':']) {
        return None;
    }
    Ipv4Addr::from_str(s).ok().map(u32::from)
}

/// The lookups of one request, each done on first use.
struct Memo<'f, 'a> {
    facts: &'f Facts<'a>,
    lookups: &'f [Lookup],
    found: Vec<Option<Found<'a>>>,
}

impl<'a> Memo<'_, 'a> {
    fn get(&mut self, id: usize) -> Found<'a> {
        if let Some(Some(found)) = self.found.get(id) {
            return *found;
        }
        let found = self
            .lookups
            .get(id)
            .map_or(Found::Opaque, |l| look_up(l, self.facts));
        if let Some(slot) = self.found.get_mut(id) {
            *slot = Some(found);
        }
        found
    }
}

impl Guard {
    /// `Some(b)` when Cedar certainly evaluates the conjunct to `b` without an error;
    /// `None` when it might not.
    fn eval(&self, m: &mut Memo<'_, '_>) -> Option<bool> {
        let f = m.facts;
        match self {
            Self::PrincipalIs(id) => Some(f.principal.id.as_str() == id),
            Self::ResourceIs(id) => Some(f.resource_id == id),
            Self::Has(l) => Some(!matches!(m.get(*l), Found::Missing)),
            Self::LabelsContain(s) => Some(
                f.principal
                    .labels
                    .iter()
                    .any(|(k, v)| s.strip_prefix(k).and_then(|r| r.strip_prefix('=')) == Some(v)),
            ),
            Self::Eq {
                operand,
                literal,
                negated,
            } => {
                let equal = match operand {
                    Operand::PrincipalAttr(a) => Some(match a {
                        PrincipalAttr::Owner => f.principal.owner.as_str() == literal,
                        PrincipalAttr::Name => f.principal.name.as_str() == literal,
                        PrincipalAttr::Status => f.principal.status.as_str() == literal,
                    }),
                    // A tag's value is a string; a missing tag is an error in Cedar.
                    Operand::Tag(l) => match m.get(*l) {
                        Found::Str(v, _) => Some(v == literal),
                        _ => None,
                    },
                    Operand::Field(l) => match m.get(*l) {
                        // A string is a Cedar string or an extension value parsed from
                        // it (an `ipaddr` given as text); neither equals a different
                        // string. An equal one is certain only for a string, which the
                        // JSON cannot tell.
                        Found::Str(v, _) => (v != literal).then_some(false),
                        Found::NotString => Some(false),
                        Found::Missing | Found::Opaque => None,
                    },
                };
                equal.map(|b| b != *negated)
            }
            Self::InRange(l, nets) => {
                let Found::Str(_, Some(addr)) = m.get(*l) else {
                    return None;
                };
                // Cedar's `isInRange` for IPv4 (cedar-policy-core `IPAddr::is_in_range`)
                // with the receiver's prefix 32.
                Some(nets.iter().any(|&(net, prefix)| {
                    let mask = u32::MAX.checked_shl(u32::from(32 - prefix)).unwrap_or(0);
                    net & mask <= addr && addr <= (net | !mask)
                }))
            }
        }
    }
}

/// The guards of a policy, from its JSON form (Cedar's EST).
fn guards(est: &Value, lookups: &mut Lookups) -> Vec<Guard> {
    let mut out = Vec::new();
    let principal = est.get("principal");
    if principal.and_then(|p| p.get("op")).and_then(Value::as_str) == Some("==")
        && let Some(e) = principal.and_then(|p| p.get("entity"))
        && e.get("type").and_then(Value::as_str) == Some("Mandate::Agent")
        && let Some(id) = e.get("id").and_then(Value::as_str)
    {
        out.push(Guard::PrincipalIs(id.to_owned()));
    }
    let resource = est.get("resource");
    if resource.and_then(|r| r.get("op")).and_then(Value::as_str) == Some("==")
        && let Some(id) = resource
            .and_then(|r| r.get("entity"))
            .and_then(|e| e.get("id"))
            .and_then(Value::as_str)
    {
        out.push(Guard::ResourceIs(id.to_owned()));
    }
    let first = est
        .get("conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.first());
    if let Some(c) = first
        && c.get("kind").and_then(Value::as_str) == Some("when")
        && let Some(body) = c.get("body")
    {
        let mut conjuncts = Vec::new();
        flatten_and(body, &mut conjuncts);
        for c in conjuncts {
            match guard(c, lookups) {
                Some(g) => out.push(g),
                None => break,
            }
        }
    }
    out
}

/// `a && b && c` in evaluation order.
fn flatten_and<'a>(e: &'a Value, out: &mut Vec<&'a Value>) {
    if let Some(and) = e.get("&&")
        && let (Some(l), Some(r)) = (and.get("left"), and.get("right"))
    {
        flatten_and(l, out);
        flatten_and(r, out);
    } else {
        out.push(e);
    }
}

fn guard(e: &Value, lookups: &mut Lookups) -> Option<Guard> {
    let obj = e.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let (op, args) = obj.iter().next()?;
    match op.as_str() {
        "hasTag" => {
            is_var(args.get("left")?, "principal").then_some(())?;
            let tag = string_literal(args.get("right")?)?;
            Some(Guard::Has(lookups.id(Lookup::Tag(tag))))
        }
        "has" => {
            let var = match args.get("left")?.get("Var")?.as_str()? {
                "resource" => Var::Resource,
                "context" => Var::Context,
                _ => return None,
            };
            let name = args.get("attr")?.as_str()?.to_owned();
            Some(Guard::Has(lookups.id(Lookup::Field(var, name))))
        }
        "==" | "!=" => {
            let (l, r) = (args.get("left")?, args.get("right")?);
            let (operand, literal) = match (string_literal(l), string_literal(r)) {
                (None, Some(s)) => (operand(l, lookups)?, s),
                (Some(s), None) => (operand(r, lookups)?, s),
                _ => return None,
            };
            Some(Guard::Eq {
                operand,
                literal,
                negated: op == "!=",
            })
        }
        "contains" => {
            let set = args.get("left")?.get(".")?;
            (is_var(set.get("left")?, "principal") && set.get("attr")?.as_str()? == "labels")
                .then_some(())?;
            Some(Guard::LabelsContain(string_literal(args.get("right")?)?))
        }
        "isInRange" => {
            let args = args.as_array()?;
            let (first, rest) = args.split_first()?;
            if rest.is_empty() {
                return None;
            }
            let Operand::Field(field) = operand(first, lookups)? else {
                return None;
            };
            let nets = rest
                .iter()
                .map(|a| ipv4_net(&string_literal(a.get("ip")?.as_array()?.first()?)?))
                .collect::<Option<Vec<_>>>()?;
            Some(Guard::InRange(field, nets))
        }
        _ => None,
    }
}

fn is_var(e: &Value, name: &str) -> bool {
    e.get("Var").and_then(Value::as_str) == Some(name)
}

fn string_literal(e: &Value) -> Option<String> {
    e.get("Value")?.as_str().map(str::to_owned)
}

fn operand(e: &Value, lookups: &mut Lookups) -> Option<Operand> {
    if let Some(tag) = e.get("getTag") {
        is_var(tag.get("left")?, "principal").then_some(())?;
        let tag = string_literal(tag.get("right")?)?;
        return Some(Operand::Tag(lookups.id(Lookup::Tag(tag))));
    }
    let dot = e.get(".")?;
    let attr = dot.get("attr")?.as_str()?;
    match dot.get("left")?.get("Var")?.as_str()? {
        "principal" => Some(Operand::PrincipalAttr(match attr {
            "owner" => PrincipalAttr::Owner,
            "name" => PrincipalAttr::Name,
            "status" => PrincipalAttr::Status,
            _ => return None,
        })),
        "resource" => Some(Operand::Field(
            lookups.id(Lookup::Field(Var::Resource, attr.to_owned())),
        )),
        "context" => Some(Operand::Field(
            lookups.id(Lookup::Field(Var::Context, attr.to_owned())),
        )),
        _ => None,
    }
}

/// An IPv4 range literal as Cedar reads it (`a.b.c.d` or `a.b.c.d/p`, prefix digits
/// without leading zeros), as the address and prefix; anything else is left to Cedar.
fn ipv4_net(s: &str) -> Option<(u32, u8)> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => {
            let ok = !p.is_empty()
                && p.len() <= 2
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p == "0" || !p.starts_with('0'));
            let p: u8 = if ok { p.parse().ok()? } else { return None };
            (a, p)
        }
        None => (s, 32),
    };
    if prefix > 32 || addr.contains(':') {
        return None;
    }
    Some((u32::from(Ipv4Addr::from_str(addr).ok()?), prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cedar_ipv4_literals() {
        assert_eq!(ipv4_net("10.0.0.0/8"), Some((0x0a00_0000, 8)));
        assert_eq!(ipv4_net("10.1.2.3"), Some((0x0a01_0203, 32)));
        assert_eq!(ipv4_net("10.0.0.0/0"), Some((0x0a00_0000, 0)));
        assert_eq!(ipv4_net("10.0.0.0/08"), None);
        assert_eq!(ipv4_net("10.0.0.0/33"), None);
        assert_eq!(ipv4_net("::1/128"), None);
        assert_eq!(ipv4_net("10.0.0.0/"), None);
    }
}
