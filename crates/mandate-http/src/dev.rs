//! The local development user issuer through the API: an admin mints user tokens for
//! walkthroughs and tests, so mandates can name a human without a real identity
//! provider. Off (404 `dev_issuer_disabled`) unless the operator enabled it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_core::id::new_ulid;
use serde::Deserialize;
use serde_json::json;

use crate::Node;
use crate::act::Acts as _;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson};
use mandate_service::Recorded;

/// The lifetime of a token asked for without one, and the longest allowed.
const DEFAULT_LIFETIME_SECS: u32 = 3600;
const MAX_LIFETIME_SECS: u32 = 86_400;
/// The most groups a dev token may list.
const MAX_GROUPS: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserToken {
    sub: String,
    email: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    lifetime_secs: Option<u32>,
}

/// `POST /v1/dev/user-tokens`: a user token from the development issuer.
pub(crate) async fn issue_user_token(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<NewUserToken>,
) -> Result<Response, ApiError> {
    admin.require_write()?;
    let Some(issuer) = state.config.dev_users.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "dev_issuer_disabled",
            "the development user issuer is not enabled on this server",
        ));
    };
    let lifetime = req.lifetime_secs.unwrap_or(DEFAULT_LIFETIME_SECS);
    if !(1..=MAX_LIFETIME_SECS).contains(&lifetime) {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("lifetime_secs must be 1..={MAX_LIFETIME_SECS}"),
        ));
    }
    if req.groups.len() > MAX_GROUPS {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("at most {MAX_GROUPS} groups"),
        ));
    }
    let jti = new_ulid(state.clock.as_ref(), state.random.as_ref()).map_err(ApiError::internal)?;
    // The issuer checks every claim as verification will (sub 1-256 characters, …).
    let token = issuer
        .issue(
            &req.sub,
            req.email.as_deref(),
            &req.groups,
            lifetime,
            &jti,
            state.clock.now(),
        )
        .map_err(|e| ApiError::bad_request("invalid_field", e.to_string()))?;
    tracing::info!(by = %admin.0.id, sub = %req.sub, "dev user token issued");
    // Never the token itself. Nothing is stored: the act is the issuing, recorded here.
    let details = json!({"sub": req.sub, "email": req.email, "groups": req.groups,
        "jti": jti, "expires_in": lifetime});
    state
        .act("dev.user_token_issued", &admin.actor(), move |_| {
            Ok(((), Recorded::details(details)))
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token, "issuer": issuer.issuer(), "expires_in": lifetime})),
    )
        .into_response())
}
