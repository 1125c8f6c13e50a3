//! Upstream secrets for the gateways, as ciphertext: the server encrypts and decrypts,
//! this table only keeps the bytes.

use mandate_core::time::Timestamp;
use rusqlite::{OptionalExtension, params};

use crate::{Store, StoreError};

/// One stored secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// The name a gateway route's credential refers to it by; unique (the primary key).
    pub name: String,
    /// The AEAD nonce.
    pub nonce: Vec<u8>,
    /// The ciphertext (with its tag).
    pub ciphertext: Vec<u8>,
    /// First stored.
    pub created_at: Timestamp,
    /// Last replaced.
    pub updated_at: Timestamp,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SecretRow> {
    Ok(SecretRow {
        name: r.get(0)?,
        nonce: r.get(1)?,
        ciphertext: r.get(2)?,
        created_at: Timestamp::from_secs(r.get(3)?),
        updated_at: Timestamp::from_secs(r.get(4)?),
    })
}

impl Store {
    /// Stores or replaces secret `name`.
    pub fn put_secret(
        &self,
        name: &str,
        nonce: &[u8],
        ciphertext: &[u8],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.lock().execute(
            "INSERT INTO gateway_secrets (name, nonce, ciphertext, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce,
                 ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
            params![name, nonce, ciphertext, now.secs()],
        )?;
        Ok(())
    }

    /// One secret.
    pub fn get_secret(&self, name: &str) -> Result<Option<SecretRow>, StoreError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT name, nonce, ciphertext, created_at, updated_at
                 FROM gateway_secrets WHERE name = ?1",
                [name],
                row,
            )
            .optional()?)
    }

    /// Every secret, by name.
    pub fn secrets(&self) -> Result<Vec<SecretRow>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT name, nonce, ciphertext, created_at, updated_at
             FROM gateway_secrets ORDER BY name",
        )?;
        let rows = stmt.query_map([], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes secret `name`; whether it existed.
    pub fn delete_secret(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .execute("DELETE FROM gateway_secrets WHERE name = ?1", [name])?
            == 1)
    }
}
