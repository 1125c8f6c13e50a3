//! The store conformance kit (`mandate_store::conformance`) against [`SqliteStore`]: every
//! check is one test here, each on a fresh database file in its own temporary directory.

#![expect(
    clippy::unwrap_used,
    reason = "a store that does not open fails the test"
)]

use mandate_store::Store;
use mandate_store_sqlite::SqliteStore;

/// A fresh, empty store on a temporary file; the directory lives as long as the guard.
fn open() -> (tempfile::TempDir, Box<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("mandate.db")).unwrap();
    (dir, Box::new(store))
}

mandate_store::conformance_tests!(open);
