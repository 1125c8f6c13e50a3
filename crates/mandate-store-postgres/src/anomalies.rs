//! Anomaly detection's rows: per-agent baselines (opaque JSON the detector owns) and
//! anomalies with their resolution.

use mandate_core::id::{AgentId, AnomalyId};
use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{AnomalyFilter, AnomalyRepo, AnomalyRow, StoreError, Topic};
use tokio_postgres::Row;

use crate::{Db, Param, Pg, get};

const COLUMNS: &str = "id, agent_id, at, kind, key, score, severity, response, explanation, \
                       details, status, resolved_at, resolved_by, comment";

fn row(r: &Row) -> Result<AnomalyRow> {
    let id: String = get(r, 0)?;
    let agent: String = get(r, 1)?;
    let details: String = get(r, 9)?;
    let score: i64 = get(r, 5)?;
    let resolved_at: Option<i64> = get(r, 11)?;
    Ok(AnomalyRow {
        id: AnomalyId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        agent: AgentId::parse(&agent).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        at: Timestamp::from_secs(get(r, 2)?),
        kind: get(r, 3)?,
        key: get(r, 4)?,
        score: u8::try_from(score).map_err(|_| StoreError::Corrupt("score".into()))?,
        severity: get(r, 6)?,
        response: get(r, 7)?,
        explanation: get(r, 8)?,
        details: serde_json::from_str(&details)
            .map_err(|e| StoreError::Corrupt(format!("anomaly details: {e}")))?,
        status: get(r, 10)?,
        resolved_at: resolved_at.map(Timestamp::from_secs),
        resolved_by: get(r, 12)?,
        comment: get(r, 13)?,
    })
}

impl AnomalyRepo for Db<'_> {
    fn insert_anomalies(&self, rows: &[AnomalyRow]) -> Result<()> {
        self.touch(Topic::Anomalies)?;
        for a in rows {
            self.exec(
                &format!(
                    "INSERT INTO anomalies ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
                     $9, $10, $11, $12, $13, $14)"
                ),
                &[
                    &a.id.as_str(),
                    &a.agent.as_str(),
                    &a.at.secs(),
                    &a.kind,
                    &a.key,
                    &i64::from(a.score),
                    &a.severity,
                    &a.response,
                    &a.explanation,
                    &a.details.to_string(),
                    &a.status,
                    &a.resolved_at.map(Timestamp::secs),
                    &a.resolved_by,
                    &a.comment,
                ],
            )
            .pg()?;
        }
        Ok(())
    }

    fn get_anomaly(&self, id: &AnomalyId) -> Result<Option<AnomalyRow>> {
        self.opt(
            &format!("SELECT {COLUMNS} FROM anomalies WHERE id = $1"),
            &[&id.as_str()],
        )?
        .as_ref()
        .map(row)
        .transpose()
    }

    fn list_anomalies(
        &self,
        filter: &AnomalyFilter,
        before: Option<&AnomalyId>,
        limit: u32,
    ) -> Result<Vec<AnomalyRow>> {
        let mut sql = format!("SELECT {COLUMNS} FROM anomalies WHERE true");
        let mut args: Vec<String> = Vec::new();
        let mut add = |col: &str, v: Option<String>, sql: &mut String| {
            if let Some(v) = v {
                args.push(v);
                sql.push_str(&format!(" AND {col} ${}", args.len()));
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
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        let params: Vec<Param<'_>> = args.iter().map(|a| a as Param<'_>).collect();
        self.rows(&sql, &params)?.iter().map(row).collect()
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
        // LOCK: the row, by the UPDATE, with `AND status = 'open'` in it: of two
        // resolutions racing, the second waits, re-checks the committed row (READ
        // COMMITTED), and changes nothing (a `Conflict`).
        let n = self
            .exec(
                "UPDATE anomalies SET status = $2, resolved_at = $3, resolved_by = $4, comment = $5
                 WHERE id = $1 AND status = 'open'",
                &[&id.as_str(), &status, &now.secs(), &by, &comment],
            )
            .pg()?;
        let a = self
            .opt(
                &format!("SELECT {COLUMNS} FROM anomalies WHERE id = $1"),
                &[&id.as_str()],
            )?
            .as_ref()
            .map(row)
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
        self.rows(
            &format!(
                "SELECT {COLUMNS} FROM anomalies
                 WHERE status = 'open' AND response IN ('step_up', 'suspend') ORDER BY id"
            ),
            &[],
        )?
        .iter()
        .map(row)
        .collect()
    }

    fn save_baselines(&self, rows: &[(String, String)], now: Timestamp) -> Result<()> {
        self.touch(Topic::Anomalies)?;
        for (agent, body) in rows {
            self.exec(
                "INSERT INTO baselines (agent_id, body, updated_at)
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM agents WHERE id = $1)
                 ON CONFLICT (agent_id) DO UPDATE SET body = excluded.body,
                                                      updated_at = excluded.updated_at",
                &[agent, body, &now.secs()],
            )
            .pg()?;
        }
        Ok(())
    }

    fn baselines(&self) -> Result<Vec<(String, String)>> {
        self.rows(
            "SELECT agent_id, body FROM baselines ORDER BY agent_id",
            &[],
        )?
        .iter()
        .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
        .collect()
    }
}
