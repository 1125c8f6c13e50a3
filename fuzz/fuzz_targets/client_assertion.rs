//! `assertion::peek_subject` and `assertion::verify` with two registered keys (Ed25519
//! with a `kid`, P-256 without): never panic, and an accepted assertion is the client's
//! own, for this server, inside its time window, signed by the key that signed it.
//!
//! Input: `e!<payload>` / `p!<payload>` sign the payload with the Ed25519 / P-256 key
//! under a correct header; `E!<header>\n<payload>` / `P!<header>\n<payload>` sign both as
//! given; anything else is verified as the assertion text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_fuzz::{
    CLIENT_ID, ED25519_KID, ISSUER, NOW_SECS, TOKEN_ENDPOINT, client_keys, mode, now, split_line,
};
use mandate_token::assertion::{self, AssertionError, LEEWAY_SECS, MAX_LIFETIME_SECS, Verified};
use serde_json::{Value, json};

const AUDIENCES: [&str; 2] = [TOKEN_ENDPOINT, ISSUER];

fn verify(token: &str) -> Result<Verified, AssertionError> {
    let keys = client_keys();
    let _ = assertion::peek_subject(token);
    let got = assertion::verify(
        token,
        CLIENT_ID,
        &[&keys[0].jwk, &keys[1].jwk],
        &AUDIENCES,
        now(),
    );
    if let Ok(v) = &got {
        assert_eq!(
            assertion::peek_subject(token).as_deref(),
            Ok(CLIENT_ID),
            "keys looked up for another client"
        );
        assert!(v.key_index < 2);
        assert!(!v.jti.is_empty() && v.jti.len() <= 256);
        let exp = v.exp.secs();
        assert!(
            exp > NOW_SECS && exp <= NOW_SECS + MAX_LIFETIME_SECS + 2 * LEEWAY_SECS,
            "exp {exp}"
        );
    }
    got
}

/// For a token we signed ourselves: what was accepted is what the payload says.
fn matches_payload(got: &Result<Verified, AssertionError>, payload: &[u8], key_index: usize) {
    let Ok(v) = got else { return };
    assert_eq!(v.key_index, key_index, "verified by the other key");
    let Ok(c) = serde_json::from_slice::<Value>(payload) else {
        panic!(
            "accepted a payload that is not JSON: {:?}",
            String::from_utf8_lossy(payload)
        )
    };
    assert_eq!(c.get("iss").and_then(Value::as_str), Some(CLIENT_ID));
    assert_eq!(c.get("sub").and_then(Value::as_str), Some(CLIENT_ID));
    assert_eq!(c.get("jti").and_then(Value::as_str), Some(v.jti.as_str()));
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => AUDIENCES.contains(&a.as_str()),
        Some(Value::Array(a)) => a
            .iter()
            .any(|x| x.as_str().is_some_and(|x| AUDIENCES.contains(&x))),
        _ => false,
    };
    assert!(aud_ok, "accepted another audience");
}

fuzz_target!(|data: &[u8]| {
    let keys = client_keys();
    match mode(data) {
        Some((m @ (b'e' | b'p'), payload)) => {
            let (i, header) = if m == b'e' {
                (0, json!({"alg": "EdDSA", "kid": ED25519_KID}))
            } else {
                (1, json!({"alg": "ES256", "typ": "JWT"}))
            };
            let token = keys[i].signer.jws(header.to_string().as_bytes(), payload);
            let got = verify(&token);
            assert!(
                !matches!(
                    got,
                    Err(AssertionError::Algorithm
                        | AssertionError::UnknownKey
                        | AssertionError::Signature)
                ),
                "a correctly signed assertion was refused: {got:?}"
            );
            matches_payload(&got, payload, i);
        }
        Some((m @ (b'E' | b'P'), rest)) => {
            let i = usize::from(m == b'P');
            let (header, payload) = split_line(rest);
            let token = keys[i].signer.jws(header, payload);
            matches_payload(&verify(&token), payload, i);
        }
        _ => {
            let Ok(s) = std::str::from_utf8(data) else {
                return;
            };
            let _ = verify(s);
        }
    }
});
