//! `user::TrustedIssuers::verify` with two trusted issuers (the dev issuer, EdDSA, and an
//! ES256-only issuer): never panics, and an accepted token is from a trusted issuer,
//! for Mandate's audience, inside its window, with user claims inside their limits.
//!
//! Input: `e!<payload>` / `p!<payload>` sign the payload with the dev issuer's Ed25519
//! key / the ES256 issuer's P-256 key under a correct header (then every gate before
//! the claims is known, and what is accepted must be what the payload says);
//! `E!<header>\n<payload>` / `P!<header>\n<payload>` sign both as given; anything else
//! is verified as token text.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mandate_core::random::{Random, RandomError};
use mandate_fuzz::{NOW_SECS, Signer, client_keys, mode, now, split_line};
use mandate_token::keys::SigningKey;
use mandate_token::user::{
    ClaimNames, DevUserIssuer, LEEWAY_SECS, MAX_CLAIM_CHARS, MAX_GROUPS, MAX_TOKEN_BYTES,
    TrustedIssuer, TrustedIssuers, UserTokenError, VerifiedUser,
};
use serde_json::{Value, json};

/// The dev issuer's `iss`.
const DEV_ISSUER: &str = "http://x/dev-users";
/// The ES256-only issuer's `iss`.
const EC_ISSUER: &str = "https://idp.x";
/// The audience both issuers' tokens must name.
const AUDIENCE: &str = "http://x";
/// The `kid` of the ES256 issuer's key.
const EC_KID: &str = "ec-1";
/// Every byte of the dev issuer's key seed.
const DEV_SEED_BYTE: u8 = 0x37;

/// A random source that is not random: every byte is [`DEV_SEED_BYTE`].
struct FixedRandom;

impl Random for FixedRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        buf.fill(DEV_SEED_BYTE);
        Ok(())
    }
}

struct Fixture {
    issuers: TrustedIssuers,
    dev: Signer,
    dev_kid: String,
}

#[expect(
    clippy::expect_used,
    reason = "fixture setup; a failure is a harness bug"
)]
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = SigningKey::generate(&FixedRandom).expect("fixed random cannot fail");
        let raw = ed25519_dalek::SigningKey::from_bytes(&[DEV_SEED_BYTE; 32]);
        assert_eq!(
            raw.verifying_key().to_bytes(),
            key.public_bytes(),
            "same key"
        );
        let dev_kid = key.kid().to_owned();
        let dev = DevUserIssuer::new(key, DEV_ISSUER.to_owned(), AUDIENCE.to_owned());
        let mut ec_jwk = client_keys()[1].jwk.to_value();
        ec_jwk
            .as_object_mut()
            .expect("a JWK is an object")
            .insert("kid".to_owned(), json!(EC_KID));
        let ec = TrustedIssuer::new(
            EC_ISSUER,
            AUDIENCE,
            &json!({ "keys": [ec_jwk] }).to_string(),
            &["ES256".to_owned()],
            ClaimNames::default(),
        )
        .expect("valid issuer");
        let issuers = TrustedIssuers::new(vec![dev.trusted().expect("valid dev issuer"), ec])
            .expect("two issuers");
        Fixture {
            issuers,
            dev: Signer::Ed25519(raw),
            dev_kid,
        }
    })
}

fn identity_text(s: &str) -> bool {
    let n = s.chars().count();
    (1..=MAX_CLAIM_CHARS).contains(&n) && !s.chars().any(char::is_control)
}

/// What verification may never let through.
fn verify(token: &str) -> Result<VerifiedUser, UserTokenError> {
    let got = fixture().issuers.verify(token, now());
    if let Ok(v) = &got {
        assert!(
            token.len() <= MAX_TOKEN_BYTES,
            "accepted an oversized token"
        );
        let iss = v.user.issuer.as_str();
        assert!(
            iss == DEV_ISSUER || iss == EC_ISSUER,
            "accepted issuer {iss:?}"
        );
        assert!(v.expires_at.secs() > NOW_SECS, "accepted at or after exp");
        assert!(identity_text(&v.user.sub), "user {:?}", v.user.sub);
        assert!(v.user.groups.len() <= MAX_GROUPS);
        assert!(v.user.groups.iter().all(|g| identity_text(g)), "groups");
        assert!(v.user.email.as_deref().is_none_or(identity_text), "email");
        assert!(v.token_id.as_deref().is_none_or(identity_text), "jti");
    }
    got
}

/// For a token signed with the right key and header (the `e`/`p` modes): the gates in
/// front of the claims are known from the payload's `iss` alone, and an accepted token
/// is exactly what the payload says.
fn matches_payload(
    got: &Result<VerifiedUser, UserTokenError>,
    token: &str,
    payload: &[u8],
    own: &str,
) {
    let Ok(c) = serde_json::from_slice::<Value>(payload) else {
        assert_eq!(got, &Err(UserTokenError::Malformed), "payload is not JSON");
        return;
    };
    if token.len() > MAX_TOKEN_BYTES || !c.is_object() {
        assert_eq!(got, &Err(UserTokenError::Malformed));
        return;
    }
    match c.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == own => assert!(
            !matches!(
                got,
                Err(UserTokenError::Malformed
                    | UserTokenError::UntrustedIssuer
                    | UserTokenError::Algorithm
                    | UserTokenError::UnknownKey
                    | UserTokenError::Signature)
            ),
            "a correctly signed token was refused: {got:?}"
        ),
        // The other issuer allows only its own algorithm.
        Some(DEV_ISSUER | EC_ISSUER) => assert_eq!(got, &Err(UserTokenError::Algorithm)),
        _ => assert_eq!(got, &Err(UserTokenError::UntrustedIssuer)),
    }
    let Ok(v) = got else { return };
    assert_eq!(v.user.issuer, own);
    assert_eq!(
        c.get("sub").and_then(Value::as_str),
        Some(v.user.sub.as_str())
    );
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => a == AUDIENCE,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(AUDIENCE)),
        _ => false,
    };
    assert!(aud_ok, "accepted another audience");
    let secs = |k: &str| c.get(k).and_then(Value::as_f64);
    let exp = secs("exp").unwrap_or(f64::NEG_INFINITY);
    assert!(exp.floor() > NOW_SECS as f64, "exp {exp}");
    for k in ["nbf", "iat"] {
        assert!(
            secs(k).is_none_or(|t| t.floor() <= (NOW_SECS + LEEWAY_SECS) as f64),
            "{k} in the future"
        );
    }
    assert_eq!(c.get("jti").and_then(Value::as_str), v.token_id.as_deref());
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    match mode(data) {
        Some((m @ (b'e' | b'p'), payload)) => {
            let (signer, header, own) = if m == b'e' {
                (
                    &f.dev,
                    json!({"alg": "EdDSA", "typ": "JWT", "kid": f.dev_kid}),
                    DEV_ISSUER,
                )
            } else {
                (
                    &client_keys()[1].signer,
                    json!({"alg": "ES256", "kid": EC_KID}),
                    EC_ISSUER,
                )
            };
            let token = signer.jws(header.to_string().as_bytes(), payload);
            let got = verify(&token);
            matches_payload(&got, &token, payload, own);
        }
        Some((m @ (b'E' | b'P'), rest)) => {
            let signer = if m == b'E' {
                &f.dev
            } else {
                &client_keys()[1].signer
            };
            let (header, payload) = split_line(rest);
            let _ = verify(&signer.jws(header, payload));
        }
        _ => {
            let Ok(s) = std::str::from_utf8(data) else {
                return;
            };
            let _ = verify(s);
        }
    }
});
