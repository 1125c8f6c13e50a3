//! The fetcher of trusted issuers' JWK Sets (`jwks_uri`, or OIDC discovery:
//! `<issuer>/.well-known/openid-configuration` → `jwks_uri`): the IO half of
//! `mandate_token::user::KeyCell`, which every user-token verification reads.
//!
//! - Fetched at start (an IdP that does not answer does not stop the node: its tokens
//!   are refused until keys arrive), then again when `Cache-Control: max-age` says,
//!   bounded to `refresh_min`..=24 h (1 h when the IdP says nothing).
//! - INVARIANT (rate-limited refetch): a token naming an unknown key wakes the fetcher,
//!   but two fetches are never closer than `refetch_min` (30 s by default), whatever
//!   the number of wakes: a flood of tokens with made-up `kid`s costs the IdP one
//!   request per `refetch_min`.
//! - A failed fetch (unreachable, timeout, not 200, more than [`MAX_BODY_BYTES`], not a
//!   usable JWKS, a discovery document naming another issuer) keeps the last good keys;
//!   they serve until their refresh was due plus `max_stale` (`INVARIANT (bounded stale
//!   keys)` in mandate-token), then the issuer's tokens are refused. Retried every
//!   `refetch_min`.
//! - Every attempt counts in `mandate_jwks_fetches_total{issuer, outcome}`; the
//!   seconds the keys have left show in `mandate_jwks_usable_seconds{issuer}`.

use std::sync::Arc;
use std::time::Duration;

use mandate_core::clock::Clock;
use mandate_core::time::Timestamp;
use mandate_token::user::KeyCell;
use serde_json::Value;
use tokio::time::Instant;

/// The largest JWKS or discovery document read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// One fetch's limit, connect to last byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The refresh interval when the IdP names none.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);
/// The longest refresh interval, whatever the IdP says.
pub const MAX_REFRESH: Duration = Duration::from_secs(86_400);
/// Defaults of the per-issuer settings.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(86_400);
/// See [`JwksSource::refetch_min`].
pub const DEFAULT_REFETCH_MIN: Duration = Duration::from_secs(30);
/// See [`JwksSource::refresh_min`].
pub const DEFAULT_REFRESH_MIN: Duration = Duration::from_secs(300);

/// Where one issuer's keys are fetched from, and how.
#[derive(Debug, Clone)]
pub struct JwksSource {
    /// The issuer (`iss`): the metrics label, and what a discovery document must name.
    pub issuer: String,
    /// The JWKS URL, or with `discovery` the discovery document's.
    pub url: String,
    /// `url` is an OpenID Provider configuration naming `jwks_uri`.
    pub discovery: bool,
    /// TLS for both fetches.
    pub tls: mandate_egress::Settings,
    /// A discovered `jwks_uri` may be plain `http://` to a host that is not loopback.
    pub allow_http: bool,
    /// How long the last good keys serve past their due refresh.
    pub max_stale: Duration,
    /// The least time between two fetches.
    pub refetch_min: Duration,
    /// The shortest refresh interval, whatever `max-age` says.
    pub refresh_min: Duration,
}

/// Why a fetch failed: a metrics outcome and a message for the log.
#[derive(Debug)]
struct Failed(&'static str, String);

/// Starts fetching `source` into `cell` for the life of the process (on the current
/// Tokio runtime). `Err`: the TLS settings do not build (checked at config load
/// already).
pub fn spawn(
    source: JwksSource,
    cell: Arc<KeyCell>,
    clock: Arc<dyn Clock>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let client = mandate_egress::builder(&source.tls)
        .map_err(|e| format!("trusted issuer `{}`: {e}", source.issuer))?
        .no_proxy()
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| format!("trusted issuer `{}`: HTTP client: {e}", source.issuer))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<()>(1);
    // Never blocks the verifying path: a full channel already holds a wake.
    cell.on_unknown_key(Box::new(move || {
        let _ = tx.try_send(());
    }));
    mandate_service::metrics::jwks_source(&source.issuer);
    Ok(tokio::spawn(run(source, cell, clock, client, rx)))
}

async fn run(
    source: JwksSource,
    cell: Arc<KeyCell>,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    mut wakes: tokio::sync::mpsc::Receiver<()>,
) {
    let refetch_min = source.refetch_min.max(Duration::from_secs(1));
    let mut next = Instant::now();
    let mut last: Option<Instant> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            w = wakes.recv() => {
                if w.is_none() {
                    // The cell is gone: nobody verifies with these keys any more.
                    return;
                }
                // INVARIANT (rate-limited refetch): not before `refetch_min` after the
                // last attempt.
                if let Some(t) = last {
                    tokio::time::sleep_until(next.min(t + refetch_min)).await;
                }
            }
        }
        while wakes.try_recv().is_ok() {}
        last = Some(Instant::now());
        let outcome = match fetch(&client, &source).await {
            Ok((jwks, max_age)) => {
                let interval = max_age
                    .unwrap_or(DEFAULT_REFRESH)
                    .clamp(source.refresh_min.min(MAX_REFRESH), MAX_REFRESH);
                let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                let until = Timestamp::from_secs(
                    clock
                        .now()
                        .secs()
                        .saturating_add(secs(interval))
                        .saturating_add(secs(source.max_stale)),
                );
                match cell.install(&jwks, until) {
                    Ok(n) => {
                        tracing::debug!(issuer = %source.issuer, keys = n, "JWKS refreshed");
                        // Never sooner than `refetch_min` either (the invariant holds
                        // for the periodic refresh too).
                        next = Instant::now() + interval.max(refetch_min);
                        "ok"
                    }
                    Err(e) => {
                        tracing::warn!(issuer = %source.issuer, error = %e, "JWKS refused; the last good keys are kept");
                        next = Instant::now() + refetch_min;
                        "invalid"
                    }
                }
            }
            Err(Failed(outcome, why)) => {
                tracing::warn!(issuer = %source.issuer, error = %why, "JWKS fetch failed; the last good keys are kept");
                next = Instant::now() + refetch_min;
                outcome
            }
        };
        mandate_service::metrics::jwks_fetched(&source.issuer, outcome);
    }
}

/// The JWKS text and the `max-age` its answer gave.
async fn fetch(
    client: &reqwest::Client,
    source: &JwksSource,
) -> Result<(String, Option<Duration>), Failed> {
    let jwks_uri = if source.discovery {
        let (doc, _) = get(client, &source.url).await?;
        let doc: Value = serde_json::from_str(&doc)
            .map_err(|_| Failed("invalid", "the discovery document is not JSON".into()))?;
        // OpenID Connect Discovery 1.0 §4.3: the `issuer` must be the one asked about.
        if doc.get("issuer").and_then(Value::as_str) != Some(source.issuer.as_str()) {
            return Err(Failed(
                "invalid",
                "the discovery document names another issuer".into(),
            ));
        }
        let uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| Failed("invalid", "the discovery document has no `jwks_uri`".into()))?
            .to_owned();
        mandate_egress::check_url("jwks_uri", "allow_http", &uri, source.allow_http)
            .map_err(|e| Failed("invalid", format!("discovered {e}")))?;
        uri
    } else {
        source.url.clone()
    };
    get(client, &jwks_uri).await
}

/// A GET of `url`: its body (at most [`MAX_BODY_BYTES`]) and `Cache-Control: max-age`.
async fn get(client: &reqwest::Client, url: &str) -> Result<(String, Option<Duration>), Failed> {
    let mut res = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| Failed("unreachable", mandate_egress::error_chain(&e)))?;
    if res.status() != reqwest::StatusCode::OK {
        return Err(Failed("status", format!("HTTP {}", res.status().as_u16())));
    }
    let max_age = res
        .headers()
        .get_all("cache-control")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(max_age);
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| Failed("unreachable", mandate_egress::error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Failed(
                "invalid",
                format!("larger than {MAX_BODY_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| Failed("invalid", "not UTF-8".into()))?;
    Ok((text, max_age))
}

/// `max-age` of a `Cache-Control` value (`no-store`/`no-cache`: 0, so the lower bound).
fn max_age(v: &str) -> Option<Duration> {
    v.split(',').map(str::trim).find_map(|d| {
        if d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        let (k, n) = d.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| n.trim().trim_matches('"').parse::<u64>().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        let s = |n| Some(Duration::from_secs(n));
        assert_eq!(max_age("max-age=600"), s(600));
        assert_eq!(max_age("public, Max-Age = 60 , must-revalidate"), s(60));
        assert_eq!(max_age("no-store"), s(0));
        assert_eq!(max_age("private"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }
}
