//! The contracts of Shared Signals: `POST /ssf/events` (the receiver), the transmitter's
//! metadata, stream management (SSF 1.0 §8) and polling (RFC 8936).

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::responses::*;
use crate::ssf::{
    PollRequest, PollResponse, SetError, SsfConfiguration, StreamConfiguration, StreamRequest,
    StreamStatus, StreamSubject, VerificationRequest,
};

/// The contract of `POST /ssf/events`, served by mandate-http's handler
/// `ssf_receiver::receive`.
#[utoipa::path(
    post,
    path = "/ssf/events",
    tag = "ssf",
    operation_id = "receiveSecurityEvent",
    summary = "Receive a pushed Security Event Token (RFC 8935) from a trusted transmitter",
    description = r#"The push endpoint of Mandate's OpenID Shared Signals (SSF 1.0) receiver. A
transmitter configured in `[[ssf.transmitters]]` (usually the IdP) POSTs one SET (RFC
8417) signed with a key of its JWK Set. CAEP `session-revoked`, RISC `account-disabled`
and RISC `sessions-revoked` about one of its users end every pending or active mandate
agents hold for that user that was created at or before the SET's `iat` (and so every
token delegated under them), each recorded as `mandate.revoked` by `ssf`. Other event
types (a stream verification) are accepted and recorded. The SET authenticates itself:
no bearer token. Every SET, accepted or refused, is recorded (`ssf.received`,
`ssf.refused`) before the answer."#,
    request_body(content = String, content_type = "application/secevent+jwt", description = "The SET, a compact JWS with `typ: secevent+jwt`."),
    responses(
        (status = 202, description = "Accepted: acted on, or recorded as an event Mandate does not act on."),
        (status = 400, description = "Refused (RFC 8935 §2.3): a forged, stale, replayed or malformed SET, an untrusted transmitter, another audience, a subject of another issuer or an email no mandate ever named.", body = SetError, content_type = "application/json"),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    ),
    security()
)]
pub fn receive_security_event() {}

/// The contract of `GET /.well-known/ssf-configuration`, served by mandate-http's handler
/// `wellknown::ssf_configuration`.
#[utoipa::path(
    get,
    path = "/.well-known/ssf-configuration",
    tag = "ssf",
    operation_id = "getSsfConfiguration",
    summary = "Mandate as a Shared Signals transmitter: its metadata",
    description = r#"SSF 1.0 transmitter metadata. Mandate pushes (RFC 8935) signed SETs to the
receivers its operator configures as `ssf` export sinks: CAEP `session-revoked` when an
agent is suspended, decommissioned or contained, or a mandate or token of it is revoked,
and CAEP `credential-change` when its credentials change. The SETs verify with the keys
at `jwks_uri`."#,
    responses(
        (status = 200, description = "The metadata; URLs are built from the configured issuer.", body = SsfConfiguration, content_type = "application/json")
    ),
    security()
)]
pub fn get_ssf_configuration() {}

/// The contract of `POST /ssf/stream`, served by mandate-http's handler
/// `ssf_manage::create`.
#[utoipa::path(
    post,
    path = "/ssf/stream",
    tag = "ssf",
    operation_id = "createSsfStream",
    summary = "Create a Shared Signals stream (SSF 1.0 §8.1.1.1)",
    description = r#"A receiver asks for a stream: push (`urn:ietf:rfc:8935`, to its `delivery.endpoint_url`) or poll (`urn:ietf:rfc:8936`, at the `delivery.endpoint_url` Mandate answers). It starts `enabled`, with every agent as a subject, and carries the events recorded from now on. Recorded as `ssf.stream.created`."#,
    request_body(content = StreamRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created.", body = StreamConfiguration, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn create_ssf_stream() {}

/// The contract of `GET /ssf/stream`, served by mandate-http's handler
/// `ssf_manage::read`.
#[utoipa::path(
    get,
    path = "/ssf/stream",
    tag = "ssf",
    operation_id = "getSsfStreams",
    summary = "Read one stream, or every stream",
    description = r#"With `stream_id`, that stream's configuration; without, an array of every stream's."#,
    params(("stream_id" = Option<String>, Query, description = "The stream; absent: every stream.")),
    responses(
        (status = 200, description = "The stream (with `stream_id`) or every stream (an array).", body = StreamConfiguration, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 404, response = NotFound),
        (status = 500, response = Internal)
    )
)]
pub fn get_ssf_streams() {}

/// The contract of `PATCH /ssf/stream`, served by mandate-http's handler
/// `ssf_manage::update`.
#[utoipa::path(
    patch,
    path = "/ssf/stream",
    tag = "ssf",
    operation_id = "updateSsfStream",
    summary = "Update a stream's properties (SSF 1.0 §8.1.1.3)",
    description = r#"Changes the receiver-supplied properties given (`events_requested`, `description`, `aud`, `delivery.endpoint_url`); the delivery method cannot change. Recorded as `ssf.stream.updated`."#,
    request_body(content = StreamRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The stream as changed.", body = StreamConfiguration, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn update_ssf_stream() {}

/// The contract of `PUT /ssf/stream`, served by mandate-http's handler
/// `ssf_manage::replace`.
#[utoipa::path(
    put,
    path = "/ssf/stream",
    tag = "ssf",
    operation_id = "replaceSsfStream",
    summary = "Replace a stream's properties (SSF 1.0 §8.1.1.4)",
    description = r#"Replaces every receiver-supplied property: what is not given takes its default. Recorded as `ssf.stream.updated`."#,
    request_body(content = StreamRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The stream as replaced.", body = StreamConfiguration, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn replace_ssf_stream() {}

/// The contract of `DELETE /ssf/stream`, served by mandate-http's handler
/// `ssf_manage::delete`.
#[utoipa::path(
    delete,
    path = "/ssf/stream",
    tag = "ssf",
    operation_id = "deleteSsfStream",
    summary = "Delete a stream (SSF 1.0 §8.1.1.5)",
    description = r#"Deletes the stream and its poll queue; delivery stops. Recorded as `ssf.stream.deleted`."#,
    params(("stream_id" = String, Query, description = "The stream.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn delete_ssf_stream() {}

/// The contract of `GET /ssf/status`, served by mandate-http's handler
/// `ssf_manage::get_status`.
#[utoipa::path(
    get,
    path = "/ssf/status",
    tag = "ssf",
    operation_id = "getSsfStreamStatus",
    summary = "Read a stream's status (SSF 1.0 §8.1.2.1)",
    description = r#"`enabled`, `paused` (events held until enabled) or `disabled` (events dropped)."#,
    params(("stream_id" = String, Query, description = "The stream.")),
    responses(
        (status = 200, description = "Its status.", body = StreamStatus, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 404, response = NotFound),
        (status = 500, response = Internal)
    )
)]
pub fn get_ssf_stream_status() {}

/// The contract of `POST /ssf/status`, served by mandate-http's handler
/// `ssf_manage::set_status`.
#[utoipa::path(
    post,
    path = "/ssf/status",
    tag = "ssf",
    operation_id = "setSsfStreamStatus",
    summary = "Enable, pause or disable a stream (SSF 1.0 §8.1.2.2)",
    description = r#"Recorded as `ssf.stream.status_updated`."#,
    request_body(content = StreamStatus, content_type = "application/json"),
    responses(
        (status = 200, description = "Its status now.", body = StreamStatus, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn set_ssf_stream_status() {}

/// The contract of `POST /ssf/subjects/add`, served by mandate-http's handler
/// `ssf_manage::add_subject`.
#[utoipa::path(
    post,
    path = "/ssf/subjects/add",
    tag = "ssf",
    operation_id = "addSsfStreamSubject",
    summary = "Add an agent to a stream (SSF 1.0 §8.1.3.2)",
    description = r#"Every agent is a subject of a stream (`default_subjects` `ALL`) unless removed; this adds a removed one back. Recorded as `ssf.stream.subject_added`."#,
    request_body(content = StreamSubject, content_type = "application/json"),
    responses(
        (status = 200, description = "Added."),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn add_ssf_stream_subject() {}

/// The contract of `POST /ssf/subjects/remove`, served by mandate-http's handler
/// `ssf_manage::remove_subject`.
#[utoipa::path(
    post,
    path = "/ssf/subjects/remove",
    tag = "ssf",
    operation_id = "removeSsfStreamSubject",
    summary = "Remove an agent from a stream (SSF 1.0 §8.1.3.3)",
    description = r#"No SET about the agent is sent on the stream from then on. Recorded as `ssf.stream.subject_removed`."#,
    request_body(content = StreamSubject, content_type = "application/json"),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn remove_ssf_stream_subject() {}

/// The contract of `POST /ssf/verify`, served by mandate-http's handler
/// `ssf_manage::verify`.
#[utoipa::path(
    post,
    path = "/ssf/verify",
    tag = "ssf",
    operation_id = "verifySsfStream",
    summary = "Ask for a verification event (SSF 1.0 §8.1.4.2)",
    description = r#"Recorded as `ssf.stream.verification`; the stream then delivers an SSF `verification` SET (subject: the stream, `opaque`) carrying `state`."#,
    request_body(content = VerificationRequest, content_type = "application/json"),
    responses(
        (status = 204, description = "Asked; the SET follows on the stream."),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn verify_ssf_stream() {}

/// The contract of `POST /ssf/poll/{stream_id}`, served by mandate-http's handler
/// `ssf_manage::poll`.
#[utoipa::path(
    post,
    path = "/ssf/poll/{stream_id}",
    tag = "ssf",
    operation_id = "pollSsfStream",
    summary = "Poll a stream's SETs (RFC 8936)",
    description = r#"Acknowledges `ack` and `setErrs` (unknown `jti`s are ignored), then returns the oldest unacknowledged SETs (at most `maxEvents`). A SET stays until acknowledged (at least once); an acknowledged one is never returned again. Unless `returnImmediately`, waits up to 15 s for a first SET."#,
    params(("stream_id" = String, Path, description = "The poll stream.")),
    request_body(content = PollRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The SETs.", body = PollResponse, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal)
    )
)]
pub fn poll_ssf_stream() {}
