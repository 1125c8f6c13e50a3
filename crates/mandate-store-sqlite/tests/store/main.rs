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

use mandate_store::NewSigningKey;
use mandate_store::conformance::{agent, at};
use mandate_store::prelude::*;
use mandate_store_sqlite::SqliteStore;

mod backup;
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

// ---- migrating ----

/// A database from before the store key (schema 6: signing keys' public records only)
/// keeps its keys; the current one has no sealed half until it is imported, once.
#[test]
fn a_version_6_database_keeps_its_keys_and_takes_the_sealed_half_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mandate.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let key = NewSigningKey {
            kid: "k1",
            public_key: &[1; 32],
            sealed_private: b"dropped below",
        };
        store.add_signing_key(&key, None, at(0), at(0)).unwrap();
    }
    // Wind the file back to schema 6, as the binary before the store key left it.
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(
            "ALTER TABLE signing_keys DROP COLUMN private_sealed; ALTER TABLE policy_versions DROP COLUMN rego; DROP TABLE last_activity; DROP TABLE review_items; DROP TABLE reviews; DROP TABLE ssf_poll_sets; DROP TABLE ssf_streams; DROP TABLE export_cursors; DROP TABLE user_session_cutoffs; PRAGMA user_version = 6;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let keys = store.published_signing_keys(at(0)).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].kid.as_str(), keys[0].retired_at), ("k1", None));
    assert_eq!(store.signing_key_sealed("k1").unwrap(), None);
    assert!(store.import_signing_key_sealed("k1", b"sealed").unwrap());
    assert!(!store.import_signing_key_sealed("k1", b"again").unwrap());
    assert_eq!(
        store.signing_key_sealed("k1").unwrap().as_deref(),
        Some(&b"sealed"[..])
    );
}
