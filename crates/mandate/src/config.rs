//! `mandate serve` configuration: defaults, then an optional TOML file, then `MANDATE_*`
//! environment variables, then flags — each later source overriding the earlier.
//!
//! Unknown keys (in the file or as `MANDATE_*` variables) are errors, and every error of
//! every source is collected so the operator sees them all at once.

use mandate_audit::event::NodeName;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Variables the CLI client reads, and the config-file pointer; not config keys.
const CLIENT_VARS: &[&str] = &[
    "MANDATE_ADDR",
    "MANDATE_TOKEN",
    "MANDATE_CONFIG",
    "MANDATE_BOOTSTRAP_TOKEN",
];

/// `detect.learning_min_requests` under `--dev`.
pub const DEV_LEARNING_MIN_REQUESTS: u64 = 20;

/// The merged configuration of `mandate serve`.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// `--dev`: a throw-away development server (`crate::devmode`).
    pub dev: bool,
    /// Whether `data_dir` was given (file, environment or flag) rather than defaulted;
    /// with `--dev`, a data dir not given is a fresh temporary one.
    pub data_dir_given: bool,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `store.url` (`--store`, `MANDATE_STORE_URL`): a PostgreSQL database to keep the
    /// store in; `None` is the SQLite file in the data dir (the zero-config default).
    pub store_url: Option<StoreUrl>,
    /// `store.key_file` (`MANDATE_STORE_KEY_FILE`): the store key, which every node of a
    /// cluster shares (mandate-service `store_key.rs`); `None` is `<data_dir>/store.key`.
    pub store_key_file: Option<PathBuf>,
    /// `cluster.max_staleness_ms`: with `store.url`, how old a node's proof of a complete
    /// change feed may be before it refuses decisions (503 `snapshot_stale`); the feed's
    /// heartbeat runs at a quarter of it.
    pub cluster_max_staleness: std::time::Duration,
    /// `cluster.node_id` (`--node-id`, `MANDATE_CLUSTER_NODE_ID`): this node's id on a
    /// PostgreSQL store, which names its audit log; `None` is the id kept in the data
    /// dir's `node-id` file (made on first start). Only with `store.url`.
    pub cluster_node_id: Option<String>,
    pub issuer: Option<String>,
    pub log_level: tracing::Level,
    pub token_default_lifetime_secs: u32,
    pub token_max_lifetime_secs: u32,
    pub token_default_audience: Option<String>,
    /// `token.signing_alg`: the `alg` name of Mandate's own tokens and JWKS.
    pub token_signing_alg: mandate_token::jws::SigningAlg,
    pub http_max_body_bytes: usize,
    pub bootstrap_token_file: Option<PathBuf>,
    pub audit_checkpoint_every_events: u64,
    pub audit_checkpoint_every_secs: u64,
    /// Top-level context fields stored as a keyed hash.
    pub audit_redact_hash: Vec<String>,
    /// Top-level context fields not stored at all.
    pub audit_redact_drop: Vec<String>,
    /// How long a mandate request waits for an approver.
    pub approval_timeout_secs: u32,
    /// Users in this group may approve mandate requests.
    pub approver_group: Option<String>,
    /// Where new approval requests are announced (an `http://` URL).
    pub approval_webhook_url: Option<String>,
    /// The file holding the webhook's HMAC secret (mode 0600 recommended).
    pub approval_webhook_secret_file: Option<PathBuf>,
    /// The longest lifetime a mandate may ask for.
    pub mandate_max_lifetime_secs: u32,
    /// How many agents a delegation chain may hold.
    pub delegation_max_depth: usize,
    /// Whether the local development user issuer (and `mandate dev issue-user-token`)
    /// is on.
    pub dev_user_tokens: bool,
    /// The IdPs whose user tokens name the humans agents act for.
    pub trusted_issuers: Vec<IssuerConfig>,
    /// Whether the anomaly detector runs.
    pub detect_enabled: bool,
    /// `reviews.suspend_overdue`: suspend the agent of an overdue access review item.
    pub reviews_suspend_overdue: bool,
    /// `[dpop]`: DPoP proof checks (docs/running.md).
    pub dpop: mandate_http::DpopConfig,
    /// Its learning period, thresholds and responses.
    pub detect: mandate_detect::DetectConfig,
    /// Where `alert` responses are sent (an `http://` URL).
    pub detect_alert_webhook_url: Option<String>,
    /// The file holding that webhook's HMAC secret.
    pub detect_alert_webhook_secret_file: Option<PathBuf>,
    /// The webhooks' TLS settings and `allow_http` (`approvals.webhook_ca_file`, …).
    pub webhook_tls: crate::outbound::WebhookTls,
    /// Where the OPA-compatible API listens (none: not served; issue 22).
    pub opa_listen: Option<SocketAddr>,
    /// Who must authenticate there (`opa.authentication`: `token`, or `off` on a
    /// loopback `opa.listen` only).
    pub opa_authentication: mandate_http::opa::OpaAuthentication,
    /// Where `GET /metrics` is also served on its own (none: on the API only).
    pub metrics_listen: Option<SocketAddr>,
    /// Who must authenticate there (`metrics.authentication`: `off`, the default, on a
    /// loopback `metrics.listen` only, or `token`).
    pub metrics_authentication: mandate_http::metrics::MetricsAuthentication,
    /// Where spans are exported over OTLP/HTTP (JSON; none: no export; issue 23).
    pub telemetry_otlp_endpoint: Option<String>,
    /// The exported resource's `service.name` (default `mandate`).
    pub telemetry_service_name: String,
    /// The share of traces Mandate starts that are sampled (0 to 1, default 1); a
    /// caller's `traceparent` samples its own.
    pub telemetry_sampling_ratio: f64,
    /// Where the gateways listen (none: no gateway).
    pub gateway_listen: Option<SocketAddr>,
    /// The gateways' public base URL (default `http://<gateway.listen>`).
    pub gateway_public_url: Option<String>,
    /// Until an upstream's response headers arrive (504 after), and the longest an
    /// HTTP gateway upstream's response body may stay silent (the client's response is
    /// then cut off with an error, never ended as if whole).
    pub gateway_timeout_secs: u64,
    /// How long a request body sent to either gateway may take to arrive, whole
    /// (counted from the request's head; the token is checked before any is read).
    pub gateway_body_timeout_secs: u64,
    /// The largest request body the gateways forward.
    pub gateway_max_body_bytes: usize,
    /// The most bytes both gateways together hold from request bodies they buffer (an
    /// HTTP body a template reads, every MCP message); a body that does not fit now is
    /// 503 `busy` (`mandate_gateway::budget`). At least `gateway.max_body_bytes`.
    pub gateway_max_buffered_bytes: usize,
    /// How long an upstream MCP server's standalone stream may stay silent before the
    /// gateway takes it for dead and opens it again.
    pub gateway_stream_idle_secs: u64,
    /// `[[gateway.routes]]` (file only).
    pub gateway_routes: Vec<RouteConfig>,
    /// `[[gateway.mcp]]` (file only).
    pub gateway_mcp: Vec<McpServerConfig>,
    /// `[[export.sinks]]` (file only): where the audit log is delivered for SIEMs.
    pub export_sinks: Vec<mandate_http::export::SinkConfig>,
    /// `[[ssf.transmitters]]` (file only): the IdPs whose Shared Signals (SETs pushed to
    /// `POST /ssf/events`) end their users' mandates.
    pub ssf_transmitters: Vec<SsfTransmitterConfig>,
    /// `[[discovery.sources]]` (file only): scheduled discovery runs (docs/governance.md).
    pub discovery_sources: Vec<mandate_http::discovery::SourceConfig>,
    /// `[tls]`, `[gateway.tls]`, `[opa.tls]`, `[metrics.tls]` (`cert_file`, `key_file`,
    /// `client_auth`): TLS on the listeners; `[tls]` is the API's and every other
    /// listener's unless its own table overrides it (`crate::tls_in`,
    /// docs/running.md#tls). None set: plain HTTP everywhere.
    pub tls: crate::tls_in::TlsConfig,
    /// `[limits]`: head and body deadlines, connection caps and the failed-authentication
    /// back-off (`crate::limits`, docs/running.md#abuse-limits).
    pub limits: crate::limits::LimitsConfig,
}

/// One `[[ssf.transmitters]]` table: a Shared Signals transmitter (usually an IdP).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsfTransmitterConfig {
    /// The `iss` its SETs carry.
    pub issuer: String,
    /// A JWK Set file with its public keys.
    pub jwks_file: PathBuf,
    /// The `aud` its SETs must carry (default: Mandate's issuer URL).
    #[serde(default)]
    pub audience: Option<String>,
    /// Accepted `alg`s (default RS256, ES256, EdDSA).
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// The issuer of the users it speaks for, when not its own `iss` (a subject of
    /// another issuer is refused).
    #[serde(default)]
    pub users_issuer: Option<String>,
}

/// A `postgres://` (or `postgresql://`) URL, which may hold a password: its `Debug` shows
/// the scheme only, and configuration errors never repeat it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// The URL itself, for connecting (never for a log).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreUrl(postgres://…)")
    }
}

/// One `[[gateway.routes]]` table: a path prefix of the HTTP gateway.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `/crm`.
    pub prefix: String,
    /// `http://127.0.0.1:9000/api`.
    pub upstream: String,
    /// The action template by HTTP method (`GET = "crm:read"`), `"*"` for the rest.
    #[serde(default)]
    pub actions: BTreeMap<String, String>,
    /// The action template for every method not in `actions`.
    #[serde(default)]
    pub action: Option<String>,
    /// The resource's entity type.
    pub resource_type: String,
    /// The resource id template (`{path.1}`).
    pub resource_id: String,
    /// Context field templates.
    #[serde(default)]
    pub context: BTreeMap<String, String>,
    /// The resource's attributes (`team = "sales"`), templates rendered to strings. A
    /// static value is the operator's; one rendered from the request is the caller's
    /// claim (README, "Gateways").
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, String>,
    /// The name of the upstream secret to inject (`mandate gateway secret set`).
    #[serde(default)]
    pub credential_secret: Option<String>,
    /// The header it goes in (default: `Authorization: Bearer <secret>`).
    #[serde(default)]
    pub credential_header: Option<String>,
    /// A PEM bundle of the CAs trusted instead of the system's roots (`https://`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The client certificate chain (PEM, leaf first) presented, for mutual TLS.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// Its private key (PEM, mode 0600).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// The name the server's certificate must carry, if not the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Plain `http://` to a host that is not loopback is allowed (unencrypted).
    #[serde(default)]
    pub allow_http: bool,
}

impl RouteConfig {
    /// Its outbound TLS settings.
    pub fn tls(&self) -> crate::outbound::TargetTls {
        crate::outbound::TargetTls {
            ca_file: self.ca_file.clone(),
            client_cert_file: self.client_cert_file.clone(),
            client_key_file: self.client_key_file.clone(),
            server_name: self.server_name.clone(),
            allow_http: self.allow_http,
        }
    }
}

/// One `[[gateway.mcp]]` table: an upstream MCP server.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// Its tools are exposed as `<name>__<tool>`.
    pub name: String,
    /// Its Streamable HTTP endpoint.
    pub url: String,
    /// A PEM bundle of the CAs trusted instead of the system's roots (`https://`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The client certificate chain (PEM, leaf first) presented, for mutual TLS.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// Its private key (PEM, mode 0600).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// The name the server's certificate must carry, if not the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Plain `http://` to a host that is not loopback is allowed (unencrypted).
    #[serde(default)]
    pub allow_http: bool,
}

impl McpServerConfig {
    /// Its outbound TLS settings.
    pub fn tls(&self) -> crate::outbound::TargetTls {
        crate::outbound::TargetTls {
            ca_file: self.ca_file.clone(),
            client_cert_file: self.client_cert_file.clone(),
            client_key_file: self.client_key_file.clone(),
            server_name: self.server_name.clone(),
            allow_http: self.allow_http,
        }
    }
}

/// One `[[trusted_issuers]]` table of the config file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` its tokens must carry for Mandate.
    pub audience: String,
    /// A JWK Set file with its public keys (or `jwks_uri`, or `discovery`).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The URL of its JWK Set, fetched, cached and refreshed (docs/running.md).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Find `jwks_uri` in `<issuer>/.well-known/openid-configuration` (whose `issuer`
    /// must be this one).
    #[serde(default)]
    pub discovery: bool,
    /// How long the last good keys serve past their refresh when the IdP cannot be
    /// reached or answers garbage (default 86400); then its tokens are refused.
    #[serde(default)]
    pub jwks_max_stale_secs: Option<u64>,
    /// The least time between two fetches on an unknown `kid` (default 30).
    #[serde(default)]
    pub jwks_refetch_min_secs: Option<u64>,
    /// The shortest refresh interval, whatever `Cache-Control: max-age` says (default 300).
    #[serde(default)]
    pub jwks_refresh_min_secs: Option<u64>,
    /// A PEM bundle of the CAs trusted instead of the system's roots (`https://`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The client certificate chain (PEM, leaf first) presented, for mutual TLS.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// Its private key (PEM, mode 0600).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// The name the server's certificate must carry, if not the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Plain `http://` to a host that is not loopback is allowed (unencrypted).
    #[serde(default)]
    pub allow_http: bool,
    /// Accepted `alg`s (default RS256, ES256, EdDSA).
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// The claim naming the user (default `sub`).
    #[serde(default)]
    pub user_claim: Option<String>,
    /// The claim listing the user's groups (default `groups`).
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// The claim with the user's email (default `email`).
    #[serde(default)]
    pub email_claim: Option<String>,
}

impl IssuerConfig {
    /// Its outbound TLS settings.
    pub fn tls(&self) -> crate::outbound::TargetTls {
        crate::outbound::TargetTls {
            ca_file: self.ca_file.clone(),
            client_cert_file: self.client_cert_file.clone(),
            client_key_file: self.client_key_file.clone(),
            server_name: self.server_name.clone(),
            allow_http: self.allow_http,
        }
    }
}

/// Where a trusted issuer's keys come from when fetched: `Some((key, url))`, the key
/// naming the URL (`jwks_uri`, or `issuer` for discovery); `None` for a `jwks_file`.
/// Exactly one of `jwks_file`, `jwks_uri`, `discovery = true` is set.
pub fn jwks_source(t: &IssuerConfig) -> Result<Option<(&'static str, String)>, String> {
    match (&t.jwks_file, &t.jwks_uri, t.discovery) {
        (Some(_), None, false) => Ok(None),
        (None, Some(u), false) => Ok(Some(("jwks_uri", u.clone()))),
        (None, None, true) => Ok(Some((
            "issuer",
            format!(
                "{}/.well-known/openid-configuration",
                t.issuer.trim_end_matches('/')
            ),
        ))),
        _ => Err("set exactly one of `jwks_file`, `jwks_uri`, `discovery = true`".to_owned()),
    }
}

/// A value from some source, still as text (TOML scalars are rendered to text).
struct Raw {
    value: String,
    source: String,
}

/// Every config key, its environment variable, and how to apply it.
const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "store.url",
    "store.key_file",
    "cluster.node_id",
    "issuer",
    "log_level",
    "token.default_lifetime_secs",
    "token.max_lifetime_secs",
    "token.default_audience",
    "token.signing_alg",
    "http.max_body_bytes",
    "bootstrap_token_file",
    "audit.checkpoint_every_events",
    "audit.checkpoint_every_secs",
    "audit.redact_hash",
    "audit.redact_drop",
    "approvals.timeout_secs",
    "approvals.approver_group",
    "approvals.webhook_url",
    "approvals.webhook_secret_file",
    "approvals.webhook_ca_file",
    "approvals.webhook_client_cert_file",
    "approvals.webhook_client_key_file",
    "approvals.webhook_server_name",
    "approvals.webhook_allow_http",
    "mandates.max_lifetime_secs",
    "delegation.max_depth",
    "dev.user_tokens",
    "detect.enabled",
    "reviews.suspend_overdue",
    "dpop.max_age_secs",
    "dpop.max_skew_secs",
    "dpop.require_nonce",
    "dpop.nonce_lifetime_secs",
    "dpop.replay_cache_size",
    "detect.learning_days",
    "detect.learning_min_requests",
    "detect.rate_bucket_secs",
    "detect.rate_factor",
    "detect.deny_window_secs",
    "detect.deny_min",
    "detect.cooldown_secs",
    "detect.sensitive_data_classes",
    "detect.responses.low",
    "detect.responses.medium",
    "detect.responses.high",
    "detect.responses.critical",
    "detect.alert_webhook_url",
    "detect.alert_webhook_secret_file",
    "detect.alert_webhook_ca_file",
    "detect.alert_webhook_client_cert_file",
    "detect.alert_webhook_client_key_file",
    "detect.alert_webhook_server_name",
    "detect.alert_webhook_allow_http",
    "gateway.listen",
    "gateway.public_url",
    "gateway.timeout_secs",
    "gateway.body_timeout_secs",
    "gateway.max_body_bytes",
    "gateway.max_buffered_bytes",
    "gateway.stream_idle_secs",
    "cluster.max_staleness_ms",
    "opa.listen",
    "opa.authentication",
    "metrics.listen",
    "metrics.authentication",
    "telemetry.otlp_endpoint",
    "telemetry.otlp_allow_http",
    "telemetry.otlp_ca_file",
    "telemetry.otlp_client_cert_file",
    "telemetry.otlp_client_key_file",
    "telemetry.otlp_server_name",
    "telemetry.service_name",
    "telemetry.sampling_ratio",
];

fn env_name(key: &str) -> String {
    format!("MANDATE_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Flattens a TOML table into dotted keys, reporting non-scalar values.
fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, Raw>,
    errors: &mut Vec<String>,
    file: &str,
) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let value = match v {
            toml::Value::Table(t) => {
                flatten(&key, t, out, errors, file);
                continue;
            }
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => {
                errors.push(format!("{file}: `{key}` must be a string or a number"));
                continue;
            }
        };
        let source = format!("{file}: `{key}`");
        out.insert(key, Raw { value, source });
    }
}

/// Command-line values for `serve` (each optional; `None` leaves the lower layers).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--dev`: development defaults under every other source (see [`load`]).
    pub dev: bool,
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// `--store`: the `store.url` key.
    pub store: Option<String>,
    /// `--node-id`: the `cluster.node_id` key.
    pub node_id: Option<String>,
    pub issuer: Option<String>,
    pub bootstrap_token_file: Option<PathBuf>,
}

/// Merges defaults, the file, the environment and the flags. `env` is the process
/// environment (passed in so tests control it). Errors: every problem found.
pub fn load(flags: &Flags, env: &BTreeMap<String, String>) -> Result<ServeConfig, Vec<String>> {
    let mut errors = Vec::new();
    let mut raw: BTreeMap<String, Raw> = BTreeMap::new();
    let mut issuers: Vec<IssuerConfig> = Vec::new();
    let mut routes: Vec<RouteConfig> = Vec::new();
    let mut mcp: Vec<McpServerConfig> = Vec::new();
    let mut sinks: Vec<mandate_http::export::SinkConfig> = Vec::new();
    let mut transmitters: Vec<SsfTransmitterConfig> = Vec::new();
    let mut discovery_sources: Vec<mandate_http::discovery::SourceConfig> = Vec::new();

    let file = flags
        .config
        .clone()
        .or_else(|| env.get("MANDATE_CONFIG").map(PathBuf::from));
    if let Some(path) = &file {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Err(e) => errors.push(format!("{name}: cannot read: {e}")),
            Ok(text) => match text.parse::<toml::Table>() {
                Err(e) => errors.push(format!("{name}: {}", e.to_string().trim())),
                Ok(mut t) => {
                    // The one structured key: a list of tables, file only.
                    if let Some(list) = t.remove("trusted_issuers") {
                        match list.try_into::<Vec<IssuerConfig>>() {
                            Ok(l) => issuers = l,
                            Err(e) => errors.push(format!(
                                "{name}: `trusted_issuers`: {}",
                                e.to_string().trim()
                            )),
                        }
                    }
                    // The Shared Signals transmitters (a list of tables, file only).
                    if let Some(toml::Value::Table(x)) = t.get_mut("ssf")
                        && let Some(list) = x.remove("transmitters")
                    {
                        match list.try_into::<Vec<SsfTransmitterConfig>>() {
                            Ok(l) => transmitters = l,
                            Err(e) => errors.push(format!(
                                "{name}: `ssf.transmitters`: {}",
                                e.to_string().trim()
                            )),
                        }
                    }
                    // The scheduled discovery sources (a list of tables, file only).
                    if let Some(toml::Value::Table(x)) = t.get_mut("discovery")
                        && let Some(list) = x.remove("sources")
                    {
                        match list.try_into::<Vec<mandate_http::discovery::SourceConfig>>() {
                            Ok(l) => discovery_sources = l,
                            Err(e) => errors.push(format!(
                                "{name}: `discovery.sources`: {}",
                                e.to_string().trim()
                            )),
                        }
                    }
                    // The export sinks (a list of tables, file only).
                    if let Some(toml::Value::Table(x)) = t.get_mut("export")
                        && let Some(list) = x.remove("sinks")
                    {
                        match list.try_into::<Vec<mandate_http::export::SinkConfig>>() {
                            Ok(l) => sinks = l,
                            Err(e) => errors
                                .push(format!("{name}: `export.sinks`: {}", e.to_string().trim())),
                        }
                    }
                    // And the gateway's routes and MCP servers (lists of tables, file only).
                    if let Some(toml::Value::Table(g)) = t.get_mut("gateway") {
                        if let Some(list) = g.remove("routes") {
                            match list.try_into::<Vec<RouteConfig>>() {
                                Ok(l) => routes = l,
                                Err(e) => errors.push(format!(
                                    "{name}: `gateway.routes`: {}",
                                    e.to_string().trim()
                                )),
                            }
                        }
                        if let Some(list) = g.remove("mcp") {
                            match list.try_into::<Vec<McpServerConfig>>() {
                                Ok(l) => mcp = l,
                                Err(e) => errors.push(format!(
                                    "{name}: `gateway.mcp`: {}",
                                    e.to_string().trim()
                                )),
                            }
                        }
                    }
                    flatten("", &t, &mut raw, &mut errors, &name)
                }
            },
        }
    }
    // The listeners' `tls.*` and `limits.*` keys are listed with their code (`tls_in`,
    // `limits`).
    let all_keys = || {
        KEYS.iter()
            .chain(crate::tls_in::KEYS)
            .chain(crate::limits::KEYS)
    };
    for (k, r) in &raw {
        if !all_keys().any(|key| key == k) {
            errors.push(format!("{}: unknown key", r.source));
        }
    }
    raw.retain(|k, _| all_keys().any(|key| key == k));

    let env_keys: BTreeMap<String, &str> = all_keys().map(|k| (env_name(k), *k)).collect();
    for (name, value) in env.iter().filter(|(n, _)| n.starts_with("MANDATE_")) {
        match env_keys.get(name) {
            Some(k) => {
                raw.insert(
                    (*k).to_owned(),
                    Raw {
                        value: value.clone(),
                        source: format!("environment `{name}`"),
                    },
                );
            }
            None if CLIENT_VARS.contains(&name.as_str()) || name.starts_with("MANDATE_TEST_") => {}
            None => errors.push(format!("environment: unknown variable `{name}`")),
        }
    }

    let flag = |k: &str, v: Option<String>, raw: &mut BTreeMap<String, Raw>| {
        if let Some(v) = v {
            raw.insert(
                k.to_owned(),
                Raw {
                    value: v,
                    source: format!("flag `--{}`", k.replace('_', "-")),
                },
            );
        }
    };
    flag("listen", flags.listen.clone(), &mut raw);
    flag(
        "data_dir",
        flags.data_dir.as_ref().map(|p| p.display().to_string()),
        &mut raw,
    );
    flag("issuer", flags.issuer.clone(), &mut raw);
    flag("cluster.node_id", flags.node_id.clone(), &mut raw);
    if let Some(v) = &flags.store {
        raw.insert(
            "store.url".into(),
            Raw {
                value: v.clone(),
                source: "flag `--store`".into(),
            },
        );
    }
    flag(
        "bootstrap_token_file",
        flags
            .bootstrap_token_file
            .as_ref()
            .map(|p| p.display().to_string()),
        &mut raw,
    );

    let mut cfg = ServeConfig {
        dev: flags.dev,
        data_dir_given: raw.contains_key("data_dir"),
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        data_dir: PathBuf::from("./mandate-data"),
        store_url: None,
        store_key_file: None,
        cluster_max_staleness: mandate_http::freshness::DEFAULT_MAX_STALENESS,
        cluster_node_id: None,
        issuer: None,
        log_level: tracing::Level::INFO,
        token_default_lifetime_secs: 300,
        token_max_lifetime_secs: 3600,
        token_default_audience: None,
        token_signing_alg: mandate_token::jws::SigningAlg::EdDsa,
        http_max_body_bytes: 64 * 1024,
        bootstrap_token_file: None,
        audit_checkpoint_every_events: 1000,
        audit_checkpoint_every_secs: 10,
        // Prompts and tool arguments are the usual carriers of personal data and secrets.
        audit_redact_hash: vec!["prompt".into(), "tool_arguments".into()],
        audit_redact_drop: Vec::new(),
        approval_timeout_secs: 300,
        approver_group: None,
        approval_webhook_url: None,
        approval_webhook_secret_file: None,
        mandate_max_lifetime_secs: 3600,
        delegation_max_depth: 5,
        dev_user_tokens: false,
        trusted_issuers: issuers,
        detect_enabled: true,
        reviews_suspend_overdue: false,
        dpop: mandate_http::DpopConfig::default(),
        detect: mandate_detect::DetectConfig::default(),
        detect_alert_webhook_url: None,
        detect_alert_webhook_secret_file: None,
        webhook_tls: crate::outbound::WebhookTls::default(),
        opa_listen: None,
        opa_authentication: mandate_http::opa::OpaAuthentication::Token,
        metrics_listen: None,
        metrics_authentication: mandate_http::metrics::MetricsAuthentication::Off,
        telemetry_otlp_endpoint: None,
        telemetry_service_name: "mandate".into(),
        telemetry_sampling_ratio: 1.0,
        gateway_listen: None,
        gateway_public_url: None,
        gateway_timeout_secs: 30,
        gateway_body_timeout_secs: 30,
        gateway_max_body_bytes: 10 * 1024 * 1024,
        gateway_max_buffered_bytes: mandate_gateway::budget::DEFAULT_MAX_BUFFERED_BYTES,
        gateway_stream_idle_secs: 300,
        gateway_routes: routes,
        gateway_mcp: mcp,
        export_sinks: sinks,
        ssf_transmitters: transmitters,
        discovery_sources,
        tls: crate::tls_in::TlsConfig::default(),
        limits: crate::limits::LimitsConfig::default(),
    };
    // `--dev` changes defaults only: the file, the environment and the flags below still
    // override each of them.
    if flags.dev {
        cfg.dev_user_tokens = true;
        // Learning ends after 20 requests, however young the agent (0 days): enough to
        // see a `new_action` or a `deny_burst` in a first session.
        cfg.detect.learning_secs = 0;
        cfg.detect.learning_min_events = DEV_LEARNING_MIN_REQUESTS;
    }
    for (key, r) in &raw {
        let v = r.value.trim();
        let mut bad = |what: &str| {
            errors.push(format!(
                "{}: `{key}` {what}, got `{}`",
                r.source,
                v.escape_debug()
            ))
        };
        let int = |lo: u64, hi: u64| v.parse::<u64>().ok().filter(|n| (lo..=hi).contains(n));
        match key.as_str() {
            "listen" => match v.parse() {
                Ok(a) => cfg.listen = a,
                Err(_) => bad("must be an IP:port address such as 127.0.0.1:8080"),
            },
            "data_dir" if !v.is_empty() => cfg.data_dir = PathBuf::from(v),
            // Empty: the SQLite default. The value is never repeated in an error: a URL
            // may carry a password.
            "store.url" if v.is_empty() => cfg.store_url = None,
            "store.url" => {
                if v.starts_with("postgres://") || v.starts_with("postgresql://") {
                    cfg.store_url = Some(StoreUrl(v.to_owned()));
                } else {
                    errors.push(format!(
                        "{}: `store.url` must be a postgres:// or postgresql:// URL \
                         (leave it unset for the SQLite file in the data dir)",
                        r.source
                    ));
                }
            }
            "store.key_file" if !v.is_empty() => cfg.store_key_file = Some(PathBuf::from(v)),
            "cluster.node_id" if v.is_empty() => cfg.cluster_node_id = None,
            "cluster.node_id" => match NodeName::new(v) {
                Ok(n) => cfg.cluster_node_id = Some(n.as_str().to_owned()),
                Err(_) => bad("must be 1 to 64 ASCII letters, digits, `.`, `_` or `-`"),
            },
            "bootstrap_token_file" if !v.is_empty() => {
                cfg.bootstrap_token_file = Some(PathBuf::from(v))
            }
            "issuer" => {
                let ok = (v.starts_with("http://") || v.starts_with("https://"))
                    && mandate_core::uri::is_absolute_uri(v)
                    && !v.ends_with('/')
                    && !v.contains('?');
                if ok {
                    cfg.issuer = Some(v.to_owned())
                } else {
                    bad("must be an http(s) URL without a trailing slash, query or fragment")
                }
            }
            "token.default_audience" => {
                if mandate_core::uri::is_absolute_uri(v) {
                    cfg.token_default_audience = Some(v.to_owned())
                } else {
                    bad("must be an absolute URI")
                }
            }
            "token.signing_alg" => match mandate_token::jws::SigningAlg::parse(v) {
                Some(a) => cfg.token_signing_alg = a,
                None => bad(
                    "must be `EdDSA` or `Ed25519` (the same Ed25519 signature; RFC 9864 names it `Ed25519`)",
                ),
            },
            "log_level" => match v.to_ascii_lowercase().parse() {
                Ok(l) => cfg.log_level = l,
                Err(_) => bad("must be one of error, warn, info, debug, trace"),
            },
            "token.default_lifetime_secs" => {
                match int(1, 86_400).and_then(|n| u32::try_from(n).ok()) {
                    Some(n) => cfg.token_default_lifetime_secs = n,
                    None => bad("must be a whole number of seconds in 1..=86400"),
                }
            }
            "token.max_lifetime_secs" => match int(1, 86_400).and_then(|n| u32::try_from(n).ok()) {
                Some(n) => cfg.token_max_lifetime_secs = n,
                None => bad("must be a whole number of seconds in 1..=86400"),
            },
            "http.max_body_bytes" => {
                match int(1024, 16 * 1024 * 1024).and_then(|n| usize::try_from(n).ok()) {
                    Some(n) => cfg.http_max_body_bytes = n,
                    None => bad("must be a byte count in 1024..=16777216"),
                }
            }
            "audit.checkpoint_every_events" => match int(1, 1_000_000) {
                Some(n) => cfg.audit_checkpoint_every_events = n,
                None => bad("must be a whole number in 1..=1000000"),
            },
            "audit.checkpoint_every_secs" => match int(1, 86_400) {
                Some(n) => cfg.audit_checkpoint_every_secs = n,
                None => bad("must be a whole number of seconds in 1..=86400"),
            },
            "audit.redact_hash" | "audit.redact_drop" => {
                let fields: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect();
                if fields
                    .iter()
                    .any(|f| f.len() > 128 || f.chars().any(char::is_control))
                {
                    bad("must be a comma-separated list of context field names");
                } else if key == "audit.redact_hash" {
                    cfg.audit_redact_hash = fields;
                } else {
                    cfg.audit_redact_drop = fields;
                }
            }
            "cluster.max_staleness_ms" => match int(200, 60_000) {
                Some(n) => cfg.cluster_max_staleness = std::time::Duration::from_millis(n),
                None => bad("must be a whole number of milliseconds in 200..=60000"),
            },
            "approvals.timeout_secs" => match int(1, 86_400).and_then(|n| u32::try_from(n).ok()) {
                Some(n) => cfg.approval_timeout_secs = n,
                None => bad("must be a whole number of seconds in 1..=86400"),
            },
            "approvals.approver_group" if !v.is_empty() && v.len() <= 256 => {
                cfg.approver_group = Some(v.to_owned())
            }
            "approvals.webhook_url" => {
                let web = v.starts_with("http://") || v.starts_with("https://");
                if web && mandate_core::uri::is_absolute_uri(v) {
                    cfg.approval_webhook_url = Some(v.to_owned())
                } else {
                    bad("must be an http:// or https:// URL")
                }
            }
            "approvals.webhook_secret_file" if !v.is_empty() => {
                cfg.approval_webhook_secret_file = Some(PathBuf::from(v))
            }
            "mandates.max_lifetime_secs" => {
                match int(1, 86_400).and_then(|n| u32::try_from(n).ok()) {
                    Some(n) => cfg.mandate_max_lifetime_secs = n,
                    None => bad("must be a whole number of seconds in 1..=86400"),
                }
            }
            "delegation.max_depth" => match int(1, 16).and_then(|n| usize::try_from(n).ok()) {
                Some(n) => cfg.delegation_max_depth = n,
                None => bad("must be a whole number in 1..=16"),
            },
            "dev.user_tokens" => match v {
                "true" => cfg.dev_user_tokens = true,
                "false" => cfg.dev_user_tokens = false,
                _ => bad("must be true or false"),
            },
            "reviews.suspend_overdue" => match v {
                "true" => cfg.reviews_suspend_overdue = true,
                "false" => cfg.reviews_suspend_overdue = false,
                _ => bad("must be true or false"),
            },
            "dpop.max_age_secs" => match int(1, 600).and_then(|n| i64::try_from(n).ok()) {
                Some(n) => cfg.dpop.window.past_secs = n,
                None => bad("must be a whole number of seconds in 1..=600"),
            },
            "dpop.max_skew_secs" => match int(0, 60).and_then(|n| i64::try_from(n).ok()) {
                Some(n) => cfg.dpop.window.future_secs = n,
                None => bad("must be a whole number of seconds in 0..=60"),
            },
            "dpop.require_nonce" => match v {
                "true" => cfg.dpop.require_nonce = true,
                "false" => cfg.dpop.require_nonce = false,
                _ => bad("must be true or false"),
            },
            "dpop.nonce_lifetime_secs" => match int(10, 3600).and_then(|n| i64::try_from(n).ok()) {
                Some(n) => cfg.dpop.nonce_lifetime_secs = n,
                None => bad("must be a whole number of seconds in 10..=3600"),
            },
            "dpop.replay_cache_size" => {
                match int(1000, 10_000_000).and_then(|n| usize::try_from(n).ok()) {
                    Some(n) => cfg.dpop.replay_cache_size = n,
                    None => bad("must be a whole number in 1000..=10000000"),
                }
            }
            "detect.enabled" => match v {
                "true" => cfg.detect_enabled = true,
                "false" => cfg.detect_enabled = false,
                _ => bad("must be true or false"),
            },
            "detect.learning_days" => match int(0, 365).and_then(|n| i64::try_from(n).ok()) {
                Some(n) => cfg.detect.learning_secs = n * 86_400,
                None => bad("must be a whole number of days in 0..=365"),
            },
            "detect.learning_min_requests" => match int(0, 10_000_000) {
                Some(n) => cfg.detect.learning_min_events = n,
                None => bad("must be a whole number in 0..=10000000"),
            },
            "detect.rate_bucket_secs" => match int(1, 3600).and_then(|n| i64::try_from(n).ok()) {
                Some(n) => cfg.detect.rate_bucket_secs = n,
                None => bad("must be a whole number of seconds in 1..=3600"),
            },
            "detect.rate_factor" => match int(2, 1000).and_then(|n| u32::try_from(n).ok()) {
                Some(n) => cfg.detect.rate_factor = f64::from(n),
                None => bad("must be a whole number in 2..=1000"),
            },
            "detect.deny_window_secs" => match int(1, 3600).and_then(|n| i64::try_from(n).ok()) {
                Some(n) => cfg.detect.deny_window_secs = n,
                None => bad("must be a whole number of seconds in 1..=3600"),
            },
            "detect.deny_min" => match int(2, 1000).and_then(|n| u32::try_from(n).ok()) {
                Some(n) => cfg.detect.deny_min = n,
                None => bad("must be a whole number in 2..=1000"),
            },
            "detect.cooldown_secs" => match int(1, 30 * 86_400).and_then(|n| i64::try_from(n).ok())
            {
                Some(n) => cfg.detect.cooldown_secs = n,
                None => bad("must be a whole number of seconds in 1..=2592000"),
            },
            "detect.sensitive_data_classes" => {
                cfg.detect.sensitive_data_classes = v
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "detect.responses.low"
            | "detect.responses.medium"
            | "detect.responses.high"
            | "detect.responses.critical" => match v.parse::<mandate_detect::Response>() {
                Ok(r) => {
                    let slot = match key.as_str() {
                        "detect.responses.low" => &mut cfg.detect.responses.low,
                        "detect.responses.medium" => &mut cfg.detect.responses.medium,
                        "detect.responses.high" => &mut cfg.detect.responses.high,
                        _ => &mut cfg.detect.responses.critical,
                    };
                    *slot = r;
                }
                Err(_) => bad("must be one of record, alert, step_up, suspend"),
            },
            "detect.alert_webhook_url" => {
                let web = v.starts_with("http://") || v.starts_with("https://");
                if web && mandate_core::uri::is_absolute_uri(v) {
                    cfg.detect_alert_webhook_url = Some(v.to_owned())
                } else {
                    bad("must be an http:// or https:// URL")
                }
            }
            "opa.listen" => match v.parse() {
                Ok(a) => cfg.opa_listen = Some(a),
                Err(_) => bad("must be an IP:port address such as 127.0.0.1:8181"),
            },
            "opa.authentication" => match v {
                "token" => cfg.opa_authentication = mandate_http::opa::OpaAuthentication::Token,
                "off" => cfg.opa_authentication = mandate_http::opa::OpaAuthentication::Off,
                _ => bad("must be `token` or `off`"),
            },
            "metrics.listen" => match v.parse() {
                Ok(a) => cfg.metrics_listen = Some(a),
                Err(_) => bad("must be an IP:port address such as 127.0.0.1:9464"),
            },
            "metrics.authentication" => match v {
                "token" => {
                    cfg.metrics_authentication = mandate_http::metrics::MetricsAuthentication::Token
                }
                "off" => {
                    cfg.metrics_authentication = mandate_http::metrics::MetricsAuthentication::Off
                }
                _ => bad("must be `off` or `token`"),
            },
            "telemetry.otlp_endpoint" => {
                // No `user:password@`: an error naming the URL would put it in the log.
                let authority = v
                    .strip_prefix("http://")
                    .or_else(|| v.strip_prefix("https://"))
                    .and_then(|r| r.split(['/', '?', '#']).next());
                if authority.is_some_and(|a| a.contains('@')) {
                    bad("must hold no credentials (`user:password@`)")
                } else if authority.is_some() && mandate_core::uri::is_absolute_uri(v) {
                    cfg.telemetry_otlp_endpoint = Some(v.to_owned())
                } else {
                    bad(
                        "must be an http:// or https:// URL such as http://127.0.0.1:4318/v1/traces",
                    )
                }
            }
            "telemetry.service_name" => {
                if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
                    bad("must be 1 to 128 printable characters")
                } else {
                    cfg.telemetry_service_name = v.to_owned()
                }
            }
            "telemetry.sampling_ratio" => match v.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => cfg.telemetry_sampling_ratio = r,
                _ => bad("must be a number from 0 to 1"),
            },
            "gateway.listen" => match v.parse() {
                Ok(a) => cfg.gateway_listen = Some(a),
                Err(_) => bad("must be an IP:port address such as 127.0.0.1:8081"),
            },
            "gateway.public_url" => {
                let ok = (v.starts_with("http://") || v.starts_with("https://"))
                    && mandate_core::uri::is_absolute_uri(v)
                    && !v.ends_with('/')
                    && !v.contains('?');
                if ok {
                    cfg.gateway_public_url = Some(v.to_owned())
                } else {
                    bad("must be an http(s) URL without a trailing slash, query or fragment")
                }
            }
            "gateway.timeout_secs" => match int(1, 3600) {
                Some(n) => cfg.gateway_timeout_secs = n,
                None => bad("must be a whole number of seconds in 1..=3600"),
            },
            "gateway.body_timeout_secs" => match int(1, 3600) {
                Some(n) => cfg.gateway_body_timeout_secs = n,
                None => bad("must be a whole number of seconds in 1..=3600"),
            },
            "gateway.stream_idle_secs" => match int(10, 86400) {
                Some(n) => cfg.gateway_stream_idle_secs = n,
                None => bad("must be a whole number of seconds in 10..=86400"),
            },
            "gateway.max_body_bytes" => {
                match int(1024, 1024 * 1024 * 1024).and_then(|n| usize::try_from(n).ok()) {
                    Some(n) => cfg.gateway_max_body_bytes = n,
                    None => bad("must be a byte count in 1024..=1073741824"),
                }
            }
            "gateway.max_buffered_bytes" => {
                match int(1024, 64 * 1024 * 1024 * 1024).and_then(|n| usize::try_from(n).ok()) {
                    Some(n) => cfg.gateway_max_buffered_bytes = n,
                    None => bad("must be a byte count in 1024..=68719476736"),
                }
            }
            "detect.alert_webhook_secret_file" if !v.is_empty() => {
                cfg.detect_alert_webhook_secret_file = Some(PathBuf::from(v))
            }
            k if crate::outbound::WEBHOOK_TLS_KEYS.contains(&k) => {
                if let Err(why) = crate::outbound::set_webhook_key(&mut cfg.webhook_tls, k, v) {
                    bad(why)
                }
            }
            k if crate::tls_in::KEYS.contains(&k) => {
                if let Some(Err(what)) = cfg.tls.apply(k, v) {
                    bad(what)
                }
            }
            k if crate::limits::KEYS.contains(&k) => {
                if let Some(Err(what)) = cfg.limits.apply(k, v) {
                    bad(what)
                }
            }
            _ => bad("must not be empty"),
        }
    }
    errors.extend(mandate_http::export::check_sinks(&cfg.export_sinks));
    check_outbound(&cfg, &mut errors);
    errors.extend(cfg.tls.check());
    if let Err(e) = mandate_http::discovery::check_sources(&cfg.discovery_sources) {
        errors.extend(e);
    }
    if cfg.approval_webhook_url.is_some() != cfg.approval_webhook_secret_file.is_some() {
        errors
            .push("`approvals.webhook_url` and `approvals.webhook_secret_file` go together".into());
    }
    if cfg.gateway_listen.is_none()
        && !(cfg.gateway_routes.is_empty() && cfg.gateway_mcp.is_empty())
    {
        errors.push(
            "gateway routes or MCP servers are configured but `gateway.listen` is not".into(),
        );
    }
    // As OPA's own default: no authentication only where nothing but this machine can
    // reach the port.
    if cfg.opa_authentication == mandate_http::opa::OpaAuthentication::Off
        && !cfg.opa_listen.is_some_and(|a| a.ip().is_loopback())
    {
        errors.push(
            "`opa.authentication = \"off\"` needs a loopback `opa.listen` (127.0.0.1 or ::1): \
             anyone who can reach the port could query every policy"
                .into(),
        );
    }
    // A scraper has no token, so none is asked by default: only where nothing but this
    // machine can reach the port (the counts tell who is busy, what is refused and why).
    if cfg.metrics_authentication == mandate_http::metrics::MetricsAuthentication::Off
        && let Some(a) = cfg.metrics_listen
        && !a.ip().is_loopback()
    {
        errors.push(format!(
            "`metrics.listen = \"{a}\"` is not a loopback address: serving metrics there \
             without a token needs `metrics.authentication = \"token\"` (the scraper then \
             sends an admin token), or listen on 127.0.0.1 or ::1"
        ));
    }
    if cfg.gateway_max_buffered_bytes < cfg.gateway_max_body_bytes {
        errors.push(
            "`gateway.max_buffered_bytes` must be at least `gateway.max_body_bytes`: a body \
             of the largest size must fit"
                .into(),
        );
    }
    if cfg.detect_alert_webhook_url.is_some() != cfg.detect_alert_webhook_secret_file.is_some() {
        errors.push(
            "`detect.alert_webhook_url` and `detect.alert_webhook_secret_file` go together".into(),
        );
    }
    let r = &cfg.detect.responses;
    if !(r.low <= r.medium && r.medium <= r.high && r.high <= r.critical) {
        errors.push(
            "`detect.responses` must not weaken as severity grows (low ≤ medium ≤ high ≤ \
             critical, in the order record, alert, step_up, suspend)"
                .into(),
        );
    }
    if cfg.token_default_lifetime_secs > cfg.token_max_lifetime_secs {
        errors.push(format!(
            "`token.default_lifetime_secs` ({}) exceeds `token.max_lifetime_secs` ({})",
            cfg.token_default_lifetime_secs, cfg.token_max_lifetime_secs
        ));
    }
    // INVARIANT (no takeover, see `devmode::claim_data_dir`): `--dev` replaces the
    // bootstrap token and adds a demo agent; a database named by URL may be a
    // production one, and has no `--dev` mark to check, so the two are refused together.
    if flags.dev && cfg.store_url.is_some() {
        errors.push(
            "`--dev` keeps its store in the data dir; it cannot be combined with `store.url` \
             (it would take over that database's admin token)"
                .into(),
        );
    }
    // A SQLite store is one node's, named in its file (`meta`); an id given for it would
    // be ignored, so it is refused rather than silently not used.
    if cfg.cluster_node_id.is_some() && cfg.store_url.is_none() {
        errors.push(
            "`cluster.node_id` names a node on a PostgreSQL store; set `store.url` too              (a SQLite store's node keeps the name in its file)"
                .into(),
        );
    }
    if env.contains_key("MANDATE_BOOTSTRAP_TOKEN") && cfg.bootstrap_token_file.is_some() {
        errors.push(
            "give the bootstrap token either as MANDATE_BOOTSTRAP_TOKEN or as a file, not both"
                .into(),
        );
    }
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(errors)
    }
}

/// Every outbound target of `cfg`, checked (`INVARIANT (outbound checked at start)` in
/// outbound.rs).
fn check_outbound(cfg: &ServeConfig, errors: &mut Vec<String>) {
    use crate::outbound::{TargetTls, check_target};
    if let Some(u) = &cfg.telemetry_otlp_endpoint {
        check_target(
            errors,
            "",
            "telemetry.otlp_endpoint",
            "telemetry.otlp_allow_http",
            u,
            &cfg.webhook_tls.otlp,
        );
    }
    if let Some(u) = &cfg.approval_webhook_url {
        check_target(
            errors,
            "",
            "approvals.webhook_url",
            "approvals.webhook_allow_http",
            u,
            &cfg.webhook_tls.approvals,
        );
    }
    if let Some(u) = &cfg.detect_alert_webhook_url {
        check_target(
            errors,
            "",
            "detect.alert_webhook_url",
            "detect.alert_webhook_allow_http",
            u,
            &cfg.webhook_tls.alerts,
        );
    }
    for r in &cfg.gateway_routes {
        let what = format!("gateway route `{}`: ", r.prefix);
        check_target(
            errors,
            &what,
            "upstream",
            "allow_http",
            &r.upstream,
            &r.tls(),
        );
    }
    for m in &cfg.gateway_mcp {
        let what = format!("gateway MCP server `{}`: ", m.name);
        check_target(errors, &what, "url", "allow_http", &m.url, &m.tls());
    }
    for t in &cfg.trusted_issuers {
        let what = format!("trusted issuer `{}`: ", t.issuer);
        match jwks_source(t) {
            Ok(None) => {
                let fetch_keys = [
                    t.jwks_max_stale_secs,
                    t.jwks_refetch_min_secs,
                    t.jwks_refresh_min_secs,
                ];
                if fetch_keys.iter().any(Option::is_some) || t.tls() != TargetTls::default() {
                    errors.push(format!(
                        "{what}the `jwks_*_secs` and TLS settings are for `jwks_uri` or \
                         `discovery`, not `jwks_file`"
                    ));
                }
            }
            Ok(Some((key, url))) => {
                check_target(errors, &what, key, "allow_http", &url, &t.tls());
                for (k, v, lo) in [
                    ("jwks_max_stale_secs", t.jwks_max_stale_secs, 0),
                    ("jwks_refetch_min_secs", t.jwks_refetch_min_secs, 1),
                    ("jwks_refresh_min_secs", t.jwks_refresh_min_secs, 1),
                ] {
                    if v.is_some_and(|n| !(lo..=2_592_000).contains(&n)) {
                        errors.push(format!("{what}`{k}` must be {lo} to 2592000 seconds"));
                    }
                }
            }
            Err(e) => errors.push(format!("{what}{e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Issue 25 (TLS out): every outbound target's URL and TLS settings checked at
    /// load, table-driven (`tests/data/config/outbound.json`: a config file, `{dir}`
    /// standing for a directory with a CA, a client identity, junk and a JWKS, and the
    /// error expected or `null`).
    #[test]
    fn issue25_outbound_targets_are_checked_at_load() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_pem = p.self_signed(&ca_key).unwrap().pem();
        let issuer = rcgen::Issuer::new(p, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["mandate".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        for (name, text) in [
            ("ca.pem", ca_pem),
            ("client.pem", leaf.pem()),
            ("client.key", leaf_key.serialize_pem()),
            ("junk.pem", "not a certificate".to_owned()),
            ("secret", "a-webhook-secret-of-24-chars".to_owned()),
            ("jwks.json", r#"{"keys": []}"#.to_owned()),
        ] {
            let f = dir.path().join(name);
            std::fs::write(&f, text).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let cases: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../tests/data/config/outbound.json")).unwrap();
        assert!(cases.len() > 20);
        for c in cases {
            let name = c["name"].as_str().unwrap();
            let text = c["toml"]
                .as_str()
                .unwrap()
                .replace("{dir}", &dir.path().display().to_string());
            let f = dir.path().join("m.toml");
            std::fs::write(&f, text).unwrap();
            let flags = Flags {
                config: Some(f),
                ..Flags::default()
            };
            match (load(&flags, &env(&[])), c["error"].as_str()) {
                (Ok(_), None) => {}
                (Err(e), None) => panic!("{name}: refused: {e:?}"),
                (Ok(_), Some(want)) => panic!("{name}: accepted, wanted `{want}`"),
                (Err(e), Some(want)) => {
                    assert!(
                        e.iter().any(|x| x.contains(want)),
                        "{name}: {e:?}, wanted `{want}`"
                    )
                }
            }
        }
    }

    #[test]
    fn defaults_with_nothing_set() {
        let c = load(&Flags::default(), &env(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.token_default_lifetime_secs, 300);
    }

    /// Issue 23: `[telemetry]` read from a file (a float ratio too) and the env, and
    /// its refusals.
    #[test]
    fn telemetry_keys_and_their_refusals() {
        let c = load(&Flags::default(), &env(&[])).unwrap();
        assert_eq!(c.telemetry_otlp_endpoint, None);
        assert_eq!(c.telemetry_service_name, "mandate");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.toml");
        std::fs::write(
            &f,
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\n\
             service_name = \"m1\"\nsampling_ratio = 0.25\n",
        )
        .unwrap();
        let file = Flags {
            config: Some(f),
            ..Flags::default()
        };
        let c = load(&file, &env(&[])).unwrap();
        assert_eq!(
            c.telemetry_otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(c.telemetry_service_name, "m1");
        assert!((c.telemetry_sampling_ratio - 0.25).abs() < f64::EPSILON);
        for (k, v) in [
            ("MANDATE_TELEMETRY_SAMPLING_RATIO", "1.5"),
            ("MANDATE_TELEMETRY_SAMPLING_RATIO", "NaN"),
            ("MANDATE_TELEMETRY_OTLP_ENDPOINT", "collector:4318"),
            (
                "MANDATE_TELEMETRY_OTLP_ENDPOINT",
                "http://user:secret@127.0.0.1:4318/v1/traces",
            ),
            ("MANDATE_TELEMETRY_SERVICE_NAME", ""),
        ] {
            assert!(load(&Flags::default(), &env(&[(k, v)])).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn precedence_file_env_flag() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:1\"\n[token]\ndefault_lifetime_secs = 60\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(f.clone()),
            ..Flags::default()
        };
        let c = load(&flags, &env(&[("MANDATE_LISTEN", "127.0.0.1:2")])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:2");
        assert_eq!(c.token_default_lifetime_secs, 60);
        let flags = Flags {
            config: Some(f),
            listen: Some("127.0.0.1:3".into()),
            ..Flags::default()
        };
        let c = load(&flags, &env(&[("MANDATE_LISTEN", "127.0.0.1:2")])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:3");
    }

    /// `store.url` from the file, `MANDATE_STORE_URL` or `--store` (later wins); no URL
    /// is SQLite; a URL of another scheme is refused without repeating it (it may hold a
    /// password), and `--dev` with a store URL is refused (no takeover).
    #[test]
    fn store_url_from_each_source_and_its_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.toml");
        std::fs::write(&f, "[store]\nurl = \"postgres://a@db1/m\"\n").unwrap();
        assert!(
            load(&Flags::default(), &env(&[]))
                .unwrap()
                .store_url
                .is_none()
        );
        let file = Flags {
            config: Some(f),
            ..Flags::default()
        };
        let c = load(&file, &env(&[])).unwrap();
        assert_eq!(c.store_url.unwrap().expose(), "postgres://a@db1/m");
        let pg_env = env(&[("MANDATE_STORE_URL", "postgresql://b@db2/m")]);
        let c = load(&file, &pg_env).unwrap();
        assert_eq!(
            c.store_url.as_ref().unwrap().expose(),
            "postgresql://b@db2/m"
        );
        assert_eq!(format!("{:?}", c.store_url), "Some(StoreUrl(postgres://…))");
        let flag = Flags {
            store: Some("postgres://c@db3/m".into()),
            ..file.clone()
        };
        let c = load(&flag, &pg_env).unwrap();
        assert_eq!(c.store_url.unwrap().expose(), "postgres://c@db3/m");

        let errs = load(
            &Flags::default(),
            &env(&[("MANDATE_STORE_URL", "mysql://u:hunter2@db/m")]),
        )
        .unwrap_err()
        .join("\n");
        assert!(errs.contains("`store.url` must be a postgres://"), "{errs}");
        assert!(!errs.contains("hunter2"), "{errs}");

        let dev = Flags {
            dev: true,
            store: Some("postgres://c@db3/m".into()),
            ..Flags::default()
        };
        let errs = load(&dev, &env(&[])).unwrap_err().join("\n");
        assert!(
            errs.contains("`--dev`") && errs.contains("store.url"),
            "{errs}"
        );
    }

    /// `cluster.node_id` from the environment or `--node-id` (the flag wins), checked as
    /// a node name, and only beside `store.url` (a SQLite file names its own node).
    #[test]
    fn cluster_node_id_from_env_and_flag_and_its_refusals() {
        let pg = Flags {
            store: Some("postgres://a@db/m".into()),
            ..Flags::default()
        };
        assert_eq!(load(&pg, &env(&[])).unwrap().cluster_node_id, None);
        let c = load(&pg, &env(&[("MANDATE_CLUSTER_NODE_ID", "node-1")])).unwrap();
        assert_eq!(c.cluster_node_id.as_deref(), Some("node-1"));
        let flag = Flags {
            node_id: Some("node-2".into()),
            ..pg.clone()
        };
        let c = load(&flag, &env(&[("MANDATE_CLUSTER_NODE_ID", "node-1")])).unwrap();
        assert_eq!(c.cluster_node_id.as_deref(), Some("node-2"));
        let bad = Flags {
            node_id: Some("no/slashes".into()),
            ..pg.clone()
        };
        let errs = load(&bad, &env(&[])).unwrap_err().join("\n");
        assert!(errs.contains("`cluster.node_id` must be 1 to 64"), "{errs}");
        let sqlite = Flags {
            node_id: Some("node-1".into()),
            ..Flags::default()
        };
        let errs = load(&sqlite, &env(&[])).unwrap_err().join("\n");
        assert!(errs.contains("set `store.url` too"), "{errs}");
    }

    #[test]
    fn every_error_listed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.toml");
        std::fs::write(
            &f,
            "listn = \"x\"\nlisten = \"nope\"\n[token]\ndefault_lifetime_secs = 0\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(f),
            ..Flags::default()
        };
        let errs = load(
            &flags,
            &env(&[("MANDATE_LOG_LEVL", "x"), ("MANDATE_ISSUER", "ftp:/x/")]),
        )
        .unwrap_err();
        let all = errs.join("\n");
        for want in [
            "`listn`",
            "`listen`",
            "default_lifetime_secs",
            "MANDATE_LOG_LEVL",
            "`issuer`",
        ] {
            assert!(all.contains(want), "missing {want} in:\n{all}");
        }
        assert_eq!(errs.len(), 5, "{all}");
    }

    #[test]
    fn dev_changes_defaults_and_every_source_still_overrides() {
        let dev = Flags {
            dev: true,
            ..Flags::default()
        };
        let c = load(&dev, &env(&[])).unwrap();
        assert!(c.dev && c.dev_user_tokens && !c.data_dir_given);
        assert_eq!(
            (c.detect.learning_secs, c.detect.learning_min_events),
            (0, DEV_LEARNING_MIN_REQUESTS)
        );
        let c = load(
            &Flags {
                data_dir: Some("/tmp/x".into()),
                listen: Some("127.0.0.1:9".into()),
                ..dev.clone()
            },
            &env(&[
                ("MANDATE_DEV_USER_TOKENS", "false"),
                ("MANDATE_DETECT_LEARNING_MIN_REQUESTS", "5"),
            ]),
        )
        .unwrap();
        assert!(c.data_dir_given && !c.dev_user_tokens);
        assert_eq!(c.listen.to_string(), "127.0.0.1:9");
        assert_eq!(c.detect.learning_min_events, 5);
        // Without `--dev`, nothing changes.
        let c = load(&Flags::default(), &env(&[])).unwrap();
        assert!(!c.dev && !c.dev_user_tokens);
        assert_eq!(c.detect.learning_secs, 7 * 86_400);
    }

    #[test]
    fn token_signing_alg() {
        use mandate_token::jws::SigningAlg;
        let c = load(&Flags::default(), &env(&[])).unwrap();
        assert_eq!(c.token_signing_alg, SigningAlg::EdDsa);
        let c = load(
            &Flags::default(),
            &env(&[("MANDATE_TOKEN_SIGNING_ALG", "Ed25519")]),
        )
        .unwrap();
        assert_eq!(c.token_signing_alg, SigningAlg::Ed25519);
        for bad in ["ed25519", "ES256", ""] {
            let errs = load(
                &Flags::default(),
                &env(&[("MANDATE_TOKEN_SIGNING_ALG", bad)]),
            )
            .unwrap_err();
            assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
        }
    }

    #[test]
    fn gateway_body_and_stream_timeouts() {
        let c = load(&Flags::default(), &env(&[])).unwrap();
        assert_eq!(
            (c.gateway_body_timeout_secs, c.gateway_stream_idle_secs),
            (30, 300)
        );
        let c = load(
            &Flags::default(),
            &env(&[
                ("MANDATE_GATEWAY_BODY_TIMEOUT_SECS", "3"),
                ("MANDATE_GATEWAY_STREAM_IDLE_SECS", "60"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (c.gateway_body_timeout_secs, c.gateway_stream_idle_secs),
            (3, 60)
        );
        let errs = load(
            &Flags::default(),
            &env(&[
                ("MANDATE_GATEWAY_BODY_TIMEOUT_SECS", "0"),
                ("MANDATE_GATEWAY_STREAM_IDLE_SECS", "1"),
            ]),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
    }

    #[test]
    fn detection_from_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.toml");
        std::fs::write(
            &f,
            "[detect]\nlearning_days = 14\nsensitive_data_classes = \"pii, hr\"\n\
             [detect.responses]\nhigh = \"suspend\"\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(f),
            ..Flags::default()
        };
        let cfg = load(&flags, &env(&[("MANDATE_DETECT_RATE_FACTOR", "8")])).unwrap();
        assert!(cfg.detect_enabled);
        assert_eq!(cfg.detect.learning_secs, 14 * 86_400);
        assert!((cfg.detect.rate_factor - 8.0).abs() < f64::EPSILON);
        assert_eq!(cfg.detect.responses.high, mandate_detect::Response::Suspend);
        assert_eq!(
            cfg.detect.sensitive_data_classes.iter().collect::<Vec<_>>(),
            ["hr", "pii"]
        );
        // A weaker response for a higher severity, and a bad name, are refused.
        let errs = load(
            &Flags::default(),
            &env(&[
                ("MANDATE_DETECT_RESPONSES_CRITICAL", "record"),
                ("MANDATE_DETECT_RESPONSES_LOW", "shout"),
            ]),
        )
        .unwrap_err();
        let all = errs.join("\n");
        assert!(all.contains("must not weaken"), "{all}");
        assert!(all.contains("record, alert, step_up, suspend"), "{all}");
    }

    /// Issue 18 follow-up 6 (5): one budget for the bytes both gateways buffer.
    #[test]
    fn the_gateway_body_budget() {
        let c = load(&Flags::default(), &env(&[])).unwrap();
        assert_eq!(c.gateway_max_buffered_bytes, 256 * 1024 * 1024);
        let c = load(
            &Flags::default(),
            &env(&[("MANDATE_GATEWAY_MAX_BUFFERED_BYTES", "20971520")]),
        )
        .unwrap();
        assert_eq!(c.gateway_max_buffered_bytes, 20 * 1024 * 1024);
        for bad in ["0", "x", "1048576"] {
            let errs = load(
                &Flags::default(),
                &env(&[("MANDATE_GATEWAY_MAX_BUFFERED_BYTES", bad)]),
            )
            .unwrap_err();
            assert!(
                errs.join("\n").contains("max_buffered_bytes"),
                "{bad}: {errs:?}"
            );
        }
    }

    #[test]
    fn the_gateway_body_timeout() {
        let c = load(&Flags::default(), &env(&[])).unwrap();
        assert_eq!(c.gateway_body_timeout_secs, 30);
        let c = load(
            &Flags::default(),
            &env(&[("MANDATE_GATEWAY_BODY_TIMEOUT_SECS", "5")]),
        )
        .unwrap();
        assert_eq!(c.gateway_body_timeout_secs, 5);
        for bad in ["0", "3601", "x"] {
            let errs = load(
                &Flags::default(),
                &env(&[("MANDATE_GATEWAY_BODY_TIMEOUT_SECS", bad)]),
            )
            .unwrap_err();
            assert!(
                errs.join("\n").contains("body_timeout_secs"),
                "{bad}: {errs:?}"
            );
        }
    }
}
