//! `mandate serve`: prepares the data directory (database, signing key, bootstrap token),
//! binds, prints where it listens and what to try next, and serves until SIGTERM/Ctrl-C,
//! letting in-flight requests finish.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::sync::Arc;

use anyhow::{Context, bail};
use mandate_audit::event::NodeName;
use mandate_audit::redact::Rule;
use mandate_core::clock::{Clock, SystemClock};
use mandate_core::id::new_ulid;
use mandate_core::random::{OsRandom, Random};
use mandate_http::audit::CheckpointPolicy;
use mandate_http::bootstrap::{self, Bootstrap};
use mandate_http::detect::DetectSettings;
use mandate_http::keys::{KeyFiles, KeyState};
use mandate_http::webhook::WebhookConfig;
use mandate_http::{MandateConfig, Node, ServerConfig};
use mandate_store::{Store, keyfile};
use mandate_store_postgres::PostgresStore;
use mandate_store_sqlite::SqliteStore;
use mandate_token::keys::SigningKey;
use mandate_token::secret;
use mandate_token::user::{ClaimNames, DevUserIssuer, TrustedIssuer, TrustedIssuers};

use crate::config::ServeConfig;
use crate::devmode;

fn supplied_bootstrap(
    cfg: &ServeConfig,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<Option<secret::Secret>> {
    let token = if let Some(t) = env.get("MANDATE_BOOTSTRAP_TOKEN") {
        t.clone()
    } else if let Some(path) = &cfg.bootstrap_token_file {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading bootstrap token file {}", path.display()))?
            .trim_end_matches(['\r', '\n'])
            .to_owned()
    } else {
        return Ok(None);
    };
    if token.len() < bootstrap::MIN_SUPPLIED_LEN
        || token.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        bail!(
            "a supplied bootstrap token must be at least {} characters without whitespace",
            bootstrap::MIN_SUPPLIED_LEN
        );
    }
    Ok(Some(secret::supplied(token)))
}

/// How to call this binary from a shell: `mandate` when the first `mandate` on the
/// `PATH` is this executable, else its full path.
fn cli_name() -> String {
    let Ok(me) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "mandate".to_owned();
    };
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("mandate"))
            .find(|c| c.is_file())
    });
    match on_path.and_then(|c| std::fs::canonicalize(c).ok()) {
        Some(c) if c == me => "mandate".to_owned(),
        _ => me.display().to_string(),
    }
}

/// SIGTERM and SIGINT, listened for from when this is made: a signal that arrives before
/// the server is up (a supervisor stopping it right after its banner) is held, not
/// delivered with its default action, so the server still stops gracefully and seals its
/// audit log. (Before, the listeners were made on the first poll of the serve loop, and a
/// SIGTERM in between killed the process outright.)
struct StopSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn listen() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Resolves at the first SIGTERM or SIGINT.
    async fn recv(mut self) {
        tokio::select! {
            () = next(self.term.as_mut()) => {},
            () = next(self.int.as_mut()) => {},
        }
        tracing::info!("shutdown requested; finishing in-flight requests");
    }
}

/// The next delivery of `signal`; never, when it could not be listened for.
async fn next(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// A webhook (approvals or alerts), with its secret read from its file.
fn webhook(
    url: Option<&String>,
    file: Option<&std::path::PathBuf>,
    tls: &crate::outbound::TargetTls,
) -> anyhow::Result<Option<WebhookConfig>> {
    let (Some(url), Some(file)) = (url, file) else {
        return Ok(None);
    };
    let secret = std::fs::read_to_string(file)
        .with_context(|| format!("reading the webhook secret {}", file.display()))?;
    let secret = secret.trim();
    anyhow::ensure!(
        secret.len() >= 24,
        "the webhook secret in {} must be at least 24 characters",
        file.display()
    );
    Ok(Some(WebhookConfig {
        url: url.clone(),
        secret: secret.as_bytes().to_vec(),
        tls: tls.settings(),
    }))
}

/// The gateways' router (HTTP routes and the MCP endpoint) over the decision path.
fn gateway_router(
    cfg: &ServeConfig,
    addr: std::net::SocketAddr,
    state: &Arc<Node>,
) -> anyhow::Result<axum::Router> {
    use mandate_gateway::http::{Credential, HttpConfig, Route, Template};
    use mandate_gateway::mcp::{McpConfig, McpServer};
    let public_url = cfg.gateway_public_url.clone().unwrap_or_else(|| {
        let scheme = crate::tls_in::scheme(&cfg.tls, crate::tls_in::Listener::Gateway);
        format!("{scheme}://{addr}")
    });
    let mut routes = Vec::new();
    for r in &cfg.gateway_routes {
        let t =
            |s: &str| Template::parse(s).with_context(|| format!("gateway route `{}`", r.prefix));
        anyhow::ensure!(
            r.prefix.starts_with('/') && !r.prefix.ends_with('/') && r.prefix != "/mcp",
            "gateway route `{}`: a prefix starts with `/`, does not end with one and is not `/mcp`",
            r.prefix
        );
        anyhow::ensure!(
            r.upstream.starts_with("http://") && mandate_core::uri::is_absolute_uri(&r.upstream),
            "gateway route `{}`: upstream must be an http:// URL (outbound TLS is not built yet)",
            r.prefix
        );
        let mut actions = std::collections::BTreeMap::new();
        for (m, a) in &r.actions {
            actions.insert(m.to_ascii_uppercase(), t(a)?);
        }
        if let Some(a) = &r.action {
            actions.insert("*".to_owned(), t(a)?);
        }
        anyhow::ensure!(
            !actions.is_empty(),
            "gateway route `{}`: no action",
            r.prefix
        );
        let mut context = std::collections::BTreeMap::new();
        for (k, v) in &r.context {
            context.insert(k.clone(), t(v)?);
        }
        let mut resource_attributes = std::collections::BTreeMap::new();
        for (k, v) in &r.resource_attributes {
            // What a policy can name as `resource.<name>`: a Cedar identifier.
            let ident = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            anyhow::ensure!(
                ident,
                "gateway route `{}`: resource attribute `{}` must be a name of ASCII \
                 letters, digits and `_`, not starting with a digit",
                r.prefix,
                k.escape_debug()
            );
            resource_attributes.insert(k.clone(), t(v)?);
        }
        let credential = match (&r.credential_secret, &r.credential_header) {
            (None, None) => None,
            (Some(secret), None) => Some(Credential::Bearer {
                secret: secret.clone(),
            }),
            (Some(secret), Some(h)) => Some(Credential::Header {
                name: h
                    .parse()
                    .with_context(|| format!("gateway route `{}`: header `{h}`", r.prefix))?,
                secret: secret.clone(),
            }),
            (None, Some(_)) => anyhow::bail!(
                "gateway route `{}`: `credential_header` needs `credential_secret`",
                r.prefix
            ),
        };
        routes.push(Route {
            prefix: r.prefix.clone(),
            upstream: r.upstream.trim_end_matches('/').to_owned(),
            actions,
            resource_type: r.resource_type.clone(),
            resource_id: t(&r.resource_id)?,
            context,
            resource_attributes,
            credential,
            tls: r.tls().settings(),
        });
    }
    let authz: Arc<dyn mandate_gateway::authz::Authorizer> = Arc::new(
        mandate_http::gateway::GatewayAuthorizer::new(Arc::clone(state)),
    );
    let timeout = std::time::Duration::from_secs(cfg.gateway_timeout_secs);
    let http_config = HttpConfig {
        public_url: public_url.clone(),
        routes,
        timeout,
        max_body_bytes: cfg.gateway_max_body_bytes,
        body_timeout: std::time::Duration::from_secs(cfg.gateway_body_timeout_secs),
    };
    // Validates the routes and builds the upstream client; either failing stops the
    // start (the gateway fails closed).
    // One budget for the bytes both gateways buffer from request bodies.
    let body_budget = mandate_gateway::budget::BodyBudget::new(cfg.gateway_max_buffered_bytes);
    let http = mandate_gateway::http::router_with(
        http_config,
        Arc::clone(&authz),
        Arc::clone(&state.clock),
        body_budget.clone(),
    )
    .context("the gateway's HTTP routes")?;
    let mcp_config = McpConfig {
        public_url,
        servers: cfg
            .gateway_mcp
            .iter()
            .map(|m| McpServer {
                name: m.name.clone(),
                url: m.url.clone(),
                tls: m.tls().settings(),
            })
            .collect(),
        timeout,
        max_body_bytes: cfg.gateway_max_body_bytes,
        body_timeout: std::time::Duration::from_secs(cfg.gateway_body_timeout_secs),
        stream_idle_timeout: std::time::Duration::from_secs(cfg.gateway_stream_idle_secs),
        session_idle_timeout: mandate_gateway::mcp::SESSION_IDLE,
        clock: Arc::clone(&state.clock),
        body_budget,
    };
    mcp_config
        .validate()
        .context("the gateway's MCP configuration")?;
    let mcp = mandate_gateway::mcp::router(mcp_config, authz);
    Ok(mcp.merge(http))
}

/// The trusted user-token issuers, plus the development issuer when enabled (its key
/// is kept in the data dir, mode 0600; its issuer is `<issuer>/dev-users`).
fn user_issuers(
    cfg: &ServeConfig,
    issuer: &str,
    random: &dyn Random,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<(TrustedIssuers, Option<DevUserIssuer>)> {
    let mut list = Vec::new();
    for t in &cfg.trusted_issuers {
        let defaults = ClaimNames::default();
        let claims = ClaimNames {
            user: t.user_claim.clone().unwrap_or(defaults.user),
            groups: t.groups_claim.clone().unwrap_or(defaults.groups),
            email: t.email_claim.clone().unwrap_or(defaults.email),
        };
        let Some(file) = &t.jwks_file else {
            // `jwks_uri` or discovery: keys fetched from now on (docs/running.md).
            let trusted = TrustedIssuer::fetched(&t.issuer, &t.audience, &t.algorithms, claims)
                .with_context(|| format!("trusted issuer {}", t.issuer))?;
            if let Some(cell) = trusted.key_cell() {
                spawn_jwks(t, cell, Arc::clone(clock))?;
            }
            list.push(trusted);
            continue;
        };
        let jwks = std::fs::read_to_string(file)
            .with_context(|| format!("reading {} for {}", file.display(), t.issuer))?;
        list.push(
            TrustedIssuer::new(&t.issuer, &t.audience, &jwks, &t.algorithms, claims)
                .with_context(|| format!("trusted issuer {}", t.issuer))?,
        );
    }
    let dev = if cfg.dev_user_tokens {
        let path = cfg.data_dir.join("dev-user-issuer.pem");
        let key = if path.exists() {
            SigningKey::from_pkcs8_pem(&keyfile::read_private(&path)?)?
        } else {
            let k = SigningKey::generate(random)?;
            keyfile::write_private(&path, &k.to_pkcs8_pem()?)?;
            k
        };
        tracing::warn!("the development user issuer is on: any admin token can mint user tokens");
        let d = DevUserIssuer::new(key, format!("{issuer}/dev-users"), issuer.to_owned());
        list.push(d.trusted()?);
        Some(d)
    } else {
        None
    };
    Ok((TrustedIssuers::new(list)?, dev))
}

/// Starts fetching the keys of `t` (a `jwks_uri` or discovery issuer) into `cell`.
fn spawn_jwks(
    t: &crate::config::IssuerConfig,
    cell: std::sync::Arc<mandate_token::user::KeyCell>,
    clock: std::sync::Arc<dyn mandate_core::clock::Clock>,
) -> anyhow::Result<()> {
    use mandate_http::jwks_fetch as f;
    use std::time::Duration;
    let Some((key, url)) = crate::config::jwks_source(t).map_err(anyhow::Error::msg)? else {
        return Ok(());
    };
    let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
    let source = f::JwksSource {
        issuer: t.issuer.clone(),
        url,
        discovery: key == "issuer",
        tls: t.tls().settings(),
        allow_http: t.allow_http,
        max_stale: secs(t.jwks_max_stale_secs, f::DEFAULT_MAX_STALE),
        refetch_min: secs(t.jwks_refetch_min_secs, f::DEFAULT_REFETCH_MIN),
        refresh_min: secs(t.jwks_refresh_min_secs, f::DEFAULT_REFRESH_MIN),
    };
    f::spawn(source, cell, clock).map_err(anyhow::Error::msg)?;
    Ok(())
}

/// The Shared Signals transmitters (`[[ssf.transmitters]]`) whose SETs this node acts
/// on; by default each must name Mandate's issuer URL as the SETs' audience and speaks
/// for its own users.
fn ssf_transmitters(
    cfg: &ServeConfig,
    issuer: &str,
) -> anyhow::Result<mandate_http::ssf::Transmitters> {
    let mut list = Vec::new();
    let mut users_issuer = std::collections::HashMap::new();
    for t in &cfg.ssf_transmitters {
        let jwks = std::fs::read_to_string(&t.jwks_file).with_context(|| {
            format!(
                "reading {} for transmitter {}",
                t.jwks_file.display(),
                t.issuer
            )
        })?;
        let audience = t.audience.clone().unwrap_or_else(|| issuer.to_owned());
        list.push(
            TrustedIssuer::new(
                &t.issuer,
                &audience,
                &jwks,
                &t.algorithms,
                ClaimNames::default(),
            )
            .with_context(|| format!("ssf transmitter {}", t.issuer))?,
        );
        if let Some(u) = &t.users_issuer {
            users_issuer.insert(t.issuer.clone(), u.clone());
        }
    }
    Ok(mandate_http::ssf::Transmitters {
        verifiers: TrustedIssuers::new(list).context("ssf transmitters")?,
        users_issuer,
    })
}

/// The change feed's heartbeat for a node refusing decisions after `max_staleness`
/// without a proof: four heartbeats fit in it, so one or two lost ones cost nothing.
fn heartbeat(max_staleness: std::time::Duration) -> std::time::Duration {
    (max_staleness / 4).max(std::time::Duration::from_millis(50))
}

/// This node's id on a PostgreSQL store: `cluster.node_id` if given, else the one in
/// the data dir's `node-id` file, which the first start makes (`node-` and a lowercase
/// ULID, so ids of different data dirs never meet). Read after the data dir is locked,
/// so two starts on one dir cannot make two ids.
fn node_id(
    cfg: &ServeConfig,
    dir: &std::path::Path,
    clock: &dyn Clock,
    random: &dyn Random,
) -> anyhow::Result<String> {
    if let Some(id) = &cfg.cluster_node_id {
        return Ok(id.clone());
    }
    let path = dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            NodeName::new(id)
                .with_context(|| format!("reading the node id in {}", path.display()))?;
            Ok(id.to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let ulid = new_ulid(clock, random).map_err(|e| anyhow::anyhow!("{e}"))?;
            let id = format!("node-{}", ulid.to_ascii_lowercase());
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            writeln!(f, "{id}")
                .and_then(|()| f.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The store `cfg` names: PostgreSQL at `store.url` (as this node, registered), else
/// the SQLite file in `dir`.
fn open_store(
    cfg: &ServeConfig,
    dir: &std::path::Path,
    clock: &dyn Clock,
    random: &dyn Random,
) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = &cfg.store_url {
        // The data dir still holds this node's keys, audit key, lock and id; the store
        // is the database, shared with the other nodes.
        let id = node_id(cfg, dir, clock, random)?;
        let pg = PostgresStore::connect(url.expose(), &id)
            .context("opening the PostgreSQL store (store.url)")?;
        // INVARIANT (one process per node id), set in `PostgresStore::register`: a
        // second `mandate serve` with this id on the database is refused here, before
        // it writes anything; nodes with other ids serve beside it.
        pg.register(clock.now())
            .with_context(|| format!("registering node `{id}` on the PostgreSQL store"))?;
        tracing::info!(node = %id, "node registered");
        // Other nodes' writes reach this node from here on; until the first heartbeat
        // comes back, it refuses decisions (`INVARIANT (fresh or refused)`).
        pg.start_feed(heartbeat(cfg.cluster_max_staleness));
        return Ok(Arc::new(pg));
    }
    let db = dir.join("mandate.db");
    // Create the database file owner-only before SQLite does; its -wal/-shm files copy the mode.
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&db)
        .with_context(|| format!("creating {}", db.display()))?;
    Ok(Arc::new(
        SqliteStore::open(&db).context("opening the database")?,
    ))
}

pub async fn run(mut cfg: ServeConfig, env: &BTreeMap<String, String>) -> anyhow::Result<()> {
    // First, so a stop asked for during start-up ends it gracefully (see `StopSignals`).
    let stop_signals = StopSignals::listen();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let random: Arc<dyn Random> = Arc::new(OsRandom);
    // Every listener's certificate, checked before the data dir is touched (a bad one
    // refuses the start before a first start's bootstrap token is made and could be
    // lost unprinted; `tls_in`).
    let tls = crate::tls_in::Served::load(&cfg.tls, clock.as_ref())?;
    // `--dev` without a data dir given: a fresh temporary one, removed when `run` ends
    // (declared first, so dropped last: after the store and the audit log are closed).
    let temp_dir = if cfg.dev && !cfg.data_dir_given {
        let t = devmode::TempDataDir::create(random.as_ref())?;
        cfg.data_dir = t.path().to_owned();
        Some(t)
    } else {
        None
    };
    let mut supplied = supplied_bootstrap(&cfg, env)?;
    // `--dev`: a new admin token at every start (it replaces the last one), printed,
    // unless the operator supplied one; either way the demo is set up with it.
    let dev_admin = if cfg.dev {
        let text = match &supplied {
            Some(t) => t.expose().to_owned(),
            None => secret::new_admin_token(random.as_ref())
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .expose()
                .to_owned(),
        };
        supplied = Some(secret::supplied(text.clone()));
        Some(text)
    } else {
        None
    };

    let dir = &cfg.data_dir;
    // A first start: no SQLite file yet, or (the store in PostgreSQL) no data dir yet.
    let first_start = if cfg.store_url.is_some() {
        !dir.exists()
    } else {
        !dir.join("mandate.db").exists()
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting data dir {}", dir.display()))?;
    // INVARIANT (one server per data dir): this process is the database's only writer.
    // The agent snapshot and the credentials generation (mandate-store) rely on it to
    // make a suspension or a credential revocation hold on the very next request; a
    // second `mandate serve` on the same directory is refused here. The lock is the
    // kernel's (flock), held by `lock` for the whole of `run`, and it ends with the
    // process, however it ends.
    let lock_path = dir.join("mandate.lock");
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("creating {}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "data dir {} is in use by another `mandate serve`",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", lock_path.display()));
        }
    }
    if cfg.dev {
        devmode::claim_data_dir(dir, first_start)?;
    }
    let store = open_store(&cfg, dir, clock.as_ref(), random.as_ref())?;
    tracing::info!(store = %store.describe(), "store open");
    let mut key_files = KeyFiles::in_data_dir(dir);
    if let Some(f) = &cfg.store_key_file {
        key_files.store_key = f.clone();
    }
    let keys = KeyState::open_signing_as(
        store.as_ref(),
        &key_files,
        clock.as_ref(),
        random.as_ref(),
        cfg.token_signing_alg,
    )
    .context("loading signing keys")?;
    let boot = bootstrap::ensure(store.as_ref(), supplied, clock.as_ref(), random.as_ref())
        .context("bootstrap token")?;

    let tls_clock = Arc::clone(&clock);
    let scheme = |l| crate::tls_in::scheme(&cfg.tls, l);
    let api_scheme = scheme(crate::tls_in::Listener::Api);
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let gateway_listener = match cfg.gateway_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding the gateway on {a}"))?,
        ),
        None => None,
    };
    let opa_listener = match cfg.opa_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding the OPA-compatible API on {a}"))?,
        ),
        None => None,
    };
    let metrics_listener = match cfg.metrics_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding the metrics listener on {a}"))?,
        ),
        None => None,
    };
    // The process's one metrics recorder: what the service counts from here on is
    // rendered by `GET /metrics` (the API, and `metrics.listen`).
    let exposition = mandate_http::metrics::install().context("installing the metrics recorder")?;
    let issuer = cfg
        .issuer
        .clone()
        .unwrap_or_else(|| format!("{api_scheme}://{addr}"));
    if cfg.issuer.is_none() && addr.ip().is_unspecified() {
        tracing::warn!(
            "listening on all interfaces without `issuer` set; tokens will name {issuer}"
        );
    }
    let (users, dev_users) = user_issuers(&cfg, &issuer, random.as_ref(), &clock)?;
    let config = ServerConfig {
        default_audience: cfg
            .token_default_audience
            .clone()
            .unwrap_or_else(|| issuer.clone()),
        issuer: issuer.clone(),
        default_token_lifetime_secs: cfg.token_default_lifetime_secs,
        max_token_lifetime_secs: cfg.token_max_lifetime_secs,
        max_body_bytes: cfg.http_max_body_bytes,
        audit_key_path: dir.join("audit-key.pem"),
        checkpoint: CheckpointPolicy {
            every_events: cfg.audit_checkpoint_every_events,
            every_secs: cfg.audit_checkpoint_every_secs,
        },
        redact: cfg
            .audit_redact_hash
            .iter()
            .map(|f| (f.clone(), Rule::Hash))
            .chain(
                cfg.audit_redact_drop
                    .iter()
                    .map(|f| (f.clone(), Rule::Drop)),
            )
            .collect(),
        mandates: MandateConfig {
            approval_timeout_secs: cfg.approval_timeout_secs,
            max_lifetime_secs: cfg.mandate_max_lifetime_secs,
            max_delegation_depth: cfg.delegation_max_depth,
            approver_group: cfg.approver_group.clone(),
            webhook: webhook(
                cfg.approval_webhook_url.as_ref(),
                cfg.approval_webhook_secret_file.as_ref(),
                &cfg.webhook_tls.approvals,
            )?,
        },
        users: Arc::new(users),
        dev_users: dev_users.map(Arc::new),
        detect: DetectSettings {
            enabled: cfg.detect_enabled,
            config: cfg.detect.clone(),
            alerts: webhook(
                cfg.detect_alert_webhook_url.as_ref(),
                cfg.detect_alert_webhook_secret_file.as_ref(),
                &cfg.webhook_tls.alerts,
            )?,
        },
        max_staleness: cfg.cluster_max_staleness,
        dpop: cfg.dpop,
        client_certs: crate::tls_in::client_cert_auth(&cfg.tls)?,
        reviews: mandate_http::ReviewConfig {
            suspend_overdue: cfg.reviews_suspend_overdue,
        },
        ssf: Arc::new(ssf_transmitters(&cfg, &issuer)?),
    };
    let state = Arc::new(
        Node::new(
            store,
            keys,
            clock,
            random,
            config,
            Arc::new(mandate_http::webhook::Signed),
        )
        .context("opening the audit log")?,
    );
    // Over PostgreSQL: keeps this node in step with the others, and proves it (a single
    // node's store needs neither; nothing starts).
    let _follower = mandate_http::follow::spawn_follower(&state);
    // OpenTelemetry spans (issue 23): off unless `telemetry.otlp_endpoint` is set.
    if let Some(endpoint) = &cfg.telemetry_otlp_endpoint {
        mandate_http::otlp::install(mandate_http::otlp::OtlpConfig {
            endpoint: endpoint.clone(),
            service_name: cfg.telemetry_service_name.clone(),
            instance: state.audit.node().to_string(),
            sampling_ratio: cfg.telemetry_sampling_ratio,
            tls: cfg.webhook_tls.otlp.settings(),
        })
        .context("starting the OTLP span exporter")?;
    }
    let sweeper = mandate_http::spawn_sweeper(Arc::clone(&state));
    mandate_http::export::spawn(&state, export_transports(&cfg, &state)?);
    // Scheduled discovery (`[[discovery.sources]]`): runs on the node that leads.
    mandate_http::discovery::spawn(&state, discovery_sources(&cfg)?);
    // Shared Signals streams receivers make at run time: one loop each (docs/ssf.md).
    mandate_http::ssf_streams::spawn(&state, Arc::new(mandate_http::export_http::StreamPush));
    let gateway = match gateway_listener {
        Some(l) => {
            let gaddr = l.local_addr()?;
            let router = gateway_router(&cfg, gaddr, &state)?;
            Some((l, gaddr, router))
        }
        None => None,
    };

    let demo = match &dev_admin {
        Some(admin) => Some(
            devmode::provision(&mandate_http::router(Arc::clone(&state)), admin)
                .await
                .context("setting up --dev")?,
        ),
        None => None,
    };

    let mut out = std::io::stdout().lock();
    if demo.is_some() {
        writeln!(out, "{}", devmode::WARNING)?;
    }
    writeln!(
        out,
        "Mandate {} listening on {api_scheme}://{addr}",
        env!("CARGO_PKG_VERSION")
    )?;
    writeln!(
        out,
        "data dir: {}{}",
        dir.display(),
        if temp_dir.is_some() {
            " (temporary: removed when the server stops)"
        } else if first_start {
            " (created)"
        } else {
            ""
        }
    )?;
    let mut exports = format!("MANDATE_ADDR={api_scheme}://{addr}");
    match (&boot, &dev_admin, &demo) {
        (_, Some(admin), Some(demo)) => {
            writeln!(
                out,
                "\nAdmin token (new at every --dev start):\n\n    {admin}\n"
            )?;
            writeln!(
                out,
                "Demo agent `demo-agent` (labels team=sales, role=billing; a new secret at \
                 every start):\n    client id:     {}\n    client secret: {}",
                demo.agent, demo.secret
            )?;
            match demo.policy_version {
                Some(v) => writeln!(
                    out,
                    "Policies: examples/crm, examples/mcp, examples/billing (version {v}, active)"
                )?,
                None => writeln!(
                    out,
                    "Policies: as the data dir holds them (left as they are)"
                )?,
            }
            if cfg.dev_user_tokens {
                writeln!(
                    out,
                    "User tokens: {} dev issue-user-token --sub alice --group finance",
                    cli_name()
                )?;
            }
            exports.push_str(&format!(
                " MANDATE_TOKEN={admin} DEMO_AGENT={} DEMO_SECRET={}",
                demo.agent, demo.secret
            ));
            writeln!(out)?;
        }
        (Bootstrap::Created(t), _, _) => {
            writeln!(
                out,
                "\nAdmin bootstrap token (shown only this once; store it safely):\n\n    {}\n",
                t.expose()
            )?;
            exports.push_str(" MANDATE_TOKEN=<the token above>");
        }
        (Bootstrap::Supplied, _, _) => exports.push_str(" MANDATE_TOKEN=<your bootstrap token>"),
        (Bootstrap::Existing, _, _) => {
            exports.push_str(" MANDATE_TOKEN=<the bootstrap token printed at first start>")
        }
    }
    writeln!(out, "Next, in another shell:")?;
    writeln!(out, "    export {exports}")?;
    // The CLI is this very binary; name it by its path unless `mandate` on the PATH is
    // it, so the suggested command works as printed (a fresh clone has no `mandate` on
    // the PATH).
    writeln!(
        out,
        "    {} agent register --name my-agent --owner you@example.com",
        cli_name()
    )?;
    if let Some(l) = &opa_listener {
        writeln!(
            out,
            "OPA-compatible API (Data, Policy, Health) on {}://{}",
            scheme(crate::tls_in::Listener::Opa),
            l.local_addr()?
        )?;
    }
    if let Some(l) = &metrics_listener {
        writeln!(
            out,
            "metrics on {}://{}/metrics",
            scheme(crate::tls_in::Listener::Metrics),
            l.local_addr()?
        )?;
    }
    if let Some((_, gaddr, _)) = &gateway {
        writeln!(
            out,
            "gateway on {}://{gaddr}",
            scheme(crate::tls_in::Listener::Gateway)
        )?;
        // `--dev`: where each gateway resource is, as a token must name it.
        if demo.is_some() {
            let base = cfg.gateway_public_url.clone().unwrap_or_else(|| {
                format!("{}://{gaddr}", scheme(crate::tls_in::Listener::Gateway))
            });
            for r in &cfg.gateway_routes {
                writeln!(
                    out,
                    "    HTTP route {base}{} (a token for it: -d resource={base}{})",
                    r.prefix, r.prefix
                )?;
            }
            if !cfg.gateway_mcp.is_empty() {
                writeln!(
                    out,
                    "    MCP endpoint {base}/mcp (a token for it: -d resource={base}/mcp)"
                )?;
            }
        }
    }
    out.flush()?;
    drop(out);
    drop(boot);
    drop(dev_admin);

    tracing::info!(%addr, %issuer, "serving");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let limits = crate::listen::Limits::for_this_process(
        cfg.limits.header_read_timeout,
        cfg.limits.max_connections,
    );
    // One throttle for every listener that takes admin tokens or client credentials.
    let guard = mandate_http::throttle::GuardLayer(Arc::new(mandate_http::throttle::Abuse {
        throttle: mandate_http::throttle::Throttle::new(cfg.limits.throttle),
        body_read_timeout: cfg.limits.body_read_timeout,
        trusted_proxies: cfg.limits.trusted_proxies.clone(),
    }));
    tracing::info!(
        max_connections = limits.max_connections,
        header_read_timeout_secs = limits.header_read_timeout.as_secs(),
        "listener limits"
    );
    let acceptor = |l| tls.acceptor(l);
    let (api_tls, gateway_tls, opa_tls, metrics_tls) = (
        acceptor(crate::tls_in::Listener::Api),
        acceptor(crate::tls_in::Listener::Gateway),
        acceptor(crate::tls_in::Listener::Opa),
        acceptor(crate::tls_in::Listener::Metrics),
    );
    tls.spawn_reloader(tls_clock, crate::tls_in::POLL_EVERY);
    let gateway_task = gateway.map(|(l, gaddr, router)| {
        tracing::info!(%gaddr, "gateway serving");
        let mut rx = stop_rx.clone();
        tokio::spawn(crate::listen::serve(
            l,
            router,
            limits.named("gateway"),
            gateway_tls,
            async move {
                let _ = rx.wait_for(|v| *v).await;
            },
        ))
    });
    let opa_task = opa_listener.map(|l| {
        let router = mandate_http::opa::opa_router(Arc::clone(&state), cfg.opa_authentication)
            .layer(guard.clone());
        let mut rx = stop_rx.clone();
        tokio::spawn(crate::listen::serve(
            l,
            router,
            limits.named("opa"),
            opa_tls,
            async move {
                let _ = rx.wait_for(|v| *v).await;
            },
        ))
    });
    let metrics_task = metrics_listener.map(|l| {
        let router = mandate_http::metrics::metrics_router(
            Arc::clone(&state),
            exposition.clone(),
            cfg.metrics_authentication,
        )
        .layer(guard.clone());
        let mut rx = stop_rx.clone();
        tokio::spawn(crate::listen::serve(
            l,
            router,
            limits.named("metrics"),
            metrics_tls,
            async move {
                let _ = rx.wait_for(|v| *v).await;
            },
        ))
    });
    crate::listen::serve(
        listener,
        mandate_http::router(Arc::clone(&state))
            .layer(axum::Extension(exposition))
            .layer(guard),
        limits,
        api_tls,
        stop_signals.recv(),
    )
    .await;
    let _ = stop_tx.send(true);
    if let Some(t) = gateway_task {
        let _ = t.await;
    }
    if let Some(t) = opa_task {
        let _ = t.await;
    }
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    sweeper.abort();
    if let Err(e) = mandate_http::flush_baselines(&state).await {
        tracing::warn!(error = %e, "baselines not written at shutdown");
    }
    if let Err(e) = mandate_http::flush_activity(&state).await {
        tracing::warn!(error = %e, "last activity not written at shutdown");
    }
    // In-flight requests are done; let the audit writer drain and seal a checkpoint.
    state.audit.close();
    tracing::info!("stopped");
    Ok(())
}

/// Each `[[discovery.sources]]` source with its fetcher: a file (the service's), or the
/// Kubernetes API (the HTTP edge's, which reads its token and CA files now: a bad one
/// stops the start).
fn discovery_sources(
    cfg: &ServeConfig,
) -> anyhow::Result<
    Vec<(
        mandate_http::discovery::Scheduled,
        Box<dyn mandate_http::discovery::Fetch>,
    )>,
> {
    use mandate_http::discovery::{self, Fetch, FileFetch, Origin};
    let checked = discovery::check_sources(&cfg.discovery_sources)
        .map_err(|e| anyhow::anyhow!(e.join("; ")))?;
    checked
        .into_iter()
        .map(|(s, origin)| {
            let fetch: Box<dyn Fetch> = match origin {
                Origin::File(path) => Box::new(FileFetch { path }),
                Origin::KubernetesApi {
                    url,
                    token_file,
                    ca_file,
                } => Box::new(
                    mandate_http::kube_api::KubeApi::new(
                        &url,
                        &token_file,
                        ca_file.as_deref(),
                        &s.selector,
                    )
                    .map_err(|e| anyhow::anyhow!("discovery source `{}`: {e}", s.name))?,
                ),
            };
            Ok((s, fetch))
        })
        .collect()
}

/// Each `[[export.sinks]]` sink with its transport: file and syslog from the service,
/// the HTTP kinds from the HTTP edge. A sink whose transport cannot be built (a secret
/// file that cannot be read, a URL that does not parse, a CA bundle or client key that
/// does not) stops the start, naming it.
fn export_transports(
    cfg: &ServeConfig,
    node: &Arc<Node>,
) -> anyhow::Result<
    Vec<(
        mandate_http::export::SinkConfig,
        Box<dyn mandate_http::export::Transport>,
    )>,
> {
    let mut out = Vec::new();
    for sink in &cfg.export_sinks {
        let t = match mandate_http::export_io::transport(sink).map_err(anyhow::Error::msg)? {
            Some(t) => t,
            None if sink.kind == mandate_http::export::SinkKind::Ssf => {
                mandate_http::export_http::ssf_transport(sink, Arc::clone(node))
                    .map_err(anyhow::Error::msg)?
            }
            None => mandate_http::export_http::transport(sink, Arc::clone(&node.clock))
                .map_err(anyhow::Error::msg)?
                .ok_or_else(|| {
                    anyhow::anyhow!("export sink `{}`: no transport for its type", sink.name)
                })?,
        };
        tracing::info!(
            sink = %sink.name,
            kind = sink.kind.name(),
            format = sink.format().name(),
            "export sink"
        );
        out.push((sink.clone(), t));
    }
    Ok(out)
}
