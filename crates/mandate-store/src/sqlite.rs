//! The SQLite store: agents, credentials, admin tokens, signing-key metadata, assertion
//! replay records and token revocations.
//!
//! One connection behind a mutex serialises writes (SQLite allows one writer anyway);
//! every multi-step change runs in one transaction under that lock.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use mandate_core::admin::{AdminToken, Role};
use mandate_core::agent::{Agent, AgentStatus};
use mandate_core::credential::{Credential, CredentialKind};
use mandate_core::id::{AdminTokenId, AgentId, CredentialId};
use mandate_core::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::StoreError;

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    conn: Mutex<Connection>,
    /// Counts changes to the `credentials` table; see
    /// [`Store::credentials_generation`].
    credentials_generation: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// Filters for listing agents; `None` matches everything.
#[derive(Debug, Default, Clone)]
pub struct AgentFilter {
    /// Exact owner.
    pub owner: Option<String>,
    /// Exact status.
    pub status: Option<AgentStatus>,
    /// Label `key` equal to `value`.
    pub label: Option<(String, String)>,
}

/// A credential with the material needed to check it.
#[derive(Debug, Clone)]
pub struct AuthCredential {
    /// The credential's metadata.
    pub credential: Credential,
    /// For client secrets: the Argon2id PHC string.
    pub secret_hash: Option<String>,
}

/// A signing key's public record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// The 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stopped signing; `None` for the current key.
    pub retired_at: Option<Timestamp>,
    /// Until when its public key stays published.
    pub publish_until: Option<Timestamp>,
}

fn corrupt(what: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_secs)
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

struct AgentRow {
    id: String,
    name: String,
    owner: String,
    purpose: String,
    labels: String,
    boundary: String,
    status: String,
    status_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
}

const AGENT_COLUMNS: &str =
    "id, name, owner, purpose, labels, boundary, status, status_reason, created_at, updated_at";

fn agent_row(r: &Row<'_>) -> rusqlite::Result<AgentRow> {
    Ok(AgentRow {
        id: r.get(0)?,
        name: r.get(1)?,
        owner: r.get(2)?,
        purpose: r.get(3)?,
        labels: r.get(4)?,
        boundary: r.get(5)?,
        status: r.get(6)?,
        status_reason: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

impl AgentRow {
    fn into_agent(self) -> Result<Agent, StoreError> {
        let bad = |what: &str| StoreError::Corrupt(format!("agent `{}`: {what}", self.id));
        Ok(Agent {
            id: AgentId::parse(&self.id).map_err(|_| bad("id"))?,
            name: self.name.clone().try_into().map_err(|_| bad("name"))?,
            owner: self.owner.clone().try_into().map_err(|_| bad("owner"))?,
            purpose: self
                .purpose
                .clone()
                .try_into()
                .map_err(|_| bad("purpose"))?,
            labels: serde_json::from_str(&self.labels).map_err(corrupt("agent labels"))?,
            boundary: serde_json::from_str(&self.boundary).map_err(corrupt("agent boundary"))?,
            status: AgentStatus::parse(&self.status).ok_or_else(|| bad("status"))?,
            status_reason: self.status_reason,
            created_at: Timestamp::from_secs(self.created_at),
            updated_at: Timestamp::from_secs(self.updated_at),
        })
    }
}

const CREDENTIAL_COLUMNS: &str = "id, agent_id, kind, public_jwk, key_id, created_at, expires_at, revoked_at, replaced_by, secret_hash";

/// A credential row: text columns, time columns, secret hash.
type CredentialRow = (Vec<Option<String>>, [Option<i64>; 3], Option<String>);

fn credential_row(r: &Row<'_>) -> rusqlite::Result<CredentialRow> {
    Ok((
        vec![
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(8)?,
        ],
        [r.get(5)?, r.get(6)?, r.get(7)?],
        r.get(9)?,
    ))
}

fn into_credential((text, times, hash): CredentialRow) -> Result<AuthCredential, StoreError> {
    let bad = |what: &str| StoreError::Corrupt(format!("credential: {what}"));
    let mut text = text.into_iter();
    let mut next = || text.next().flatten();
    let id = next()
        .and_then(|s| CredentialId::parse(&s).ok())
        .ok_or_else(|| bad("id"))?;
    let agent_id = next()
        .and_then(|s| AgentId::parse(&s).ok())
        .ok_or_else(|| bad("agent_id"))?;
    let kind = next()
        .and_then(|s| CredentialKind::parse(&s))
        .ok_or_else(|| bad("kind"))?;
    let public_jwk = next()
        .map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(corrupt("public_jwk"))?;
    let key_id = next();
    let replaced_by = next()
        .map(|s| CredentialId::parse(&s))
        .transpose()
        .map_err(|_| bad("replaced_by"))?;
    let [created_at, expires_at, revoked_at] = times;
    Ok(AuthCredential {
        credential: Credential {
            id,
            agent_id,
            kind,
            public_jwk,
            key_id,
            created_at: Timestamp::from_secs(created_at.ok_or_else(|| bad("created_at"))?),
            expires_at: ts(expires_at),
            revoked_at: ts(revoked_at),
            replaced_by,
        },
        secret_hash: hash,
    })
}

fn admin_row(r: &Row<'_>) -> rusqlite::Result<(String, String, String, bool, i64, Option<i64>)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn into_admin(
    (id, name, role, bootstrap, created, revoked): (String, String, String, bool, i64, Option<i64>),
) -> Result<AdminToken, StoreError> {
    Ok(AdminToken {
        id: AdminTokenId::parse(&id).map_err(|_| StoreError::Corrupt("admin token id".into()))?,
        name,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt("admin token role".into()))?,
        bootstrap,
        created_at: Timestamp::from_secs(created),
        revoked_at: ts(revoked),
    })
}

impl Store {
    /// Opens (creating if needed) the database at `path` in WAL mode and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        crate::migrate::migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            credentials_generation: AtomicU64::new(0),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A poisoned lock means a panic mid-call; SQLite rolled back any open transaction,
        // so the connection itself is still consistent.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A number that changes whenever a change to any credential is committed: a
    /// caller that read an agent's credentials and found one usable may rely on that
    /// finding, until its own expiry, for as long as this number is unchanged. Read it
    /// *before* reading the credentials: a change that commits in between then shows as
    /// a new number, never as a stale finding under the current one.
    ///
    /// INVARIANT (credentials generation): every statement that writes the
    /// `credentials` table is in this file, and the generation is bumped while the
    /// connection is locked for it (before or after the write, inside its transaction:
    /// the lock is held until commit or rollback, so no read of the table can come
    /// between the bump and the change). This process is the database's only writer
    /// (`mandate serve` locks its data directory), as for the agent snapshot.
    pub fn credentials_generation(&self) -> u64 {
        self.credentials_generation.load(Ordering::Acquire)
    }

    /// Bumps the credentials generation; called with the connection locked, for a change
    /// about to be made (one that then fails costs readers one store read, nothing more).
    fn credentials_changed(&self) {
        self.credentials_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The journal mode in force (`wal` once opened).
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        Ok(self
            .lock()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))?)
    }

    // ---- agents ----

    /// Stores a new agent; a taken name is a `Conflict`.
    pub fn insert_agent(&self, a: &Agent) -> Result<(), StoreError> {
        let labels = serde_json::to_string(&a.labels).map_err(corrupt("labels"))?;
        let boundary = serde_json::to_string(&a.boundary).map_err(corrupt("boundary"))?;
        self.lock()
            .execute(
                &format!("INSERT INTO agents ({AGENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    a.id.as_str(),
                    a.name.as_str(),
                    a.owner.as_str(),
                    a.purpose.as_str(),
                    labels,
                    boundary,
                    a.status.as_str(),
                    a.status_reason,
                    a.created_at.secs(),
                    a.updated_at.secs()
                ],
            )
            .map_err(|e| name_conflict(e, a))?;
        Ok(())
    }

    /// One agent by id.
    pub fn get_agent(&self, id: &AgentId) -> Result<Option<Agent>, StoreError> {
        let conn = self.lock();
        Self::get_agent_in(&conn, id)
    }

    fn get_agent_in(conn: &Connection, id: &AgentId) -> Result<Option<Agent>, StoreError> {
        conn.query_row(
            &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?1"),
            [id.as_str()],
            agent_row,
        )
        .optional()?
        .map(AgentRow::into_agent)
        .transpose()
    }

    /// Agents matching `filter`, in creation order, after the cursor, at most `limit`.
    pub fn list_agents(
        &self,
        filter: &AgentFilter,
        after: Option<&AgentId>,
        limit: u32,
    ) -> Result<Vec<Agent>, StoreError> {
        let mut sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id > ?1");
        let mut args: Vec<String> = vec![after.map(|a| a.as_str().to_owned()).unwrap_or_default()];
        if let Some(o) = &filter.owner {
            args.push(o.clone());
            sql.push_str(&format!(" AND owner = ?{}", args.len()));
        }
        if let Some(s) = filter.status {
            args.push(s.as_str().to_owned());
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        }
        if let Some((k, v)) = &filter.label {
            // Label keys are validated to `a-z0-9._/-`, so quoting them in the path is safe.
            args.push(format!("$.\"{k}\""));
            args.push(v.clone());
            sql.push_str(&format!(
                " AND json_extract(labels, ?{}) = ?{}",
                args.len() - 1,
                args.len()
            ));
        }
        sql.push_str(&format!(" ORDER BY id LIMIT {limit}"));
        let conn = self.lock();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), agent_row)?;
        rows.map(|r| r?.into_agent()).collect()
    }

    /// Every agent, in id order, handed to `each` one at a time as it is read (no list of
    /// them all is built, so a caller that keeps most of what it already holds needs
    /// little memory beyond it). The connection is locked meanwhile: `each` must not
    /// call the store.
    pub fn for_each_agent(&self, mut each: impl FnMut(Agent)) -> Result<(), StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            each(agent_row(row)?.into_agent()?);
        }
        Ok(())
    }

    /// Reads, changes and writes back one agent in a single transaction.
    /// `change` may refuse with its own error, in which case nothing is written.
    /// When the new status is `decommissioned`, every credential of the agent is revoked
    /// in the same transaction.
    pub fn modify_agent<E: From<StoreError>>(
        &self,
        id: &AgentId,
        now: Timestamp,
        change: impl FnOnce(&mut Agent) -> Result<(), E>,
    ) -> Result<Agent, E> {
        self.modify_agent_inner(id, now, false, change)
    }

    /// Like [`Store::modify_agent`], and in the same transaction sets the agent's token
    /// cutoff to `now` (every token issued so far dies), so no failure can leave the
    /// change made but the tokens alive.
    pub fn modify_agent_revoking_tokens<E: From<StoreError>>(
        &self,
        id: &AgentId,
        now: Timestamp,
        change: impl FnOnce(&mut Agent) -> Result<(), E>,
    ) -> Result<Agent, E> {
        self.modify_agent_inner(id, now, true, change)
    }

    fn modify_agent_inner<E: From<StoreError>>(
        &self,
        id: &AgentId,
        now: Timestamp,
        revoke_tokens: bool,
        change: impl FnOnce(&mut Agent) -> Result<(), E>,
    ) -> Result<Agent, E> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(StoreError::from)?;
        let mut agent = Self::get_agent_in(&tx, id)?.ok_or(StoreError::NotFound("agent"))?;
        let before = agent.status;
        change(&mut agent)?;
        agent.updated_at = now;
        let labels = serde_json::to_string(&agent.labels).map_err(corrupt("labels"))?;
        let boundary = serde_json::to_string(&agent.boundary).map_err(corrupt("boundary"))?;
        tx.execute(
            "UPDATE agents SET name = ?2, owner = ?3, purpose = ?4, labels = ?5, boundary = ?6,
                 status = ?7, status_reason = ?8, updated_at = ?9 WHERE id = ?1",
            params![
                agent.id.as_str(),
                agent.name.as_str(),
                agent.owner.as_str(),
                agent.purpose.as_str(),
                labels,
                boundary,
                agent.status.as_str(),
                agent.status_reason,
                now.secs()
            ],
        )
        .map_err(|e| name_conflict(e, &agent))?;
        if agent.status == AgentStatus::Decommissioned && before != AgentStatus::Decommissioned {
            tx.execute(
                "UPDATE credentials SET revoked_at = ?2 WHERE agent_id = ?1 AND revoked_at IS NULL",
                params![agent.id.as_str(), now.secs()],
            )
            .map_err(StoreError::from)?;
            self.credentials_changed();
        }
        if revoke_tokens {
            set_cutoff(&tx, &agent.id, now)?;
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(agent)
    }

    // ---- credentials ----

    /// Stores a new credential (`secret_hash` for client secrets).
    pub fn insert_credential(
        &self,
        c: &Credential,
        secret_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        let conn = self.lock();
        self.credentials_changed();
        Self::insert_credential_in(&conn, c, secret_hash)
    }

    fn insert_credential_in(
        conn: &Connection,
        c: &Credential,
        secret_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        let jwk = c.public_jwk.as_ref().map(serde_json::Value::to_string);
        conn.execute(
            &format!("INSERT INTO credentials ({CREDENTIAL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
            params![
                c.id.as_str(),
                c.agent_id.as_str(),
                c.kind.as_str(),
                jwk,
                c.key_id,
                c.created_at.secs(),
                c.expires_at.map(Timestamp::secs),
                c.revoked_at.map(Timestamp::secs),
                c.replaced_by.as_ref().map(CredentialId::as_str),
                secret_hash
            ],
        )?;
        Ok(())
    }

    /// All credentials of an agent, with the material to check them, oldest first.
    pub fn credentials(&self, agent: &AgentId) -> Result<Vec<AuthCredential>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE agent_id = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map([agent.as_str()], credential_row)?;
        rows.map(|r| into_credential(r?)).collect()
    }

    /// Replaces `old` by `new`: inserts `new` and lets `old` work only until `old_until`
    /// (never extending an earlier expiry). `old` must be a usable credential of
    /// `new.agent_id` of the same kind.
    pub fn rotate_credential(
        &self,
        old: &CredentialId,
        new: &Credential,
        secret_hash: Option<&str>,
        old_until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let found = tx
            .query_row(
                &format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE id = ?1 AND agent_id = ?2"
                ),
                params![old.as_str(), new.agent_id.as_str()],
                credential_row,
            )
            .optional()?
            .map(into_credential)
            .transpose()?
            .ok_or(StoreError::NotFound("credential"))?;
        let c = found.credential;
        if c.kind != new.kind {
            return Err(StoreError::Conflict(format!(
                "credential `{old}` is a {}, not a {}",
                c.kind.as_str(),
                new.kind.as_str()
            )));
        }
        if !c.usable_at(now) || c.replaced_by.is_some() {
            return Err(StoreError::Conflict(format!(
                "credential `{old}` is no longer active"
            )));
        }
        self.credentials_changed();
        Self::insert_credential_in(&tx, new, secret_hash)?;
        let until = c.expires_at.map_or(old_until, |e| e.min(old_until));
        tx.execute(
            "UPDATE credentials SET expires_at = ?2, replaced_by = ?3 WHERE id = ?1",
            params![old.as_str(), until.secs(), new.id.as_str()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Revokes a credential of `agent` now.
    pub fn revoke_credential(
        &self,
        agent: &AgentId,
        id: &CredentialId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        self.credentials_changed();
        let n = tx.execute(
            "UPDATE credentials SET revoked_at = COALESCE(revoked_at, ?3) WHERE id = ?1 AND agent_id = ?2",
            params![id.as_str(), agent.as_str(), now.secs()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound("credential"));
        }
        // The credential may have leaked and a token does not record which credential
        // minted it: every token the agent holds dies with it, in the same transaction.
        set_cutoff(&tx, agent, now)?;
        tx.commit()?;
        Ok(())
    }

    // ---- admin tokens ----

    /// Stores an admin token's record and digest.
    pub fn insert_admin_token(&self, t: &AdminToken, digest: &str) -> Result<(), StoreError> {
        self.lock().execute(
            "INSERT INTO admin_tokens (id, name, role, digest, bootstrap, created_at, revoked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                t.id.as_str(),
                t.name,
                t.role.as_str(),
                digest,
                t.bootstrap,
                t.created_at.secs(),
                t.revoked_at.map(Timestamp::secs)
            ],
        )?;
        Ok(())
    }

    /// Sets the bootstrap token's digest, creating its record if there is none.
    ///
    /// Supplying the token that is already the bootstrap token changes nothing. A token
    /// that was ever revoked is refused: a leaked bootstrap token revoked during an
    /// incident must not come back at the next deploy. The previous bootstrap token is
    /// kept as a revoked record, never deleted.
    pub fn set_bootstrap_digest(&self, new: &AdminToken, digest: &str) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let existing: Option<(bool, Option<i64>)> = tx
            .query_row(
                "SELECT bootstrap, revoked_at FROM admin_tokens WHERE digest = ?1",
                [digest],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match existing {
            Some((_, Some(_))) => {
                return Err(StoreError::Conflict(
                    "the supplied bootstrap token was revoked; supply a new one".into(),
                ));
            }
            Some((true, None)) => return Ok(()),
            Some((false, None)) => {
                return Err(StoreError::Conflict(
                    "the supplied bootstrap token is already a named admin token".into(),
                ));
            }
            None => {}
        }
        tx.execute(
            "UPDATE admin_tokens SET bootstrap = 0, name = 'bootstrap (superseded)',
                 revoked_at = COALESCE(revoked_at, ?1) WHERE bootstrap = 1",
            [new.created_at.secs()],
        )?;
        tx.execute(
            "INSERT INTO admin_tokens (id, name, role, digest, bootstrap, created_at) VALUES (?1, ?2, ?3, ?4, 1, ?5)",
            params![new.id.as_str(), new.name, new.role.as_str(), digest, new.created_at.secs()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Whether a bootstrap token exists.
    pub fn has_bootstrap(&self) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .query_row("SELECT 1 FROM admin_tokens WHERE bootstrap = 1", [], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    /// The unrevoked admin token with this digest.
    pub fn admin_token_by_digest(&self, digest: &str) -> Result<Option<AdminToken>, StoreError> {
        self.lock()
            .query_row(
                "SELECT id, name, role, bootstrap, created_at, revoked_at FROM admin_tokens
                 WHERE digest = ?1 AND revoked_at IS NULL",
                [digest],
                admin_row,
            )
            .optional()?
            .map(into_admin)
            .transpose()
    }

    /// Every admin token record.
    pub fn list_admin_tokens(&self) -> Result<Vec<AdminToken>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, name, role, bootstrap, created_at, revoked_at FROM admin_tokens ORDER BY id",
        )?;
        let rows = stmt.query_map([], admin_row)?;
        rows.map(|r| into_admin(r?)).collect()
    }

    /// Revokes an admin token.
    pub fn revoke_admin_token(&self, id: &AdminTokenId, now: Timestamp) -> Result<(), StoreError> {
        let n = self.lock().execute(
            "UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id.as_str(), now.secs()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound("admin token"));
        }
        Ok(())
    }

    // ---- signing keys ----

    /// Records a new current signing key, retiring the previous one: it stops signing now
    /// and stays published until `old_publish_until`.
    pub fn add_signing_key(
        &self,
        kid: &str,
        public_key: &[u8],
        now: Timestamp,
        old_publish_until: Timestamp,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE signing_keys SET retired_at = ?1, publish_until = ?2 WHERE retired_at IS NULL",
            params![now.secs(), old_publish_until.secs()],
        )?;
        tx.execute(
            "INSERT INTO signing_keys (kid, public_key, created_at) VALUES (?1, ?2, ?3)",
            params![kid, public_key, now.secs()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The current key and every retired key still published at `now`, current first.
    pub fn published_signing_keys(&self, now: Timestamp) -> Result<Vec<SigningKeyRow>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT kid, public_key, created_at, retired_at, publish_until FROM signing_keys
             WHERE retired_at IS NULL OR publish_until > ?1
             ORDER BY retired_at IS NOT NULL, created_at DESC",
        )?;
        let rows = stmt.query_map([now.secs()], |r| {
            Ok(SigningKeyRow {
                kid: r.get(0)?,
                public_key: r.get(1)?,
                created_at: Timestamp::from_secs(r.get(2)?),
                retired_at: ts(r.get(3)?),
                publish_until: ts(r.get(4)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ---- replay and revocation ----

    /// Records a client assertion's `jti` until `expires_at`. Returns false if the same
    /// client already used it (a replay). Forgets expired records as it goes.
    pub fn record_assertion_jti(
        &self,
        client: &AgentId,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM assertion_jtis WHERE expires_at <= ?1",
            [now.secs()],
        )?;
        let fresh = match tx.execute(
            "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES (?1, ?2, ?3)",
            params![client.as_str(), jti, expires_at.secs()],
        ) {
            Ok(_) => true,
            Err(e) if is_unique_violation(&e) => false,
            Err(e) => return Err(e.into()),
        };
        tx.commit()?;
        Ok(fresh)
    }

    /// Revokes an access token by `jti` (kept until the token would have expired anyway).
    pub fn revoke_token(
        &self,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "DELETE FROM revoked_tokens WHERE expires_at <= ?1",
            [now.secs()],
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO revoked_tokens (jti, expires_at, revoked_at) VALUES (?1, ?2, ?3)",
            params![jti, expires_at.secs(), now.secs()],
        )?;
        Ok(())
    }

    /// Invalidates every token of `agent` issued at or before `at` (an all-tokens kill for
    /// one agent). A later cutoff replaces an earlier one; an earlier never does.
    pub fn set_tokens_not_before(&self, agent: &AgentId, at: Timestamp) -> Result<(), StoreError> {
        set_cutoff(&self.lock(), agent, at)
    }

    /// The agent's token cutoff: tokens with `iat` at or before it are not active.
    pub fn tokens_not_before(&self, agent: &AgentId) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT not_before FROM agent_token_cutoffs WHERE agent_id = ?1",
                [agent.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .map(Timestamp::from_secs))
    }

    /// Whether the token with this `jti` was revoked.
    pub fn is_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .query_row("SELECT 1 FROM revoked_tokens WHERE jti = ?1", [jti], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }
}

/// Raises (never lowers) an agent's token cutoff.
fn set_cutoff(conn: &Connection, agent: &AgentId, at: Timestamp) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO agent_token_cutoffs (agent_id, not_before) VALUES (?1, ?2)
         ON CONFLICT (agent_id) DO UPDATE SET not_before = max(not_before, excluded.not_before)",
        params![agent.as_str(), at.secs()],
    )?;
    Ok(())
}

fn name_conflict(e: rusqlite::Error, a: &Agent) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!(
            "an agent named `{}` already exists",
            a.name.as_str()
        ))
    } else {
        e.into()
    }
}
