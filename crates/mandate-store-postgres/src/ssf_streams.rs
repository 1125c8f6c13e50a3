//! Shared Signals streams and their poll queue (mandate-store `SsfStreamRepo`,
//! `INVARIANT (acked once)`). Every node queues its own log's SETs into the one queue of
//! a stream; the `(stream, jti)` key makes a SET queued twice (a resend after a restart)
//! one row, and an acknowledged row stays acknowledged.

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{SsfStreamRepo, SsfStreamRow, StoreError, Topic};
use tokio_postgres::Row;

use crate::{Db, Pg, get};

fn row(r: &Row) -> Result<SsfStreamRow> {
    Ok(SsfStreamRow {
        id: get(r, 0)?,
        status: get(r, 1)?,
        config: get(r, 2)?,
        created_at: Timestamp::from_secs(get(r, 3)?),
        updated_at: Timestamp::from_secs(get(r, 4)?),
    })
}

impl SsfStreamRepo for Db<'_> {
    fn insert_ssf_stream(&self, s: &SsfStreamRow) -> Result<()> {
        self.touch(Topic::Export)?;
        let n = self
            .exec(
                "INSERT INTO ssf_streams (id, status, config, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                &[
                    &s.id,
                    &s.status,
                    &s.config,
                    &s.created_at.secs(),
                    &s.updated_at.secs(),
                ],
            )
            .pg()?;
        if n == 0 {
            return Err(StoreError::Conflict(format!("stream `{}` exists", s.id)));
        }
        Ok(())
    }

    fn update_ssf_stream(&self, old: &SsfStreamRow, new: &SsfStreamRow) -> Result<()> {
        self.touch(Topic::Export)?;
        // LOCK: the row, by the UPDATE; its condition is the compare of compare-and-set.
        let n = self
            .exec(
                "UPDATE ssf_streams SET status = $2, config = $3, updated_at = $4
                 WHERE id = $1 AND status = $5 AND config = $6",
                &[
                    &old.id,
                    &new.status,
                    &new.config,
                    &new.updated_at.secs(),
                    &old.status,
                    &old.config,
                ],
            )
            .pg()?;
        if n == 0 {
            return match self.ssf_stream(&old.id)? {
                None => Err(StoreError::NotFound("stream")),
                Some(_) => Err(StoreError::Conflict(format!(
                    "stream `{}` changed meanwhile",
                    old.id
                ))),
            };
        }
        Ok(())
    }

    fn ssf_stream(&self, id: &str) -> Result<Option<SsfStreamRow>> {
        self.opt(
            "SELECT id, status, config, created_at, updated_at FROM ssf_streams WHERE id = $1",
            &[&id],
        )?
        .as_ref()
        .map(row)
        .transpose()
    }

    fn ssf_streams(&self) -> Result<Vec<SsfStreamRow>> {
        self.rows(
            "SELECT id, status, config, created_at, updated_at FROM ssf_streams ORDER BY id",
            &[],
        )?
        .iter()
        .map(row)
        .collect()
    }

    fn delete_ssf_stream(&self, id: &str) -> Result<bool> {
        self.touch(Topic::Export)?;
        self.exec("DELETE FROM ssf_poll_sets WHERE stream = $1", &[&id])
            .pg()?;
        let n = self
            .exec("DELETE FROM ssf_streams WHERE id = $1", &[&id])
            .pg()?;
        Ok(n > 0)
    }

    fn queue_ssf_sets(&self, stream: &str, sets: &[(String, String)]) -> Result<()> {
        self.touch(Topic::Export)?;
        // LOCK: the stream's row, shared, so it is not deleted while its SETs go in.
        if self
            .opt(
                "SELECT 1 FROM ssf_streams WHERE id = $1 FOR SHARE",
                &[&stream],
            )?
            .is_none()
        {
            return Err(StoreError::NotFound("stream"));
        }
        for (jti, body) in sets {
            self.exec(
                "INSERT INTO ssf_poll_sets (stream, jti, body) VALUES ($1, $2, $3)
                 ON CONFLICT (stream, jti) DO NOTHING",
                &[&stream, jti, body],
            )
            .pg()?;
        }
        Ok(())
    }

    fn ssf_sets_to_poll(&self, stream: &str, max: u32) -> Result<(Vec<(String, String)>, bool)> {
        let limit = i64::from(max) + 1;
        let rows = self.rows(
            "SELECT jti, body FROM ssf_poll_sets WHERE stream = $1 AND acked_at IS NULL
             ORDER BY n LIMIT $2",
            &[&stream, &limit],
        )?;
        let mut sets = rows
            .iter()
            .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
            .collect::<Result<Vec<(String, String)>>>()?;
        let more = sets.len() > max as usize;
        sets.truncate(max as usize);
        Ok((sets, more))
    }

    fn ack_ssf_sets(&self, stream: &str, jtis: &[String], now: Timestamp) -> Result<u64> {
        self.touch(Topic::Export)?;
        let mut n = 0u64;
        for jti in jtis {
            n += self
                .exec(
                    "UPDATE ssf_poll_sets SET acked_at = $3
                     WHERE stream = $1 AND jti = $2 AND acked_at IS NULL",
                    &[&stream, jti, &now.secs()],
                )
                .pg()?;
        }
        Ok(n)
    }
}
