//! Access review campaigns (issue 24, item 3): for every agent in a scope, its boundary's
//! grants beside what it actually used in a window of the decision log, the unused grants
//! marked and a least-privilege boundary suggested (`mandate_govern::suggest`); then a
//! reviewer certifies, narrows or decommissions each agent, overdue items escalate (and,
//! if configured, suspend), and a report is written.
//!
//! A campaign reads the window once: one pass over the `allow` decisions of every node's
//! log (this node's; on a cluster's shared store, every node's),
//! oldest first, each allow counted for the acting agent and every delegating agent of
//! its chain (their boundaries passed it too). What it found is stored with each item,
//! so a later decision acts on what the reviewer saw.
//!
//! Who may decide an item: an admin or approver token, a user of the approver group
//! (as for approvals), or the agent's owner as a user (the issue names the owner as the
//! reviewer; a self-certification is recorded `as: owner`, so the report shows it).
//! Nobody else: an auditor token, an agent, another user.
//!
//! INVARIANT (decided once): an item is decided in one store unit that moves it out of
//! `pending` by compare-and-set and makes the change to the agent (narrow: the boundary;
//! decommission: the status, revoking its credentials), so two reviewers cannot both
//! decide it and a refused change leaves the item pending. The events are the agent's
//! own act (`agent.updated`, `agent.decommissioned`, as the registry records them) and
//! then the review's (`review.*`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use mandate_audit::event::AuditEvent;
use mandate_core::agent::{Agent, AgentStatus, Boundary, Grant, Owner};
use mandate_core::id::{AgentId, ReviewId};
use mandate_core::mandate::{pattern_within, scope_within};
use mandate_core::random::RandomError;
use mandate_core::time::Timestamp;
use mandate_govern::discover::Selector;
use mandate_govern::suggest::{GrantFate, Usage, Use, UsedClass, suggest};
use mandate_store::prelude::*;
use mandate_store::{AuditFilter, ReviewItemRow, ReviewRow, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Node;
use crate::actor::{Actor, System};
use crate::acts::{self, ActError};
use crate::error::ServiceError;
use crate::mandates::{Party, is_owner};

/// The usage window when the caller gives no `since`: 30 days back.
pub const DEFAULT_WINDOW_SECS: i64 = 30 * 86_400;
/// The longest usage window: 366 days.
pub const MAX_WINDOW_SECS: i64 = 366 * 86_400;
/// The most explicit agent ids a scope may list.
pub const MAX_SCOPE_AGENTS: usize = 1_000;
/// The most agents one campaign reviews.
pub const MAX_ITEMS: usize = 100_000;
/// The most distinct actions, resources or data classes an item lists (the rest are
/// counted, `used.truncated` says so).
pub const MAX_LISTED: usize = 1_000;
/// The longest campaign name and decision comment, in characters.
pub const MAX_TEXT: usize = 500;
/// Decision events read from the store per page.
const PAGE: u32 = 5_000;
/// Overdue items one sweep escalates.
const ESCALATE_BATCH: u32 = 500;

/// Why a review use case changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The party may not decide this item.
    #[error(
        "only an admin or approver token, a user in the approver group, or the agent's owner may decide a review item"
    )]
    NotAReviewer,
    /// A field breaks a rule.
    #[error("invalid `{field}`: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// No such campaign.
    #[error("unknown review `{0}`")]
    UnknownReview(ReviewId),
    /// The campaign has no item for this agent.
    #[error("review `{review}` has no item for agent `{agent}`")]
    UnknownItem {
        /// The campaign.
        review: ReviewId,
        /// The agent.
        agent: AgentId,
    },
    /// The item was decided already (`INVARIANT (decided once)`).
    #[error("{0}")]
    AlreadyDecided(String),
    /// The boundary to narrow to is not within the agent's current one.
    #[error("the boundary is not within agent `{0}`'s current boundary")]
    NotWithin(AgentId),
    /// The agent is decommissioned: its record is final.
    #[error("agent `{0}` is decommissioned")]
    Decommissioned(AgentId),
    /// The agent is no longer registered.
    #[error("unknown agent `{0}`")]
    UnknownAgent(AgentId),
    /// The lifecycle act was refused.
    #[error(transparent)]
    Act(#[from] ActError),
    /// An id could not be made.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The node failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, why: impl Into<String>) -> ReviewError {
    ReviewError::Invalid {
        field,
        why: why.into(),
    }
}

/// Which agents a campaign reviews: every agent not decommissioned that matches every
/// criterion given (none given: every agent).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Agents of this owner.
    pub owner: Option<Owner>,
    /// Only these agents (each must be registered).
    pub agents: Vec<AgentId>,
    /// Agents whose labels match this selector (`key=value,key!=value,key,!key`).
    pub selector: Option<Selector>,
}

impl Scope {
    fn matches(&self, a: &Agent, ids: &BTreeSet<&AgentId>) -> bool {
        a.status != AgentStatus::Decommissioned
            && self.owner.as_ref().is_none_or(|o| a.owner == *o)
            && (ids.is_empty() || ids.contains(&a.id))
            && self
                .selector
                .as_ref()
                .is_none_or(|s| s.matches(&BTreeMap::from(a.labels.clone())))
    }
}

/// A campaign to start.
#[derive(Debug, Clone)]
pub struct NewReview {
    /// Its name (default: `access review <date>`).
    pub name: Option<String>,
    /// Which agents.
    pub scope: Scope,
    /// The start of the usage window (default: 30 days back); it ends now.
    pub since: Option<Timestamp>,
    /// When pending items become overdue (after now).
    pub due: Timestamp,
}

/// A campaign's scope and window, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The owner criterion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The explicit agents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// The label selector, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The window's start.
    pub since: Timestamp,
    /// The window's end (the campaign's start).
    pub until: Timestamp,
    /// Allow decisions read in the window (of any agent).
    pub decisions_read: u64,
}

/// What happened to one grant, as a reviewer reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Used, and the suggestion keeps it as it is.
    Used,
    /// Used, and the suggestion narrows it to what was used.
    Narrowed,
    /// Covered no allow of the window: dropped.
    Unused,
    /// Its allows are all covered by earlier grants: dropped.
    Redundant,
}

impl Fate {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Used => "used",
            Self::Narrowed => "narrowed",
            Self::Unused => "unused",
            Self::Redundant => "redundant",
        }
    }
}

/// One grant beside its use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantFinding {
    /// Its position in the boundary.
    pub index: usize,
    /// The grant.
    pub grant: Grant,
    /// Allows of the window it covers (counting repeats).
    pub allows: u64,
    /// What the suggestion does with it.
    pub fate: Fate,
    /// What it becomes, when kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrowed: Option<Grant>,
}

/// What an agent used in the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Used {
    /// Allows counted for it (counting repeats).
    pub allows: u64,
    /// Actions used, with their counts (at most [`MAX_LISTED`]).
    pub actions: BTreeMap<String, u64>,
    /// Resources (`type/id`) used, with their counts (at most [`MAX_LISTED`]).
    pub resources: BTreeMap<String, u64>,
    /// Data classes named, with their counts; a redacted one is `[redacted]`.
    pub data_classes: BTreeMap<String, u64>,
    /// Agents this one delegated to (it was the next delegator in their chain).
    pub delegated_to: BTreeSet<String>,
    /// Agents that delegated to this one (its chain when it acted).
    pub acted_for: BTreeSet<String>,
    /// Whether a list was cut at [`MAX_LISTED`].
    pub truncated: bool,
}

/// What a campaign found for one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    /// The agent's name then.
    pub name: String,
    /// Its status then.
    pub status: String,
    /// Its labels then.
    pub labels: BTreeMap<String, String>,
    /// Its boundary then.
    pub boundary: Boundary,
    /// Each grant beside its use.
    pub grants: Vec<GrantFinding>,
    /// What it used.
    pub used: Used,
    /// Allows the boundary no longer covers (it was narrowed since).
    pub uncovered: u64,
    /// Delegates of its boundary it never delegated to in the window.
    pub unused_delegates: Vec<String>,
    /// The least-privilege boundary suggested: the grants cut to what was used.
    pub suggested: Boundary,
    /// Whether the suggestion is the boundary unchanged.
    pub unchanged: bool,
}

/// An item's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    /// Waiting for a reviewer.
    Pending,
    /// Kept as it is.
    Certified,
    /// Its boundary was narrowed.
    Narrowed,
    /// The agent was decommissioned.
    Decommissioned,
}

impl ItemState {
    /// The stable code (the store's column).
    pub fn code(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Certified => "certified",
            Self::Narrowed => "narrowed",
            Self::Decommissioned => "decommissioned",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending" => Self::Pending,
            "certified" => Self::Certified,
            "narrowed" => Self::Narrowed,
            "decommissioned" => Self::Decommissioned,
            other => return Err(StoreError::Corrupt(format!("review item state `{other}`"))),
        })
    }
}

/// One agent of a campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The agent.
    pub agent: String,
    /// Its owner when the campaign started.
    pub owner: String,
    /// Where it stands.
    pub state: ItemState,
    /// What was found.
    pub findings: Findings,
    /// Who decided it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// What was decided (`boundary`, `comment`, `as`).
    pub decision: Option<Value>,
    /// When it was escalated as overdue.
    pub escalated_at: Option<Timestamp>,
}

/// A campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// Its id.
    pub id: ReviewId,
    /// Its name.
    pub name: String,
    /// Scope and window.
    pub spec: Spec,
    /// When pending items become overdue.
    pub due: Timestamp,
    /// Who started it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When its last item was decided.
    pub completed_at: Option<Timestamp>,
}

/// How many items are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Items.
    pub items: u64,
    /// Pending.
    pub pending: u64,
    /// Certified.
    pub certified: u64,
    /// Narrowed.
    pub narrowed: u64,
    /// Decommissioned.
    pub decommissioned: u64,
    /// Escalated (in any state).
    pub escalated: u64,
}

impl Tally {
    fn of(items: &[Item]) -> Self {
        let mut t = Self::default();
        for i in items {
            t.items += 1;
            match i.state {
                ItemState::Pending => t.pending += 1,
                ItemState::Certified => t.certified += 1,
                ItemState::Narrowed => t.narrowed += 1,
                ItemState::Decommissioned => t.decommissioned += 1,
            }
            if i.escalated_at.is_some() {
                t.escalated += 1;
            }
        }
        t
    }
}

/// A campaign with its items.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    /// The campaign.
    pub review: Review,
    /// Its items, in agent id order.
    pub items: Vec<Item>,
    /// Their states.
    pub tally: Tally,
}

fn review_of(r: ReviewRow) -> Result<Review, StoreError> {
    Ok(Review {
        id: ReviewId::parse(&r.id)
            .map_err(|_| StoreError::Corrupt(format!("review id `{}`", r.id)))?,
        name: r.name,
        spec: serde_json::from_str(&r.spec)
            .map_err(|e| StoreError::Corrupt(format!("review `{}` spec: {e}", r.id)))?,
        due: r.due,
        created_by: r.created_by,
        created_at: r.created_at,
        completed_at: r.completed_at,
    })
}

fn item_of(i: ReviewItemRow) -> Result<Item, StoreError> {
    let corrupt = |e: serde_json::Error| {
        StoreError::Corrupt(format!("review `{}` item `{}`: {e}", i.review, i.agent))
    };
    Ok(Item {
        state: ItemState::parse(&i.state)?,
        findings: serde_json::from_str(&i.findings).map_err(corrupt)?,
        decision: i
            .decision
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(corrupt)?,
        agent: i.agent,
        owner: i.owner,
        decided_by: i.decided_by,
        decided_at: i.decided_at,
        escalated_at: i.escalated_at,
    })
}

/// What one pass over the window counts for one agent in scope.
#[derive(Default)]
struct Tracked {
    usage: Usage,
    allows: u64,
    delegated_to: BTreeSet<String>,
    acted_for: BTreeSet<String>,
}

/// The members of an event body [`Use::from_fields`] reads, strings borrowed from the
/// body where they can be: reading only these is what lets one pass over 10 M events fit
/// the minute (the whole `AuditEvent` parsed each took about twice as long).
#[derive(Deserialize)]
struct Light<'a> {
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    decision: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    agent: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    action: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    resource: Option<Value>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    details: Option<Value>,
}

impl Light<'_> {
    fn fields(&self) -> mandate_govern::suggest::Fields<'_> {
        mandate_govern::suggest::Fields {
            kind: &self.kind,
            decision: self.decision.as_deref(),
            agent: self.agent.as_deref(),
            action: self.action.as_deref(),
            resource: self.resource.as_ref(),
            context: self.context.as_ref(),
            details: self.details.as_ref(),
        }
    }
}

/// Counts the allows of `[since, until)` for the agents of `tracked`, in one pass over
/// the `decision` events of every node's log (`me`'s, and on a store a cluster shares,
/// every other node's: an agent's use on another node is its use too, and a suggestion
/// cut from one node's share of it would drop grants the agent uses elsewhere). Returns
/// how many allows were read.
fn count_window(
    store: &dyn Store,
    me: &str,
    since: Timestamp,
    until: Timestamp,
    tracked: &mut HashMap<String, Tracked>,
) -> Result<u64, StoreError> {
    let mut read = 0u64;
    for log in &crate::cluster::logs(store, me)? {
        read += count_log(store, log, since, until, tracked)?;
    }
    Ok(read)
}

/// [`count_window`] over one node's log.
fn count_log(
    store: &dyn Store,
    log: &str,
    since: Timestamp,
    until: Timestamp,
    tracked: &mut HashMap<String, Tracked>,
) -> Result<u64, StoreError> {
    let filter = AuditFilter {
        kind: Some("decision".to_owned()),
        decision: Some("allow".to_owned()),
        since: Some(since),
        until: Some(until),
        ..AuditFilter::default()
    };
    let mut after = None;
    let mut read = 0u64;
    loop {
        let rows = store.list_audit_of(log, &filter, after, PAGE)?;
        let got = rows.len();
        for (seq, body) in rows {
            after = Some(seq);
            read += 1;
            // An unreadable event counts for nobody: it cannot widen a suggestion, and
            // the boundary's own grant then shows as unused, never silently kept.
            let Ok(e) = serde_json::from_str::<Light<'_>>(&body) else {
                continue;
            };
            let Some((agents, u)) = Use::from_fields(&e.fields()) else {
                continue;
            };
            for (i, a) in agents.iter().enumerate() {
                let Some(t) = tracked.get_mut(a) else {
                    continue;
                };
                t.usage.add(u.clone());
                t.allows += 1;
                if i == 0 {
                    t.acted_for.extend(agents.iter().skip(1).cloned());
                } else if let Some(to) = i.checked_sub(1).and_then(|j| agents.get(j)) {
                    t.delegated_to.insert(to.clone());
                }
            }
        }
        if got < PAGE as usize {
            return Ok(read);
        }
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str, n: u64, truncated: &mut bool) {
    if let Some(c) = map.get_mut(key) {
        *c = c.saturating_add(n);
    } else if map.len() < MAX_LISTED {
        map.insert(key.to_owned(), n);
    } else {
        *truncated = true;
    }
}

/// What the window says of agent `a`.
fn findings(a: &Agent, t: Tracked) -> Findings {
    let s = suggest(&a.boundary.grants, &t.usage);
    let mut used = Used {
        allows: t.allows,
        delegated_to: t.delegated_to,
        acted_for: t.acted_for,
        ..Used::default()
    };
    let mut truncated = false;
    for (u, n) in t.usage.iter() {
        bump(&mut used.actions, &u.action, n, &mut truncated);
        bump(&mut used.resources, &u.resource, n, &mut truncated);
        match &u.data_class {
            UsedClass::None => {}
            UsedClass::Named(dc) => bump(&mut used.data_classes, dc, n, &mut truncated),
            UsedClass::Redacted => bump(&mut used.data_classes, "[redacted]", n, &mut truncated),
        }
    }
    used.truncated = truncated;
    let grants = s
        .grants
        .iter()
        .map(|g| GrantFinding {
            index: g.index,
            grant: g.grant.clone(),
            allows: g.allows,
            fate: match (g.fate, &g.narrowed) {
                (GrantFate::Unused, _) => Fate::Unused,
                (GrantFate::Redundant, _) => Fate::Redundant,
                (GrantFate::Kept, Some(n)) if *n != g.grant => Fate::Narrowed,
                (GrantFate::Kept, _) => Fate::Used,
            },
            narrowed: g.narrowed.clone(),
        })
        .collect();
    let unused_delegates = a
        .boundary
        .delegates
        .iter()
        .map(ToString::to_string)
        .filter(|d| !used.delegated_to.contains(d))
        .collect();
    Findings {
        name: a.name.as_str().to_owned(),
        status: a.status.as_str().to_owned(),
        labels: BTreeMap::from(a.labels.clone()),
        boundary: a.boundary.clone(),
        grants,
        used,
        uncovered: s.uncovered,
        unused_delegates,
        suggested: s.apply(&a.boundary),
        unchanged: s.is_unchanged(),
    }
}

/// `v` as stored JSON text (the store's column).
fn json_text<T: Serialize>(v: &T) -> Result<String, ReviewError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()).into())
}

/// A label selector as a scope takes it (`key=value,key!=value,key,!key`).
pub fn parse_selector(s: &str) -> Result<Selector, ReviewError> {
    Selector::parse(s).map_err(|e| invalid("selector", e.to_string()))
}

fn check_text(field: &'static str, v: Option<&str>) -> Result<(), ReviewError> {
    match v {
        Some(t) if t.chars().count() > MAX_TEXT || t.chars().any(char::is_control) => Err(invalid(
            field,
            format!("at most {MAX_TEXT} printable characters"),
        )),
        Some("") if field == "name" => Err(invalid(field, "must not be empty")),
        _ => Ok(()),
    }
}

/// Starts a campaign as `actor` (an admin; the edge checks): reads the window once,
/// stores an item per agent in scope, records `review.started` (and `review.completed`
/// when the scope holds no agent).
pub async fn start(
    node: &Arc<Node>,
    actor: &Actor,
    new: NewReview,
) -> Result<Campaign, ReviewError> {
    check_text("name", new.name.as_deref())?;
    if new.scope.agents.len() > MAX_SCOPE_AGENTS {
        return Err(invalid(
            "agents",
            format!("at most {MAX_SCOPE_AGENTS} agents"),
        ));
    }
    let by = actor.name();
    let (campaign, _) = node
        .act_batch("review started", move |s| {
            let c = start_blocking(s, &by, new)?;
            let mut events = Vec::new();
            let mut e = s.event("review.started");
            e.actor = Some(by.clone());
            e.details = Some(json!({
                "review": c.review.id, "name": c.review.name, "scope": c.review.spec,
                "due": c.review.due, "items": c.items.len(),
            }));
            events.push(e);
            if c.review.completed_at.is_some() {
                events.push(completed_event(s, &by, &c.review.id, &c.tally));
            }
            Ok::<_, ReviewError>((c, events))
        })
        .await?;
    tracing::info!(by = %actor, review = %campaign.review.id, items = campaign.items.len(), "review started");
    Ok(campaign)
}

fn completed_event(node: &Node, by: &str, id: &ReviewId, t: &Tally) -> AuditEvent {
    let mut e = node.event("review.completed");
    e.actor = Some(by.to_owned());
    e.details = Some(json!({
        "review": id, "items": t.items, "certified": t.certified, "narrowed": t.narrowed,
        "decommissioned": t.decommissioned, "escalated": t.escalated,
    }));
    e
}

fn start_blocking(node: &Node, by: &str, new: NewReview) -> Result<Campaign, ReviewError> {
    let now = node.clock.now();
    let until = now;
    let since = new
        .since
        .unwrap_or_else(|| now.plus_secs(-DEFAULT_WINDOW_SECS));
    if since.secs() >= until.secs() {
        return Err(invalid("since", "must be before now"));
    }
    if until.secs() - since.secs() > MAX_WINDOW_SECS {
        return Err(invalid("since", "the window is at most 366 days"));
    }
    if new.due.secs() <= now.secs() {
        return Err(invalid("due", "must be after now"));
    }
    let store = node.store();
    for id in &new.scope.agents {
        if store.get_agent(id)?.is_none() {
            return Err(invalid("agents", format!("unknown agent `{id}`")));
        }
    }
    let ids: BTreeSet<&AgentId> = new.scope.agents.iter().collect();
    let mut agents = Vec::new();
    let mut too_many = false;
    store.for_each_agent(&mut |a| {
        if new.scope.matches(&a, &ids) {
            if agents.len() < MAX_ITEMS {
                agents.push(a);
            } else {
                too_many = true;
            }
        }
    })?;
    if too_many {
        return Err(invalid(
            "scope",
            format!("more than {MAX_ITEMS} agents; narrow the scope"),
        ));
    }
    let mut tracked: HashMap<String, Tracked> = agents
        .iter()
        .map(|a| (a.id.to_string(), Tracked::default()))
        .collect();
    let me = node.audit.node().to_string();
    let decisions_read = count_window(&store, &me, since, until, &mut tracked)?;
    let id = ReviewId::generate(node.clock.as_ref(), node.random.as_ref())?;
    let mut items = Vec::with_capacity(agents.len());
    let mut rows = Vec::with_capacity(agents.len());
    for a in &agents {
        let t = tracked.remove(a.id.as_str()).unwrap_or_default();
        let f = findings(a, t);
        let text = json_text(&f)?;
        rows.push(ReviewItemRow {
            review: id.to_string(),
            agent: a.id.to_string(),
            owner: a.owner.as_str().to_owned(),
            state: ItemState::Pending.code().to_owned(),
            findings: text,
            decided_by: None,
            decided_at: None,
            decision: None,
            escalated_at: None,
        });
        items.push(Item {
            agent: a.id.to_string(),
            owner: a.owner.as_str().to_owned(),
            state: ItemState::Pending,
            findings: f,
            decided_by: None,
            decided_at: None,
            decision: None,
            escalated_at: None,
        });
    }
    let spec = Spec {
        owner: new.scope.owner.map(|o| o.as_str().to_owned()),
        agents: new.scope.agents.iter().map(ToString::to_string).collect(),
        selector: new.scope.selector.map(|s| s.to_string()),
        since,
        until,
        decisions_read,
    };
    let name = new.name.unwrap_or_else(|| {
        let day: String = now.to_string().chars().take(10).collect();
        format!("access review {day}")
    });
    let row = ReviewRow {
        id: id.to_string(),
        name: name.clone(),
        spec: json_text(&spec)?,
        due: new.due,
        created_by: by.to_owned(),
        created_at: now,
        // An empty campaign has nothing pending: complete from the start.
        completed_at: rows.is_empty().then_some(now),
    };
    store.insert_review(&row, &rows)?;
    let tally = Tally::of(&items);
    Ok(Campaign {
        review: Review {
            id,
            name,
            spec,
            due: new.due,
            created_by: by.to_owned(),
            created_at: now,
            completed_at: row.completed_at,
        },
        items,
        tally,
    })
}

/// Campaigns in id (creation) order after `after`, at most `limit`, each with its tally.
pub async fn list(
    node: &Arc<Node>,
    after: Option<ReviewId>,
    limit: u32,
) -> Result<Vec<(Review, Tally)>, ReviewError> {
    node.blocking(move |s| {
        let store = s.store();
        let rows = store.reviews(after.as_ref().map(ReviewId::as_str), limit)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let items = store
                .review_items(&r.id)?
                .into_iter()
                .map(item_of)
                .collect::<Result<Vec<_>, _>>()?;
            out.push((review_of(r)?, Tally::of(&items)));
        }
        Ok::<_, ReviewError>(out)
    })
    .await
    .map_err(ServiceError::from)?
}

/// One campaign with its items.
pub async fn show(node: &Arc<Node>, id: ReviewId) -> Result<Campaign, ReviewError> {
    node.blocking(move |s| load(&s.store(), &id))
        .await
        .map_err(ServiceError::from)?
}

fn load(store: &dyn Store, id: &ReviewId) -> Result<Campaign, ReviewError> {
    let r = store
        .review(id.as_str())?
        .ok_or_else(|| ReviewError::UnknownReview(id.clone()))?;
    let items = store
        .review_items(id.as_str())?
        .into_iter()
        .map(item_of)
        .collect::<Result<Vec<_>, _>>()?;
    let tally = Tally::of(&items);
    Ok(Campaign {
        review: review_of(r)?,
        items,
        tally,
    })
}

/// What a reviewer decides for one item.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Keep the agent as it is.
    Certify,
    /// Narrow its boundary: to this one (within the current one), or to the item's
    /// suggestion (`None`).
    Narrow(Option<Boundary>),
    /// Decommission the agent (final; its credentials are revoked).
    Decommission,
}

impl Verdict {
    fn state(&self) -> ItemState {
        match self {
            Self::Certify => ItemState::Certified,
            Self::Narrow(_) => ItemState::Narrowed,
            Self::Decommission => ItemState::Decommissioned,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Certify => "review.certified",
            Self::Narrow(_) => "review.narrowed",
            Self::Decommission => "review.decommissioned",
        }
    }
}

/// Whether `inner` lies within `outer`: every grant within one of `outer`'s
/// (`scope_within`), delegates a subset, audiences each within one of `outer`'s (and
/// none only when `outer` has none: an empty list means the default audience), and a
/// token lifetime no longer.
pub fn boundary_within(inner: &Boundary, outer: &Boundary) -> bool {
    let lifetime = match (inner.max_token_lifetime_secs, outer.max_token_lifetime_secs) {
        (_, None) => true,
        (Some(i), Some(o)) => i <= o,
        (None, Some(_)) => false,
    };
    scope_within(&inner.grants, &outer.grants)
        && inner.delegates.iter().all(|d| outer.delegates.contains(d))
        && inner.audiences.is_empty() == outer.audiences.is_empty()
        && inner
            .audiences
            .iter()
            .all(|a| outer.audiences.iter().any(|o| pattern_within(a, o)))
        && lifetime
}

/// What a reviewer's decision did.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The item after it.
    pub item: Item,
    /// Whether it completed the campaign.
    pub completed: bool,
}

/// Decides the pending item of `agent` in campaign `review` as `party`, with `comment`
/// (`INVARIANT (decided once)`). Recorded as the agent's own act (narrow:
/// `agent.updated`; decommission: `agent.decommissioned`), then `review.certified`,
/// `review.narrowed` or `review.decommissioned`, and `review.completed` when it was the
/// last pending item.
pub async fn decide(
    node: &Arc<Node>,
    party: Party,
    review: ReviewId,
    agent: AgentId,
    verdict: Verdict,
    comment: Option<String>,
) -> Result<Decided, ReviewError> {
    // Settled before anything asked is looked at: an agent or a token that can never
    // decide learns nothing of the campaign.
    let approver = party.is_approver(node);
    let user = match &party {
        Party::User(u) => Some(u.user.clone()),
        _ => None,
    };
    if !approver && user.is_none() {
        return Err(ReviewError::NotAReviewer);
    }
    check_text("comment", comment.as_deref())?;
    let actor = party.actor();
    let by = actor.name();
    let (decided, _) = node
        .act_batch("review decided", move |s| {
            let now = s.clock.now();
            let store = s.store();
            if store.review(review.as_str())?.is_none() {
                return Err(ReviewError::UnknownReview(review.clone()));
            }
            let (item, changed, completed) = store.write(|r| {
                let current = r.get_agent(&agent)?;
                // Who may decide, from the agent as it is in this unit.
                let role = if approver {
                    "approver"
                } else if let (Some(u), Some(a)) = (&user, &current)
                    && is_owner(u, a.owner.as_str())
                {
                    "owner"
                } else {
                    return Err(ReviewError::NotAReviewer);
                };
                let mut decision = serde_json::Map::new();
                decision.insert("as".into(), json!(role));
                decision.insert("comment".into(), json!(comment));
                let row = r
                    .review_items(review.as_str())?
                    .into_iter()
                    .find(|i| i.agent == agent.as_str())
                    .ok_or_else(|| ReviewError::UnknownItem {
                        review: review.clone(),
                        agent: agent.clone(),
                    })?;
                let before = item_of(row)?;
                if before.state != ItemState::Pending {
                    return Err(ReviewError::AlreadyDecided(format!(
                        "the item of agent `{agent}` is already {}",
                        before.state.code()
                    )));
                }
                let changed = match &verdict {
                    Verdict::Certify => None,
                    Verdict::Narrow(given) => {
                        let to = given
                            .clone()
                            .unwrap_or_else(|| before.findings.suggested.clone());
                        decision.insert("boundary".into(), json!(to));
                        decision.insert("suggested".into(), json!(given.is_none()));
                        let mut refused = None;
                        let a = r
                            .update_agent(&agent, now, false, &mut |a: &mut Agent| {
                                if a.status == AgentStatus::Decommissioned {
                                    refused = Some(ReviewError::Decommissioned(a.id.clone()));
                                } else if !boundary_within(&to, &a.boundary) {
                                    refused = Some(ReviewError::NotWithin(a.id.clone()));
                                } else {
                                    a.boundary = to.clone();
                                    return Ok(());
                                }
                                Err(StoreError::Refused)
                            })
                            .map_err(|e| refused.take().unwrap_or_else(|| not_found(e, &agent)))?;
                        Some(a)
                    }
                    Verdict::Decommission => {
                        let reason = format!("access review {review}");
                        let mut refused = None;
                        let a = r
                            .update_agent(&agent, now, false, &mut |a: &mut Agent| {
                                let to = AgentStatus::Decommissioned;
                                if !a.status.can_become(to) {
                                    refused = Some(ReviewError::Act(ActError::InvalidTransition {
                                        from: a.status,
                                        to,
                                    }));
                                    return Err(StoreError::Refused);
                                }
                                a.status = to;
                                a.status_reason = Some(reason.clone());
                                Ok(())
                            })
                            .map_err(|e| refused.take().unwrap_or_else(|| not_found(e, &agent)))?;
                        Some(a)
                    }
                };
                let text = json_text(&decision)?;
                let row = r
                    .decide_review_item(
                        review.as_str(),
                        agent.as_str(),
                        verdict.state().code(),
                        &by,
                        now,
                        &text,
                    )
                    .map_err(|e| match e {
                        StoreError::Conflict(why) => ReviewError::AlreadyDecided(why),
                        other => other.into(),
                    })?;
                let completed = r.complete_review(review.as_str(), now)?;
                Ok::<_, ReviewError>((item_of(row)?, changed, completed))
            })?;
            let mut events = Vec::new();
            if let Some(a) = &changed {
                let (kind, details) = match verdict {
                    Verdict::Decommission => (
                        "agent.decommissioned",
                        json!({"reason": a.status_reason, "revoke_tokens": false}),
                    ),
                    _ => (
                        "agent.updated",
                        json!({"name": a.name, "owner": a.owner, "purpose": a.purpose,
                            "labels": a.labels, "boundary": a.boundary}),
                    ),
                };
                let mut e = s.event(kind);
                e.actor = Some(by.clone());
                e.agent = Some(a.id.to_string());
                e.details = Some(details);
                events.push(e);
            }
            let mut e = s.event(verdict.kind());
            e.actor = Some(by.clone());
            e.agent = Some(agent.to_string());
            e.details = Some(json!({"review": review, "decision": item.decision}));
            events.push(e);
            if completed {
                let c = load(&store, &review)?;
                events.push(completed_event(s, &by, &review, &c.tally));
            }
            Ok::<_, ReviewError>((Decided { item, completed }, events))
        })
        .await?;
    tracing::info!(by = %actor, state = decided.item.state.code(), "review item decided");
    Ok(decided)
}

fn not_found(e: StoreError, agent: &AgentId) -> ReviewError {
    match e {
        StoreError::NotFound(_) => ReviewError::UnknownAgent(agent.clone()),
        other => other.into(),
    }
}

/// Escalates the overdue items (pending past their campaign's due time, never
/// escalated): each once (`review.escalated`), and with `reviews.suspend_overdue` its
/// agent suspended if active (`agent.suspended`, by `review`). Run by the sweeper on the
/// leader. Returns how many were escalated.
pub async fn escalate(node: &Arc<Node>) -> Result<usize, ServiceError> {
    let (n, _) = node
        .act_batch("overdue review items", |s| {
            let events = s.escalate_overdue()?;
            let n = events
                .iter()
                .filter(|e| e.kind == "review.escalated")
                .count();
            Ok::<_, ServiceError>((n, events))
        })
        .await?;
    Ok(n)
}

impl Node {
    /// The work of [`escalate`]: blocking; returns the events to record.
    fn escalate_overdue(&self) -> Result<Vec<AuditEvent>, StoreError> {
        let now = self.clock.now();
        let store = self.store();
        let mut events = Vec::new();
        let actor = Actor::System(System::Review).name();
        for i in store.overdue_review_items(now, ESCALATE_BATCH)? {
            if !store.escalate_review_item(&i.review, &i.agent, now)? {
                continue;
            }
            let mut suspended = false;
            if self.config.reviews.suspend_overdue
                && let Ok(id) = AgentId::parse(&i.agent)
            {
                let reason = format!("access review {} overdue", i.review);
                match acts::set_status(
                    &store,
                    &id,
                    AgentStatus::Suspended,
                    Some(reason),
                    false,
                    now,
                ) {
                    Ok(a) => {
                        suspended = true;
                        let mut e = self.event("agent.suspended");
                        e.actor = Some(actor.clone());
                        e.agent = Some(a.id.to_string());
                        e.details =
                            Some(json!({"reason": a.status_reason, "revoke_tokens": false}));
                        events.push(e);
                    }
                    // Already suspended, decommissioned or gone: escalated all the same.
                    Err(ActError::InvalidTransition { .. } | ActError::UnknownAgent(_)) => {}
                    Err(ActError::Store(e)) => return Err(e),
                    Err(e) => {
                        tracing::warn!(error = %e, agent = %i.agent, "overdue agent not suspended")
                    }
                }
            }
            let mut e = self.event("review.escalated");
            e.actor = Some(actor.clone());
            e.agent = Some(i.agent.clone());
            e.details = Some(json!({"review": i.review, "owner": i.owner,
                "suspended": suspended}));
            events.push(e);
        }
        Ok(events)
    }
}

/// The campaign's report as CSV: one row per grant of each item (an item whose boundary
/// has no grant: one row without one): RFC 4180, every field quoted ([`csv_field`]), CRLF line ends, and a field a spreadsheet would
/// read as a formula (`=`, `+`, `-`, `@`, tab, CR first) prefixed with `'`.
pub fn report_csv(c: &Campaign) -> String {
    let mut out = String::from(
        "review,agent,name,owner,state,decided_by,decided_at,escalated_at,allows,uncovered,\
         grant,actions,resources,data_classes,grant_allows,fate,suggested_actions,\
         suggested_resources,suggested_data_classes\r\n",
    );
    for i in &c.items {
        let head = [
            c.review.id.to_string(),
            i.agent.clone(),
            i.findings.name.clone(),
            i.owner.clone(),
            i.state.code().to_owned(),
            i.decided_by.clone().unwrap_or_default(),
            i.decided_at.map(|t| t.to_string()).unwrap_or_default(),
            i.escalated_at.map(|t| t.to_string()).unwrap_or_default(),
            i.findings.used.allows.to_string(),
            i.findings.uncovered.to_string(),
        ];
        let rows: Vec<Vec<String>> = if i.findings.grants.is_empty() {
            vec![vec![String::new(); 9]]
        } else {
            i.findings
                .grants
                .iter()
                .map(|g| {
                    let n = g.narrowed.as_ref();
                    vec![
                        g.index.to_string(),
                        g.grant.actions.join(" "),
                        g.grant.resources.join(" "),
                        g.grant.data_classes.join(" "),
                        g.allows.to_string(),
                        g.fate.code().to_owned(),
                        n.map(|n| n.actions.join(" ")).unwrap_or_default(),
                        n.map(|n| n.resources.join(" ")).unwrap_or_default(),
                        n.map(|n| n.data_classes.join(" ")).unwrap_or_default(),
                    ]
                })
                .collect()
        };
        for row in rows {
            let fields: Vec<String> = head
                .iter()
                .chain(row.iter())
                .map(|f| csv_field(f))
                .collect();
            out.push_str(&fields.join(","));
            out.push_str("\r\n");
        }
    }
    out
}

/// One CSV field (RFC 4180): always quoted, quotes doubled, a formula defused. Always
/// quoted, not only when it holds a comma: a spreadsheet whose locale separates by `;`
/// would otherwise split an unquoted `x;=cmd…` and run the part after it.
pub fn csv_field(f: &str) -> String {
    let f = if f.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{f}")
    } else {
        f.to_owned()
    };
    format!("\"{}\"", f.replace('"', "\"\""))
}

/// Text for HTML (element content and quoted attribute values): `& < > " '` escaped.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The campaign's report as one self-contained HTML page (no script, no external
/// resource). Every value from the store — names, labels, owners, patterns, comments —
/// is escaped ([`html_escape`]): agent names and labels are written by whoever registers
/// an agent.
pub fn report_html(c: &Campaign) -> String {
    let e = html_escape;
    let r = &c.review;
    let t = &c.tally;
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!("<title>{}</title>", e(&r.name)));
    h.push_str(
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #999;padding:.3em;vertical-align:top;text-align:left}\
         .unused,.redundant{color:#a00}.narrowed{color:#a60}</style></head><body>",
    );
    h.push_str(&format!(
        "<h1>{}</h1><p>Review <code>{}</code>, started {} by <code>{}</code>; usage window {} to {} ({} allow decisions read); due {}; {}.</p>",
        e(&r.name),
        e(r.id.as_str()),
        e(&r.created_at.to_string()),
        e(&r.created_by),
        e(&r.spec.since.to_string()),
        e(&r.spec.until.to_string()),
        r.spec.decisions_read,
        e(&r.due.to_string()),
        match r.completed_at {
            Some(at) => format!("completed {}", e(&at.to_string())),
            None => "open".to_owned(),
        }
    ));
    h.push_str(&format!(
        "<p>{} items: {} pending, {} certified, {} narrowed, {} decommissioned; {} escalated.</p>",
        t.items, t.pending, t.certified, t.narrowed, t.decommissioned, t.escalated
    ));
    for i in &c.items {
        let f = &i.findings;
        h.push_str(&format!(
            "<h2>{} <code>{}</code></h2><p>Owner {}; state <b>{}</b>",
            e(&f.name),
            e(&i.agent),
            e(&i.owner),
            e(i.state.code())
        ));
        if let (Some(by), Some(at)) = (&i.decided_by, i.decided_at) {
            h.push_str(&format!(
                " by <code>{}</code> at {}",
                e(by),
                e(&at.to_string())
            ));
        }
        if let Some(at) = i.escalated_at {
            h.push_str(&format!("; escalated {}", e(&at.to_string())));
        }
        h.push_str(&format!(
            ". {} allows in the window, {} no longer covered.</p>",
            f.used.allows, f.uncovered
        ));
        if !f.labels.is_empty() {
            let labels: Vec<String> = f
                .labels
                .iter()
                .map(|(k, v)| format!("<code>{}={}</code>", e(k), e(v)))
                .collect();
            h.push_str(&format!("<p>Labels: {}</p>", labels.join(" ")));
        }
        if let Some(c) = i
            .decision
            .as_ref()
            .and_then(|d| d.get("comment"))
            .and_then(Value::as_str)
        {
            h.push_str(&format!("<p>Comment: {}</p>", e(c)));
        }
        h.push_str(
            "<table><tr><th>#</th><th>actions</th><th>resources</th><th>data classes</th>\
             <th>allows</th><th>fate</th><th>suggested</th></tr>",
        );
        for g in &f.grants {
            let list = |xs: &[String]| {
                xs.iter()
                    .map(|x| format!("<code>{}</code>", e(x)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let suggested = g
                .narrowed
                .as_ref()
                .map(|n| {
                    format!(
                        "{} / {} / {}",
                        list(&n.actions),
                        list(&n.resources),
                        list(&n.data_classes)
                    )
                })
                .unwrap_or_else(|| "dropped".to_owned());
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                g.index,
                list(&g.grant.actions),
                list(&g.grant.resources),
                list(&g.grant.data_classes),
                g.allows,
                g.fate.code(),
                g.fate.code(),
                suggested
            ));
        }
        h.push_str("</table>");
        if !f.unused_delegates.is_empty() {
            let d: Vec<String> = f
                .unused_delegates
                .iter()
                .map(|x| format!("<code>{}</code>", e(x)))
                .collect();
            h.push_str(&format!("<p>Delegates never used: {}</p>", d.join(" ")));
        }
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use mandate_core::agent::{Boundary, Grant};

    use super::*;

    fn grant(actions: &[&str], resources: &[&str]) -> Grant {
        Grant {
            actions: actions.iter().map(|s| (*s).to_owned()).collect(),
            resources: resources.iter().map(|s| (*s).to_owned()).collect(),
            data_classes: Vec::new(),
        }
    }

    /// A narrowed boundary lies within; a wider grant, a new delegate, a longer or
    /// dropped token lifetime, or an audience outside does not.
    #[test]
    fn boundary_within_checks_every_part() {
        let outer = Boundary {
            grants: vec![grant(&["crm:*"], &["Crm::Contact/*"])],
            max_token_lifetime_secs: Some(600),
            delegates: Vec::new(),
            audiences: vec!["https://api.example/*".into()],
            require_dpop: false,
        };
        let mut inner = outer.clone();
        inner.grants = vec![grant(&["crm:read"], &["Crm::Contact/c-1"])];
        inner.max_token_lifetime_secs = Some(300);
        inner.audiences = vec!["https://api.example/crm".into()];
        assert!(boundary_within(&inner, &outer));
        assert!(boundary_within(&outer, &outer));
        let mut wider = inner.clone();
        wider.grants = vec![grant(&["*"], &["Crm::Contact/c-1"])];
        assert!(!boundary_within(&wider, &outer));
        let mut longer = inner.clone();
        longer.max_token_lifetime_secs = None;
        assert!(!boundary_within(&longer, &outer));
        let mut elsewhere = inner.clone();
        elsewhere.audiences = vec!["https://other.example/".into()];
        assert!(!boundary_within(&elsewhere, &outer));
        let mut delegating = inner;
        delegating.delegates = vec![AgentId::parse("agt_01JA0000000000000000000000").unwrap()];
        assert!(!boundary_within(&delegating, &outer));
    }

    /// CSV fields are quoted when they must be, and a formula is defused.
    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "\"plain\"");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "\"'=1+1\"");
        assert_eq!(csv_field("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(csv_field("-2,3"), "\"'-2,3\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        // A `;`-separated spreadsheet cannot split a field into a formula cell.
        assert_eq!(csv_field("x;=cmd|'/C calc'!A0"), "\"x;=cmd|'/C calc'!A0\"");
    }

    /// The light reading of an event body finds the allow `Use::from_event` finds in
    /// the parsed event, for allows, delegated allows, redacted classes and events that
    /// are no allow.
    #[test]
    fn the_light_reading_is_the_events() {
        let node = mandate_audit::event::NodeName::new("n1").unwrap();
        let mut bodies = Vec::new();
        for (decision, context, details) in [
            (
                "allow",
                json!({"data_class": "pii"}),
                json!({"chain": ["agt_b", "agt_c"]}),
            ),
            ("allow", json!({"data_class": "hmac-sha256:ab"}), json!({})),
            ("allow", json!({}), json!({"chain": "not a list"})),
            ("deny", json!({}), json!({})),
        ] {
            let mut e = AuditEvent::new(
                3,
                Timestamp::from_secs(1_700_000_000),
                node.clone(),
                "decision",
            );
            e.agent = Some("agt_a".into());
            e.action = Some("crm:read".into());
            e.resource = Some(json!({"type": "Crm::Contact", "id": "c \"1\""}));
            e.decision = Some(decision.into());
            e.context = Some(context);
            e.details = Some(details);
            let mut body = String::new();
            e.write_canonical(&mut body);
            bodies.push((e, body));
        }
        let mut other = AuditEvent::new(4, Timestamp::from_secs(1), node, "agent.updated");
        other.agent = Some("agt_a".into());
        let mut body = String::new();
        other.write_canonical(&mut body);
        bodies.push((other, body));
        for (e, body) in &bodies {
            let light: Light<'_> = serde_json::from_str(body).unwrap();
            assert_eq!(
                Use::from_fields(&light.fields()),
                Use::from_event(e),
                "{body}"
            );
        }
        assert!(Use::from_event(&bodies[0].0).is_some());
    }

    /// Every character HTML gives a meaning is escaped.
    #[test]
    fn html_escape_leaves_no_markup() {
        assert_eq!(
            html_escape("<a href=\"x\" title='y'>&</a>"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
