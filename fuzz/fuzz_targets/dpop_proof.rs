//! `dpop::verify` (RFC 9449 proofs) and `dpop::normalize_htu`: never panic, and an
//! accepted proof is for this request (method, URL, token hash, time window, nonce),
//! with a thumbprint of the key in its own header.
//!
//! Input: `e!<payload>` / `p!<payload>` sign the payload with the Ed25519 / P-256 test
//! key under a correct header (`typ` `dpop+jwt`, the key's `jwk`);
//! `E!<header>\n<payload>` / `P!<header>\n<payload>` sign both as given; `u!<text>`
//! normalizes the text as an `htu`; anything else is verified as the proof text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_fuzz::{NOW_SECS, client_keys, mode, now, split_line};
use std::sync::LazyLock;

use mandate_token::dpop::{self, DpopError, Expect, NonceKey, Proof, Window};
use mandate_token::jwk::Ed25519Points;
use serde_json::{Value, json};

const URL: &str = "https://mandate.test/v1/authorize";
const TOKEN: &str = "token";

fn nonce_key() -> NonceKey {
    NonceKey::new([3; 32], 300)
}

/// The memo of Ed25519 points a node keeps, shared by every input of the run.
static POINTS: LazyLock<Ed25519Points> = LazyLock::new(Ed25519Points::default);

fn verify(proof: &str, nonce: bool) -> Result<Proof, DpopError> {
    let key = nonce_key();
    let e = Expect {
        method: "POST",
        url: URL,
        access_token: Some(TOKEN),
        window: Window::default(),
        nonce: nonce.then_some(&key),
        now: now(),
        points: None,
    };
    let got = dpop::verify(proof, &e);
    // INVARIANT (points memo): the node's memo changes no answer.
    let memo = Expect {
        points: Some(&POINTS),
        ..e
    };
    assert_eq!(dpop::verify(proof, &memo), got, "with the points memo");
    if let Ok(p) = &got {
        assert!(!p.jti.is_empty() && p.jti.len() <= dpop::MAX_JTI_BYTES);
        assert!(p.iat >= NOW_SECS - 60 && p.iat <= NOW_SECS + 5, "iat {}", p.iat);
        assert_eq!(p.jkt.len(), 43, "a thumbprint is 32 bytes, base64url");
    }
    got
}

/// For a proof we signed ourselves: what was accepted is what the payload says.
fn matches_payload(got: &Result<Proof, DpopError>, payload: &[u8]) {
    let Ok(p) = got else { return };
    let Ok(c) = serde_json::from_slice::<Value>(payload) else {
        panic!("accepted a payload that is not JSON");
    };
    assert_eq!(c.get("htm").and_then(Value::as_str), Some("POST"));
    let htu = c.get("htu").and_then(Value::as_str).unwrap_or_default();
    assert_eq!(dpop::normalize_htu(htu), dpop::normalize_htu(URL));
    assert_eq!(
        c.get("ath").and_then(Value::as_str),
        Some(dpop::ath(TOKEN).as_str())
    );
    assert_eq!(c.get("jti").and_then(Value::as_str), Some(p.jti.as_str()));
}

fuzz_target!(|data: &[u8]| {
    let keys = client_keys();
    match mode(data) {
        Some((m @ (b'e' | b'p'), payload)) => {
            let i = usize::from(m == b'p');
            let mut jwk = keys[i].jwk.to_value();
            if let Some(o) = jwk.as_object_mut() {
                o.remove("kid");
            }
            let alg = if i == 0 { "EdDSA" } else { "ES256" };
            let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk});
            let proof = keys[i].signer.jws(header.to_string().as_bytes(), payload);
            let got = verify(&proof, false);
            assert!(
                !matches!(
                    got,
                    Err(DpopError::Type | DpopError::Algorithm | DpopError::Key | DpopError::Signature)
                ),
                "a correctly signed proof was refused: {got:?}"
            );
            if let Ok(p) = &got {
                assert_eq!(p.jkt, keys[i].jwk.thumbprint());
            }
            matches_payload(&got, payload);
            let _ = verify(&proof, true);
        }
        Some((m @ (b'E' | b'P'), rest)) => {
            let i = usize::from(m == b'P');
            let (header, payload) = split_line(rest);
            let proof = keys[i].signer.jws(header, payload);
            let got = verify(&proof, false);
            if let Ok(p) = &got {
                assert_eq!(p.jkt, keys[i].jwk.thumbprint(), "verified with another key");
            }
            matches_payload(&got, payload);
        }
        Some((b'u', text)) => {
            if let Ok(s) = std::str::from_utf8(text)
                && let Some(n) = dpop::normalize_htu(s)
            {
                assert_eq!(dpop::normalize_htu(&n).as_deref(), Some(n.as_str()), "idempotent");
            }
        }
        _ => {
            let Ok(s) = std::str::from_utf8(data) else {
                return;
            };
            let _ = verify(s, false);
            let _ = verify(s, true);
        }
    }
});
