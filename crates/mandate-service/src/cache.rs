//! Memo caches that spare repeated cryptography on hot paths: access tokens whose Ed25519
//! signature this node already verified, and client secrets already checked with
//! Argon2id. Both are bounded (emptied when full) and in memory only.
//!
//! INVARIANT (caches only spare work): a hit replaces a signature or hash check, never a
//! state check — expiry, revocation, cutoffs, agent status and credential usability
//! are checked on every request as without the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mandate_core::id::CredentialId;
use mandate_core::time::Timestamp;
use mandate_token::access::AccessClaims;
use sha2::{Digest, Sha256};

const MAX_ENTRIES: usize = 100_000;

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Access tokens whose signature verified, by SHA-256 of the token, until their
/// verification ends. The claims are shared (`Arc`): a hit costs a reference count, not
/// a copy of every claim string.
///
/// INVARIANT (cache bound): an entry is handed out only before the `valid_until` it was
/// stored with — the earliest of the token's `exp` and the end of its signing key's
/// publication (`access::Verified::valid_until`) — so the cache never outlives the key
/// that verified a token; and only tokens that passed the lifetime check
/// (`token.max_lifetime_secs`) are stored.
#[derive(Debug, Default)]
pub struct VerifiedTokens {
    map: Mutex<HashMap<[u8; 32], VerifiedEntry>>,
}

/// A verified token's claims and the instant (seconds) its verification ends.
type VerifiedEntry = (Arc<AccessClaims>, i64);

impl VerifiedTokens {
    /// The claims of `token` if its signature was verified before and that verification
    /// still holds at `now`.
    pub fn get(&self, token: &str, now: Timestamp) -> Option<Arc<AccessClaims>> {
        let key = digest(&[token.as_bytes()]);
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(&key) {
            Some((c, until)) if now.secs() < *until => Some(Arc::clone(c)),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers a token whose signature just verified, until `valid_until`.
    pub fn insert(&self, token: &str, claims: Arc<AccessClaims>, valid_until: i64) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(digest(&[token.as_bytes()]), (claims, valid_until));
    }
}

/// Client secrets that passed Argon2id, keyed by a keyed hash of (client, secret), with
/// the credential they matched, until when the memo holds (at most five minutes, never
/// past the credential's own expiry) and the store's credentials generation read before
/// the credentials were (see [`mandate_store::StoreExt::credentials_generation`]).
#[derive(Debug)]
pub struct VerifiedSecrets {
    key: [u8; 32],
    map: Mutex<HashMap<[u8; 32], Remembered>>,
}

/// What [`VerifiedSecrets`] remembers of a secret that matched.
#[derive(Debug, Clone)]
pub struct Remembered {
    /// The credential the secret matched.
    pub credential: CredentialId,
    /// The memo holds before this instant only.
    pub until: Timestamp,
    /// The credentials generation under which the credential was found usable.
    pub generation: u64,
}

/// How long a verified secret is remembered.
pub const SECRET_MEMO_SECS: i64 = 300;

impl VerifiedSecrets {
    /// A cache whose keys are hashed with `key` (random per process), so its contents
    /// say nothing about secrets even to someone reading this process's memory.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, client: &str, secret: &str) -> [u8; 32] {
        digest(&[&self.key, client.as_bytes(), secret.as_bytes()])
    }

    /// What this (client, secret) matched, if remembered and still within its memo.
    pub fn get(&self, client: &str, secret: &str, now: Timestamp) -> Option<Remembered> {
        let slot = self.slot(client, secret);
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(&slot) {
            Some(r) if now < r.until => Some(r.clone()),
            Some(_) => {
                map.remove(&slot);
                None
            }
            None => None,
        }
    }

    /// Remembers that (client, secret) matched a credential.
    pub fn insert(&self, client: &str, secret: &str, remembered: Remembered) {
        let slot = self.slot(client, secret);
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(slot, remembered);
    }
}
