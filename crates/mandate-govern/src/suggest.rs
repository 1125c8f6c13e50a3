//! Least privilege from real use: an agent's boundary grants beside the allows it got in
//! a window, which grants went unused, and the narrowest boundary cut from the existing
//! grants that still allows every one of those allows.
//!
//! The rule ([`suggest`]):
//! 1. Each allow ([`Use`]: action, resource `{type}/{id}`, data class) is given to the
//!    first grant that covers it, by the engine's own test
//!    ([`mandate_core::mandate::grants_allow`], which the boundary gate calls). An allow
//!    whose data class the log redacted could have been covered by any grant matching its
//!    action and resource that names data classes; it is given to all of them, and they
//!    keep their data classes whole.
//! 2. A grant given no allow is dropped (it is *unused* if it covered none at all, else
//!    *redundant*: earlier grants cover its allows).
//! 3. A kept grant is narrowed to what it was given: its actions to the actions used, its
//!    data classes to those used, its resources to the resources used, or, past
//!    [`MAX_LITERALS`] of one type, to their longest common prefix followed by `*`. A
//!    value that could not stand as a pattern (longer than 256 characters, or holding
//!    whitespace), a prefix not inside the original pattern, or more than
//!    [`MAX_LITERALS`] values keep the original patterns that matched them.
//!
//! INVARIANT (suggestion): every allow the boundary covers is covered by the suggestion,
//! by the same `grants_allow`; and every suggested grant lies within the grant it was cut
//! from (`grant_within`), so the suggestion is never wider than the boundary
//! (`scope_within`). The property tests hold both over random boundaries and logs.
//! Allows the boundary no longer covers (it was narrowed since) are counted, not
//! covered: a suggestion never widens.

use std::collections::{BTreeMap, BTreeSet};

use mandate_audit::event::AuditEvent;
use mandate_audit::redact::{DROPPED, HASH_PREFIX};
use mandate_core::agent::{Boundary, Grant, glob_match};
use mandate_core::mandate::{grants_allow, pattern_within};
use serde::Serialize;
use serde_json::Value;

/// The most distinct literal values a narrowed grant lists in one field (per resource
/// type, for resources) before it generalises.
pub const MAX_LITERALS: usize = 32;

/// The data class of an allow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum UsedClass {
    /// The request named none.
    None,
    /// The request named this one.
    Named(String),
    /// The request named one, but the log holds it redacted (dropped or hashed).
    Redacted,
}

/// One allow, as the boundary gate saw it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Use {
    /// The action.
    pub action: String,
    /// The resource as boundary patterns match it: `{type}/{id}`.
    pub resource: String,
    /// Its data class.
    pub data_class: UsedClass,
}

impl Use {
    /// The allow an audit event records, with the agents whose boundaries it passed (the
    /// acting agent first, then the delegating agents of `details.chain`): `None` for any
    /// event but an `allow` `decision` with an action and a `{type, id}` resource.
    pub fn from_event(e: &AuditEvent) -> Option<(Vec<String>, Use)> {
        Self::from_fields(&Fields {
            kind: &e.kind,
            decision: e.decision.as_deref(),
            agent: e.agent.as_deref(),
            action: e.action.as_deref(),
            resource: e.resource.as_ref(),
            context: e.context.as_ref(),
            details: e.details.as_ref(),
        })
    }

    /// [`Use::from_event`] over the fields it reads, for a reader that takes them from an
    /// event body without building the whole event (an access review's one pass).
    pub fn from_fields(e: &Fields<'_>) -> Option<(Vec<String>, Use)> {
        if e.kind != "decision" || e.decision != Some("allow") {
            return None;
        }
        let action = e.action?.to_owned();
        let r = e.resource?;
        let resource = format!("{}/{}", r.get("type")?.as_str()?, r.get("id")?.as_str()?);
        let data_class = match e.context.and_then(|c| c.get("data_class")) {
            None => UsedClass::None,
            Some(Value::String(s)) if s != DROPPED && !s.starts_with(HASH_PREFIX) => {
                UsedClass::Named(s.clone())
            }
            // Redacted, or (never on an allow) not a string: unknown.
            Some(_) => UsedClass::Redacted,
        };
        let mut agents = vec![e.agent?.to_owned()];
        if let Some(Value::Array(chain)) = e.details.and_then(|d| d.get("chain")) {
            agents.extend(chain.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        Some((
            agents,
            Use {
                action,
                resource,
                data_class,
            },
        ))
    }

    /// Whether `grants` cover this allow, by the boundary gate's test. A redacted data
    /// class is covered when a grant matching action and resource names data classes (the
    /// class itself cannot be checked).
    pub fn covered_by(&self, grants: &[Grant]) -> bool {
        match &self.data_class {
            UsedClass::None => grants_allow(grants, &self.action, &self.resource, None),
            UsedClass::Named(dc) => grants_allow(grants, &self.action, &self.resource, Some(dc)),
            UsedClass::Redacted => grants.iter().any(|g| {
                !g.data_classes.is_empty()
                    && grants_allow(std::slice::from_ref(g), &self.action, &self.resource, None)
            }),
        }
    }
}

/// The fields of an audit event [`Use::from_fields`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// `kind`.
    pub kind: &'a str,
    /// `decision`.
    pub decision: Option<&'a str>,
    /// `agent`: the acting agent.
    pub agent: Option<&'a str>,
    /// `action`.
    pub action: Option<&'a str>,
    /// `resource`.
    pub resource: Option<&'a Value>,
    /// `context`.
    pub context: Option<&'a Value>,
    /// `details`.
    pub details: Option<&'a Value>,
}

/// Distinct allows with how often each was seen: what a window of the decision log
/// reduces to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    counts: BTreeMap<Use, u64>,
}

impl Usage {
    /// Counts one allow.
    pub fn add(&mut self, u: Use) {
        let n = self.counts.entry(u).or_insert(0);
        *n = n.saturating_add(1);
    }

    /// The distinct allows, in order, with their counts.
    pub fn iter(&self) -> impl Iterator<Item = (&Use, u64)> {
        self.counts.iter().map(|(u, n)| (u, *n))
    }

    /// How many distinct allows.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether none were counted.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

impl FromIterator<Use> for Usage {
    fn from_iter<I: IntoIterator<Item = Use>>(iter: I) -> Self {
        let mut u = Self::default();
        for x in iter {
            u.add(x);
        }
        u
    }
}

/// What happened to one grant of the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantFate {
    /// It covered no allow in the window: dropped.
    Unused,
    /// It covered allows, all of which earlier grants cover too: dropped.
    Redundant,
    /// Kept, narrowed to the allows given to it (possibly unchanged).
    Kept,
}

/// One grant of the boundary beside its use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantUse {
    /// Its position in the boundary.
    pub index: usize,
    /// The grant.
    pub grant: Grant,
    /// How many allows of the window it covers (counting repeats).
    pub allows: u64,
    /// What the suggestion does with it.
    pub fate: GrantFate,
    /// What it becomes, when kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub narrowed: Option<Grant>,
}

/// An access review's answer for one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    /// Each grant, in the boundary's order.
    pub grants: Vec<GrantUse>,
    /// Allows of the window the boundary no longer covers (counting repeats).
    pub uncovered: u64,
    /// The suggested grants: the kept grants narrowed, in the boundary's order.
    pub suggested: Vec<Grant>,
}

impl Suggestion {
    /// The boundary with its grants replaced by the suggested ones (lifetime, delegates
    /// and audiences unchanged). Built through `Boundary`'s validation, so it is a
    /// boundary Mandate accepts; should that ever fail, the original is returned, which is
    /// never wider.
    pub fn apply(&self, b: &Boundary) -> Boundary {
        let candidate = Boundary {
            grants: self.suggested.clone(),
            ..b.clone()
        };
        serde_json::to_value(&candidate)
            .and_then(serde_json::from_value)
            .unwrap_or_else(|_| b.clone())
    }

    /// Whether the suggestion is the boundary's grants unchanged.
    pub fn is_unchanged(&self) -> bool {
        self.grants.len() == self.suggested.len()
            && self
                .grants
                .iter()
                .zip(&self.suggested)
                .all(|(g, s)| g.grant == *s)
    }
}

/// The suggestion for `grants` (a boundary's) and the allows of a window.
pub fn suggest(grants: &[Grant], usage: &Usage) -> Suggestion {
    // Which allows each grant covers, and which it is given.
    let mut covers: Vec<u64> = vec![0; grants.len()];
    let mut given: Vec<Vec<&Use>> = vec![Vec::new(); grants.len()];
    let mut uncovered = 0u64;
    for (u, n) in usage.iter() {
        let mut first = true;
        let mut any = false;
        for (i, g) in grants.iter().enumerate() {
            if !u.covered_by(std::slice::from_ref(g)) {
                continue;
            }
            any = true;
            if let Some(c) = covers.get_mut(i) {
                *c = c.saturating_add(n);
            }
            // INVARIANT (suggestion): a redacted class may have been any candidate's, so
            // every candidate keeps the allow (and, in `narrow`, its data classes whole).
            if first || u.data_class == UsedClass::Redacted {
                if let Some(v) = given.get_mut(i) {
                    v.push(u);
                }
                first = false;
            }
        }
        if !any {
            uncovered = uncovered.saturating_add(n);
        }
    }
    let mut out = Suggestion {
        grants: Vec::with_capacity(grants.len()),
        uncovered,
        suggested: Vec::new(),
    };
    for (index, ((grant, allows), uses)) in grants.iter().zip(covers).zip(given).enumerate() {
        let (fate, narrowed) = if uses.is_empty() {
            let fate = if allows == 0 {
                GrantFate::Unused
            } else {
                GrantFate::Redundant
            };
            (fate, None)
        } else {
            let n = narrow(grant, &uses);
            out.suggested.push(n.clone());
            (GrantFate::Kept, Some(n))
        };
        out.grants.push(GrantUse {
            index,
            grant: grant.clone(),
            allows,
            fate,
            narrowed,
        });
    }
    out
}

/// `g` cut down to `uses`, each of which it covers.
///
/// INVARIANT (suggestion): each field keeps, for every use, a value or pattern matching
/// it (the use itself, a prefix pattern checked to match it, or an original pattern that
/// did), and only values that lie within an original pattern (`pattern_within`), so the
/// result covers every use and lies within `g`.
fn narrow(g: &Grant, uses: &[&Use]) -> Grant {
    let actions = literals(&g.actions, uses.iter().map(|u| u.action.as_str()));
    let resources = resources(&g.resources, uses.iter().map(|u| u.resource.as_str()));
    let data_classes = if uses.iter().any(|u| u.data_class == UsedClass::Redacted) {
        g.data_classes.clone()
    } else {
        literals(
            &g.data_classes,
            uses.iter().filter_map(|u| match &u.data_class {
                UsedClass::Named(dc) => Some(dc.as_str()),
                _ => None,
            }),
        )
    };
    Grant {
        actions,
        resources,
        data_classes,
    }
}

/// Whether a used value may stand as a pattern of its own: a valid pattern (1-256
/// characters, printable, no whitespace) whose `*`, if any, is harmless because the value
/// is then checked to lie within an original pattern.
fn usable_literal(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= 256
        && !s.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// The used values themselves when they are at most [`MAX_LITERALS`] and each can stand
/// as a pattern within one of `patterns`; otherwise the patterns that matched any of
/// them.
fn literals<'a>(patterns: &[String], used: impl Iterator<Item = &'a str>) -> Vec<String> {
    let used: BTreeSet<&str> = used.collect();
    let within = |v: &str| patterns.iter().any(|p| pattern_within(v, p));
    if used.len() <= MAX_LITERALS && used.iter().all(|v| usable_literal(v) && within(v)) {
        return used.into_iter().map(str::to_owned).collect();
    }
    matching(patterns, &used)
}

/// The patterns that match at least one of `used`, in their order.
fn matching(patterns: &[String], used: &BTreeSet<&str>) -> Vec<String> {
    patterns
        .iter()
        .filter(|p| used.iter().any(|v| glob_match(p, v)))
        .cloned()
        .collect()
}

/// Resources: per original pattern, the resources it matched as literals (at most
/// [`MAX_LITERALS`] per type), else the longest common prefix of a type's resources and
/// `*` when that lies within the pattern, else the pattern.
fn resources<'a>(patterns: &[String], used: impl Iterator<Item = &'a str>) -> Vec<String> {
    let used: BTreeSet<&str> = used.collect();
    let mut out: BTreeSet<String> = BTreeSet::new();
    // Each used resource is narrowed under the first pattern that matches it.
    let mut by_pattern: BTreeMap<usize, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for r in &used {
        if let Some(i) = patterns.iter().position(|p| glob_match(p, r)) {
            let ty = r.split_once('/').map_or(*r, |(t, _)| t);
            by_pattern
                .entry(i)
                .or_default()
                .entry(ty)
                .or_default()
                .insert(r);
        }
    }
    for (i, types) in by_pattern {
        let Some(p) = patterns.get(i) else { continue };
        if !p.contains('*') {
            out.insert(p.clone());
            continue;
        }
        for rs in types.values() {
            if rs.len() <= MAX_LITERALS && rs.iter().all(|r| usable_literal(r)) {
                out.extend(rs.iter().map(|r| (*r).to_owned()));
                continue;
            }
            let prefix = format!("{}*", common_prefix(rs));
            if usable_literal(&prefix) && pattern_within(&prefix, p) {
                out.insert(prefix);
            } else {
                out.insert(p.clone());
            }
        }
    }
    out.into_iter().collect()
}

/// The longest common prefix of `xs`, on character boundaries.
fn common_prefix(xs: &BTreeSet<&str>) -> String {
    // In sorted order the common prefix of all is that of the first and the last.
    let (Some(first), Some(last)) = (xs.first(), xs.last()) else {
        return String::new();
    };
    first
        .chars()
        .zip(last.chars())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect()
}
