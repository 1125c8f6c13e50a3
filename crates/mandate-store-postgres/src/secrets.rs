//! Upstream secrets for the gateways, as ciphertext: the server encrypts and decrypts,
//! this table only keeps the bytes. Also the store key's check, which tells a node
//! whether its store key opens them.

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{SecretRepo, SecretRow, StoreKeyRepo, Topic};
use tokio_postgres::Row;

use crate::{Db, Pg, get};

fn row(r: &Row) -> Result<SecretRow> {
    Ok(SecretRow {
        name: get(r, 0)?,
        nonce: get(r, 1)?,
        ciphertext: get(r, 2)?,
        created_at: Timestamp::from_secs(get(r, 3)?),
        updated_at: Timestamp::from_secs(get(r, 4)?),
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
        self.exec(
            "INSERT INTO gateway_secrets (name, nonce, ciphertext, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce,
                 ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
            &[&name, &nonce, &ciphertext, &now.secs()],
        )
        .pg()?;
        Ok(())
    }

    fn get_secret(&self, name: &str) -> Result<Option<SecretRow>> {
        self.opt(
            "SELECT name, nonce, ciphertext, created_at, updated_at
             FROM gateway_secrets WHERE name = $1",
            &[&name],
        )?
        .as_ref()
        .map(row)
        .transpose()
    }

    fn secrets(&self) -> Result<Vec<SecretRow>> {
        self.rows(
            "SELECT name, nonce, ciphertext, created_at, updated_at
             FROM gateway_secrets ORDER BY name",
            &[],
        )?
        .iter()
        .map(row)
        .collect()
    }

    fn delete_secret(&self, name: &str) -> Result<bool> {
        self.touch(Topic::Secrets)?;
        Ok(self
            .exec("DELETE FROM gateway_secrets WHERE name = $1", &[&name])
            .pg()?
            == 1)
    }
}

/// The `meta` key the store key's check is kept under.
const CHECK: &str = "store_key_check";

impl StoreKeyRepo for Db<'_> {
    fn store_key_check(&self) -> Result<Option<String>> {
        self.opt("SELECT value FROM meta WHERE key = $1", &[&CHECK])?
            .map(|r| get(&r, 0))
            .transpose()
    }

    fn claim_store_key_check(&self, check: &str) -> Result<String> {
        self.touch(Topic::Node)?;
        // Two first claims racing: the second insert waits on the key, then does nothing,
        // and both read the check that was committed.
        self.exec(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&CHECK, &check],
        )
        .pg()?;
        get(
            &self.one("SELECT value FROM meta WHERE key = $1", &[&CHECK])?,
            0,
        )
    }
}
