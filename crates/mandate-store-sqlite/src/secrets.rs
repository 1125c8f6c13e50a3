//! Upstream secrets for the gateways, as ciphertext: the server encrypts and decrypts,
//! this table only keeps the bytes. Also the store key's check, which tells a node
//! whether its store key opens them.

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{SecretRepo, SecretRow, StoreKeyRepo, Topic};
use rusqlite::{OptionalExtension, params};

use crate::{Db, Sql};

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SecretRow> {
    Ok(SecretRow {
        name: r.get(0)?,
        nonce: r.get(1)?,
        ciphertext: r.get(2)?,
        created_at: Timestamp::from_secs(r.get(3)?),
        updated_at: Timestamp::from_secs(r.get(4)?),
    })
}

impl SecretRepo for Db<'_> {
    fn put_secret(
        &self,
        name: &str,
        nonce: &[u8],
        ciphertext: &[u8],
        now: Timestamp,
    ) -> Result<()> {
        self.touch(Topic::Secrets)?;
        self.conn
            .execute(
                "INSERT INTO gateway_secrets (name, nonce, ciphertext, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce,
                 ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
                params![name, nonce, ciphertext, now.secs()],
            )
            .sql()?;
        Ok(())
    }

    fn get_secret(&self, name: &str) -> Result<Option<SecretRow>> {
        self.conn
            .query_row(
                "SELECT name, nonce, ciphertext, created_at, updated_at
                 FROM gateway_secrets WHERE name = ?1",
                [name],
                row,
            )
            .optional()
            .sql()
    }

    fn secrets(&self) -> Result<Vec<SecretRow>> {
        let conn = self.conn;
        let mut stmt = conn
            .prepare(
                "SELECT name, nonce, ciphertext, created_at, updated_at
             FROM gateway_secrets ORDER BY name",
            )
            .sql()?;
        let rows = stmt.query_map([], row).sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()
    }

    fn delete_secret(&self, name: &str) -> Result<bool> {
        self.touch(Topic::Secrets)?;
        Ok(self
            .conn
            .execute("DELETE FROM gateway_secrets WHERE name = ?1", [name])
            .sql()?
            == 1)
    }
}

/// The `meta` key the store key's check is kept under.
const CHECK: &str = "store_key_check";

impl StoreKeyRepo for Db<'_> {
    fn store_key_check(&self) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [CHECK], |r| {
                r.get(0)
            })
            .optional()
            .sql()
    }

    fn claim_store_key_check(&self, check: &str) -> Result<String> {
        self.touch(Topic::Node)?;
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                [CHECK, check],
            )
            .sql()?;
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [CHECK], |r| {
                r.get(0)
            })
            .sql()
    }
}
