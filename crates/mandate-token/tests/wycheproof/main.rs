//! Project Wycheproof's EdDSA (Ed25519) and ECDSA P-256 (SHA-256, IEEE P1363 `r || s`,
//! the JWS form of RFC 7518 §3.4) vectors through Mandate's signature verification: each
//! group's public key enters as a client's registered JWK does (`PublicJwk::parse`,
//! which also refuses small-order Ed25519 keys), and each signature is checked by the one
//! check client assertions and DPoP proofs go through (`PublicJwk::verifies` →
//! `PublicJwk::check`: `jws::check_ed25519` with the point decompressed at parse time,
//! `jws::check` for P-256; Mandate's own access tokens' `jws::check` is the one the
//! trusted issuers' run below exercises). Trusted issuers' keys, built from their JWKS by
//! another route, run the same vectors in `src/user.rs`'s unit tests. Every `invalid`
//! vector must be refused and every `valid` one accepted.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "the vector runner fails the test loudly"
)]

mod vectors;

use mandate_token::jwk::PublicJwk;
use serde_json::Value;

fn as_client_key(jwk: &Value, msg: &[u8], sig: &[u8]) -> Result<bool, String> {
    let key = PublicJwk::parse(jwk).map_err(|e| e.to_string())?;
    Ok(key.verifies(msg, sig))
}

#[test]
fn ed25519_vectors() {
    let (file, alg, n) = vectors::ED25519;
    vectors::assert_all_right(file, &vectors::run(file, alg, n, as_client_key));
}

#[test]
fn ecdsa_p256_sha256_p1363_vectors() {
    let (file, alg, n) = vectors::ECDSA_P256;
    vectors::assert_all_right(file, &vectors::run(file, alg, n, as_client_key));
}
