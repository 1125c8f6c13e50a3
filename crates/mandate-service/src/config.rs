//! What a node needs to know that is not in the store: the configuration the binary
//! builds from its merged settings (files, environment, flags) and hands to the node.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use mandate_audit::redact::Rule;
use mandate_detect::DetectConfig;
use mandate_token::user::{DevUserIssuer, TrustedIssuers};

use crate::audit::CheckpointPolicy;

/// What the server needs to know that is not in the store. Built by the binary from
/// the merged configuration; there is no `Default` because the issuer has none.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The issuer URL (`iss` of tokens, base of the metadata URLs), no trailing slash.
    pub issuer: String,
    /// The `aud` of tokens requested without an RFC 8707 `resource`.
    pub default_audience: String,
    /// Access-token lifetime when the agent's boundary allows it.
    pub default_token_lifetime_secs: u32,
    /// The longest lifetime of any token this server issues (bounds key publication).
    pub max_token_lifetime_secs: u32,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// This node's audit signing key (PKCS#8 PEM, mode 0600; created on first start).
    pub audit_key_path: PathBuf,
    /// When to sign audit checkpoints.
    pub checkpoint: CheckpointPolicy,
    /// Redaction of top-level `context` fields in audit events (others are kept).
    pub redact: BTreeMap<String, Rule>,
    /// Mandates, approvals and delegation.
    pub mandates: MandateConfig,
    /// Issuers whose user tokens name the humans agents act for.
    pub users: Arc<TrustedIssuers>,
    /// The local development user issuer, when the operator enabled it (its issuer is
    /// then also in `users`).
    pub dev_users: Option<Arc<DevUserIssuer>>,
    /// Anomaly detection.
    pub detect: DetectSettings,
    /// The Shared Signals transmitters whose SETs this node acts on (`ssf.rs`; none:
    /// every pushed SET is refused as from an untrusted issuer).
    pub ssf: Arc<SsfTransmitters>,
    /// `cluster.max_staleness`: over a shared store, how old this node's last proof of a
    /// complete change feed may be before it refuses to decide (freshness.rs;
    /// [`crate::freshness::DEFAULT_MAX_STALENESS`]). Unused on a single node's store.
    pub max_staleness: std::time::Duration,
    /// Access review campaigns (`[reviews]`).
    pub reviews: ReviewConfig,
    /// DPoP proofs (`[dpop]`, dpop.rs).
    pub dpop: crate::dpop::DpopConfig,
    /// Client authentication by TLS client certificate (RFC 8705 §2).
    pub client_certs: ClientCertAuth,
}

/// Client authentication by TLS client certificate (RFC 8705 §2): whether the API
/// listener asks clients for a certificate (`tls.client_auth = "optional"`), which
/// makes `self_signed_tls_client_auth` usable, and the CA bundle client certificates of
/// `tls_client_auth` credentials chain to (`tls.client_ca_file`).
#[derive(Debug, Clone, Default)]
pub struct ClientCertAuth {
    /// The API listener asks for client certificates.
    pub asked: bool,
    /// The client CA (`tls_client_auth`); `None`: no `tls_client_auth` credential
    /// authenticates anyone.
    pub ca: Option<Arc<mandate_tls::client_cert::ClientCa>>,
}

/// Access review settings (`[reviews]`). The default suspends nothing.
#[derive(Debug, Clone, Default)]
pub struct ReviewConfig {
    /// `reviews.suspend_overdue`: an item still pending past its campaign's due time is
    /// escalated and its agent suspended (otherwise only escalated).
    pub suspend_overdue: bool,
}

/// Mandates, approvals and delegation settings.
#[derive(Debug, Clone)]
pub struct MandateConfig {
    /// How long a request waits for an approver before it is denied.
    pub approval_timeout_secs: u32,
    /// The longest lifetime a mandate may ask for.
    pub max_lifetime_secs: u32,
    /// How many agents a mandate token's `act` chain may hold (the mandate's own agent
    /// counts as one).
    pub max_delegation_depth: usize,
    /// Users in this group (from their token's groups claim) may approve requests.
    pub approver_group: Option<String>,
    /// Where new approval requests are announced.
    pub webhook: Option<WebhookConfig>,
}

impl Default for MandateConfig {
    fn default() -> Self {
        Self {
            approval_timeout_secs: 300,
            max_lifetime_secs: 3600,
            max_delegation_depth: 5,
            approver_group: None,
            webhook: None,
        }
    }
}

impl ServerConfig {
    /// The audiences that name Mandate itself: the issuer, and the default audience
    /// (what a token requested without a `resource` is for; it defaults to the
    /// issuer). See `INVARIANT (audience)` in decide.rs.
    pub fn own_audiences(&self) -> Vec<String> {
        let mut v = vec![self.issuer.clone()];
        if self.default_audience != self.issuer {
            v.push(self.default_audience.clone());
        }
        v
    }

    /// Whether `aud` is one of [`ServerConfig::own_audiences`], without building them.
    pub fn is_own_audience(&self, aud: &str) -> bool {
        aud == self.issuer || aud == self.default_audience
    }

    /// The token endpoint's URL (an accepted client-assertion audience).
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth/token", self.issuer)
    }
}

/// How the detector is set up.
#[derive(Debug, Clone)]
pub struct DetectSettings {
    /// Off: no baselines, every risk is 0.
    pub enabled: bool,
    /// Learning period, thresholds, responses.
    pub config: DetectConfig,
    /// Where `alert` responses are sent.
    pub alerts: Option<WebhookConfig>,
}

impl Default for DetectSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            config: DetectConfig::default(),
            alerts: None,
        }
    }
}

/// Where to send, and the shared secret (never logged, never returned by any API).
#[derive(Clone)]
pub struct WebhookConfig {
    /// An `https://` URL (or `http://` to loopback, or where `allow_http` said so).
    pub url: String,
    /// The HMAC key.
    pub secret: Vec<u8>,
    /// How the receiver's certificate is trusted and what certificate is presented.
    pub tls: mandate_tls::Settings,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("tls", &self.tls)
            .finish()
    }
}

/// The Shared Signals transmitters this node trusts (`ssf.rs`): their SET verifiers, and
/// whose users each speaks for.
#[derive(Debug, Default)]
pub struct SsfTransmitters {
    /// Verifiers by `iss` (issuer, audience, keys, algorithms).
    pub verifiers: mandate_token::user::TrustedIssuers,
    /// For each transmitter `iss`, the issuer of the users it speaks for (absent: its
    /// own `iss`).
    pub users_issuer: std::collections::HashMap<String, String>,
}
