//! The gateways' upstream secrets: kept encrypted at rest (ChaCha20-Poly1305, the key
//! derived from the node's audit key, the secret's name as associated data), decrypted
//! into memory at start and kept in step with every change, and never returned by any
//! API: only the gateways read a value ([`Node::secret`]).

use mandate_store::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use mandate_store::{SecretRow, StoreError};
use serde_json::json;

use crate::Node;
use crate::actor::Actor;
use crate::error::ServiceError;
use crate::write_path::Recorded;

/// Decrypted secrets, loaded at start and kept in step with every change.
#[derive(Default)]
pub(crate) struct SecretCache(RwLock<HashMap<String, String>>);

impl std::fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretCache(<redacted>)")
    }
}

impl SecretCache {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, String>> {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn cipher(node: &Node) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&node.audit.secrets_key().into())
}

/// Decrypts every stored secret into the cache (at start). A secret that does not
/// decrypt (another node's key, a damaged row) is left out and logged by name.
pub(crate) fn load(node: &Node) -> Result<(), StoreError> {
    let c = cipher(node);
    let mut map = HashMap::new();
    for row in node.store().secrets()? {
        let nonce: Option<[u8; 12]> = row.nonce.as_slice().try_into().ok();
        let clear = nonce.and_then(|n| {
            c.decrypt(
                &Nonce::from(n),
                Payload {
                    msg: &row.ciphertext,
                    aad: row.name.as_bytes(),
                },
            )
            .ok()
        });
        match clear.and_then(|b| String::from_utf8(b).ok()) {
            Some(v) => {
                map.insert(row.name, v);
            }
            None => tracing::error!(name = %row.name, "gateway secret does not decrypt; ignored"),
        }
    }
    *node.secrets.write() = map;
    Ok(())
}

/// Why a secret could not be set.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No nonce could be drawn (the OS random source failed).
    #[error("secret nonce: {0}")]
    Random(String),
    /// Encryption failed.
    #[error("secret encryption failed")]
    Encrypt,
    /// Storing or recording it failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl Node {
    /// The decrypted value of gateway secret `name`, if one is set.
    pub fn secret(&self, name: &str) -> Option<String> {
        self.secrets
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Stores (or replaces) secret `name`, encrypted, and records
    /// `gateway.secret_set` by `actor` with the name only. The caller has checked the
    /// name and the value.
    pub async fn put_secret(
        self: &Arc<Self>,
        actor: &Actor,
        name: String,
        value: String,
    ) -> Result<(), SecretError> {
        let nonce: [u8; 12] = mandate_core::random::random_bytes(self.random.as_ref())
            .map_err(|e| SecretError::Random(e.to_string()))?;
        let ct = cipher(self)
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Encrypt)?;
        let key = name.clone();
        self.perform("gateway.secret_set", actor, move |s| {
            s.store()
                .put_secret(&key, &nonce, &ct, s.clock.now())
                .map_err(ServiceError::from)?;
            s.secrets.write().insert(key, value);
            Ok::<_, ServiceError>(((), Recorded::details(json!({"name": name}))))
        })
        .await?;
        Ok(())
    }

    /// Deletes secret `name` and records `gateway.secret_deleted` by `actor`; an unknown
    /// name is [`StoreError::NotFound`] and records nothing.
    pub async fn delete_secret(
        self: &Arc<Self>,
        actor: &Actor,
        name: String,
    ) -> Result<(), ServiceError> {
        let key = name.clone();
        self.perform("gateway.secret_deleted", actor, move |s| {
            let existed = s.store().delete_secret(&key)?;
            s.secrets.write().remove(&key);
            if !existed {
                // Nothing changed, so nothing is recorded.
                return Err(StoreError::NotFound("secret").into());
            }
            Ok(((), Recorded::details(json!({"name": name}))))
        })
        .await
    }

    /// The stored secrets' names and times (no value).
    pub fn secret_rows(&self) -> Result<Vec<SecretRow>, StoreError> {
        self.store().secrets()
    }
}
