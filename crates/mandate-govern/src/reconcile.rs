//! Reconciliation: the agents Mandate knows beside the workloads discovery found.
//!
//! - **matched**: a discovered item linked to a registered agent, by its link
//!   (`mandate.dev/agent-id` annotation, label or tag, or `mandate-agent-id`, naming the
//!   agent's id) or, when it has none, by the label rule: the agent carries the labels
//!   [`SOURCE_LABEL`] = the item's source and [`NAME_LABEL`] = the item's name (and, if it
//!   has it, [`SCOPE_LABEL`] = the item's scope), and exactly one agent does;
//! - **shadow**: an item matched to no agent ([`ShadowReason`] says why);
//! - **ghost**: an agent that says it is discoverable (its [`SOURCE_LABEL`] names one of
//!   the sources this run read) and that no item matched. A decommissioned agent is never
//!   a ghost: it is expected gone.
//!
//! The answer is a pure function of its input, in a fixed order (matched by agent id
//! then item, shadows by item, ghosts by agent id), so two runs over the same facts
//! compare line by line.

use std::collections::{BTreeMap, BTreeSet};

use mandate_core::agent::{Agent, AgentStatus};
use mandate_core::id::AgentId;
use serde::Serialize;

use crate::discover::{Discovered, Source};

/// The label saying an agent runs where discovery can see it: a [`Source`] name.
pub const SOURCE_LABEL: &str = "mandate.dev/source";
/// The label naming the discovered item an agent is (its name as discovery reports it).
pub const NAME_LABEL: &str = "mandate.dev/name";
/// The label naming the item's scope (namespace, account, subscription, project), to
/// tell apart items of one name in several scopes.
pub const SCOPE_LABEL: &str = "mandate.dev/scope";

/// A registered agent, as reconciliation needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registered {
    /// Its id.
    pub id: AgentId,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its status.
    pub status: AgentStatus,
}

impl From<&Agent> for Registered {
    fn from(a: &Agent) -> Self {
        Self {
            id: a.id.clone(),
            name: a.name.as_str().to_owned(),
            labels: a
                .labels
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            status: a.status,
        }
    }
}

/// How an item was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchRule {
    /// Its link names the agent's id.
    Link,
    /// The agent's source, name (and scope) labels name it.
    Labels,
}

/// Why an item is a shadow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowReason {
    /// No link, and no agent's labels name it.
    Unregistered,
    /// Its link names an agent id Mandate does not know.
    UnknownAgent,
    /// Its link is not an agent id.
    InvalidLink,
    /// No link, and the labels of more than one agent name it.
    Ambiguous,
}

impl ShadowReason {
    /// The stable code: `unregistered`, `unknown_agent`, `invalid_link`, `ambiguous`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unregistered => "unregistered",
            Self::UnknownAgent => "unknown_agent",
            Self::InvalidLink => "invalid_link",
            Self::Ambiguous => "ambiguous",
        }
    }
}

/// An item linked to an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matched {
    /// The agent.
    pub agent: AgentId,
    /// Its status now (a decommissioned agent whose workload still runs is worth a look).
    pub status: AgentStatus,
    /// How.
    pub rule: MatchRule,
    /// The item.
    pub item: Discovered,
}

/// An item no agent accounts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shadow {
    /// Why.
    pub reason: ShadowReason,
    /// The item.
    pub item: Discovered,
}

/// An agent that says it is discoverable and was not found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ghost {
    /// The agent.
    pub agent: AgentId,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: AgentStatus,
    /// Where it says it runs.
    pub source: Source,
}

/// The three lists, each in its fixed order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    /// Items linked to agents, by agent id, then item (its order: source, scope, kind, name, uid, …).
    pub matched: Vec<Matched>,
    /// Items no agent accounts for, by item.
    pub shadows: Vec<Shadow>,
    /// Discoverable agents not found, by agent id.
    pub ghosts: Vec<Ghost>,
}

/// Reconciles `registered` agents with the `found` items of a run that read `scanned`
/// sources (an agent is a ghost only for a source that was read).
pub fn reconcile(
    registered: &[Registered],
    found: &[Discovered],
    scanned: &[Source],
) -> Reconciliation {
    let by_id: BTreeMap<&str, &Registered> =
        registered.iter().map(|r| (r.id.as_str(), r)).collect();
    // The label rule's candidates by (source, name): one lookup per item, not a scan of
    // every agent (an inventory may hold 100,000 of each).
    let mut by_name: BTreeMap<(&str, &str), Vec<&Registered>> = BTreeMap::new();
    for r in registered {
        if let (Some(s), Some(n)) = (r.labels.get(SOURCE_LABEL), r.labels.get(NAME_LABEL)) {
            by_name.entry((s, n)).or_default().push(r);
        }
    }
    let mut out = Reconciliation::default();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for item in found {
        match link(item, &by_id, &by_name) {
            Ok((agent, rule)) => {
                seen.insert(agent.id.as_str());
                out.matched.push(Matched {
                    agent: agent.id.clone(),
                    status: agent.status,
                    rule,
                    item: item.clone(),
                });
            }
            Err(reason) => out.shadows.push(Shadow {
                reason,
                item: item.clone(),
            }),
        }
    }
    for r in registered {
        let Some(source) = r.labels.get(SOURCE_LABEL).and_then(|s| Source::parse(s)) else {
            continue;
        };
        if r.status != AgentStatus::Decommissioned
            && scanned.contains(&source)
            && !seen.contains(r.id.as_str())
        {
            out.ghosts.push(Ghost {
                agent: r.id.clone(),
                name: r.name.clone(),
                status: r.status,
                source,
            });
        }
    }
    out.matched
        .sort_by(|a, b| (&a.agent, &a.item).cmp(&(&b.agent, &b.item)));
    out.shadows
        .sort_by(|a, b| (&a.item, a.reason).cmp(&(&b.item, b.reason)));
    out.ghosts
        .sort_by(|a, b| (a.agent.as_str(), a.source).cmp(&(b.agent.as_str(), b.source)));
    out
}

/// The agent an item is, by its link, else by the label rule.
fn link<'a>(
    item: &Discovered,
    by_id: &BTreeMap<&str, &'a Registered>,
    by_name: &BTreeMap<(&str, &str), Vec<&'a Registered>>,
) -> Result<(&'a Registered, MatchRule), ShadowReason> {
    if let Some(raw) = &item.agent_id {
        let id = parse_link(raw).ok_or(ShadowReason::InvalidLink)?;
        return by_id
            .get(id.as_str())
            .map(|r| (*r, MatchRule::Link))
            .ok_or(ShadowReason::UnknownAgent);
    }
    let candidates = by_name
        .get(&(item.source.as_str(), item.name.as_str()))
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut named = candidates
        .iter()
        .filter(|r| r.labels.get(SCOPE_LABEL).is_none_or(|s| *s == item.scope));
    match (named.next(), named.next()) {
        (Some(r), None) => Ok((*r, MatchRule::Labels)),
        (Some(_), Some(_)) => Err(ShadowReason::Ambiguous),
        (None, _) => Err(ShadowReason::Unregistered),
    }
}

/// The agent id a link names. A ULID is case-insensitive (Crockford base32), and GCP
/// label values hold only lowercase letters, so `agt_01j…` names `agt_01J…`.
pub fn parse_link(raw: &str) -> Option<AgentId> {
    let raw = raw.trim();
    let (prefix, ulid) = (raw.get(..4)?, raw.get(4..)?);
    if !prefix.eq_ignore_ascii_case(AgentId::PREFIX) {
        return None;
    }
    AgentId::parse(&format!("{}{}", AgentId::PREFIX, ulid.to_ascii_uppercase())).ok()
}
