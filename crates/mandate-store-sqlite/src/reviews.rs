//! Access review campaigns and their items (mandate-store `ReviewRepo`,
//! `INVARIANT (decided once)`: the `state = 'pending'` condition of the deciding UPDATE
//! is the compare of compare-and-set).

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{ReviewItemRow, ReviewRepo, ReviewRow, StoreError, Topic};
use rusqlite::{OptionalExtension, params};

use crate::{Db, Sql};

const REVIEW_COLUMNS: &str = "id, name, spec, due, created_by, created_at, completed_at";
const ITEM_COLUMNS: &str = "i.review, i.agent, i.owner, i.state, i.findings, i.decided_by, \
     i.decided_at, i.decision, i.escalated_at";

fn review_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReviewRow> {
    Ok(ReviewRow {
        id: r.get(0)?,
        name: r.get(1)?,
        spec: r.get(2)?,
        due: Timestamp::from_secs(r.get(3)?),
        created_by: r.get(4)?,
        created_at: Timestamp::from_secs(r.get(5)?),
        completed_at: r.get::<_, Option<i64>>(6)?.map(Timestamp::from_secs),
    })
}

fn item_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReviewItemRow> {
    Ok(ReviewItemRow {
        review: r.get(0)?,
        agent: r.get(1)?,
        owner: r.get(2)?,
        state: r.get(3)?,
        findings: r.get(4)?,
        decided_by: r.get(5)?,
        decided_at: r.get::<_, Option<i64>>(6)?.map(Timestamp::from_secs),
        decision: r.get(7)?,
        escalated_at: r.get::<_, Option<i64>>(8)?.map(Timestamp::from_secs),
    })
}

impl ReviewRepo for Db<'_> {
    fn insert_review(&self, r: &ReviewRow, items: &[ReviewItemRow]) -> Result<()> {
        self.touch(Topic::Reviews)?;
        let n = self
            .conn
            .execute(
                "INSERT INTO reviews (id, name, spec, due, created_by, created_at, completed_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
                params![
                    r.id,
                    r.name,
                    r.spec,
                    r.due.secs(),
                    r.created_by,
                    r.created_at.secs(),
                    r.completed_at.map(Timestamp::secs)
                ],
            )
            .sql()?;
        if n == 0 {
            return Err(StoreError::Conflict(format!("review `{}` exists", r.id)));
        }
        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT INTO review_items (review, agent, owner, state, findings) \
                 VALUES (?1, ?2, ?3, 'pending', ?4)",
            )
            .sql()?;
        for i in items {
            insert
                .execute(params![r.id, i.agent, i.owner, i.findings])
                .sql()?;
        }
        Ok(())
    }

    fn review(&self, id: &str) -> Result<Option<ReviewRow>> {
        self.conn
            .query_row(
                &format!("SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = ?1"),
                [id],
                review_row,
            )
            .optional()
            .sql()
    }

    fn reviews(&self, after: Option<&str>, limit: u32) -> Result<Vec<ReviewRow>> {
        let mut s = self
            .conn
            .prepare_cached(&format!(
                "SELECT {REVIEW_COLUMNS} FROM reviews WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))
            .sql()?;
        let rows = s
            .query_map(params![after.unwrap_or(""), limit], review_row)
            .sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()
    }

    fn review_items(&self, review: &str) -> Result<Vec<ReviewItemRow>> {
        let mut s = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM review_items i WHERE i.review = ?1 ORDER BY i.agent"
            ))
            .sql()?;
        let rows = s.query_map([review], item_row).sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()
    }

    fn decide_review_item(
        &self,
        review: &str,
        agent: &str,
        state: &str,
        by: &str,
        at: Timestamp,
        decision: &str,
    ) -> Result<ReviewItemRow> {
        self.touch(Topic::Reviews)?;
        if state == "pending" {
            return Err(StoreError::Conflict(
                "an item is decided to a final state".into(),
            ));
        }
        // INVARIANT (decided once): only a pending item is written.
        let n = self
            .conn
            .execute(
                "UPDATE review_items SET state = ?3, decided_by = ?4, decided_at = ?5, \
                 decision = ?6 WHERE review = ?1 AND agent = ?2 AND state = 'pending'",
                params![review, agent, state, by, at.secs(), decision],
            )
            .sql()?;
        let found = self
            .conn
            .query_row(
                &format!(
                    "SELECT {ITEM_COLUMNS} FROM review_items i \
                     WHERE i.review = ?1 AND i.agent = ?2"
                ),
                [review, agent],
                item_row,
            )
            .optional()
            .sql()?;
        match (n, found) {
            (_, None) => Err(StoreError::NotFound("review item")),
            (0, Some(i)) => Err(StoreError::Conflict(format!(
                "the item of agent `{agent}` is already {}",
                i.state
            ))),
            (_, Some(i)) => Ok(i),
        }
    }

    fn complete_review(&self, id: &str, at: Timestamp) -> Result<bool> {
        self.touch(Topic::Reviews)?;
        let n = self
            .conn
            .execute(
                "UPDATE reviews SET completed_at = ?2 WHERE id = ?1 AND completed_at IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM review_items \
                                 WHERE review = ?1 AND state = 'pending')",
                params![id, at.secs()],
            )
            .sql()?;
        Ok(n > 0)
    }

    fn overdue_review_items(&self, now: Timestamp, limit: u32) -> Result<Vec<ReviewItemRow>> {
        let mut s = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ITEM_COLUMNS} FROM review_items i JOIN reviews r ON r.id = i.review \
                 WHERE i.state = 'pending' AND i.escalated_at IS NULL \
                 AND r.completed_at IS NULL AND r.due <= ?1 \
                 ORDER BY i.review, i.agent LIMIT ?2"
            ))
            .sql()?;
        let rows = s.query_map(params![now.secs(), limit], item_row).sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()
    }

    fn escalate_review_item(&self, review: &str, agent: &str, at: Timestamp) -> Result<bool> {
        self.touch(Topic::Reviews)?;
        let n = self
            .conn
            .execute(
                "UPDATE review_items SET escalated_at = ?3 WHERE review = ?1 AND agent = ?2 \
                 AND state = 'pending' AND escalated_at IS NULL",
                params![review, agent, at.secs()],
            )
            .sql()?;
        Ok(n > 0)
    }
}
