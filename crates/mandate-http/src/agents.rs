//! The agent registry through the admin API: register, list, show, update, lifecycle
//! (suspend, resume, decommission) and credentials (add, list, rotate, revoke).

use mandate_store::prelude::*;
use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_core::agent::{
    Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose, check_label_key,
};
use mandate_core::credential::{Credential, CredentialKind};
use mandate_core::id::{AgentId, CredentialId};
use mandate_core::time::Timestamp;
use mandate_store::AgentFilter;
use mandate_token::jwk::PublicJwk;
use mandate_token::secret;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Node;
use crate::act::Acts as _;
use crate::acts;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, ApiPath, OptionalJson};
use mandate_service::Recorded;

pub(crate) fn agent_id(s: &str) -> Result<AgentId, ApiError> {
    AgentId::parse(s)
        .map_err(|_| ApiError::not_found(format!("unknown agent `{}`", s.escape_debug())))
}

fn credential_id(s: &str) -> Result<CredentialId, ApiError> {
    CredentialId::parse(s)
        .map_err(|_| ApiError::not_found(format!("unknown credential `{}`", s.escape_debug())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterAgent {
    name: AgentName,
    owner: Owner,
    #[serde(default)]
    purpose: Purpose,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    boundary: Boundary,
}

/// `POST /v1/agents`.
pub(crate) async fn register(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<RegisterAgent>,
) -> Result<Response, ApiError> {
    admin.require_write()?;
    let agent = state
        .act("agent.registered", &admin.actor(), move |s| {
            let now = s.clock.now();
            let agent = Agent {
                id: AgentId::generate(s.clock.as_ref(), s.random.as_ref())
                    .map_err(ApiError::internal)?,
                name: req.name,
                owner: req.owner,
                purpose: req.purpose,
                labels: req.labels,
                boundary: req.boundary,
                status: AgentStatus::Active,
                status_reason: None,
                created_at: now,
                updated_at: now,
            };
            s.store().insert_agent(&agent)?;
            let details =
                json!({"name": agent.name, "owner": agent.owner, "boundary": agent.boundary});
            let rec = Recorded::agent(&agent.id, details);
            Ok((agent, rec))
        })
        .await?;
    tracing::info!(by = %admin.0.id, agent = %agent.id, "agent registered");
    Ok((StatusCode::CREATED, Json(agent)).into_response())
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// `GET /v1/agents?owner=&status=&label=key=value&limit=&cursor=`.
pub(crate) async fn list(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let mut filter = AgentFilter::default();
    let mut limit = DEFAULT_PAGE;
    let mut cursor = None;
    let bad = |m: String| ApiError::bad_request("invalid_query", m);
    let pairs = crate::extract::parse_pairs(query.unwrap_or_default().as_bytes());
    let mut seen = std::collections::HashSet::new();
    for (k, v) in pairs {
        if !seen.insert(k.clone()) {
            return Err(bad(format!("query parameter `{k}` repeated")));
        }
        match k.as_str() {
            "owner" => filter.owner = Some(v),
            "status" => {
                filter.status = Some(
                    AgentStatus::parse(&v)
                        .ok_or_else(|| bad(format!("unknown status `{}`", v.escape_debug())))?,
                );
            }
            "label" => {
                let (lk, lv) = v
                    .split_once('=')
                    .ok_or_else(|| bad("label filter is `key=value`".into()))?;
                check_label_key(lk).map_err(|e| bad(e.to_string()))?;
                filter.label = Some((lk.to_owned(), lv.to_owned()));
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_PAGE).contains(l))
                    .ok_or_else(|| bad(format!("limit must be 1..={MAX_PAGE}")))?;
            }
            "cursor" => cursor = Some(AgentId::parse(&v).map_err(|e| bad(e.to_string()))?),
            other => {
                return Err(bad(format!(
                    "unknown query parameter `{}`",
                    other.escape_debug()
                )));
            }
        }
    }
    let items = crate::blocking(&state, move |s| {
        s.store().list_agents(&filter, cursor.as_ref(), limit)
    })
    .await??;
    // A full page may have more behind it; the cursor is the last id shown.
    let next = (items.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| items.last().map(|a| a.id.to_string()))
        .flatten();
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

/// `GET /v1/agents/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Agent>, ApiError> {
    let id = agent_id(&id)?;
    let agent = crate::blocking(&state, move |s| s.store().get_agent(&id)).await??;
    agent
        .map(Json)
        .ok_or_else(|| ApiError::not_found("unknown agent"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateAgent {
    name: Option<AgentName>,
    owner: Option<Owner>,
    purpose: Option<Purpose>,
    labels: Option<Labels>,
    boundary: Option<Boundary>,
}

/// `PATCH /v1/agents/{id}`: replaces the fields given. A decommissioned agent is frozen.
pub(crate) async fn update(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateAgent>,
) -> Result<Json<Agent>, ApiError> {
    admin.require_write()?;
    let id = agent_id(&id)?;
    let agent = state
        .act("agent.updated", &admin.actor(), move |s| {
            let agent = s.store().modify_agent(&id, s.clock.now(), |a| {
                if a.status == AgentStatus::Decommissioned {
                    return Err(ApiError::conflict(
                        "agent_decommissioned",
                        "a decommissioned agent cannot change",
                    ));
                }
                if let Some(v) = req.name {
                    a.name = v;
                }
                if let Some(v) = req.owner {
                    a.owner = v;
                }
                if let Some(v) = req.purpose {
                    a.purpose = v;
                }
                if let Some(v) = req.labels {
                    a.labels = v;
                }
                if let Some(v) = req.boundary {
                    a.boundary = v;
                }
                Ok(())
            })?;
            let details = json!({"name": agent.name, "owner": agent.owner, "purpose": agent.purpose,
            "labels": agent.labels, "boundary": agent.boundary});
            let rec = Recorded::agent(&agent.id, details);
            Ok((agent, rec))
        })
        .await?;
    tracing::info!(by = %admin.0.id, agent = %agent.id, "agent updated");
    Ok(Json(agent))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusChange {
    reason: Option<String>,
    /// On suspend: also kill every token issued so far, so a later resume does not
    /// bring them back.
    revoke_tokens: Option<bool>,
}

async fn change_status(
    state: Arc<Node>,
    admin: Admin,
    id: String,
    body: Option<StatusChange>,
    to: AgentStatus,
) -> Result<Json<Agent>, ApiError> {
    admin.require_write()?;
    let id = agent_id(&id)?;
    let (reason, revoke_tokens) = body.map_or((None, false), |b| {
        (b.reason, b.revoke_tokens.unwrap_or(false))
    });
    if revoke_tokens && to != AgentStatus::Suspended {
        return Err(ApiError::bad_request(
            "invalid_field",
            "revoke_tokens is only for suspend",
        ));
    }
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 500 || r.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "invalid_field",
            "reason must be at most 500 printable characters",
        ));
    }
    let kind = match to {
        AgentStatus::Active => "agent.resumed",
        AgentStatus::Suspended => "agent.suspended",
        AgentStatus::Decommissioned => "agent.decommissioned",
    };
    let agent = state
        .act(kind, &admin.actor(), move |s| {
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
            Ok((agent, rec))
        })
        .await?;
    tracing::info!(by = %admin.0.id, agent = %agent.id, status = %to, revoke_tokens, "agent status changed");
    Ok(Json(agent))
}

/// `POST /v1/agents/{id}/suspend`: takes effect on the very next request.
pub(crate) async fn suspend(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<StatusChange>,
) -> Result<Json<Agent>, ApiError> {
    change_status(state, admin, id, body, AgentStatus::Suspended).await
}

/// `POST /v1/agents/{id}/resume`.
pub(crate) async fn resume(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<StatusChange>,
) -> Result<Json<Agent>, ApiError> {
    change_status(state, admin, id, body, AgentStatus::Active).await
}

/// `POST /v1/agents/{id}/decommission`: final; revokes every credential.
pub(crate) async fn decommission(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<StatusChange>,
) -> Result<Json<Agent>, ApiError> {
    change_status(state, admin, id, body, AgentStatus::Decommissioned).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCredential {
    #[serde(rename = "type")]
    kind: CredentialKind,
    jwk: Option<Value>,
    expires_at: Option<Timestamp>,
}

/// The longest rotation overlap: 30 days.
const MAX_OVERLAP_SECS: u32 = 30 * 86_400;

/// Builds a credential (and, for a secret, the clear text and its hash) — not stored yet.
fn make_credential(
    s: &Node,
    agent_id: &AgentId,
    kind: CredentialKind,
    jwk: Option<Value>,
    expires_at: Option<Timestamp>,
) -> Result<(Credential, Option<(secret::Secret, String)>), ApiError> {
    let id =
        CredentialId::generate(s.clock.as_ref(), s.random.as_ref()).map_err(ApiError::internal)?;
    let now = s.clock.now();
    if expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "expires_at must be in the future",
        ));
    }
    let mut c = Credential {
        id,
        agent_id: agent_id.clone(),
        kind,
        public_jwk: None,
        key_id: None,
        created_at: now,
        expires_at,
        revoked_at: None,
        replaced_by: None,
    };
    match kind {
        CredentialKind::ClientSecret => {
            if jwk.is_some() {
                return Err(ApiError::bad_request(
                    "invalid_field",
                    "jwk is only for type public_key",
                ));
            }
            let secret =
                secret::new_client_secret(s.random.as_ref()).map_err(ApiError::internal)?;
            let hash = secret::hash_client_secret(&secret, s.random.as_ref())
                .map_err(ApiError::internal)?;
            Ok((c, Some((secret, hash))))
        }
        CredentialKind::PublicKey => {
            let jwk =
                jwk.ok_or_else(|| ApiError::bad_request("missing_field", "missing field `jwk`"))?;
            let key = PublicJwk::parse(&jwk)
                .map_err(|e| ApiError::bad_request("invalid_jwk", e.to_string()))?;
            c.key_id = Some(key.kid().unwrap_or(key.thumbprint()).to_owned());
            c.public_jwk = Some(key.to_value());
            Ok((c, None))
        }
    }
}

/// Sets `k` on a JSON object (no-op on anything else).
fn set(v: &mut Value, k: &str, x: Value) {
    if let Value::Object(m) = v {
        m.insert(k.to_owned(), x);
    }
}

fn credential_response(c: &Credential, secret: Option<&secret::Secret>, now: Timestamp) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
    set(&mut v, "state", json!(c.state_at(now)));
    let mut out = json!({"credential": v});
    if let Some(s) = secret {
        // The only place a client secret is ever shown.
        set(&mut out, "client_secret", json!(s.expose()));
    }
    out
}

fn writable_agent(s: &Node, id: &AgentId) -> Result<(), ApiError> {
    match s.store().get_agent(id)? {
        None => Err(ApiError::not_found("unknown agent")),
        Some(a) if a.status == AgentStatus::Decommissioned => Err(ApiError::conflict(
            "agent_decommissioned",
            "a decommissioned agent cannot get credentials",
        )),
        Some(_) => Ok(()),
    }
}

/// `POST /v1/agents/{id}/credentials`: a client secret (shown once) or a public JWK.
pub(crate) async fn add_credential(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<NewCredential>,
) -> Result<Response, ApiError> {
    admin.require_write()?;
    let id = agent_id(&id)?;
    let kind = req.kind;
    let by = admin.0.id.clone();
    let body = state.act("credential.added", &admin.actor(), move |s| {
        writable_agent(s, &id)?;
        let (c, secret) = make_credential(s, &id, kind, req.jwk, req.expires_at)?;
        s.store()
            .insert_credential(&c, secret.as_ref().map(|(_, h)| h.as_str()))?;
        tracing::info!(%by, agent = %id, credential = %c.id, kind = kind.as_str(), "credential added");
        let details = json!({"credential": c.id, "type": kind.as_str(), "key_id": c.key_id});
        Ok((
            credential_response(&c, secret.as_ref().map(|(s, _)| s), s.clock.now()),
            Recorded::agent(&id, details),
        ))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /v1/agents/{id}/credentials`: metadata only; secrets are never shown again.
pub(crate) async fn list_credentials(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id = agent_id(&id)?;
    let items = crate::blocking(&state, move |s| -> Result<Vec<Value>, ApiError> {
        if s.store().get_agent(&id)?.is_none() {
            return Err(ApiError::not_found("unknown agent"));
        }
        let now = s.clock.now();
        Ok(s.store()
            .credentials(&id)?
            .into_iter()
            .map(|c| {
                let mut v = serde_json::to_value(&c.credential).unwrap_or(Value::Null);
                set(&mut v, "state", json!(c.credential.state_at(now)));
                v
            })
            .collect())
    })
    .await??;
    Ok(Json(json!({"items": items})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rotate {
    /// How long the old credential keeps working, in seconds (default one hour).
    overlap_secs: Option<u32>,
    /// The new public key, for public-key credentials.
    jwk: Option<Value>,
}

/// `POST /v1/agents/{id}/credentials/{cid}/rotate`: a new credential of the same kind;
/// the old one works until now + `overlap_secs`, then never again.
pub(crate) async fn rotate_credential(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath((id, cid)): ApiPath<(String, String)>,
    OptionalJson(req): OptionalJson<Rotate>,
) -> Result<Response, ApiError> {
    admin.require_write()?;
    let id = agent_id(&id)?;
    let cid = credential_id(&cid)?;
    let req = req.unwrap_or(Rotate {
        overlap_secs: None,
        jwk: None,
    });
    let overlap = req.overlap_secs.unwrap_or(3600);
    if overlap > MAX_OVERLAP_SECS {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("overlap_secs must be at most {MAX_OVERLAP_SECS}"),
        ));
    }
    let by = admin.0.id.clone();
    let body = state.act("credential.rotated", &admin.actor(), move |s| {
        writable_agent(s, &id)?;
        let old = s
            .store()
            .credentials(&id)?
            .into_iter()
            .find(|c| c.credential.id == cid)
            .ok_or_else(|| ApiError::not_found("unknown credential"))?
            .credential;
        let now = s.clock.now();
        // Checked again inside the store's transaction; this only saves hashing a secret
        // that would be thrown away.
        if !old.usable_at(now) || old.replaced_by.is_some() {
            return Err(ApiError::conflict(
                "conflict",
                format!("credential `{cid}` is no longer active"),
            ));
        }
        let (new, secret) = make_credential(s, &id, old.kind, req.jwk, None)?;
        let until = now.plus_secs(i64::from(overlap));
        s.store().rotate_credential(
            &cid,
            &new,
            secret.as_ref().map(|(_, h)| h.as_str()),
            until,
            now,
        )?;
        tracing::info!(%by, agent = %id, old = %cid, new = %new.id, overlap, "credential rotated");
        let mut out = credential_response(&new, secret.as_ref().map(|(s, _)| s), now);
        let previous = json!({"id": cid, "expires_at": old.expires_at.map_or(until, |e| e.min(until))});
        set(&mut out, "previous", previous.clone());
        let details = json!({"credential": new.id, "previous": previous});
        Ok((out, Recorded::agent(&id, details)))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /v1/agents/{id}/credentials/{cid}`: stops working now.
pub(crate) async fn revoke_credential(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath((id, cid)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    admin.require_write()?;
    let id = agent_id(&id)?;
    let cid = credential_id(&cid)?;
    let by = admin.0.id.clone();
    state
        .act("credential.revoked", &admin.actor(), move |s| {
            let now = s.clock.now();
            // Also kills every token the agent was issued so far (see the store).
            s.store().revoke_credential(&id, &cid, now)?;
            tracing::info!(%by, agent = %id, credential = %cid, "credential revoked; earlier tokens revoked");
            Ok(((), Recorded::agent(&id, json!({"credential": cid}))))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
