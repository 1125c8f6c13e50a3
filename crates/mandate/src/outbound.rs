//! The outbound targets' TLS and plain-HTTP settings, and their check at config load
//! (issue 25, TLS out): each target — a webhook, a gateway route's upstream, an MCP
//! upstream, a trusted issuer's JWKS or discovery URL — takes `ca_file`,
//! `client_cert_file`, `client_key_file`, `server_name` (`mandate_tls::Settings`) and
//! `allow_http`.
//!
//! INVARIANT (outbound checked at start): `config::check_outbound` runs every configured outbound URL
//! through `mandate_tls::check_url` (plain `http://` only to loopback unless the
//! target's `allow_http`) and builds every target's TLS client once, so a CA bundle that
//! does not parse, a missing file or half a client identity stops `mandate serve` with
//! the key named — never a failure at the first connection.

use std::path::PathBuf;

/// A target's TLS settings and its `allow_http`, as config tables carry them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetTls {
    /// `ca_file`: a PEM bundle of the CAs trusted instead of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// `client_cert_file`: the client certificate chain (PEM), for mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    /// `client_key_file`: its private key (PEM, mode 0600).
    pub client_key_file: Option<PathBuf>,
    /// `server_name`: the name the server's certificate must carry.
    pub server_name: Option<String>,
    /// `allow_http`: plain `http://` to a host that is not loopback is allowed.
    pub allow_http: bool,
}

impl TargetTls {
    /// The TLS client settings.
    pub fn settings(&self) -> mandate_egress::Settings {
        mandate_egress::Settings {
            ca_file: self.ca_file.clone(),
            client_cert_file: self.client_cert_file.clone(),
            client_key_file: self.client_key_file.clone(),
            server_name: self.server_name.clone(),
        }
    }
}

/// The scalar-keyed targets: `approvals.webhook_*`, `detect.alert_webhook_*` and the
/// OTLP collector (`telemetry.otlp_*`).
#[derive(Debug, Clone, Default)]
pub struct WebhookTls {
    /// `approvals.webhook_{ca_file,client_cert_file,client_key_file,server_name,allow_http}`.
    pub approvals: TargetTls,
    /// `detect.alert_webhook_{…}`.
    pub alerts: TargetTls,
    /// `telemetry.otlp_{…}`: the OTLP/HTTP traces collector.
    pub otlp: TargetTls,
}

/// The webhook targets' prefixes, and the suffixes of their TLS keys.
pub const WEBHOOK_TLS_KEYS: &[&str] = &[
    "approvals.webhook_ca_file",
    "approvals.webhook_client_cert_file",
    "approvals.webhook_client_key_file",
    "approvals.webhook_server_name",
    "approvals.webhook_allow_http",
    "detect.alert_webhook_ca_file",
    "detect.alert_webhook_client_cert_file",
    "detect.alert_webhook_client_key_file",
    "detect.alert_webhook_server_name",
    "detect.alert_webhook_allow_http",
    "telemetry.otlp_ca_file",
    "telemetry.otlp_client_cert_file",
    "telemetry.otlp_client_key_file",
    "telemetry.otlp_server_name",
    "telemetry.otlp_allow_http",
];

/// Applies one of [`WEBHOOK_TLS_KEYS`] (`v` its value as text); `Err`: what the value
/// must be.
pub fn set_webhook_key(w: &mut WebhookTls, key: &str, v: &str) -> Result<(), &'static str> {
    let (t, field) = if let Some(f) = key.strip_prefix("approvals.webhook_") {
        (&mut w.approvals, f)
    } else if let Some(f) = key.strip_prefix("detect.alert_webhook_") {
        (&mut w.alerts, f)
    } else if let Some(f) = key.strip_prefix("telemetry.otlp_") {
        (&mut w.otlp, f)
    } else {
        return Err("is not a webhook TLS key");
    };
    let path = || (!v.is_empty()).then(|| PathBuf::from(v));
    match field {
        "ca_file" => t.ca_file = path(),
        "client_cert_file" => t.client_cert_file = path(),
        "client_key_file" => t.client_key_file = path(),
        "server_name" => t.server_name = (!v.is_empty()).then(|| v.to_owned()),
        "allow_http" => {
            t.allow_http = match v {
                "true" => true,
                "false" => false,
                _ => return Err("must be true or false"),
            }
        }
        _ => return Err("is not a webhook TLS key"),
    }
    Ok(())
}

/// Checks one target: its URL (`url_key`, the key that says to allow plain HTTP is
/// `allow_key`) and its TLS settings, built now when the target is `https://` or sets
/// any (a missing system root store matters to an `https://` target only).
pub fn check_target(
    errors: &mut Vec<String>,
    what: &str,
    url_key: &str,
    allow_key: &str,
    url: &str,
    tls: &TargetTls,
) {
    if let Err(e) = mandate_egress::check_url(url_key, allow_key, url, tls.allow_http) {
        errors.push(format!("{what}{e}"));
    }
    let settings = tls.settings();
    let https = url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    if (https || settings != mandate_egress::Settings::default())
        && let Err(e) = mandate_egress::Client::new(&settings)
    {
        errors.push(format!("{what}{e}"));
    }
}
