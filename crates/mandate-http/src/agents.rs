//! The agent registry through the admin API: register, list, show, update, lifecycle
//! (suspend, resume, decommission) and credentials (add, list, rotate, revoke). Each
//! handler parses the request, calls one use case of `mandate_service::agents` and
//! renders its answer; [`AgentError`] becomes the API's answer here.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_api as api;
use mandate_core::agent::{
    AgentName, AgentStatus, Boundary, Labels, Owner, Purpose, check_label_key,
};
use mandate_core::credential::CredentialKind;
use mandate_core::id::{AgentId, CredentialId};
use mandate_core::time::Timestamp;
use mandate_service::agents::{
    self as service, AgentChanges, AgentError, CredentialView, IssuedCredential, NewAgent,
};
use mandate_store::AgentFilter;
use serde::Deserialize;
use serde_json::Value;

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
            AgentError::CertificateTaken(other) => ApiError::conflict(
                "certificate_taken",
                format!(
                    "agent `{other}` has a credential this client certificate would match \
                     (one certificate names one agent); revoke that one first"
                ),
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

/// Read here, not as `mandate_api::RegisterAgent`: the validated newtypes refuse a bad
/// name, owner, purpose, label or boundary while the body is parsed, with serde's
/// message and its position (`… at line 1 column 12`), which a check after parsing
/// cannot repeat.
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
    Ok((StatusCode::CREATED, Json(api::Agent::from(&agent))).into_response())
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// `GET /v1/agents?owner=&status=&label=key=value&limit=&cursor=`.
pub(crate) async fn list(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(query): RawQuery,
) -> Result<Json<api::AgentPage>, ApiError> {
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
    Ok(Json(api::AgentPage {
        items: page.items.iter().map(api::Agent::from).collect(),
        next_cursor: page.next_cursor.map(|id| id.to_string()),
    }))
}

/// `GET /v1/agents/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<api::Agent>, ApiError> {
    let id = agent_id(&id)?;
    Ok(Json(api::Agent::from(&service::show(&state, id).await?)))
}

/// Read here, not as `mandate_api::UpdateAgent`, for the reason [`RegisterAgent`] is.
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
) -> Result<Json<api::Agent>, ApiError> {
    admin.require_write()?;
    let id = agent_id(&id)?;
    let changes = AgentChanges {
        name: req.name,
        owner: req.owner,
        purpose: req.purpose,
        labels: req.labels,
        boundary: req.boundary,
    };
    let agent = service::update(&state, &admin.actor(), id, changes).await?;
    Ok(Json(api::Agent::from(&agent)))
}

async fn change_status(
    state: Arc<Node>,
    admin: Admin,
    id: String,
    body: Option<api::StatusChange>,
    to: AgentStatus,
) -> Result<Json<api::Agent>, ApiError> {
    admin.require_write()?;
    let id = agent_id(&id)?;
    let change = body.map_or_else(service::StatusChange::default, |b| service::StatusChange {
        reason: b.reason,
        revoke_tokens: b.revoke_tokens.unwrap_or(false),
    });
    let agent = service::change_status(&state, &admin.actor(), id, to, change).await?;
    Ok(Json(api::Agent::from(&agent)))
}

/// `POST /v1/agents/{id}/suspend`: takes effect on the very next request.
pub(crate) async fn suspend(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<api::StatusChange>,
) -> Result<Json<api::Agent>, ApiError> {
    change_status(state, admin, id, body, AgentStatus::Suspended).await
}

/// `POST /v1/agents/{id}/resume`.
pub(crate) async fn resume(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<api::StatusChange>,
) -> Result<Json<api::Agent>, ApiError> {
    change_status(state, admin, id, body, AgentStatus::Active).await
}

/// `POST /v1/agents/{id}/decommission`: final; revokes every credential.
pub(crate) async fn decommission(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<api::StatusChange>,
) -> Result<Json<api::Agent>, ApiError> {
    change_status(state, admin, id, body, AgentStatus::Decommissioned).await
}

/// Read here, not as `mandate_api::NewCredential`: `expires_at` is refused while parsing
/// (serde's message with its position), and `jwk` is any JSON value, judged by the use
/// case (`invalid_jwk`, or `jwk is only for type public_key`), where the wire type's
/// object would refuse a non-object as `invalid_field` first.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCredential {
    #[serde(rename = "type")]
    kind: CredentialKind,
    jwk: Option<Value>,
    tls_client_auth_san_dns: Option<String>,
    tls_client_auth_san_uri: Option<String>,
    tls_client_auth_san_ip: Option<String>,
    expires_at: Option<Timestamp>,
}

/// The RFC 8705 §2.1.2 name metadata of a `tls_client_auth` credential as sent
/// (`tls_client_auth_san_dns`, `_uri`, `_ip`; judged by the use case: exactly one, and
/// only for that type). Fields of the request types themselves, not a flattened struct:
/// serde cannot deny unknown fields around a flattened one.
fn cert_names(given: [Option<String>; 3]) -> Vec<(&'static str, String)> {
    given
        .into_iter()
        .zip(mandate_core::credential::CertName::METADATA)
        .filter_map(|(v, k)| Some((k, v?)))
        .collect()
}

/// A credential as the API shows it: its record with its `state`.
fn credential(c: &CredentialView) -> Result<api::Credential, ApiError> {
    let record = &c.credential;
    let public_jwk = match &record.public_jwk {
        None => None,
        Some(Value::Object(m)) => Some(api::Jwk(m.clone())),
        // INVARIANT (stored jwk): a public key is stored as `PublicJwk::to_value`, an
        // object; anything else is a broken store, not something to show.
        Some(_) => {
            return Err(ApiError::internal(format!(
                "credential `{}`: its stored public_jwk is not a JSON object",
                record.id
            )));
        }
    };
    Ok(api::Credential {
        id: record.id.to_string(),
        agent_id: record.agent_id.to_string(),
        kind: record.kind,
        public_jwk,
        key_id: record.key_id.clone(),
        tls_client_auth_san_dns: cert_name(record, "tls_client_auth_san_dns"),
        tls_client_auth_san_uri: cert_name(record, "tls_client_auth_san_uri"),
        tls_client_auth_san_ip: cert_name(record, "tls_client_auth_san_ip"),
        created_at: record.created_at.to_string(),
        expires_at: record.expires_at.map(|t| t.to_string()),
        revoked_at: record.revoked_at.map(|t| t.to_string()),
        replaced_by: record.replaced_by.as_ref().map(ToString::to_string),
        state: c.state.to_owned(),
    })
}

/// The value of `record`'s name if its RFC 8705 metadata name is `key`.
fn cert_name(record: &mandate_core::credential::Credential, key: &str) -> Option<String> {
    let (k, v) = record.cert_name.as_ref()?.metadata();
    (k == key).then_some(v)
}

/// The new credential and, for a client secret, the secret: the only place a client
/// secret is ever shown.
fn issued(c: &IssuedCredential) -> Result<(api::Credential, Option<String>), ApiError> {
    let secret = c.client_secret.as_ref().map(|s| s.expose().to_owned());
    Ok((credential(&c.view)?, secret))
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
        names: cert_names([
            req.tls_client_auth_san_dns,
            req.tls_client_auth_san_uri,
            req.tls_client_auth_san_ip,
        ]),
        expires_at: req.expires_at,
    };
    let (credential, client_secret) =
        issued(&service::add_credential(&state, &admin.actor(), id, new).await?)?;
    let created = api::CredentialCreated {
        credential,
        client_secret,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `GET /v1/agents/{id}/credentials`: metadata only; secrets are never shown again.
pub(crate) async fn list_credentials(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<api::Items<api::Credential>>, ApiError> {
    let id = agent_id(&id)?;
    let items = service::list_credentials(&state, id)
        .await?
        .iter()
        .map(credential)
        .collect::<Result<_, _>>()?;
    Ok(Json(api::Items { items }))
}

/// Read here, not as `mandate_api::RotateCredential`: `jwk` is any JSON value, judged by
/// the use case, as in [`NewCredential`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rotate {
    /// How long the old credential keeps working, in seconds (default one hour).
    #[serde(default, deserialize_with = "mandate_core::integer::optional")]
    overlap_secs: Option<u32>,
    /// The new public key, for public-key credentials.
    jwk: Option<Value>,
    /// The new name, for `tls_client_auth` credentials (one of the three).
    tls_client_auth_san_dns: Option<String>,
    tls_client_auth_san_uri: Option<String>,
    tls_client_auth_san_ip: Option<String>,
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
        names: cert_names([
            r.tls_client_auth_san_dns,
            r.tls_client_auth_san_uri,
            r.tls_client_auth_san_ip,
        ]),
    });
    let rotated = service::rotate_credential(&state, &admin.actor(), id, cid, rotation).await?;
    let (credential, client_secret) = issued(&rotated.issued)?;
    let out = api::CredentialRotated {
        credential,
        client_secret,
        previous: api::PreviousCredential {
            id: rotated.previous.to_string(),
            expires_at: rotated.previous_expires_at.to_string(),
        },
    };
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

#[cfg(test)]
mod tests {
    use super::Rotate;

    /// Regression (issue 25, schemathesis): `overlap_secs` `2097151.0` (an integer to
    /// RFC 8259 and JSON Schema) was refused with "invalid type: floating point".
    #[test]
    fn an_overlap_written_with_a_fraction_is_read() {
        let r: Rotate = serde_json::from_str(r#"{"overlap_secs": 2097151.0}"#).unwrap();
        assert_eq!(r.overlap_secs, Some(2_097_151));
        let r: Rotate = serde_json::from_str("{}").unwrap();
        assert_eq!(r.overlap_secs, None);
        assert!(serde_json::from_str::<Rotate>(r#"{"overlap_secs": 0.5}"#).is_err());
    }
}
