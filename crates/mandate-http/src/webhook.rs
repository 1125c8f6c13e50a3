//! Signed webhooks: new approval requests are POSTed to the approvers' tool with an
//! HMAC-SHA256 signature over the timestamp and the body, and retried with backoff.
//!
//! Header: `Mandate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//! A receiver recomputes the HMAC over the exact bytes it received, compares in
//! constant time, and refuses a `t` older than a few minutes (replay). Delivery never
//! delays or changes a decision: it runs on its own task, and a failure is logged.
//! The receiver is reached over `mandate-egress` with the webhook's TLS settings
//! (`*_ca_file`, `*_client_cert_file`, `*_client_key_file`, `*_server_name`).

pub use mandate_service::config::WebhookConfig;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The name of the signature header.
pub const SIGNATURE_HEADER: &str = "mandate-signature";

/// Attempts per delivery, and the first wait between them (doubled each time).
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The signature header's value for `body` sent at `t`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// The node's [`mandate_service::Webhooks`] port, delivered by [`deliver`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Signed;

impl mandate_service::Webhooks for Signed {
    fn send(&self, hook: &WebhookConfig, at: i64, body: serde_json::Value) {
        deliver(hook, at, body);
    }
}

/// Sends `body` (JSON) in the background, signed at `t`, retrying on a network error or
/// a non-2xx answer.
pub fn deliver(config: &WebhookConfig, t: i64, body: serde_json::Value) {
    let config = config.clone();
    tokio::spawn(async move {
        let bytes = body.to_string().into_bytes();
        let sig = signature(&config.secret, t, &bytes);
        let client = match mandate_egress::builder(&config.tls) {
            Ok(b) => b
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "webhook client");
                return;
            }
        };
        let mut wait = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let sent = client
                .post(&config.url)
                .header("content-type", "application/json")
                .header(SIGNATURE_HEADER, &sig)
                .body(bytes.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => tracing::warn!(status = %r.status(), attempt, "webhook refused"),
                Err(e) => {
                    tracing::warn!(error = %mandate_egress::error_chain(&e), attempt, "webhook not delivered")
                }
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
        }
        tracing::error!(url = %config.url, "webhook given up after {ATTEMPTS} attempts");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_signature() {
        // HMAC-SHA256("secret", "1700000000.{}") computed with Python's hmac module.
        let s = signature(b"secret", 1_700_000_000, b"{}");
        assert_eq!(
            s,
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        assert_ne!(s, signature(b"secret", 1_700_000_001, b"{}"));
        assert_ne!(s, signature(b"other", 1_700_000_000, b"{}"));
    }
}
