//! `POST /ssf/events`: the Shared Signals receiver's push endpoint (RFC 8935), over the
//! service's `ssf::receive`. The SET authenticates itself (its transmitter's signature);
//! no bearer token is asked for.
//!
//! Answers as RFC 8935 §2 has them: 202 with no body when the SET was accepted (acted on,
//! or recorded as one Mandate does not act on); 400 with `{"err", "description"}` (the
//! §2.3 codes) when it was refused, recorded as `ssf.refused` (a push refused here, for
//! its media type, size or encoding, as well as one the service refuses); a 5xx when Mandate could not act on it now, so the
//! transmitter sends it again.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use mandate_service::ssf;

use crate::Node;
use crate::error::ApiError;
use crate::extract::read_body;

/// The media type of a pushed SET (RFC 8935 §2).
const SET_MEDIA_TYPE: &str = "application/secevent+jwt";

fn refused(err: &'static str, description: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"err": err, "description": description.into()})),
    )
        .into_response()
}

/// `POST /ssf/events`: one SET, `Content-Type: application/secevent+jwt`.
pub(crate) async fn receive(
    State(state): State<Arc<Node>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media.as_deref() != Some(SET_MEDIA_TYPE) {
        return answer(
            ssf::refuse_unread(
                &state,
                "a SET is sent as `Content-Type: application/secevent+jwt`",
            )
            .await,
        );
    }
    let bytes = match read_body(body, mandate_token::set::MAX_SET_BYTES).await {
        Ok(b) => b,
        // A body that did not arrive in time was not refused: 408, and the transmitter
        // sends it again (RFC 8935 §2.4: anything but a 400 is retried).
        Err(e) if e.status() == StatusCode::REQUEST_TIMEOUT => return e.into_response(),
        Err(_) => {
            return answer(ssf::refuse_unread(&state, "the SET is too large or unreadable").await);
        }
    };
    let Ok(token) = std::str::from_utf8(&bytes) else {
        return answer(ssf::refuse_unread(&state, "the SET is not text").await);
    };
    match ssf::receive(&state, token.trim()).await {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(e) => answer(e),
    }
}

/// The answer to a refused SET: 400 with its code, or the service's error (5xx).
fn answer(e: ssf::Refused) -> Response {
    match e {
        ssf::Refused::Set { code, description } => refused(code, description),
        ssf::Refused::Service(e) => ApiError::from(e).into_response(),
    }
}
