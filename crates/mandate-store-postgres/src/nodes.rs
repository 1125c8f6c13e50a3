//! The nodes sharing one database: each node's registration (a session advisory lock on
//! its id, held by a connection of its own, and its row in `nodes`), and the node record
//! every store reads (`NodeRepo`): this node's name is its id, and every registered node
//! is listed with the key that verifies its audit log.

use mandate_core::time::Timestamp;
use mandate_store::repo::Result;
use mandate_store::{NodeRepo, NodeReport, NodeRow, StoreError, Topic};
use tokio_postgres::tls::NoTlsStream;
use tokio_postgres::{NoTls, Row, Socket};

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
    /// node id's session advisory lock on a connection of its own (outside the pool,
    /// `application_name` `mandate-register`), then records the node in `nodes` (started
    /// and last seen at `now`). A node id already serving on this database is refused
    /// with a `Conflict` before anything is written.
    ///
    /// INVARIANT (one process per node id): a node's audit writer, its Merkle frontier
    /// and its checkpoint key assume they alone append to its log; the lock is held by
    /// the registering connection and released when the store is dropped or the process
    /// ends (however it ends), so a dead node's id can serve again at once. Nodes with
    /// other ids register beside it. If the registering connection is lost, the lock
    /// lapses: this store then proves nothing and leads nothing (its node refuses to
    /// decide) until it holds the lock again, which it tries at once and then with a
    /// bounded back-off ([`keep`]). If another process took the id meanwhile, this one
    /// keeps refusing while that one serves.
    pub fn register(&self, now: Timestamp) -> Result<()> {
        let text = registration_lock_text(&self.node);
        let mut config = self.config.clone();
        config.application_name("mandate-register");
        let held = self.handle.block(async {
            let Some(mut held) = take(&config, &text).await? else {
                return Err(StoreError::Conflict(format!(
                    "node id `{}` is already serving on database {}",
                    self.node, self.target
                )));
            };
            let secs = now.secs();
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&self.node, &secs];
            let insert = held.client.execute(
                "INSERT INTO nodes (node, started_at, last_seen_at) VALUES ($1, $2, $2)
                 ON CONFLICT (node) DO UPDATE
                 SET started_at = EXCLUDED.started_at, last_seen_at = EXCLUDED.last_seen_at",
                &params,
            );
            driven(&mut held.connection, insert).await?;
            Ok(held)
        })?;
        self.shared.set_registered(true);
        self.handle.spawn(keep(
            held,
            config,
            text,
            std::sync::Arc::clone(&self.shared),
            self.target.clone(),
        ));
        Ok(())
    }
}

/// The connection holding a node's registration lock.
struct Held {
    client: tokio_postgres::Client,
    connection: std::pin::Pin<Box<tokio_postgres::Connection<Socket, NoTlsStream>>>,
}

/// `fut` (a statement on `connection`'s client), with `connection` driven meanwhile; a
/// connection that ends first is an error.
async fn driven<T>(
    connection: &mut std::pin::Pin<Box<tokio_postgres::Connection<Socket, NoTlsStream>>>,
    fut: impl std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
) -> Result<T> {
    tokio::select! {
        r = fut => r.pg(),
        r = connection.as_mut() => Err(match r {
            Err(e) => crate::pg_error(&e),
            Ok(()) => StoreError::Backend {
                backend: crate::BACKEND,
                message: "the registration connection closed".into(),
            },
        }),
    }
}

/// Connects and tries the registration lock keyed by `text`: `None` if another
/// session holds it.
async fn take(config: &tokio_postgres::Config, text: &str) -> Result<Option<Held>> {
    let (client, connection) = config.connect(NoTls).await.pg()?;
    let mut connection = Box::pin(connection);
    let row = driven(
        &mut connection,
        client.query_one(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
            &[&text],
        ),
    )
    .await?;
    Ok(get::<bool>(&row, 0)?.then_some(Held { client, connection }))
}

/// Holds the registration for as long as the store lives (its runtime drops this task,
/// and with it the connection, when the store is dropped). On a lost connection: marks
/// the store unregistered first (`INVARIANT (one process per node id)`), then takes the
/// lock again, at once and then with a back-off up to 2 s, for as long as it takes.
async fn keep(
    mut held: Held,
    config: tokio_postgres::Config,
    text: String,
    shared: std::sync::Arc<crate::listen::FeedShared>,
    target: String,
) {
    loop {
        let why = match held.connection.as_mut().await {
            Ok(()) => "connection closed".to_owned(),
            Err(e) => crate::pg_error(&e).to_string(),
        };
        shared.set_registered(false);
        tracing::error!(
            store = %target,
            error = %why,
            "the node's registration was lost: this node refuses decisions and does not lead \
             until it holds its node id again"
        );
        let mut backoff = crate::listen::FIRST_BACKOFF;
        held = loop {
            match take(&config, &text).await {
                Ok(Some(h)) => break h,
                Ok(None) => tracing::error!(
                    store = %target,
                    "another process is serving with this node's id: this node refuses \
                     decisions while it does (stop one of them)"
                ),
                Err(e) => {
                    tracing::warn!(store = %target, error = %e, "registration not taken again")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(crate::listen::MAX_BACKOFF);
        };
        shared.set_registered(true);
        tracing::info!(store = %target, "the node's registration is held again: decisions resume once proven");
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
        leader: Some(get(r, 7)?),
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

    fn report_node(&self, report: &NodeReport, now: Timestamp) -> Result<()> {
        self.touch(Topic::Node)?;
        let int = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        self.exec(
            "UPDATE nodes SET last_seen_at = $2, snapshot_seq = $3, snapshot_age_ms = $4,
                 feed_lag_ms = $5, leader = $6
             WHERE node = $1",
            &[
                &self.node,
                &now.secs(),
                &int(report.snapshot_seq),
                &int(report.snapshot_age_ms),
                &int(report.feed_lag_ms),
                &report.leader,
            ],
        )
        .pg()?;
        Ok(())
    }

    fn nodes(&self) -> Result<Vec<NodeRow>> {
        self.rows(
            "SELECT node, audit_key, started_at, last_seen_at, snapshot_seq, snapshot_age_ms,
                    feed_lag_ms, leader
             FROM nodes ORDER BY node",
            &[],
        )?
        .iter()
        .map(node_row)
        .collect()
    }
}
