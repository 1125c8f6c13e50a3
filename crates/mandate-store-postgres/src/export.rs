//! Export sinks' cursors: how far each sink has delivered each node's log
//! (`INVARIANT (cursors only advance)`, mandate-store `ExportRepo`). Each node moves its
//! own log's cursors; the upsert's condition keeps the rule even if two processes of one
//! node overlap (a restart).

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{ExportCursorRow, ExportRepo, StoreError, Topic};

use crate::{Db, Pg, get};

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Conflict(format!("cursor {v} out of range")))
}

fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative export cursor {v}")))
}

impl ExportRepo for Db<'_> {
    fn export_cursor(&self, sink: &str, node: &str) -> Result<u64> {
        match self.opt(
            "SELECT next FROM export_cursors WHERE sink = $1 AND node = $2",
            &[&sink, &node],
        )? {
            Some(r) => to_u64(get(&r, 0)?),
            None => Ok(0),
        }
    }

    fn advance_export_cursor(
        &self,
        sink: &str,
        node: &str,
        next: u64,
        now: Timestamp,
    ) -> Result<()> {
        self.touch(Topic::Export)?;
        let moved = self
            .exec(
                "INSERT INTO export_cursors (sink, node, next, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (sink, node) DO UPDATE
                     SET next = excluded.next, updated_at = excluded.updated_at
                     WHERE export_cursors.next < excluded.next",
                &[&sink, &node, &to_i64(next)?, &now.secs()],
            )
            .pg()?;
        if moved == 0 {
            let stored = self.export_cursor(sink, node)?;
            if next < stored {
                return Err(StoreError::Conflict(format!(
                    "export cursor of `{sink}` over `{node}` is at {stored}; it cannot move \
                     back to {next}"
                )));
            }
        }
        Ok(())
    }

    fn export_cursors(&self) -> Result<Vec<ExportCursorRow>> {
        self.rows(
            "SELECT sink, node, next, updated_at FROM export_cursors ORDER BY sink, node",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(ExportCursorRow {
                sink: get(r, 0)?,
                node: get(r, 1)?,
                next: to_u64(get(r, 2)?)?,
                updated_at: Timestamp::from_secs(get(r, 3)?),
            })
        })
        .collect()
    }
}
