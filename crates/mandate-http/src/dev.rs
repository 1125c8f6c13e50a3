//! The local development user issuer through the API: an admin mints user tokens for
//! walkthroughs and tests, so mandates can name a human without a real identity
//! provider. Off (404 `dev_issuer_disabled`) unless the operator enabled it. The use
//! case is `mandate_service::dev_users`; this reads and answers mandate-api's types and
//! maps its [`DevTokenError`].

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_api as api;
use mandate_service::dev_users::{self, DevTokenError, UserTokenRequest};

use crate::Node;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson};

impl From<DevTokenError> for ApiError {
    /// 404 `dev_issuer_disabled`, 400 `invalid_field` for a claim or lifetime that breaks
    /// a rule, 500 for the random source, the node's own mapping.
    fn from(e: DevTokenError) -> Self {
        let detail = e.to_string();
        match e {
            DevTokenError::Disabled => {
                ApiError::new(StatusCode::NOT_FOUND, "dev_issuer_disabled", detail)
            }
            DevTokenError::Lifetime | DevTokenError::TooManyGroups | DevTokenError::Claims(_) => {
                ApiError::bad_request("invalid_field", detail)
            }
            DevTokenError::Random(e) => ApiError::internal(e),
            DevTokenError::Service(e) => e.into(),
        }
    }
}

/// `POST /v1/dev/user-tokens`: a user token from the development issuer.
pub(crate) async fn issue_user_token(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<api::NewDevUserToken>,
) -> Result<Response, ApiError> {
    admin.require_write()?;
    let req = UserTokenRequest {
        sub: req.sub,
        email: req.email,
        groups: req.groups,
        lifetime_secs: req.lifetime_secs,
    };
    let issued = dev_users::issue_user_token(&state, &admin.actor(), req).await?;
    Ok((
        StatusCode::CREATED,
        Json(api::DevUserToken {
            token: issued.token,
            issuer: issued.issuer,
            expires_in: u64::from(issued.expires_in),
        }),
    )
        .into_response())
}
