//! Mandates in the SQLite file: a change is durable across connections, survives a
//! reopen, an old schema gains the table, and a corrupt JSON column is reported, not
//! guessed. The backend-neutral rules are in the conformance kit's `mandates`.

use std::path::PathBuf;

use mandate_core::agent::Agent;
use mandate_core::mandate::{Mandate, MandateStatus};
use mandate_store::MandateFilter;
use mandate_store::conformance::mandates::{active, mandate, user};
use mandate_store::prelude::*;
use mandate_store_sqlite::SqliteStore;

use super::{agent, at, open};

/// A store holding one agent, and the path of its database file.
fn open_with_agent() -> (tempfile::TempDir, SqliteStore, Agent) {
    let (dir, store) = open();
    let a = agent(1, "worker", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    (dir, store, a)
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("mandate.db")
}

fn assert_corrupt<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(&r, Err(StoreError::Corrupt(m)) if m.contains(what)),
        "expected Corrupt naming {what}, got {r:?}"
    );
}

#[test]
fn modify_writes_the_change_back() {
    let (dir, store, a) = open_with_agent();
    let m = Mandate {
        approval_deadline: Some(at(300)),
        ..mandate(10, &a.id, "pending")
    };
    store.insert_mandate(&m).unwrap();

    let changed = store
        .modify_mandate(&m.id, |x| -> Result<(), StoreError> {
            // Every field written back is the kit's `modify_writes_the_change_back`; here
            // the point is the file: a change with a JSON column, seen by a new connection.
            x.status = MandateStatus::Active;
            x.expires_at = Some(at(700));
            x.user = Some(user("carol"));
            Ok(())
        })
        .unwrap();
    assert_eq!(changed.status, MandateStatus::Active);
    assert_eq!(store.get_mandate(&m.id).unwrap(), Some(changed.clone()));
    // Durable: another connection to the file sees the committed change.
    drop(store);
    let store = SqliteStore::open(&db_path(&dir)).unwrap();
    assert_eq!(store.get_mandate(&m.id).unwrap(), Some(changed));
}

#[test]
fn a_corrupt_json_column_is_reported_not_guessed() {
    let (dir, store, a) = open_with_agent();
    let m = active(10, &a.id, "victim", 600);
    let ok = active(11, &a.id, "bystander", 600);
    store.insert_mandate(&m).unwrap();
    store.insert_mandate(&ok).unwrap();
    // A second connection to the file edits the row behind the store's back.
    let raw = rusqlite::Connection::open(db_path(&dir)).unwrap();
    let set = |col: &str, v: &str| {
        raw.execute(
            &format!("UPDATE mandates SET {col} = ?1 WHERE id = ?2"),
            [v, m.id.as_str()],
        )
        .unwrap();
    };

    set("scope", "[{\"actions\": [\"crm:read\"");
    assert_corrupt(store.get_mandate(&m.id), "scope");
    assert_corrupt(
        store.list_mandates(&MandateFilter::default(), None, 10),
        "scope",
    );
    assert_corrupt(store.active_mandates(at(0)), "scope");
    assert_corrupt(store.mandates_of_agent(&a.id), "scope");
    let r = store.modify_mandate(&m.id, |_| -> Result<(), StoreError> {
        unreachable!("a corrupt row is never handed to a change")
    });
    assert_corrupt(r, "scope");

    set("scope", "[]");
    set("policy_ids", "[1, 2]");
    assert_corrupt(store.get_mandate(&m.id), "policy_ids");
    set("policy_ids", "[]");
    // Well-formed JSON of the wrong shape: `UserRef` needs a subject.
    set("user", "{\"issuer\": \"https://idp.example.com\"}");
    assert_corrupt(store.get_mandate(&m.id), "user");
    set(
        "user",
        "{\"issuer\": \"i\", \"sub\": \"s\", \"role\": \"admin\"}",
    );
    assert_corrupt(store.get_mandate(&m.id), "user");
    raw.execute(
        "UPDATE mandates SET user = NULL, lifetime_secs = -1 WHERE id = ?1",
        [m.id.as_str()],
    )
    .unwrap();
    assert_corrupt(store.get_mandate(&m.id), "lifetime_secs");

    // The other rows are unaffected.
    assert_eq!(store.get_mandate(&ok.id).unwrap(), Some(ok));
}

#[test]
fn reopening_keeps_the_mandates() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = agent(1, "worker", "alice@example.com", &[]);
    let ms = [
        mandate(10, &a.id, "pending"),
        Mandate {
            user: Some(user("carol")),
            justification: Some("because".into()),
            ..active(11, &a.id, "active", 600)
        },
    ];
    {
        let store = SqliteStore::open(&path).unwrap();
        store.insert_agent(&a).unwrap();
        for m in &ms {
            store.insert_mandate(m).unwrap();
        }
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store
            .list_mandates(&MandateFilter::default(), None, 10)
            .unwrap(),
        ms
    );
    assert_eq!(store.active_mandates(at(0)).unwrap(), [ms[1].clone()]);
}

#[test]
fn a_version_3_database_gains_the_mandates_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let a = agent(1, "veteran", "alice@example.com", &[]);
    {
        let store = SqliteStore::open(&path).unwrap();
        store.insert_agent(&a).unwrap();
    }
    // Wind the file back to schema 3, as a binary from before mandates left it.
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(
            "DROP TABLE mandates; DROP TABLE anomalies; DROP TABLE baselines; \
             DROP TABLE gateway_secrets; \
             ALTER TABLE signing_keys DROP COLUMN private_sealed; ALTER TABLE policy_versions DROP COLUMN rego; DROP TABLE last_activity; DROP TABLE review_items; DROP TABLE reviews; DROP TABLE ssf_poll_sets; DROP TABLE ssf_streams; DROP TABLE export_cursors; DROP TABLE user_session_cutoffs; PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.get_agent(&a.id).unwrap(), Some(a.clone()));
    let m = mandate(10, &a.id, "first");
    store.insert_mandate(&m).unwrap();
    assert_eq!(store.get_mandate(&m.id).unwrap(), Some(m));
    let raw = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        version, 14,
        "and every later migration (the last: 14, tls_client_auth credentials)"
    );
}
