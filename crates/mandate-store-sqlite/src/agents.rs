//! Agents, credentials, admin tokens, signing keys (public records and the current key's
//! sealed private half), assertion replay records and token revocations, in SQLite.

use mandate_core::admin::{AdminToken, Role};
use mandate_core::agent::{Agent, AgentStatus};
use mandate_core::credential::{CertName, Credential, CredentialKind};
use mandate_core::id::{AdminTokenId, AgentId, CredentialId};
use mandate_core::time::Timestamp;
use mandate_store::repo::{AgentChange, Result};
use mandate_store::{
    AdminTokenRepo, AgentFilter, AgentRepo, AuthCredential, CredentialRepo, NewSigningKey,
    SigningKeyRepo, SigningKeyRow, StoreError, TokenRevocationRepo, Topic,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{Db, Sql, sqlite_error};

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
    fn into_agent(self) -> Result<Agent> {
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

const CREDENTIAL_COLUMNS: &str = "id, agent_id, kind, public_jwk, key_id, created_at, expires_at, revoked_at, replaced_by, secret_hash, cert_name";

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
            r.get(10)?,
        ],
        [r.get(5)?, r.get(6)?, r.get(7)?],
        r.get(9)?,
    ))
}

fn into_credential((text, times, hash): CredentialRow) -> Result<AuthCredential> {
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
    let cert_name = next()
        .map(|s| CertName::parse_stored(&s).ok_or_else(|| bad("cert_name")))
        .transpose()?;
    let [created_at, expires_at, revoked_at] = times;
    Ok(AuthCredential {
        credential: Credential {
            id,
            agent_id,
            kind,
            public_jwk,
            key_id,
            cert_name,
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
) -> Result<AdminToken> {
    Ok(AdminToken {
        id: AdminTokenId::parse(&id).map_err(|_| StoreError::Corrupt("admin token id".into()))?,
        name,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt("admin token role".into()))?,
        bootstrap,
        created_at: Timestamp::from_secs(created),
        revoked_at: ts(revoked),
    })
}

impl AgentRepo for Db<'_> {
    fn insert_agent(&self, a: &Agent) -> Result<()> {
        self.touch(Topic::Agents)?;
        let labels = serde_json::to_string(&a.labels).map_err(corrupt("labels"))?;
        let boundary = serde_json::to_string(&a.boundary).map_err(corrupt("boundary"))?;
        self.conn
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

    fn get_agent(&self, id: &AgentId) -> Result<Option<Agent>> {
        let conn = self.conn;
        get_agent_in(conn, id)
    }

    fn list_agents(
        &self,
        filter: &AgentFilter,
        after: Option<&AgentId>,
        limit: u32,
    ) -> Result<Vec<Agent>> {
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
        let conn = self.conn;
        let mut stmt = conn.prepare(&sql).sql()?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), agent_row)
            .sql()?;
        rows.map(|r| r.sql()?.into_agent()).collect()
    }

    fn for_each_agent(&self, each: &mut dyn FnMut(Agent)) -> Result<()> {
        let conn = self.conn;
        let mut stmt = conn
            .prepare(&format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id"))
            .sql()?;
        let mut rows = stmt.query([]).sql()?;
        while let Some(row) = rows.next().sql()? {
            each(agent_row(row).sql()?.into_agent()?);
        }
        Ok(())
    }

    fn update_agent(
        &self,
        id: &AgentId,
        now: Timestamp,
        revoke_tokens: bool,
        change: &mut AgentChange<'_>,
    ) -> Result<Agent> {
        self.touch(Topic::Agents)?;
        let tx = self.conn;
        let mut agent = get_agent_in(tx, id)?.ok_or(StoreError::NotFound("agent"))?;
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
            self.touch(Topic::Credentials)?;
            tx.execute(
                "UPDATE credentials SET revoked_at = ?2 WHERE agent_id = ?1 AND revoked_at IS NULL",
                params![agent.id.as_str(), now.secs()],
            )
            .sql()?;
        }
        if revoke_tokens {
            self.touch(Topic::TokenRevocations)?;
            set_cutoff(tx, &agent.id, now)?;
        }
        Ok(agent)
    }
}

fn get_agent_in(conn: &Connection, id: &AgentId) -> Result<Option<Agent>> {
    conn.query_row(
        &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?1"),
        [id.as_str()],
        agent_row,
    )
    .optional()
    .sql()?
    .map(AgentRow::into_agent)
    .transpose()
}

fn insert_credential_in(
    conn: &Connection,
    c: &Credential,
    secret_hash: Option<&str>,
) -> Result<()> {
    let jwk = c.public_jwk.as_ref().map(serde_json::Value::to_string);
    conn.execute(
        &format!("INSERT INTO credentials ({CREDENTIAL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
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
            secret_hash,
            c.cert_name.as_ref().map(CertName::stored)
        ],
    ).sql()?;
    Ok(())
}

impl CredentialRepo for Db<'_> {
    fn insert_credential(&self, c: &Credential, secret_hash: Option<&str>) -> Result<()> {
        self.touch(Topic::Credentials)?;
        let conn = self.conn;
        // INVARIANT (decommission revokes): read in this unit, so a decommission cannot
        // fall between a caller's own check of the agent and this insert. (A rotation
        // needs a usable old credential, which a decommission revoked.)
        let status: Option<String> = conn
            .query_row(
                "SELECT status FROM agents WHERE id = ?1",
                [c.agent_id.as_str()],
                |r| r.get(0),
            )
            .optional()
            .sql()?;
        if status.as_deref() == Some(AgentStatus::Decommissioned.as_str()) {
            return Err(StoreError::Conflict(format!(
                "agent `{}` is decommissioned",
                c.agent_id
            )));
        }
        insert_credential_in(conn, c, secret_hash)
    }

    fn credentials(&self, agent: &AgentId) -> Result<Vec<AuthCredential>> {
        let conn = self.conn;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE agent_id = ?1 ORDER BY id"
            ))
            .sql()?;
        let rows = stmt.query_map([agent.as_str()], credential_row).sql()?;
        rows.map(|r| into_credential(r.sql()?)).collect()
    }

    fn for_each_credential(&self, each: &mut dyn FnMut(Credential)) -> Result<()> {
        // The columns of `CREDENTIAL_COLUMNS` but the secret hash: never read here.
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, agent_id, kind, public_jwk, key_id, created_at, expires_at, \
                 revoked_at, replaced_by, NULL, cert_name FROM credentials ORDER BY id",
            )
            .sql()?;
        let mut rows = stmt.query([]).sql()?;
        while let Some(row) = rows.next().sql()? {
            each(into_credential(credential_row(row).sql()?)?.credential);
        }
        Ok(())
    }

    fn rotate_credential(
        &self,
        old: &CredentialId,
        new: &Credential,
        secret_hash: Option<&str>,
        old_until: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        self.touch(Topic::Credentials)?;
        let tx = self.conn;
        let found = tx
            .query_row(
                &format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE id = ?1 AND agent_id = ?2"
                ),
                params![old.as_str(), new.agent_id.as_str()],
                credential_row,
            )
            .optional()
            .sql()?
            .map(into_credential)
            .transpose()?
            .ok_or(StoreError::NotFound("credential"))?;
        let until = mandate_store::repo::rotation_until(&found.credential, new, old_until, now)?;
        insert_credential_in(tx, new, secret_hash)?;
        tx.execute(
            "UPDATE credentials SET expires_at = ?2, replaced_by = ?3 WHERE id = ?1",
            params![old.as_str(), until.secs(), new.id.as_str()],
        )
        .sql()?;
        Ok(())
    }

    fn revoke_credential(&self, agent: &AgentId, id: &CredentialId, now: Timestamp) -> Result<()> {
        self.touch(Topic::Credentials)?;
        self.touch(Topic::TokenRevocations)?;
        let tx = self.conn;
        let n = tx.execute(
            "UPDATE credentials SET revoked_at = COALESCE(revoked_at, ?3) WHERE id = ?1 AND agent_id = ?2",
            params![id.as_str(), agent.as_str(), now.secs()],
        ).sql()?;
        if n == 0 {
            return Err(StoreError::NotFound("credential"));
        }
        // The credential may have leaked and a token does not record which credential
        // minted it: every token the agent holds dies with it, in the same transaction.
        set_cutoff(tx, agent, now)?;
        Ok(())
    }
}

impl AdminTokenRepo for Db<'_> {
    fn insert_admin_token(&self, t: &AdminToken, digest: &str) -> Result<()> {
        self.touch(Topic::AdminTokens)?;
        self.conn.execute(
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
        ).sql()?;
        Ok(())
    }

    fn set_bootstrap_digest(&self, new: &AdminToken, digest: &str) -> Result<()> {
        self.touch(Topic::AdminTokens)?;
        let tx = self.conn;
        let existing: Option<(bool, Option<i64>)> = tx
            .query_row(
                "SELECT bootstrap, revoked_at FROM admin_tokens WHERE digest = ?1",
                [digest],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .sql()?;
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
        )
        .sql()?;
        tx.execute(
            "INSERT INTO admin_tokens (id, name, role, digest, bootstrap, created_at) VALUES (?1, ?2, ?3, ?4, 1, ?5)",
            params![new.id.as_str(), new.name, new.role.as_str(), digest, new.created_at.secs()],
        ).sql()?;
        Ok(())
    }

    fn has_bootstrap(&self) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM admin_tokens WHERE bootstrap = 1", [], |_| {
                Ok(())
            })
            .optional()
            .sql()?
            .is_some())
    }

    fn admin_token_by_digest(&self, digest: &str) -> Result<Option<AdminToken>> {
        self.conn
            .query_row(
                "SELECT id, name, role, bootstrap, created_at, revoked_at FROM admin_tokens
                 WHERE digest = ?1 AND revoked_at IS NULL",
                [digest],
                admin_row,
            )
            .optional()
            .sql()?
            .map(into_admin)
            .transpose()
    }

    fn list_admin_tokens(&self) -> Result<Vec<AdminToken>> {
        let conn = self.conn;
        let mut stmt = conn.prepare(
            "SELECT id, name, role, bootstrap, created_at, revoked_at FROM admin_tokens ORDER BY id",
        ).sql()?;
        let rows = stmt.query_map([], admin_row).sql()?;
        rows.map(|r| into_admin(r.sql()?)).collect()
    }

    fn revoke_admin_token(&self, id: &AdminTokenId, now: Timestamp) -> Result<()> {
        self.touch(Topic::AdminTokens)?;
        let n = self
            .conn
            .execute(
                "UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                params![id.as_str(), now.secs()],
            )
            .sql()?;
        if n == 0 {
            return Err(StoreError::NotFound("admin token"));
        }
        Ok(())
    }
}

impl SigningKeyRepo for Db<'_> {
    fn add_signing_key(
        &self,
        key: &NewSigningKey<'_>,
        replaces: Option<&str>,
        now: Timestamp,
        old_publish_until: Timestamp,
    ) -> Result<()> {
        self.touch(Topic::SigningKeys)?;
        let tx = self.conn;
        // The unit holds the write lock (`BEGIN IMMEDIATE`): nothing comes between this
        // read and the writes below.
        let current: Option<String> = tx
            .query_row(
                "SELECT kid FROM signing_keys WHERE retired_at IS NULL",
                [],
                |r| r.get(0),
            )
            .optional()
            .sql()?;
        if current.as_deref() != replaces {
            return Err(StoreError::Conflict(format!(
                "the current signing key is {}, not {}",
                current.as_deref().unwrap_or("none"),
                replaces.unwrap_or("none")
            )));
        }
        // INVARIANT (one signer): the retired key's private half goes in the same write.
        tx.execute(
            "UPDATE signing_keys SET retired_at = ?1, publish_until = ?2, private_sealed = NULL
             WHERE retired_at IS NULL",
            params![now.secs(), old_publish_until.secs()],
        )
        .sql()?;
        tx.execute(
            "INSERT INTO signing_keys (kid, public_key, created_at, private_sealed)
             VALUES (?1, ?2, ?3, ?4)",
            params![key.kid, key.public_key, now.secs(), key.sealed_private],
        )
        .sql()?;
        Ok(())
    }

    fn published_signing_keys(&self, now: Timestamp) -> Result<Vec<SigningKeyRow>> {
        let conn = self.conn;
        let mut stmt = conn
            .prepare(
                "SELECT kid, public_key, created_at, retired_at, publish_until FROM signing_keys
             WHERE retired_at IS NULL OR publish_until > ?1
             ORDER BY retired_at IS NOT NULL, created_at DESC",
            )
            .sql()?;
        let rows = stmt
            .query_map([now.secs()], |r| {
                Ok(SigningKeyRow {
                    kid: r.get(0)?,
                    public_key: r.get(1)?,
                    created_at: Timestamp::from_secs(r.get(2)?),
                    retired_at: ts(r.get(3)?),
                    publish_until: ts(r.get(4)?),
                })
            })
            .sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()
    }

    fn signing_key_sealed(&self, kid: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row(
                "SELECT private_sealed FROM signing_keys WHERE kid = ?1 AND retired_at IS NULL",
                [kid],
                |r| r.get::<_, Option<Vec<u8>>>(0),
            )
            .optional()
            .sql()?
            .flatten())
    }

    fn import_signing_key_sealed(&self, kid: &str, sealed: &[u8]) -> Result<bool> {
        self.touch(Topic::SigningKeys)?;
        Ok(self
            .conn
            .execute(
                "UPDATE signing_keys SET private_sealed = ?2
                 WHERE kid = ?1 AND retired_at IS NULL AND private_sealed IS NULL",
                params![kid, sealed],
            )
            .sql()?
            == 1)
    }
}

impl TokenRevocationRepo for Db<'_> {
    fn record_assertion_jti(
        &self,
        client: &AgentId,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        self.touch(Topic::AssertionReplay)?;
        let tx = self.conn;
        tx.execute(
            "DELETE FROM assertion_jtis WHERE expires_at <= ?1",
            [now.secs()],
        )
        .sql()?;
        let fresh = match tx.execute(
            "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES (?1, ?2, ?3)",
            params![client.as_str(), jti, expires_at.secs()],
        ) {
            Ok(_) => true,
            Err(e) if is_unique_violation(&e) => false,
            Err(e) => return Err(sqlite_error(e)),
        };
        Ok(fresh)
    }

    fn revoke_token(&self, jti: &str, expires_at: Timestamp, now: Timestamp) -> Result<()> {
        self.touch(Topic::TokenRevocations)?;
        let conn = self.conn;
        conn.execute(
            "DELETE FROM revoked_tokens WHERE expires_at <= ?1",
            [now.secs()],
        )
        .sql()?;
        conn.execute(
            "INSERT OR IGNORE INTO revoked_tokens (jti, expires_at, revoked_at) VALUES (?1, ?2, ?3)",
            params![jti, expires_at.secs(), now.secs()],
        ).sql()?;
        Ok(())
    }

    fn set_tokens_not_before(&self, agent: &AgentId, at: Timestamp) -> Result<()> {
        self.touch(Topic::TokenRevocations)?;
        set_cutoff(self.conn, agent, at)
    }

    fn tokens_not_before(&self, agent: &AgentId) -> Result<Option<Timestamp>> {
        Ok(self
            .conn
            .query_row(
                "SELECT not_before FROM agent_token_cutoffs WHERE agent_id = ?1",
                [agent.as_str()],
                |r| r.get(0),
            )
            .optional()
            .sql()?
            .map(Timestamp::from_secs))
    }

    fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM revoked_tokens WHERE jti = ?1", [jti], |_| {
                Ok(())
            })
            .optional()
            .sql()?
            .is_some())
    }

    fn token_cutoffs(&self) -> Result<Vec<(AgentId, Timestamp)>> {
        let conn = self.conn;
        let mut stmt = conn
            .prepare("SELECT agent_id, not_before FROM agent_token_cutoffs")
            .sql()?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .sql()?;
        rows.map(|r| {
            let (a, t) = r.sql()?;
            Ok((
                AgentId::parse(&a).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                Timestamp::from_secs(t),
            ))
        })
        .collect()
    }

    fn revoked_jtis(&self, now: Timestamp) -> Result<Vec<String>> {
        let conn = self.conn;
        let mut stmt = conn
            .prepare("SELECT jti FROM revoked_tokens WHERE expires_at > ?1")
            .sql()?;
        let rows = stmt
            .query_map([now.secs()], |r| r.get::<_, String>(0))
            .sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()
    }

    fn set_user_sessions_not_before(&self, issuer: &str, sub: &str, at: Timestamp) -> Result<()> {
        self.touch(Topic::TokenRevocations)?;
        self.conn
            .execute(
                "INSERT INTO user_session_cutoffs (issuer, sub, not_before) VALUES (?1, ?2, ?3)
                 ON CONFLICT (issuer, sub)
                 DO UPDATE SET not_before = max(not_before, excluded.not_before)",
                params![issuer, sub, at.secs()],
            )
            .sql()?;
        Ok(())
    }

    fn user_session_cutoffs(&self) -> Result<Vec<(String, String, Timestamp)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT issuer, sub, not_before FROM user_session_cutoffs")
            .sql()?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, Timestamp::from_secs(r.get(2)?)))
            })
            .sql()?;
        rows.collect::<rusqlite::Result<_>>().sql()
    }
}

/// Raises (never lowers) an agent's token cutoff.
fn set_cutoff(conn: &Connection, agent: &AgentId, at: Timestamp) -> Result<()> {
    conn.execute(
        "INSERT INTO agent_token_cutoffs (agent_id, not_before) VALUES (?1, ?2)
         ON CONFLICT (agent_id) DO UPDATE SET not_before = max(not_before, excluded.not_before)",
        params![agent.as_str(), at.secs()],
    )
    .sql()?;
    Ok(())
}

fn name_conflict(e: rusqlite::Error, a: &Agent) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(format!(
            "an agent named `{}` already exists",
            a.name.as_str()
        ))
    } else {
        sqlite_error(e)
    }
}
