//! The two error shapes of the HTTP surface: RFC 9457 problem+json for the admin API
//! ([`ApiError`]) and RFC 6749 §5.2 error bodies for the OAuth endpoints ([`OAuthError`]).
//!
//! Each carries a stable machine `code` and a message safe for the client; the full cause
//! of a server-side failure goes to the log only, and never includes a secret.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mandate_store::StoreError;
use serde_json::json;

/// An admin-API error, rendered as `application/problem+json`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    /// RFC 9457 extension members (e.g. `errors` for an invalid policy).
    extra: Option<Box<(&'static str, serde_json::Value)>>,
    /// A DPoP refusal's `WWW-Authenticate` challenge and `DPoP-Nonce` (RFC 9449 §7.1,
    /// §9), in place of the Bearer challenge.
    dpop: Option<Box<(String, Option<String>)>>,
}

impl ApiError {
    /// An error with a status, a stable code and a message for the client.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extra: None,
            dpop: None,
        }
    }

    /// Answers with a DPoP `WWW-Authenticate` challenge (and a `DPoP-Nonce` when given)
    /// instead of the Bearer one.
    pub fn with_dpop_challenge(mut self, challenge: String, nonce: Option<String>) -> Self {
        self.dpop = Some(Box::new((challenge, nonce)));
        self
    }

    /// The message for the client.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Adds an RFC 9457 extension member.
    pub fn with(mut self, name: &'static str, value: serde_json::Value) -> Self {
        self.extra = Some(Box::new((name, value)));
        self
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 409 with `code`.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// 500 `internal`: logs `cause`, tells the client nothing more.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(format!("unknown {what}")),
            StoreError::Conflict(msg) => Self::conflict("conflict", msg),
            other => Self::internal(other),
        }
    }
}

impl From<crate::acts::ActError> for ApiError {
    /// A refused act as the API answers it: 404 for what is unknown, 409 for a lifecycle
    /// that does not allow it, 403 for a caller who may not, and the store's own mapping.
    fn from(e: crate::acts::ActError) -> Self {
        use crate::acts::ActError;
        match e {
            ActError::UnknownAgent(id) => Self::not_found(format!("unknown agent `{id}`")),
            ActError::UnknownMandate(id) => {
                Self::not_found(format!("unknown mandate `{}`", id.as_str().escape_debug()))
            }
            ActError::InvalidTransition { from, to } => Self::conflict(
                "invalid_transition",
                format!("agent is {from}; it cannot become {to}"),
            ),
            ActError::NotLive { id, status } => Self::conflict(
                "mandate_not_active",
                format!("mandate `{id}` is {}", status.as_str()),
            ),
            ActError::NotAllowed(msg) => Self::new(StatusCode::FORBIDDEN, "forbidden", msg),
            ActError::Store(e) => e.into(),
        }
    }
}

impl From<mandate_service::ServiceError> for ApiError {
    /// The node's failures as the API answers them: a change that stands unrecorded and
    /// an unrecorded decision are 503 `audit_unavailable`, held decisions 503
    /// `snapshot_stale`, a refused act and the store as their own mappings, the rest 500
    /// `internal` (the cause logged).
    fn from(e: mandate_service::ServiceError) -> Self {
        use mandate_service::ServiceError as E;
        match e {
            E::AuditUnavailable | E::DecisionUnrecorded => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit_unavailable",
                e.to_string(),
            ),
            E::Act(e) => e.into(),
            E::Store(e) => e.into(),
            E::Stale(e) => e.into(),
            E::Detect(e) => e.into(),
            E::Task(e) => Self::internal(e),
        }
    }
}

impl From<crate::detect::DetectError> for ApiError {
    /// 500 `internal` (the cause logged).
    fn from(e: crate::detect::DetectError) -> Self {
        Self::internal(e)
    }
}

pub use mandate_service::StaleSnapshot;

impl From<StaleSnapshot> for ApiError {
    /// 503 `snapshot_stale`.
    fn from(e: StaleSnapshot) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "snapshot_stale",
            e.to_string(),
        )
    }
}

impl From<StaleSnapshot> for OAuthError {
    /// 503 `temporarily_unavailable`.
    fn from(e: StaleSnapshot) -> Self {
        Self::temporarily_unavailable(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": mandate_core::problem::type_uri(self.code),
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let (Some(extra), Some(m)) = (self.extra, body.as_object_mut()) {
            let (name, value) = *extra;
            m.insert(name.to_owned(), value);
        }
        let mut res = (self.status, body.to_string()).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(d) = self.dpop {
            let (challenge, nonce) = *d;
            let h = res.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                h.insert(header::WWW_AUTHENTICATE, v);
            }
            if let Some(v) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
                h.insert("dpop-nonce", v);
            }
        } else if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(if self.code == "invalid_token" {
                    "Bearer realm=\"mandate\", error=\"invalid_token\""
                } else {
                    "Bearer realm=\"mandate\""
                }),
            );
        }
        res
    }
}

/// An OAuth error response (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 8707 §2).
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// `DPoP-Nonce` to send with a `use_dpop_nonce` (RFC 9449 §8).
    nonce: Option<String>,
    /// `Retry-After` seconds (a throttled request).
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        // RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E, so
        // anything else (including echoed client input) is replaced.
        let description = description
            .into()
            .chars()
            .map(|c| match c {
                ' ' | '!' | '#'..='[' | ']'..='~' => c,
                _ => '?',
            })
            .collect();
        Self {
            status,
            error,
            description,
            nonce: None,
            retry_after: None,
        }
    }

    /// A refused DPoP proof at the token endpoint (400 `invalid_dpop_proof` or
    /// `use_dpop_nonce`, RFC 9449 §5, §8), with the server's current nonce when it
    /// requires one.
    pub fn dpop(error: &'static str, d: impl Into<String>, nonce: Option<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, error, d);
        e.nonce = nonce;
        e
    }

    /// `slow_down` (429, with `Retry-After`): too many failed client authentications
    /// from this source (throttle.rs). The code is RFC 8628's "back off" error, the one
    /// registered OAuth error that says so; `temporarily_unavailable` would blame the
    /// server.
    pub fn slow_down(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            format!(
                "too many failed client authentications from this address; retry in {retry_after_secs} s"
            ),
        );
        e.retry_after = Some(retry_after_secs);
        e
    }

    /// `invalid_request` with 408: the request body did not arrive in time.
    pub fn request_timeout(d: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "invalid_request", d)
    }

    /// `invalid_token` (401, RFC 6750 §3.1): an unknown bearer token at introspection or
    /// revocation.
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_token", d)
    }

    /// `insufficient_scope` (403, RFC 6750 §3.1): a read-only admin token trying to revoke.
    pub fn insufficient_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "insufficient_scope", d)
    }

    /// `temporarily_unavailable` (503): too many client-secret checks already running.
    pub fn temporarily_unavailable(d: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            d,
        )
    }

    /// `unsupported_response_type` (400, RFC 6749 §4.1.2.1): every request to the
    /// authorization endpoint, which Mandate publishes but has no flow behind.
    pub fn unsupported_response_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_response_type", d)
    }

    /// `invalid_request` (400).
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }

    /// `invalid_client` (401, with a `WWW-Authenticate` challenge).
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
    }

    /// `invalid_grant` (400): the mandate behind a token exchange is not active or not
    /// this agent's.
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }

    /// `unauthorized_client` (400).
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }

    /// `unsupported_grant_type` (400).
    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
    }

    /// `invalid_scope` (400).
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }

    /// `invalid_target` (400, RFC 8707).
    pub fn invalid_target(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", d)
    }

    /// `server_error` (500): logs the cause.
    pub fn server_error(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "oauth server error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        )
    }

    /// The RFC 6749 error code.
    pub fn error(&self) -> &'static str {
        self.error
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        Self::server_error(e)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description});
        let mut res = (self.status, axum::Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        let challenge = match self.error {
            "invalid_token" => Some("Bearer realm=\"mandate\", error=\"invalid_token\""),
            "insufficient_scope" => Some("Bearer realm=\"mandate\", error=\"insufficient_scope\""),
            _ if self.status == StatusCode::UNAUTHORIZED => Some("Basic realm=\"mandate\""),
            _ => None,
        };
        if let Some(c) = challenge {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        if let Some(v) = self.nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            h.insert("dpop-nonce", v);
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res
    }
}
