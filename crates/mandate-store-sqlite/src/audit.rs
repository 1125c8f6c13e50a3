//! Store side of the audit log and the policy versions: append-only event rows (one
//! transaction per group commit), signed checkpoints, and immutable policy versions with
//! an activation history.

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{
    AuditColumns, AuditFilter, AuditRepo, AuditRow, CheckpointRow, NodeRepo, NodeReport, NodeRow,
    PolicyRepo, PolicyVersionRow, StoreError, Topic,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Db, Sql};

fn insert_checkpoint_in(conn: &Connection, c: &CheckpointRow) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO audit_checkpoints (size, time, root, text) VALUES (?1, ?2, ?3, ?4)",
        params![to_i64(c.size)?, c.time.secs(), c.root.as_slice(), c.text],
    )
    .sql()?;
    Ok(())
}

/// Rows per multi-row audit insert, largest first; the last must be 1 (see
/// `append_audit_sealed`).
const INSERT_SIZES: [usize; 3] = [32, 8, 1];

/// `INSERT INTO audit_events … VALUES (…), (…)` for `rows` rows of the eight columns.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO audit_events (seq, time, kind, agent, user, decision, body, leaf) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?)");
    }
    sql
}

/// Binds `rows` and runs `stmt`, a statement of [`insert_sql`]`(rows.len())`.
///
/// INVARIANT (whole statements): `rows` fills every row slot of `stmt`; a slot left
/// unbound would keep the previous execution's values and write that row twice.
fn insert_rows(stmt: &mut rusqlite::CachedStatement<'_>, rows: &[AuditRow]) -> Result<()> {
    let mut i = 0;
    let mut bind = |stmt: &mut rusqlite::CachedStatement<'_>, v: &dyn rusqlite::ToSql| {
        i += 1;
        stmt.raw_bind_parameter(i, v)
    };
    for r in rows {
        bind(stmt, &to_i64(r.seq)?).sql()?;
        bind(stmt, &r.time.secs()).sql()?;
        bind(stmt, &r.kind).sql()?;
        bind(stmt, &r.agent).sql()?;
        bind(stmt, &r.user).sql()?;
        bind(stmt, &r.decision).sql()?;
        bind(stmt, &r.body).sql()?;
        bind(stmt, &r.leaf.as_slice()).sql()?;
    }
    stmt.raw_execute().sql()?;
    Ok(())
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("sequence {v} out of range")))
}

fn leaf_of(v: Vec<u8>) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt("leaf hash is not 32 bytes".into()))
}

impl NodeRepo for Db<'_> {
    fn node_name(&self, make: &mut dyn FnMut() -> String) -> Result<String> {
        let conn = self.conn;
        if let Some(n) = conn
            .query_row("SELECT value FROM meta WHERE key = 'node'", [], |r| {
                r.get(0)
            })
            .optional()
            .sql()?
        {
            return Ok(n);
        }
        self.touch(Topic::Node)?;
        let n = make();
        conn.execute("INSERT INTO meta (key, value) VALUES ('node', ?1)", [&n])
            .sql()?;
        Ok(n)
    }

    fn set_audit_key(&self, public_key: &str, _now: Timestamp) -> Result<()> {
        // INVARIANT (one key per log): recorded once; another key is refused.
        match self.meta("audit_key")? {
            Some(k) if k == public_key => Ok(()),
            Some(_) => Err(StoreError::Conflict(
                "this node's audit log is signed with another key".into(),
            )),
            None => {
                self.touch(Topic::Node)?;
                self.conn
                    .execute(
                        "INSERT INTO meta (key, value) VALUES ('audit_key', ?1)",
                        [public_key],
                    )
                    .sql()?;
                Ok(())
            }
        }
    }

    fn report_node(&self, _report: &NodeReport, _now: Timestamp) -> Result<()> {
        // One node per SQLite file: its status is read live, nothing is recorded.
        Ok(())
    }

    fn nodes(&self) -> Result<Vec<NodeRow>> {
        // One node per SQLite file: this one, once it has a name.
        Ok(self
            .meta("node")?
            .map(|name| {
                Ok::<_, StoreError>(NodeRow {
                    name,
                    audit_key: self.meta("audit_key")?,
                    started_at: None,
                    last_seen_at: None,
                    snapshot_seq: None,
                    snapshot_age_ms: None,
                    feed_lag_ms: None,
                    leader: None,
                })
            })
            .transpose()?
            .into_iter()
            .collect())
    }
}

impl Db<'_> {
    /// A `meta` value.
    fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .sql()
    }

    /// Whether `node` names this file's log (the one node a SQLite store has).
    fn is_own_log(&self, node: &str) -> Result<bool> {
        Ok(self.meta("node")?.is_some_and(|n| n == node))
    }
}

/// `select` over the events `filter` and `after` (a sequence number) keep, and its
/// arguments: what `list_audit` and `count_audit` share.
fn audit_where(
    select: &str,
    filter: &AuditFilter,
    after: Option<u64>,
) -> Result<(String, Vec<rusqlite::types::Value>)> {
    let mut sql = format!("{select} FROM audit_events WHERE seq > ?1");
    let mut args: Vec<rusqlite::types::Value> = vec![after.map_or(Ok(-1), to_i64)?.into()];
    let text = |col: &str,
                v: &Option<String>,
                sql: &mut String,
                args: &mut Vec<rusqlite::types::Value>| {
        if let Some(v) = v {
            args.push(v.clone().into());
            sql.push_str(&format!(" AND {col} = ?{}", args.len()));
        }
    };
    text("agent", &filter.agent, &mut sql, &mut args);
    text("user", &filter.user, &mut sql, &mut args);
    text("kind", &filter.kind, &mut sql, &mut args);
    text("decision", &filter.decision, &mut sql, &mut args);
    if let Some(t) = filter.since {
        args.push(t.secs().into());
        sql.push_str(&format!(" AND time >= ?{}", args.len()));
    }
    if let Some(t) = filter.until {
        args.push(t.secs().into());
        sql.push_str(&format!(" AND time < ?{}", args.len()));
    }
    Ok((sql, args))
}

impl AuditRepo for Db<'_> {
    fn append_audit(&self, rows: &[AuditRow], checkpoint: Option<&CheckpointRow>) -> Result<()> {
        self.touch(Topic::Audit)?;
        let tx = self.conn;
        let next: i64 = tx
            .prepare_cached("SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_events")
            .sql()?
            .query_row([], |r| r.get(0))
            .sql()?;
        let mut expect = next;
        for r in rows {
            let seq = to_i64(r.seq)?;
            if seq != expect {
                return Err(StoreError::Conflict(format!(
                    "audit append out of order: got seq {seq}, log continues at {expect}"
                )));
            }
            expect += 1;
        }
        // A few multi-row statements rather than one per row: each execution opens a
        // cursor per b-tree (the table and its three indexes) and seeks from the root,
        // where one statement appends many rows with them open. Fixed sizes, so at most
        // three statements sit in the connection's cache.
        let mut rest = rows;
        for size in INSERT_SIZES {
            let end = rest.len() - rest.len() % size;
            let (whole, tail) = rest.split_at(end);
            if !whole.is_empty() {
                let mut stmt = tx.prepare_cached(&insert_sql(size)).sql()?;
                for chunk in whole.chunks_exact(size) {
                    insert_rows(&mut stmt, chunk)?;
                }
            }
            rest = tail;
        }
        // INVARIANT (chain): every row is written. The last size is 1, so nothing is
        // left; were it not, refuse rather than commit a log with a gap.
        if !rest.is_empty() {
            return Err(StoreError::Corrupt(format!(
                "{} audit rows left unwritten by the insert sizes",
                rest.len()
            )));
        }
        if let Some(c) = checkpoint {
            let size = to_i64(c.size)?;
            if size != expect {
                return Err(StoreError::Conflict(format!(
                    "checkpoint of size {size} sealed with a log of {expect} events"
                )));
            }
            insert_checkpoint_in(tx, c)?;
        }
        Ok(())
    }

    fn audit_leaves(&self, size: u64) -> Result<Vec<[u8; 32]>> {
        let conn = self.conn;
        let mut stmt = conn
            .prepare_cached("SELECT leaf FROM audit_events WHERE seq < ?1 ORDER BY seq")
            .sql()?;
        let rows = stmt
            .query_map([to_i64(size)?], |r| r.get::<_, Vec<u8>>(0))
            .sql()?;
        rows.map(|r| leaf_of(r.sql()?)).collect()
    }

    fn audit_len(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_events",
                [],
                |r| r.get(0),
            )
            .sql()?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt("negative audit length".into()))
    }

    fn list_audit(
        &self,
        filter: &AuditFilter,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(u64, String)>> {
        let (mut sql, args) = audit_where("SELECT seq, body", filter, after)?;
        sql.push_str(&format!(" ORDER BY seq LIMIT {limit}"));
        let conn = self.conn;
        let mut stmt = conn.prepare(&sql).sql()?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .sql()?;
        rows.map(|r| {
            let (seq, body) = r.sql()?;
            Ok((
                u64::try_from(seq).map_err(|_| StoreError::Corrupt("negative seq".into()))?,
                body,
            ))
        })
        .collect()
    }

    fn list_audit_of(
        &self,
        node: &str,
        filter: &AuditFilter,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(u64, String)>> {
        if self.is_own_log(node)? {
            self.list_audit(filter, after, limit)
        } else {
            Ok(Vec::new())
        }
    }

    fn count_audit(&self, filter: &AuditFilter) -> Result<u64> {
        let (sql, args) = audit_where("SELECT count(*)", filter, None)?;
        let n: i64 = self
            .conn
            .query_row(&sql, rusqlite::params_from_iter(args.iter()), |r| r.get(0))
            .sql()?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt("negative count".into()))
    }

    fn recent_audit_of_agent(
        &self,
        agent: &str,
        before: u64,
        limit: u32,
    ) -> Result<Vec<(u64, String)>> {
        let conn = self.conn;
        // Served backwards by the `audit_events_agent` (agent, seq) index.
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, body FROM audit_events WHERE agent = ?1 AND seq < ?2
             ORDER BY seq DESC LIMIT ?3",
            )
            .sql()?;
        let rows = stmt
            .query_map(params![agent, to_i64(before)?, limit], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .sql()?;
        let mut out = rows
            .map(|r| {
                let (seq, body) = r.sql()?;
                Ok((
                    u64::try_from(seq).map_err(|_| StoreError::Corrupt("negative seq".into()))?,
                    body,
                ))
            })
            .collect::<std::result::Result<Vec<_>, StoreError>>()?;
        out.reverse();
        Ok(out)
    }

    fn audit_bodies(&self, from: u64, to: u64) -> Result<Vec<String>> {
        let conn = self.conn;
        let mut stmt = conn
            .prepare_cached(
                "SELECT body FROM audit_events WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
            )
            .sql()?;
        let rows = stmt
            .query_map([to_i64(from)?, to_i64(to)?], |r| r.get::<_, String>(0))
            .sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()
    }

    fn audit_rows(&self, from: u64, to: u64) -> Result<Vec<(AuditColumns, String)>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, time, kind, agent, user, decision, body FROM audit_events
                 WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
            )
            .sql()?;
        let rows = stmt
            .query_map([to_i64(from)?, to_i64(to)?], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .sql()?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, time, kind, agent, user, decision, body) = row.sql()?;
            let seq =
                u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("audit seq {seq}")))?;
            out.push((
                AuditColumns {
                    seq,
                    time,
                    kind,
                    agent,
                    user,
                    decision,
                },
                body,
            ));
        }
        Ok(out)
    }

    fn insert_checkpoint(&self, c: &CheckpointRow) -> Result<()> {
        self.touch(Topic::Audit)?;
        insert_checkpoint_in(self.conn, c)
    }

    fn checkpoints_of(&self, node: &str) -> Result<Vec<CheckpointRow>> {
        if self.is_own_log(node)? {
            self.checkpoints()
        } else {
            Ok(Vec::new())
        }
    }

    fn audit_bodies_of(&self, node: &str, from: u64, to: u64) -> Result<Vec<String>> {
        if self.is_own_log(node)? {
            self.audit_bodies(from, to)
        } else {
            Ok(Vec::new())
        }
    }

    fn checkpoint_of_size(&self, size: u64) -> Result<Option<CheckpointRow>> {
        let row = self
            .conn
            .query_row(
                "SELECT time, root, text FROM audit_checkpoints WHERE size = ?1",
                [to_i64(size)?],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
            .sql()?;
        row.map(|(time, root, text)| {
            Ok(CheckpointRow {
                size,
                time: Timestamp::from_secs(time),
                root: leaf_of(root)?,
                text,
            })
        })
        .transpose()
    }

    fn checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        let conn = self.conn;
        let mut stmt = conn
            .prepare("SELECT size, time, root, text FROM audit_checkpoints ORDER BY size")
            .sql()?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .sql()?;
        rows.map(|r| {
            let (size, time, root, text) = r.sql()?;
            Ok(CheckpointRow {
                size: u64::try_from(size)
                    .map_err(|_| StoreError::Corrupt("negative size".into()))?,
                time: Timestamp::from_secs(time),
                root: leaf_of(root)?,
                text,
            })
        })
        .collect()
    }
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
        let conn = self.conn;
        conn.execute(
            "INSERT INTO policy_versions (policies, fragments, note, created_at, created_by, rego) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![policies, fragments, note, at.secs(), by, rego],
        ).sql()?;
        Ok(conn.last_insert_rowid())
    }

    fn policy_version(&self, version: i64) -> Result<Option<PolicyVersionRow>> {
        self.conn
            .query_row(
                "SELECT version, policies, fragments, note, created_at, created_by, rego FROM policy_versions WHERE version = ?1",
                [version],
                policy_row,
            )
            .optional().sql()?
            .transpose()
    }

    fn policy_versions(&self) -> Result<Vec<PolicyVersionRow>> {
        let conn = self.conn;
        let mut stmt = conn.prepare(
            "SELECT version, policies, fragments, note, created_at, created_by, rego FROM policy_versions ORDER BY version",
        ).sql()?;
        let rows = stmt.query_map([], policy_row).sql()?;
        rows.map(|r| r.sql()?).collect()
    }

    fn activate_policy_version(&self, version: i64, at: Timestamp, by: &str) -> Result<()> {
        self.touch(Topic::Policies)?;
        let tx = self.conn;
        let exists = tx
            .query_row(
                "SELECT 1 FROM policy_versions WHERE version = ?1",
                [version],
                |_| Ok(()),
            )
            .optional()
            .sql()?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound("policy version"));
        }
        tx.execute(
            "INSERT INTO policy_activations (version, at, by) VALUES (?1, ?2, ?3)",
            params![version, at.secs(), by],
        )
        .sql()?;
        Ok(())
    }

    fn policy_activation_state(&self) -> Result<(Option<i64>, Option<i64>)> {
        let conn = self.conn;
        let mut stmt = conn
            .prepare("SELECT version FROM policy_activations ORDER BY seq DESC")
            .sql()?;
        let versions: Vec<i64> = stmt
            .query_map([], |r| r.get(0))
            .sql()?
            .collect::<rusqlite::Result<_>>()
            .sql()?;
        let mut it = versions.into_iter();
        let active = it.next();
        let previous = it.find(|v| Some(*v) != active);
        Ok((active, previous))
    }
}

type PolicyRowResult = std::result::Result<PolicyVersionRow, StoreError>;

fn policy_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PolicyRowResult> {
    let fragments: String = r.get(2)?;
    let version: i64 = r.get(0)?;
    let policies: String = r.get(1)?;
    let note: String = r.get(3)?;
    let created_at: i64 = r.get(4)?;
    let created_by: String = r.get(5)?;
    let rego: String = r.get(6)?;
    Ok(serde_json::from_str(&fragments)
        .map_err(|e| StoreError::Corrupt(format!("policy fragments: {e}")))
        .map(|fragments| PolicyVersionRow {
            version,
            policies,
            fragments,
            note,
            created_at: Timestamp::from_secs(created_at),
            created_by,
            rego,
        }))
}

// Batches of every size around INSERT_SIZES are checked by the conformance kit
// (`audit::batches_of_any_size_append_every_row_once`, run in tests/conformance.rs).
