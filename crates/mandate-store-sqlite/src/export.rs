//! Export sinks' cursors: how far each sink has delivered each node's log
//! (`INVARIANT (cursors only advance)`, mandate-store `ExportRepo`).

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{ExportCursorRow, ExportRepo, StoreError, Topic};
use rusqlite::{OptionalExtension, params};

use crate::{Db, Sql};

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Conflict(format!("cursor {v} out of range")))
}

fn to_u64(v: i64) -> rusqlite::Result<u64> {
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, v))
}

impl ExportRepo for Db<'_> {
    fn export_cursor(&self, sink: &str, node: &str) -> Result<u64> {
        let next: Option<i64> = self
            .conn
            .query_row(
                "SELECT next FROM export_cursors WHERE sink = ?1 AND node = ?2",
                [sink, node],
                |r| r.get(0),
            )
            .optional()
            .sql()?;
        next.map_or(Ok(0), |n| to_u64(n).sql())
    }

    fn advance_export_cursor(
        &self,
        sink: &str,
        node: &str,
        next: u64,
        now: Timestamp,
    ) -> Result<()> {
        self.touch(Topic::Export)?;
        let stored = self.export_cursor(sink, node)?;
        if next < stored {
            return Err(StoreError::Conflict(format!(
                "export cursor of `{sink}` over `{node}` is at {stored}; it cannot move back \
                 to {next}"
            )));
        }
        if next == stored {
            return Ok(());
        }
        self.conn
            .execute(
                "INSERT INTO export_cursors (sink, node, next, updated_at) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (sink, node) DO UPDATE SET next = ?3, updated_at = ?4",
                params![sink, node, to_i64(next)?, now.secs()],
            )
            .sql()?;
        Ok(())
    }

    fn export_cursors(&self) -> Result<Vec<ExportCursorRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT sink, node, next, updated_at FROM export_cursors ORDER BY sink, node",
            )
            .sql()?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ExportCursorRow {
                    sink: r.get(0)?,
                    node: r.get(1)?,
                    next: to_u64(r.get(2)?)?,
                    updated_at: Timestamp::from_secs(r.get(3)?),
                })
            })
            .sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()
    }
}
