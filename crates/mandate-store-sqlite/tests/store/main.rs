//! What only the SQLite store does, against a real database file in a temporary
//! directory: reopening a file (WAL mode, idempotent migrations), durability across
//! connections, migrating an old schema, and rows corrupted behind its back; mandates in
//! [`mandates`]. Everything backend-neutral is in the conformance kit
//! (`tests/conformance.rs`).

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test loudly on setup errors"
)]

use std::path::Path;

use mandate_store::conformance::{agent, at};
use mandate_store::prelude::*;
use mandate_store_sqlite::SqliteStore;

mod mandates;

/// A fresh store in its own temporary directory (kept alive by the returned guard).
fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("mandate.db")).unwrap();
    (dir, store)
}

// ---- opening ----

#[test]
fn reopen_is_idempotent_and_keeps_data_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = &dir.path().join("mandate.db");
    let a = agent(1, "survivor", "alice@example.com", &[("team", "billing")]);
    {
        let store = SqliteStore::open(path).unwrap();
        assert_eq!(store.journal_mode().unwrap(), "wal");
        store.insert_agent(&a).unwrap();
    }
    // A second open runs the migrations again: they must be no-ops on a current schema.
    let store = SqliteStore::open(path).unwrap();
    assert_eq!(store.journal_mode().unwrap(), "wal");
    assert_eq!(store.get_agent(&a.id).unwrap(), Some(a));
    drop(store);
    assert!(SqliteStore::open(path).is_ok(), "third open");
}
