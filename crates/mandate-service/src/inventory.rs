//! The inventory (issue 24, item 1): every registered agent with its owner, purpose,
//! labels, status, boundary size, credentials (kind, age, last use), live mandates, last
//! activity, open anomalies and risk, and the findings a human should act on
//! (mandate-govern `findings`: dormant, stale or never-rotated credentials, owner
//! missing or deactivated, wildcard boundary, boundary wider than its reviewed use, dead,
//! unconditional permit).
//!
//! One read of what the node already holds, never a scan of the decision log: the agents
//! and mandates of the decision snapshot, the active policies' scopes (mandate-policy
//! `Reach`), and, in one read unit of the store, the credentials, the last activity the
//! node flushes (activity.rs), the open anomalies, the owners a trusted IdP disabled and
//! each agent's latest access review (reviews.rs; its suggestion gives
//! `boundary_wider_than_use` while the boundary is still the one reviewed).
//! A read: it records nothing.
//!
//! Where each fact comes from, and what it cannot say, is in `docs/governance.md`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use mandate_core::agent::{Agent, AgentStatus};
use mandate_core::credential::Credential;
use mandate_core::id::AgentId;
use mandate_core::risk::Severity;
use mandate_core::time::Timestamp;
use mandate_govern::discover::Selector;
use mandate_govern::findings::{
    self, Code, CredentialFacts, Facts, Finding, OwnerCheck, PolicyFacts, Thresholds,
};
use mandate_govern::suggest::{GrantFate, GrantUse, Suggestion};
use mandate_store::prelude::*;
use mandate_store::{AnomalyFilter, AuditFilter, StoreError};
use serde_json::Value;

use crate::Node;
use crate::error::ServiceError;
use crate::reviews::Fate;

/// The RISC event type by which an IdP says a person's account was disabled.
const ACCOUNT_DISABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled";

/// Which rows to answer; `None` matches every row.
#[derive(Debug, Clone)]
pub struct InventoryQuery {
    /// Rows of this owner (exact).
    pub owner: Option<String>,
    /// Rows in this status.
    pub status: Option<AgentStatus>,
    /// Rows with a finding of this code.
    pub finding: Option<Code>,
    /// Rows whose labels this selector matches.
    pub labels: Option<Selector>,
    /// The findings' thresholds.
    pub thresholds: Thresholds,
}

/// One credential as the inventory shows it (no secret, no key material).
#[derive(Debug, Clone)]
pub struct CredentialLine {
    /// The credential.
    pub credential: Credential,
    /// Whether it authenticates now.
    pub usable: bool,
    /// When it last authenticated, if this deployment saw it do so.
    pub last_used_at: Option<Timestamp>,
}

/// One agent's row.
#[derive(Debug, Clone)]
pub struct Row {
    /// The agent as registered (id, name, owner, purpose, labels, status, boundary).
    pub agent: Arc<Agent>,
    /// Its credentials, oldest first.
    pub credentials: Vec<CredentialLine>,
    /// Its mandates active now.
    pub live_mandates: u32,
    /// Its latest decision, if any was recorded since activity is kept.
    pub last_activity: Option<Timestamp>,
    /// Its open anomalies.
    pub open_anomalies: u32,
    /// The highest score of its open anomalies (0: none), and its band.
    pub risk: u8,
    /// The band of `risk`.
    pub risk_level: Option<Severity>,
    /// What its owner's IdP said of the owner.
    pub owner_check: OwnerCheck,
    /// Its findings, sorted by code then subject.
    pub findings: Vec<Finding>,
}

/// The inventory: the rows the query matched, in agent id order, and how many rows of
/// all agents had each finding.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// When it was computed.
    pub generated_at: Timestamp,
    /// The active policy version the dead and unconditional findings were read from.
    pub policy_version: Option<i64>,
    /// The thresholds used.
    pub thresholds: Thresholds,
    /// Every registered agent (before the query's filters).
    pub agents: u64,
    /// Rows with each finding code, over every agent (before the filters).
    pub findings: BTreeMap<Code, u64>,
    /// The matching rows.
    pub rows: Vec<Row>,
}

/// Computes the inventory (see the module docs).
pub async fn inventory(node: &Arc<Node>, q: InventoryQuery) -> Result<Inventory, ServiceError> {
    node.blocking(move |s| compute(s, &q)).await?
}

/// What the store holds for the inventory, read in one unit.
#[derive(Default)]
struct Stored {
    credentials: HashMap<AgentId, Vec<Credential>>,
    activity: HashMap<String, Timestamp>,
    anomalies: HashMap<AgentId, (u32, u8)>,
    disabled: HashSet<String>,
    /// Each agent's latest access review: what it found (reviews.rs).
    reviewed: HashMap<String, crate::reviews::Findings>,
}

/// How many of the latest access review campaigns the inventory reads for
/// `boundary_wider_than_use` (an agent in none of them has no such finding).
pub const REVIEWS_READ: usize = 50;

fn read_store(node: &Node) -> Result<Stored, StoreError> {
    let mut out = Stored::default();
    node.store().read_unit(&mut |r| {
        out = Stored::default();
        r.for_each_credential(&mut |c| {
            out.credentials
                .entry(c.agent_id.clone())
                .or_default()
                .push(c);
        })?;
        out.activity = r.activity()?.into_iter().collect();
        let open = AnomalyFilter {
            status: Some("open".to_owned()),
            ..AnomalyFilter::default()
        };
        let mut before = None;
        loop {
            let page = r.list_anomalies(&open, before.as_ref(), 1000)?;
            for a in &page {
                let e = out.anomalies.entry(a.agent.clone()).or_default();
                e.0 += 1;
                e.1 = e.1.max(a.score);
            }
            match page.last() {
                Some(last) if page.len() == 1000 => before = Some(last.id.clone()),
                _ => break,
            }
        }
        // Each agent's latest review, from the newest campaigns.
        let mut campaigns = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = r.reviews(after.as_deref(), 1000)?;
            after = page.last().map(|c| c.id.clone());
            let n = page.len();
            campaigns.extend(page);
            if n < 1000 {
                break;
            }
        }
        for c in campaigns.iter().rev().take(REVIEWS_READ) {
            for item in r.review_items(&c.id)? {
                if out.reviewed.contains_key(&item.agent) {
                    continue;
                }
                // An item the store cannot read says nothing (it is not a finding).
                if let Ok(f) = serde_json::from_str::<crate::reviews::Findings>(&item.findings) {
                    out.reviewed.insert(item.agent, f);
                }
            }
        }
        // Owners an IdP disabled (RISC `account-disabled` SETs acted on).
        let received = AuditFilter {
            kind: Some("ssf.received".to_owned()),
            ..AuditFilter::default()
        };
        crate::audit::walk(r, &received, |e| {
            if let Some(who) = disabled_subject(e) {
                out.disabled.extend(who);
            }
        })?;
        Ok(())
    })?;
    Ok(out)
}

/// The email and `sub` an `ssf.received` event of an `account-disabled` SET names.
fn disabled_subject(v: &Value) -> Option<Vec<String>> {
    let d = v.get("details")?;
    if d.get("event_type")?.as_str()? != ACCOUNT_DISABLED {
        return None;
    }
    let s = d.get("subject")?;
    Some(
        ["email", "sub"]
            .iter()
            .filter_map(|k| s.get(*k)?.as_str().map(str::to_owned))
            .collect(),
    )
}

fn compute(node: &Node, q: &InventoryQuery) -> Result<Inventory, ServiceError> {
    let snapshot = node.snapshot()?;
    let now = node.clock.now();
    let stored = read_store(node)?;
    let reach = snapshot.policies.as_ref().map(|p| p.reach());
    let mut live: HashMap<&AgentId, u32> = HashMap::new();
    for m in snapshot.mandates.values().filter(|m| m.is_active_at(now)) {
        *live.entry(&m.agent).or_default() += 1;
    }
    let mut agents: Vec<&Arc<Agent>> = snapshot
        .agents
        .values()
        .filter_map(|a| snapshot.agents.get_shared(&a.id))
        .collect();
    agents.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let mut totals: BTreeMap<Code, u64> = BTreeMap::new();
    let mut rows = Vec::new();
    let empty: Vec<Credential> = Vec::new();
    for agent in agents {
        let creds = stored.credentials.get(&agent.id).unwrap_or(&empty);
        let lines: Vec<CredentialLine> = creds
            .iter()
            .map(|c| CredentialLine {
                usable: c.usable_at(now),
                last_used_at: stored.activity.get(c.id.as_str()).copied(),
                credential: c.clone(),
            })
            .collect();
        let facts: Vec<CredentialFacts> = lines
            .iter()
            .map(|l| CredentialFacts {
                id: l.credential.id.clone(),
                created_at: l.credential.created_at,
                last_used_at: l.last_used_at,
                usable: l.usable,
            })
            .collect();
        let owner = agent.owner.as_str();
        let owner_check = if stored.disabled.contains(owner) {
            OwnerCheck::Unknown
        } else {
            OwnerCheck::Unchecked
        };
        let unconditional: Vec<&str>;
        let policies = match &reach {
            Some(r) => {
                unconditional = r.permits_everything(agent.id.as_str());
                Some(PolicyFacts {
                    may_allow: r.may_allow(agent.id.as_str()),
                    unconditional: &unconditional,
                })
            }
            None => None,
        };
        let last_activity = stored.activity.get(agent.id.as_str()).copied();
        // The latest review's suggestion, while the boundary is still the one reviewed
        // (once narrowed or changed, the suggestion no longer describes it).
        let review = stored
            .reviewed
            .get(agent.id.as_str())
            .filter(|f| f.boundary == agent.boundary)
            .map(suggestion_of);
        let found = findings::findings(
            &Facts {
                status: agent.status,
                created_at: agent.created_at,
                owner: Some(owner),
                owner_check,
                boundary: &agent.boundary,
                last_activity,
                credentials: &facts,
                review: review.as_ref(),
                policies,
            },
            &q.thresholds,
            now,
        );
        let mut codes: Vec<Code> = found.iter().map(|f| f.code).collect();
        codes.dedup();
        for c in &codes {
            *totals.entry(*c).or_default() += 1;
        }
        let keep = q.owner.as_deref().is_none_or(|o| o == owner)
            && q.status.is_none_or(|s| s == agent.status)
            && q.finding.is_none_or(|c| codes.contains(&c))
            && q.labels.as_ref().is_none_or(|sel| {
                let labels: BTreeMap<String, String> = agent
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                sel.matches(&labels)
            });
        if !keep {
            continue;
        }
        let (open, risk) = stored.anomalies.get(&agent.id).copied().unwrap_or_default();
        rows.push(Row {
            agent: Arc::clone(agent),
            credentials: lines,
            live_mandates: live.get(&agent.id).copied().unwrap_or(0),
            last_activity,
            open_anomalies: open,
            risk,
            risk_level: Severity::of_score(risk),
            owner_check,
            findings: found,
        });
    }
    Ok(Inventory {
        generated_at: now,
        policy_version: snapshot.policy_version,
        thresholds: q.thresholds,
        agents: u64::try_from(snapshot.agents.len()).unwrap_or(u64::MAX),
        findings: totals,
        rows,
    })
}

/// A stored review's findings as mandate-govern's suggestion (the shape `findings` reads).
fn suggestion_of(f: &crate::reviews::Findings) -> Suggestion {
    Suggestion {
        grants: f
            .grants
            .iter()
            .map(|g| GrantUse {
                index: g.index,
                grant: g.grant.clone(),
                allows: g.allows,
                fate: match g.fate {
                    Fate::Used | Fate::Narrowed => GrantFate::Kept,
                    Fate::Unused => GrantFate::Unused,
                    Fate::Redundant => GrantFate::Redundant,
                },
                narrowed: g.narrowed.clone(),
            })
            .collect(),
        uncovered: f.uncovered,
        suggested: f.suggested.grants.clone(),
    }
}
