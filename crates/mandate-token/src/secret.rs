//! Client secrets and admin tokens: generated from 256 random bits, shown once, stored
//! only as hashes.
//!
//! Client secrets are hashed with Argon2id (OWASP parameters: 19 MiB, 2 passes). Admin
//! tokens are looked up by their SHA-256 digest: they are 256-bit random values, so a
//! fast hash cannot be brute-forced, and every admin request can find its token by index.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use mandate_core::random::{Random, RandomError, random_bytes};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

use crate::b64;

/// The prefix of client secrets (lets secret scanners recognise a leaked one).
pub const CLIENT_SECRET_PREFIX: &str = "mcs_";
/// The prefix of admin tokens.
pub const ADMIN_TOKEN_PREFIX: &str = "mat_";

/// A secret in clear text. Not `Debug`/`Display`, so it cannot reach a log by accident.
pub struct Secret(String);

impl Secret {
    /// The clear text, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Hashing failed (never expected; callers fail closed).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The random source failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// Argon2 failed.
    #[error("argon2: {0}")]
    Hash(String),
}

fn generate(prefix: &str, random: &dyn Random) -> Result<Secret, RandomError> {
    let bytes: [u8; 32] = random_bytes(random)?;
    Ok(Secret(format!("{prefix}{}", b64::encode(&bytes))))
}

/// A new client secret: `mcs_` + 256 random bits, base64url.
pub fn new_client_secret(random: &dyn Random) -> Result<Secret, RandomError> {
    generate(CLIENT_SECRET_PREFIX, random)
}

/// A new admin token: `mat_` + 256 random bits, base64url.
pub fn new_admin_token(random: &dyn Random) -> Result<Secret, RandomError> {
    generate(ADMIN_TOKEN_PREFIX, random)
}

/// Wraps an operator-supplied token (the bootstrap token from the environment or a file).
pub fn supplied(token: String) -> Secret {
    Secret(token)
}

/// The Argon2id PHC string of a client secret.
pub fn hash_client_secret(secret: &Secret, random: &dyn Random) -> Result<String, SecretError> {
    let salt: [u8; 16] = random_bytes(random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| SecretError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(secret.0.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| SecretError::Hash(e.to_string()))
}

/// Whether `presented` matches the stored PHC hash. A malformed hash never matches.
pub fn verify_client_secret(presented: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(presented.as_bytes(), &h)
            .is_ok()
    })
}

/// Spends the same Argon2id work as a real check, for unknown clients, so response time
/// does not reveal whether a client id exists. Always returns false.
pub fn verify_against_dummy(presented: &str) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| {
        // A fixed salt is fine: this hash guards nothing; it only costs the same time.
        SaltString::encode_b64(b"mandate-dummy-salt")
            .ok()
            .and_then(|s| {
                Argon2::default()
                    .hash_password(b"dummy", &s)
                    .ok()
                    .map(|h| h.to_string())
            })
            .unwrap_or_default()
    });
    let _ = verify_client_secret(presented, phc);
    false
}

/// The lookup digest of an admin token: hex SHA-256.
pub fn admin_token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mandate_core::random::OsRandom;

    #[test]
    fn secrets_hash_and_verify() {
        let s = new_client_secret(&OsRandom).unwrap();
        assert!(s.expose().starts_with("mcs_"));
        assert_eq!(s.expose().len(), 4 + 43);
        let h = hash_client_secret(&s, &OsRandom).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains(s.expose()));
        assert!(verify_client_secret(s.expose(), &h));
        assert!(!verify_client_secret("mcs_wrong", &h));
        assert!(!verify_client_secret(s.expose(), "not-a-hash"));
        assert!(!verify_against_dummy(s.expose()));
    }

    #[test]
    fn admin_digest_is_sha256_hex() {
        assert_eq!(
            admin_token_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
