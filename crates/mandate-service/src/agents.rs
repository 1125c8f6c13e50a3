//! The agent registry's use cases, whatever edge asks: register, list, show, update,
//! the lifecycle (suspend, resume, decommission: [`crate::acts::set_status`]) and the
//! credentials (add, list, rotate, revoke). Each is one function over the node that
//! writes through its one write path ([`Node::perform`]) and records the act's audit
//! event; each refusal is an [`AgentError`] variant that says what went wrong, and the
//! edge says what it means to its caller.

use std::sync::Arc;

use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
use mandate_core::credential::{Credential, CredentialKind};
use mandate_core::id::{AgentId, CredentialId};
use mandate_core::random::RandomError;
use mandate_core::time::Timestamp;
use mandate_store::prelude::*;
use mandate_store::{AgentFilter, StoreError};
use mandate_token::jwk::{JwkError, PublicJwk};
use mandate_token::secret::{self, Secret, SecretError};
use serde_json::{Value, json};

use crate::actor::Actor;
use crate::acts::{self, ActError};
use crate::error::ServiceError;
use crate::{Node, Recorded};

/// Why a use case of the agent registry changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No such agent.
    #[error("unknown agent `{0}`")]
    Unknown(AgentId),
    /// The agent has no such credential.
    #[error("unknown credential `{0}`")]
    UnknownCredential(CredentialId),
    /// The agent is decommissioned: its record is final (`INVARIANT (lifecycle)`).
    #[error("agent `{0}` is decommissioned; it cannot change")]
    Decommissioned(AgentId),
    /// The agent is decommissioned: it gets no credential.
    #[error("agent `{0}` is decommissioned; it cannot get credentials")]
    DecommissionedNoCredentials(AgentId),
    /// Another agent has a usable credential the same client certificate would match
    /// (the same `tls_client_auth` name, or the same self-signed certificate): one
    /// certificate must name one agent.
    #[error("agent `{0}` already has a credential this certificate would match")]
    CertificateTaken(AgentId),
    /// The credential is revoked, expired or already replaced.
    #[error("credential `{0}` is no longer active")]
    CredentialNotActive(CredentialId),
    /// A field breaks a rule (`why` says which, for the caller).
    #[error("invalid `{field}`: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// A field the request needs is missing.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// The public key is not one Mandate accepts.
    #[error(transparent)]
    Jwk(#[from] JwkError),
    /// The random source failed (an id or a secret could not be made).
    #[error(transparent)]
    Random(#[from] RandomError),
    /// A client secret could not be hashed.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The lifecycle act was refused.
    #[error(transparent)]
    Act(#[from] ActError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node failed (the change unrecorded, a task lost).
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// An agent to register: what its admin says of it. It starts active.
#[derive(Debug, Clone)]
pub struct NewAgent {
    /// Its name.
    pub name: AgentName,
    /// Who answers for it.
    pub owner: Owner,
    /// What it is for.
    pub purpose: Purpose,
    /// Its labels.
    pub labels: Labels,
    /// What it may ever reach.
    pub boundary: Boundary,
}

/// Registers an agent, active from now, as `actor` (`agent.registered`).
pub async fn register(node: &Arc<Node>, actor: &Actor, new: NewAgent) -> Result<Agent, AgentError> {
    register_as(node, actor, new, None).await
}

/// A registration that starts the agent suspended, as a draft for a human to complete
/// (discovery's `register`, discovery.rs): `reason` is its status reason, and
/// `discovered` what was found, added to the `agent.registered` event's details (with
/// `"status": "suspended"`).
#[derive(Debug, Clone)]
pub struct Draft {
    /// The status reason.
    pub reason: String,
    /// The `discovered` member of the event's details.
    pub discovered: Value,
}

/// Registers an agent as `actor` (`agent.registered`): active, or suspended as a
/// [`Draft`]. The one registration path: the API's and discovery's.
pub async fn register_as(
    node: &Arc<Node>,
    actor: &Actor,
    new: NewAgent,
    draft: Option<Draft>,
) -> Result<Agent, AgentError> {
    let agent = node
        .perform("agent.registered", actor, move |s| {
            let now = s.clock.now();
            let (status, status_reason, discovered) = match draft {
                None => (AgentStatus::Active, None, None),
                Some(d) => (AgentStatus::Suspended, Some(d.reason), Some(d.discovered)),
            };
            let agent = Agent {
                id: AgentId::generate(s.clock.as_ref(), s.random.as_ref())?,
                name: new.name,
                owner: new.owner,
                purpose: new.purpose,
                labels: new.labels,
                boundary: new.boundary,
                status,
                status_reason,
                created_at: now,
                updated_at: now,
            };
            s.store().insert_agent(&agent)?;
            let mut details =
                json!({"name": agent.name, "owner": agent.owner, "boundary": agent.boundary});
            if let (Some(d), Value::Object(m)) = (discovered, &mut details) {
                m.insert("status".into(), json!(agent.status));
                m.insert("labels".into(), json!(agent.labels));
                m.insert("discovered".into(), d);
            }
            let rec = Recorded::agent(&agent.id, details);
            Ok::<_, AgentError>((agent, rec))
        })
        .await?;
    tracing::info!(by = %actor, agent = %agent.id, status = %agent.status, "agent registered");
    Ok(agent)
}

/// One page of agents.
#[derive(Debug)]
pub struct AgentPage {
    /// The agents, in id (creation) order.
    pub items: Vec<Agent>,
    /// Where the next page starts, when this one is full (the last id shown).
    pub next_cursor: Option<AgentId>,
}

/// The agents matching `filter` after `cursor`, at most `limit` (from the store, not the
/// snapshot: an admin read that works while decisions are held).
pub async fn list(
    node: &Arc<Node>,
    filter: AgentFilter,
    cursor: Option<AgentId>,
    limit: u32,
) -> Result<AgentPage, AgentError> {
    let items = node
        .blocking(move |s| s.store().list_agents(&filter, cursor.as_ref(), limit))
        .await
        .map_err(ServiceError::from)??;
    // A full page may have more behind it; the cursor is the last id shown.
    let next_cursor = (items.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| items.last().map(|a| a.id.clone()))
        .flatten();
    Ok(AgentPage { items, next_cursor })
}

/// The agent `id`.
pub async fn show(node: &Arc<Node>, id: AgentId) -> Result<Agent, AgentError> {
    let found = {
        let id = id.clone();
        node.blocking(move |s| s.store().get_agent(&id))
            .await
            .map_err(ServiceError::from)??
    };
    found.ok_or(AgentError::Unknown(id))
}

/// The fields of an agent to replace (`None`: keep).
#[derive(Debug, Clone, Default)]
pub struct AgentChanges {
    /// A new name.
    pub name: Option<AgentName>,
    /// A new owner.
    pub owner: Option<Owner>,
    /// A new purpose.
    pub purpose: Option<Purpose>,
    /// New labels (all of them).
    pub labels: Option<Labels>,
    /// A new boundary.
    pub boundary: Option<Boundary>,
}

/// Replaces the fields given of agent `id`, as `actor` (`agent.updated`). A
/// decommissioned agent is frozen ([`AgentError::Decommissioned`]).
pub async fn update(
    node: &Arc<Node>,
    actor: &Actor,
    id: AgentId,
    changes: AgentChanges,
) -> Result<Agent, AgentError> {
    let agent = node
        .perform("agent.updated", actor, move |s| {
            let agent = s
                .store()
                .modify_agent(&id, s.clock.now(), |a| {
                    if a.status == AgentStatus::Decommissioned {
                        return Err(AgentError::Decommissioned(a.id.clone()));
                    }
                    if let Some(v) = changes.name {
                        a.name = v;
                    }
                    if let Some(v) = changes.owner {
                        a.owner = v;
                    }
                    if let Some(v) = changes.purpose {
                        a.purpose = v;
                    }
                    if let Some(v) = changes.labels {
                        a.labels = v;
                    }
                    if let Some(v) = changes.boundary {
                        a.boundary = v;
                    }
                    Ok(())
                })
                .map_err(|e| match e {
                    AgentError::Store(StoreError::NotFound(_)) => AgentError::Unknown(id.clone()),
                    other => other,
                })?;
            let details = json!({"name": agent.name, "owner": agent.owner, "purpose": agent.purpose,
            "labels": agent.labels, "boundary": agent.boundary});
            let rec = Recorded::agent(&agent.id, details);
            Ok::<_, AgentError>((agent, rec))
        })
        .await?;
    tracing::info!(by = %actor, agent = %agent.id, "agent updated");
    Ok(agent)
}

/// The longest status reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// A change of an agent's status, with what comes with it.
#[derive(Debug, Clone, Default)]
pub struct StatusChange {
    /// Why (at most [`MAX_REASON_CHARS`] printable characters).
    pub reason: Option<String>,
    /// On suspend only: also kill every token issued so far, so a later resume does not
    /// bring them back.
    pub revoke_tokens: bool,
}

/// The audit event kind of a change to status `to`.
fn status_event(to: AgentStatus) -> &'static str {
    match to {
        AgentStatus::Active => "agent.resumed",
        AgentStatus::Suspended => "agent.suspended",
        AgentStatus::Decommissioned => "agent.decommissioned",
    }
}

/// Moves agent `id` to status `to` (resume: active; suspend; decommission: final, and it
/// revokes every credential), as `actor` (`agent.resumed`, `agent.suspended`,
/// `agent.decommissioned`). A suspension takes effect on the very next request
/// (`INVARIANT (one write path)`). Resuming also lifts the detector's own suspension.
pub async fn change_status(
    node: &Arc<Node>,
    actor: &Actor,
    id: AgentId,
    to: AgentStatus,
    change: StatusChange,
) -> Result<Agent, AgentError> {
    let StatusChange {
        reason,
        revoke_tokens,
    } = change;
    if revoke_tokens && to != AgentStatus::Suspended {
        return Err(AgentError::Invalid {
            field: "revoke_tokens",
            why: "revoke_tokens is only for suspend".into(),
        });
    }
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS || r.chars().any(char::is_control))
    {
        return Err(AgentError::Invalid {
            field: "reason",
            why: format!("reason must be at most {MAX_REASON_CHARS} printable characters"),
        });
    }
    let agent = node
        .perform(status_event(to), actor, move |s| {
            let agent =
                acts::set_status(&s.store(), &id, to, reason, revoke_tokens, s.clock.now())?;
            // Resuming is the human's explicit word: the detector lifts its own suspension.
            if to == AgentStatus::Active
                && let Some(d) = s.detector()
            {
                d.resume(agent.id.as_str());
            }
            let details = json!({"reason": agent.status_reason, "revoke_tokens": revoke_tokens});
            let rec = Recorded::agent(&agent.id, details);
            Ok::<_, AgentError>((agent, rec))
        })
        .await?;
    tracing::info!(by = %actor, agent = %agent.id, status = %to, revoke_tokens, "agent status changed");
    Ok(agent)
}

/// A credential as shown: its record and its state (`active`, `expired`, ...) at the
/// time it was read.
#[derive(Debug, Clone)]
pub struct CredentialView {
    /// The record (never a secret).
    pub credential: Credential,
    /// Its state then ([`Credential::state_at`]).
    pub state: &'static str,
}

/// A credential just made: its view and, for a client secret, the clear text, which is
/// shown this once and stored only as a hash.
pub struct IssuedCredential {
    /// The new credential.
    pub view: CredentialView,
    /// The client secret, for `client_secret` credentials.
    pub client_secret: Option<Secret>,
}

impl std::fmt::Debug for IssuedCredential {
    /// Never the secret: only whether there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCredential")
            .field("view", &self.view)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .finish()
    }
}

/// A credential to add.
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// A client secret or a public key.
    pub kind: CredentialKind,
    /// The public JWK, for (and only for) a public key.
    pub jwk: Option<Value>,
    /// For (and only for) `tls_client_auth`: the RFC 8705 name metadata given
    /// (`tls_client_auth_san_dns`, `_uri`, `_ip` and their values), exactly one.
    pub names: Vec<(&'static str, String)>,
    /// When it stops working, if ever (in the future).
    pub expires_at: Option<Timestamp>,
}

/// The longest rotation overlap: 30 days.
pub const MAX_OVERLAP_SECS: u32 = 30 * 86_400;

/// The rotation overlap when none is asked for: one hour.
pub const DEFAULT_OVERLAP_SECS: u32 = 3600;

/// Builds a credential (and, for a secret, the clear text and its hash) — not stored yet.
fn make_credential(
    s: &Node,
    agent_id: &AgentId,
    kind: CredentialKind,
    jwk: Option<Value>,
    names: &[(&'static str, String)],
    expires_at: Option<Timestamp>,
) -> Result<(Credential, Option<(Secret, String)>), AgentError> {
    let id = CredentialId::generate(s.clock.as_ref(), s.random.as_ref())?;
    let now = s.clock.now();
    if expires_at.is_some_and(|e| e <= now) {
        return Err(AgentError::Invalid {
            field: "expires_at",
            why: "expires_at must be in the future".into(),
        });
    }
    let mut c = Credential {
        id,
        agent_id: agent_id.clone(),
        kind,
        public_jwk: None,
        key_id: None,
        cert_name: None,
        created_at: now,
        expires_at,
        revoked_at: None,
        replaced_by: None,
    };
    if kind != CredentialKind::TlsClientAuth
        && let Some((field, _)) = names.first()
    {
        return Err(AgentError::Invalid {
            field,
            why: format!("{field} is only for type tls_client_auth"),
        });
    }
    if kind == CredentialKind::TlsClientAuth && jwk.is_some() {
        return Err(AgentError::Invalid {
            field: "jwk",
            why: "jwk is only for type public_key".into(),
        });
    }
    match kind {
        CredentialKind::TlsClientAuth => {
            let name = crate::client_certs::cert_name(names)
                .map_err(|(field, why)| AgentError::Invalid { field, why })?;
            c.cert_name = Some(name);
            certificate_free(s, &c)?;
            Ok((c, None))
        }
        CredentialKind::ClientSecret => {
            if jwk.is_some() {
                return Err(AgentError::Invalid {
                    field: "jwk",
                    why: "jwk is only for type public_key".into(),
                });
            }
            let secret = secret::new_client_secret(s.random.as_ref())?;
            let hash = secret::hash_client_secret(&secret, s.random.as_ref())?;
            Ok((c, Some((secret, hash))))
        }
        CredentialKind::PublicKey => {
            let jwk = jwk.ok_or(AgentError::Missing("jwk"))?;
            let key = PublicJwk::parse(&jwk)?;
            c.key_id = Some(key.kid().unwrap_or(key.thumbprint()).to_owned());
            let mut stored = key.to_value();
            // A self-signed client certificate (RFC 8705 §2.2), kept beside the key.
            if let Some(x5c) = crate::client_certs::registered_x5c(&jwk, &key)
                .map_err(|why| AgentError::Invalid { field: "jwk", why })?
                && let Value::Object(m) = &mut stored
            {
                m.insert("x5c".into(), x5c);
            }
            c.public_jwk = Some(stored);
            certificate_free(s, &c)?;
            Ok((c, None))
        }
    }
}

/// No other agent has a usable credential that a client certificate matching `c`
/// would also match (`client_certs::same_certificate`).
///
/// INVARIANT (one certificate, one agent): a `tls_client_auth` name or a self-signed
/// certificate is registered on one agent at a time (until its credential is revoked or
/// expires); otherwise its holder could authenticate as whichever `client_id` it sends.
/// Checked when the credential is made; a registration racing another on a second node
/// of a cluster is not excluded (admin-only, and both are on the record).
fn certificate_free(s: &Node, c: &Credential) -> Result<(), AgentError> {
    if !crate::client_certs::is_certificate(c) {
        return Ok(());
    }
    let now = s.clock.now();
    let mut taken = None;
    s.store().for_each_credential(&mut |other| {
        if taken.is_none()
            && other.agent_id != c.agent_id
            && other.usable_at(now)
            && crate::client_certs::same_certificate(&other, c)
        {
            taken = Some(other.agent_id.clone());
        }
    })?;
    match taken {
        Some(a) => Err(AgentError::CertificateTaken(a)),
        None => Ok(()),
    }
}

/// Agent `id` exists and may get credentials (it is not decommissioned).
fn writable_agent(s: &Node, id: &AgentId) -> Result<(), AgentError> {
    match s.store().get_agent(id)? {
        None => Err(AgentError::Unknown(id.clone())),
        Some(a) if a.status == AgentStatus::Decommissioned => {
            Err(AgentError::DecommissionedNoCredentials(a.id))
        }
        Some(_) => Ok(()),
    }
}

/// Adds a credential to agent `id` as `actor` (`credential.added`): a client secret
/// (returned this once), a public JWK (with, optionally, its self-signed certificate), or
/// the name a CA-issued client certificate carries (`tls_client_auth`).
pub async fn add_credential(
    node: &Arc<Node>,
    actor: &Actor,
    id: AgentId,
    new: NewCredential,
) -> Result<IssuedCredential, AgentError> {
    let by = actor.clone();
    node.perform("credential.added", actor, move |s| {
        writable_agent(s, &id)?;
        let kind = new.kind;
        let (c, secret) = make_credential(s, &id, kind, new.jwk, &new.names, new.expires_at)?;
        s.store()
            .insert_credential(&c, secret.as_ref().map(|(_, h)| h.as_str()))?;
        tracing::info!(%by, agent = %id, credential = %c.id, kind = kind.as_str(), "credential added");
        let mut details = json!({"credential": c.id, "type": kind.as_str(), "key_id": c.key_id});
        if let (Some(n), Value::Object(m)) = (&c.cert_name, &mut details) {
            m.insert("cert_name".into(), json!(n.stored()));
        }
        let state = c.state_at(s.clock.now());
        let issued = IssuedCredential {
            view: CredentialView {
                credential: c,
                state,
            },
            client_secret: secret.map(|(s, _)| s),
        };
        Ok((issued, Recorded::agent(&id, details)))
    })
    .await
}

/// Agent `id`'s credentials, metadata only: a secret is never shown again.
pub async fn list_credentials(
    node: &Arc<Node>,
    id: AgentId,
) -> Result<Vec<CredentialView>, AgentError> {
    node.blocking(move |s| -> Result<Vec<CredentialView>, AgentError> {
        if s.store().get_agent(&id)?.is_none() {
            return Err(AgentError::Unknown(id));
        }
        let now = s.clock.now();
        Ok(s.store()
            .credentials(&id)?
            .into_iter()
            .map(|c| CredentialView {
                state: c.credential.state_at(now),
                credential: c.credential,
            })
            .collect())
    })
    .await
    .map_err(ServiceError::from)?
}

/// A rotation to make.
#[derive(Debug, Clone, Default)]
pub struct Rotation {
    /// How long the old credential keeps working, in seconds (default
    /// [`DEFAULT_OVERLAP_SECS`], at most [`MAX_OVERLAP_SECS`]).
    pub overlap_secs: Option<u32>,
    /// The new public key, for public-key credentials.
    pub jwk: Option<Value>,
    /// The new name, for `tls_client_auth` credentials (as [`NewCredential::names`]).
    pub names: Vec<(&'static str, String)>,
}

/// A rotation made: the new credential, and when the old one stops working.
#[derive(Debug)]
pub struct Rotated {
    /// The new credential (with its secret, for a client secret).
    pub issued: IssuedCredential,
    /// The credential it replaces.
    pub previous: CredentialId,
    /// When the replaced credential stops working.
    pub previous_expires_at: Timestamp,
}

/// Replaces credential `cid` of agent `id` by a new one of the same kind, as `actor`
/// (`credential.rotated`): the old one works until now + the overlap (never longer than
/// it would have), then never again.
pub async fn rotate_credential(
    node: &Arc<Node>,
    actor: &Actor,
    id: AgentId,
    cid: CredentialId,
    rotation: Rotation,
) -> Result<Rotated, AgentError> {
    let overlap = rotation.overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
    if overlap > MAX_OVERLAP_SECS {
        return Err(AgentError::Invalid {
            field: "overlap_secs",
            why: format!("overlap_secs must be at most {MAX_OVERLAP_SECS}"),
        });
    }
    let by = actor.clone();
    node.perform("credential.rotated", actor, move |s| {
        writable_agent(s, &id)?;
        let old = s
            .store()
            .credentials(&id)?
            .into_iter()
            .find(|c| c.credential.id == cid)
            .ok_or_else(|| AgentError::UnknownCredential(cid.clone()))?
            .credential;
        let now = s.clock.now();
        // Checked again inside the store's transaction; this only saves hashing a secret
        // that would be thrown away.
        if !old.usable_at(now) || old.replaced_by.is_some() {
            return Err(AgentError::CredentialNotActive(cid));
        }
        let (new, secret) = make_credential(s, &id, old.kind, rotation.jwk, &rotation.names, None)?;
        let until = now.plus_secs(i64::from(overlap));
        s.store().rotate_credential(
            &cid,
            &new,
            secret.as_ref().map(|(_, h)| h.as_str()),
            until,
            now,
        )?;
        tracing::info!(%by, agent = %id, old = %cid, new = %new.id, overlap, "credential rotated");
        let previous_expires_at = old.expires_at.map_or(until, |e| e.min(until));
        let previous = json!({"id": cid, "expires_at": previous_expires_at});
        let details = json!({"credential": new.id, "previous": previous});
        let rotated = Rotated {
            issued: IssuedCredential {
                view: CredentialView {
                    state: new.state_at(now),
                    credential: new,
                },
                client_secret: secret.map(|(s, _)| s),
            },
            previous: cid,
            previous_expires_at,
        };
        Ok((rotated, Recorded::agent(&id, details)))
    })
    .await
}

/// Revokes credential `cid` of agent `id` now, as `actor` (`credential.revoked`); every
/// token the agent was issued so far dies with it (see the store).
pub async fn revoke_credential(
    node: &Arc<Node>,
    actor: &Actor,
    id: AgentId,
    cid: CredentialId,
) -> Result<(), AgentError> {
    let by = actor.clone();
    node.perform("credential.revoked", actor, move |s| {
        let now = s.clock.now();
        // Also kills every token the agent was issued so far (see the store).
        s.store().revoke_credential(&id, &cid, now)?;
        tracing::info!(%by, agent = %id, credential = %cid, "credential revoked; earlier tokens revoked");
        Ok::<_, AgentError>(((), Recorded::agent(&id, json!({"credential": cid}))))
    })
    .await
}
