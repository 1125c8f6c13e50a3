//! Mandate's HTTP surface on one port: the OAuth 2.0 token service (token, introspection,
//! revocation, metadata, JWKS) and the `/v1/*` admin API.
//!
//! Handlers parse and check input (extract.rs), call the store through the one write
//! path (write_path.rs) and the domain acts (`mandate_service::acts`) on a blocking thread, and render
//! errors through one of the two error types (error.rs). HTTP is spoken here, by the
//! gateways, the webhooks and the client.

#![warn(missing_docs)]

pub use mandate_service::config::{MandateConfig, ServerConfig};
use mandate_service::{actor, acts, cache, snapshot_cell};
pub use mandate_service::{audit, bootstrap, keys};
mod admin;
/// The decision engine (`mandate-engine`), re-exported at its former paths.
pub use mandate_engine::{agent_index, decide};
mod agents;
mod anomalies;
mod approvals;
mod audit_api;
mod authorize;
pub(crate) mod caller;
pub mod detect;
mod dev;
pub mod error;
mod exchange;
mod extract;
pub mod gateway;
mod incidents;
mod mandates;
mod oauth;
mod policies;
#[cfg(test)]
mod routes_test;
mod token_endpoint;
mod unread;
pub mod webhook;
mod wellknown;
pub mod write_path;

pub use detect::DetectError;

use mandate_store::prelude::*;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use mandate_audit::redact::{Redactor, Rule};
use mandate_core::clock::Clock;
use mandate_core::random::Random;
use mandate_policy::CompiledPolicies;
use mandate_store::{Store, StoreError, Topic};

use crate::agent_index::AgentIndex;
use crate::audit::AuditLog;
use crate::decide::Snapshot;
use crate::error::{ApiError, StaleSnapshot};

pub use crate::mandates::sweep;

/// Everything a handler can reach.
pub struct AppState {
    /// The source of truth. Reached through [`AppState::store`] (the one write path); the
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
    /// Bounds concurrent Argon2id checks (19 MiB each): a flood of client-secret
    /// requests queues here, with a deadline, instead of exhausting memory and the
    /// blocking pool that store calls share.
    argon2_permits: Arc<tokio::sync::Semaphore>,
    /// What decisions read; swapped whole.
    snapshot: snapshot_cell::SnapshotCell,
    /// The compiled active policy set, kept across snapshot rebuilds of the same version.
    compiled: Mutex<Option<(i64, Arc<CompiledPolicies>)>>,
    /// Redaction of audit contexts.
    redactor: Redactor,
    /// Access tokens whose signature already verified.
    pub(crate) verified_tokens: cache::VerifiedTokens,
    /// Client secrets that already passed Argon2id.
    pub(crate) verified_secrets: cache::VerifiedSecrets,
    /// Bumped on every mandate change, so long-polling readers wake up.
    pub(crate) mandate_changes: tokio::sync::watch::Sender<u64>,
    /// Behavioural baselines and anomaly scoring (`None` when detection is off).
    pub(crate) detector: Option<mandate_detect::Detector>,
    /// The gateways' upstream secrets, decrypted (never returned by any API).
    pub(crate) secrets: gateway::SecretCache,
    /// Held by an act from its work until its audit event is queued, so acts are
    /// recorded in the order their changes were made (`INVARIANT (act order)`,
    /// `write_path.rs`).
    pub(crate) act_order: tokio::sync::Mutex<()>,
}

/// Why a stored policy version has no compiled policy set.
#[derive(Debug)]
pub(crate) enum VersionError {
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

impl AppState {
    /// Wires the state: opens the audit log (starting its writer) and loads the first
    /// decision snapshot. Argon2id concurrency is bounded by the CPU count.
    pub fn new(
        store: Arc<dyn Store>,
        keys: keys::KeyState,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        config: ServerConfig,
    ) -> Result<Self, StartError> {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let audit = AuditLog::open(
            Arc::clone(&store),
            Arc::clone(&clock),
            random.as_ref(),
            &config.audit_key_path,
            config.checkpoint,
        )?;
        let redactor = Redactor::new(config.redact.clone(), Rule::Keep, audit.redaction_key());
        let placeholder = Snapshot {
            agents: Default::default(),
            policies: None,
            policy_version: None,
            ring: keys.ring(),
            issuer: config.issuer.clone(),
            audiences: config.own_audiences(),
            max_token_lifetime_secs: i64::from(config.max_token_lifetime_secs),
            cutoffs: Default::default(),
            revoked: Default::default(),
            mandates: Default::default(),
        };
        let detector =
            detect::open(&config.detect, store.as_ref()).map_err(StartError::Snapshot)?;
        let memo_key: [u8; 32] = mandate_core::random::random_bytes(random.as_ref())
            .map_err(|e| StartError::Snapshot(e.to_string()))?;
        let state = Self {
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
            secrets: gateway::SecretCache::default(),
            act_order: tokio::sync::Mutex::new(()),
        };
        gateway::load_secrets(&state).map_err(|e| StartError::Snapshot(e.code().to_owned()))?;
        state
            .refresh()
            .map_err(|e| StartError::Snapshot(e.to_string()))?;
        Ok(state)
    }

    /// The store, through the one write path: a write that changes what decisions read
    /// refreshes the snapshot before it returns (`write_path.rs`).
    pub fn store(&self) -> write_path::Committing<'_> {
        write_path::Committing { state: self }
    }

    /// The snapshot decisions read now, or [`StaleSnapshot`] while the last refresh
    /// failed: everything that decides, authenticates an agent or checks a token goes
    /// through here, so none of it can act on a snapshot the store has moved past
    /// (`INVARIANT (fail closed on a stale snapshot)`, mandate-service snapshot_cell.rs).
    pub fn snapshot(&self) -> Result<Arc<Snapshot>, StaleSnapshot> {
        self.snapshot.get()
    }

    /// Fires after every snapshot rebuild, successful or failed (see
    /// `SnapshotCell::changes`).
    pub fn snapshot_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.snapshot.changes()
    }

    /// Whether decisions are held because the last refresh failed.
    pub fn is_stale(&self) -> bool {
        self.snapshot.is_stale()
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
    pub(crate) fn refresh(&self) -> Result<(), snapshot_cell::RefreshError> {
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

    /// [`AppState::refresh`] for what the snapshot holds outside the store (the signing
    /// key ring), without failing the caller's request: the change is in force either
    /// way, since the next decision either reads a snapshot that holds it or, if the
    /// refresh failed, is refused until one succeeds (the error is logged; the sweeper
    /// retries).
    pub(crate) fn refresh_after_write(&self) {
        let _ = self.refresh();
    }

    /// The next snapshot, read from the store; the agents of `previous` kept as they are
    /// unless `agents_changed` (see [`AppState::refresh`]).
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
                _ => Arc::new(read),
            };
            agents.insert(agent);
        })?;
        Ok(agents)
    }

    /// The compiled policy set of stored version `v`, from the one-version cache or
    /// compiled now and cached (so activating a version compiles it once, and the
    /// refresh that follows finds it).
    pub(crate) fn compiled_version(&self, v: i64) -> Result<Arc<CompiledPolicies>, VersionError> {
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
        let compiled = mandate_policy::compile(&row.fragments, &row.policies).map_err(|errs| {
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

    /// A draft audit event of `kind` (seq, time and node are set when it is written).
    pub(crate) fn event(&self, kind: &str) -> mandate_audit::event::AuditEvent {
        mandate_audit::event::AuditEvent::new(0, self.clock.now(), self.audit.node().clone(), kind)
    }

    /// Applies the configured redaction to a request context before it is logged.
    pub(crate) fn redact(&self, context: &serde_json::Value) -> serde_json::Value {
        self.redactor.apply(context)
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Runs store work (and Argon2) on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&AppState) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(ApiError::internal)
}

/// Every (method, path template) that [`router`] serves, in its order.
///
/// INVARIANT (surface): this list, the routes of [`router`] and the paths of
/// `docs/openapi.json` are the same set; `routes_test` checks both directions.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/oauth/authorize"),
    ("POST", "/oauth/authorize"),
    ("POST", "/oauth/token"),
    ("POST", "/oauth/introspect"),
    ("POST", "/oauth/revoke"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/v1/agents"),
    ("GET", "/v1/agents"),
    ("GET", "/v1/agents/{id}"),
    ("PATCH", "/v1/agents/{id}"),
    ("POST", "/v1/agents/{id}/suspend"),
    ("POST", "/v1/agents/{id}/resume"),
    ("POST", "/v1/agents/{id}/decommission"),
    ("POST", "/v1/agents/{id}/contain"),
    ("POST", "/v1/agents/{id}/credentials"),
    ("GET", "/v1/agents/{id}/credentials"),
    ("DELETE", "/v1/agents/{id}/credentials/{cid}"),
    ("POST", "/v1/agents/{id}/credentials/{cid}/rotate"),
    ("POST", "/v1/admin-tokens"),
    ("GET", "/v1/admin-tokens"),
    ("DELETE", "/v1/admin-tokens/{id}"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys/rotate"),
    ("POST", "/v1/tokens/{jti}/revoke"),
    ("POST", "/v1/authorize"),
    ("POST", "/v1/authorize/batch"),
    ("POST", "/v1/policies"),
    ("GET", "/v1/policies"),
    ("POST", "/v1/policies/validate"),
    ("POST", "/v1/policies/rollback"),
    ("GET", "/v1/policies/{version}"),
    ("POST", "/v1/policies/{version}/activate"),
    ("GET", "/v1/audit/events"),
    ("GET", "/v1/audit/events/{seq}/proof"),
    ("GET", "/v1/audit/consistency"),
    ("GET", "/v1/audit/checkpoints/latest"),
    ("GET", "/v1/audit/export"),
    ("POST", "/v1/mandates"),
    ("GET", "/v1/mandates"),
    ("GET", "/v1/mandates/{id}"),
    ("POST", "/v1/mandates/{id}/complete"),
    ("POST", "/v1/mandates/{id}/revoke"),
    ("GET", "/v1/approvals"),
    ("POST", "/v1/approvals/{id}/approve"),
    ("POST", "/v1/approvals/{id}/deny"),
    ("POST", "/v1/dev/user-tokens"),
    ("GET", "/v1/anomalies"),
    ("GET", "/v1/anomalies/{id}"),
    ("POST", "/v1/anomalies/{id}/acknowledge"),
    ("POST", "/v1/anomalies/{id}/dismiss"),
    ("GET", "/v1/agents/{id}/baseline"),
    ("GET", "/v1/gateway/secrets"),
    ("PUT", "/v1/gateway/secrets/{name}"),
    ("DELETE", "/v1/gateway/secrets/{name}"),
];

/// The whole HTTP surface.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route(
            "/oauth/authorize",
            get(oauth::authorize).post(oauth::authorize),
        )
        .route("/oauth/token", post(token_endpoint::token))
        .route("/oauth/introspect", post(oauth::introspect))
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/.well-known/jwks.json", get(wellknown::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(wellknown::metadata),
        )
        .route("/healthz", get(wellknown::healthz))
        .route("/readyz", get(wellknown::readyz))
        .route("/v1/agents", post(agents::register).get(agents::list))
        .route("/v1/agents/{id}", get(agents::show).patch(agents::update))
        .route("/v1/agents/{id}/suspend", post(agents::suspend))
        .route("/v1/agents/{id}/resume", post(agents::resume))
        .route("/v1/agents/{id}/decommission", post(agents::decommission))
        .route("/v1/agents/{id}/contain", post(incidents::contain))
        .route(
            "/v1/agents/{id}/credentials",
            post(agents::add_credential).get(agents::list_credentials),
        )
        .route(
            "/v1/agents/{id}/credentials/{cid}",
            delete(agents::revoke_credential),
        )
        .route(
            "/v1/agents/{id}/credentials/{cid}/rotate",
            post(agents::rotate_credential),
        )
        .route(
            "/v1/admin-tokens",
            post(admin::create_token).get(admin::list_tokens),
        )
        .route("/v1/admin-tokens/{id}", delete(admin::revoke_token))
        .route("/v1/keys", get(admin::list_keys))
        .route("/v1/keys/rotate", post(admin::rotate_keys))
        .route("/v1/tokens/{jti}/revoke", post(incidents::revoke_token))
        .route("/v1/authorize", post(authorize::authorize))
        .route("/v1/authorize/batch", post(authorize::authorize_batch))
        .route("/v1/policies", post(policies::add).get(policies::list))
        .route("/v1/policies/validate", post(policies::validate))
        .route("/v1/policies/rollback", post(policies::rollback))
        .route("/v1/policies/{version}", get(policies::show))
        .route("/v1/policies/{version}/activate", post(policies::activate))
        .route("/v1/audit/events", get(audit_api::events))
        .route("/v1/audit/events/{seq}/proof", get(audit_api::inclusion))
        .route("/v1/audit/consistency", get(audit_api::consistency))
        .route(
            "/v1/audit/checkpoints/latest",
            get(audit_api::latest_checkpoint),
        )
        .route("/v1/audit/export", get(audit_api::export))
        .route("/v1/mandates", post(mandates::request).get(mandates::list))
        .route("/v1/mandates/{id}", get(mandates::show))
        .route("/v1/mandates/{id}/complete", post(mandates::complete))
        .route("/v1/mandates/{id}/revoke", post(mandates::revoke))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/v1/approvals/{id}/deny", post(approvals::deny))
        .route("/v1/dev/user-tokens", post(dev::issue_user_token))
        .route("/v1/anomalies", get(anomalies::list))
        .route("/v1/anomalies/{id}", get(anomalies::show))
        .route(
            "/v1/anomalies/{id}/acknowledge",
            post(anomalies::acknowledge),
        )
        .route("/v1/anomalies/{id}/dismiss", post(anomalies::dismiss))
        .route("/v1/agents/{id}/baseline", get(anomalies::baseline))
        .route("/v1/gateway/secrets", get(gateway::list_secrets))
        .route(
            "/v1/gateway/secrets/{name}",
            axum::routing::put(gateway::put_secret).delete(gateway::delete_secret),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // The JSON extractors enforce the limit themselves (413 `body_too_large`), the OAuth
        // endpoints answer `invalid_request` (RFC 6749 has no size error); this is a backstop.
        .layer(DefaultBodyLimit::max(limit))
        .layer(wellknown::AccessLogLayer)
        .with_state(state)
}

/// Writes the detector's changed baselines to the store (the sweeper does this every
/// few seconds; call it once more at shutdown). Returns how many were written.
pub async fn flush_baselines(state: &Arc<AppState>) -> Result<usize, DetectError> {
    let s = Arc::clone(state);
    tokio::task::spawn_blocking(move || detect::flush(&s)).await?
}

/// Runs the mandate sweeper (see [`sweep`]) every second, and writes changed baselines
/// every five, until the runtime stops. A failure is logged and tried again later. While
/// the snapshot is stale (a refresh failed), each tick first tries the refresh again,
/// so decisions resume within a second of the store answering again.
pub fn spawn_sweeper(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        loop {
            tick.tick().await;
            ticks += 1;
            if state.is_stale() {
                // `refresh` logs the outcome either way.
                let _ = blocking(&state, AppState::refresh).await;
            }
            if ticks.is_multiple_of(5)
                && let Err(e) = flush_baselines(&state).await
            {
                tracing::warn!(error = %e, "baselines not written");
            }
            match sweep(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(n, "lapsed mandates written"),
                Err(e) => tracing::warn!(code = e.code(), "mandate sweep failed"),
            }
        }
    })
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

#[cfg(test)]
mod refresh_tests {
    use std::sync::Arc;

    use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
    use mandate_core::clock::ManualClock;
    use mandate_core::id::AgentId;
    use mandate_core::random::OsRandom;
    use mandate_core::time::Timestamp;
    use mandate_store::StoreError;
    use mandate_store::prelude::*;
    use mandate_store_sqlite::SqliteStore;

    use crate::AppState;
    use crate::keys::KeyState;

    const T0: i64 = 1_750_000_000;

    fn agent(i: usize) -> Agent {
        let labels = std::collections::BTreeMap::from([("team".to_owned(), format!("team-{i}"))]);
        Agent {
            id: AgentId::parse(&format!("agt_01JA{i:022}")).unwrap(),
            name: AgentName::try_from(format!("agent-{i}")).unwrap(),
            owner: Owner::try_from("alice@example.com".to_owned()).unwrap(),
            purpose: Purpose::try_from("refresh test".to_owned()).unwrap(),
            labels: Labels::try_from(labels).unwrap(),
            boundary: Boundary::default(),
            status: AgentStatus::Active,
            status_reason: None,
            created_at: Timestamp::from_secs(T0),
            updated_at: Timestamp::from_secs(T0),
        }
    }

    fn state(dir: &tempfile::TempDir) -> AppState {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("mandate.db")).unwrap());
        let clock = Arc::new(ManualClock::at_millis(T0 * 1000));
        let keys =
            KeyState::open(store.as_ref(), &dir.path().join("keys"), &*clock, &OsRandom).unwrap();
        let config = crate::routes_test::unit_test_config(dir.path());
        AppState::new(store, keys, clock, Arc::new(OsRandom), config).unwrap()
    }

    /// INVARIANT (one write path): a write through `AppState::store()` is in the snapshot
    /// when it returns, with no refresh called by its caller; a write to what decisions
    /// do not read (a credential) rebuilds nothing; and a write that reached the store
    /// some other way is read by the next rebuild, because the change feed names it.
    #[test]
    fn a_write_is_in_the_snapshot_when_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir);
        let now = Timestamp::from_secs(T0);
        let a = agent(0);
        s.store().insert_agent(&a).unwrap();
        assert!(s.snapshot().unwrap().agents.get(&a.id).is_some());
        s.store()
            .modify_agent(&a.id, now, |x| {
                x.status = AgentStatus::Suspended;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let held = s.snapshot().unwrap();
        assert_eq!(
            held.agents.get(&a.id).unwrap().status,
            AgentStatus::Suspended
        );

        let rebuilds = s.snapshot_changes();
        let before = *rebuilds.borrow();
        let credential = mandate_core::credential::Credential {
            id: mandate_core::id::CredentialId::parse("crd_01JA0000000000000000000000").unwrap(),
            agent_id: a.id.clone(),
            kind: mandate_core::credential::CredentialKind::ClientSecret,
            public_jwk: None,
            key_id: None,
            created_at: now,
            expires_at: None,
            revoked_at: None,
            replaced_by: None,
        };
        s.store()
            .insert_credential(&credential, Some("$argon2id$not-checked-here"))
            .unwrap();
        assert_eq!(
            *rebuilds.borrow(),
            before,
            "a credential is not in the snapshot"
        );

        let b = agent(1);
        s.db.insert_agent(&b).unwrap();
        assert!(
            s.snapshot().unwrap().agents.get(&b.id).is_none(),
            "not through the write path"
        );
        s.refresh().unwrap();
        assert!(
            s.snapshot().unwrap().agents.get(&b.id).is_some(),
            "the feed named agents"
        );
    }

    /// INVARIANT (fail closed on a stale snapshot): a refresh that fails holds every
    /// reader of the snapshot until one succeeds. The failure here is an active policy
    /// version that does not compile, written straight to the store.
    #[test]
    fn a_failed_refresh_holds_the_snapshot_until_one_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir);
        s.store().insert_agent(&agent(0)).unwrap();
        s.refresh().unwrap();
        assert!(!s.is_stale() && s.snapshot().is_ok());

        let at = Timestamp::from_secs(T0);
        let broken = s
            .store()
            .insert_policy_version(
                "permit (principal, action, resource) when { nonsense",
                &[],
                "broken",
                at,
                "test",
            )
            .unwrap();
        s.store()
            .activate_policy_version(broken, at, "test")
            .unwrap();
        assert!(s.refresh().is_err());
        assert!(s.is_stale());
        assert!(s.snapshot().is_err(), "no reader gets the older snapshot");
        assert!(s.refresh().is_err(), "still failing, still held");
        assert!(s.snapshot().is_err());

        let fixed = s
            .store()
            .insert_policy_version(
                "permit (principal, action, resource);",
                &[],
                "fixed",
                at,
                "test",
            )
            .unwrap();
        s.store()
            .activate_policy_version(fixed, at, "test")
            .unwrap();
        s.refresh().unwrap();
        assert!(!s.is_stale());
        let snapshot = s.snapshot().expect("held no longer");
        assert_eq!(snapshot.policy_version, Some(fixed));
        assert_eq!(snapshot.agents.len(), 1);
    }

    /// INVARIANT (snapshot): a suspension made in the same second as the agent's last
    /// change (so `updated_at` does not move) is in the snapshot after `refresh`, and
    /// only the changed agent is a new allocation.
    #[test]
    fn refresh_reuses_unchanged_agents_and_never_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir);
        for i in 0..3 {
            s.store().insert_agent(&agent(i)).unwrap();
        }
        s.refresh().unwrap();
        let before = s.snapshot().unwrap();
        assert_eq!(before.agents.len(), 3);

        let (a0, a1) = (agent(0).id, agent(1).id);
        s.store()
            .modify_agent(&a1, Timestamp::from_secs(T0), |a| {
                a.status = AgentStatus::Suspended;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        s.store().insert_agent(&agent(3)).unwrap();
        s.refresh().unwrap();
        let after = s.snapshot().unwrap();

        assert_eq!(after.agents.len(), 4);
        assert_eq!(
            after.agents.get(&a1).map(|a| (a.status, a.updated_at)),
            Some((AgentStatus::Suspended, Timestamp::from_secs(T0)))
        );
        let shared = |id: &AgentId| {
            Arc::ptr_eq(
                before.agents.get_shared(id).unwrap(),
                after.agents.get_shared(id).unwrap(),
            )
        };
        assert!(
            shared(&a0) && shared(&agent(2).id),
            "unchanged agents are shared"
        );
        assert!(!shared(&a1), "the changed agent is read anew");
        assert_eq!(after.agents.get(&agent(3).id), Some(&agent(3)));
    }
}
