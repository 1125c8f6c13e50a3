//! Loading, publishing and rotating Mandate's signing keys.
//!
//! The private key of the current signer lives in `keys/<kid>.pem` (mode 0600); the store
//! records every key's public half and how long it stays published. A rotated-out key
//! keeps being published until every token it signed has expired, then drops out of
//! the JWKS and the verifier — by the ring's own clock check (`INVARIANT (keys are a
//! function of time)` in mandate-token), so nothing here reloads on a timer: the ring
//! is read from the store at start and after a rotation only.

use mandate_store::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use mandate_core::clock::Clock;
use mandate_core::random::Random;
use mandate_core::time::Timestamp;
use mandate_store::{Store, StoreError, keyfile};
use mandate_token::jws::SigningAlg;
use mandate_token::keys::{KeyError, KeyRing, PublishedKey, SigningKey};

/// Key loading or rotation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// Store or file IO.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Key material.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store names a current key whose file is missing.
    #[error("signing key `{0}` is recorded but its file is missing or unreadable: {1}")]
    MissingFile(String, String),
}

fn key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.pem"))
}

/// The key ring, swapped whole on rotation.
pub struct KeyState {
    dir: PathBuf,
    ring: RwLock<Arc<KeyRing>>,
    /// `token.signing_alg`: the `alg` name tokens are signed (and keys published) under.
    alg: SigningAlg,
}

impl std::fmt::Debug for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyState")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn load(
    store: &dyn Store,
    dir: &Path,
    now: Timestamp,
    alg: SigningAlg,
) -> Result<Arc<KeyRing>, KeysError> {
    let rows = store.published_signing_keys(now)?;
    let current_row = rows
        .iter()
        .find(|r| r.retired_at.is_none())
        .ok_or_else(|| KeysError::MissingFile("(none)".into(), "no current key".into()))?;
    let path = key_path(dir, &current_row.kid);
    let pem = keyfile::read_private(&path)
        .map_err(|e| KeysError::MissingFile(current_row.kid.clone(), e.to_string()))?;
    let current = SigningKey::from_pkcs8_pem(&pem)?;
    if current.kid() != current_row.kid {
        return Err(KeysError::MissingFile(
            current_row.kid.clone(),
            "file holds a different key".into(),
        ));
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

fn create_key(
    store: &dyn Store,
    dir: &Path,
    now: Timestamp,
    random: &dyn Random,
    old_until: Timestamp,
) -> Result<String, KeysError> {
    let key = SigningKey::generate(random)?;
    keyfile::write_private(&key_path(dir, key.kid()), &key.to_pkcs8_pem()?)?;
    store.add_signing_key(key.kid(), &key.public_bytes(), now, old_until)?;
    Ok(key.kid().to_owned())
}

/// Deletes every private key file but the current one (a rotation interrupted between
/// its commit and the old file's removal leaves one behind), and stray temporary files.
fn sweep(dir: &Path, current_kid: &str) -> Result<(), StoreError> {
    let keep = format!("{current_kid}.pem");
    let entries = std::fs::read_dir(dir).map_err(|source| StoreError::Io {
        context: format!("list {}", dir.display()),
        source,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name != keep && (name.ends_with(".pem") || name.ends_with(".tmp")) {
            tracing::info!(file = %name, "removing retired signing key file");
            keyfile::remove_private(&entry.path())?;
        }
    }
    Ok(())
}

impl KeyState {
    /// Loads the key ring, creating the first signing key (and `dir`, mode 0700) on
    /// first start; tokens are signed under `alg` `EdDSA`.
    pub fn open(
        store: &dyn Store,
        dir: &Path,
        clock: &dyn Clock,
        random: &dyn Random,
    ) -> Result<Self, KeysError> {
        Self::open_signing_as(store, dir, clock, random, SigningAlg::default())
    }

    /// [`KeyState::open`], signing tokens under the `alg` name `alg`.
    pub fn open_signing_as(
        store: &dyn Store,
        dir: &Path,
        clock: &dyn Clock,
        random: &dyn Random,
        alg: SigningAlg,
    ) -> Result<Self, KeysError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            context: format!("create {}", dir.display()),
            source,
        })?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
                |source| StoreError::Io {
                    context: format!("chmod {}", dir.display()),
                    source,
                },
            )?;
        }
        let now = clock.now();
        if store
            .published_signing_keys(now)?
            .iter()
            .all(|r| r.retired_at.is_some())
        {
            create_key(store, dir, now, random, now)?;
        }
        let ring = load(store, dir, now, alg)?;
        sweep(dir, ring.current().kid())?;
        Ok(Self {
            dir: dir.to_owned(),
            ring: RwLock::new(ring),
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

    /// Makes a new signing key current. The old one stays published until
    /// `now + publish_secs` (the longest lifetime of a token it may have signed), and
    /// its private key file is deleted: it will never sign again.
    pub fn rotate(
        &self,
        store: &dyn Store,
        now: Timestamp,
        random: &dyn Random,
        publish_secs: u32,
    ) -> Result<(String, String), KeysError> {
        // Holding the write lock serialises rotations and keeps signers off a stale ring.
        let mut guard = self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = guard.current().kid().to_owned();
        let new = create_key(
            store,
            &self.dir,
            now,
            random,
            now.plus_secs(i64::from(publish_secs)),
        )?;
        *guard = load(store, &self.dir, now, self.alg)?;
        drop(guard);
        keyfile::remove_private(&key_path(&self.dir, &old))?;
        Ok((old, new))
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
        }
    }

    /// Issue 19: `token.signing_alg` survives a rotation, and a restart with the other
    /// setting still verifies the tokens signed before it.
    #[test]
    fn the_signing_alg_survives_rotation_and_a_change_breaks_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("mandate.db")).unwrap();
        let keys_dir = dir.path().join("keys");
        let clock = ManualClock::at_millis(1_700_000_000_000);
        let now = clock.now();
        let ed =
            KeyState::open_signing_as(&store, &keys_dir, &clock, &OsRandom, SigningAlg::Ed25519)
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

        let restarted = KeyState::open(&store, &keys_dir, &clock, &OsRandom).unwrap();
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
