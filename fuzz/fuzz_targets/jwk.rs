//! `PublicJwk::parse` on any JSON value: never panics; an accepted key's stored form
//! parses back to the same key (normalisation is idempotent) and keeps no private member.
#![no_main]

use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use mandate_token::jwk::PublicJwk;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(k) = PublicJwk::parse(&v) else { return };
    let stored = k.to_value();
    assert_eq!(PublicJwk::parse(&stored).as_ref(), Ok(&k), "{stored}");
    let m = stored.as_object();
    assert!(m.is_some_and(|m| {
        m.keys()
            .all(|n| ["kty", "crv", "x", "y", "kid", "alg", "use"].contains(&n.as_str()))
    }));
    assert_eq!(k.kid(), v.get("kid").and_then(Value::as_str));
    assert_eq!(k.thumbprint().len(), 43, "base64url of a SHA-256 digest");
    let want = match v.get("kty").and_then(Value::as_str) {
        Some("OKP") => Algorithm::EdDSA,
        _ => Algorithm::ES256,
    };
    assert_eq!(k.algorithm(), want);
});
