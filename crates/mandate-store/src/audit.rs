//! Store side of the audit log and the policy versions: append-only event rows (one
//! transaction per group commit), signed checkpoints, and immutable policy versions with
//! an activation history.

use mandate_core::id::AgentId;
use mandate_core::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Store, StoreError};

/// One audit event as stored: its canonical body and leaf hash, plus columns to filter on.
#[derive(Debug, Clone)]
pub struct AuditRow {
    /// Position in this node's log (0-based, contiguous).
    pub seq: u64,
    /// When it happened.
    pub time: Timestamp,
    /// Event kind (`decision`, `token.issued`, …).
    pub kind: String,
    /// Agent concerned, if any.
    pub agent: Option<String>,
    /// User concerned, if any.
    pub user: Option<String>,
    /// `allow`/`deny` for decisions.
    pub decision: Option<String>,
    /// The canonical JSON the leaf hash commits to.
    pub body: String,
    /// `SHA-256(0x00 ‖ body)`.
    pub leaf: [u8; 32],
}

/// Filters for reading the audit log; `None` matches everything.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    /// Agent id.
    pub agent: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Event kind.
    pub kind: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    /// At or after this time.
    pub since: Option<Timestamp>,
    /// Before this time.
    pub until: Option<Timestamp>,
}

/// A stored signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    /// Log size it covers.
    pub size: u64,
    /// When it was made.
    pub time: Timestamp,
    /// Merkle root over the first `size` events.
    pub root: [u8; 32],
    /// The signed note text.
    pub text: String,
}

/// An immutable policy version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersionRow {
    /// 1, 2, 3, …
    pub version: i64,
    /// Cedar policy text.
    pub policies: String,
    /// Operator schema fragments (Cedar schema syntax).
    pub fragments: Vec<String>,
    /// Free text from whoever added it.
    pub note: String,
    /// When it was added.
    pub created_at: Timestamp,
    /// Which admin token added it.
    pub created_by: String,
}

fn insert_checkpoint_in(conn: &Connection, c: &CheckpointRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR IGNORE INTO audit_checkpoints (size, time, root, text) VALUES (?1, ?2, ?3, ?4)",
        params![to_i64(c.size)?, c.time.secs(), c.root.as_slice(), c.text],
    )?;
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
fn insert_rows(
    stmt: &mut rusqlite::CachedStatement<'_>,
    rows: &[AuditRow],
) -> Result<(), StoreError> {
    let mut i = 0;
    let mut bind = |stmt: &mut rusqlite::CachedStatement<'_>, v: &dyn rusqlite::ToSql| {
        i += 1;
        stmt.raw_bind_parameter(i, v)
    };
    for r in rows {
        bind(stmt, &to_i64(r.seq)?)?;
        bind(stmt, &r.time.secs())?;
        bind(stmt, &r.kind)?;
        bind(stmt, &r.agent)?;
        bind(stmt, &r.user)?;
        bind(stmt, &r.decision)?;
        bind(stmt, &r.body)?;
        bind(stmt, &r.leaf.as_slice())?;
    }
    stmt.raw_execute()?;
    Ok(())
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("sequence {v} out of range")))
}

fn leaf_of(v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    v.try_into()
        .map_err(|_| StoreError::Corrupt("leaf hash is not 32 bytes".into()))
}

impl Store {
    /// This node's name, creating it with `make` on first use.
    pub fn node_name(&self, make: impl FnOnce() -> String) -> Result<String, StoreError> {
        let conn = self.lock();
        if let Some(n) = conn
            .query_row("SELECT value FROM meta WHERE key = 'node'", [], |r| {
                r.get(0)
            })
            .optional()?
        {
            return Ok(n);
        }
        let n = make();
        conn.execute("INSERT INTO meta (key, value) VALUES ('node', ?1)", [&n])?;
        Ok(n)
    }

    /// Appends events in one transaction (the group commit). Their `seq`s must continue
    /// the log exactly; anything else is refused and nothing is written.
    ///
    /// INVARIANT (chain): rows are only ever appended, seq `i` is the i-th event, and no
    /// statement in this crate updates or deletes an audit row.
    pub fn append_audit(&self, rows: &[AuditRow]) -> Result<(), StoreError> {
        self.append_audit_sealed(rows, None)
    }

    /// [`Store::append_audit`], and in the same transaction the signed checkpoint over
    /// the log those rows complete, whose size must be the log's new length.
    pub fn append_audit_sealed(
        &self,
        rows: &[AuditRow],
        checkpoint: Option<&CheckpointRow>,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let next: i64 = tx
            .prepare_cached("SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_events")?
            .query_row([], |r| r.get(0))?;
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
                let mut stmt = tx.prepare_cached(&insert_sql(size))?;
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
            insert_checkpoint_in(&tx, c)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every leaf hash in order (to rebuild the Merkle frontier and to make proofs).
    pub fn audit_leaves(&self, size: u64) -> Result<Vec<[u8; 32]>, StoreError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare_cached("SELECT leaf FROM audit_events WHERE seq < ?1 ORDER BY seq")?;
        let rows = stmt.query_map([to_i64(size)?], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|r| leaf_of(r?)).collect()
    }

    /// Number of events in the log.
    pub fn audit_len(&self) -> Result<u64, StoreError> {
        let n: i64 = self.lock().query_row(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_events",
            [],
            |r| r.get(0),
        )?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt("negative audit length".into()))
    }

    /// Event bodies matching `filter`, in log order, after `after` (a seq), at most `limit`.
    pub fn list_audit(
        &self,
        filter: &AuditFilter,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let mut sql = String::from("SELECT seq, body FROM audit_events WHERE seq > ?1");
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
        sql.push_str(&format!(" ORDER BY seq LIMIT {limit}"));
        let conn = self.lock();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.map(|r| {
            let (seq, body) = r?;
            Ok((
                u64::try_from(seq).map_err(|_| StoreError::Corrupt("negative seq".into()))?,
                body,
            ))
        })
        .collect()
    }

    /// The last `limit` events about `agent` (its `agent` column) with `seq < before`,
    /// oldest first: what an incident bundle holds.
    pub fn recent_audit_of_agent(
        &self,
        agent: &str,
        before: u64,
        limit: u32,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let conn = self.lock();
        // Served backwards by the `audit_events_agent` (agent, seq) index.
        let mut stmt = conn.prepare_cached(
            "SELECT seq, body FROM audit_events WHERE agent = ?1 AND seq < ?2
             ORDER BY seq DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![agent, to_i64(before)?, limit], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = rows
            .map(|r| {
                let (seq, body) = r?;
                Ok((
                    u64::try_from(seq).map_err(|_| StoreError::Corrupt("negative seq".into()))?,
                    body,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.reverse();
        Ok(out)
    }

    /// Event bodies with `from <= seq < to`, in order.
    pub fn audit_bodies(&self, from: u64, to: u64) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT body FROM audit_events WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map([to_i64(from)?, to_i64(to)?], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores a signed checkpoint (one per size; a repeat is ignored).
    pub fn insert_checkpoint(&self, c: &CheckpointRow) -> Result<(), StoreError> {
        insert_checkpoint_in(&self.lock(), c)
    }

    /// The stored checkpoint of exactly `size` events, if there is one.
    pub fn checkpoint_of_size(&self, size: u64) -> Result<Option<CheckpointRow>, StoreError> {
        let row = self
            .lock()
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
            .optional()?;
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

    /// Every checkpoint, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT size, time, root, text FROM audit_checkpoints ORDER BY size")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        rows.map(|r| {
            let (size, time, root, text) = r?;
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

    // ---- policies ----

    /// Stores a new (already validated) policy version and returns its number.
    pub fn insert_policy_version(
        &self,
        policies: &str,
        fragments: &[String],
        note: &str,
        at: Timestamp,
        by: &str,
    ) -> Result<i64, StoreError> {
        let fragments =
            serde_json::to_string(fragments).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let conn = self.lock();
        conn.execute(
            "INSERT INTO policy_versions (policies, fragments, note, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![policies, fragments, note, at.secs(), by],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// One policy version.
    pub fn policy_version(&self, version: i64) -> Result<Option<PolicyVersionRow>, StoreError> {
        self.lock()
            .query_row(
                "SELECT version, policies, fragments, note, created_at, created_by FROM policy_versions WHERE version = ?1",
                [version],
                policy_row,
            )
            .optional()?
            .transpose()
    }

    /// Every policy version, oldest first.
    pub fn policy_versions(&self) -> Result<Vec<PolicyVersionRow>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT version, policies, fragments, note, created_at, created_by FROM policy_versions ORDER BY version",
        )?;
        let rows = stmt.query_map([], policy_row)?;
        rows.map(|r| r?).collect()
    }

    /// Makes `version` the active one.
    pub fn activate_policy_version(
        &self,
        version: i64,
        at: Timestamp,
        by: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let exists = tx
            .query_row(
                "SELECT 1 FROM policy_versions WHERE version = ?1",
                [version],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound("policy version"));
        }
        tx.execute(
            "INSERT INTO policy_activations (version, at, by) VALUES (?1, ?2, ?3)",
            params![version, at.secs(), by],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The active version and the one active before it (for rollback), if any.
    pub fn policy_activation_state(&self) -> Result<(Option<i64>, Option<i64>), StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT version FROM policy_activations ORDER BY seq DESC")?;
        let versions: Vec<i64> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut it = versions.into_iter();
        let active = it.next();
        let previous = it.find(|v| Some(*v) != active);
        Ok((active, previous))
    }

    // ---- snapshot inputs ----

    /// Every agent's token cutoff.
    pub fn token_cutoffs(&self) -> Result<Vec<(AgentId, Timestamp)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT agent_id, not_before FROM agent_token_cutoffs")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|r| {
            let (a, t) = r?;
            Ok((
                AgentId::parse(&a).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                Timestamp::from_secs(t),
            ))
        })
        .collect()
    }

    /// The `jti`s of revoked tokens that have not expired yet at `now`.
    pub fn revoked_jtis(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT jti FROM revoked_tokens WHERE expires_at > ?1")?;
        let rows = stmt.query_map([now.secs()], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

type PolicyRowResult = Result<PolicyVersionRow, StoreError>;

fn policy_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PolicyRowResult> {
    let fragments: String = r.get(2)?;
    let version: i64 = r.get(0)?;
    let policies: String = r.get(1)?;
    let note: String = r.get(3)?;
    let created_at: i64 = r.get(4)?;
    let created_by: String = r.get(5)?;
    Ok(serde_json::from_str(&fragments)
        .map_err(|e| StoreError::Corrupt(format!("policy fragments: {e}")))
        .map(|fragments| PolicyVersionRow {
            version,
            policies,
            fragments,
            note,
            created_at: Timestamp::from_secs(created_at),
            created_by,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: u64) -> AuditRow {
        let body = format!("{{\"seq\":{seq}}}");
        AuditRow {
            seq,
            time: Timestamp::from_secs(1_700_000_000),
            kind: "decision".into(),
            agent: seq.is_multiple_of(3).then(|| format!("agt_{seq}")),
            user: None,
            decision: Some("allow".into()),
            leaf: [u8::try_from(seq % 256).unwrap(); 32],
            body,
        }
    }

    // Batches of every size around the multi-row statements' sizes are written whole,
    // in order, each row once.
    #[test]
    fn batches_of_any_size_append_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let mut next = 0;
        for n in [1, 2, 7, 8, 9, 31, 32, 33, 40, 41, 64, 65, 100, 0, 3] {
            let rows: Vec<AuditRow> = (next..next + n).map(row).collect();
            store.append_audit(&rows).unwrap();
            next += n;
            assert_eq!(store.audit_len().unwrap(), next);
        }
        let bodies = store.audit_bodies(0, next).unwrap();
        let want: Vec<String> = (0..next).map(|s| row(s).body).collect();
        assert_eq!(bodies, want);
        let leaves = store.audit_leaves(next).unwrap();
        assert!(leaves.iter().zip(0..).all(|(l, s)| *l == row(s).leaf));
        assert_eq!(
            store
                .recent_audit_of_agent("agt_99", next, 10)
                .unwrap()
                .len(),
            1
        );
    }
}
