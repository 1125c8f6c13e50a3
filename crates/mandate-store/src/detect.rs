//! Anomaly detection's rows: per-agent baselines (opaque JSON the detector owns) and
//! anomalies with their resolution.

use mandate_core::id::{AgentId, AnomalyId};
use mandate_core::time::Timestamp;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params, params_from_iter};

use crate::{Store, StoreError};

/// One anomaly as stored. `kind`, `severity`, `response` and `status` are the
/// detector's and the API's names; `details` is a JSON object.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AnomalyRow {
    /// `anm_…`.
    pub id: AnomalyId,
    /// Whose behaviour.
    pub agent: AgentId,
    /// When it was raised.
    pub at: Timestamp,
    /// `new_action`, `rate_spike`, …
    pub kind: String,
    /// What it is about (`resource_type:Db::Customer`, `rate`).
    pub key: String,
    /// 1–100.
    pub score: u8,
    /// `low`, `medium`, `high`, `critical`.
    pub severity: String,
    /// `record`, `alert`, `step_up`, `suspend`.
    pub response: String,
    /// In plain language.
    pub explanation: String,
    /// The numbers behind it.
    pub details: serde_json::Value,
    /// `open`, `acknowledged` or `dismissed`.
    pub status: String,
    /// When a human resolved it.
    pub resolved_at: Option<Timestamp>,
    /// Who (admin token id or user).
    pub resolved_by: Option<String>,
    /// Their comment.
    pub comment: Option<String>,
}

/// Which anomalies to list.
#[derive(Debug, Clone, Default)]
pub struct AnomalyFilter {
    /// Of this agent.
    pub agent: Option<AgentId>,
    /// In this status.
    pub status: Option<String>,
    /// Of this severity.
    pub severity: Option<String>,
    /// Of this kind.
    pub kind: Option<String>,
}

const COLUMNS: &str = "id, agent_id, at, kind, key, score, severity, response, explanation, \
                       details, status, resolved_at, resolved_by, comment";

fn row(r: &Row<'_>) -> rusqlite::Result<Result<AnomalyRow, StoreError>> {
    let id: String = r.get(0)?;
    let agent: String = r.get(1)?;
    let details: String = r.get(9)?;
    let score: i64 = r.get(5)?;
    let at: i64 = r.get(2)?;
    let resolved_at: Option<i64> = r.get(11)?;
    let (kind, key, severity, response, explanation, status, resolved_by, comment) = (
        r.get(3)?,
        r.get(4)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(10)?,
        r.get(12)?,
        r.get(13)?,
    );
    Ok((|| {
        Ok(AnomalyRow {
            id: AnomalyId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            agent: AgentId::parse(&agent).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            at: Timestamp::from_secs(at),
            kind,
            key,
            score: u8::try_from(score).map_err(|_| StoreError::Corrupt("score".into()))?,
            severity,
            response,
            explanation,
            details: serde_json::from_str(&details)
                .map_err(|e| StoreError::Corrupt(format!("anomaly details: {e}")))?,
            status,
            resolved_at: resolved_at.map(Timestamp::from_secs),
            resolved_by,
            comment,
        })
    })())
}

impl Store {
    /// Stores newly raised anomalies, all or none.
    pub fn insert_anomalies(&self, rows: &[AnomalyRow]) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for a in rows {
            tx.execute(
                &format!(
                    "INSERT INTO anomalies ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
                     ?9, ?10, ?11, ?12, ?13, ?14)"
                ),
                params![
                    a.id.as_str(),
                    a.agent.as_str(),
                    a.at.secs(),
                    a.kind,
                    a.key,
                    i64::from(a.score),
                    a.severity,
                    a.response,
                    a.explanation,
                    a.details.to_string(),
                    a.status,
                    a.resolved_at.map(Timestamp::secs),
                    a.resolved_by,
                    a.comment,
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// One anomaly.
    pub fn get_anomaly(&self, id: &AnomalyId) -> Result<Option<AnomalyRow>, StoreError> {
        self.lock()
            .query_row(
                &format!("SELECT {COLUMNS} FROM anomalies WHERE id = ?1"),
                [id.as_str()],
                row,
            )
            .optional()?
            .transpose()
    }

    /// Anomalies matching `filter`, newest first, before the cursor, at most `limit`.
    pub fn list_anomalies(
        &self,
        filter: &AnomalyFilter,
        before: Option<&AnomalyId>,
        limit: u32,
    ) -> Result<Vec<AnomalyRow>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM anomalies WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        let mut add = |col: &str, v: Option<String>, sql: &mut String| {
            if let Some(v) = v {
                args.push(v.into());
                sql.push_str(&format!(" AND {col} ?{}", args.len()));
            }
        };
        add("id <", before.map(|b| b.as_str().to_owned()), &mut sql);
        add(
            "agent_id =",
            filter.agent.as_ref().map(|a| a.as_str().to_owned()),
            &mut sql,
        );
        add("status =", filter.status.clone(), &mut sql);
        add("severity =", filter.severity.clone(), &mut sql);
        add("kind =", filter.kind.clone(), &mut sql);
        args.push(limit.into());
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
        let conn = self.lock();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(args.iter()), row)?;
        rows.map(|r| r?).collect()
    }

    /// Moves an open anomaly to `status` (`acknowledged` or `dismissed`) in one
    /// transaction; an anomaly already resolved is a `Conflict`, an unknown one
    /// `NotFound("anomaly")`.
    pub fn resolve_anomaly(
        &self,
        id: &AnomalyId,
        status: &str,
        by: &str,
        comment: Option<&str>,
        now: Timestamp,
    ) -> Result<AnomalyRow, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE anomalies SET status = ?2, resolved_at = ?3, resolved_by = ?4, comment = ?5
             WHERE id = ?1 AND status = 'open'",
            params![id.as_str(), status, now.secs(), by, comment],
        )?;
        let a = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM anomalies WHERE id = ?1"),
                [id.as_str()],
                row,
            )
            .optional()?
            .transpose()?
            .ok_or(StoreError::NotFound("anomaly"))?;
        if n != 1 {
            return Err(StoreError::Conflict(format!(
                "anomaly `{id}` is already {}",
                a.status
            )));
        }
        tx.commit()?;
        Ok(a)
    }

    /// Open anomalies whose response holds the agent (`step_up` or `suspend`): what
    /// the detector puts back at start.
    pub fn open_holds(&self) -> Result<Vec<AnomalyRow>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM anomalies
             WHERE status = 'open' AND response IN ('step_up', 'suspend') ORDER BY id"
        ))?;
        let rows = stmt.query_map([], row)?;
        rows.map(|r| r?).collect()
    }

    /// Stores baselines (agent id, the detector's JSON), replacing older ones, in one
    /// transaction. Baselines of agents no longer in the store are skipped.
    pub fn save_baselines(
        &self,
        rows: &[(String, String)],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for (agent, body) in rows {
            tx.execute(
                "INSERT INTO baselines (agent_id, body, updated_at)
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM agents WHERE id = ?1)
                 ON CONFLICT (agent_id) DO UPDATE SET body = excluded.body,
                                                      updated_at = excluded.updated_at",
                params![agent, body, now.secs()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every stored baseline: (agent id, JSON).
    pub fn baselines(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT agent_id, body FROM baselines ORDER BY agent_id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
