//! Schema migrations, applied in order at open; `PRAGMA user_version` records the last.

use rusqlite::Connection;

use mandate_store::StoreError;

use crate::Sql;

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
    r#"
-- Node-wide facts (the node id that names this node's audit log).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Admin tokens gain the `service` role (enforcement points calling /v1/authorize).
CREATE TABLE admin_tokens_v2 (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'approver', 'service')),
    digest     TEXT NOT NULL UNIQUE,
    bootstrap  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
INSERT INTO admin_tokens_v2 SELECT id, name, role, digest, bootstrap, created_at, revoked_at FROM admin_tokens;
DROP TABLE admin_tokens;
ALTER TABLE admin_tokens_v2 RENAME TO admin_tokens;
CREATE UNIQUE INDEX admin_tokens_one_bootstrap ON admin_tokens (bootstrap) WHERE bootstrap = 1;

-- Policy versions are immutable once written; which one is active is a separate record.
CREATE TABLE policy_versions (
    version    INTEGER PRIMARY KEY,
    policies   TEXT NOT NULL,
    fragments  TEXT NOT NULL,
    note       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
) STRICT;
CREATE TABLE policy_activations (
    seq        INTEGER PRIMARY KEY,
    version    INTEGER NOT NULL REFERENCES policy_versions (version),
    at         INTEGER NOT NULL,
    by         TEXT NOT NULL
) STRICT;

-- The audit log: one row per event, in sequence; `body` is the canonical encoding
-- whose leaf hash is `leaf`.
CREATE TABLE audit_events (
    seq      INTEGER PRIMARY KEY,
    time     INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    agent    TEXT,
    user     TEXT,
    decision TEXT,
    body     TEXT NOT NULL,
    leaf     BLOB NOT NULL
) STRICT;
CREATE INDEX audit_events_agent ON audit_events (agent, seq);
CREATE INDEX audit_events_kind ON audit_events (kind, seq);
CREATE INDEX audit_events_time ON audit_events (time);
CREATE INDEX assertion_jtis_expiry ON assertion_jtis (expires_at);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);

CREATE TABLE audit_checkpoints (
    size INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    root BLOB NOT NULL,
    text TEXT NOT NULL
) STRICT;
"#,
    r#"
-- Mandates: one row per mandate, one column per field. `user`, `scope` and `policy_ids`
-- are JSON; times are seconds since the epoch.
CREATE TABLE mandates (
    id                TEXT PRIMARY KEY,
    agent_id          TEXT NOT NULL REFERENCES agents (id),
    user              TEXT,
    intent            TEXT NOT NULL,
    justification     TEXT,
    scope             TEXT NOT NULL,
    lifetime_secs     INTEGER NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending_approval', 'active', 'denied',
                                                      'expired', 'revoked', 'completed')),
    created_at        INTEGER NOT NULL,
    approval_deadline INTEGER,
    activated_at      INTEGER,
    expires_at        INTEGER,
    decided_by        TEXT,
    decision_comment  TEXT,
    decided_at        INTEGER,
    policy_ids        TEXT NOT NULL,
    ended_at          INTEGER,
    ended_by          TEXT
) STRICT;
-- Listing (by agent, by status, by the user's subject), each in id order.
CREATE INDEX mandates_agent ON mandates (agent_id, id);
CREATE INDEX mandates_status ON mandates (status, id);
CREATE INDEX mandates_user_sub ON mandates (json_extract(user, '$.sub'), id);
-- Finding lapsed rows: pending past the approval deadline, active past expiry.
CREATE INDEX mandates_status_deadline ON mandates (status, approval_deadline);
CREATE INDEX mandates_status_expiry ON mandates (status, expires_at);
"#,
    r#"
-- Anomaly detection: each agent's learned baseline (JSON, written every few seconds)
-- and every anomaly raised, with what was done about it and who resolved it.
CREATE TABLE baselines (
    agent_id   TEXT PRIMARY KEY REFERENCES agents (id),
    body       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE TABLE anomalies (
    id          TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL REFERENCES agents (id),
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    score       INTEGER NOT NULL CHECK (score BETWEEN 1 AND 100),
    severity    TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    response    TEXT NOT NULL CHECK (response IN ('record', 'alert', 'step_up', 'suspend')),
    explanation TEXT NOT NULL,
    details     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'dismissed')),
    resolved_at INTEGER,
    resolved_by TEXT,
    comment     TEXT
) STRICT;
CREATE INDEX anomalies_agent ON anomalies (agent_id, id);
CREATE INDEX anomalies_status ON anomalies (status, id);
"#,
    r#"
-- Upstream secrets the gateways inject: ChaCha20-Poly1305 ciphertext (the server holds
-- the key; the store never sees a clear value), with the name as associated data.
CREATE TABLE gateway_secrets (
    name       TEXT PRIMARY KEY,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
"#,
    r#"
-- Signing keys are shared through the store (issue 21): the current key's private half,
-- sealed under the store key (ChaCha20-Poly1305: 12-byte nonce, then ciphertext and
-- tag). NULL for retired keys, and for a current key from before, until it is imported.
ALTER TABLE signing_keys ADD COLUMN private_sealed BLOB;
"#,
    r#"
-- A policy version's Rego part (issue 22): its modules and base data document as JSON,
-- '' for a version of Cedar only (every version before this one).
ALTER TABLE policy_versions ADD COLUMN rego TEXT NOT NULL DEFAULT '';
"#,
    r#"
-- Export sinks' cursors (issue 23): the seq of the next event of `node`'s log that
-- `sink` sends; it only moves forward, after the sink's receiver accepted what is below.
CREATE TABLE export_cursors (
    sink       TEXT NOT NULL,
    node       TEXT NOT NULL,
    next       INTEGER NOT NULL CHECK (next >= 0),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (sink, node)
) STRICT;
"#,
    r#"
-- Users whose sessions their IdP revoked (a Shared Signal, issue 23): their user tokens
-- issued at or before `not_before` are refused.
CREATE TABLE user_session_cutoffs (
    issuer     TEXT NOT NULL,
    sub        TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    PRIMARY KEY (issuer, sub)
) STRICT;
"#,
    r#"
-- Shared Signals streams receivers made (SSF 1.0, issue 23): the configuration is the
-- service's JSON. Their poll queue (RFC 8936): each `jti` once per stream, in the order
-- queued (`n`); `acked_at` set once its receiver acknowledged it (`INVARIANT (acked
-- once)`).
CREATE TABLE ssf_streams (
    id         TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('enabled', 'paused', 'disabled')),
    config     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE TABLE ssf_poll_sets (
    n        INTEGER PRIMARY KEY,
    stream   TEXT NOT NULL REFERENCES ssf_streams (id) ON DELETE CASCADE,
    jti      TEXT NOT NULL,
    body     TEXT NOT NULL,
    acked_at INTEGER,
    UNIQUE (stream, jti)
) STRICT;
CREATE INDEX ssf_poll_sets_waiting ON ssf_poll_sets (stream, n) WHERE acked_at IS NULL;
"#,
    r#"
-- When each agent last had a decision and each credential last authenticated (issue 24's
-- inventory), written in batches by the node; a time only ever moves later (`INVARIANT
-- (activity only moves later)`).
CREATE TABLE last_activity (
    subject TEXT PRIMARY KEY,
    at      INTEGER NOT NULL
) STRICT;
"#,
    r#"
-- 13: access review campaigns (issue 24): the scope and window as the service's JSON
-- (`spec`); one item per agent in scope, `pending` until decided once (`INVARIANT
-- (decided once)`), escalated once when overdue.
CREATE TABLE reviews (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    spec         TEXT NOT NULL,
    due          INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    completed_at INTEGER
) STRICT;
CREATE TABLE review_items (
    review       TEXT NOT NULL REFERENCES reviews (id),
    agent        TEXT NOT NULL,
    owner        TEXT NOT NULL,
    state        TEXT NOT NULL
                 CHECK (state IN ('pending', 'certified', 'narrowed', 'decommissioned')),
    findings     TEXT NOT NULL,
    decided_by   TEXT,
    decided_at   INTEGER,
    decision     TEXT,
    escalated_at INTEGER,
    PRIMARY KEY (review, agent)
) STRICT;
CREATE INDEX review_items_pending ON review_items (review, agent) WHERE state = 'pending';
CREATE INDEX reviews_open ON reviews (due) WHERE completed_at IS NULL;
"#,
    r#"
-- 14: `tls_client_auth` credentials (issue 25, RFC 8705 §2.1): the subjectAltName a
-- client certificate must carry, as `dns:…`, `uri:…` or `ip:…` (`cert_name`). SQLite
-- cannot change a CHECK in place: the table is rebuilt, rows copied as they are.
CREATE TABLE credentials_v2 (
    id          TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL REFERENCES agents (id),
    kind        TEXT NOT NULL CHECK (kind IN ('client_secret', 'public_key', 'tls_client_auth')),
    secret_hash TEXT,
    public_jwk  TEXT,
    key_id      TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER,
    replaced_by TEXT,
    cert_name   TEXT,
    CHECK ((kind = 'client_secret') = (secret_hash IS NOT NULL)),
    CHECK ((kind = 'public_key') = (public_jwk IS NOT NULL)),
    CHECK ((kind = 'tls_client_auth') = (cert_name IS NOT NULL))
) STRICT;
INSERT INTO credentials_v2 (id, agent_id, kind, secret_hash, public_jwk, key_id, created_at,
                            expires_at, revoked_at, replaced_by)
    SELECT id, agent_id, kind, secret_hash, public_jwk, key_id, created_at, expires_at,
           revoked_at, replaced_by FROM credentials;
DROP TABLE credentials;
ALTER TABLE credentials_v2 RENAME TO credentials;
CREATE INDEX credentials_agent ON credentials (agent_id);
"#,
];

/// Brings an empty database to schema `version` exactly (what a backup of that version
/// must hold, backup.rs); a version this binary does not know is `Corrupt`.
pub(crate) fn migrate_to(conn: &mut Connection, version: i64) -> Result<(), StoreError> {
    let n = usize::try_from(version)
        .ok()
        .filter(|v| *v <= MIGRATIONS.len())
        .ok_or_else(|| StoreError::Corrupt(format!("unknown schema version {version}")))?;
    let tx = conn.transaction().sql()?;
    for sql in MIGRATIONS.iter().take(n) {
        tx.execute_batch(sql).sql()?;
    }
    tx.commit().sql()?;
    Ok(())
}

/// Brings the schema up to date inside one transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .sql()?;
    let current = usize::try_from(current)
        .map_err(|_| StoreError::Corrupt("negative user_version".into()))?;
    if current > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema version {current} is newer than this binary ({})",
            MIGRATIONS.len()
        )));
    }
    let tx = conn.transaction().sql()?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql).sql()?;
        tx.pragma_update(None, "user_version", i + 1).sql()?;
    }
    tx.commit().sql()?;
    Ok(())
}
