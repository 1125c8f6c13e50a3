//! The contract of `POST /ssf/events` (the Shared Signals receiver).

use crate::responses::*;
use crate::ssf::{SetError, SsfConfiguration};

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
