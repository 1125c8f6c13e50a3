//! The store key: 32 random bytes that every node of a cluster holds, and the store
//! never sees. It seals what the nodes share through the store — the current signing
//! key's private half (`keys.rs`) and the gateways' upstream secrets (`secrets.rs`) —
//! and the audit redaction HMAC key derives from it, so every node
//! signs with the same key, opens the same secrets and hashes a redacted field the same.
//! (Each node's audit checkpoint key stays its own: `audit.rs`.)
//!
//! It lives in a file beside the node's data (`<data_dir>/store.key`, or `store.key_file`),
//! mode 0600, as 64 hexadecimal characters; the first node on an empty store creates it,
//! and every other node is given a copy. The store records a check of it (a keyed hash,
//! [`mandate_store::StoreKeyRepo`]): a node whose key differs, or that has none while the
//! store records one, is refused at start and writes nothing.
//!
//! Sealing is ChaCha20-Poly1305 under a key derived for it, a random 96-bit nonce per
//! value, and associated data naming what is sealed ([`Sealed`]), so a sealed value moved
//! to another row or column does not open. Never logged, never in an API answer: the
//! type has no `Debug` that shows it and nothing returns its bytes.

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use mandate_core::random::{Random, random_bytes};
use mandate_store::{Store, StoreError, StoreKeyRepo, keyfile};
use sha2::Sha256;

/// Why this node's store key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum StoreKeyError {
    /// The key file or the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store's sealed values were sealed under another key.
    #[error("this node's store key does not open this store: copy {0} from a node of the cluster")]
    Mismatch(String),
    /// The store records a key, and this node has none.
    #[error(
        "this node has no store key ({0}) but the store is sealed under one: copy {0} from a \
         node of the cluster"
    )]
    Missing(String),
    /// The key file does not hold a key.
    #[error("store key {0} is not 64 hexadecimal characters (32 bytes)")]
    Malformed(String),
    /// The random source failed.
    #[error("random source failed: {0}")]
    Random(String),
}

/// A sealed value could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// No nonce could be drawn (the OS random source failed).
    #[error("random source failed: {0}")]
    Random(String),
    /// Encryption failed.
    #[error("sealing failed")]
    Encrypt,
}

/// What a sealed value is; its associated data, so it opens only as what it was sealed
/// as.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sealed<'a> {
    /// The private half (PKCS#8 PEM) of signing key `kid`.
    SigningKey(&'a str),
    /// The value of gateway secret `name`.
    GatewaySecret(&'a str),
}

impl Sealed<'_> {
    fn aad(self) -> Vec<u8> {
        let (what, name) = match self {
            Sealed::SigningKey(kid) => ("mandate signing key v1", kid),
            Sealed::GatewaySecret(name) => ("mandate gateway secret v1", name),
        };
        let mut aad = Vec::with_capacity(what.len() + 1 + name.len());
        aad.extend_from_slice(what.as_bytes());
        aad.push(0);
        aad.extend_from_slice(name.as_bytes());
        aad
    }
}

/// The length of a nonce, which a joined sealed value ([`StoreKey::seal_joined`]) starts
/// with.
const NONCE: usize = 12;

/// This node's copy of the store key.
pub struct StoreKey {
    /// The sealing key, derived: never the store key itself.
    seal: [u8; 32],
    /// The audit redaction HMAC key, derived.
    redaction: [u8; 32],
    /// The DPoP nonce HMAC key, derived (`dpop.rs`): every node makes and accepts the
    /// same nonces.
    dpop_nonce: [u8; 32],
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(<redacted>)")
    }
}

/// HMAC-SHA256 of `label` under `key`: one derived key per purpose, none revealing
/// another or the store key.
fn derive(key: &[u8; 32], label: &str) -> [u8; 32] {
    // HMAC pads a key shorter than its block with zeros (RFC 2104): done here, so the
    // constructor is the infallible one for a whole block.
    let mut block = [0u8; 64];
    for (b, k) in block.iter_mut().zip(key) {
        *b = *k;
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The check the store records: a keyed hash that tells whether a key is the store's
/// without revealing anything of it.
fn check_of(key: &[u8; 32]) -> String {
    hex(&derive(key, "mandate store key check v1"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        let s = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

impl StoreKey {
    /// This node's store key, from `path`, checked against `store`:
    ///
    /// - the file exists: its key must be the one the store records (refused with
    ///   [`StoreKeyError::Mismatch`] otherwise, nothing written); a store that records
    ///   none (empty, or from before the store key) records this one;
    /// - no file, and the store records a key: refused ([`StoreKeyError::Missing`]);
    /// - no file, nothing recorded: a new key is written to `path` (0600) and recorded.
    ///   When another node recorded its own first (two first starts racing), the file
    ///   just written is removed again and this node is refused.
    pub fn open(
        store: &dyn Store,
        path: &Path,
        random: &dyn Random,
    ) -> Result<Self, StoreKeyError> {
        let shown = path.display().to_string();
        let recorded = store.store_key_check()?;
        if path.exists() {
            let key = unhex(&keyfile::read_private(path)?)
                .ok_or_else(|| StoreKeyError::Malformed(shown.clone()))?;
            let mine = check_of(&key);
            let recorded = match recorded {
                Some(r) => r,
                None => store.claim_store_key_check(&mine)?,
            };
            if recorded != mine {
                return Err(StoreKeyError::Mismatch(shown));
            }
            return Ok(Self::from_key(&key));
        }
        if recorded.is_some() {
            return Err(StoreKeyError::Missing(shown));
        }
        let key: [u8; 32] =
            random_bytes(random).map_err(|e| StoreKeyError::Random(e.to_string()))?;
        let mine = check_of(&key);
        // The file first: a check recorded without a file holding its key would lock
        // every node out of the store.
        keyfile::write_private(path, &format!("{}\n", hex(&key)))?;
        match store.claim_store_key_check(&mine) {
            Ok(recorded) if recorded == mine => {
                tracing::info!(file = %shown, "created the store key; copy it to every node of the cluster");
                Ok(Self::from_key(&key))
            }
            Ok(_) => {
                keyfile::remove_private(path)?;
                Err(StoreKeyError::Missing(shown))
            }
            Err(e) => {
                keyfile::remove_private(path)?;
                Err(e.into())
            }
        }
    }

    fn from_key(key: &[u8; 32]) -> Self {
        Self {
            seal: derive(key, "mandate store seal v1"),
            redaction: derive(key, "mandate audit redaction v1"),
            dpop_nonce: derive(key, "mandate dpop nonce v1"),
        }
    }

    /// The HMAC key for `Rule::Hash` audit redaction: the same on every node.
    pub fn redaction_key(&self) -> [u8; 32] {
        self.redaction
    }

    /// The HMAC key of DPoP server nonces: the same on every node of a cluster.
    pub fn dpop_nonce_key(&self) -> [u8; 32] {
        self.dpop_nonce
    }

    /// Seals `clear` as `what`: the nonce and the ciphertext (with its tag).
    pub(crate) fn seal(
        &self,
        what: Sealed<'_>,
        clear: &[u8],
        random: &dyn Random,
    ) -> Result<([u8; NONCE], Vec<u8>), SealError> {
        let nonce: [u8; NONCE] =
            random_bytes(random).map_err(|e| SealError::Random(e.to_string()))?;
        let ct = ChaCha20Poly1305::new(&self.seal.into())
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: clear,
                    aad: &what.aad(),
                },
            )
            .map_err(|_| SealError::Encrypt)?;
        Ok((nonce, ct))
    }

    /// Opens a value sealed as `what`; `None` if it was sealed under another key, as
    /// something else, or was changed.
    pub(crate) fn open_sealed(
        &self,
        what: Sealed<'_>,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Option<Vec<u8>> {
        let nonce: [u8; NONCE] = nonce.try_into().ok()?;
        ChaCha20Poly1305::new(&self.seal.into())
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &what.aad(),
                },
            )
            .ok()
    }

    /// [`StoreKey::seal`] as one value: the nonce, then the ciphertext.
    pub(crate) fn seal_joined(
        &self,
        what: Sealed<'_>,
        clear: &[u8],
        random: &dyn Random,
    ) -> Result<Vec<u8>, SealError> {
        let (nonce, ct) = self.seal(what, clear, random)?;
        let mut out = Vec::with_capacity(NONCE + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a value made by [`StoreKey::seal_joined`].
    pub(crate) fn open_joined(&self, what: Sealed<'_>, sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, ct) = sealed.split_at_checked(NONCE)?;
        self.open_sealed(what, nonce, ct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mandate_core::random::OsRandom;
    use mandate_store_sqlite::SqliteStore;
    use std::os::unix::fs::PermissionsExt;

    fn store(dir: &Path) -> SqliteStore {
        SqliteStore::open(&dir.join("mandate.db")).unwrap()
    }

    /// The first node creates the key (0600, hex) and the store's check; a copy opens
    /// the store and seals and opens the same values; what is sealed as one thing does
    /// not open as another.
    #[test]
    fn a_copy_of_the_first_nodes_key_opens_what_it_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let path = dir.path().join("store.key");
        let a = StoreKey::open(&store, &path, &OsRandom).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64, "{text}");
        assert!(store.store_key_check().unwrap().is_some());

        let copy = dir.path().join("copy.key");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
        let b = StoreKey::open(&store, &copy, &OsRandom).unwrap();
        assert_eq!(a.redaction_key(), b.redaction_key());
        let sealed = a
            .seal_joined(Sealed::SigningKey("k1"), b"private", &OsRandom)
            .unwrap();
        assert_eq!(
            b.open_joined(Sealed::SigningKey("k1"), &sealed).as_deref(),
            Some(&b"private"[..])
        );
        assert_eq!(b.open_joined(Sealed::SigningKey("k2"), &sealed), None);
        assert_eq!(b.open_joined(Sealed::GatewaySecret("k1"), &sealed), None);
        assert_eq!(b.open_joined(Sealed::SigningKey("k1"), &sealed[..5]), None);
        assert_eq!(format!("{a:?}"), "StoreKey(<redacted>)");
    }

    /// The derivation is HMAC-SHA256 with the 32-byte key: RFC 4231 test case 2's key
    /// ("Jefe") padded the same way gives its published MAC.
    #[test]
    fn derive_is_hmac_sha256() {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            hex(&derive(&key, "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// A node with another key, or none, is refused and writes nothing; a malformed
    /// file is refused by name.
    #[test]
    fn another_key_or_none_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        StoreKey::open(&store, &dir.path().join("store.key"), &OsRandom).unwrap();
        let check = store.store_key_check().unwrap();

        let missing = dir.path().join("b.key");
        let e = StoreKey::open(&store, &missing, &OsRandom).unwrap_err();
        assert!(matches!(e, StoreKeyError::Missing(_)), "{e}");
        assert!(e.to_string().contains("copy"), "{e}");
        assert!(!missing.exists(), "no key file written");

        let other = dir.path().join("c.key");
        keyfile::write_private(&other, &hex(&[7; 32])).unwrap();
        let e = StoreKey::open(&store, &other, &OsRandom).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "this node's store key does not open this store: copy {} from a node of the cluster",
                other.display()
            )
        );
        assert_eq!(store.store_key_check().unwrap(), check, "nothing written");

        let bad = dir.path().join("d.key");
        keyfile::write_private(&bad, "not hex").unwrap();
        let e = StoreKey::open(&store, &bad, &OsRandom).unwrap_err();
        assert!(matches!(e, StoreKeyError::Malformed(_)), "{e}");
    }
}
