//! `set::verify_set` (the Shared Signals receiver's SET check) with one trusted ES256
//! transmitter: never panics, and an accepted SET is from that transmitter, for
//! Mandate's audience, issued within the day it allows, with a bounded `jti` and
//! exactly one event.
//!
//! Input: `p!<payload>` signs the payload with the transmitter's P-256 key under a
//! correct header (`typ: secevent+jwt`), so what is accepted must be what the payload
//! says; `P!<header>\n<payload>` signs both as given; anything else is verified as
//! token text.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mandate_fuzz::{NOW_SECS, client_keys, mode, now, split_line};
use mandate_token::set::{MAX_SET_AGE_SECS, MAX_SET_BYTES, SetError, VerifiedSet, verify_set};
use mandate_token::user::{ClaimNames, LEEWAY_SECS, TrustedIssuer, TrustedIssuers};
use serde_json::{Value, json};

/// The transmitter's `iss`.
const TRANSMITTER: &str = "https://idp.x";
/// The audience its SETs must name.
const AUDIENCE: &str = "http://x";
/// The `kid` of its key.
const KID: &str = "tx-1";

#[expect(
    clippy::expect_used,
    reason = "fixture setup; a failure is a harness bug"
)]
fn transmitters() -> &'static TrustedIssuers {
    static T: OnceLock<TrustedIssuers> = OnceLock::new();
    T.get_or_init(|| {
        let mut jwk = client_keys()[1].jwk.to_value();
        jwk.as_object_mut()
            .expect("a JWK is an object")
            .insert("kid".to_owned(), json!(KID));
        let t = TrustedIssuer::new(
            TRANSMITTER,
            AUDIENCE,
            &json!({ "keys": [jwk] }).to_string(),
            &["ES256".to_owned()],
            ClaimNames::default(),
        )
        .expect("valid transmitter");
        TrustedIssuers::new(vec![t]).expect("one transmitter")
    })
}

/// What verification may never let through.
fn verify(token: &str) -> Result<VerifiedSet, SetError> {
    let got = verify_set(transmitters(), token, now());
    if let Ok(v) = &got {
        assert!(token.len() <= MAX_SET_BYTES, "accepted an oversized SET");
        assert_eq!(v.issuer, TRANSMITTER);
        let iat = v.issued_at.secs();
        assert!(iat <= NOW_SECS + LEEWAY_SECS, "iat in the future");
        assert!(iat >= NOW_SECS - MAX_SET_AGE_SECS, "iat too old");
        let n = v.jti.chars().count();
        assert!((1..=256).contains(&n) && !v.jti.chars().any(char::is_control));
    }
    got
}

fuzz_target!(|data: &[u8]| {
    match mode(data) {
        Some((b'p', payload)) => {
            let header = json!({"alg": "ES256", "typ": "secevent+jwt", "kid": KID});
            let token = client_keys()[1]
                .signer
                .jws(header.to_string().as_bytes(), payload);
            let got = verify(&token);
            let Ok(v) = got else { return };
            // Accepted: exactly what the payload says.
            let c: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
            assert_eq!(c.get("iss").and_then(Value::as_str), Some(TRANSMITTER));
            let aud_ok = match c.get("aud") {
                Some(Value::String(a)) => a == AUDIENCE,
                Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(AUDIENCE)),
                _ => false,
            };
            assert!(aud_ok, "accepted another audience");
            assert_eq!(c.get("jti").and_then(Value::as_str), Some(v.jti.as_str()));
            let events = c.get("events").and_then(Value::as_object);
            assert_eq!(events.map(serde_json::Map::len), Some(1));
            assert!(events.is_some_and(|e| e.contains_key(&v.event_type)));
        }
        Some((b'P', rest)) => {
            let (header, payload) = split_line(rest);
            let token = client_keys()[1].signer.jws(header, payload);
            let _ = verify(&token);
        }
        _ => {
            let _ = verify(&String::from_utf8_lossy(data));
        }
    }
});
