//! Store side of mandates: one row per mandate, read-modify-write in one transaction, and
//! the queries the decision snapshot (active), the sweeper (lapsed) and the kill switch
//! (an agent's live mandates) need.

use mandate_core::id::{AgentId, MandateId};
use mandate_core::mandate::{Mandate, MandateStatus};
use mandate_core::time::Timestamp;
use mandate_store::repo::{MandateChange, Result};
use mandate_store::{MandateFilter, MandateRepo, StoreError, Topic};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};

use crate::{Db, Sql, sqlite_error};

/// The columns, in the order [`mandate_row`] reads and [`values`] writes them.
const MANDATE_COLUMNS: &str = "id, agent_id, user, intent, justification, scope, lifetime_secs, \
     status, created_at, approval_deadline, activated_at, expires_at, decided_by, \
     decision_comment, decided_at, policy_ids, ended_at, ended_by";

/// Rewrites every column but the key; the parameters are [`values`].
const UPDATE_MANDATE: &str = "UPDATE mandates SET user = ?3, intent = ?4, justification = ?5,
     scope = ?6, lifetime_secs = ?7, status = ?8, created_at = ?9, approval_deadline = ?10,
     activated_at = ?11, expires_at = ?12, decided_by = ?13, decision_comment = ?14,
     decided_at = ?15, policy_ids = ?16, ended_at = ?17, ended_by = ?18
     WHERE id = ?1 AND agent_id = ?2";

struct MandateRow {
    id: String,
    agent_id: String,
    user: Option<String>,
    intent: String,
    justification: Option<String>,
    scope: String,
    lifetime_secs: i64,
    status: String,
    created_at: i64,
    approval_deadline: Option<i64>,
    activated_at: Option<i64>,
    expires_at: Option<i64>,
    decided_by: Option<String>,
    decision_comment: Option<String>,
    decided_at: Option<i64>,
    policy_ids: String,
    ended_at: Option<i64>,
    ended_by: Option<String>,
}

fn mandate_row(r: &Row<'_>) -> rusqlite::Result<MandateRow> {
    Ok(MandateRow {
        id: r.get(0)?,
        agent_id: r.get(1)?,
        user: r.get(2)?,
        intent: r.get(3)?,
        justification: r.get(4)?,
        scope: r.get(5)?,
        lifetime_secs: r.get(6)?,
        status: r.get(7)?,
        created_at: r.get(8)?,
        approval_deadline: r.get(9)?,
        activated_at: r.get(10)?,
        expires_at: r.get(11)?,
        decided_by: r.get(12)?,
        decision_comment: r.get(13)?,
        decided_at: r.get(14)?,
        policy_ids: r.get(15)?,
        ended_at: r.get(16)?,
        ended_by: r.get(17)?,
    })
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_secs)
}

impl MandateRow {
    fn into_mandate(self) -> Result<Mandate> {
        let id = self.id;
        let bad = |what: &str| StoreError::Corrupt(format!("mandate `{id}`: {what}"));
        let json = |what: &str, e: serde_json::Error| {
            StoreError::Corrupt(format!("mandate `{id}`: {what}: {e}"))
        };
        Ok(Mandate {
            id: MandateId::parse(&id).map_err(|_| bad("id"))?,
            agent: AgentId::parse(&self.agent_id).map_err(|_| bad("agent_id"))?,
            user: self
                .user
                .map(|u| serde_json::from_str(&u))
                .transpose()
                .map_err(|e| json("user", e))?,
            intent: self.intent,
            justification: self.justification,
            scope: serde_json::from_str(&self.scope).map_err(|e| json("scope", e))?,
            lifetime_secs: u32::try_from(self.lifetime_secs)
                .map_err(|_| bad("lifetime_secs out of range"))?,
            status: MandateStatus::parse(&self.status).ok_or_else(|| bad("status"))?,
            created_at: Timestamp::from_secs(self.created_at),
            approval_deadline: ts(self.approval_deadline),
            activated_at: ts(self.activated_at),
            expires_at: ts(self.expires_at),
            decided_by: self.decided_by,
            decision_comment: self.decision_comment,
            decided_at: ts(self.decided_at),
            policy_ids: serde_json::from_str(&self.policy_ids)
                .map_err(|e| json("policy_ids", e))?,
            ended_at: ts(self.ended_at),
            ended_by: self.ended_by,
        })
    }
}

/// A mandate's column values, in [`MANDATE_COLUMNS`] order.
fn values(m: &Mandate) -> Result<Vec<Value>> {
    let json = |what: &str, e: serde_json::Error| {
        StoreError::Corrupt(format!("mandate `{}`: {what}: {e}", m.id))
    };
    let secs = |t: Option<Timestamp>| t.map(Timestamp::secs);
    let user = m
        .user
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| json("user", e))?;
    let scope = serde_json::to_string(&m.scope).map_err(|e| json("scope", e))?;
    let policy_ids = serde_json::to_string(&m.policy_ids).map_err(|e| json("policy_ids", e))?;
    Ok(vec![
        m.id.as_str().to_owned().into(),
        m.agent.as_str().to_owned().into(),
        user.into(),
        m.intent.clone().into(),
        m.justification.clone().into(),
        scope.into(),
        m.lifetime_secs.into(),
        m.status.as_str().to_owned().into(),
        m.created_at.secs().into(),
        secs(m.approval_deadline).into(),
        secs(m.activated_at).into(),
        secs(m.expires_at).into(),
        m.decided_by.clone().into(),
        m.decision_comment.clone().into(),
        secs(m.decided_at).into(),
        policy_ids.into(),
        secs(m.ended_at).into(),
        m.ended_by.clone().into(),
    ])
}

fn constraint(e: &rusqlite::Error) -> Option<std::ffi::c_int> {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Some(f.extended_code)
        }
        _ => None,
    }
}

/// The mandates `sql` selects (it names [`MANDATE_COLUMNS`]) with `args` bound.
fn query(conn: &Connection, sql: &str, args: &[Value]) -> Result<Vec<Mandate>> {
    let mut stmt = conn.prepare_cached(sql).sql()?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), mandate_row)
        .sql()?;
    rows.map(|r| r.sql()?.into_mandate()).collect()
}

fn get_mandate_in(conn: &Connection, id: &MandateId) -> Result<Option<Mandate>> {
    conn.query_row(
        &format!("SELECT {MANDATE_COLUMNS} FROM mandates WHERE id = ?1"),
        [id.as_str()],
        mandate_row,
    )
    .optional()
    .sql()?
    .map(MandateRow::into_mandate)
    .transpose()
}

impl MandateRepo for Db<'_> {
    fn insert_mandate(&self, m: &Mandate) -> Result<()> {
        self.touch(Topic::Mandates)?;
        let values = values(m)?;
        self.conn
            .execute(
                &format!(
                    "INSERT INTO mandates ({MANDATE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
                     ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
                ),
                params_from_iter(values.iter()),
            )
            .map_err(|e| match constraint(&e) {
                Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => StoreError::NotFound("agent"),
                Some(rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                    StoreError::Conflict(format!("mandate `{}` already exists", m.id))
                }
                _ => sqlite_error(e),
            })?;
        Ok(())
    }

    fn get_mandate(&self, id: &MandateId) -> Result<Option<Mandate>> {
        get_mandate_in(self.conn, id)
    }

    fn list_mandates(
        &self,
        filter: &MandateFilter,
        after: Option<&MandateId>,
        limit: u32,
    ) -> Result<Vec<Mandate>> {
        let mut sql = format!("SELECT {MANDATE_COLUMNS} FROM mandates WHERE id > ?1");
        let mut args: Vec<Value> = vec![Value::Text(
            after.map(|a| a.as_str().to_owned()).unwrap_or_default(),
        )];
        if let Some(a) = &filter.agent {
            args.push(a.as_str().to_owned().into());
            sql.push_str(&format!(" AND agent_id = ?{}", args.len()));
        }
        if let Some(s) = filter.status {
            args.push(s.as_str().to_owned().into());
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        }
        if let Some(sub) = &filter.user_sub {
            // The expression must read exactly as in the `mandates_user_sub` index.
            args.push(sub.clone().into());
            sql.push_str(&format!(
                " AND json_extract(user, '$.sub') = ?{}",
                args.len()
            ));
        }
        args.push(limit.into());
        sql.push_str(&format!(" ORDER BY id LIMIT ?{}", args.len()));
        query(self.conn, &sql, &args)
    }

    fn update_mandate(
        &self,
        id: &MandateId,
        with_owner: bool,
        change: &mut MandateChange<'_>,
    ) -> Result<Mandate> {
        self.touch(Topic::Mandates)?;
        let tx = self.conn;
        let mut m = get_mandate_in(tx, id)?.ok_or(StoreError::NotFound("mandate"))?;
        let agent = m.agent.clone();
        let owner: Option<String> = if with_owner {
            tx.query_row(
                "SELECT owner FROM agents WHERE id = ?1",
                [agent.as_str()],
                |r| r.get(0),
            )
            .optional()
            .sql()?
        } else {
            None
        };
        change(&mut m, owner.as_deref())?;
        if m.id != *id || m.agent != agent {
            return Err(StoreError::Conflict(format!(
                "mandate `{id}`: its id and agent cannot change"
            )));
        }
        let values = values(&m)?;
        let n = tx
            .execute(UPDATE_MANDATE, params_from_iter(values.iter()))
            .sql()?;
        if n != 1 {
            return Err(StoreError::NotFound("mandate"));
        }
        Ok(m)
    }

    fn active_mandates(&self, now: Timestamp) -> Result<Vec<Mandate>> {
        query(
            self.conn,
            &format!(
                "SELECT {MANDATE_COLUMNS} FROM mandates
                 WHERE status = 'active' AND expires_at > ?1 ORDER BY id"
            ),
            &[now.secs().into()],
        )
    }

    fn lapsed_mandates(&self, now: Timestamp, limit: u32) -> Result<Vec<Mandate>> {
        // Three OR terms rather than `(expires_at IS NULL OR expires_at <= ?1)`, so each
        // is a range search on `mandates_status_deadline` or `mandates_status_expiry`.
        query(
            self.conn,
            &format!(
                "SELECT {MANDATE_COLUMNS} FROM mandates
                 WHERE (status = 'pending_approval' AND approval_deadline <= ?1)
                    OR (status = 'active' AND expires_at <= ?1)
                    OR (status = 'active' AND expires_at IS NULL)
                 ORDER BY id LIMIT ?2"
            ),
            &[now.secs().into(), limit.into()],
        )
    }

    fn mandates_of_agent(&self, agent: &AgentId) -> Result<Vec<Mandate>> {
        query(
            self.conn,
            &format!(
                "SELECT {MANDATE_COLUMNS} FROM mandates
                 WHERE agent_id = ?1 AND status IN ('pending_approval', 'active') ORDER BY id"
            ),
            &[agent.as_str().to_owned().into()],
        )
    }
}
