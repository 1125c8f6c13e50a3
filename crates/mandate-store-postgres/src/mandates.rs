//! Store side of mandates: one row per mandate, read-modify-write in one transaction, and
//! the queries the decision snapshot (active), the sweeper (lapsed) and the kill switch
//! (an agent's live mandates) need.

use mandate_core::id::{AgentId, MandateId};
use mandate_core::mandate::{Mandate, MandateStatus};
use mandate_core::time::Timestamp;
use mandate_store::repo::{MandateChange, Result};
use mandate_store::{MandateFilter, MandateRepo, StoreError, Topic};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::{Db, Param, Pg, get, is_state, pg_error};

/// The columns, in the order [`into_mandate`] reads and [`values`] writes them.
const MANDATE_COLUMNS: &str = "id, agent_id, \"user\", intent, justification, scope, \
     lifetime_secs, status, created_at, approval_deadline, activated_at, expires_at, \
     decided_by, decision_comment, decided_at, policy_ids, ended_at, ended_by";

/// Rewrites every column but the key; the parameters are [`values`].
const UPDATE_MANDATE: &str = "UPDATE mandates SET \"user\" = $3, intent = $4,
     justification = $5, scope = $6, lifetime_secs = $7, status = $8, created_at = $9,
     approval_deadline = $10, activated_at = $11, expires_at = $12, decided_by = $13,
     decision_comment = $14, decided_at = $15, policy_ids = $16, ended_at = $17,
     ended_by = $18
     WHERE id = $1 AND agent_id = $2";

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_secs)
}

fn into_mandate(r: &Row) -> Result<Mandate> {
    let id: String = get(r, 0)?;
    let bad = |what: &str| StoreError::Corrupt(format!("mandate `{id}`: {what}"));
    let json = |what: &str, e: serde_json::Error| {
        StoreError::Corrupt(format!("mandate `{id}`: {what}: {e}"))
    };
    let agent_id: String = get(r, 1)?;
    let user: Option<String> = get(r, 2)?;
    let scope: String = get(r, 5)?;
    let lifetime_secs: i64 = get(r, 6)?;
    let status: String = get(r, 7)?;
    let policy_ids: String = get(r, 15)?;
    Ok(Mandate {
        id: MandateId::parse(&id).map_err(|_| bad("id"))?,
        agent: AgentId::parse(&agent_id).map_err(|_| bad("agent_id"))?,
        user: user
            .map(|u| serde_json::from_str(&u))
            .transpose()
            .map_err(|e| json("user", e))?,
        intent: get(r, 3)?,
        justification: get(r, 4)?,
        scope: serde_json::from_str(&scope).map_err(|e| json("scope", e))?,
        lifetime_secs: u32::try_from(lifetime_secs)
            .map_err(|_| bad("lifetime_secs out of range"))?,
        status: MandateStatus::parse(&status).ok_or_else(|| bad("status"))?,
        created_at: Timestamp::from_secs(get(r, 8)?),
        approval_deadline: ts(get(r, 9)?),
        activated_at: ts(get(r, 10)?),
        expires_at: ts(get(r, 11)?),
        decided_by: get(r, 12)?,
        decision_comment: get(r, 13)?,
        decided_at: ts(get(r, 14)?),
        policy_ids: serde_json::from_str(&policy_ids).map_err(|e| json("policy_ids", e))?,
        ended_at: ts(get(r, 16)?),
        ended_by: get(r, 17)?,
    })
}

/// A mandate's column values, in [`MANDATE_COLUMNS`] order.
fn values(m: &Mandate) -> Result<Vec<Box<dyn ToSql + Sync>>> {
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
        Box::new(m.id.as_str().to_owned()),
        Box::new(m.agent.as_str().to_owned()),
        Box::new(user),
        Box::new(m.intent.clone()),
        Box::new(m.justification.clone()),
        Box::new(scope),
        Box::new(i64::from(m.lifetime_secs)),
        Box::new(m.status.as_str().to_owned()),
        Box::new(m.created_at.secs()),
        Box::new(secs(m.approval_deadline)),
        Box::new(secs(m.activated_at)),
        Box::new(secs(m.expires_at)),
        Box::new(m.decided_by.clone()),
        Box::new(m.decision_comment.clone()),
        Box::new(secs(m.decided_at)),
        Box::new(policy_ids),
        Box::new(secs(m.ended_at)),
        Box::new(m.ended_by.clone()),
    ])
}

fn params(values: &[Box<dyn ToSql + Sync>]) -> Vec<Param<'_>> {
    values.iter().map(|v| &**v as Param<'_>).collect()
}

/// The mandates `sql` selects (it names [`MANDATE_COLUMNS`]).
fn query(db: &Db<'_>, sql: &str, args: &[Param<'_>]) -> Result<Vec<Mandate>> {
    db.rows(sql, args)?.iter().map(into_mandate).collect()
}

fn get_mandate_in(db: &Db<'_>, id: &MandateId, lock: &str) -> Result<Option<Mandate>> {
    db.opt(
        &format!("SELECT {MANDATE_COLUMNS} FROM mandates WHERE id = $1{lock}"),
        &[&id.as_str()],
    )?
    .as_ref()
    .map(into_mandate)
    .transpose()
}

impl MandateRepo for Db<'_> {
    fn insert_mandate(&self, m: &Mandate) -> Result<()> {
        self.touch(Topic::Mandates)?;
        let values = values(m)?;
        self.exec(
            &format!(
                "INSERT INTO mandates ({MANDATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, \
                 $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
            ),
            &params(&values),
        )
        .map_err(|e| {
            if is_state(&e, &SqlState::FOREIGN_KEY_VIOLATION) {
                StoreError::NotFound("agent")
            } else if is_state(&e, &SqlState::UNIQUE_VIOLATION) {
                StoreError::Conflict(format!("mandate `{}` already exists", m.id))
            } else {
                pg_error(&e)
            }
        })?;
        Ok(())
    }

    fn get_mandate(&self, id: &MandateId) -> Result<Option<Mandate>> {
        get_mandate_in(self, id, "")
    }

    fn list_mandates(
        &self,
        filter: &MandateFilter,
        after: Option<&MandateId>,
        limit: u32,
    ) -> Result<Vec<Mandate>> {
        let mut sql = format!("SELECT {MANDATE_COLUMNS} FROM mandates WHERE id > $1");
        let mut args: Vec<String> = vec![after.map(|a| a.as_str().to_owned()).unwrap_or_default()];
        if let Some(a) = &filter.agent {
            args.push(a.as_str().to_owned());
            sql.push_str(&format!(" AND agent_id = ${}", args.len()));
        }
        if let Some(s) = filter.status {
            args.push(s.as_str().to_owned());
            sql.push_str(&format!(" AND status = ${}", args.len()));
        }
        if let Some(sub) = &filter.user_sub {
            // The expression must read exactly as in the `mandates_user_sub` index.
            args.push(sub.clone());
            sql.push_str(&format!(
                " AND ((\"user\")::jsonb ->> 'sub') = ${}",
                args.len()
            ));
        }
        sql.push_str(&format!(" ORDER BY id LIMIT {limit}"));
        let params: Vec<Param<'_>> = args.iter().map(|a| a as Param<'_>).collect();
        query(self, &sql, &params)
    }

    fn update_mandate(
        &self,
        id: &MandateId,
        with_owner: bool,
        change: &mut MandateChange<'_>,
    ) -> Result<Mandate> {
        self.touch(Topic::Mandates)?;
        // LOCK: FOR UPDATE: an approval and a revoke of one mandate racing queue here;
        // the second then reads the mandate as the first left it (no lost update).
        let mut m =
            get_mandate_in(self, id, " FOR UPDATE")?.ok_or(StoreError::NotFound("mandate"))?;
        let agent = m.agent.clone();
        // LOCK: FOR SHARE: the owner the change is checked against cannot change until
        // this unit ends.
        let owner: Option<String> = if with_owner {
            self.opt(
                "SELECT owner FROM agents WHERE id = $1 FOR SHARE",
                &[&agent.as_str()],
            )?
            .map(|r| get(&r, 0))
            .transpose()?
        } else {
            None
        };
        change(&mut m, owner.as_deref())?;
        // INVARIANT (mandate identity): checked before the write; the UPDATE also keys on
        // both, so it could not move a row to another id or agent.
        if m.id != *id || m.agent != agent {
            return Err(StoreError::Conflict(format!(
                "mandate `{id}`: its id and agent cannot change"
            )));
        }
        let values = values(&m)?;
        let n = self.exec(UPDATE_MANDATE, &params(&values)).pg()?;
        if n != 1 {
            return Err(StoreError::NotFound("mandate"));
        }
        Ok(m)
    }

    fn active_mandates(&self, now: Timestamp) -> Result<Vec<Mandate>> {
        // INVARIANT (mandate gate): `expires_at > now`; a NULL expiry compares unknown and
        // is not returned.
        query(
            self,
            &format!(
                "SELECT {MANDATE_COLUMNS} FROM mandates
                 WHERE status = 'active' AND expires_at > $1 ORDER BY id"
            ),
            &[&now.secs()],
        )
    }

    fn lapsed_mandates(&self, now: Timestamp, limit: u32) -> Result<Vec<Mandate>> {
        query(
            self,
            &format!(
                "SELECT {MANDATE_COLUMNS} FROM mandates
                 WHERE (status = 'pending_approval' AND approval_deadline <= $1)
                    OR (status = 'active' AND expires_at <= $1)
                    OR (status = 'active' AND expires_at IS NULL)
                 ORDER BY id LIMIT $2"
            ),
            &[&now.secs(), &i64::from(limit)],
        )
    }

    fn mandates_of_agent(&self, agent: &AgentId) -> Result<Vec<Mandate>> {
        query(
            self,
            &format!(
                "SELECT {MANDATE_COLUMNS} FROM mandates
                 WHERE agent_id = $1 AND status IN ('pending_approval', 'active') ORDER BY id"
            ),
            &[&agent.as_str()],
        )
    }
}
