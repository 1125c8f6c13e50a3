//! The nodes sharing one database: each node's registration (a session advisory lock on
//! its id, held by a connection of its own, and its row in `nodes`), and the node record
//! every store reads (`NodeRepo`): this node's name is its id, and every registered node
//! is listed with the key that verifies its audit log.

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{NodeRepo, NodeRow, StoreError, Topic};
use tokio_postgres::{NoTls, Row};

use crate::{Block, Db, Pg, PostgresStore, get};

/// The text whose 64-bit hash (`hashtextextended`) keys node `id`'s registration lock.
/// Distinct from the audit log's per-node lock (`audit.rs`), so holding one never waits
/// for the other.
pub(crate) fn registration_lock_text(id: &str) -> String {
    format!("mandate node {id}")
}

impl PostgresStore {
    /// The node this store acts as (its id, given to [`PostgresStore::connect`]).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Registers this process as the node, for as long as the store lives: takes the
    /// node id's session advisory lock on a connection of its own (outside the pool),
    /// then records the node in `nodes` (started and last seen at `now`). A node id
    /// already serving on this database is refused with a `Conflict` before anything
    /// is written.
    ///
    /// INVARIANT (one process per node id): a node's audit writer, its Merkle frontier
    /// and its checkpoint key assume they alone append to its log; the lock is held by
    /// the registering connection and released when the store is dropped or the process
    /// ends (however it ends), so a dead node's id can serve again at once. Nodes with
    /// other ids register beside it. If the registering connection is lost the lock
    /// lapses unseen; the heartbeat (issue 21) is what notices.
    pub fn register(&self, now: Timestamp) -> Result<()> {
        self.handle.block(async {
            let (client, connection) = self.config.connect(NoTls).await.pg()?;
            self.handle.spawn(connection);
            let row = client
                .query_one(
                    "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                    &[&registration_lock_text(&self.node)],
                )
                .await
                .pg()?;
            if !get::<bool>(&row, 0)? {
                return Err(StoreError::Conflict(format!(
                    "node id `{}` is already serving on database {}",
                    self.node, self.target
                )));
            }
            client
                .execute(
                    "INSERT INTO nodes (node, started_at, last_seen_at) VALUES ($1, $2, $2)
                     ON CONFLICT (node) DO UPDATE
                     SET started_at = EXCLUDED.started_at, last_seen_at = EXCLUDED.last_seen_at",
                    &[&self.node, &now.secs()],
                )
                .await
                .pg()?;
            *self
                .registration
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(client);
            Ok(())
        })
    }
}

fn opt_u64(r: &Row, i: usize) -> Result<Option<u64>> {
    get::<Option<i64>>(r, i)?
        .map(|v| u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative {v}"))))
        .transpose()
}

fn node_row(r: &Row) -> Result<NodeRow> {
    Ok(NodeRow {
        name: get(r, 0)?,
        audit_key: get(r, 1)?,
        started_at: Some(Timestamp::from_secs(get(r, 2)?)),
        last_seen_at: Some(Timestamp::from_secs(get(r, 3)?)),
        snapshot_seq: opt_u64(r, 4)?,
        snapshot_age_ms: opt_u64(r, 5)?,
        feed_lag_ms: opt_u64(r, 6)?,
    })
}

impl NodeRepo for Db<'_> {
    fn node_name(&self, _make: &mut dyn FnMut() -> String) -> Result<String> {
        // The node id the store was connected as: many nodes share this database, and
        // each names its own log (`meta`'s `node` is the single-node era's name).
        Ok(self.node.to_owned())
    }

    fn set_audit_key(&self, public_key: &str, now: Timestamp) -> Result<()> {
        self.touch(Topic::Node)?;
        // INVARIANT (one key per log): the first key recorded stays; the row returned is
        // the one stored, and a different one fails the unit, which writes nothing.
        let r = self.one(
            "INSERT INTO nodes (node, started_at, last_seen_at, audit_key) VALUES ($1, $2, $2, $3)
             ON CONFLICT (node) DO UPDATE SET audit_key = COALESCE(nodes.audit_key, EXCLUDED.audit_key)
             RETURNING audit_key",
            &[&self.node, &now.secs(), &public_key],
        )?;
        let stored: Option<String> = get(&r, 0)?;
        if stored.as_deref() == Some(public_key) {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!(
                "node `{}`'s audit log is signed with another key (start the node with the \
                 data dir that holds its audit key)",
                self.node
            )))
        }
    }

    fn nodes(&self) -> Result<Vec<NodeRow>> {
        self.rows(
            "SELECT node, audit_key, started_at, last_seen_at, snapshot_seq, snapshot_age_ms,
                    feed_lag_ms
             FROM nodes ORDER BY node",
            &[],
        )?
        .iter()
        .map(node_row)
        .collect()
    }
}
