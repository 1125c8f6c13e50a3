//! Access review campaigns and their items (mandate-store `ReviewRepo`,
//! `INVARIANT (decided once)`: the `state = 'pending'` condition of the deciding UPDATE
//! is the compare of compare-and-set).

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{ReviewItemRow, ReviewRepo, ReviewRow, StoreError, Topic};
use tokio_postgres::Row;

use crate::{Db, Pg, get};

const REVIEW_COLUMNS: &str = "id, name, spec, due, created_by, created_at, completed_at";
const ITEM_COLUMNS: &str = "i.review, i.agent, i.owner, i.state, i.findings, i.decided_by, \
     i.decided_at, i.decision, i.escalated_at";

fn review_row(r: &Row) -> Result<ReviewRow> {
    Ok(ReviewRow {
        id: get(r, 0)?,
        name: get(r, 1)?,
        spec: get(r, 2)?,
        due: Timestamp::from_secs(get(r, 3)?),
        created_by: get(r, 4)?,
        created_at: Timestamp::from_secs(get(r, 5)?),
        completed_at: get::<Option<i64>>(r, 6)?.map(Timestamp::from_secs),
    })
}

fn item_row(r: &Row) -> Result<ReviewItemRow> {
    Ok(ReviewItemRow {
        review: get(r, 0)?,
        agent: get(r, 1)?,
        owner: get(r, 2)?,
        state: get(r, 3)?,
        findings: get(r, 4)?,
        decided_by: get(r, 5)?,
        decided_at: get::<Option<i64>>(r, 6)?.map(Timestamp::from_secs),
        decision: get(r, 7)?,
        escalated_at: get::<Option<i64>>(r, 8)?.map(Timestamp::from_secs),
    })
}

impl ReviewRepo for Db<'_> {
    fn insert_review(&self, r: &ReviewRow, items: &[ReviewItemRow]) -> Result<()> {
        self.touch(Topic::Reviews)?;
        let completed = r.completed_at.map(Timestamp::secs);
        let n = self
            .exec(
                "INSERT INTO reviews (id, name, spec, due, created_by, created_at, completed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
                &[
                    &r.id,
                    &r.name,
                    &r.spec,
                    &r.due.secs(),
                    &r.created_by,
                    &r.created_at.secs(),
                    &completed,
                ],
            )
            .pg()?;
        if n == 0 {
            return Err(StoreError::Conflict(format!("review `{}` exists", r.id)));
        }
        for i in items {
            self.exec(
                "INSERT INTO review_items (review, agent, owner, state, findings)
                 VALUES ($1, $2, $3, 'pending', $4)",
                &[&r.id, &i.agent, &i.owner, &i.findings],
            )
            .pg()?;
        }
        Ok(())
    }

    fn review(&self, id: &str) -> Result<Option<ReviewRow>> {
        self.opt(
            &format!("SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = $1"),
            &[&id],
        )?
        .as_ref()
        .map(review_row)
        .transpose()
    }

    fn reviews(&self, after: Option<&str>, limit: u32) -> Result<Vec<ReviewRow>> {
        let after = after.unwrap_or("");
        let limit = i64::from(limit);
        self.rows(
            &format!("SELECT {REVIEW_COLUMNS} FROM reviews WHERE id > $1 ORDER BY id LIMIT $2"),
            &[&after, &limit],
        )?
        .iter()
        .map(review_row)
        .collect()
    }

    fn review_items(&self, review: &str) -> Result<Vec<ReviewItemRow>> {
        self.rows(
            &format!(
                "SELECT {ITEM_COLUMNS} FROM review_items i WHERE i.review = $1 ORDER BY i.agent"
            ),
            &[&review],
        )?
        .iter()
        .map(item_row)
        .collect()
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
        // LOCK: the campaign's row, so decisions of one campaign are serial and the
        // completion check of `complete_review` in the same unit sees every other one.
        self.opt("SELECT 1 FROM reviews WHERE id = $1 FOR UPDATE", &[&review])?;
        // INVARIANT (decided once): only a pending item is written (the row lock the
        // UPDATE takes makes a concurrent one re-check `state` and find it decided).
        let n = self
            .exec(
                "UPDATE review_items SET state = $3, decided_by = $4, decided_at = $5,
                 decision = $6 WHERE review = $1 AND agent = $2 AND state = 'pending'",
                &[&review, &agent, &state, &by, &at.secs(), &decision],
            )
            .pg()?;
        let found = self
            .opt(
                &format!(
                    "SELECT {ITEM_COLUMNS} FROM review_items i
                     WHERE i.review = $1 AND i.agent = $2"
                ),
                &[&review, &agent],
            )?
            .as_ref()
            .map(item_row)
            .transpose()?;
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
        // LOCK: the campaign's row (see `decide_review_item`).
        self.opt("SELECT 1 FROM reviews WHERE id = $1 FOR UPDATE", &[&id])?;
        let n = self
            .exec(
                "UPDATE reviews SET completed_at = $2 WHERE id = $1 AND completed_at IS NULL
                 AND NOT EXISTS (SELECT 1 FROM review_items
                                 WHERE review = $1 AND state = 'pending')",
                &[&id, &at.secs()],
            )
            .pg()?;
        Ok(n > 0)
    }

    fn overdue_review_items(&self, now: Timestamp, limit: u32) -> Result<Vec<ReviewItemRow>> {
        let limit = i64::from(limit);
        self.rows(
            &format!(
                "SELECT {ITEM_COLUMNS} FROM review_items i JOIN reviews r ON r.id = i.review
                 WHERE i.state = 'pending' AND i.escalated_at IS NULL
                 AND r.completed_at IS NULL AND r.due <= $1
                 ORDER BY i.review, i.agent LIMIT $2"
            ),
            &[&now.secs(), &limit],
        )?
        .iter()
        .map(item_row)
        .collect()
    }

    fn escalate_review_item(&self, review: &str, agent: &str, at: Timestamp) -> Result<bool> {
        self.touch(Topic::Reviews)?;
        let n = self
            .exec(
                "UPDATE review_items SET escalated_at = $3 WHERE review = $1 AND agent = $2
                 AND state = 'pending' AND escalated_at IS NULL",
                &[&review, &agent, &at.secs()],
            )
            .pg()?;
        Ok(n > 0)
    }
}
