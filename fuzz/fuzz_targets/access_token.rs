//! `access::verify` against a fixed key ring: never panics, and never accepts a token
//! outside its window, from another issuer, living longer than the maximum, or with a
//! `crit` header.
//!
//! Input: `s!<payload>` signs the payload bytes with the ring key under the header
//! Mandate issues (then the result must be exactly what the claims say: the round trip);
//! `h!<header>\n<payload>` signs both as given; anything else is verified as token text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_fuzz::{ISSUER, NOW_SECS, mode, now, ring, split_line};
use mandate_token::access::{self, AccessClaims, Expected, VerifyError};
use serde_json::json;

/// The longest lifetime the target accepts.
const MAX_LIFETIME: i64 = 3600;

const EXPECTED: Expected<'static> = Expected {
    issuer: ISSUER,
    max_lifetime_secs: MAX_LIFETIME,
};

fn verify(ring: &mandate_token::keys::KeyRing, token: &str) -> Result<AccessClaims, VerifyError> {
    access::verify(ring, token, &EXPECTED, now())
}

/// What verification may never let through.
fn sound(result: &Result<AccessClaims, VerifyError>) {
    if let Ok(c) = result {
        assert_eq!(c.iss, ISSUER, "accepted another issuer");
        assert!(
            c.nbf <= NOW_SECS && NOW_SECS < c.exp,
            "accepted outside [nbf, exp)"
        );
        assert!(
            c.iat <= c.nbf && c.exp.saturating_sub(c.iat) <= MAX_LIFETIME,
            "accepted a lifetime over the maximum"
        );
    }
}

/// What verifying a correctly signed, correctly typed token with these claims must give.
fn expected(payload: &[u8]) -> Result<AccessClaims, VerifyError> {
    let c: AccessClaims = serde_json::from_slice(payload).map_err(|_| VerifyError::Malformed)?;
    if c.iss != ISSUER {
        Err(VerifyError::Issuer)
    } else if c.exp.saturating_sub(c.iat) > MAX_LIFETIME || c.nbf < c.iat {
        Err(VerifyError::Lifetime)
    } else if NOW_SECS >= c.exp {
        Err(VerifyError::Expired)
    } else if NOW_SECS < c.nbf {
        Err(VerifyError::NotYetValid)
    } else {
        Ok(c)
    }
}

fuzz_target!(|data: &[u8]| {
    let r = ring();
    match mode(data) {
        Some((b's', payload)) => {
            let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": r.kid}).to_string();
            let token = r.signer.jws(header.as_bytes(), payload);
            let got = verify(&r.ring, &token);
            sound(&got);
            assert_eq!(
                got,
                expected(payload),
                "payload {:?}",
                String::from_utf8_lossy(payload)
            );
        }
        Some((b'h', rest)) => {
            let (header, payload) = split_line(rest);
            let token = r.signer.jws(header, payload);
            let got = verify(&r.ring, &token);
            sound(&got);
            let critical = serde_json::from_slice::<serde_json::Value>(header)
                .is_ok_and(|h| h.get("crit").is_some());
            assert!(!(critical && got.is_ok()), "accepted a `crit` header");
        }
        _ => {
            let Ok(s) = std::str::from_utf8(data) else {
                return;
            };
            sound(&verify(&r.ring, s));
        }
    }
});
