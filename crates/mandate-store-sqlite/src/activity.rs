//! Last activity of agents and credentials (`INVARIANT (activity only moves later)`,
//! mandate-store `ActivityRepo`): an upsert that keeps the later time.

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{ActivityRepo, Topic};
use rusqlite::params;

use crate::{Db, Sql};

impl ActivityRepo for Db<'_> {
    fn record_activity(&self, rows: &[(String, Timestamp)]) -> Result<()> {
        self.touch(Topic::Activity)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO last_activity (subject, at) VALUES (?1, ?2)
                 ON CONFLICT (subject) DO UPDATE SET at = excluded.at
                     WHERE last_activity.at < excluded.at",
            )
            .sql()?;
        for (subject, at) in rows {
            stmt.execute(params![subject, at.secs()]).sql()?;
        }
        Ok(())
    }

    fn activity(&self) -> Result<Vec<(String, Timestamp)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT subject, at FROM last_activity ORDER BY subject")
            .sql()?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, Timestamp::from_secs(r.get(1)?)))
            })
            .sql()?;
        rows.map(|r| r.sql()).collect()
    }
}
