//! Loading, publishing and rotating Mandate's signing keys, one key set for every node.
//!
//! The store holds every key's public half and how long it stays published, and the
//! current key's private half sealed under the store key ([`crate::store_key`]), so every
//! node of a cluster signs with the same key and publishes the same JWKS. A rotated-out
//! key loses its private half in the rotating unit (`INVARIANT (one signer)`,
//! mandate-store) and keeps being published until every token it signed has expired,
//! then drops out of the JWKS and the verifier — by the ring's own clock check
//! (`INVARIANT (keys are a function of time)` in mandate-token), so nothing here reloads
//! on a timer: the ring is read from the store at start, after a rotation here, and when
//! another node rotated ([`KeyState::reload`], which the change feed calls).
//!
//! A data dir from before kept the current private key in `keys/<kid>.pem`: at start it
//! is sealed into the store once, and the key files are then removed.

use mandate_store::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use mandate_core::clock::Clock;
use mandate_core::random::Random;
use mandate_core::time::Timestamp;
use mandate_store::{NewSigningKey, Store, StoreError, keyfile};
use mandate_token::jws::SigningAlg;
use mandate_token::keys::{KeyError, KeyRing, PublishedKey, SigningKey};

use crate::store_key::{SealError, Sealed, StoreKey, StoreKeyError};

/// Key loading or rotation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Store or file IO.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Key material.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// This node's store key.
    #[error(transparent)]
    StoreKey(#[from] StoreKeyError),
    /// Sealing a private key.
    #[error("sealing a signing key: {0}")]
    Seal(#[from] SealError),
    /// The store holds no current signing key.
    #[error("the store holds no current signing key")]
    NoCurrentKey,
    /// The current key's private half is not in the store (a store from before the
    /// store key whose key file has not been imported yet).
    #[error(
        "signing key `{0}` has no private half in the store yet: start the node whose data \
         dir holds keys/{0}.pem once, to import it"
    )]
    NotSealed(String),
    /// The current key's private half is not in the store, and no key file from before
    /// supplies it.
    #[error(
        "signing key `{0}` has no private half in the store, and its key file from before \
         the store key is missing or unreadable: {1}"
    )]
    MissingFile(String, String),
    /// The current key's sealed private half does not open (another store key, a damaged
    /// row) or is not the key it is recorded as.
    #[error("the private half of signing key `{0}` does not open under this node's store key")]
    Unseal(String),
}

/// Where a node keeps the files its keys come from.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// The store key (`store.key_file`; default `<data_dir>/store.key`).
    pub store_key: PathBuf,
    /// Where a data dir from before the store key kept the current private key
    /// (`<data_dir>/keys`): imported into the store once, then emptied.
    pub legacy_dir: PathBuf,
}

impl KeyFiles {
    /// The default places in data dir `dir`.
    pub fn in_data_dir(dir: &Path) -> Self {
        Self {
            store_key: dir.join("store.key"),
            legacy_dir: dir.join("keys"),
        }
    }
}

/// The store key and the signing key ring, swapped whole on rotation or reload.
pub struct KeyState {
    store_key: StoreKey,
    ring: RwLock<Arc<KeyRing>>,
    /// Held by a rotation or a reload from its first read of the store to its swap, so
    /// they swap in the order they read; signers hold only `ring`'s read lock, never
    /// waiting on the store.
    updating: Mutex<()>,
    /// `token.signing_alg`: the `alg` name tokens are signed (and keys published) under.
    alg: SigningAlg,
}

impl std::fmt::Debug for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyState")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn legacy_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.pem"))
}

/// What the store holds of its current key, at start.
enum Current {
    /// No key: an empty store.
    None,
    /// Key `kid`, without its sealed private half: a store from before the store key.
    Unsealed(String),
    /// A key with its sealed private half.
    Sealed,
}

/// What the store holds of its current key, read in one unit.
fn current(store: &dyn Store, now: Timestamp) -> Result<Current, StoreError> {
    store.read(|r| {
        let rows = r.published_signing_keys(now)?;
        Ok(match rows.into_iter().find(|k| k.retired_at.is_none()) {
            None => Current::None,
            Some(k) => match r.signing_key_sealed(&k.kid)? {
                None => Current::Unsealed(k.kid),
                Some(_) => Current::Sealed,
            },
        })
    })
}

/// The ring as the store holds it at `now`: the current key unsealed, every retired key
/// still published.
fn load(
    store: &dyn Store,
    store_key: &StoreKey,
    now: Timestamp,
    alg: SigningAlg,
) -> Result<Arc<KeyRing>, KeysError> {
    let (rows, sealed) = store.read(|r| {
        let rows = r.published_signing_keys(now)?;
        let sealed = match rows.iter().find(|k| k.retired_at.is_none()) {
            Some(k) => r.signing_key_sealed(&k.kid)?,
            None => None,
        };
        Ok((rows, sealed))
    })?;
    let current_row = rows
        .iter()
        .find(|r| r.retired_at.is_none())
        .ok_or(KeysError::NoCurrentKey)?;
    let kid = &current_row.kid;
    let sealed = sealed.ok_or_else(|| KeysError::NotSealed(kid.clone()))?;
    let pem = store_key
        .open_joined(Sealed::SigningKey(kid), &sealed)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| KeysError::Unseal(kid.clone()))?;
    let current = SigningKey::from_pkcs8_pem(&pem)?;
    if current.kid() != kid {
        return Err(KeysError::Unseal(kid.clone()));
    }
    let others = rows
        .iter()
        .filter(|r| r.retired_at.is_some())
        .map(|r| {
            let k = PublishedKey::from_public_bytes(&r.kid, &r.public_key)?;
            // A retired key without an end (never written so) ends now: fail closed.
            Ok(k.until(r.publish_until.unwrap_or(now)))
        })
        .collect::<Result<Vec<_>, KeyError>>()?;
    Ok(Arc::new(KeyRing::new(current, others)?.signing_as(alg)))
}

/// A new key, its private half sealed: what [`SigningKeyRepo::add_signing_key`] takes.
fn new_key(store_key: &StoreKey, random: &dyn Random) -> Result<(SigningKey, Vec<u8>), KeysError> {
    let key = SigningKey::generate(random)?;
    let sealed = store_key.seal_joined(
        Sealed::SigningKey(key.kid()),
        key.to_pkcs8_pem()?.as_bytes(),
        random,
    )?;
    Ok((key, sealed))
}

/// Seals the current key's private half, read from its file from before the store key,
/// into the store (once: a node that finds it done does nothing).
fn import(
    store: &dyn Store,
    store_key: &StoreKey,
    legacy_dir: &Path,
    kid: &str,
    random: &dyn Random,
) -> Result<(), KeysError> {
    let path = legacy_path(legacy_dir, kid);
    let pem = keyfile::read_private(&path)
        .map_err(|e| KeysError::MissingFile(kid.to_owned(), e.to_string()))?;
    let key = SigningKey::from_pkcs8_pem(&pem)?;
    if key.kid() != kid {
        return Err(KeysError::MissingFile(
            kid.to_owned(),
            format!("{} holds a different key", path.display()),
        ));
    }
    let sealed = store_key.seal_joined(Sealed::SigningKey(kid), pem.as_bytes(), random)?;
    if store.import_signing_key_sealed(kid, &sealed)? {
        tracing::info!(%kid, "sealed the current signing key from its key file into the store");
    }
    Ok(())
}

/// Removes the key files of a data dir from before the store key (every `*.pem` and
/// `*.tmp` in `dir`, then `dir` if it is empty): the current key is in the store, which
/// the caller has just shown by loading it from there.
fn sweep(dir: &Path) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Io {
                context: format!("list {}", dir.display()),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".pem") || name.ends_with(".tmp") {
            tracing::info!(file = %name, "removing a signing key file: the store holds the key");
            keyfile::remove_private(&entry.path())?;
        }
    }
    // Left in place if anything else is in it: not ours to delete.
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

impl KeyState {
    /// Opens this node's store key ([`StoreKey::open`]) and loads the key ring from the
    /// store, creating the store's first signing key on an empty store, and importing
    /// the current key's file from a data dir from before; tokens are signed under `alg`
    /// `EdDSA`.
    pub fn open(
        store: &dyn Store,
        files: &KeyFiles,
        clock: &dyn Clock,
        random: &dyn Random,
    ) -> Result<Self, KeysError> {
        Self::open_signing_as(store, files, clock, random, SigningAlg::default())
    }

    /// [`KeyState::open`], signing tokens under the `alg` name `alg`.
    pub fn open_signing_as(
        store: &dyn Store,
        files: &KeyFiles,
        clock: &dyn Clock,
        random: &dyn Random,
        alg: SigningAlg,
    ) -> Result<Self, KeysError> {
        let store_key = StoreKey::open(store, &files.store_key, random)?;
        let now = clock.now();
        match current(store, now)? {
            Current::None => {
                let (key, sealed) = new_key(&store_key, random)?;
                let new = NewSigningKey {
                    kid: key.kid(),
                    public_key: &key.public_bytes(),
                    sealed_private: &sealed,
                };
                match store.add_signing_key(&new, None, now, now) {
                    // Another node made the first key meanwhile: that one is loaded below.
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Current::Unsealed(kid) => import(store, &store_key, &files.legacy_dir, &kid, random)?,
            Current::Sealed => {}
        }
        let ring = load(store, &store_key, now, alg)?;
        sweep(&files.legacy_dir)?;
        Ok(Self {
            store_key,
            ring: RwLock::new(ring),
            updating: Mutex::new(()),
            alg,
        })
    }

    /// The ring to sign and verify with (each lookup in it takes the time).
    pub fn ring(&self) -> Arc<KeyRing> {
        Arc::clone(
            &self
                .ring
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// This node's store key: what seals the gateways' secrets and keys audit redaction.
    pub fn store_key(&self) -> &StoreKey {
        &self.store_key
    }

    /// Reads the ring from the store again, as of `now`: what a node does when the change
    /// feed says the signing keys changed (another node rotated). On an error the ring
    /// stays as it was (its retired keys still end on time).
    pub fn reload(&self, store: &dyn Store, now: Timestamp) -> Result<(), KeysError> {
        let _updating = self.lock_updates();
        let ring = load(store, &self.store_key, now, self.alg)?;
        self.swap(ring);
        Ok(())
    }

    fn lock_updates(&self) -> std::sync::MutexGuard<'_, ()> {
        self.updating
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn swap(&self, ring: Arc<KeyRing>) {
        *self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ring;
    }

    /// Makes a new signing key current on every node. The store's current key (which
    /// this node may not have loaded yet) stays published until `now + publish_secs`
    /// (the longest lifetime of a token it may have signed), and its private half is
    /// erased in the same unit: it will never sign again. Returns the retired and the new
    /// key's ids.
    pub fn rotate(
        &self,
        store: &dyn Store,
        now: Timestamp,
        random: &dyn Random,
        publish_secs: u32,
    ) -> Result<(String, String), KeysError> {
        let _updating = self.lock_updates();
        let (key, sealed) = new_key(&self.store_key, random)?;
        let public = key.public_bytes();
        let new = NewSigningKey {
            kid: key.kid(),
            public_key: &public,
            sealed_private: &sealed,
        };
        let until = now.plus_secs(i64::from(publish_secs));
        // Another node's rotation committing between the read and the write is a
        // `Conflict` (nothing written): read again and retry, a few times.
        let mut tries = 0;
        let old = loop {
            tries += 1;
            let got = store.write(|r| {
                let old = r
                    .published_signing_keys(now)?
                    .into_iter()
                    .find(|k| k.retired_at.is_none())
                    .map(|k| k.kid);
                r.add_signing_key(&new, old.as_deref(), now, until)?;
                Ok::<_, StoreError>(old)
            });
            match got {
                Err(StoreError::Conflict(_)) if tries < 3 => continue,
                other => break other?,
            }
        };
        // Until this swap, signers here use the retired key, which stays published for
        // every token it signs meanwhile.
        self.swap(load(store, &self.store_key, now, self.alg)?);
        Ok((old.unwrap_or_default(), key.kid().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mandate_core::clock::ManualClock;
    use mandate_core::random::OsRandom;
    use mandate_store_sqlite::SqliteStore;
    use mandate_token::access::{self, AccessClaims, Audience, Expected};

    fn claims(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://mandate.test".into(),
            sub: "agt_01J00000000000000000000000".into(),
            aud: Audience::One("http://mandate.test".into()),
            exp: now + 300,
            iat: now,
            nbf: now,
            jti: "tok_01J00000000000000000000000".into(),
            client_id: "agt_01J00000000000000000000000".into(),
            scope: None,
            act: None,
            mandate: None,
            parents: Vec::new(),
            cnf: None,
        }
    }

    /// Issue 19: `token.signing_alg` survives a rotation, and a restart with the other
    /// setting still verifies the tokens signed before it.
    #[test]
    fn the_signing_alg_survives_rotation_and_a_change_breaks_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("mandate.db")).unwrap();
        let files = KeyFiles::in_data_dir(dir.path());
        let clock = ManualClock::at_millis(1_700_000_000_000);
        let now = clock.now();
        let ed = KeyState::open_signing_as(&store, &files, &clock, &OsRandom, SigningAlg::Ed25519)
            .unwrap();
        ed.rotate(&store, now, &OsRandom, 3600).unwrap();
        let ring = ed.ring();
        assert_eq!(ring.signing_alg(), SigningAlg::Ed25519);
        let jwks = ring.jwks(now);
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "the retired key stays published");
        assert!(keys.iter().all(|k| k["alg"] == "Ed25519"), "{jwks}");
        let token =
            access::issue_as(ring.current(), ring.signing_alg(), &claims(now.secs())).unwrap();
        drop(ed);

        let restarted = KeyState::open(&store, &files, &clock, &OsRandom).unwrap();
        let ring = restarted.ring();
        assert_eq!(ring.signing_alg(), SigningAlg::EdDsa);
        assert!(
            ring.jwks(now)["keys"]
                .as_array()
                .unwrap()
                .iter()
                .all(|k| k["alg"] == "EdDSA")
        );
        let expected = Expected {
            issuer: "http://mandate.test",
            max_lifetime_secs: 3600,
        };
        assert!(access::verify(&ring, &token, &expected, now).is_ok());
    }
}
