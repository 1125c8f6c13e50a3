//! Policy impact replay (issue 24, item 4): re-decide the recorded decisions of a window
//! with a candidate policy version (and boundary edits) and report what would change —
//! allow→deny, deny→allow — by agent, action and deciding policy, with example events.
//! It changes nothing and records nothing: it is a read of the audit log — this node's,
//! or with `all_nodes` every node's of a cluster's shared store.
//!
//! What a replayed decision is decided against ("the snapshot as it was", approximated):
//! - **the request as recorded**: action, resource (type, id and, for events recorded
//!   since replay exists, its attributes), the context *as logged* — a redacted field
//!   is its marker (`[dropped]` or `hmac-sha256:…`), never the original, so a policy that
//!   reads one sees the marker — and the risk the detector gave it then;
//! - **the agents as they are now** (labels, owner, boundary), or as edited by the
//!   request's `boundaries`: the log keeps no agent's past state. Their *status* is
//!   taken as it was: only decisions that passed the token and status gates are
//!   replayed, and they are replayed as though those gates still passed;
//! - **the mandate it was bound to**, as stored now (its scope and user), active or not;
//! - the candidate version's compiled policies in place of the active ones.
//!
//! Decisions refused before the boundary gate (`invalid_token`, `token_revoked`,
//! `unknown_agent`, `agent_suspended`, `agent_decommissioned`, `mandate_inactive`,
//! `outside_token_scope`) are not about policy: they are counted as `not_replayed` and
//! keep their verdict. A decision whose agent, delegating agent or mandate no longer
//! exists, or whose event cannot be read, is `skipped` with its reason — never dropped
//! silently. A decision the candidate cannot evaluate is denied (`policy_error`, the
//! engine's `INVARIANT (fail closed)`) and counted under `errors`: never an allow.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use mandate_audit::event::AuditEvent;
use mandate_audit::redact::{DROPPED, HASH_PREFIX};
use mandate_core::agent::{Agent, Boundary};
use mandate_core::decision::{Reason, Verdict};
use mandate_core::id::{AgentId, MandateId};
use mandate_core::mandate::Mandate;
use mandate_core::risk::Risk;
use mandate_core::time::Timestamp;
use mandate_engine::decide::{
    DecisionRequest, Holder, Principal, Resource, Snapshot, decide_for_holder,
};
use mandate_policy::CompiledPolicies;
use mandate_store::prelude::*;
use mandate_store::{AuditFilter, StoreError};
use serde::Deserialize as _;
use serde_json::Value;

use crate::Node;
use crate::error::ServiceError;
use crate::node::VersionError;
use crate::policies::PolicyError;

/// How many decision events a replay reads when the caller does not say.
pub const DEFAULT_LIMIT: u32 = 100_000;
/// The most decision events one replay may read.
pub const MAX_LIMIT: u32 = 1_000_000;
/// The most boundary edits one replay may carry.
pub const MAX_BOUNDARY_EDITS: usize = 1_000;
/// Example event ids kept per group.
pub const EXAMPLES: usize = 5;
/// The most groups a report lists; rows past it are still counted.
pub const MAX_GROUPS: usize = 1_000;
/// Events read from the store per page.
const PAGE: u32 = 5_000;

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    /// The candidate policy version.
    pub version: i64,
    /// Decisions recorded at or after this time.
    pub since: Option<Timestamp>,
    /// Decisions recorded before this time.
    pub until: Option<Timestamp>,
    /// The most decision events to read (1..=[`MAX_LIMIT`]), oldest first.
    pub limit: u32,
    /// Boundary edits: each agent's boundary replaced by this one for the replay.
    pub boundaries: BTreeMap<AgentId, Boundary>,
    /// Every node's log of the shared store (a cluster's), not only this node's.
    pub all_nodes: bool,
}

/// Why a recorded decision could not be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// Its agent (or a delegating agent) is no longer in the registry.
    UnknownAgent,
    /// Its mandate is no longer stored.
    UnknownMandate,
    /// The event lacks what a replay needs (no agent, action or resource, an unknown
    /// reason code) or cannot be read.
    Unreadable,
}

impl SkipReason {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownAgent => "unknown_agent",
            Self::UnknownMandate => "unknown_mandate",
            Self::Unreadable => "unreadable",
        }
    }
}

/// The counts of a replay. Every decision read is in exactly one of `same`,
/// `allow_to_deny`, `deny_to_allow`, `other_changes`, `not_replayed` and `skipped`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Decision events read.
    pub decisions: u64,
    /// Re-decided with the same verdict.
    pub same: u64,
    /// Allowed then, denied by the candidate.
    pub allow_to_deny: u64,
    /// Denied then, allowed by the candidate.
    pub deny_to_allow: u64,
    /// Any other change of verdict (to or from `approval_required`).
    pub other_changes: u64,
    /// Refused before the boundary gate: not about policy, verdict kept.
    pub not_replayed: u64,
    /// Could not be replayed (see [`ReplayReport::skipped`]).
    pub skipped: u64,
    /// Re-decided as `policy_error` by the candidate (a deny; also counted above).
    pub errors: u64,
    /// Changed decisions whose logged context held a redacted field: the candidate may
    /// have read a marker where the original value was.
    pub changed_with_redacted_context: u64,
}

/// Changed (or errored) decisions of one agent, action, change and deciding policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeGroup {
    /// The agent.
    pub agent: String,
    /// The action.
    pub action: String,
    /// The verdict recorded.
    pub from: Verdict,
    /// The candidate's verdict.
    pub to: Verdict,
    /// The candidate's deciding reason code.
    pub reason: &'static str,
    /// The candidate's deciding policies (empty for a default deny or a gate).
    pub policies: Vec<String>,
    /// How many decisions.
    pub count: u64,
    /// Up to [`EXAMPLES`] event ids (`node:seq`), oldest first.
    pub examples: Vec<String>,
}

/// Skipped decisions of one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipGroup {
    /// Why.
    pub reason: SkipReason,
    /// How many.
    pub count: u64,
    /// Up to [`EXAMPLES`] event ids, oldest first.
    pub examples: Vec<String>,
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// The candidate version.
    pub version: i64,
    /// The version active when the replay ran.
    pub active_version: Option<i64>,
    /// The window asked for.
    pub since: Option<Timestamp>,
    /// The window asked for.
    pub until: Option<Timestamp>,
    /// Whether the window held more decisions than `limit`: only the oldest `limit`
    /// were read.
    pub truncated: bool,
    /// The counts.
    pub counts: Counts,
    /// Changed or errored decisions, largest group first.
    pub changes: Vec<ChangeGroup>,
    /// Whether rows were left out of `changes` past [`MAX_GROUPS`] (still counted).
    pub groups_truncated: bool,
    /// Skipped decisions by reason.
    pub skipped: Vec<SkipGroup>,
    /// The nodes whose logs were read, by name.
    pub nodes: Vec<String>,
}

/// Replays the recorded decisions of `req`'s window with its candidate version. A read:
/// nothing is changed or recorded.
pub async fn replay(node: &Arc<Node>, req: ReplayRequest) -> Result<ReplayReport, PolicyError> {
    if req.limit == 0 || req.limit > MAX_LIMIT {
        return Err(PolicyError::Invalid {
            field: "limit",
            why: format!("limit must be 1..={MAX_LIMIT}"),
        });
    }
    if req.boundaries.len() > MAX_BOUNDARY_EDITS {
        return Err(PolicyError::Invalid {
            field: "boundaries",
            why: format!("at most {MAX_BOUNDARY_EDITS} boundary edits"),
        });
    }
    if let (Some(s), Some(u)) = (req.since, req.until)
        && u.secs() < s.secs()
    {
        return Err(PolicyError::Invalid {
            field: "until",
            why: "until is before since".to_owned(),
        });
    }
    // INVARIANT (one replay per node): a replay holds this node's one replay permit
    // from before its job starts until the job ends — the permit moves into the
    // blocking job, so a caller that hangs up does not free it while the job still
    // reads — and a second one is refused (`ReplayRunning`, a 409) rather than queued:
    // a replay reads up to a million events on a blocking thread, and any admin-API
    // role may ask for one. The job also stops at its next page once its caller is gone
    // (`Abandoned`), so a dropped request holds the permit for one page at most.
    let permit = Arc::clone(&node.replay_permit)
        .try_acquire_owned()
        .map_err(|_| PolicyError::ReplayRunning)?;
    let abandoned = Abandoned::default();
    let seen = abandoned.flag();
    node.blocking(move |s| {
        let _permit = permit;
        replay_blocking(s, &req, &seen)
    })
    .await
    .map_err(ServiceError::from)?
}

/// Set when the caller's future is dropped (the client hung up): the job stops.
#[derive(Default)]
struct Abandoned(Arc<std::sync::atomic::AtomicBool>);

impl Abandoned {
    fn flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        Arc::clone(&self.0)
    }
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn replay_blocking(
    node: &Node,
    req: &ReplayRequest,
    abandoned: &std::sync::atomic::AtomicBool,
) -> Result<ReplayReport, PolicyError> {
    let snapshot = node.snapshot().map_err(ServiceError::from)?;
    for id in req.boundaries.keys() {
        if snapshot.agents.get(id).is_none() {
            return Err(PolicyError::Invalid {
                field: "boundaries",
                why: format!("unknown agent `{id}`"),
            });
        }
    }
    // Compiled once for the whole window.
    let policies = node.compiled_version(req.version).map_err(|e| match e {
        VersionError::Store(e) => PolicyError::Store(e),
        VersionError::Missing => PolicyError::UnknownVersion(req.version),
        VersionError::DoesNotCompile(why) => PolicyError::NoLongerCompiles {
            version: req.version,
            why,
        },
    })?;
    let store = node.store();
    let filter = AuditFilter {
        kind: Some("decision".to_owned()),
        since: req.since,
        until: req.until,
        ..AuditFilter::default()
    };
    let edited = edited_agents(&snapshot, &req.boundaries);
    let mut r = Replayer::new(&snapshot, &policies, &edited);
    // This node's log, or every node's of a shared store, each oldest first; `limit`
    // counts over all of them together.
    let me = node.audit.node().to_string();
    let logs: Vec<String> = if req.all_nodes {
        crate::cluster::logs(&store, &me)?
    } else {
        vec![me.clone()]
    };
    let mut read: u64 = 0;
    let limit = u64::from(req.limit);
    let mut truncated = false;
    for log in &logs {
        let mut after = None;
        loop {
            if abandoned.load(std::sync::atomic::Ordering::Relaxed) {
                // Nobody will read the report.
                return Err(PolicyError::Abandoned);
            }
            let want = u32::try_from((limit - read).min(u64::from(PAGE))).unwrap_or(PAGE);
            if want == 0 {
                truncated |= !store.list_audit_of(log, &filter, after, 1)?.is_empty();
                break;
            }
            let rows = store.list_audit_of(log, &filter, after, want)?;
            let got = rows.len();
            for (seq, body) in rows {
                after = Some(seq);
                read += 1;
                r.replay_one(&body, |id| store.get_mandate(id))?;
            }
            if got < want as usize {
                break;
            }
        }
    }
    r.nodes = logs;
    let active_version = snapshot.policy_version;
    Ok(r.report(req, active_version, truncated))
}

/// What one replay accumulates.
struct Replayer<'a> {
    snapshot: &'a Snapshot,
    policies: &'a CompiledPolicies,
    edited: &'a HashMap<AgentId, Agent>,
    mandates: HashMap<MandateId, Option<Arc<Mandate>>>,
    counts: Counts,
    changes: HashMap<GroupKey, (u64, Vec<String>)>,
    groups_truncated: bool,
    skipped: BTreeMap<SkipReason, (u64, Vec<String>)>,
    nodes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    agent: String,
    action: String,
    from: Verdict,
    to: Verdict,
    reason: Reason,
    policies: Vec<String>,
}

/// The recorded resource, with its attributes when they were logged.
#[derive(serde::Deserialize)]
struct RecordedResource {
    #[serde(rename = "type")]
    type_name: String,
    id: String,
    #[serde(default)]
    attributes: Value,
}

impl<'a> Replayer<'a> {
    fn new(
        snapshot: &'a Snapshot,
        policies: &'a CompiledPolicies,
        edited: &'a HashMap<AgentId, Agent>,
    ) -> Self {
        Self {
            snapshot,
            policies,
            edited,
            mandates: HashMap::new(),
            counts: Counts::default(),
            changes: HashMap::new(),
            groups_truncated: false,
            skipped: BTreeMap::new(),
            nodes: Vec::new(),
        }
    }

    fn agent(&self, id: &str) -> Option<&'a Agent> {
        let id = AgentId::parse(id).ok()?;
        self.edited
            .get(&id)
            .or_else(|| self.snapshot.agents.get(&id))
    }

    fn skip(&mut self, reason: SkipReason, event: String) {
        self.counts.skipped += 1;
        let (n, ex) = self.skipped.entry(reason).or_default();
        *n += 1;
        if ex.len() < EXAMPLES {
            ex.push(event);
        }
    }

    /// Replays one recorded `decision` event body; only the store can fail it.
    ///
    /// INVARIANT (every decision accounted): each body read adds one to `decisions`
    /// and to exactly one of `same`, `allow_to_deny`, `deny_to_allow`,
    /// `other_changes`, `not_replayed` and `skipped`; a candidate that cannot evaluate
    /// the request denies it (`policy_error`, counted in `errors`), never allows.
    fn replay_one(
        &mut self,
        body: &str,
        mandate_of: impl FnOnce(&MandateId) -> Result<Option<Mandate>, StoreError>,
    ) -> Result<(), StoreError> {
        self.counts.decisions += 1;
        let Ok(mut e) = serde_json::from_str::<AuditEvent>(body) else {
            self.skip(SkipReason::Unreadable, String::new());
            return Ok(());
        };
        let recorded = e.reasons.first().and_then(|c| Reason::from_code(c));
        let Some(recorded) = recorded else {
            self.skip(SkipReason::Unreadable, e.id());
            return Ok(());
        };
        if !replayable(recorded) {
            self.counts.not_replayed += 1;
            return Ok(());
        }
        // The event's parts are moved out, never cloned: a replay reads up to a million.
        let (Some(agent_id), Some(action), Some(resource)) =
            (e.agent.take(), e.action.take(), e.resource.take())
        else {
            self.skip(SkipReason::Unreadable, e.id());
            return Ok(());
        };
        let Ok(resource) = serde_json::from_value::<RecordedResource>(resource) else {
            self.skip(SkipReason::Unreadable, e.id());
            return Ok(());
        };
        let details = e.details.as_ref();
        let risk = match details.and_then(|d| d.get("risk")) {
            None => Risk::default(),
            Some(r) => match Risk::deserialize(r) {
                Ok(r) => r,
                Err(_) => {
                    self.skip(SkipReason::Unreadable, e.id());
                    return Ok(());
                }
            },
        };
        let chain_ids: Vec<String> = details
            .and_then(|d| d.get("chain"))
            .and_then(|c| Vec::<String>::deserialize(c).ok())
            .unwrap_or_default();
        let mandate = match details
            .and_then(|d| d.get("mandate"))
            .and_then(Value::as_str)
        {
            None => None,
            Some(m) => {
                let Ok(mid) = MandateId::parse(m) else {
                    self.skip(SkipReason::Unreadable, e.id());
                    return Ok(());
                };
                let found = match self.mandates.get(&mid) {
                    Some(m) => m.clone(),
                    None => {
                        let m = match self.snapshot.mandates.get(&mid) {
                            Some(m) => Some(Arc::clone(m)),
                            None => mandate_of(&mid)?.map(Arc::new),
                        };
                        self.mandates.insert(mid, m.clone());
                        m
                    }
                };
                match found {
                    Some(m) => Some(m),
                    None => {
                        self.skip(SkipReason::UnknownMandate, e.id());
                        return Ok(());
                    }
                }
            }
        };
        let Some(agent) = self.agent(&agent_id) else {
            self.skip(SkipReason::UnknownAgent, e.id());
            return Ok(());
        };
        let mut chain = Vec::with_capacity(chain_ids.len());
        for c in &chain_ids {
            match self.agent(c) {
                Some(a) => chain.push(a),
                None => {
                    self.skip(SkipReason::UnknownAgent, e.id());
                    return Ok(());
                }
            }
        }
        let context = e
            .context
            .take()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let resource = Resource {
            type_name: resource.type_name,
            id: resource.id,
            attributes: resource.attributes,
        };
        let holder = Holder {
            agent,
            chain,
            mandate: mandate.as_ref(),
        };
        let d = decide_for_holder(
            &holder,
            Some(self.policies),
            &DecisionRequest {
                // Not read: the holder is given.
                principal: Principal::Agent(&agent_id),
                action: &action,
                resource: &resource,
                context: &context,
            },
            risk,
        );
        let from = recorded.verdict();
        let to = d.verdict();
        let errored = d.reason() == Reason::PolicyError;
        if errored {
            self.counts.errors += 1;
        }
        match (from, to) {
            (f, t) if f == t => self.counts.same += 1,
            (Verdict::Allow, Verdict::Deny) => self.counts.allow_to_deny += 1,
            (Verdict::Deny, Verdict::Allow) => self.counts.deny_to_allow += 1,
            _ => self.counts.other_changes += 1,
        }
        if from == to && !errored {
            return Ok(());
        }
        if from != to && holds_redaction(&context) {
            self.counts.changed_with_redacted_context += 1;
        }
        let key = GroupKey {
            agent: agent_id,
            action,
            from,
            to,
            reason: d.reason(),
            policies: d.policy_ids,
        };
        if !self.changes.contains_key(&key) && self.changes.len() >= MAX_GROUPS {
            self.groups_truncated = true;
            return Ok(());
        }
        let (n, ex) = self.changes.entry(key).or_default();
        *n += 1;
        if ex.len() < EXAMPLES {
            ex.push(e.id());
        }
        Ok(())
    }

    fn report(
        self,
        req: &ReplayRequest,
        active_version: Option<i64>,
        truncated: bool,
    ) -> ReplayReport {
        let mut changes: Vec<ChangeGroup> = self
            .changes
            .into_iter()
            .map(|(k, (count, examples))| ChangeGroup {
                agent: k.agent,
                action: k.action,
                from: k.from,
                to: k.to,
                reason: k.reason.code(),
                policies: k.policies,
                count,
                examples,
            })
            .collect();
        // Largest first; ties in a stable order, so one log gives one report.
        changes.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.agent.cmp(&b.agent))
                .then_with(|| a.action.cmp(&b.action))
                .then_with(|| a.to.code().cmp(b.to.code()))
                .then_with(|| a.reason.cmp(b.reason))
                .then_with(|| a.policies.cmp(&b.policies))
        });
        ReplayReport {
            version: req.version,
            active_version,
            since: req.since,
            until: req.until,
            truncated,
            counts: self.counts,
            changes,
            groups_truncated: self.groups_truncated,
            skipped: self
                .skipped
                .into_iter()
                .map(|(reason, (count, examples))| SkipGroup {
                    reason,
                    count,
                    examples,
                })
                .collect(),
            nodes: self.nodes,
        }
    }
}

/// The agents whose boundary the replay edits, each as it is now with its new boundary.
fn edited_agents(
    snapshot: &Snapshot,
    edits: &BTreeMap<AgentId, Boundary>,
) -> HashMap<AgentId, Agent> {
    edits
        .iter()
        .filter_map(|(id, b)| {
            let mut a = snapshot.agents.get(id)?.clone();
            a.boundary = b.clone();
            Some((id.clone(), a))
        })
        .collect()
}

/// Whether a decision with this recorded reason is re-decided: it passed the token,
/// status and token-scope gates, so only what a policy version or a boundary decides
/// can change it.
fn replayable(r: Reason) -> bool {
    match r {
        Reason::InvalidToken
        | Reason::TokenRevoked
        | Reason::UnknownAgent
        | Reason::AgentSuspended
        | Reason::AgentDecommissioned
        | Reason::OutsideTokenScope
        | Reason::MandateInactive => false,
        Reason::OutsideBoundary
        | Reason::OutsideMandate
        | Reason::NoActivePolicy
        | Reason::NoPermit
        | Reason::ForbiddenByPolicy
        | Reason::PolicyError
        | Reason::ApprovalRequired
        | Reason::StepUpRequired
        | Reason::AllowedByPolicy => true,
    }
}

/// Whether a logged context holds a redaction marker at any depth.
fn holds_redaction(v: &Value) -> bool {
    match v {
        Value::String(s) => s == DROPPED || s.starts_with(HASH_PREFIX),
        Value::Array(a) => a.iter().any(holds_redaction),
        Value::Object(o) => o.values().any(holds_redaction),
        _ => false,
    }
}
