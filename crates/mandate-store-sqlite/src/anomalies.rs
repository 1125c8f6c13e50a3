//! Anomaly detection's rows: per-agent baselines (opaque JSON the detector owns) and
//! anomalies with their resolution.

use mandate_core::id::{AgentId, AnomalyId};
use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{AnomalyFilter, AnomalyRepo, AnomalyRow, StoreError, Topic};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, params, params_from_iter};

use crate::{Db, Sql};

const COLUMNS: &str = "id, agent_id, at, kind, key, score, severity, response, explanation, \
                       details, status, resolved_at, resolved_by, comment";

fn row(r: &Row<'_>) -> rusqlite::Result<std::result::Result<AnomalyRow, StoreError>> {
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

impl AnomalyRepo for Db<'_> {
    fn insert_anomalies(&self, rows: &[AnomalyRow]) -> Result<()> {
        self.touch(Topic::Anomalies)?;
        let tx = self.conn;
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
            )
            .sql()?;
        }
        Ok(())
    }

    fn get_anomaly(&self, id: &AnomalyId) -> Result<Option<AnomalyRow>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM anomalies WHERE id = ?1"),
                [id.as_str()],
                row,
            )
            .optional()
            .sql()?
            .transpose()
    }

    fn list_anomalies(
        &self,
        filter: &AnomalyFilter,
        before: Option<&AnomalyId>,
        limit: u32,
    ) -> Result<Vec<AnomalyRow>> {
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
        let conn = self.conn;
        let mut stmt = conn.prepare(&sql).sql()?;
        let rows = stmt.query_map(params_from_iter(args.iter()), row).sql()?;
        rows.map(|r| r.sql()?).collect()
    }

    fn resolve_anomaly(
        &self,
        id: &AnomalyId,
        status: &str,
        by: &str,
        comment: Option<&str>,
        now: Timestamp,
    ) -> Result<AnomalyRow> {
        self.touch(Topic::Anomalies)?;
        let tx = self.conn;
        let n = tx
            .execute(
                "UPDATE anomalies SET status = ?2, resolved_at = ?3, resolved_by = ?4, comment = ?5
             WHERE id = ?1 AND status = 'open'",
                params![id.as_str(), status, now.secs(), by, comment],
            )
            .sql()?;
        let a = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM anomalies WHERE id = ?1"),
                [id.as_str()],
                row,
            )
            .optional()
            .sql()?
            .transpose()?
            .ok_or(StoreError::NotFound("anomaly"))?;
        if n != 1 {
            return Err(StoreError::Conflict(format!(
                "anomaly `{id}` is already {}",
                a.status
            )));
        }
        Ok(a)
    }

    fn open_holds(&self) -> Result<Vec<AnomalyRow>> {
        let conn = self.conn;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM anomalies
             WHERE status = 'open' AND response IN ('step_up', 'suspend') ORDER BY id"
            ))
            .sql()?;
        let rows = stmt.query_map([], row).sql()?;
        rows.map(|r| r.sql()?).collect()
    }

    fn save_baselines(&self, rows: &[(String, String)], now: Timestamp) -> Result<()> {
        self.touch(Topic::Anomalies)?;
        let tx = self.conn;
        for (agent, body) in rows {
            tx.execute(
                "INSERT INTO baselines (agent_id, body, updated_at)
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM agents WHERE id = ?1)
                 ON CONFLICT (agent_id) DO UPDATE SET body = excluded.body,
                                                      updated_at = excluded.updated_at",
                params![agent, body, now.secs()],
            )
            .sql()?;
        }
        Ok(())
    }

    fn baselines(&self) -> Result<Vec<(String, String)>> {
        let conn = self.conn;
        let mut stmt = conn
            .prepare("SELECT agent_id, body FROM baselines ORDER BY agent_id")
            .sql()?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()
    }
}
