//! Admin tokens and signing keys through the admin API.

use mandate_store::prelude::*;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_core::admin::{AdminToken, Role};
use mandate_core::id::AdminTokenId;
use mandate_token::secret;
use serde::Deserialize;
use serde_json::json;

use crate::Node;
use crate::act::Acts as _;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, ApiPath};
use mandate_service::Recorded;

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
    if req.name.is_empty()
        || req.name.chars().count() > 64
        || req.name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "invalid_field",
            "name must be 1-64 printable characters",
        ));
    }
    let by = admin.0.id.clone();
    let (record, token) = state.act("admin_token.created", &admin.actor(), move |s| {
        let id = AdminTokenId::generate(s.clock.as_ref(), s.random.as_ref())
            .map_err(ApiError::internal)?;
        let token = secret::new_admin_token(s.random.as_ref()).map_err(ApiError::internal)?;
        let record = AdminToken {
            id,
            name: req.name,
            role: req.role,
            bootstrap: false,
            created_at: s.clock.now(),
            revoked_at: None,
        };
        s.store()
            .insert_admin_token(&record, &secret::admin_token_digest(token.expose()))?;
        tracing::info!(%by, id = %record.id, role = record.role.as_str(), "admin token created");
        let details = json!({"admin_token": record.id, "name": record.name, "role": record.role});
        Ok(((record, token), Recorded::details(details)))
    })
    .await?;
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
    let items = crate::blocking(&state, |s| s.store().list_admin_tokens()).await??;
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
    let by = admin.0.id.clone();
    state
        .act("admin_token.revoked", &admin.actor(), move |s| {
            s.store().revoke_admin_token(&id, s.clock.now())?;
            tracing::info!(%by, %id, "admin token revoked");
            Ok(((), Recorded::details(json!({"admin_token": id}))))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/keys`: the signing keys still published.
pub(crate) async fn list_keys(
    State(state): State<Arc<Node>>,
    _admin: Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rows =
        crate::blocking(&state, |s| s.store().published_signing_keys(s.clock.now())).await??;
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
    let by = admin.0.id.clone();
    let out = state.act("keys.rotated", &admin.actor(), move |s| {
        let now = s.clock.now();
        // Tokens live at most max_token_lifetime_secs; a minute more covers clock skew.
        let publish = s.config.max_token_lifetime_secs.saturating_add(60);
        let (old, new) = s.keys.rotate(&s.store(), now, s.random.as_ref(), publish).map_err(ApiError::internal)?;
        tracing::info!(%by, %old, %new, "signing key rotated");
        s.refresh_after_write();
        let out = json!({"kid": new, "retired_kid": old, "retired_published_until": now.plus_secs(i64::from(publish))});
        Ok((out.clone(), Recorded::details(out)))
    })
    .await?;
    Ok(Json(out))
}
