//! Request extractors that turn every kind of bad input into a clear 4xx with a stable
//! code: JSON bodies (content type, size, syntax, unknown and missing fields), form
//! bodies, query strings, and the admin bearer token.

use mandate_store::prelude::*;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use mandate_core::admin::{AdminToken, Role};
use serde::de::DeserializeOwned;

use crate::Node;
use crate::error::ApiError;

/// Reads the whole body, refusing one over the configured limit with 413.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cause {
            if c.is::<crate::unread::BodyDeadline>() {
                return ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    c.to_string(),
                );
            }
            cause = c.source();
        }
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body over the {limit}-byte limit"),
        )
    })
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(ct.split(';').next()?.trim().to_ascii_lowercase())
}

/// Whether the request says its body is JSON (`application/json` or `+json`).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|m| m == "application/json" || m.ends_with("+json"))
}

/// Whether the request says its body is a form (`application/x-www-form-urlencoded`).
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|m| m == "application/x-www-form-urlencoded")
}

/// Deserializes JSON, classifying serde's errors into stable codes.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Serde's derive also reads a struct from an array (fields by position), which would
    // register `["bot","alice"]`; every request body of the API is an object.
    if bytes.trim_ascii_start().starts_with(b"[") {
        return Err(ApiError::bad_request(
            "invalid_field",
            "expected a JSON object",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let msg = e.to_string();
        let code = match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => "invalid_json",
            Category::Data if msg.starts_with("unknown field") => "unknown_field",
            Category::Data if msg.starts_with("missing field") => "missing_field",
            Category::Data => "invalid_field",
        };
        ApiError::bad_request(code, msg)
    })
}

/// A JSON body with a checked content type and size; rejects unknown fields when `T`
/// is `#[serde(deny_unknown_fields)]`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<Node>> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<Node>) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/json",
            ));
        }
        let bytes = read_body(req.into_body(), state.config.max_body_bytes).await?;
        Ok(Self(parse_json(&bytes)?))
    }
}

/// Like [`ApiJson`], but an empty body (with or without a content type) is `None`.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<Arc<Node>> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<Node>) -> Result<Self, ApiError> {
        let json = is_json(req.headers());
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        let bytes = read_body(req.into_body(), state.config.max_body_bytes).await?;
        if bytes.is_empty() {
            return Ok(Self(None));
        }
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                if has_type {
                    "expected Content-Type: application/json"
                } else {
                    "missing Content-Type"
                },
            ));
        }
        Ok(Self(Some(parse_json(&bytes)?)))
    }
}

/// Path parameters, with a malformed one (e.g. invalid percent-encoding) answered as
/// problem+json `invalid_path` instead of axum's plain-text 400.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<Arc<Node>> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Node>) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
    }
}

/// Parses an `application/x-www-form-urlencoded` body into ordered pairs.
pub(crate) fn parse_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The `Bearer` token of the Authorization header, if that is the scheme used.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether a presented credential looks like a JWT (an agent's access token).
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.split('.').count() == 3
}

/// The admin token that authenticated this request. Agent access tokens are refused:
/// they can never call the admin API.
#[derive(Debug)]
pub struct Admin(pub AdminToken);

impl Admin {
    /// The admin token as the accountable party of what it does.
    pub(crate) fn actor(&self) -> crate::actor::Actor {
        crate::actor::Actor::Admin(self.0.id.clone())
    }

    /// Refuses read-only roles.
    pub fn require_write(&self) -> Result<(), ApiError> {
        if self.0.role.can_write() {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "role `{}` is read-only here; an admin token is required",
                    self.0.role.as_str()
                ),
            ))
        }
    }
}

impl FromRequestParts<Arc<Node>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Node>) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "an admin bearer token is required",
            )
        })?;
        if looks_like_jwt(token) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "agent_token_forbidden",
                "agent access tokens cannot call the admin API",
            ));
        }
        match lookup_admin_token(state, token).await? {
            Some(t) if t.role == Role::Service => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "service tokens may only ask for decisions (/v1/authorize, /access/v1/*)",
            )),
            Some(t) => Ok(Self(t)),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "unknown or revoked admin token",
            )),
        }
    }
}

/// The unrevoked admin token a bearer value names, if any.
pub(crate) async fn lookup_admin_token(
    state: &Arc<Node>,
    token: &str,
) -> Result<Option<AdminToken>, ApiError> {
    let digest = mandate_token::secret::admin_token_digest(token);
    Ok(crate::blocking(state, move |s| s.store().admin_token_by_digest(&digest)).await??)
}
