//! Issue 25 (TLS out), against real TLS servers on loopback (rcgen certificates): a
//! signed webhook delivered to an HTTPS receiver trusted through a private CA, and
//! trusted issuers' keys fetched from an IdP's `jwks_uri` or OIDC discovery —
//! verification, rotation picked up on an unknown `kid`, the rate limit of those
//! refetches under a flood of made-up `kid`s, garbage answers keeping the last good
//! keys, and an IdP that stays down ending in refusal after `max_stale`.
//!
//! These tests wait on real time (the fetcher's timers), with short settings.

#![expect(
    clippy::unwrap_used,
    reason = "test: a failed step fails the test loudly"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mandate_core::clock::{Clock, SystemClock};
use mandate_core::random::OsRandom;
use mandate_http::jwks_fetch::{self, JwksSource};
use mandate_token::keys::SigningKey;
use mandate_token::user::{
    ClaimNames, DevUserIssuer, TrustedIssuer, TrustedIssuers, UserTokenError,
};
use serde_json::{Value, json};

use super::tls_pki::{Ca, file, https};

/// A signed webhook reaches an `https://` receiver whose certificate chains to the
/// webhook's `ca_file`.
#[tokio::test]
async fn issue25_a_webhook_is_delivered_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("hooks CA");
    let leaf = ca.leaf(&["localhost"]);
    let (app, mut rx) = super::webhook_router();
    let port = https(app, &leaf, None).await;
    let hook = mandate_http::webhook::WebhookConfig {
        url: format!("https://localhost:{port}/hook"),
        secret: b"a-webhook-secret-of-24-chars".to_vec(),
        tls: mandate_tls::Settings {
            ca_file: Some(file(dir.path(), "ca.pem", &ca.pem)),
            ..mandate_tls::Settings::default()
        },
    };
    mandate_http::webhook::deliver(&hook, 1_700_000_000, json!({"hello": "tls"}));
    let (sig, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("delivered in time")
        .unwrap();
    assert_eq!(body.as_ref(), br#"{"hello":"tls"}"#);
    assert_eq!(
        sig,
        mandate_http::webhook::signature(&hook.secret, 1_700_000_000, &body)
    );
}

/// What the test IdP answers at its JWKS URL.
#[derive(Clone)]
enum Answer {
    Keys(String),
    Garbage(&'static str),
    Down,
}

/// A test IdP over HTTPS: `/.well-known/openid-configuration` names `issuer` and its
/// `/jwks`, which answers `answer` with `Cache-Control: max-age=<max_age>`; each JWKS
/// request is counted.
struct Idp {
    port: u16,
    answer: Arc<Mutex<Answer>>,
    jwks_hits: Arc<AtomicUsize>,
    ca_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Idp {
    async fn start(max_age: u64, issuer_of: fn(u16) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("IdP CA");
        let leaf = ca.leaf(&["localhost"]);
        let answer = Arc::new(Mutex::new(Answer::Down));
        let jwks_hits = Arc::new(AtomicUsize::new(0));
        let (a, hits) = (Arc::clone(&answer), Arc::clone(&jwks_hits));
        let port_cell: Arc<Mutex<u16>> = Arc::default();
        let pc = Arc::clone(&port_cell);
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let port = *pc.lock().unwrap();
                    async move {
                        axum::Json(json!({
                            "issuer": issuer_of(port),
                            "jwks_uri": format!("https://localhost:{port}/jwks"),
                        }))
                    }
                }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let now = a.lock().unwrap().clone();
                    async move {
                        let cache = [("cache-control", format!("max-age={max_age}"))];
                        match now {
                            Answer::Keys(k) => (StatusCode::OK, cache, k),
                            Answer::Garbage(g) => (StatusCode::OK, cache, g.to_owned()),
                            Answer::Down => (StatusCode::SERVICE_UNAVAILABLE, cache, String::new()),
                        }
                    }
                }),
            );
        let port = https(app, &leaf, None).await;
        *port_cell.lock().unwrap() = port;
        let ca_file = file(dir.path(), "idp-ca.pem", &ca.pem);
        Self {
            port,
            answer,
            jwks_hits,
            ca_file,
            _dir: dir,
        }
    }

    fn set(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }

    fn hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }
}

fn issuer_at(port: u16) -> String {
    format!("https://localhost:{port}")
}

fn another_issuer(_: u16) -> String {
    "https://impostor.example".to_owned()
}

/// A key of the IdP, its JWKS, and a token of it for `alice`.
struct Key {
    signer: DevUserIssuer,
    jwks: String,
}

impl Key {
    fn new(issuer: &str) -> Self {
        let k = SigningKey::generate(&OsRandom).unwrap();
        let jwks = json!({"keys": [k.public_jwk()]}).to_string();
        Self {
            signer: DevUserIssuer::new(k, issuer.to_owned(), "mandate".to_owned()),
            jwks,
        }
    }

    fn token(&self) -> String {
        self.signer
            .issue("alice", None, &[], 600, "j1", SystemClock.now())
            .unwrap()
    }
}

/// A token of `issuer` naming `kid`, with a signature that does not matter: a `kid`
/// the keys do not hold is refused before any signature check.
fn token_with_kid(issuer: &str, kid: &str) -> String {
    let enc = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        enc(json!({"alg": "EdDSA", "typ": "JWT", "kid": kid})),
        enc(json!({"iss": issuer, "aud": "mandate", "sub": "x", "exp": 4_000_000_000_i64})),
        URL_SAFE_NO_PAD.encode([0u8; 64])
    )
}

/// The verifier of one fetched issuer and the fetcher filling it.
fn fetched(idp: &Idp, issuer: &str, source: impl FnOnce(&mut JwksSource)) -> TrustedIssuers {
    let t = TrustedIssuer::fetched(
        issuer,
        "mandate",
        &["EdDSA".to_owned()],
        ClaimNames::default(),
    )
    .unwrap();
    let mut s = JwksSource {
        issuer: issuer.to_owned(),
        url: format!("https://localhost:{}/jwks", idp.port),
        discovery: false,
        tls: mandate_tls::Settings {
            ca_file: Some(idp.ca_file.clone()),
            ..mandate_tls::Settings::default()
        },
        allow_http: false,
        max_stale: jwks_fetch::DEFAULT_MAX_STALE,
        refetch_min: Duration::from_secs(1),
        refresh_min: Duration::from_secs(3600),
    };
    source(&mut s);
    jwks_fetch::spawn(s, t.key_cell().unwrap(), Arc::new(SystemClock)).unwrap();
    TrustedIssuers::new(vec![t]).unwrap()
}

/// Polls until `token` verifies (or `limit` passes): whether it did.
async fn verifies_within(users: &TrustedIssuers, token: &str, limit: Duration) -> bool {
    let start = tokio::time::Instant::now();
    while start.elapsed() < limit {
        if users.verify(token, SystemClock.now()).is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Discovery finds `jwks_uri`; a token verifies; the IdP rotates and a token of the new
/// key verifies after the refetch its unknown `kid` caused; a flood of made-up `kid`s
/// costs the IdP at most one fetch per `refetch_min`.
#[tokio::test]
async fn issue25_discovery_rotation_and_rate_limited_refetch() {
    let idp = Idp::start(3600, issuer_at).await;
    let issuer = issuer_at(idp.port);
    let (k1, k2) = (Key::new(&issuer), Key::new(&issuer));
    idp.set(Answer::Keys(k1.jwks.clone()));
    let users = fetched(&idp, &issuer, |s| {
        s.discovery = true;
        s.url = format!("{issuer}/.well-known/openid-configuration");
    });
    assert!(verifies_within(&users, &k1.token(), Duration::from_secs(10)).await);
    assert_eq!(idp.hits(), 1, "one fetch at start");

    // Rotation: the new key is unknown until the refetch its token asked for.
    idp.set(Answer::Keys(k2.jwks.clone()));
    let t2 = k2.token();
    assert_eq!(
        users.verify(&t2, SystemClock.now()),
        Err(UserTokenError::UnknownKey)
    );
    assert!(verifies_within(&users, &t2, Duration::from_secs(10)).await);
    assert_eq!(idp.hits(), 2, "one refetch for the rotation");

    // A flood of unknown kids for 3 s: at most one fetch a second (+1 for a window
    // boundary).
    let before = idp.hits();
    let start = tokio::time::Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(3) {
        i += 1;
        let e = users.verify(
            &token_with_kid(&issuer, &format!("rnd-{i}")),
            SystemClock.now(),
        );
        assert_eq!(e, Err(UserTokenError::UnknownKey));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fetches = idp.hits() - before;
    assert!(i > 300, "a flood: {i} tokens");
    assert!(
        (1..=4).contains(&fetches),
        "{fetches} fetches for {i} unknown kids"
    );
    // The keys are still good.
    assert!(users.verify(&t2, SystemClock.now()).is_ok());
}

/// A discovery document naming another issuer is refused: no keys, tokens refused.
#[tokio::test]
async fn issue25_discovery_of_another_issuer_gives_no_keys() {
    let idp = Idp::start(3600, another_issuer).await;
    let issuer = issuer_at(idp.port);
    let k1 = Key::new(&issuer);
    idp.set(Answer::Keys(k1.jwks.clone()));
    let users = fetched(&idp, &issuer, |s| {
        s.discovery = true;
        s.url = format!("{issuer}/.well-known/openid-configuration");
    });
    assert!(!verifies_within(&users, &k1.token(), Duration::from_secs(2)).await);
    assert_eq!(
        users.verify(&k1.token(), SystemClock.now()),
        Err(UserTokenError::KeysUnavailable)
    );
    assert_eq!(idp.hits(), 0, "the JWKS of an impostor is never fetched");
}

/// Trust is the configured CA's: an IdP whose certificate chains elsewhere gives no
/// keys.
#[tokio::test]
async fn issue25_an_idp_of_another_ca_gives_no_keys() {
    let idp = Idp::start(3600, issuer_at).await;
    let issuer = issuer_at(idp.port);
    let k1 = Key::new(&issuer);
    idp.set(Answer::Keys(k1.jwks.clone()));
    let dir = tempfile::tempdir().unwrap();
    let other = file(dir.path(), "other.pem", &Ca::new("other").pem);
    let users = fetched(&idp, &issuer, |s| s.tls.ca_file = Some(other));
    assert!(!verifies_within(&users, &k1.token(), Duration::from_secs(2)).await);
    assert_eq!(idp.hits(), 0, "no request got through the handshake");
}

/// At start the IdP is down: the issuer's tokens are refused until keys arrive. Then
/// garbage keeps the last good keys; an IdP that stays down ends in refusal once the
/// keys are older than their refresh plus `max_stale`; and keys come back with it.
#[tokio::test]
async fn issue25_unreachable_or_garbage_keeps_keys_for_max_stale_then_refuses() {
    let idp = Idp::start(1, issuer_at).await;
    let issuer = issuer_at(idp.port);
    let k1 = Key::new(&issuer);
    let t1 = k1.token();
    let users = fetched(&idp, &issuer, |s| {
        s.refresh_min = Duration::from_secs(1);
        s.max_stale = Duration::from_secs(4);
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        users.verify(&t1, SystemClock.now()),
        Err(UserTokenError::KeysUnavailable),
        "no keys yet: refused, fail closed"
    );
    idp.set(Answer::Keys(k1.jwks.clone()));
    assert!(verifies_within(&users, &t1, Duration::from_secs(5)).await);

    for garbage in [
        "<html>oops</html>",
        r#"{"keys": []}"#,
        r#"{"keys": [{"kty": "oct", "k": "AAAA"}]}"#,
    ] {
        let before = idp.hits();
        idp.set(Answer::Garbage(garbage));
        while idp.hits() == before {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            users.verify(&t1, SystemClock.now()).is_ok(),
            "{garbage}: old keys kept"
        );
        // Good keys again before the next kind of garbage, so that the rounds do not add
        // up to the stale limit on a slow machine (each round waits for a refresh).
        idp.set(Answer::Keys(k1.jwks.clone()));
        let before = idp.hits();
        while idp.hits() == before {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    idp.set(Answer::Keys(k1.jwks.clone()));
    let before = idp.hits();
    while idp.hits() < before + 1 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Down: good for the refresh interval (1 s) plus max_stale (4 s), then refused.
    idp.set(Answer::Down);
    let down = tokio::time::Instant::now();
    assert!(
        users.verify(&t1, SystemClock.now()).is_ok(),
        "within max-stale"
    );
    let mut refused = None;
    while down.elapsed() < Duration::from_secs(15) {
        if users.verify(&t1, SystemClock.now()) == Err(UserTokenError::KeysUnavailable) {
            refused = Some(down.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.expect("refused once stale");
    assert!(
        refused >= Duration::from_secs(3) && refused <= Duration::from_secs(10),
        "refused after {refused:?}"
    );
    // Back up: keys again.
    idp.set(Answer::Keys(k1.jwks.clone()));
    assert!(verifies_within(&users, &t1, Duration::from_secs(5)).await);
}
