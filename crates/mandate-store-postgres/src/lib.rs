//! Mandate's PostgreSQL store: every repository of `mandate-store` over a pool of
//! `tokio-postgres` connections (`deadpool-postgres`), its migrations, and the change feed
//! of this process. Only this crate contains PostgreSQL's SQL.
//!
//! # Blocking calls over an async driver
//!
//! [`Store`] is blocking (callers run it on blocking threads), the driver is async. The
//! store owns a small multi-thread tokio runtime (two workers, named `mandate-pg`): its
//! workers drive the pooled connections' IO, and each store call runs its statements with
//! [`tokio::runtime::Handle::block_on`] on the *calling* thread. So no call ever blocks a
//! worker of the caller's runtime (the caller is on a blocking thread), no call waits on
//! a channel to a single dedicated thread (units of work from many threads run in
//! parallel, one pooled connection each), and a unit's statements run in order on its
//! one connection. A call from an async task of a multi-thread runtime goes through
//! `tokio::task::block_in_place` (the worker's other tasks move to another thread
//! first); from a current-thread runtime tokio refuses it. Callers belong on blocking
//! threads all the same (`repo`'s "calls block").
//!
//! # Units of work
//!
//! A read unit is one `REPEATABLE READ, READ ONLY` transaction: every read in it sees one
//! snapshot, as SQLite's unit does. A write unit is one `READ COMMITTED` transaction with
//! explicit locks where SQLite relied on `BEGIN IMMEDIATE`'s single writer (read, check,
//! then write), decided per invariant and written at each method (`LOCK:` comments):
//! a row lock (`FOR UPDATE` / `FOR SHARE`) on the row the check reads, or a transaction
//! advisory lock (`XactLock`) where the check reads a whole table (the next audit seq,
//! the next policy version, the current signing key, the bootstrap token). A concurrent
//! unit then waits, and its next statement sees what the first committed.
//!
//! Why not `SERIALIZABLE`: measured here, eight threads recording client-assertion `jti`s
//! (every token request does) failed 691 of 800 units with SQLSTATE `40001`: predicate
//! locks on shared index pages conflict even for unrelated keys, and the store may not
//! retry (`work` runs once). Why not `REPEATABLE READ` with the same locks: its snapshot
//! is taken before a lock wait, so after waiting for a concurrent unit it would still not
//! see that unit's rows (a decommission would miss a credential inserted meanwhile).
//! `READ COMMITTED` reads afresh at every statement, which lock-based checks need.
//!
//! What this leaves to callers: a unit that reads through one method and writes through
//! another (the service's `contain`) holds no lock between the two; each method re-checks
//! its own rule under its lock, so no invariant breaks, but the read may be a moment old.
//!
//! # Change feed
//!
//! A [`LocalFeed`] like SQLite's: the topics a write unit touched are published once its
//! commit returned (see `INVARIANT (published before visible)` on
//! [`PostgresStore::write_unit`](Store::write_unit)).
//!
//! Other processes' writes reach it by PostgreSQL `LISTEN/NOTIFY` once
//! [`PostgresStore::start_feed`] ran (listen.rs): each write unit that touched a topic
//! other nodes read announces it inside its transaction (so only a commit is announced),
//! a listening connection publishes what other nodes announce, and a heartbeat through
//! the same channel proves the feed complete up to a moment ([`Store::freshness`]). A
//! store whose feed is not started proves nothing: a node over it refuses to decide.
//! The listening connection also holds the leader lock ([`Store::leads`]).
//!
//! # Nodes
//!
//! A store acts as one node (its id given to [`PostgresStore::connect`]): the audit log
//! it reads and appends to is that node's, and [`PostgresStore::register`] claims the id
//! for this process (`INVARIANT (one process per node id)`, `nodes.rs`). Nodes with other
//! ids share every other table.

#![warn(missing_docs)]

mod activity;
mod agents;
mod anomalies;
mod audit;
mod export;
mod listen;
mod mandates;
mod migrate;
mod nodes;
mod reviews;
mod secrets;
mod ssf_streams;

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use mandate_store::repo::{Result, Work};
use mandate_store::{Changes, Freshness, LocalFeed, Store, StoreError, Topic, Topics};
use tokio::runtime::{Handle, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, NoTls, Row};

pub use listen::FeedStatus;
pub use migrate::SCHEMA_VERSION;
#[doc(hidden)]
pub use migrate::migration_sql;

/// The backend's name in [`StoreError::Backend`].
const BACKEND: &str = "postgres";

/// Connections in the pool: units of work running at once from this process.
const POOL_SIZE: usize = 16;

/// How long a unit waits for a pooled connection, or for a new one to be made, before it
/// fails (PostgreSQL unreachable or the pool exhausted): a failure, never a hang.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PostgresStore {
    pool: Pool,
    /// This process's change feed: its own commits, and other nodes' once the listener
    /// runs ([`PostgresStore::start_feed`]).
    feed: Arc<LocalFeed>,
    /// What the listener proves and holds (listen.rs).
    shared: Arc<listen::FeedShared>,
    /// Where it connects, for logs: user, host, port and database, never a password.
    target: String,
    /// The runtime driving the pooled connections. `Some` until dropped (see `Drop`).
    runtime: Option<Runtime>,
    handle: Handle,
    /// How to open a connection outside the pool (the node's registration).
    config: tokio_postgres::Config,
    /// The node this store acts as: it names the audit log the store reads and appends
    /// to, and the registration.
    node: String,
    /// Held by a write unit from its first statement to its commit: see
    /// `INVARIANT (one writer per process)` in [`Store::write_unit`].
    writer: std::sync::Mutex<()>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresStore({})", self.target)
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Dropping a runtime waits for its workers, which tokio refuses inside an async
        // context; the last `Arc` of the store may well be dropped there.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db` or a key=value
    /// string) as node `node` (the node id: it names the audit log this store reads and
    /// appends to), checks it answers, and migrates it (under an advisory lock, so nodes
    /// starting together migrate once). A schema newer than this binary refuses to open.
    /// Connecting writes nothing of the node's; [`Self::register`] does, once the node
    /// is known to be the only process with its id.
    pub fn connect(url: &str, node: &str) -> Result<Self> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Backend {
            backend: BACKEND,
            // The driver's parse error never repeats the URL, so no password leaks here.
            message: format!("invalid store url: {e}"),
        })?;
        let target = describe_target(&config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mandate-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io {
                context: "starting the postgres store's runtime".into(),
                source: e,
            })?;
        let handle = runtime.handle().clone();
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| backend(format!("building the connection pool: {e}")))?;
        let instance: [u8; 8] = mandate_core::random::random_bytes(&mandate_core::random::OsRandom)
            .map_err(|e| backend(format!("no random instance id: {e}")))?;
        let instance: String = instance.iter().map(|b| format!("{b:02x}")).collect();
        let store = Self {
            pool,
            feed: Arc::new(LocalFeed::new()),
            shared: Arc::new(listen::FeedShared::new(instance)),
            target,
            runtime: Some(runtime),
            handle,
            config,
            node: node.to_owned(),
            writer: std::sync::Mutex::new(()),
        };
        store.handle.block(async {
            let mut client = store.client().await?;
            migrate::migrate(&mut client).await
        })?;
        Ok(store)
    }

    /// Starts hearing other nodes' writes (`LISTEN/NOTIFY` on a connection of its own,
    /// kept and re-made for as long as the store lives), proving the feed complete every
    /// `heartbeat`, and competing for the leader lock. Until the first heartbeat came
    /// back, [`Store::freshness`] is [`Freshness::Unproven`]. A second call does nothing.
    pub fn start_feed(&self, heartbeat: Duration) {
        if !self.shared.start_once() {
            return;
        }
        self.handle.spawn(listen::run(
            self.config.clone(),
            Arc::clone(&self.shared),
            Arc::clone(&self.feed),
            heartbeat,
            self.target.clone(),
        ));
    }

    /// What the listener knows now (for cluster status).
    pub fn feed_status(&self) -> FeedStatus {
        self.shared.status()
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => pg_error(&e),
            e => backend(format!("{}: no connection: {e}", self.target)),
        })
    }

    /// Runs `work` in one transaction of `isolation`, committing if it succeeds (and
    /// rolling back otherwise); returns the topics it touched beside the outcome.
    fn unit(&self, writable: bool, work: &mut Work<'_>) -> (Topics, Result<()>) {
        let handle = &self.handle;
        let mut client = match handle.block(self.client()) {
            Ok(c) => c,
            Err(e) => return (Topics::NONE, Err(e)),
        };
        let tx = handle.block(
            client
                .build_transaction()
                .isolation_level(if writable {
                    IsolationLevel::ReadCommitted
                } else {
                    IsolationLevel::RepeatableRead
                })
                .read_only(!writable)
                .start(),
        );
        let tx = match tx {
            Ok(tx) => tx,
            Err(e) => return (Topics::NONE, Err(pg_error(&e))),
        };
        let db = Db {
            handle,
            node: &self.node,
            tx: &tx,
            writable,
            touched: Cell::new(Topics::NONE),
        };
        let outcome = work(&db);
        let touched = db.touched.get();
        // Other nodes hear of the change only if it commits: `pg_notify` inside the
        // transaction is delivered at commit and dropped on rollback. A change that cannot
        // be announced is not committed.
        let announce = touched.intersection(listen::notified());
        let outcome = match outcome {
            Ok(()) if !announce.is_empty() => handle
                .block(async {
                    tx.execute(
                        "SELECT pg_notify($1, $2 || ' ' || pg_current_xact_id()::text)",
                        &[
                            &listen::CHANNEL,
                            &listen::change_payload(&self.shared.instance, announce),
                        ],
                    )
                    .await?;
                    tx.commit().await
                })
                .map_err(|e| pg_error(&e)),
            // A read unit commits too: it wrote nothing, and ends its snapshot.
            Ok(()) => handle.block(tx.commit()).map_err(|e| pg_error(&e)),
            Err(e) => {
                // The rollback's own failure changes nothing: the unit failed, and a
                // connection whose rollback failed is discarded by the pool's recycling.
                let _ = handle.block(tx.rollback());
                Err(e)
            }
        };
        (touched, outcome)
    }
}

impl Store for PostgresStore {
    fn read_unit(&self, work: &mut Work<'_>) -> Result<()> {
        self.unit(false, work).1
    }

    fn write_unit(&self, work: &mut Work<'_>) -> Result<()> {
        // INVARIANT (one writer per process): this process's write units run one at a
        // time, as SQLite's do, so a unit that reads through one repository method and
        // writes through another (containment reads the agent, then cuts off its tokens
        // and ends its mandates) acts on what it read, as the seam's "one serializable
        // transaction" promises. Each method's own rule also holds across processes, by
        // the row and advisory locks named at each statement (`LOCK:`); whole units
        // across nodes are the cluster's (issue 21, part 2), which replaces this lock.
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (touched, outcome) = self.unit(true, work);
        // INVARIANT (published before visible), as a backend with many connections can
        // hold it: published once the commit returned (or the unit failed), before this
        // call returns. Never before the commit: a reader that read the new number before
        // the data would then read the old data and trust it. A reader on another
        // connection may see the committed data under the old number for a moment; the
        // number then moves and it reads again (one re-read, never a stale fact).
        self.feed.publish(touched);
        outcome
    }

    fn topic_seq(&self, topic: Topic) -> u64 {
        self.feed.topic_seq(topic)
    }

    fn changes_since(&self, after: u64, wait: Duration) -> Changes {
        self.feed.changes_since(after, wait)
    }

    fn freshness(&self) -> Freshness {
        self.shared.freshness()
    }

    fn leads(&self) -> bool {
        self.shared.leads()
    }

    fn ping(&self) -> Result<()> {
        self.handle.block(async {
            let client = self.client().await?;
            client
                .simple_query("SELECT 1")
                .await
                .map(drop)
                .map_err(|e| pg_error(&e))
        })
    }

    fn describe(&self) -> String {
        format!("postgres {}", self.target)
    }
}

/// Running a future to completion from synchronous code.
trait Block {
    /// Runs `f` on the calling thread, its IO driven by the store's runtime.
    fn block<F: std::future::Future>(&self, f: F) -> F::Output;
}

impl Block for Handle {
    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        // On a blocking thread (the normal caller) `block_in_place` just runs the closure.
        // On a worker of a caller's multi-thread runtime (e.g. `mandate serve` opening
        // its store in its async `run`), it first hands that worker's other tasks to
        // another thread, so no task of the caller waits behind this call; and it leaves
        // the caller's runtime context, which `block_on` requires. A caller on a
        // current-thread runtime is refused by tokio (a panic): call from a blocking thread.
        tokio::task::block_in_place(|| self.block_on(f))
    }
}

/// `user@host:port/dbname` of a connection config: no password.
fn describe_target(c: &tokio_postgres::Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        c.get_user().unwrap_or("?"),
        c.get_dbname().unwrap_or("?")
    )
}

/// A statement's parameter.
pub(crate) type Param<'a> = &'a (dyn ToSql + Sync);

/// A unit of work's handle: its transaction on one pooled connection, the runtime to run
/// its statements on, and the topics its writes touched so far.
pub(crate) struct Db<'t> {
    handle: &'t Handle,
    /// The store's node: whose audit log the unit reads and appends to.
    node: &'t str,
    tx: &'t deadpool_postgres::Transaction<'t>,
    writable: bool,
    touched: Cell<Topics>,
}

impl Db<'_> {
    /// Called first by every write: refuses it in a read unit, and records its topic for
    /// the change feed.
    ///
    /// INVARIANT (every write touches): each repository method that writes a table calls
    /// this, before its first statement, with the topic of that table.
    fn touch(&self, topic: Topic) -> Result<()> {
        if !self.writable {
            return Err(StoreError::ReadOnly);
        }
        self.touched.set(self.touched.get().with(topic));
        Ok(())
    }

    /// Takes `lock` until the unit ends (commit or rollback); waits while another unit,
    /// on any connection of any node, holds it.
    fn lock(&self, lock: XactLock) -> Result<()> {
        self.exec("SELECT pg_advisory_xact_lock($1)", &[&(lock as i64)])
            .pg()?;
        Ok(())
    }

    /// Runs a statement (prepared once per connection); the number of rows it changed.
    fn exec(&self, sql: &str, params: &[Param<'_>]) -> std::result::Result<u64, PgError> {
        self.handle.block(async {
            let st = self.tx.prepare_cached(sql).await?;
            self.tx.execute(&st, params).await
        })
    }

    /// The rows a query returns.
    fn rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        self.handle
            .block(async {
                let st = self.tx.prepare_cached(sql).await?;
                self.tx.query(&st, params).await
            })
            .pg()
    }

    /// The row a query returns, if any (an error if more than one).
    fn opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>> {
        self.handle
            .block(async {
                let st = self.tx.prepare_cached(sql).await?;
                self.tx.query_opt(&st, params).await
            })
            .pg()
    }

    /// The one row a query returns.
    fn one(&self, sql: &str, params: &[Param<'_>]) -> Result<Row> {
        self.handle
            .block(async {
                let st = self.tx.prepare_cached(sql).await?;
                self.tx.query_one(&st, params).await
            })
            .pg()
    }
}

/// Transaction advisory locks, each serializing one kind of table-wide check across every
/// connection and node ([`Db::lock`]). The keys are arbitrary but fixed (`0x6d61…`,
/// "ma…", then the lock's number), apart from those of `migrate`; the per-node locks
/// (registration, audit append) are hashes of the node id (`nodes.rs`, `audit.rs`).
#[derive(Debug, Clone, Copy)]
#[repr(i64)]
pub(crate) enum XactLock {
    // 0x6d61_0000_0000_0001 was the one lock of the audit log; each node's log now has
    // its own (`audit.rs`), so it is not reused.
    /// Numbering policy versions and activations: `MAX + 1`.
    Policies = 0x6d61_0000_0000_0002,
    /// Replacing the current signing key (one current key).
    SigningKeys = 0x6d61_0000_0000_0003,
    /// Replacing the bootstrap token (one bootstrap token).
    Bootstrap = 0x6d61_0000_0000_0004,
}

/// The driver's error.
pub(crate) type PgError = tokio_postgres::Error;

/// Column `i` of `row`, as `T`.
pub(crate) fn get<'r, T: tokio_postgres::types::FromSql<'r>>(row: &'r Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(|e| pg_error(&e))
}

/// PostgreSQL's errors as the store's.
pub(crate) trait Pg<T> {
    /// This result, with a driver error as [`StoreError::Backend`].
    fn pg(self) -> Result<T>;
}

impl<T> Pg<T> for std::result::Result<T, PgError> {
    fn pg(self) -> Result<T> {
        self.map_err(|e| pg_error(&e))
    }
}

/// Whether `e` is the server refusing a write for `state` (a constraint violation).
pub(crate) fn is_state(e: &PgError, state: &SqlState) -> bool {
    e.code() == Some(state)
}

/// A driver error as the store's: the server's SQLSTATE and message when it has one
/// (`40001` is a serialization failure: the unit may be tried again).
pub(crate) fn pg_error(e: &PgError) -> StoreError {
    let message = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    };
    backend(message)
}

/// A [`StoreError::Backend`] of this backend.
pub(crate) fn backend(message: String) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        message,
    }
}
