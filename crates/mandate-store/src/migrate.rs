//! Schema migrations, applied in order at open; `PRAGMA user_version` records the last.

use rusqlite::Connection;

use crate::StoreError;

/// Each entry is one migration; its index + 1 is the schema version it produces.
/// INVARIANT (migrations): entries are append-only; a released migration never changes.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE agents (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    owner         TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    labels        TEXT NOT NULL,
    boundary      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'decommissioned')),
    status_reason TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX agents_owner ON agents (owner);
CREATE INDEX agents_status ON agents (status);

CREATE TABLE credentials (
    id          TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL REFERENCES agents (id),
    kind        TEXT NOT NULL CHECK (kind IN ('client_secret', 'public_key')),
    secret_hash TEXT,
    public_jwk  TEXT,
    key_id      TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER,
    replaced_by TEXT,
    CHECK ((kind = 'client_secret') = (secret_hash IS NOT NULL)),
    CHECK ((kind = 'public_key') = (public_jwk IS NOT NULL))
) STRICT;
CREATE INDEX credentials_agent ON credentials (agent_id);

CREATE TABLE admin_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'approver')),
    digest     TEXT NOT NULL UNIQUE,
    bootstrap  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
CREATE UNIQUE INDEX admin_tokens_one_bootstrap ON admin_tokens (bootstrap) WHERE bootstrap = 1;

CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    public_key    BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    retired_at    INTEGER,
    publish_until INTEGER
) STRICT;
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((retired_at IS NULL)) WHERE retired_at IS NULL;

CREATE TABLE assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
) STRICT;

CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
) STRICT;
"#,
    r#"
CREATE TABLE agent_token_cutoffs (
    agent_id   TEXT PRIMARY KEY REFERENCES agents (id),
    not_before INTEGER NOT NULL
) STRICT;
"#,
];

/// Brings the schema up to date inside one transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let current = usize::try_from(current)
        .map_err(|_| StoreError::Corrupt("negative user_version".into()))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema version {current} is newer than this binary ({})",
            MIGRATIONS.len()
        )));
    }
    let tx = conn.transaction()?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
    }
    tx.commit()?;
    Ok(())
}
