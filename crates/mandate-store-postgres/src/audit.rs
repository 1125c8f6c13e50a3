//! Store side of the audit log and the policy versions: append-only event rows (one
//! transaction per group commit), signed checkpoints, and immutable policy versions with
//! an activation history.
//!
//! Each node has its own log (DESIGN "Each node writes its own log"): every row names
//! its `node`, keys are `(node, seq)` and `(node, size)`, and a store reads and appends
//! only the log of the node it acts as (`Db::node`); `checkpoints_of` and
//! `audit_bodies_of` read another node's, for the export of every log. A node's rows stay
//! when it stops: its log survives it.

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{
    AuditColumns as StoredColumns, AuditFilter, AuditRepo, AuditRow, CheckpointRow, PolicyRepo,
    PolicyVersionRow, StoreError, Topic,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::{Db, Param, Pg, XactLock, get};

fn insert_checkpoint_in(db: &Db<'_>, c: &CheckpointRow) -> Result<()> {
    db.exec(
        "INSERT INTO audit_checkpoints (node, size, time, root, text) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
        &[
            &db.node,
            &to_i64(c.size)?,
            &c.time.secs(),
            &c.root.as_slice(),
            &c.text,
        ],
    )
    .pg()?;
    Ok(())
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("sequence {v} out of range")))
}

fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative sequence {v}")))
}

fn leaf_of(v: Vec<u8>) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt("hash is not 32 bytes".into()))
}

fn seq_body(r: &Row) -> Result<(u64, String)> {
    Ok((to_u64(get(r, 0)?)?, get(r, 1)?))
}

/// `select` over node `node`'s events that `filter` and `after` (a sequence number)
/// keep, and its arguments: what `list_audit` and `count_audit` share.
fn audit_where(
    select: &str,
    node: &str,
    filter: &AuditFilter,
    after: Option<u64>,
) -> Result<(String, Vec<Box<dyn ToSql + Sync>>)> {
    let mut sql = format!("{select} FROM audit_events WHERE node = $1 AND seq > $2");
    let mut args: Vec<Box<dyn ToSql + Sync>> = vec![
        Box::new(node.to_owned()),
        Box::new(after.map_or(Ok(-1), to_i64)?),
    ];
    let mut text = |col: &str, v: &Option<String>, sql: &mut String| {
        if let Some(v) = v {
            args.push(Box::new(v.clone()));
            sql.push_str(&format!(" AND {col} = ${}", args.len()));
        }
    };
    text("agent", &filter.agent, &mut sql);
    text("\"user\"", &filter.user, &mut sql);
    text("kind", &filter.kind, &mut sql);
    text("decision", &filter.decision, &mut sql);
    if let Some(t) = filter.since {
        args.push(Box::new(t.secs()));
        sql.push_str(&format!(" AND time >= ${}", args.len()));
    }
    if let Some(t) = filter.until {
        args.push(Box::new(t.secs()));
        sql.push_str(&format!(" AND time < ${}", args.len()));
    }
    Ok((sql, args))
}

impl AuditRepo for Db<'_> {
    fn append_audit(&self, rows: &[AuditRow], checkpoint: Option<&CheckpointRow>) -> Result<()> {
        self.touch(Topic::Audit)?;
        // INVARIANT (chain): LOCK: appenders to this node's log take turns, each reading
        // the next seq after the previous one committed; `(node, seq)` is also the key,
        // so the log cannot fork. The lock is per node (a hash of its id, apart from the
        // registration's): nodes append to their own logs at once, never waiting on each
        // other.
        self.exec(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&format!("mandate audit {}", self.node)],
        )
        .pg()?;
        let next: i64 = get(
            &self.one(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_events WHERE node = $1",
                &[&self.node],
            )?,
            0,
        )?;
        let mut expect = next;
        let mut cols = AuditColumns::default();
        for r in rows {
            let seq = to_i64(r.seq)?;
            if seq != expect {
                return Err(StoreError::Conflict(format!(
                    "audit append out of order: got seq {seq}, log continues at {expect}"
                )));
            }
            expect += 1;
            cols.push(r, seq);
        }
        if !rows.is_empty() {
            // One statement for the whole batch, whatever its size: the columns travel
            // as arrays and UNNEST turns them back into rows, in order.
            self.exec(
                "INSERT INTO audit_events
                     (node, seq, time, kind, agent, \"user\", decision, body, leaf)
                 SELECT $9, * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                                          $5::text[], $6::text[], $7::text[], $8::bytea[])",
                &[
                    &cols.seq,
                    &cols.time,
                    &cols.kind,
                    &cols.agent,
                    &cols.user,
                    &cols.decision,
                    &cols.body,
                    &cols.leaf,
                    &self.node,
                ],
            )
            .pg()?;
        }
        if let Some(c) = checkpoint {
            let size = to_i64(c.size)?;
            if size != expect {
                return Err(StoreError::Conflict(format!(
                    "checkpoint of size {size} sealed with a log of {expect} events"
                )));
            }
            insert_checkpoint_in(self, c)?;
        }
        Ok(())
    }

    fn audit_leaves(&self, size: u64) -> Result<Vec<[u8; 32]>> {
        self.rows(
            "SELECT leaf FROM audit_events WHERE node = $2 AND seq < $1 ORDER BY seq",
            &[&to_i64(size)?, &self.node],
        )?
        .iter()
        .map(|r| leaf_of(get(r, 0)?))
        .collect()
    }

    fn audit_len(&self) -> Result<u64> {
        to_u64(get(
            &self.one(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_events WHERE node = $1",
                &[&self.node],
            )?,
            0,
        )?)
    }

    fn list_audit(
        &self,
        filter: &AuditFilter,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(u64, String)>> {
        let (mut sql, args) = audit_where("SELECT seq, body", self.node, filter, after)?;
        sql.push_str(&format!(" ORDER BY seq LIMIT {limit}"));
        let params: Vec<Param<'_>> = args.iter().map(|a| &**a as Param<'_>).collect();
        self.rows(&sql, &params)?.iter().map(seq_body).collect()
    }

    fn list_audit_of(
        &self,
        node: &str,
        filter: &AuditFilter,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(u64, String)>> {
        let (mut sql, args) = audit_where("SELECT seq, body", node, filter, after)?;
        sql.push_str(&format!(" ORDER BY seq LIMIT {limit}"));
        let params: Vec<Param<'_>> = args.iter().map(|a| &**a as Param<'_>).collect();
        self.rows(&sql, &params)?.iter().map(seq_body).collect()
    }

    fn count_audit(&self, filter: &AuditFilter) -> Result<u64> {
        let (sql, args) = audit_where("SELECT count(*)", self.node, filter, None)?;
        let params: Vec<Param<'_>> = args.iter().map(|a| &**a as Param<'_>).collect();
        let rows = self.rows(&sql, &params)?;
        let n: i64 = match rows.first() {
            Some(r) => get(r, 0)?,
            None => 0,
        };
        u64::try_from(n).map_err(|_| StoreError::Corrupt("negative count".into()))
    }

    fn recent_audit_of_agent(
        &self,
        agent: &str,
        before: u64,
        limit: u32,
    ) -> Result<Vec<(u64, String)>> {
        // Served backwards by the `audit_events_agent` (node, agent, seq) index.
        let mut out = self
            .rows(
                "SELECT seq, body FROM audit_events WHERE node = $4 AND agent = $1 AND seq < $2
                 ORDER BY seq DESC LIMIT $3",
                &[&agent, &to_i64(before)?, &i64::from(limit), &self.node],
            )?
            .iter()
            .map(seq_body)
            .collect::<Result<Vec<_>>>()?;
        out.reverse();
        Ok(out)
    }

    fn audit_bodies(&self, from: u64, to: u64) -> Result<Vec<String>> {
        self.audit_bodies_of(self.node, from, to)
    }

    fn audit_rows(&self, from: u64, to: u64) -> Result<Vec<(StoredColumns, String)>> {
        let rows = self.rows(
            "SELECT seq, time, kind, agent, \"user\", decision, body FROM audit_events
             WHERE node = $3 AND seq >= $1 AND seq < $2 ORDER BY seq",
            &[&to_i64(from)?, &to_i64(to)?, &self.node],
        )?;
        rows.iter()
            .map(|r| {
                let seq: i64 = get(r, 0)?;
                Ok((
                    StoredColumns {
                        seq: u64::try_from(seq)
                            .map_err(|_| StoreError::Corrupt(format!("audit seq {seq}")))?,
                        time: get(r, 1)?,
                        kind: get(r, 2)?,
                        agent: get(r, 3)?,
                        user: get(r, 4)?,
                        decision: get(r, 5)?,
                    },
                    get(r, 6)?,
                ))
            })
            .collect()
    }

    fn audit_bodies_of(&self, node: &str, from: u64, to: u64) -> Result<Vec<String>> {
        self.rows(
            "SELECT body FROM audit_events WHERE node = $3 AND seq >= $1 AND seq < $2
             ORDER BY seq",
            &[&to_i64(from)?, &to_i64(to)?, &node],
        )?
        .iter()
        .map(|r| get(r, 0))
        .collect()
    }

    fn insert_checkpoint(&self, c: &CheckpointRow) -> Result<()> {
        self.touch(Topic::Audit)?;
        insert_checkpoint_in(self, c)
    }

    fn checkpoint_of_size(&self, size: u64) -> Result<Option<CheckpointRow>> {
        self.opt(
            "SELECT time, root, text FROM audit_checkpoints WHERE node = $2 AND size = $1",
            &[&to_i64(size)?, &self.node],
        )?
        .map(|r| {
            Ok(CheckpointRow {
                size,
                time: Timestamp::from_secs(get(&r, 0)?),
                root: leaf_of(get(&r, 1)?)?,
                text: get(&r, 2)?,
            })
        })
        .transpose()
    }

    fn checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        self.checkpoints_of(self.node)
    }

    fn checkpoints_of(&self, node: &str) -> Result<Vec<CheckpointRow>> {
        self.rows(
            "SELECT size, time, root, text FROM audit_checkpoints WHERE node = $1 ORDER BY size",
            &[&node],
        )?
        .iter()
        .map(|r| {
            Ok(CheckpointRow {
                size: to_u64(get(r, 0)?)?,
                time: Timestamp::from_secs(get(r, 1)?),
                root: leaf_of(get(r, 2)?)?,
                text: get(r, 3)?,
            })
        })
        .collect()
    }
}

/// A batch of audit rows as one array per column, for `UNNEST`.
#[derive(Default)]
struct AuditColumns {
    seq: Vec<i64>,
    time: Vec<i64>,
    kind: Vec<String>,
    agent: Vec<Option<String>>,
    user: Vec<Option<String>>,
    decision: Vec<Option<String>>,
    body: Vec<String>,
    leaf: Vec<Vec<u8>>,
}

impl AuditColumns {
    fn push(&mut self, r: &AuditRow, seq: i64) {
        self.seq.push(seq);
        self.time.push(r.time.secs());
        self.kind.push(r.kind.clone());
        self.agent.push(r.agent.clone());
        self.user.push(r.user.clone());
        self.decision.push(r.decision.clone());
        self.body.push(r.body.clone());
        self.leaf.push(r.leaf.to_vec());
    }
}

const POLICY_COLUMNS: &str = "version, policies, fragments, note, created_at, created_by, rego";

fn policy_row(r: &Row) -> Result<PolicyVersionRow> {
    let fragments: String = get(r, 2)?;
    Ok(PolicyVersionRow {
        version: get(r, 0)?,
        policies: get(r, 1)?,
        fragments: serde_json::from_str(&fragments)
            .map_err(|e| StoreError::Corrupt(format!("policy fragments: {e}")))?,
        note: get(r, 3)?,
        created_at: Timestamp::from_secs(get(r, 4)?),
        created_by: get(r, 5)?,
        rego: get(r, 6)?,
    })
}

impl PolicyRepo for Db<'_> {
    fn insert_policy_version(
        &self,
        policies: &str,
        fragments: &[String],
        rego: &str,
        note: &str,
        at: Timestamp,
        by: &str,
    ) -> Result<i64> {
        self.touch(Topic::Policies)?;
        let fragments =
            serde_json::to_string(fragments).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // max + 1 rather than a sequence, so versions are 1, 2, … with no gap a
        // rolled-back unit would leave. LOCK: inserts take turns.
        self.lock(XactLock::Policies)?;
        let r = self.one(
            &format!(
                "INSERT INTO policy_versions ({POLICY_COLUMNS})
                 SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3, $4, $5, $6 FROM policy_versions
                 RETURNING version"
            ),
            &[&policies, &fragments, &note, &at.secs(), &by, &rego],
        )?;
        get(&r, 0)
    }

    fn policy_version(&self, version: i64) -> Result<Option<PolicyVersionRow>> {
        self.opt(
            &format!("SELECT {POLICY_COLUMNS} FROM policy_versions WHERE version = $1"),
            &[&version],
        )?
        .as_ref()
        .map(policy_row)
        .transpose()
    }

    fn policy_versions(&self) -> Result<Vec<PolicyVersionRow>> {
        self.rows(
            &format!("SELECT {POLICY_COLUMNS} FROM policy_versions ORDER BY version"),
            &[],
        )?
        .iter()
        .map(policy_row)
        .collect()
    }

    fn activate_policy_version(&self, version: i64, at: Timestamp, by: &str) -> Result<()> {
        self.touch(Topic::Policies)?;
        if self
            .opt(
                "SELECT 1 FROM policy_versions WHERE version = $1",
                &[&version],
            )?
            .is_none()
        {
            return Err(StoreError::NotFound("policy version"));
        }
        // max + 1 as for versions, LOCK: taking turns, so the latest activation is the
        // one that committed last.
        self.lock(XactLock::Policies)?;
        self.exec(
            "INSERT INTO policy_activations (seq, version, at, by)
             SELECT COALESCE(MAX(seq), 0) + 1, $1, $2, $3 FROM policy_activations",
            &[&version, &at.secs(), &by],
        )
        .pg()?;
        Ok(())
    }

    fn policy_activation_state(&self) -> Result<(Option<i64>, Option<i64>)> {
        let versions = self
            .rows(
                "SELECT version FROM policy_activations ORDER BY seq DESC",
                &[],
            )?
            .iter()
            .map(|r| get::<i64>(r, 0))
            .collect::<Result<Vec<_>>>()?;
        let mut it = versions.into_iter();
        let active = it.next();
        let previous = it.find(|v| Some(*v) != active);
        Ok((active, previous))
    }
}
