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

/// Migration 14 rebuilds `credentials` (a CHECK cannot change in place): a version-13
/// file's credentials come through as they were, and the new kind is accepted after.
#[test]
fn a_version_13_database_keeps_its_credentials_and_takes_tls_client_auth() {
    use mandate_core::credential::{CertName, Credential, CredentialKind};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mandate.db");
    let a = agent(1, "veteran", "alice@example.com", &[]);
    let old = Credential {
        id: mandate_store::conformance::credential_id(10),
        agent_id: a.id.clone(),
        kind: CredentialKind::ClientSecret,
        public_jwk: None,
        key_id: None,
        cert_name: None,
        created_at: at(5),
        expires_at: Some(at(900)),
        revoked_at: None,
        replaced_by: None,
    };
    {
        let store = SqliteStore::open(&path).unwrap();
        store.insert_agent(&a).unwrap();
        store
            .insert_credential(&old, Some("$argon2id$kept"))
            .unwrap();
    }
    // Wind the file back to schema 13: the credentials table as migration 1 made it.
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(
            "CREATE TABLE c13 (
                id TEXT PRIMARY KEY, agent_id TEXT NOT NULL REFERENCES agents (id),
                kind TEXT NOT NULL CHECK (kind IN ('client_secret', 'public_key')),
                secret_hash TEXT, public_jwk TEXT, key_id TEXT, created_at INTEGER NOT NULL,
                expires_at INTEGER, revoked_at INTEGER, replaced_by TEXT,
                CHECK ((kind = 'client_secret') = (secret_hash IS NOT NULL)),
                CHECK ((kind = 'public_key') = (public_jwk IS NOT NULL))) STRICT;
             INSERT INTO c13 SELECT id, agent_id, kind, secret_hash, public_jwk, key_id,
                created_at, expires_at, revoked_at, replaced_by FROM credentials;
             DROP TABLE credentials; ALTER TABLE c13 RENAME TO credentials;
             CREATE INDEX credentials_agent ON credentials (agent_id);
             PRAGMA user_version = 13;",
        )
        .unwrap();
        let refused = raw.execute(
            "INSERT INTO credentials (id, agent_id, kind, created_at) \
             VALUES ('crd_x', ?1, 'tls_client_auth', 0)",
            [a.id.as_str()],
        );
        assert!(refused.is_err(), "schema 13 refuses the new kind");
    }
    let store = SqliteStore::open(&path).unwrap();
    let read = store.credentials(&a.id).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].credential, old);
    assert_eq!(read[0].secret_hash.as_deref(), Some("$argon2id$kept"));
    let pki = Credential {
        id: mandate_store::conformance::credential_id(11),
        kind: CredentialKind::TlsClientAuth,
        cert_name: Some(CertName::Dns("veteran.example".into())),
        expires_at: None,
        ..old.clone()
    };
    store.insert_credential(&pki, None).unwrap();
    assert_eq!(store.credentials(&a.id).unwrap()[1].credential, pki);
    // The table's rule: a tls_client_auth credential has a name, and only it has one.
    let raw = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        "INSERT INTO credentials (id, agent_id, kind, created_at) VALUES ('crd_y', ?1, 'tls_client_auth', 0)",
        "INSERT INTO credentials (id, agent_id, kind, secret_hash, cert_name, created_at) VALUES ('crd_z', ?1, 'client_secret', 'h', 'dns:x', 0)",
    ] {
        assert!(raw.execute(sql, [a.id.as_str()]).is_err(), "{sql}");
    }
}
