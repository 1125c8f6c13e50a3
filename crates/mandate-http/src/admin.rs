//! Admin tokens and signing keys through the admin API. Each handler parses the request,
//! calls one use case of `mandate_service::admin` and renders its answer; [`AdminError`]
//! becomes the API's answer here.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_core::admin::Role;
use mandate_core::id::AdminTokenId;
use mandate_service::admin::{self as service, AdminError};
use serde::Deserialize;
use serde_json::json;

use crate::Node;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, ApiPath};

impl From<AdminError> for ApiError {
    /// The administration's refusals as the API has always answered them.
    ///
    /// The constructors are spelled `ApiError::…`: routes_test reads the codes answered
    /// from the sources.
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid { why, .. } => ApiError::bad_request("invalid_field", why),
            AdminError::Random(e) => ApiError::internal(e),
            AdminError::Keys(e) => ApiError::internal(e),
            AdminError::Store(e) => e.into(),
            AdminError::Service(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAdminToken {
    name: String,
    role: Role,
}

/// `POST /v1/admin-tokens`: the token is in this response and nowhere else.
pub(crate) async fn create_token(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<NewAdminToken>,
) -> Result<Response, ApiError> {
    admin.require_write()?;
    let (record, token) = service::create_token(&state, &admin.actor(), req.name, req.role).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"admin_token": record, "token": token.expose()})),
    )
        .into_response())
}

/// `GET /v1/admin-tokens`.
pub(crate) async fn list_tokens(
    State(state): State<Arc<Node>>,
    _admin: Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    let items = service::list_tokens(&state).await?;
    Ok(Json(json!({"items": items})))
}

/// `DELETE /v1/admin-tokens/{id}`.
pub(crate) async fn revoke_token(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    admin.require_write()?;
    let id = AdminTokenId::parse(&id).map_err(|e| ApiError::not_found(e.to_string()))?;
    service::revoke_token(&state, &admin.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/keys`: the signing keys still published.
pub(crate) async fn list_keys(
    State(state): State<Arc<Node>>,
    _admin: Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rows = service::list_keys(&state).await?;
    let items: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({
                "kid": r.kid,
                "created_at": r.created_at,
                "current": r.retired_at.is_none(),
                "retired_at": r.retired_at,
                "published_until": r.publish_until,
            })
        })
        .collect();
    Ok(Json(json!({"items": items})))
}

/// `POST /v1/keys/rotate`: a new key signs from now on; the old one stays published
/// until every token it signed has expired.
pub(crate) async fn rotate_keys(
    State(state): State<Arc<Node>>,
    admin: Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    admin.require_write()?;
    let r = service::rotate_keys(&state, &admin.actor()).await?;
    Ok(Json(json!({
        "kid": r.kid,
        "retired_kid": r.retired_kid,
        "retired_published_until": r.retired_published_until,
    })))
}
