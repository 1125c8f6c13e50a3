//! What only the SQLite store does, against a real database file in a temporary
//! directory: reopening a file (WAL mode, idempotent migrations), durability across
//! connections, migrating an old schema, and rows corrupted behind its back; mandates in
//! [`mandates`]. Everything backend-neutral is in the conformance kit
//! (`tests/conformance.rs`).

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test loudly on setup errors"
)]

use std::collections::BTreeMap;
use std::path::Path;

use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
use mandate_core::clock::ManualClock;
use mandate_core::id::AgentId;
use mandate_core::random::OsRandom;
use mandate_core::time::Timestamp;
use mandate_store::prelude::*;
use mandate_store_sqlite::SqliteStore;

mod mandates;

/// 2023-11-14T22:13:20Z, the base time of every test.
const T0: i64 = 1_700_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs(T0 + secs)
}

/// A fresh store in its own temporary directory (kept alive by the returned guard).
fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("mandate.db")).unwrap();
    (dir, store)
}

/// An id created at `T0 + ms` milliseconds, so ids sort in the order tests make them.
fn agent_id(ms: i64) -> AgentId {
    AgentId::generate(&ManualClock::at_millis(T0 * 1000 + ms), &OsRandom).unwrap()
}

fn agent(ms: i64, name: &str, owner: &str, labels: &[(&str, &str)]) -> Agent {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Agent {
        id: agent_id(ms),
        name: AgentName::try_from(name.to_owned()).unwrap(),
        owner: Owner::try_from(owner.to_owned()).unwrap(),
        purpose: Purpose::try_from(format!("test agent {name}")).unwrap(),
        labels: Labels::try_from(labels).unwrap(),
        boundary: Boundary::default(),
        status: AgentStatus::Active,
        status_reason: None,
        created_at: at(0),
        updated_at: at(0),
    }
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
