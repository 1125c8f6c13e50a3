//! Shared Signals streams and their poll queue (mandate-store `SsfStreamRepo`,
//! `INVARIANT (acked once)`).

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{SsfStreamRepo, SsfStreamRow, StoreError, Topic};
use rusqlite::{OptionalExtension, params};

use crate::{Db, Sql};

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SsfStreamRow> {
    Ok(SsfStreamRow {
        id: r.get(0)?,
        status: r.get(1)?,
        config: r.get(2)?,
        created_at: Timestamp::from_secs(r.get(3)?),
        updated_at: Timestamp::from_secs(r.get(4)?),
    })
}

const COLUMNS: &str = "id, status, config, created_at, updated_at";

impl SsfStreamRepo for Db<'_> {
    fn insert_ssf_stream(&self, s: &SsfStreamRow) -> Result<()> {
        self.touch(Topic::Export)?;
        let n = self
            .conn
            .execute(
                "INSERT INTO ssf_streams (id, status, config, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
                params![
                    s.id,
                    s.status,
                    s.config,
                    s.created_at.secs(),
                    s.updated_at.secs()
                ],
            )
            .sql()?;
        if n == 0 {
            return Err(StoreError::Conflict(format!("stream `{}` exists", s.id)));
        }
        Ok(())
    }

    fn update_ssf_stream(&self, old: &SsfStreamRow, new: &SsfStreamRow) -> Result<()> {
        self.touch(Topic::Export)?;
        let n = self
            .conn
            .execute(
                "UPDATE ssf_streams SET status = ?2, config = ?3, updated_at = ?4 \
                 WHERE id = ?1 AND status = ?5 AND config = ?6",
                params![
                    old.id,
                    new.status,
                    new.config,
                    new.updated_at.secs(),
                    old.status,
                    old.config
                ],
            )
            .sql()?;
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
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM ssf_streams WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
            .sql()
    }

    fn ssf_streams(&self) -> Result<Vec<SsfStreamRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM ssf_streams ORDER BY id"))
            .sql()?;
        let rows = stmt.query_map([], row).sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()
    }

    fn delete_ssf_stream(&self, id: &str) -> Result<bool> {
        self.touch(Topic::Export)?;
        self.conn
            .execute("DELETE FROM ssf_poll_sets WHERE stream = ?1", [id])
            .sql()?;
        let n = self
            .conn
            .execute("DELETE FROM ssf_streams WHERE id = ?1", [id])
            .sql()?;
        Ok(n > 0)
    }

    fn queue_ssf_sets(&self, stream: &str, sets: &[(String, String)]) -> Result<()> {
        self.touch(Topic::Export)?;
        if self.ssf_stream(stream)?.is_none() {
            return Err(StoreError::NotFound("stream"));
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO ssf_poll_sets (stream, jti, body) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (stream, jti) DO NOTHING",
            )
            .sql()?;
        for (jti, body) in sets {
            stmt.execute(params![stream, jti, body]).sql()?;
        }
        Ok(())
    }

    fn ssf_sets_to_poll(&self, stream: &str, max: u32) -> Result<(Vec<(String, String)>, bool)> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT jti, body FROM ssf_poll_sets WHERE stream = ?1 AND acked_at IS NULL \
                 ORDER BY n LIMIT ?2",
            )
            .sql()?;
        let limit = i64::from(max) + 1;
        let rows = stmt
            .query_map(params![stream, limit], |r| Ok((r.get(0)?, r.get(1)?)))
            .sql()?;
        let mut sets: Vec<(String, String)> = rows.collect::<rusqlite::Result<_>>().sql()?;
        let more = sets.len() > max as usize;
        sets.truncate(max as usize);
        Ok((sets, more))
    }

    fn ack_ssf_sets(&self, stream: &str, jtis: &[String], now: Timestamp) -> Result<u64> {
        self.touch(Topic::Export)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "UPDATE ssf_poll_sets SET acked_at = ?3 \
                 WHERE stream = ?1 AND jti = ?2 AND acked_at IS NULL",
            )
            .sql()?;
        let mut n = 0u64;
        for jti in jtis {
            n += stmt.execute(params![stream, jti, now.secs()]).sql()? as u64;
        }
        Ok(n)
    }
}
