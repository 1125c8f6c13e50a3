//! Schema migrations, applied in order when the store connects, under an advisory lock so
//! that several nodes starting at once migrate once; `mandate_schema` records each one.

use mandate_store::StoreError;
use mandate_store::repo::Result;

use crate::{Pg, backend, get};

/// Each entry is one migration; its index + 1 is the schema version it produces.
///
/// INVARIANT (migrations): entries are append-only; a released migration never changes.
///
/// The schema is SQLite's (`mandate-store-sqlite`'s migrations, as of its version 6) in
/// PostgreSQL's types: times are `BIGINT` seconds, JSON is `TEXT` (kept byte for byte as
/// written), blobs `BYTEA`. Columns compared or ordered as identifiers are `COLLATE "C"`:
/// byte order, as SQLite sorts, whatever the database's default collation. `user` is
/// a reserved word here, so that column is always written quoted.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE agents (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT COLLATE "C" NOT NULL UNIQUE,
    owner         TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    labels        TEXT NOT NULL,
    boundary      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'decommissioned')),
    status_reason TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX agents_owner ON agents (owner);
CREATE INDEX agents_status ON agents (status);

CREATE TABLE credentials (
    id          TEXT COLLATE "C" PRIMARY KEY,
    agent_id    TEXT COLLATE "C" NOT NULL REFERENCES agents (id),
    kind        TEXT NOT NULL CHECK (kind IN ('client_secret', 'public_key')),
    secret_hash TEXT,
    public_jwk  TEXT,
    key_id      TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT,
    replaced_by TEXT,
    CHECK ((kind = 'client_secret') = (secret_hash IS NOT NULL)),
    CHECK ((kind = 'public_key') = (public_jwk IS NOT NULL))
);
CREATE INDEX credentials_agent ON credentials (agent_id);

CREATE TABLE admin_tokens (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'approver', 'service')),
    digest     TEXT NOT NULL UNIQUE,
    bootstrap  BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX admin_tokens_one_bootstrap ON admin_tokens (bootstrap) WHERE bootstrap;

CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    public_key    BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    retired_at    BIGINT,
    publish_until BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((retired_at IS NULL))
    WHERE retired_at IS NULL;

CREATE TABLE assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX assertion_jtis_expiry ON assertion_jtis (expires_at);

CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);

CREATE TABLE agent_token_cutoffs (
    agent_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES agents (id),
    not_before BIGINT NOT NULL
);

-- Node-wide facts (the node id that names this node's audit log).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Policy versions are immutable once written; which one is active is a separate record.
-- Both numbered max + 1 inside the writing unit (not by a sequence), so numbers have no
-- gaps and follow commit order (see PolicyRepo in audit.rs).
CREATE TABLE policy_versions (
    version    BIGINT PRIMARY KEY,
    policies   TEXT NOT NULL,
    fragments  TEXT NOT NULL,
    note       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE policy_activations (
    seq     BIGINT PRIMARY KEY,
    version BIGINT NOT NULL REFERENCES policy_versions (version),
    at      BIGINT NOT NULL,
    by      TEXT NOT NULL
);

-- The audit log: one row per event, in sequence; `body` is the canonical encoding
-- whose leaf hash is `leaf`.
CREATE TABLE audit_events (
    seq      BIGINT PRIMARY KEY,
    time     BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    agent    TEXT,
    "user"   TEXT,
    decision TEXT,
    body     TEXT NOT NULL,
    leaf     BYTEA NOT NULL
);
CREATE INDEX audit_events_agent ON audit_events (agent, seq);
CREATE INDEX audit_events_kind ON audit_events (kind, seq);
CREATE INDEX audit_events_time ON audit_events (time);

CREATE TABLE audit_checkpoints (
    size BIGINT PRIMARY KEY,
    time BIGINT NOT NULL,
    root BYTEA NOT NULL,
    text TEXT NOT NULL
);

-- Mandates: one row per mandate, one column per field. `user`, `scope` and `policy_ids`
-- are JSON text.
CREATE TABLE mandates (
    id                TEXT COLLATE "C" PRIMARY KEY,
    agent_id          TEXT COLLATE "C" NOT NULL REFERENCES agents (id),
    "user"            TEXT,
    intent            TEXT NOT NULL,
    justification     TEXT,
    scope             TEXT NOT NULL,
    lifetime_secs     BIGINT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending_approval', 'active', 'denied',
                                                      'expired', 'revoked', 'completed')),
    created_at        BIGINT NOT NULL,
    approval_deadline BIGINT,
    activated_at      BIGINT,
    expires_at        BIGINT,
    decided_by        TEXT,
    decision_comment  TEXT,
    decided_at        BIGINT,
    policy_ids        TEXT NOT NULL,
    ended_at          BIGINT,
    ended_by          TEXT
);
CREATE INDEX mandates_agent ON mandates (agent_id, id);
CREATE INDEX mandates_status ON mandates (status, id);
CREATE INDEX mandates_user_sub ON mandates (((("user")::jsonb) ->> 'sub'), id);
CREATE INDEX mandates_status_deadline ON mandates (status, approval_deadline);
CREATE INDEX mandates_status_expiry ON mandates (status, expires_at);

-- Anomaly detection: each agent's learned baseline (JSON) and every anomaly raised.
CREATE TABLE baselines (
    agent_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES agents (id),
    body       TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE anomalies (
    id          TEXT COLLATE "C" PRIMARY KEY,
    agent_id    TEXT COLLATE "C" NOT NULL REFERENCES agents (id),
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    score       BIGINT NOT NULL CHECK (score BETWEEN 1 AND 100),
    severity    TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    response    TEXT NOT NULL CHECK (response IN ('record', 'alert', 'step_up', 'suspend')),
    explanation TEXT NOT NULL,
    details     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'dismissed')),
    resolved_at BIGINT,
    resolved_by TEXT,
    comment     TEXT
);
CREATE INDEX anomalies_agent ON anomalies (agent_id, id);
CREATE INDEX anomalies_status ON anomalies (status, id);

-- Upstream secrets the gateways inject: ciphertext only (the server holds the key).
CREATE TABLE gateway_secrets (
    name       TEXT COLLATE "C" PRIMARY KEY,
    nonce      BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
"#,
    // 2: many nodes on one database (issue 21). Each node keeps its own audit log: the rows
    // and checkpoints name their node (the rows already there are the single node's, named
    // by `meta`'s `node`; the column's default fills them without updating a row, then is
    // dropped), keyed by (node, seq) and (node, size). `nodes` records every node that
    // registered, with the key that verifies its log; the heartbeat's columns are filled by
    // the cluster's heartbeat. The single node's log gets its row too, so it stays listed.
    r#"
DO $$
DECLARE legacy TEXT := COALESCE((SELECT value FROM meta WHERE key = 'node'), '');
BEGIN
    EXECUTE format('ALTER TABLE audit_events ADD COLUMN node TEXT COLLATE "C" NOT NULL DEFAULT %L',
                   legacy);
    EXECUTE format('ALTER TABLE audit_checkpoints ADD COLUMN node TEXT COLLATE "C" NOT NULL DEFAULT %L',
                   legacy);
END $$;
ALTER TABLE audit_events ALTER COLUMN node DROP DEFAULT;
ALTER TABLE audit_checkpoints ALTER COLUMN node DROP DEFAULT;
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey, ADD PRIMARY KEY (node, seq);
ALTER TABLE audit_checkpoints DROP CONSTRAINT audit_checkpoints_pkey, ADD PRIMARY KEY (node, size);
DROP INDEX audit_events_agent;
DROP INDEX audit_events_kind;
CREATE INDEX audit_events_agent ON audit_events (node, agent, seq);
CREATE INDEX audit_events_kind ON audit_events (node, kind, seq);

CREATE TABLE nodes (
    node            TEXT COLLATE "C" PRIMARY KEY,
    started_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    audit_key       TEXT,
    snapshot_seq    BIGINT,
    snapshot_age_ms BIGINT,
    feed_lag_ms     BIGINT
);
INSERT INTO nodes (node, started_at, last_seen_at)
SELECT m.value,
       COALESCE((SELECT MIN(time) FROM audit_events), 0),
       COALESCE((SELECT MAX(time) FROM audit_events), 0)
FROM meta m WHERE m.key = 'node';
"#,
    // 3: signing keys are shared through the store (issue 21): the current key's private
    // half, sealed under the store key (12-byte nonce, then ciphertext and tag); NULL
    // for retired keys, and for a current key from before until it is imported.
    r#"
ALTER TABLE signing_keys ADD COLUMN private_sealed BYTEA;
"#,
    // 4: which node leads, as each node reports it with its heartbeat (`mandate cluster
    // status`).
    r#"
ALTER TABLE nodes ADD COLUMN leader BOOLEAN NOT NULL DEFAULT false;
"#,
    // 5: a policy version's Rego part (issue 22): its modules and base data document as
    // JSON, '' for a version of Cedar only (every version before this one).
    r#"
ALTER TABLE policy_versions ADD COLUMN rego TEXT NOT NULL DEFAULT '';
"#,
    // 6: export sinks' cursors (issue 23): the seq of the next event of `node`'s log that
    // `sink` sends; it only moves forward, after the sink's receiver accepted what is
    // below. Each node moves its own log's cursors.
    r#"
CREATE TABLE export_cursors (
    sink       TEXT COLLATE "C" NOT NULL,
    node       TEXT COLLATE "C" NOT NULL,
    next       BIGINT NOT NULL CHECK (next >= 0),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (sink, node)
);
"#,
    // 7: users whose sessions their IdP revoked (a Shared Signal, issue 23): their user
    // tokens issued at or before `not_before` are refused.
    r#"
CREATE TABLE user_session_cutoffs (
    issuer     TEXT COLLATE "C" NOT NULL,
    sub        TEXT COLLATE "C" NOT NULL,
    not_before BIGINT NOT NULL,
    PRIMARY KEY (issuer, sub)
);
"#,
    // 8: Shared Signals streams receivers made (SSF 1.0, issue 23), and their poll queue
    // (RFC 8936): each `jti` once per stream, in the order queued (`n`), `acked_at` set
    // once acknowledged (`INVARIANT (acked once)`). Every node queues its own log's SETs
    // here; a receiver polls any node.
    r#"
CREATE TABLE ssf_streams (
    id         TEXT COLLATE "C" PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('enabled', 'paused', 'disabled')),
    config     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE ssf_poll_sets (
    n        BIGSERIAL PRIMARY KEY,
    stream   TEXT COLLATE "C" NOT NULL REFERENCES ssf_streams (id) ON DELETE CASCADE,
    jti      TEXT COLLATE "C" NOT NULL,
    body     TEXT NOT NULL,
    acked_at BIGINT,
    UNIQUE (stream, jti)
);
CREATE INDEX ssf_poll_sets_waiting ON ssf_poll_sets (stream, n) WHERE acked_at IS NULL;
"#,
    r#"
-- When each agent last had a decision and each credential last authenticated (issue 24's
-- inventory), written in batches by every node; a time only ever moves later
-- (`INVARIANT (activity only moves later)`: the upsert keeps the greater).
CREATE TABLE last_activity (
    subject TEXT COLLATE "C" PRIMARY KEY,
    at      BIGINT NOT NULL
);
"#,
    // 10: access review campaigns (issue 24): the scope and window as the service's JSON
    // (`spec`); one item per agent in scope, `pending` until decided once (`INVARIANT
    // (decided once)`), escalated once when overdue.
    r#"
CREATE TABLE reviews (
    id           TEXT COLLATE "C" PRIMARY KEY,
    name         TEXT NOT NULL,
    spec         TEXT NOT NULL,
    due          BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE TABLE review_items (
    review       TEXT COLLATE "C" NOT NULL REFERENCES reviews (id),
    agent        TEXT COLLATE "C" NOT NULL,
    owner        TEXT NOT NULL,
    state        TEXT NOT NULL
                 CHECK (state IN ('pending', 'certified', 'narrowed', 'decommissioned')),
    findings     TEXT NOT NULL,
    decided_by   TEXT,
    decided_at   BIGINT,
    decision     TEXT,
    escalated_at BIGINT,
    PRIMARY KEY (review, agent)
);
CREATE INDEX review_items_pending ON review_items (review, agent) WHERE state = 'pending';
CREATE INDEX reviews_open ON reviews (due) WHERE completed_at IS NULL;
"#,
    r#"
-- `tls_client_auth` credentials (issue 25, RFC 8705 §2.1): the subjectAltName a client
-- certificate must carry, as `dns:…`, `uri:…` or `ip:…` (`cert_name`).
-- `credentials_kind_check` is PostgreSQL's name for the column CHECK of the first
-- migration (<table>_<column>_check).
ALTER TABLE credentials ADD COLUMN cert_name TEXT;
ALTER TABLE credentials DROP CONSTRAINT credentials_kind_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_kind_check
    CHECK (kind IN ('client_secret', 'public_key', 'tls_client_auth'));
ALTER TABLE credentials ADD CONSTRAINT credentials_cert_name_check
    CHECK ((kind = 'tls_client_auth') = (cert_name IS NOT NULL));
"#,
];

/// The SQL of migration `version` (1-based), for tests that build an older schema to
/// upgrade. Not for anything else: migrations run only through `connect`.
#[doc(hidden)]
pub fn migration_sql(version: usize) -> Option<&'static str> {
    MIGRATIONS.get(version.checked_sub(1)?).copied()
}

/// The schema version this binary writes (the number of its migrations).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock key migrations run under (any fixed number: the bytes of
/// `mandate:m`); advisory locks are per database, so each database migrates on its own.
const MIGRATION_LOCK: i64 = 0x6d61_6e64_6174_653a;

/// Brings the schema up to date in one transaction, holding [`MIGRATION_LOCK`] from
/// before it reads the version until it commits.
///
/// INVARIANT (migrate once): the version is read under the lock, so a node that waited
/// for another node's migration reads the version that node committed and applies
/// nothing twice.
pub(crate) async fn migrate(client: &mut deadpool_postgres::Object) -> Result<()> {
    let tx = client.transaction().await.pg()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .pg()?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS mandate_schema (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .pg()?;
    let row = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM mandate_schema", &[])
        .await
        .pg()?;
    let current: i64 = get(&row, 0)?;
    if current > SCHEMA_VERSION {
        return Err(backend(format!(
            "database schema version {current} is newer than this binary's \
             ({SCHEMA_VERSION}); run a newer mandate"
        )));
    }
    let current = usize::try_from(current)
        .map_err(|_| StoreError::Corrupt(format!("negative schema version {current}")))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let version = i64::try_from(i + 1)
            .map_err(|_| StoreError::Corrupt("schema version out of range".into()))?;
        tx.batch_execute(sql).await.pg()?;
        tx.execute(
            "INSERT INTO mandate_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .pg()?;
    }
    tx.commit().await.pg()
}
