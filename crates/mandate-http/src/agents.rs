//! The agent registry through the admin API: register, list, show, update, lifecycle
//! (suspend, resume, decommission) and credentials (add, list, rotate, revoke). Each
//! handler parses the request, calls one use case of `mandate_service::agents` and
//! renders its answer; [`AgentError`] becomes the API's answer here.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_core::agent::{
    Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose, check_label_key,
};
use mandate_core::credential::CredentialKind;
use mandate_core::id::{AgentId, CredentialId};
use mandate_core::time::Timestamp;
use mandate_service::agents::{
    self as service, AgentChanges, AgentError, CredentialView, IssuedCredential, NewAgent,
};
use mandate_store::AgentFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Node;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, ApiPath, OptionalJson};

impl From<AgentError> for ApiError {
    /// The registry's refusals as the API has always answered them.
    ///
    /// The constructors are spelled `ApiError::…`: routes_test reads the codes answered
    /// from the sources.
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Unknown(_) => ApiError::not_found("unknown agent"),
            AgentError::UnknownCredential(_) => ApiError::not_found("unknown credential"),
            AgentError::Decommissioned(_) => ApiError::conflict(
                "agent_decommissioned",
                "a decommissioned agent cannot change",
            ),
            AgentError::DecommissionedNoCredentials(_) => ApiError::conflict(
                "agent_decommissioned",
                "a decommissioned agent cannot get credentials",
            ),
            AgentError::CredentialNotActive(cid) => ApiError::conflict(
                "conflict",
                format!("credential `{cid}` is no longer active"),
            ),
            AgentError::Invalid { why, .. } => ApiError::bad_request("invalid_field", why),
            AgentError::Missing(field) => {
                ApiError::bad_request("missing_field", format!("missing field `{field}`"))
            }
            AgentError::Jwk(e) => ApiError::bad_request("invalid_jwk", e.to_string()),
            AgentError::Random(e) => ApiError::internal(e),
            AgentError::Secret(e) => ApiError::internal(e),
            AgentError::Act(e) => e.into(),
            AgentError::Store(e) => e.into(),
            AgentError::Service(e) => e.into(),
        }
    }
}

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
    let new = NewAgent {
        name: req.name,
        owner: req.owner,
        purpose: req.purpose,
        labels: req.labels,
        boundary: req.boundary,
    };
    let agent = service::register(&state, &admin.actor(), new).await?;
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
    let page = service::list(&state, filter, cursor, limit).await?;
    let next = page.next_cursor.map(|id| id.to_string());
    Ok(Json(json!({"items": page.items, "next_cursor": next})))
}

/// `GET /v1/agents/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Agent>, ApiError> {
    let id = agent_id(&id)?;
    Ok(Json(service::show(&state, id).await?))
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
    let changes = AgentChanges {
        name: req.name,
        owner: req.owner,
        purpose: req.purpose,
        labels: req.labels,
        boundary: req.boundary,
    };
    Ok(Json(
        service::update(&state, &admin.actor(), id, changes).await?,
    ))
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
    let change = body.map_or_else(service::StatusChange::default, |b| service::StatusChange {
        reason: b.reason,
        revoke_tokens: b.revoke_tokens.unwrap_or(false),
    });
    let agent = service::change_status(&state, &admin.actor(), id, to, change).await?;
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

/// Sets `k` on a JSON object (no-op on anything else).
fn set(v: &mut Value, k: &str, x: Value) {
    if let Value::Object(m) = v {
        m.insert(k.to_owned(), x);
    }
}

/// A credential as the API shows it: its record with its `state`.
fn credential_json(c: &CredentialView) -> Value {
    let mut v = serde_json::to_value(&c.credential).unwrap_or(Value::Null);
    set(&mut v, "state", json!(c.state));
    v
}

fn credential_response(c: &IssuedCredential) -> Value {
    let mut out = json!({"credential": credential_json(&c.view)});
    if let Some(s) = &c.client_secret {
        // The only place a client secret is ever shown.
        set(&mut out, "client_secret", json!(s.expose()));
    }
    out
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
    let new = service::NewCredential {
        kind: req.kind,
        jwk: req.jwk,
        expires_at: req.expires_at,
    };
    let issued = service::add_credential(&state, &admin.actor(), id, new).await?;
    Ok((StatusCode::CREATED, Json(credential_response(&issued))).into_response())
}

/// `GET /v1/agents/{id}/credentials`: metadata only; secrets are never shown again.
pub(crate) async fn list_credentials(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id = agent_id(&id)?;
    let items: Vec<Value> = service::list_credentials(&state, id)
        .await?
        .iter()
        .map(credential_json)
        .collect();
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
    let rotation = req.map_or_else(service::Rotation::default, |r| service::Rotation {
        overlap_secs: r.overlap_secs,
        jwk: r.jwk,
    });
    let rotated = service::rotate_credential(&state, &admin.actor(), id, cid, rotation).await?;
    let mut out = credential_response(&rotated.issued);
    let previous = json!({"id": rotated.previous, "expires_at": rotated.previous_expires_at});
    set(&mut out, "previous", previous);
    Ok((StatusCode::CREATED, Json(out)).into_response())
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
    service::revoke_credential(&state, &admin.actor(), id, cid).await?;
    Ok(StatusCode::NO_CONTENT)
}
