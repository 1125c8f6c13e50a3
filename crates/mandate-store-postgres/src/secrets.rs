//! Upstream secrets for the gateways, as ciphertext: the server encrypts and decrypts,
//! this table only keeps the bytes.

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{SecretRepo, SecretRow, Topic};
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
