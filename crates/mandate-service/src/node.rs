//! The node: one Mandate server's state and what it does whatever edge asked — the
//! store behind the one write path ([`Node::store`], write_path.rs), the decision
//! snapshot and its refresh, the audit log, the signing keys, the caches, the detector
//! and the gateways' secrets. The HTTP edge (`mandate-http`) holds an `Arc<Node>` and
//! calls into it; the binary builds it over the store it picked.

use mandate_store::prelude::*;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mandate_audit::redact::{Redactor, Rule};
use mandate_core::agent::AgentStatus;
use mandate_core::clock::Clock;
use mandate_core::random::Random;
use mandate_engine::agent_index::AgentIndex;
use mandate_engine::decide::Snapshot;
use mandate_policy::{CompiledPolicies, RegoSource};
use mandate_store::{PolicyVersionRow, Store, StoreError, Topic};

use crate::audit::{self, AuditLog};
use crate::config::{ServerConfig, WebhookConfig};
use crate::snapshot_cell::{self, StaleSnapshot};
use crate::{cache, detect, keys, secrets, write_path};

/// Sends signed webhooks (approval requests, anomaly alerts). A port: the node decides
/// what to send and when; the HTTP edge (`mandate-http`'s `webhook.rs`) delivers it, in
/// the background, so delivery never delays or changes a decision.
pub trait Webhooks: Send + Sync + std::fmt::Debug {
    /// Queues `body` for delivery to `hook`, signed at unix time `at`.
    fn send(&self, hook: &WebhookConfig, at: i64, body: serde_json::Value);
}

/// One node's state: everything an edge, a job or the gateways reach.
pub struct Node {
    /// The source of truth. Reached through [`Node::store`] (the one write path); the
    /// audit log and the rebuild read it directly.
    pub(crate) db: Arc<dyn Store>,
    /// Current signing key and published keys.
    pub keys: keys::KeyState,
    /// The only clock.
    pub clock: Arc<dyn Clock>,
    /// The only random source.
    pub random: Arc<dyn Random>,
    /// Static configuration.
    pub config: ServerConfig,
    /// This node's audit log.
    pub audit: AuditLog,
    /// Where webhooks go out.
    pub(crate) webhooks: Arc<dyn Webhooks>,
    /// Bounds concurrent Argon2id checks (19 MiB each): a flood of client-secret
    /// requests queues here, with a deadline, instead of exhausting memory and the
    /// blocking pool that store calls share.
    pub(crate) argon2_permits: Arc<tokio::sync::Semaphore>,
    /// What decisions read; swapped whole.
    pub(crate) snapshot: snapshot_cell::SnapshotCell,
    /// The compiled active policy set, kept across snapshot rebuilds of the same version.
    compiled: Mutex<Option<(i64, Arc<CompiledPolicies>)>>,
    /// Redaction of audit contexts.
    redactor: Redactor,
    /// Access tokens whose signature already verified.
    pub(crate) verified_tokens: cache::VerifiedTokens,
    /// Client secrets that already passed Argon2id.
    pub(crate) verified_secrets: cache::VerifiedSecrets,
    /// DPoP replay cache and nonce key (dpop.rs).
    dpop: crate::dpop::Dpop,
    /// Bumped on every mandate change, so long-polling readers wake up.
    pub(crate) mandate_changes: tokio::sync::watch::Sender<u64>,
    /// Behavioural baselines and anomaly scoring (`None` when detection is off).
    pub(crate) detector: Option<mandate_detect::Detector>,
    /// The gateways' upstream secrets, decrypted (never returned by any API).
    pub(crate) secrets: secrets::SecretCache,
    /// When this node last proved its snapshot fresh (`INVARIANT (fresh or refused)`,
    /// freshness.rs).
    pub(crate) proof: crate::freshness::Proof,
    /// Held by an act from its work until its audit event is queued, so acts are
    /// recorded in the order their changes were made (`INVARIANT (act order)`,
    /// write_path.rs).
    pub(crate) act_order: tokio::sync::Mutex<()>,
    /// The export sinks, as they run (`export.rs`).
    pub export: crate::export::Board,
    /// SET `jti`s received lately (`ssf.rs`).
    pub(crate) ssf_seen: crate::ssf::Seen,
    /// Long polls of SSF streams that may look for SETs while they wait
    /// (`INVARIANT (long polls are bounded)`, ssf_streams.rs).
    pub(crate) ssf_long_polls: tokio::sync::Semaphore,
    /// One policy replay at a time on this node (`INVARIANT (one replay per node)`,
    /// replay.rs).
    pub(crate) replay_permit: Arc<tokio::sync::Semaphore>,
    /// Discovery runs reading a document on this node (`INVARIANT (discovery runs are
    /// bounded)`, discovery.rs).
    pub(crate) discovery_permits: Arc<tokio::sync::Semaphore>,
    /// One compliance report at a time on this node (`INVARIANT (one report per
    /// node)`, compliance.rs).
    pub(crate) report_permit: Arc<tokio::sync::Semaphore>,
    /// Agents' and credentials' last activity noted since the last flush (activity.rs).
    pub(crate) activity: crate::activity::Activity,
}

/// Why a stored policy version has no compiled policy set.
#[derive(Debug)]
pub enum VersionError {
    /// The store failed.
    Store(StoreError),
    /// No such version.
    Missing,
    /// The version no longer compiles; the compiler's messages, joined.
    DoesNotCompile(String),
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] audit::AuditOpenError),
    /// Loading what decisions need.
    #[error("loading the decision snapshot: {0}")]
    Snapshot(String),
}

impl Node {
    /// Wires the state: opens the audit log (starting its writer) and loads the first
    /// decision snapshot. Argon2id concurrency is bounded by the CPU count; webhooks go
    /// out through `webhooks`.
    pub fn new(
        store: Arc<dyn Store>,
        keys: keys::KeyState,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        config: ServerConfig,
        webhooks: Arc<dyn Webhooks>,
    ) -> Result<Self, StartError> {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let audit = AuditLog::open(
            Arc::clone(&store),
            Arc::clone(&clock),
            random.as_ref(),
            &config.audit_key_path,
            config.checkpoint,
        )?;
        // The redaction key derives from the store key, so every node hashes a field the same.
        let redactor = Redactor::new(
            config.redact.clone(),
            Rule::Keep,
            keys.store_key().redaction_key(),
        );
        let placeholder = Snapshot {
            agents: Default::default(),
            policies: None,
            policy_version: None,
            ring: keys.ring(),
            issuer: config.issuer.clone(),
            audiences: config.own_audiences(),
            max_token_lifetime_secs: i64::from(config.max_token_lifetime_secs),
            cutoffs: Default::default(),
            user_cutoffs: Default::default(),
            revoked: Default::default(),
            mandates: Default::default(),
        };
        let detector =
            detect::open(&config.detect, store.as_ref()).map_err(StartError::Snapshot)?;
        let memo_key: [u8; 32] = mandate_core::random::random_bytes(random.as_ref())
            .map_err(|e| StartError::Snapshot(e.to_string()))?;
        let proof = crate::freshness::Proof::new(
            matches!(store.freshness(), mandate_store::Freshness::Local),
            config.max_staleness,
        );
        let dpop = crate::dpop::Dpop::new(config.dpop, keys.store_key().dpop_nonce_key());
        let state = Self {
            dpop,
            proof,
            verified_tokens: cache::VerifiedTokens::default(),
            verified_secrets: cache::VerifiedSecrets::new(memo_key),
            db: store,
            keys,
            clock,
            random,
            config,
            audit,
            argon2_permits: Arc::new(tokio::sync::Semaphore::new(cpus.clamp(1, 16))),
            snapshot: snapshot_cell::SnapshotCell::new(placeholder),
            compiled: Mutex::new(None),
            redactor,
            mandate_changes: tokio::sync::watch::channel(0).0,
            detector,
            webhooks,
            secrets: secrets::SecretCache::default(),
            act_order: tokio::sync::Mutex::new(()),
            export: crate::export::Board::default(),
            ssf_seen: crate::ssf::Seen::default(),
            ssf_long_polls: tokio::sync::Semaphore::new(crate::ssf_streams::MAX_LONG_POLLS),
            replay_permit: Arc::new(tokio::sync::Semaphore::new(1)),
            report_permit: Arc::new(tokio::sync::Semaphore::new(1)),
            discovery_permits: Arc::new(tokio::sync::Semaphore::new(
                crate::discovery::CONCURRENT_RUNS,
            )),
            activity: crate::activity::Activity::default(),
        };
        secrets::load(&state).map_err(|e| StartError::Snapshot(e.to_string()))?;
        state
            .refresh()
            .map_err(|e| StartError::Snapshot(e.to_string()))?;
        Ok(state)
    }

    /// Runs `f` over this node on a blocking thread (store work, Argon2id).
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Node) -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let node = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&node)).await
    }

    /// The store, through the one write path: a write that changes what decisions read
    /// refreshes the snapshot before it returns (write_path.rs).
    pub fn store(&self) -> write_path::Committing<'_> {
        write_path::Committing { state: self }
    }

    /// The snapshot decisions read now, or [`StaleSnapshot`] while the last refresh
    /// failed: everything that decides, authenticates an agent or checks a token goes
    /// through here, so none of it can act on a snapshot the store has moved past
    /// (`INVARIANT (fail closed on a stale snapshot)`, mandate-service snapshot_cell.rs).
    ///
    /// Over a shared store it also refuses while this node cannot prove the snapshot
    /// fresh (`INVARIANT (fresh or refused)`, freshness.rs).
    pub fn snapshot(&self) -> Result<Arc<Snapshot>, StaleSnapshot> {
        if !self.proven_now() {
            return Err(StaleSnapshot);
        }
        self.snapshot.get()
    }

    /// Whether this node can show its snapshot current now (`INVARIANT (fresh or
    /// refused)`, freshness.rs): a single node's store always; a shared one while the
    /// node's last proof is younger than `cluster.max_staleness` and the feed is not known
    /// to be lost (a lost listening connection refuses at once, not once the proof aged).
    fn proven_now(&self) -> bool {
        self.proof.is_local()
            || (self.proof.fresh()
                && !matches!(self.db.freshness(), mandate_store::Freshness::Unproven))
    }

    /// How old this node's proof of freshness is (`None`: none yet, or a single node,
    /// which needs none).
    pub fn proof_age(&self) -> Option<Duration> {
        self.proof.age()
    }

    /// Whether this node runs the jobs that run on one node at a time (always, on a
    /// single node's store).
    pub fn leads(&self) -> bool {
        self.db.leads()
    }

    /// Fires after every snapshot rebuild, successful or failed (see
    /// `SnapshotCell::changes`).
    pub fn snapshot_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.snapshot.changes()
    }

    /// Whether the last refresh failed (decisions are held until one succeeds).
    pub(crate) fn refresh_failed(&self) -> bool {
        self.snapshot.is_stale()
    }

    /// Whether the snapshot was built from the store at or after change `seq` (a refresh
    /// for it would read nothing new). Waits for a refresh in progress.
    pub(crate) fn snapshot_covers(&self, seq: u64) -> bool {
        self.snapshot.built_from().is_some_and(|b| b >= seq)
    }

    /// Wakes whoever watches [`Node::snapshot_changes`] (open gateway streams re-check):
    /// called when the node's proof of freshness lapsed, which changes what
    /// [`Node::snapshot`] answers without a rebuild.
    pub(crate) fn snapshot_lapsed(&self) {
        self.snapshot.poke();
    }

    /// Whether decisions are held: the last refresh failed, or (over a shared store)
    /// this node cannot prove its snapshot fresh.
    pub fn is_stale(&self) -> bool {
        self.snapshot.is_stale() || !self.proven_now()
    }

    /// Rebuilds the snapshot from the store and swaps it in. Every write that can change
    /// a decision runs it before returning (`INVARIANT (one write path)`, write_path.rs).
    /// Blocking.
    ///
    /// The agents, the one part whose size grows with the deployment, are read again only
    /// when the change feed says agents changed since the last build (always on the first
    /// build and the first after a failed one); the small parts (policy activation, token
    /// cutoffs and revocations, active mandates) are read every time. Agents whose stored
    /// value is unchanged are shared with the previous snapshot, so a refresh holds one
    /// copy of each agent plus the new index, not two of everything.
    ///
    /// INVARIANT (snapshot): when `refresh` returns `Ok`, the snapshot holds every agent as
    /// the store held it at some moment after the call began — in particular a suspension
    /// or decommission committed before the call is in the very next decision. Two
    /// things keep it: an agent is reused only when the row read now decodes to a value
    /// equal to it in every field (status and reason included; not by `updated_at`, which
    /// has one-second resolution); and refreshes are serialised from their first read to
    /// their swap (`SnapshotCell::rebuild`), so a refresh that read the store earlier can
    /// never be swapped in over one that read it later. When a refresh fails, decisions
    /// are held until one succeeds (mandate-service snapshot_cell.rs).
    pub fn refresh(&self) -> Result<(), snapshot_cell::RefreshError> {
        self.snapshot.rebuild(|previous, built_from| {
            // The sequence number is read before the data (`INVARIANT (published before
            // visible)`, mandate-store): a change it does not cover is read again next time.
            let (seq, agents_changed) = match built_from {
                None => (self.db.changes_since(0, Duration::ZERO).seq, true),
                Some(from) => {
                    let c = self.db.changes_since(from, Duration::ZERO);
                    (c.seq, c.topics.contains(Topic::Agents))
                }
            };
            let fresh = self.fresh_snapshot(previous, agents_changed)?;
            Ok((fresh, seq))
        })
    }

    /// [`Node::refresh`] for what the snapshot holds outside the store (the signing
    /// key ring), without failing the caller's request: the change is in force either
    /// way, since the next decision either reads a snapshot that holds it or, if the
    /// refresh failed, is refused until one succeeds (the error is logged; the sweeper
    /// retries).
    pub fn refresh_after_write(&self) {
        let _ = self.refresh();
    }

    /// The next snapshot, read from the store; the agents of `previous` kept as they are
    /// unless `agents_changed` (see [`Node::refresh`]).
    fn fresh_snapshot(
        &self,
        previous: &Snapshot,
        agents_changed: bool,
    ) -> Result<Snapshot, snapshot_cell::RefreshError> {
        let now = self.clock.now();
        let agents = if agents_changed {
            self.agents_reusing(&previous.agents)?
        } else {
            previous.agents.clone()
        };
        let (policies, active) = self.active_policies()?;
        let cutoffs = self.db.token_cutoffs()?.into_iter().collect();
        let revoked = self.db.revoked_jtis(now)?.into_iter().collect();
        let user_cutoffs = self
            .db
            .user_session_cutoffs()?
            .into_iter()
            .map(|(i, s, t)| ((i, s), t))
            .collect();
        let mandates = self
            .db
            .active_mandates(now)?
            .into_iter()
            .map(|m| (m.id.clone(), Arc::new(m)))
            .collect();
        Ok(Snapshot {
            agents,
            policies,
            policy_version: active,
            ring: self.keys.ring(),
            issuer: self.config.issuer.clone(),
            audiences: self.config.own_audiences(),
            max_token_lifetime_secs: i64::from(self.config.max_token_lifetime_secs),
            cutoffs,
            user_cutoffs,
            revoked,
            mandates,
        })
    }

    /// The active policy version, compiled, and its number (`None`: none is active).
    fn active_policies(
        &self,
    ) -> Result<(Option<Arc<CompiledPolicies>>, Option<i64>), snapshot_cell::RefreshError> {
        use snapshot_cell::RefreshError;
        let (active, _) = self.db.policy_activation_state()?;
        let policies = match active {
            None => None,
            // Versions were validated when written; one that fails here (e.g. against a
            // newer base schema) fails the refresh (decisions are held, see `refresh`).
            Some(v) => Some(self.compiled_version(v).map_err(|e| match e {
                VersionError::Store(e) => RefreshError::Store(e),
                VersionError::Missing => RefreshError::MissingVersion(v),
                VersionError::DoesNotCompile(why) => {
                    RefreshError::DoesNotCompile { version: v, why }
                }
            })?),
        };
        Ok((policies, active))
    }

    /// Every agent in the store, each row decoded as it is read and compared with
    /// `previous`: an equal agent is shared (the decoded copy dropped at once), a new or
    /// changed one is kept. Besides `previous` this allocates the new index's table and
    /// the agents that changed, nothing per unchanged agent.
    fn agents_reusing(
        &self,
        previous: &AgentIndex,
    ) -> Result<AgentIndex, mandate_store::StoreError> {
        let mut agents = AgentIndex::with_capacity(previous.len());
        self.db.for_each_agent(&mut |read| {
            let agent = match previous.get_shared(&read.id) {
                Some(kept) if **kept == read => Arc::clone(kept),
                Some(kept) => {
                    // A resume this node did not make (another node of a cluster): the
                    // human's word lifts this node's detector suspension too, as it does
                    // on the node that resumed (agents.rs). Detectors learn per node;
                    // suspensions and resumes are shared through the store.
                    if kept.status == AgentStatus::Suspended
                        && read.status == AgentStatus::Active
                        && let Some(d) = &self.detector
                    {
                        d.resume(read.id.as_str());
                    }
                    Arc::new(read)
                }
                None => Arc::new(read),
            };
            agents.insert(agent);
        })?;
        Ok(agents)
    }

    /// The compiled policy set of stored version `v`, from the one-version cache or
    /// compiled now and cached (so activating a version compiles it once, and the
    /// refresh that follows finds it).
    pub fn compiled_version(&self, v: i64) -> Result<Arc<CompiledPolicies>, VersionError> {
        let mut cache = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((cv, c)) = cache.as_ref()
            && *cv == v
        {
            return Ok(Arc::clone(c));
        }
        let row = self
            .store()
            .policy_version(v)
            .map_err(VersionError::Store)?
            .ok_or(VersionError::Missing)?;
        let compiled = compile_row(&row).map_err(|errs| {
            VersionError::DoesNotCompile(
                errs.iter()
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let compiled = Arc::new(compiled);
        *cache = Some((v, Arc::clone(&compiled)));
        Ok(compiled)
    }

    /// Whether the store answers (readiness).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.db.ping()
    }

    /// The permits bounding concurrent Argon2id checks (see the field).
    pub(crate) fn argon2_permits(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.argon2_permits
    }

    /// Access tokens whose signature already verified.
    pub(crate) fn verified_tokens(&self) -> &cache::VerifiedTokens {
        &self.verified_tokens
    }

    /// Client secrets that already passed Argon2id.
    pub(crate) fn verified_secrets(&self) -> &cache::VerifiedSecrets {
        &self.verified_secrets
    }

    /// The anomaly detector (`None` when detection is off).
    pub fn detector(&self) -> Option<&mandate_detect::Detector> {
        self.detector.as_ref()
    }

    /// Wakes long-polling readers of mandates: called after every mandate write.
    pub fn mandates_changed(&self) {
        self.mandate_changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Fires after every mandate write ([`Node::mandates_changed`]).
    pub fn mandate_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.mandate_changes.subscribe()
    }

    /// Sends a signed webhook in the background (see [`Webhooks`]).
    pub fn send_webhook(&self, hook: &WebhookConfig, at: i64, body: serde_json::Value) {
        self.webhooks.send(hook, at, body);
    }

    /// This node's DPoP replay cache and nonces.
    pub fn dpop(&self) -> &crate::dpop::Dpop {
        &self.dpop
    }

    /// A draft audit event of `kind` (seq, time and node are set when it is written).
    pub fn event(&self, kind: &str) -> mandate_audit::event::AuditEvent {
        mandate_audit::event::AuditEvent::new(0, self.clock.now(), self.audit.node().clone(), kind)
    }

    /// Verifies a user token (a trusted issuer's, `config.users`) and refuses one issued
    /// before the user's sessions were revoked (`INVARIANT (a revoked session stays
    /// revoked)`, mandate-engine `Snapshot::user_token_revoked`). Every use of a user
    /// token goes through here. The cutoffs come from the snapshot while this node can
    /// show it current ([`Node::snapshot`], `INVARIANT (fresh or refused)`); otherwise
    /// (a failed refresh, or over a shared store a lost feed or an aged proof, when a
    /// cutoff another node wrote may be missing from it) from the store directly, and a
    /// store that cannot answer refuses the token (fail closed: a human act with a user
    /// token waits). Reading the held snapshot regardless let a cluster node whose feed
    /// was lost accept an approver's token after a Shared Signal ended their sessions on
    /// another node (adversarial pass atk8).
    pub fn verify_user_token(
        &self,
        token: &str,
        now: mandate_core::time::Timestamp,
    ) -> Result<mandate_token::user::VerifiedUser, mandate_token::user::UserTokenError> {
        let v = self.config.users.verify(token, now)?;
        let (issuer, sub, issued_at) = (&v.user.issuer, &v.user.sub, v.issued_at);
        let revoked = match self.snapshot() {
            Ok(s) => s.user_token_revoked(issuer, sub, issued_at),
            Err(_) => self.db.user_session_cutoffs().map_or(true, |list| {
                list.iter().any(|(i, s, t)| {
                    i == issuer && s == sub && issued_at.is_none_or(|x| x.secs() <= t.secs())
                })
            }),
        };
        if revoked {
            return Err(mandate_token::user::UserTokenError::SessionsRevoked);
        }
        Ok(v)
    }

    /// Applies the configured redaction to a request context before it is logged.
    pub fn redact(&self, context: &serde_json::Value) -> serde_json::Value {
        self.redactor.apply(context)
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Compiles a version's two parts; every problem of both when either fails.
pub(crate) fn compile_parts(
    fragments: &[String],
    policies: &str,
    rego: &RegoSource,
) -> Result<CompiledPolicies, Vec<mandate_policy::PolicyError>> {
    match (
        mandate_policy::compile(fragments, policies),
        mandate_policy::compile_rego(rego),
    ) {
        (Ok(c), Ok(r)) => Ok(c.with_rego(r)),
        (c, r) => Err(c
            .err()
            .unwrap_or_default()
            .into_iter()
            .chain(r.err().unwrap_or_default())
            .collect()),
    }
}

/// Compiles a stored version (its Rego part read back from its JSON).
fn compile_row(
    row: &PolicyVersionRow,
) -> Result<CompiledPolicies, Vec<mandate_policy::PolicyError>> {
    compile_parts(&row.fragments, &row.policies, &rego_of(row)?)
}

/// A stored version's Rego part (`""`: none).
pub fn rego_of(row: &PolicyVersionRow) -> Result<RegoSource, Vec<mandate_policy::PolicyError>> {
    if row.rego.is_empty() {
        return Ok(RegoSource::default());
    }
    serde_json::from_str(&row.rego).map_err(|e| {
        vec![mandate_policy::PolicyError {
            source: "rego".into(),
            line: None,
            column: None,
            message: format!("the stored Rego part does not read back: {e}"),
        }]
    })
}
