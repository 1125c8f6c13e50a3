//! The Shared Signals wire types: the receiver's error body (`POST /ssf/events`), as RFC
//! 8935 §2.3 has it (not a problem document: a transmitter reads `err`); the
//! transmitter's metadata, streams (SSF 1.0 §8) and polls (RFC 8936).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why a pushed SET was refused (RFC 8935 §2.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetError {
    /// `invalid_request`, `invalid_key`, `invalid_issuer`, `invalid_audience` or
    /// `authentication_failed`.
    pub err: String,
    /// Why, for the transmitter's operator; never the token.
    pub description: String,
}

/// The transmitter's metadata (SSF 1.0 §7.1, `/.well-known/ssf-configuration`). Mandate
/// transmits CAEP SETs about agents by push (to its operator's `ssf` export sinks, and
/// to receivers' push streams) and poll, on streams receivers manage with an admin
/// token (docs/ssf.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SsfConfiguration {
    /// `1_0`.
    pub spec_version: String,
    /// Mandate's issuer URL: the `iss` of its SETs.
    pub issuer: String,
    /// Where the keys that verify its SETs are (the same as its tokens').
    pub jwks_uri: String,
    /// `urn:ietf:rfc:8935` (push) and `urn:ietf:rfc:8936` (poll).
    pub delivery_methods_supported: Vec<String>,
    /// The stream configuration endpoint (`/ssf/stream`).
    pub configuration_endpoint: String,
    /// The stream status endpoint (`/ssf/status`).
    pub status_endpoint: String,
    /// Where a receiver adds a subject to a stream (`/ssf/subjects/add`).
    pub add_subject_endpoint: String,
    /// Where a receiver removes a subject from a stream (`/ssf/subjects/remove`).
    pub remove_subject_endpoint: String,
    /// Where a receiver asks for a verification event (`/ssf/verify`).
    pub verification_endpoint: String,
    /// How a receiver authenticates: an admin bearer token (RFC 6750).
    pub authorization_schemes: Vec<AuthorizationScheme>,
    /// The subjects a stream gets without asking: `ALL` (every agent).
    pub default_subjects: String,
}

/// One authorization scheme of [`SsfConfiguration`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuthorizationScheme {
    /// The scheme's specification: `urn:ietf:rfc:6750` (bearer tokens).
    pub spec_urn: String,
}

/// A stream's delivery (SSF 1.0 §8.1.1): the method and, for push, the receiver's
/// endpoint; for poll, the stream's poll endpoint at Mandate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamDelivery {
    /// `urn:ietf:rfc:8935` (push) or `urn:ietf:rfc:8936` (poll).
    pub method: String,
    /// Push: where Mandate POSTs the SETs. Poll: where the receiver polls (Mandate's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
}

/// A stream's delivery as a receiver asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamDeliveryRequest {
    /// `urn:ietf:rfc:8935` (push) or `urn:ietf:rfc:8936` (poll).
    pub method: String,
    /// Push: the receiver's endpoint (required). Poll: Mandate sets it (if given, it
    /// must be the stream's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Not supported yet: refused (400), so no receiver believes its endpoint protected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_header: Option<String>,
}

/// A stream's configuration (SSF 1.0 §8.1.1), as Mandate answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamConfiguration {
    /// The stream's id.
    pub stream_id: String,
    /// Mandate's issuer.
    pub iss: String,
    /// The `aud` of the stream's SETs.
    pub aud: String,
    /// The event types Mandate can deliver.
    pub events_supported: Vec<String>,
    /// The event types the receiver asked for.
    pub events_requested: Vec<String>,
    /// The event types the stream delivers: those asked for that Mandate supports.
    pub events_delivered: Vec<String>,
    /// How it delivers.
    pub delivery: StreamDelivery,
    /// The receiver's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What a receiver sends to create (POST), update (PATCH) or replace (PUT) a stream. Its
/// receiver-supplied properties are `delivery`, `events_requested`, `description` and
/// `aud`; `stream_id` names the stream to update or replace (and is refused on create);
/// `iss`, `events_supported` and `events_delivered` are Mandate's and, if sent, must
/// equal Mandate's (`iss`) or are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamRequest {
    /// The stream (PATCH, PUT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    /// Mandate's issuer, if sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The `aud` of the SETs (default: the push endpoint's origin; a poll stream's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_supported: Option<Vec<String>>,
    /// The event types wanted (default: every supported one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_requested: Option<Vec<String>>,
    /// Ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_delivered: Option<Vec<String>>,
    /// How to deliver (required on create and replace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<StreamDeliveryRequest>,
    /// For humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A stream's status (SSF 1.0 §8.1.2), read and set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamStatus {
    /// The stream.
    pub stream_id: String,
    /// `enabled`, `paused` (events held) or `disabled` (events dropped).
    #[schema(value_type = crate::formats::SsfStreamState)]
    pub status: String,
    /// Why, if the receiver said: 1 to 1024 characters, no NUL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 1024, pattern = r"^[^\u0000]*$")]
    pub reason: Option<String>,
}

/// Adds an agent to or removes it from a stream (SSF 1.0 §8.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamSubject {
    /// The stream.
    pub stream_id: String,
    /// `{"format": "iss_sub", "iss": <Mandate's issuer>, "sub": <agent id>}` or
    /// `{"format": "opaque", "id": <agent id>}`.
    #[schema(value_type = Object)]
    pub subject: serde_json::Value,
    /// Accepted and not used (add only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

/// Asks for a verification event on a stream (SSF 1.0 §8.1.4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationRequest {
    /// The stream.
    pub stream_id: String,
    /// Echoed in the verification SET: 1 to 1024 characters, no NUL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 1024, pattern = r"^[^\u0000]*$")]
    pub state: Option<String>,
}

/// A poll (RFC 8936 §2.4): acknowledgements and how many SETs to return.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    /// The most SETs to return (default and at most 1000; 0: none).
    #[serde(
        default,
        deserialize_with = "mandate_core::integer::optional",
        rename = "maxEvents",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 0, maximum = 1000)]
    pub max_events: Option<u32>,
    /// Answer at once, even with no SET (default `false`: wait up to 15 s for one).
    #[serde(
        default,
        rename = "returnImmediately",
        skip_serializing_if = "Option::is_none"
    )]
    pub return_immediately: Option<bool>,
    /// `jti`s received: never returned again (unknown ones are ignored). Each is 1 to
    /// 256 bytes; at most 10000, and with the keys of `setErrs` too (a sum the schema
    /// cannot state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<crate::formats::Jti>>, max_items = 10000)]
    pub ack: Option<Vec<String>>,
    /// `jti`s received that the receiver could not process, with why: acknowledged too,
    /// and logged. Each key is a `jti` of 1 to 256 bytes.
    #[serde(default, rename = "setErrs", skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = set_errs_schema)]
    pub set_errs: Option<std::collections::BTreeMap<String, SetError>>,
}

/// A poll's answer (RFC 8936 §2.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PollResponse {
    /// `jti` → SET (compact JWS), the oldest unacknowledged ones.
    pub sets: std::collections::BTreeMap<String, String>,
    /// Whether more unacknowledged SETs wait.
    #[serde(rename = "moreAvailable")]
    pub more_available: bool,
}

/// `setErrs`: an object whose member names are `jti`s (1 to 256 bytes), each a
/// [`SetError`]; or `null`.
fn set_errs_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{Ref, schema::AdditionalProperties};
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Object,
            Type::Null,
        ]))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(256)),
        ))
        .max_properties(Some(10000))
        .additional_properties(Some(AdditionalProperties::RefOr(
            Ref::from_schema_name("SetError").into(),
        )))
        .into()
}
