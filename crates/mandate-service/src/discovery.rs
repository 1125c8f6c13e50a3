//! Discovery runs (issue 24, item 2): what Kubernetes or a cloud's CLI says is running,
//! read by `mandate-govern` and reconciled with the registered agents — matched,
//! shadow (found, not registered), ghost (registered, not found) — one `discovery.run`
//! audit event per run, and, when asked, each unregistered shadow registered as a
//! suspended draft for a human to complete ([`run`]).
//!
//! The scheduled job ([`spawn`]) runs each `[[discovery.sources]]` source every
//! `every` seconds on the node that leads: its document comes through the [`Fetch`]
//! port — a file a cron job refreshes ([`FileFetch`], here), or the Kubernetes API (the
//! HTTP edge's, since this crate speaks no HTTP). A fetch or parse that fails is a
//! `discovery.failed` event and a log line, never a crash.
//!
//! Rules:
//! - A document that does not read ([`DiscoverError`]: `too_large`, `not_json`,
//!   `too_many_values`, `too_many_items`, `bad_shape`) records nothing and changes
//!   nothing.
//! - A draft is registered only with an accountable owner (the discovered owner
//!   annotation, label or tag): an item without one, or with one that is not a valid
//!   owner, is reported (`no_owner`, `invalid_owner`) and not registered. Every agent has
//!   a human who answers for it; a placeholder would hide exactly what discovery is for.
//! - A draft carries the labels the label rule matches (`mandate.dev/source`,
//!   `mandate.dev/name`, `mandate.dev/scope`, and `mandate.dev/discovered=true`), so
//!   the next run reports it matched and registers nothing new.
//! - At most [`MAX_REGISTER`] drafts a run; the rest are reported `limit` and a later
//!   run registers them.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Read as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mandate_core::agent::{AgentName, Boundary, Labels, Owner, Purpose};
use mandate_core::id::AgentId;
use mandate_store::StoreError;
use mandate_store::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

pub use mandate_govern::discover::{
    DiscoverError, Discovered, MAX_INPUT_BYTES, Selector, SelectorError, Source,
};
use mandate_govern::reconcile::{self, Registered};
pub use mandate_govern::reconcile::{
    Ghost, MatchRule, Matched, NAME_LABEL, Reconciliation, SCOPE_LABEL, SOURCE_LABEL, Shadow,
    ShadowReason,
};

use crate::actor::{Actor, System};
use crate::agents::{self, AgentError, Draft, NewAgent};
use crate::error::ServiceError;
use crate::{Node, Recorded};

/// The label a draft registered by discovery carries (`true`).
pub const DISCOVERED_LABEL: &str = "mandate.dev/discovered";

/// The most drafts one run registers (each is one audited registration and one
/// snapshot refresh); the rest are reported `limit`, for a later run.
pub const MAX_REGISTER: usize = 100;

/// The most shadows, ghosts and not-registered items the `discovery.run` event lists;
/// its counts are always whole, and `*_truncated` says a list was cut.
pub const MAX_LISTED: usize = 100;

/// How many runs a node reads at once (a document may be 64 MiB, and its parse takes
/// several times that): a third API run is refused ([`try_permit`]), a scheduled one
/// waits.
pub const CONCURRENT_RUNS: usize = 2;

/// Leave to read and run one discovery document set: one of the node's
/// [`CONCURRENT_RUNS`].
///
/// INVARIANT (discovery runs are bounded): a run's documents are read into memory only
/// while it holds a permit — the API takes it before it reads the body
/// ([`try_permit`]), so a request past the limit is refused before its up to 64 MiB
/// are buffered, rather than buffered and queued.
#[derive(Debug)]
pub struct RunPermit(
    #[expect(dead_code, reason = "held, never read")] tokio::sync::OwnedSemaphorePermit,
);

/// One of `node`'s permits if one is free now; `None` when [`CONCURRENT_RUNS`] runs hold
/// them.
pub fn try_permit(node: &Node) -> Option<RunPermit> {
    Arc::clone(&node.discovery_permits)
        .try_acquire_owned()
        .ok()
        .map(RunPermit)
}

/// One of `node`'s permits, waiting for one (the scheduled job).
async fn permit(node: &Node) -> Option<RunPermit> {
    // The semaphore is never closed: a permit always comes.
    Arc::clone(&node.discovery_permits)
        .acquire_owned()
        .await
        .ok()
        .map(RunPermit)
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `POST /v1/discovery/runs` (and `mandate discover`).
    Api,
    /// The scheduled job.
    Scheduled,
}

impl Trigger {
    /// `api` or `scheduled`, as the event says.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Scheduled => "scheduled",
        }
    }
}

/// One run: where the documents come from and what to do.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The source the documents are from.
    pub source: Source,
    /// Which items count.
    pub selector: Selector,
    /// Register each unregistered shadow as a suspended draft.
    pub register: bool,
    /// What started it.
    pub trigger: Trigger,
}

/// Why an unregistered shadow was not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NotRegisteredReason {
    /// It names no owner.
    NoOwner,
    /// Its owner is not a valid owner (whitespace, over 254 characters).
    InvalidOwner,
    /// Its name or scope is too long for a label value (128 characters), so the next run
    /// could not match it.
    NameTooLong,
    /// Another item of this run has the same source, scope and name: the label rule
    /// could not tell their drafts apart.
    Duplicate,
    /// Every name made from it is taken by another agent.
    NameTaken,
    /// Past [`MAX_REGISTER`] in this run.
    Limit,
}

impl NotRegisteredReason {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NoOwner => "no_owner",
            Self::InvalidOwner => "invalid_owner",
            Self::NameTooLong => "name_too_long",
            Self::Duplicate => "duplicate",
            Self::NameTaken => "name_taken",
            Self::Limit => "limit",
        }
    }
}

/// An unregistered shadow left unregistered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRegistered {
    /// The item's uid.
    pub uid: String,
    /// Why.
    pub reason: NotRegisteredReason,
}

/// A draft registered by a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The new agent.
    pub agent: AgentId,
    /// Its name.
    pub name: String,
    /// The item's uid.
    pub uid: String,
}

/// What a run found and did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The source read.
    pub source: Source,
    /// The selector, as text.
    pub selector: String,
    /// How many items the selector kept.
    pub found: usize,
    /// The reconciliation, as before any registration.
    pub reconciliation: Reconciliation,
    /// The drafts registered, in shadow order.
    pub registered: Vec<Registration>,
    /// Unregistered shadows left so, when registering.
    pub not_registered: Vec<NotRegistered>,
}

/// Why a run did not complete.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The document does not read; nothing was recorded or changed.
    #[error(transparent)]
    Input(#[from] DiscoverError),
    /// A registration failed (the store, the audit log); drafts before it stand.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Runs discovery over `documents` (one tool's output each; the Kubernetes API gives
/// two, pods and service accounts) as `actor`: reads them (all or none), reconciles
/// them with every registered agent, registers the drafts if asked, and records one
/// `discovery.run` event. A document that does not read is [`DiscoveryError::Input`]
/// before anything is read from the store or recorded.
pub async fn run(
    node: &Arc<Node>,
    actor: &Actor,
    req: RunRequest,
    documents: Vec<Vec<u8>>,
) -> Result<RunReport, DiscoveryError> {
    let permit = permit(node).await;
    run_holding(permit, node, actor, req, documents).await
}

/// [`run`] under a permit already held (the API's, taken before it read the body).
pub async fn run_holding(
    _permit: Option<RunPermit>,
    node: &Arc<Node>,
    actor: &Actor,
    req: RunRequest,
    documents: Vec<Vec<u8>>,
) -> Result<RunReport, DiscoveryError> {
    let (source, selector) = (req.source, req.selector.clone());
    let found = node
        .blocking(move |_| read_documents(source, &selector, &documents))
        .await
        .map_err(ServiceError::from)??;
    let registered = node
        .blocking(|s| {
            let mut all = Vec::new();
            s.store()
                .for_each_agent(&mut |a| all.push(Registered::from(&a)))
                .map(|()| all)
        })
        .await
        .map_err(ServiceError::from)??;
    let reconciliation = reconcile::reconcile(&registered, &found, &[source]);
    let (registered_now, not_registered) = if req.register {
        register_drafts(node, actor, &reconciliation, &registered).await?
    } else {
        (Vec::new(), Vec::new())
    };
    let report = RunReport {
        source,
        selector: req.selector.to_string(),
        found: found.len(),
        reconciliation,
        registered: registered_now,
        not_registered,
    };
    let details = run_details(&report, req.trigger, req.register);
    let agent_count = report.registered.len();
    node.perform("discovery.run", actor, move |_| {
        Ok::<_, DiscoveryError>(((), Recorded::details(details)))
    })
    .await?;
    tracing::info!(by = %actor, source = %source, found = report.found,
        matched = report.reconciliation.matched.len(),
        shadows = report.reconciliation.shadows.len(),
        ghosts = report.reconciliation.ghosts.len(),
        registered = agent_count, "discovery run");
    Ok(report)
}

/// Reads every document; the items of all, in order, each once.
fn read_documents(
    source: Source,
    selector: &Selector,
    documents: &[Vec<u8>],
) -> Result<Vec<Discovered>, DiscoverError> {
    let mut found = Vec::new();
    for d in documents {
        found.extend(mandate_govern::discover::discover(source, d, selector)?);
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// The `discovery.run` event's details.
fn run_details(r: &RunReport, trigger: Trigger, register: bool) -> Value {
    let rec = &r.reconciliation;
    let shadows: Vec<Value> = rec
        .shadows
        .iter()
        .take(MAX_LISTED)
        .map(|s| {
            json!({"reason": s.reason.code(), "kind": s.item.kind, "scope": s.item.scope,
                   "name": s.item.name, "uid": s.item.uid, "owner": s.item.owner,
                   "agent_id": s.item.agent_id})
        })
        .collect();
    let ghosts: Vec<&str> = rec
        .ghosts
        .iter()
        .take(MAX_LISTED)
        .map(|g| g.agent.as_str())
        .collect();
    let not_registered: Vec<Value> = r
        .not_registered
        .iter()
        .take(MAX_LISTED)
        .map(|n| json!({"uid": n.uid, "reason": n.reason.code()}))
        .collect();
    json!({
        "trigger": trigger.as_str(),
        "source": r.source.as_str(),
        "selector": r.selector,
        "register": register,
        "counts": {
            "found": r.found,
            "matched": rec.matched.len(),
            "shadows": rec.shadows.len(),
            "ghosts": rec.ghosts.len(),
            "registered": r.registered.len(),
            "not_registered": r.not_registered.len(),
        },
        "shadows": shadows,
        "shadows_truncated": rec.shadows.len() > MAX_LISTED,
        "ghosts": ghosts,
        "ghosts_truncated": rec.ghosts.len() > MAX_LISTED,
        "registered": r.registered.iter().map(|x| x.agent.as_str()).collect::<Vec<_>>(),
        "not_registered": not_registered,
        "not_registered_truncated": r.not_registered.len() > MAX_LISTED,
    })
}

/// An agent name from discovered text: each character outside `A-Za-z0-9._-` becomes
/// `-`, leading characters that are not a letter or digit are dropped, at most 64
/// characters; `None` when nothing is left.
pub fn agent_name(text: &str) -> Option<AgentName> {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(64)
        .collect();
    AgentName::try_from(mapped).ok()
}

/// What a draft of `item` would be, or why there is none. `taken` holds the names in
/// use (this run's drafts included).
fn draft_of(item: &Discovered, taken: &BTreeSet<String>) -> Result<NewAgent, NotRegisteredReason> {
    let owner = item.owner.as_ref().ok_or(NotRegisteredReason::NoOwner)?;
    let owner =
        Owner::try_from(owner.trim().to_owned()).map_err(|_| NotRegisteredReason::InvalidOwner)?;
    let mut labels = BTreeMap::from([
        (SOURCE_LABEL.to_owned(), item.source.as_str().to_owned()),
        (NAME_LABEL.to_owned(), item.name.clone()),
        (DISCOVERED_LABEL.to_owned(), "true".to_owned()),
    ]);
    if !item.scope.is_empty() {
        labels.insert(SCOPE_LABEL.to_owned(), item.scope.clone());
    }
    let labels = Labels::try_from(labels).map_err(|_| NotRegisteredReason::NameTooLong)?;
    let candidates = [
        agent_name(&item.name),
        (!item.scope.is_empty())
            .then(|| agent_name(&format!("{}.{}", item.scope, item.name)))
            .flatten(),
    ];
    let name = candidates
        .into_iter()
        .flatten()
        .find(|n| !taken.contains(n.as_str()))
        .ok_or(NotRegisteredReason::NameTaken)?;
    let where_ = if item.scope.is_empty() {
        item.name.clone()
    } else {
        format!("{}/{}", item.scope, item.name)
    };
    let text = format!(
        "Found by {} discovery: {} `{where_}` ({}). A draft: give it a purpose, a boundary \
         and credentials, then resume it.",
        item.source, item.kind, item.uid
    );
    let purpose =
        Purpose::try_from(text.chars().take(1000).collect::<String>()).unwrap_or_default();
    Ok(NewAgent {
        name,
        owner,
        purpose,
        labels,
        boundary: Boundary::default(),
    })
}

/// Registers each unregistered shadow of `rec` as a draft (see the module docs).
///
/// INVARIANT (a draft is matched next): a draft carries `mandate.dev/source`,
/// `mandate.dev/name` and (when the item has one) `mandate.dev/scope` equal to its item's,
/// it is made only for an `unregistered` item (no agent's labels name it), and at most one
/// per (source, scope, name) a run: so the next run over the same item finds exactly one
/// agent by the label rule and reports it matched, never a second draft or `ambiguous`.
async fn register_drafts(
    node: &Arc<Node>,
    actor: &Actor,
    rec: &Reconciliation,
    registered: &[Registered],
) -> Result<(Vec<Registration>, Vec<NotRegistered>), DiscoveryError> {
    let mut taken: BTreeSet<String> = registered.iter().map(|r| r.name.clone()).collect();
    let mut named: BTreeSet<(Source, &str, &str)> = BTreeSet::new();
    let (mut done, mut skipped) = (Vec::new(), Vec::new());
    for s in rec
        .shadows
        .iter()
        .filter(|s| s.reason == ShadowReason::Unregistered)
    {
        let item = &s.item;
        let mut skip = |reason| {
            skipped.push(NotRegistered {
                uid: item.uid.clone(),
                reason,
            });
        };
        if !named.insert((item.source, item.scope.as_str(), item.name.as_str())) {
            skip(NotRegisteredReason::Duplicate);
            continue;
        }
        if done.len() >= MAX_REGISTER {
            skip(NotRegisteredReason::Limit);
            continue;
        }
        let new = match draft_of(item, &taken) {
            Ok(n) => n,
            Err(reason) => {
                skip(reason);
                continue;
            }
        };
        let name = new.name.as_str().to_owned();
        let draft = Draft {
            reason: format!(
                "discovered by {} discovery; a draft to complete",
                item.source
            ),
            discovered: json!({"source": item.source.as_str(), "kind": item.kind,
                               "scope": item.scope, "name": item.name, "uid": item.uid}),
        };
        match agents::register_as(node, actor, new, Some(draft)).await {
            Ok(agent) => {
                taken.insert(name.clone());
                done.push(Registration {
                    agent: agent.id,
                    name,
                    uid: item.uid.clone(),
                });
            }
            // Taken since the names were read (another registration in between).
            Err(AgentError::Store(StoreError::Conflict(_))) => {
                taken.insert(name);
                skip(NotRegisteredReason::NameTaken);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((done, skipped))
}

// ---- the scheduled job ----

/// A future a [`Fetch`] returns.
pub type Fetching<'a> = Pin<Box<dyn Future<Output = Result<Vec<Vec<u8>>, FetchError>> + Send + 'a>>;

/// Where a scheduled source's documents come from: a file ([`FileFetch`]) or the
/// Kubernetes API (the HTTP edge's implementation).
pub trait Fetch: Send + Sync {
    /// The documents of one run, each at most [`MAX_INPUT_BYTES`].
    fn fetch(&self) -> Fetching<'_>;
}

/// Why a scheduled source's documents could not be had.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    /// A stable code: `unreadable`, `too_large`, `unreachable`, `http_status`, `tls`.
    pub code: &'static str,
    /// What happened (no secret: never a token).
    pub message: String,
}

/// A file's contents, read whole at each run: what a cron job refreshes with `kubectl
/// get pods -l app=ai-agent -A -o json > FILE` or a cloud CLI's output.
#[derive(Debug, Clone)]
pub struct FileFetch {
    /// The file.
    pub path: PathBuf,
}

impl Fetch for FileFetch {
    fn fetch(&self) -> Fetching<'_> {
        let path = self.path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || read_bounded(&path))
                .await
                .map_err(|e| FetchError {
                    code: "unreadable",
                    message: e.to_string(),
                })?
                .map(|d| vec![d])
        })
    }
}

/// A regular file of at most [`MAX_INPUT_BYTES`].
fn read_bounded(path: &std::path::Path) -> Result<Vec<u8>, FetchError> {
    let unreadable = |e: std::io::Error| FetchError {
        code: "unreadable",
        message: format!("{}: {e}", path.display()),
    };
    let f = std::fs::File::open(path).map_err(unreadable)?;
    let meta = f.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(FetchError {
            code: "unreadable",
            message: format!("{}: not a regular file", path.display()),
        });
    }
    let mut out = Vec::new();
    let limit = u64::try_from(MAX_INPUT_BYTES).unwrap_or(u64::MAX);
    f.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(unreadable)?;
    if out.len() > MAX_INPUT_BYTES {
        return Err(FetchError {
            code: "too_large",
            message: format!("{}: over {MAX_INPUT_BYTES} bytes", path.display()),
        });
    }
    Ok(out)
}

/// The shortest and longest `every` of a scheduled source, in seconds.
pub const EVERY_RANGE: std::ops::RangeInclusive<u64> = 10..=604_800;

/// What the in-cluster service account gives a pod.
pub const IN_CLUSTER_API: &str = "https://kubernetes.default.svc";
/// The in-cluster service account's token.
pub const IN_CLUSTER_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The in-cluster service account's CA bundle.
pub const IN_CLUSTER_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

/// One `[[discovery.sources]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Its name in logs and events (default: `<source>-<n>`, n counted from 1).
    #[serde(default)]
    pub name: Option<String>,
    /// `kubernetes`, `aws`, `azure` or `gcp`.
    pub source: String,
    /// The selector (default: `app=ai-agent` for Kubernetes, everything for the clouds).
    #[serde(default)]
    pub selector: Option<String>,
    /// Seconds between runs ([`EVERY_RANGE`]).
    pub every: u64,
    /// Register unregistered shadows as drafts.
    #[serde(default)]
    pub register: bool,
    /// The file to read at each run.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Kubernetes only: the API server's `https://` URL, or `in-cluster`.
    #[serde(default)]
    pub kubernetes_api: Option<String>,
    /// The bearer token's file (default in-cluster: [`IN_CLUSTER_TOKEN`]).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The CA bundle the API server's certificate is checked against (default
    /// in-cluster: [`IN_CLUSTER_CA`]; otherwise the system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// A scheduled source, checked: what the job runs.
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// Its name.
    pub name: String,
    /// The source.
    pub source: Source,
    /// The selector.
    pub selector: Selector,
    /// Between runs.
    pub every: Duration,
    /// Register drafts.
    pub register: bool,
}

/// Where a checked source's documents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file.
    File(PathBuf),
    /// The Kubernetes API at `url` (no trailing `/`), with a token file and maybe a CA
    /// bundle.
    KubernetesApi {
        /// `https://host[:port]` (or `http://` to a loopback address).
        url: String,
        /// The bearer token's file, read at each run (service-account tokens rotate).
        token_file: PathBuf,
        /// The CA bundle, if not the system's roots.
        ca_file: Option<PathBuf>,
    },
}

impl SourceConfig {
    /// The checked source (`n`: its place in the list, from 1) and its origin, or every
    /// problem found, each naming the source.
    pub fn check(&self, n: usize) -> Result<(Scheduled, Origin), Vec<String>> {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{n}", self.source));
        let at = format!("discovery source `{name}`");
        let mut errors = Vec::new();
        let source = Source::parse(&self.source);
        if source.is_none() {
            errors.push(format!(
                "{at}: `source` must be kubernetes, aws, azure or gcp"
            ));
        }
        let selector = match (&self.selector, source) {
            (Some(s), _) => Selector::parse(s)
                .map_err(|e| errors.push(format!("{at}: `selector`: {e}")))
                .unwrap_or_default(),
            (None, Some(Source::Kubernetes)) => Selector::kubernetes_default(),
            (None, _) => Selector::everything(),
        };
        if !EVERY_RANGE.contains(&self.every) {
            errors.push(format!(
                "{at}: `every` must be a number of seconds in {}..={}",
                EVERY_RANGE.start(),
                EVERY_RANGE.end()
            ));
        }
        let origin = match (&self.file, &self.kubernetes_api) {
            (Some(f), None) => {
                if self.token_file.is_some() || self.ca_file.is_some() {
                    errors.push(format!(
                        "{at}: `token_file` and `ca_file` go with `kubernetes_api`"
                    ));
                }
                Some(Origin::File(f.clone()))
            }
            (None, Some(api)) => {
                if source.is_some_and(|s| s != Source::Kubernetes) {
                    errors.push(format!("{at}: `kubernetes_api` is for source kubernetes"));
                }
                let in_cluster = api == "in-cluster";
                let url = if in_cluster {
                    IN_CLUSTER_API.to_owned()
                } else {
                    api.trim_end_matches('/').to_owned()
                };
                let token_file = self
                    .token_file
                    .clone()
                    .or_else(|| in_cluster.then(|| PathBuf::from(IN_CLUSTER_TOKEN)));
                let ca_file = self
                    .ca_file
                    .clone()
                    .or_else(|| in_cluster.then(|| PathBuf::from(IN_CLUSTER_CA)));
                match token_file {
                    Some(token_file) => Some(Origin::KubernetesApi {
                        url,
                        token_file,
                        ca_file,
                    }),
                    None => {
                        errors.push(format!(
                            "{at}: `token_file` is needed with `kubernetes_api` (unless `in-cluster`)"
                        ));
                        None
                    }
                }
            }
            _ => {
                errors.push(format!(
                    "{at}: give exactly one of `file` and `kubernetes_api`"
                ));
                None
            }
        };
        match (source, origin) {
            (Some(source), Some(origin)) if errors.is_empty() => Ok((
                Scheduled {
                    name,
                    source,
                    selector,
                    every: Duration::from_secs(self.every),
                    register: self.register,
                },
                origin,
            )),
            _ => Err(errors),
        }
    }
}

/// Checks every source (and that no two share a name).
pub fn check_sources(sources: &[SourceConfig]) -> Result<Vec<(Scheduled, Origin)>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut names = BTreeSet::new();
    for (i, s) in sources.iter().enumerate() {
        match s.check(i + 1) {
            Ok((sched, origin)) => {
                if !names.insert(sched.name.clone()) {
                    errors.push(format!(
                        "discovery source `{}`: two sources have this name",
                        sched.name
                    ));
                }
                out.push((sched, origin));
            }
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Starts one task per scheduled source: every `every`, on the node that leads
/// (`Store::leads`; a single node always does), fetch, run and record; a failure is a
/// `discovery.failed` event and a warning, and the next tick tries again.
pub fn spawn(node: &Arc<Node>, sources: Vec<(Scheduled, Box<dyn Fetch>)>) {
    for (s, fetch) in sources {
        let node = Arc::clone(node);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(s.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if !node.leads() {
                    continue;
                }
                scheduled_run(&node, &s, fetch.as_ref()).await;
            }
        });
    }
}

/// One scheduled run of `s` (see [`spawn`]); never fails: what went wrong is recorded.
pub async fn scheduled_run(node: &Arc<Node>, s: &Scheduled, fetch: &dyn Fetch) {
    let actor = Actor::System(System::Discovery);
    let failed = |stage: &'static str, code: &'static str, message: String| {
        json!({"trigger": Trigger::Scheduled.as_str(), "name": s.name,
               "source": s.source.as_str(), "selector": s.selector.to_string(),
               "stage": stage, "code": code, "message": message})
    };
    let details = match fetch.fetch().await {
        Err(e) => failed("fetch", e.code, e.message),
        Ok(documents) => {
            let req = RunRequest {
                source: s.source,
                selector: s.selector.clone(),
                register: s.register,
                trigger: Trigger::Scheduled,
            };
            match run(node, &actor, req, documents).await {
                Ok(_) => return,
                Err(DiscoveryError::Input(e)) => failed("parse", e.code(), e.to_string()),
                Err(e) => {
                    tracing::warn!(source = %s.name, error = %e, "scheduled discovery failed");
                    failed("run", "failed", e.to_string())
                }
            }
        }
    };
    tracing::warn!(source = %s.name, details = %details, "scheduled discovery failed");
    let recorded = node
        .perform("discovery.failed", &actor, move |_| {
            Ok::<_, ServiceError>(((), Recorded::details(details)))
        })
        .await;
    if let Err(e) = recorded {
        tracing::error!(source = %s.name, error = %e, "discovery.failed not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_from_discovered_text() {
        let n = |s: &str| agent_name(s).map(|n| n.as_str().to_owned());
        assert_eq!(n("crm-agent-7d9f8").as_deref(), Some("crm-agent-7d9f8"));
        assert_eq!(
            n("projects/123.My Fn").as_deref(),
            Some("projects-123.My-Fn")
        );
        assert_eq!(n("--x").as_deref(), Some("x"));
        assert_eq!(n("/// ").as_deref(), None);
        assert_eq!(n(&"a".repeat(100)).map(|s| s.len()), Some(64));
    }

    #[test]
    fn sources_are_checked_whole() {
        let t: toml::Table = toml::from_str(
            r#"
            [[s]]
            source = "kubernetes"
            every = 60
            kubernetes_api = "in-cluster"
            [[s]]
            source = "aws"
            every = 5
            selector = "a=b=c"
            [[s]]
            source = "nope"
            every = 60
            file = "/x"
            "#,
        )
        .unwrap();
        let list: Vec<SourceConfig> = t["s"].clone().try_into().unwrap();
        let (ok, origin) = list[0].check(1).unwrap();
        assert_eq!(ok.name, "kubernetes-1");
        assert_eq!(ok.selector.to_string(), "app=ai-agent");
        assert_eq!(
            origin,
            Origin::KubernetesApi {
                url: IN_CLUSTER_API.into(),
                token_file: IN_CLUSTER_TOKEN.into(),
                ca_file: Some(IN_CLUSTER_CA.into()),
            }
        );
        let errors = check_sources(&list).unwrap_err();
        assert!(errors.iter().any(|e| e.contains("`every`")), "{errors:?}");
        assert!(
            errors.iter().any(|e| e.contains("`selector`")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("exactly one")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("`source` must")),
            "{errors:?}"
        );
    }
}
