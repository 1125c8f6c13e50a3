//! Last activity of agents and credentials (`INVARIANT (activity only moves later)`,
//! mandate-store `ActivityRepo`): every node upserts its batch, and the upsert keeps the
//! later time, so batches from several nodes land in any order.

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{ActivityRepo, Topic};

use crate::{Db, Pg, get};

impl ActivityRepo for Db<'_> {
    fn record_activity(&self, rows: &[(String, Timestamp)]) -> Result<()> {
        self.touch(Topic::Activity)?;
        if rows.is_empty() {
            return Ok(());
        }
        // One statement per batch: the subjects and times as two arrays, deduplicated
        // (an `ON CONFLICT` statement may not touch one row twice) to the latest time.
        let mut latest: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
        for (s, at) in rows {
            let e = latest.entry(s.as_str()).or_insert(at.secs());
            *e = (*e).max(at.secs());
        }
        let subjects: Vec<&str> = latest.keys().copied().collect();
        let ats: Vec<i64> = latest.values().copied().collect();
        self.exec(
            "INSERT INTO last_activity (subject, at)
             SELECT * FROM unnest($1::TEXT[], $2::BIGINT[])
             ON CONFLICT (subject) DO UPDATE SET at = excluded.at
                 WHERE last_activity.at < excluded.at",
            &[&subjects, &ats],
        )
        .pg()?;
        Ok(())
    }

    fn activity(&self) -> Result<Vec<(String, Timestamp)>> {
        self.rows(
            "SELECT subject, at FROM last_activity ORDER BY subject",
            &[],
        )?
        .iter()
        .map(|r| Ok((get(r, 0)?, Timestamp::from_secs(get(r, 1)?))))
        .collect()
    }
}
