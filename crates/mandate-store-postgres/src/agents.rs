//! Agents, credentials, admin tokens, signing keys (public records and the current key's
//! sealed private half), assertion replay records and token revocations, in PostgreSQL.

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
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use crate::{Db, Param, Pg, PgError, XactLock, get, is_state, pg_error};

fn corrupt(what: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_secs)
}

const AGENT_COLUMNS: &str =
    "id, name, owner, purpose, labels, boundary, status, status_reason, created_at, updated_at";

fn into_agent(r: &Row) -> Result<Agent> {
    let id: String = get(r, 0)?;
    let bad = |what: &str| StoreError::Corrupt(format!("agent `{id}`: {what}"));
    let labels: String = get(r, 4)?;
    let boundary: String = get(r, 5)?;
    let status: String = get(r, 6)?;
    Ok(Agent {
        id: AgentId::parse(&id).map_err(|_| bad("id"))?,
        name: get::<String>(r, 1)?.try_into().map_err(|_| bad("name"))?,
        owner: get::<String>(r, 2)?.try_into().map_err(|_| bad("owner"))?,
        purpose: get::<String>(r, 3)?
            .try_into()
            .map_err(|_| bad("purpose"))?,
        labels: serde_json::from_str(&labels).map_err(corrupt("agent labels"))?,
        boundary: serde_json::from_str(&boundary).map_err(corrupt("agent boundary"))?,
        status: AgentStatus::parse(&status).ok_or_else(|| bad("status"))?,
        status_reason: get(r, 7)?,
        created_at: Timestamp::from_secs(get(r, 8)?),
        updated_at: Timestamp::from_secs(get(r, 9)?),
    })
}

const CREDENTIAL_COLUMNS: &str = "id, agent_id, kind, public_jwk, key_id, created_at, expires_at, revoked_at, replaced_by, secret_hash, cert_name";

fn into_credential(r: &Row) -> Result<AuthCredential> {
    let bad = |what: &str| StoreError::Corrupt(format!("credential: {what}"));
    let id: String = get(r, 0)?;
    let agent_id: String = get(r, 1)?;
    let kind: String = get(r, 2)?;
    let public_jwk: Option<String> = get(r, 3)?;
    let replaced_by: Option<String> = get(r, 8)?;
    let cert_name: Option<String> = get(r, 10)?;
    Ok(AuthCredential {
        credential: Credential {
            id: CredentialId::parse(&id).map_err(|_| bad("id"))?,
            agent_id: AgentId::parse(&agent_id).map_err(|_| bad("agent_id"))?,
            kind: CredentialKind::parse(&kind).ok_or_else(|| bad("kind"))?,
            public_jwk: public_jwk
                .map(|s| serde_json::from_str(&s))
                .transpose()
                .map_err(corrupt("public_jwk"))?,
            key_id: get(r, 4)?,
            cert_name: cert_name
                .map(|s| CertName::parse_stored(&s).ok_or_else(|| bad("cert_name")))
                .transpose()?,
            created_at: Timestamp::from_secs(get(r, 5)?),
            expires_at: ts(get(r, 6)?),
            revoked_at: ts(get(r, 7)?),
            replaced_by: replaced_by
                .map(|s| CredentialId::parse(&s))
                .transpose()
                .map_err(|_| bad("replaced_by"))?,
        },
        secret_hash: get(r, 9)?,
    })
}

const ADMIN_COLUMNS: &str = "id, name, role, bootstrap, created_at, revoked_at";

fn into_admin(r: &Row) -> Result<AdminToken> {
    let id: String = get(r, 0)?;
    let role: String = get(r, 2)?;
    Ok(AdminToken {
        id: AdminTokenId::parse(&id).map_err(|_| StoreError::Corrupt("admin token id".into()))?,
        name: get(r, 1)?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt("admin token role".into()))?,
        bootstrap: get(r, 3)?,
        created_at: Timestamp::from_secs(get(r, 4)?),
        revoked_at: ts(get(r, 5)?),
    })
}

impl AgentRepo for Db<'_> {
    fn insert_agent(&self, a: &Agent) -> Result<()> {
        self.touch(Topic::Agents)?;
        let labels = serde_json::to_string(&a.labels).map_err(corrupt("labels"))?;
        let boundary = serde_json::to_string(&a.boundary).map_err(corrupt("boundary"))?;
        self.exec(
            &format!(
                "INSERT INTO agents ({AGENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            &[
                &a.id.as_str(),
                &a.name.as_str(),
                &a.owner.as_str(),
                &a.purpose.as_str(),
                &labels,
                &boundary,
                &a.status.as_str(),
                &a.status_reason,
                &a.created_at.secs(),
                &a.updated_at.secs(),
            ],
        )
        .map_err(|e| name_conflict(&e, a))?;
        Ok(())
    }

    fn get_agent(&self, id: &AgentId) -> Result<Option<Agent>> {
        get_agent_in(self, id, "")
    }

    fn list_agents(
        &self,
        filter: &AgentFilter,
        after: Option<&AgentId>,
        limit: u32,
    ) -> Result<Vec<Agent>> {
        let mut sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id > $1");
        let mut args: Vec<String> = vec![after.map(|a| a.as_str().to_owned()).unwrap_or_default()];
        if let Some(o) = &filter.owner {
            args.push(o.clone());
            sql.push_str(&format!(" AND owner = ${}", args.len()));
        }
        if let Some(s) = filter.status {
            args.push(s.as_str().to_owned());
            sql.push_str(&format!(" AND status = ${}", args.len()));
        }
        if let Some((k, v)) = &filter.label {
            // The key is a parameter, not spliced into the SQL.
            args.push(k.clone());
            args.push(v.clone());
            sql.push_str(&format!(
                " AND (labels::jsonb ->> ${}) = ${}",
                args.len() - 1,
                args.len()
            ));
        }
        sql.push_str(&format!(" ORDER BY id LIMIT {limit}"));
        let params: Vec<Param<'_>> = args.iter().map(|a| a as Param<'_>).collect();
        self.rows(&sql, &params)?.iter().map(into_agent).collect()
    }

    fn for_each_agent(&self, each: &mut dyn FnMut(Agent)) -> Result<()> {
        // One page at a time, so no list of every agent is held: keyset pagination inside
        // the unit's one snapshot sees exactly the agents a single scan would.
        const PAGE: usize = 1000;
        let sql =
            format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id > $1 ORDER BY id LIMIT {PAGE}");
        let mut after = String::new();
        loop {
            let rows = self.rows(&sql, &[&after])?;
            let n = rows.len();
            for r in &rows {
                let a = into_agent(r)?;
                after = a.id.as_str().to_owned();
                each(a);
            }
            if n < PAGE {
                return Ok(());
            }
        }
    }

    fn update_agent(
        &self,
        id: &AgentId,
        now: Timestamp,
        revoke_tokens: bool,
        change: &mut AgentChange<'_>,
    ) -> Result<Agent> {
        self.touch(Topic::Agents)?;
        // LOCK: FOR UPDATE: a concurrent change of the same agent waits for this unit,
        // then reads the agent as this unit left it (no lost update); a credential insert
        // or rotation (FOR SHARE on this row) waits too, or is waited for.
        let mut agent =
            get_agent_in(self, id, " FOR UPDATE")?.ok_or(StoreError::NotFound("agent"))?;
        let before = agent.status;
        change(&mut agent)?;
        agent.updated_at = now;
        let labels = serde_json::to_string(&agent.labels).map_err(corrupt("labels"))?;
        let boundary = serde_json::to_string(&agent.boundary).map_err(corrupt("boundary"))?;
        self.exec(
            "UPDATE agents SET name = $2, owner = $3, purpose = $4, labels = $5, boundary = $6,
                 status = $7, status_reason = $8, updated_at = $9 WHERE id = $1",
            &[
                &agent.id.as_str(),
                &agent.name.as_str(),
                &agent.owner.as_str(),
                &agent.purpose.as_str(),
                &labels,
                &boundary,
                &agent.status.as_str(),
                &agent.status_reason,
                &now.secs(),
            ],
        )
        .map_err(|e| name_conflict(&e, &agent))?;
        if agent.status == AgentStatus::Decommissioned && before != AgentStatus::Decommissioned {
            // INVARIANT (decommission revokes): every credential insert holds FOR SHARE on
            // the agent row until it commits, and this unit holds FOR UPDATE on it: an
            // insert that got the row first has committed before this statement starts,
            // and READ COMMITTED lets this statement see (and revoke) its credential; one
            // that comes later waits, then reads the agent as decommissioned and refuses.
            self.touch(Topic::Credentials)?;
            self.exec(
                "UPDATE credentials SET revoked_at = $2 WHERE agent_id = $1 AND revoked_at IS NULL",
                &[&agent.id.as_str(), &now.secs()],
            )
            .pg()?;
        }
        if revoke_tokens {
            self.touch(Topic::TokenRevocations)?;
            set_cutoff(self, &agent.id, now)?;
        }
        Ok(agent)
    }
}

/// One agent, with `lock` (empty or ` FOR UPDATE`) after the query.
fn get_agent_in(db: &Db<'_>, id: &AgentId, lock: &str) -> Result<Option<Agent>> {
    db.opt(
        &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1{lock}"),
        &[&id.as_str()],
    )?
    .as_ref()
    .map(into_agent)
    .transpose()
}

/// Locks the agent row `FOR SHARE` until the unit ends and refuses a decommissioned agent
/// (`Conflict`). An unknown agent passes: the credential's foreign key refuses it.
fn refuse_decommissioned(db: &Db<'_>, agent: &AgentId) -> Result<()> {
    let status: Option<String> = db
        .opt(
            "SELECT status FROM agents WHERE id = $1 FOR SHARE",
            &[&agent.as_str()],
        )?
        .map(|r| get(&r, 0))
        .transpose()?;
    if status.as_deref() == Some(AgentStatus::Decommissioned.as_str()) {
        return Err(StoreError::Conflict(format!(
            "agent `{agent}` is decommissioned"
        )));
    }
    Ok(())
}

fn insert_credential_in(db: &Db<'_>, c: &Credential, secret_hash: Option<&str>) -> Result<()> {
    let jwk = c.public_jwk.as_ref().map(serde_json::Value::to_string);
    db.exec(
        &format!(
            "INSERT INTO credentials ({CREDENTIAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ),
        &[
            &c.id.as_str(),
            &c.agent_id.as_str(),
            &c.kind.as_str(),
            &jwk,
            &c.key_id,
            &c.created_at.secs(),
            &c.expires_at.map(Timestamp::secs),
            &c.revoked_at.map(Timestamp::secs),
            &c.replaced_by.as_ref().map(CredentialId::as_str),
            &secret_hash,
            &c.cert_name.as_ref().map(CertName::stored),
        ],
    )
    .pg()?;
    Ok(())
}

impl CredentialRepo for Db<'_> {
    fn insert_credential(&self, c: &Credential, secret_hash: Option<&str>) -> Result<()> {
        self.touch(Topic::Credentials)?;
        // INVARIANT (decommission revokes): LOCK: FOR SHARE on the agent row, read in
        // this unit (see `update_agent`), so a decommission cannot fall between a caller's
        // own check of the agent and this insert.
        refuse_decommissioned(self, &c.agent_id)?;
        insert_credential_in(self, c, secret_hash)
    }

    fn credentials(&self, agent: &AgentId) -> Result<Vec<AuthCredential>> {
        self.rows(
            &format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE agent_id = $1 ORDER BY id"
            ),
            &[&agent.as_str()],
        )?
        .iter()
        .map(into_credential)
        .collect()
    }

    fn for_each_credential(&self, each: &mut dyn FnMut(Credential)) -> Result<()> {
        // A page at a time, as `for_each_agent`; the columns of `CREDENTIAL_COLUMNS` but
        // the secret hash, which is never read here.
        const PAGE: usize = 1000;
        let sql = format!(
            "SELECT id, agent_id, kind, public_jwk, key_id, created_at, expires_at, \
             revoked_at, replaced_by, NULL::TEXT, cert_name FROM credentials WHERE id > $1 \
             ORDER BY id LIMIT {PAGE}"
        );
        let mut after = String::new();
        loop {
            let rows = self.rows(&sql, &[&after])?;
            let n = rows.len();
            for r in &rows {
                let c = into_credential(r)?.credential;
                after = c.id.as_str().to_owned();
                each(c);
            }
            if n < PAGE {
                return Ok(());
            }
        }
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
        // INVARIANT (decommission revokes): LOCK: FOR SHARE on the agent first, as for an
        // insert (the new credential is one).
        refuse_decommissioned(self, &new.agent_id)?;
        // LOCK: FOR UPDATE: two rotations of one credential cannot both find it
        // unreplaced; the second waits, then reads `replaced_by` set and is refused.
        let found = self
            .opt(
                &format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE id = $1 AND agent_id = $2 FOR UPDATE"
                ),
                &[&old.as_str(), &new.agent_id.as_str()],
            )?
            .as_ref()
            .map(into_credential)
            .transpose()?
            .ok_or(StoreError::NotFound("credential"))?;
        let until = mandate_store::repo::rotation_until(&found.credential, new, old_until, now)?;
        insert_credential_in(self, new, secret_hash)?;
        self.exec(
            "UPDATE credentials SET expires_at = $2, replaced_by = $3 WHERE id = $1",
            &[&old.as_str(), &until.secs(), &new.id.as_str()],
        )
        .pg()?;
        Ok(())
    }

    fn revoke_credential(&self, agent: &AgentId, id: &CredentialId, now: Timestamp) -> Result<()> {
        self.touch(Topic::Credentials)?;
        self.touch(Topic::TokenRevocations)?;
        let n = self
            .exec(
                "UPDATE credentials SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND agent_id = $2",
                &[&id.as_str(), &agent.as_str(), &now.secs()],
            )
            .pg()?;
        if n == 0 {
            return Err(StoreError::NotFound("credential"));
        }
        // The credential may have leaked and a token does not record which credential
        // minted it: every token the agent holds dies with it, in the same transaction.
        set_cutoff(self, agent, now)?;
        Ok(())
    }
}

impl AdminTokenRepo for Db<'_> {
    fn insert_admin_token(&self, t: &AdminToken, digest: &str) -> Result<()> {
        self.touch(Topic::AdminTokens)?;
        self.exec(
            "INSERT INTO admin_tokens (id, name, role, digest, bootstrap, created_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &t.id.as_str(),
                &t.name,
                &t.role.as_str(),
                &digest,
                &t.bootstrap,
                &t.created_at.secs(),
                &t.revoked_at.map(Timestamp::secs),
            ],
        )
        .pg()?;
        Ok(())
    }

    fn set_bootstrap_digest(&self, new: &AdminToken, digest: &str) -> Result<()> {
        self.touch(Topic::AdminTokens)?;
        // LOCK: the check below reads which token is the bootstrap token; two setters
        // take turns (the partial unique index `admin_tokens_one_bootstrap` backs this).
        self.lock(XactLock::Bootstrap)?;
        let existing = self.opt(
            "SELECT bootstrap, revoked_at FROM admin_tokens WHERE digest = $1",
            &[&digest],
        )?;
        let existing: Option<(bool, Option<i64>)> = existing
            .map(|r| Ok::<_, StoreError>((get(&r, 0)?, get(&r, 1)?)))
            .transpose()?;
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
        self.exec(
            "UPDATE admin_tokens SET bootstrap = false, name = 'bootstrap (superseded)',
                 revoked_at = COALESCE(revoked_at, $1) WHERE bootstrap",
            &[&new.created_at.secs()],
        )
        .pg()?;
        self.exec(
            "INSERT INTO admin_tokens (id, name, role, digest, bootstrap, created_at)
             VALUES ($1, $2, $3, $4, true, $5)",
            &[
                &new.id.as_str(),
                &new.name,
                &new.role.as_str(),
                &digest,
                &new.created_at.secs(),
            ],
        )
        .pg()?;
        Ok(())
    }

    fn has_bootstrap(&self) -> Result<bool> {
        Ok(self
            .opt("SELECT 1 FROM admin_tokens WHERE bootstrap", &[])?
            .is_some())
    }

    fn admin_token_by_digest(&self, digest: &str) -> Result<Option<AdminToken>> {
        self.opt(
            &format!(
                "SELECT {ADMIN_COLUMNS} FROM admin_tokens WHERE digest = $1 AND revoked_at IS NULL"
            ),
            &[&digest],
        )?
        .as_ref()
        .map(into_admin)
        .transpose()
    }

    fn list_admin_tokens(&self) -> Result<Vec<AdminToken>> {
        self.rows(
            &format!("SELECT {ADMIN_COLUMNS} FROM admin_tokens ORDER BY id"),
            &[],
        )?
        .iter()
        .map(into_admin)
        .collect()
    }

    fn revoke_admin_token(&self, id: &AdminTokenId, now: Timestamp) -> Result<()> {
        self.touch(Topic::AdminTokens)?;
        let n = self
            .exec(
                "UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                &[&id.as_str(), &now.secs()],
            )
            .pg()?;
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
        // LOCK: two rotations (or two first starts) take turns, and the second reads the
        // first's new key as current (READ COMMITTED: each statement sees what committed
        // before it), so it refuses rather than both inserting a current one (the
        // partial unique index `signing_keys_one_current` backs this).
        self.lock(XactLock::SigningKeys)?;
        let current: Option<String> = self
            .opt("SELECT kid FROM signing_keys WHERE retired_at IS NULL", &[])?
            .map(|r| get(&r, 0))
            .transpose()?;
        if current.as_deref() != replaces {
            return Err(StoreError::Conflict(format!(
                "the current signing key is {}, not {}",
                current.as_deref().unwrap_or("none"),
                replaces.unwrap_or("none")
            )));
        }
        // INVARIANT (one signer): the retired key's private half goes in the same write.
        self.exec(
            "UPDATE signing_keys SET retired_at = $1, publish_until = $2, private_sealed = NULL
             WHERE retired_at IS NULL",
            &[&now.secs(), &old_publish_until.secs()],
        )
        .pg()?;
        self.exec(
            "INSERT INTO signing_keys (kid, public_key, created_at, private_sealed)
             VALUES ($1, $2, $3, $4)",
            &[&key.kid, &key.public_key, &now.secs(), &key.sealed_private],
        )
        .pg()?;
        Ok(())
    }

    fn published_signing_keys(&self, now: Timestamp) -> Result<Vec<SigningKeyRow>> {
        self.rows(
            "SELECT kid, public_key, created_at, retired_at, publish_until FROM signing_keys
             WHERE retired_at IS NULL OR publish_until > $1
             ORDER BY retired_at IS NOT NULL, created_at DESC",
            &[&now.secs()],
        )?
        .iter()
        .map(|r| {
            Ok(SigningKeyRow {
                kid: get(r, 0)?,
                public_key: get(r, 1)?,
                created_at: Timestamp::from_secs(get(r, 2)?),
                retired_at: ts(get(r, 3)?),
                publish_until: ts(get(r, 4)?),
            })
        })
        .collect()
    }

    fn signing_key_sealed(&self, kid: &str) -> Result<Option<Vec<u8>>> {
        match self.opt(
            "SELECT private_sealed FROM signing_keys WHERE kid = $1 AND retired_at IS NULL",
            &[&kid],
        )? {
            Some(r) => get(&r, 0),
            None => Ok(None),
        }
    }

    fn import_signing_key_sealed(&self, kid: &str, sealed: &[u8]) -> Result<bool> {
        self.touch(Topic::SigningKeys)?;
        // One statement: its row lock decides between two importers.
        Ok(self
            .exec(
                "UPDATE signing_keys SET private_sealed = $2
                 WHERE kid = $1 AND retired_at IS NULL AND private_sealed IS NULL",
                &[&kid, &sealed],
            )
            .pg()?
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
        forget_expired(self, "assertion_jtis", now)?;
        // ON CONFLICT rather than catching the unique violation: an error would abort
        // the whole transaction. LOCK: the key's index entry: a replay racing its
        // original on another connection waits for it to commit, then finds the key taken
        // (READ COMMITTED): exactly one of them is fresh.
        let n = self
            .exec(
                "INSERT INTO assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&client.as_str(), &jti, &expires_at.secs()],
            )
            .pg()?;
        Ok(n == 1)
    }

    fn revoke_token(&self, jti: &str, expires_at: Timestamp, now: Timestamp) -> Result<()> {
        self.touch(Topic::TokenRevocations)?;
        forget_expired(self, "revoked_tokens", now)?;
        self.exec(
            "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&jti, &expires_at.secs(), &now.secs()],
        )
        .pg()?;
        Ok(())
    }

    fn set_tokens_not_before(&self, agent: &AgentId, at: Timestamp) -> Result<()> {
        self.touch(Topic::TokenRevocations)?;
        set_cutoff(self, agent, at)
    }

    fn tokens_not_before(&self, agent: &AgentId) -> Result<Option<Timestamp>> {
        self.opt(
            "SELECT not_before FROM agent_token_cutoffs WHERE agent_id = $1",
            &[&agent.as_str()],
        )?
        .map(|r| get(&r, 0).map(Timestamp::from_secs))
        .transpose()
    }

    fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        Ok(self
            .opt("SELECT 1 FROM revoked_tokens WHERE jti = $1", &[&jti])?
            .is_some())
    }

    fn token_cutoffs(&self) -> Result<Vec<(AgentId, Timestamp)>> {
        self.rows("SELECT agent_id, not_before FROM agent_token_cutoffs", &[])?
            .iter()
            .map(|r| {
                let a: String = get(r, 0)?;
                Ok((
                    AgentId::parse(&a).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    Timestamp::from_secs(get(r, 1)?),
                ))
            })
            .collect()
    }

    fn revoked_jtis(&self, now: Timestamp) -> Result<Vec<String>> {
        self.rows(
            "SELECT jti FROM revoked_tokens WHERE expires_at > $1",
            &[&now.secs()],
        )?
        .iter()
        .map(|r| get(r, 0))
        .collect()
    }

    fn set_user_sessions_not_before(&self, issuer: &str, sub: &str, at: Timestamp) -> Result<()> {
        self.touch(Topic::TokenRevocations)?;
        self.exec(
            "INSERT INTO user_session_cutoffs (issuer, sub, not_before) VALUES ($1, $2, $3)
             ON CONFLICT (issuer, sub)
             DO UPDATE SET not_before = GREATEST(user_session_cutoffs.not_before, excluded.not_before)",
            &[&issuer, &sub, &at.secs()],
        )
        .pg()?;
        Ok(())
    }

    fn user_session_cutoffs(&self) -> Result<Vec<(String, String, Timestamp)>> {
        self.rows(
            "SELECT issuer, sub, not_before FROM user_session_cutoffs",
            &[],
        )?
        .iter()
        .map(|r| Ok((get(r, 0)?, get(r, 1)?, Timestamp::from_secs(get(r, 2)?))))
        .collect()
    }
}

/// Deletes the expired rows of `table` (`assertion_jtis` or `revoked_tokens`) that no
/// other unit is deleting: `SKIP LOCKED`, so concurrent token requests do not queue (or
/// fail) on each other's housekeeping; a row skipped now goes on a later call.
fn forget_expired(db: &Db<'_>, table: &'static str, now: Timestamp) -> Result<()> {
    db.exec(
        &format!(
            "DELETE FROM {table} WHERE ctid IN
                 (SELECT ctid FROM {table} WHERE expires_at <= $1 FOR UPDATE SKIP LOCKED)"
        ),
        &[&now.secs()],
    )
    .pg()?;
    Ok(())
}

/// Raises (never lowers) an agent's token cutoff. `GREATEST` inside the upsert: two
/// units raising it at once both end at the later cutoff, whichever commits last.
fn set_cutoff(db: &Db<'_>, agent: &AgentId, at: Timestamp) -> Result<()> {
    db.exec(
        "INSERT INTO agent_token_cutoffs (agent_id, not_before) VALUES ($1, $2)
         ON CONFLICT (agent_id) DO UPDATE
             SET not_before = GREATEST(agent_token_cutoffs.not_before, excluded.not_before)",
        &[&agent.as_str(), &at.secs()],
    )
    .pg()?;
    Ok(())
}

fn name_conflict(e: &PgError, a: &Agent) -> StoreError {
    if is_state(e, &SqlState::UNIQUE_VIOLATION) {
        StoreError::Conflict(format!(
            "an agent named `{}` already exists",
            a.name.as_str()
        ))
    } else {
        pg_error(e)
    }
}
