//! The gateways' upstream secrets: kept sealed at rest under the store key
//! ([`crate::store_key`]: ChaCha20-Poly1305, the secret's name in the associated data),
//! so every node of a cluster opens them; opened into memory at start and kept in step
//! with every change (this node's at once, another node's when the change feed calls
//! [`Node::reload_secrets`]), and never returned by any API: only the gateways read a
//! value ([`Node::secret`]).
//!
//! Secrets stored before the store key were encrypted under a key derived from the
//! node's audit key; at start each one is sealed again under the store key, once.

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
use crate::store_key::{SealError, Sealed};
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

/// Opens `row` under the store key.
fn open(node: &Node, row: &SecretRow) -> Option<String> {
    let clear = node.keys.store_key().open_sealed(
        Sealed::GatewaySecret(&row.name),
        &row.nonce,
        &row.ciphertext,
    )?;
    String::from_utf8(clear).ok()
}

/// Opens `row` as it was written before the store key: under the key derived from this
/// node's audit key, the bare name as associated data.
fn open_legacy(node: &Node, row: &SecretRow) -> Option<String> {
    let nonce: [u8; 12] = row.nonce.as_slice().try_into().ok()?;
    let clear = ChaCha20Poly1305::new(&node.audit.legacy_secrets_key().into())
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &row.ciphertext,
                aad: row.name.as_bytes(),
            },
        )
        .ok()?;
    String::from_utf8(clear).ok()
}

/// Why the secrets could not be loaded at start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A secret from before the store key could not be sealed again.
    #[error("sealing a gateway secret under the store key: {0}")]
    Seal(#[from] SealError),
}

/// Opens every stored secret into the cache (at start), first sealing again under the
/// store key each one from before it (logged by name; the row's `updated_at` moves). A
/// secret that opens under neither key (another store key, a damaged row) is left out
/// and logged by name.
pub(crate) fn load(node: &Node) -> Result<(), LoadError> {
    for row in node.db.secrets()? {
        if open(node, &row).is_some() {
            continue;
        }
        let Some(value) = open_legacy(node, &row) else {
            continue;
        };
        let (nonce, ct) = node.keys.store_key().seal(
            Sealed::GatewaySecret(&row.name),
            value.as_bytes(),
            node.random.as_ref(),
        )?;
        node.db
            .put_secret(&row.name, &nonce, &ct, node.clock.now())?;
        tracing::info!(name = %row.name, "sealed a gateway secret from before under the store key");
    }
    Ok(reload(node)?)
}

/// Opens every stored secret into the cache, replacing it whole.
fn reload(node: &Node) -> Result<(), StoreError> {
    let mut map = HashMap::new();
    for row in node.db.secrets()? {
        match open(node, &row) {
            Some(v) => {
                map.insert(row.name, v);
            }
            None => tracing::error!(name = %row.name, "gateway secret does not open; ignored"),
        }
    }
    *node.secrets.write() = map;
    Ok(())
}

/// Why a secret could not be set.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Sealing it failed (the OS random source, or the cipher).
    #[error("secret: {0}")]
    Seal(#[from] SealError),
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
        let (nonce, ct) = self.keys.store_key().seal(
            Sealed::GatewaySecret(&name),
            value.as_bytes(),
            self.random.as_ref(),
        )?;
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

    /// Reads every secret from the store again, replacing this node's cache whole: what
    /// a node does when the change feed says the secrets changed (another node set or
    /// deleted one). Blocking. On an error the cache stays as it was.
    pub fn reload_secrets(&self) -> Result<(), StoreError> {
        reload(self)
    }

    /// The stored secrets' names and times (no value).
    pub fn secret_rows(&self) -> Result<Vec<SecretRow>, StoreError> {
        self.store().secrets()
    }
}
