//! Admin tokens and signing keys through the admin API. Each handler parses the request,
//! calls one use case of `mandate_service::admin` and renders its answer; [`AdminError`]
//! becomes the API's answer here.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_api as api;
use mandate_core::id::AdminTokenId;
use mandate_service::admin::{self as service, AdminError};

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

/// `POST /v1/admin-tokens`: the token is in this response and nowhere else.
pub(crate) async fn create_token(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<api::NewAdminToken>,
) -> Result<Response, ApiError> {
    admin.require_write()?;
    let (record, token) = service::create_token(&state, &admin.actor(), req.name, req.role).await?;
    let created = api::AdminTokenCreated {
        admin_token: api::AdminToken::from(&record),
        token: token.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `GET /v1/admin-tokens`.
pub(crate) async fn list_tokens(
    State(state): State<Arc<Node>>,
    _admin: Admin,
) -> Result<Json<api::Items<api::AdminToken>>, ApiError> {
    let items = service::list_tokens(&state).await?;
    Ok(Json(api::Items {
        items: items.iter().map(api::AdminToken::from).collect(),
    }))
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
) -> Result<Json<api::Items<api::SigningKey>>, ApiError> {
    let rows = service::list_keys(&state).await?;
    let items = rows
        .iter()
        .map(|r| api::SigningKey {
            kid: r.kid.clone(),
            created_at: r.created_at.to_string(),
            current: r.retired_at.is_none(),
            retired_at: r.retired_at.map(|t| t.to_string()),
            published_until: r.publish_until.map(|t| t.to_string()),
        })
        .collect();
    Ok(Json(api::Items { items }))
}

/// `POST /v1/keys/rotate`: a new key signs from now on; the old one stays published
/// until every token it signed has expired.
pub(crate) async fn rotate_keys(
    State(state): State<Arc<Node>>,
    admin: Admin,
) -> Result<Json<api::KeyRotated>, ApiError> {
    admin.require_write()?;
    let r = service::rotate_keys(&state, &admin.actor()).await?;
    Ok(Json(api::KeyRotated {
        kid: r.kid,
        retired_kid: r.retired_kid,
        retired_published_until: r.retired_published_until.to_string(),
    }))
}
