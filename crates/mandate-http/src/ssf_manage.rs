//! Mandate's Shared Signals stream management (SSF 1.0 §8: `/ssf/stream`, `/ssf/status`,
//! `/ssf/subjects/*`, `/ssf/verify`) and poll endpoint (RFC 8936: `/ssf/poll/{id}`), over
//! the service's `ssf_streams`. A receiver authenticates with an admin bearer token: any
//! role reads, only a role that writes changes a stream or polls (a poll acknowledges).
//! Answers are the wire types of mandate-api; errors are problem+json with stable codes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_api as api;
use mandate_service::ssf_streams::{
    self as streams, Delivery, PollRequest, SetErr, Status, Stream, StreamError, StreamInput,
};

use crate::Node;
use crate::audit_api::query;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, ApiPath};

impl From<StreamError> for ApiError {
    /// 400 `invalid_field` for a request that breaks a rule, 404 for an unknown stream,
    /// the node's own mapping for the rest.
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Invalid(m) => Self::bad_request("invalid_field", m),
            StreamError::NotFound(id) => {
                Self::not_found(format!("unknown stream `{}`", id.escape_debug()))
            }
            StreamError::Random(e) => Self::internal(e),
            StreamError::Service(e) => e.into(),
        }
    }
}

/// The stream as the wire has it.
fn wire(state: &Node, s: &Stream) -> api::StreamConfiguration {
    let iss = &state.config.issuer;
    api::StreamConfiguration {
        stream_id: s.id.clone(),
        iss: iss.clone(),
        aud: s.aud.clone(),
        events_supported: streams::EVENTS_SUPPORTED
            .iter()
            .map(|e| (*e).to_owned())
            .collect(),
        events_requested: s.events_requested.clone(),
        events_delivered: s.events_delivered(),
        delivery: api::StreamDelivery {
            method: s.delivery.method().to_owned(),
            endpoint_url: Some(match &s.delivery {
                Delivery::Push { endpoint_url } => endpoint_url.clone(),
                Delivery::Poll => streams::poll_url(iss, &s.id),
            }),
        },
        description: s.description.clone(),
    }
}

/// The request's receiver-supplied properties, after checking Mandate's own.
fn input(state: &Node, r: api::StreamRequest) -> Result<StreamInput, ApiError> {
    if r.iss.as_ref().is_some_and(|i| *i != state.config.issuer) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "`iss` is Mandate's issuer and cannot be set",
        ));
    }
    let delivery = match r.delivery {
        Some(d) if d.authorization_header.is_some() => {
            return Err(ApiError::bad_request(
                "invalid_field",
                "`delivery.authorization_header` is not supported: Mandate pushes without \
                 credentials",
            ));
        }
        Some(d) => {
            // The sender parses the URL as the HTTP client does; one it cannot parse
            // would leave the stream accepted yet never delivering.
            if d.method == streams::PUSH
                && let Some(e) = d
                    .endpoint_url
                    .as_deref()
                    .and_then(crate::export_http::push_url_error)
            {
                return Err(ApiError::bad_request("invalid_field", e));
            }
            Some((d.method, d.endpoint_url))
        }
        None => None,
    };
    Ok(StreamInput {
        delivery,
        events_requested: r.events_requested,
        description: r.description,
        aud: r.aud,
    })
}

/// The `stream_id` of a query that may hold only it.
fn stream_id(q: Option<String>) -> Result<Option<String>, ApiError> {
    Ok(query(q, &["stream_id"])?
        .into_iter()
        .find(|(k, _)| k == "stream_id")
        .map(|(_, v)| v))
}

/// `POST /ssf/stream`: makes a stream (201).
pub(crate) async fn create(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<api::StreamRequest>,
) -> Result<Response, ApiError> {
    admin.require_write()?;
    if req.stream_id.is_some() {
        return Err(ApiError::bad_request(
            "invalid_field",
            "`stream_id` is Mandate's to choose",
        ));
    }
    let input = input(&state, req)?;
    let s = state.create_stream(&admin.actor(), input).await?;
    Ok((StatusCode::CREATED, Json(wire(&state, &s))).into_response())
}

/// `GET /ssf/stream[?stream_id=…]`: one stream, or every stream (an array).
pub(crate) async fn read(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    match stream_id(q)? {
        Some(id) => {
            let s = state.stream(id).await?;
            Ok(Json(wire(&state, &s)).into_response())
        }
        None => {
            let all = state.streams().await?;
            let out: Vec<_> = all.iter().map(|s| wire(&state, s)).collect();
            Ok(Json(out).into_response())
        }
    }
}

async fn change(
    state: Arc<Node>,
    admin: Admin,
    req: api::StreamRequest,
    whole: bool,
) -> Result<Json<api::StreamConfiguration>, ApiError> {
    admin.require_write()?;
    let id = req.stream_id.clone().ok_or_else(|| {
        ApiError::bad_request("missing_field", "`stream_id` names the stream to change")
    })?;
    let input = input(&state, req)?;
    let s = state
        .update_stream(&admin.actor(), id, input, whole)
        .await?;
    Ok(Json(wire(&state, &s)))
}

/// `PATCH /ssf/stream`: changes the properties given.
pub(crate) async fn update(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<api::StreamRequest>,
) -> Result<Json<api::StreamConfiguration>, ApiError> {
    change(state, admin, req, false).await
}

/// `PUT /ssf/stream`: replaces the receiver-supplied properties.
pub(crate) async fn replace(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<api::StreamRequest>,
) -> Result<Json<api::StreamConfiguration>, ApiError> {
    change(state, admin, req, true).await
}

/// `DELETE /ssf/stream?stream_id=…` (204).
pub(crate) async fn delete(
    State(state): State<Arc<Node>>,
    admin: Admin,
    RawQuery(q): RawQuery,
) -> Result<StatusCode, ApiError> {
    admin.require_write()?;
    let id = stream_id(q)?
        .ok_or_else(|| ApiError::bad_request("invalid_query", "`stream_id` is required"))?;
    state.delete_stream(&admin.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn status_wire(s: &Stream) -> api::StreamStatus {
    api::StreamStatus {
        stream_id: s.id.clone(),
        status: s.status.as_str().to_owned(),
        reason: s.status_reason.clone(),
    }
}

/// `GET /ssf/status?stream_id=…`.
pub(crate) async fn get_status(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(q): RawQuery,
) -> Result<Json<api::StreamStatus>, ApiError> {
    let id = stream_id(q)?
        .ok_or_else(|| ApiError::bad_request("invalid_query", "`stream_id` is required"))?;
    let s = state.stream(id).await?;
    Ok(Json(status_wire(&s)))
}

/// `POST /ssf/status`: enables, pauses or disables a stream.
pub(crate) async fn set_status(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<api::StreamStatus>,
) -> Result<Json<api::StreamStatus>, ApiError> {
    admin.require_write()?;
    let status = Status::parse(&req.status).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_field",
            "`status` is `enabled`, `paused` or `disabled`",
        )
    })?;
    let s = state
        .set_stream_status(&admin.actor(), req.stream_id, status, req.reason)
        .await?;
    Ok(Json(status_wire(&s)))
}

/// `POST /ssf/subjects/add` (200, no body).
pub(crate) async fn add_subject(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<api::StreamSubject>,
) -> Result<StatusCode, ApiError> {
    admin.require_write()?;
    state
        .add_stream_subject(&admin.actor(), req.stream_id, &req.subject)
        .await?;
    Ok(StatusCode::OK)
}

/// `POST /ssf/subjects/remove` (204).
pub(crate) async fn remove_subject(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<api::StreamSubject>,
) -> Result<StatusCode, ApiError> {
    admin.require_write()?;
    if req.verified.is_some() {
        return Err(ApiError::bad_request(
            "unknown_field",
            "`verified` is a member of an added subject only",
        ));
    }
    state
        .remove_stream_subject(&admin.actor(), req.stream_id, &req.subject)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /ssf/verify` (204): the verification SET follows on the stream.
pub(crate) async fn verify(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<api::VerificationRequest>,
) -> Result<StatusCode, ApiError> {
    admin.require_write()?;
    state
        .verify_stream(&admin.actor(), req.stream_id, req.state)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /ssf/poll/{stream_id}`: acknowledges and returns SETs (RFC 8936).
pub(crate) async fn poll(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<api::PollRequest>,
) -> Result<Json<api::PollResponse>, ApiError> {
    admin.require_write()?;
    let req = PollRequest {
        max_events: req.max_events,
        return_immediately: req.return_immediately.unwrap_or(false),
        ack: req.ack.unwrap_or_default(),
        set_errs: req
            .set_errs
            .unwrap_or_default()
            .into_iter()
            .map(|(jti, e)| {
                (
                    jti,
                    SetErr {
                        err: e.err,
                        description: e.description,
                    },
                )
            })
            .collect(),
    };
    let answer = state.poll_stream(id, req, streams::LONG_POLL).await?;
    Ok(Json(api::PollResponse {
        sets: answer.sets.into_iter().collect(),
        more_available: answer.more,
    }))
}
