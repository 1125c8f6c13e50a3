//! Mandate's default store: one SQLite file in WAL mode, its migrations, and every
//! repository of `mandate-store` over it.
//!
//! One connection behind a mutex: SQLite allows one writer anyway, and `mandate serve`
//! locks its data directory, so this process is the database's only writer. A unit of
//! work holds the connection for its whole run: a write unit inside one `BEGIN IMMEDIATE`
//! transaction, a read unit with no transaction (nothing else can write meanwhile, so
//! its reads see one state). Only this crate contains SQLite's SQL.

#![warn(missing_docs)]

mod activity;
mod agents;
mod anomalies;
mod audit;
pub mod backup;
mod export;
mod mandates;
mod migrate;
mod reviews;
mod secrets;
mod ssf_streams;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use mandate_store::repo::{Result, Work};
use mandate_store::{Changes, LocalFeed, Store, StoreError, Topic, Topics};
use rusqlite::{Connection, TransactionBehavior};

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    feed: LocalFeed,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteStore({})", self.path.display())
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` in WAL mode and migrates it.
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = Connection::open(path).sql()?;
        conn.pragma_update(None, "journal_mode", "WAL").sql()?;
        conn.pragma_update(None, "synchronous", "FULL").sql()?;
        conn.pragma_update(None, "foreign_keys", "ON").sql()?;
        conn.busy_timeout(Duration::from_secs(5)).sql()?;
        migrate::migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            feed: LocalFeed::new(),
            path: path.to_owned(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A poisoned lock means a panic mid-call; SQLite rolled back any open transaction
        // (the transaction guard's drop), so the connection itself is still consistent.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The journal mode in force (`wal` once opened).
    pub fn journal_mode(&self) -> Result<String> {
        self.lock()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .sql()
    }
}

impl Store for SqliteStore {
    fn read_unit(&self, work: &mut Work<'_>) -> Result<()> {
        let conn = self.lock();
        work(&Db {
            conn: &conn,
            writable: false,
            touched: Cell::new(Topics::NONE),
        })
    }

    fn write_unit(&self, work: &mut Work<'_>) -> Result<()> {
        let conn = self.lock();
        let db = Db {
            conn: &conn,
            writable: true,
            touched: Cell::new(Topics::NONE),
        };
        let outcome = (|| {
            let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
                .sql()?;
            work(&db)?;
            tx.commit().sql()
            // On any error the transaction guard rolls back as it drops.
        })();
        // INVARIANT (published before visible): published while the connection is still
        // held, whether the unit committed or not.
        self.feed.publish(db.touched.get());
        drop(conn);
        outcome
    }

    fn topic_seq(&self, topic: Topic) -> u64 {
        self.feed.topic_seq(topic)
    }

    fn changes_since(&self, after: u64, wait: Duration) -> Changes {
        self.feed.changes_since(after, wait)
    }

    fn ping(&self) -> Result<()> {
        self.journal_mode().map(drop)
    }

    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }
}

/// A unit of work's handle: the locked connection (inside the unit's transaction when
/// `writable`), and the topics its writes touched so far.
pub(crate) struct Db<'c> {
    conn: &'c Connection,
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
}

/// SQLite's errors as the store's.
pub(crate) trait Sql<T> {
    /// This result, with a SQLite error as [`StoreError::Backend`].
    fn sql(self) -> Result<T>;
}

impl<T> Sql<T> for rusqlite::Result<T> {
    fn sql(self) -> Result<T> {
        self.map_err(sqlite_error)
    }
}

/// A SQLite error as the store's.
pub(crate) fn sqlite_error(e: rusqlite::Error) -> StoreError {
    StoreError::Backend {
        backend: "sqlite",
        message: e.to_string(),
    }
}
