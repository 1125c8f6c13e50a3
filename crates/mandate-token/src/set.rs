//! Security Event Tokens (RFC 8417) from a trusted transmitter, as OpenID Shared Signals
//! (SSF 1.0) profiles them: what Mandate's SSF receiver verifies before it acts on an
//! event (an IdP saying a person's session was revoked or their account disabled).
//!
//! A transmitter is configured like a trusted user-token issuer (its `iss`, the audience
//! its SETs must name, its JWK Set, an algorithm allow-list) and shares that verifier's
//! key selection and signature check (`user.rs`). What differs is the claims:
//!
//! - size at most [`MAX_SET_BYTES`]; a compact JWS whose header is a JSON object without
//!   duplicate members and without `crit`;
//! - header `typ` is `secevent+jwt` (RFC 8417 §2.3; SSF 1.0 requires it, which keeps a
//!   SET from being taken for an ID or access token and the other way round);
//! - the unverified `iss` picks the transmitter, whose keys verify the signature; then,
//!   from the verified claims: `iss`, `aud` (a string or an array holding the audience);
//! - `iat` is required, at most [`crate::user::LEEWAY_SECS`] in the future and at most
//!   [`MAX_SET_AGE_SECS`] old (a replay of an old SET is refused outright; a receiver
//!   still remembers recent `jti`s); `exp`, which RFC 8417 advises against, is honoured
//!   when present;
//! - `jti` is required, 1 to 256 characters without control characters;
//! - `events` is an object with exactly one member (SSF 1.0 §4: one event per SET),
//!   itself an object;
//! - the subject is the top-level `sub_id` (SSF 1.0, RFC 9493) or, for CAEP and RISC
//!   events from before it, the event's own `subject`.
//!
//! Keys come only from the configured JWKS: header `jwk`, `jku` and `x5u` are never
//! followed. Time is Mandate's clock (`now`).

use mandate_core::time::Timestamp;
use serde_json::{Map, Value};

use crate::jws::SigningAlg;
use crate::keys::SigningKey;
use crate::user::{LEEWAY_SECS, TrustedIssuers, UserTokenError, json_segment, numeric_date};

/// The largest SET accepted, in bytes.
pub const MAX_SET_BYTES: usize = 64 * 1024;

/// The oldest `iat` accepted: a SET issued more than a day ago is refused.
pub const MAX_SET_AGE_SECS: i64 = 24 * 3600;

/// The header `typ` of a SET (RFC 8417 §2.3), compared without case, with or without
/// the `application/` prefix.
const SET_TYP: &str = "secevent+jwt";

/// A SET that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedSet {
    /// Its transmitter (`iss`).
    pub issuer: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `iat`.
    pub issued_at: Timestamp,
    /// The one event's type URI.
    pub event_type: String,
    /// The one event's members.
    pub event: Map<String, Value>,
    /// Whom it is about: `sub_id`, or the event's own `subject`; `None` when it names
    /// no one.
    pub subject: Option<Value>,
}

/// Why a SET was refused. Messages are short and never echo the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SetError {
    /// Too large, not a compact JWS, a header or payload that is not a JSON object, a
    /// `crit` header, or a `typ` that is not `secevent+jwt`.
    #[error("malformed security event token: {0}")]
    Malformed(&'static str),
    /// `iss` missing or not a configured transmitter.
    #[error("the transmitter is not trusted")]
    UntrustedIssuer,
    /// No key of the transmitter fits the header, or its `alg` is not allowed.
    #[error("no trusted key of the transmitter matches")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Signature,
    /// `aud` does not name this receiver.
    #[error("the token is for another audience")]
    Audience,
    /// `iat` too old (or `exp` passed), or in the future.
    #[error("the token is stale or not yet valid")]
    Time,
    /// A required claim is missing or malformed; the text names it.
    #[error("security event token claims: {0}")]
    Claims(String),
}

impl SetError {
    /// The RFC 8935 §2.3 error code a push receiver answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UntrustedIssuer => "invalid_issuer",
            Self::Audience => "invalid_audience",
            Self::UnknownKey => "invalid_key",
            Self::Signature => "authentication_failed",
            Self::Malformed(_) | Self::Time | Self::Claims(_) => "invalid_request",
        }
    }
}

impl From<UserTokenError> for SetError {
    fn from(e: UserTokenError) -> Self {
        match e {
            UserTokenError::Malformed => Self::Malformed("the signature is not base64url"),
            UserTokenError::UntrustedIssuer => Self::UntrustedIssuer,
            UserTokenError::Algorithm
            | UserTokenError::UnknownKey
            | UserTokenError::KeysUnavailable => Self::UnknownKey,
            UserTokenError::Signature => Self::Signature,
            UserTokenError::Audience => Self::Audience,
            UserTokenError::Expired | UserTokenError::NotYetValid => Self::Time,
            UserTokenError::Claims(c) => Self::Claims(c),
            UserTokenError::SessionsRevoked => Self::Claims("sessions revoked".into()),
        }
    }
}

/// Verifies `token` as a SET from one of `transmitters` at `now` (the checks and their
/// order: the module documentation).
pub fn verify_set(
    transmitters: &TrustedIssuers,
    token: &str,
    now: Timestamp,
) -> Result<VerifiedSet, SetError> {
    if token.len() > MAX_SET_BYTES {
        return Err(SetError::Malformed("too large"));
    }
    let (signing_input, signature) = token
        .rsplit_once('.')
        .ok_or(SetError::Malformed("not a compact JWS"))?;
    let (header, payload) = signing_input
        .split_once('.')
        .filter(|(_, p)| !p.contains('.'))
        .ok_or(SetError::Malformed("not a compact JWS"))?;
    let header =
        crate::jws::header_object(header).ok_or(SetError::Malformed("the header is not JSON"))?;
    if header.contains_key("crit") {
        return Err(SetError::Malformed("a critical header is not understood"));
    }
    let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
    let typ = typ.to_ascii_lowercase();
    if typ.strip_prefix("application/").unwrap_or(&typ) != SET_TYP {
        return Err(SetError::Malformed("`typ` must be `secevent+jwt`"));
    }
    let claims = json_segment(payload).ok_or(SetError::Malformed("the payload is not JSON"))?;
    // Not yet verified: `iss` only picks whose keys to verify with.
    let issuer = claims
        .get("iss")
        .and_then(Value::as_str)
        .and_then(|iss| transmitters.get(iss))
        .ok_or(SetError::UntrustedIssuer)?;
    issuer.verify_signature(signing_input, signature, &header, now)?;
    if claims.get("iss").and_then(Value::as_str) != Some(issuer.issuer()) {
        return Err(SetError::UntrustedIssuer);
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == issuer.audience(),
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(issuer.audience())),
        _ => false,
    };
    if !aud_ok {
        return Err(SetError::Audience);
    }
    let now_s = now.secs();
    let iat = numeric_date(&claims, "iat")?
        .ok_or_else(|| SetError::Claims("`iat` is required".into()))?;
    if iat > now_s.saturating_add(LEEWAY_SECS) || iat < now_s.saturating_sub(MAX_SET_AGE_SECS) {
        return Err(SetError::Time);
    }
    if numeric_date(&claims, "exp")?.is_some_and(|exp| now_s >= exp) {
        return Err(SetError::Time);
    }
    let jti = match claims.get("jti") {
        Some(Value::String(j))
            if (1..=256).contains(&j.chars().count()) && !j.chars().any(char::is_control) =>
        {
            j.clone()
        }
        _ => {
            return Err(SetError::Claims(
                "`jti` must be a string of 1 to 256 characters".into(),
            ));
        }
    };
    let events = match claims.get("events") {
        Some(Value::Object(e)) => e,
        _ => return Err(SetError::Claims("`events` must be an object".into())),
    };
    let mut members = events.iter();
    let (event_type, event) = match (members.next(), members.next()) {
        (Some((t, Value::Object(e))), None) => (t.clone(), e.clone()),
        _ => {
            return Err(SetError::Claims(
                "`events` must hold exactly one event, an object".into(),
            ));
        }
    };
    let subject = match claims.get("sub_id") {
        Some(s @ Value::Object(_)) => Some(s.clone()),
        Some(_) => return Err(SetError::Claims("`sub_id` must be an object".into())),
        None => event.get("subject").filter(|s| s.is_object()).cloned(),
    };
    Ok(VerifiedSet {
        issuer: issuer.issuer().to_owned(),
        jti,
        issued_at: Timestamp::from_secs(iat),
        event_type,
        event,
        subject,
    })
}

/// Signs `claims` as a SET Mandate transmits: a compact JWS with `typ: secevent+jwt`, the
/// signing key's `kid`, under `alg` (the key ring's, which its JWKS publishes), so any
/// receiver that has Mandate's JWKS verifies it.
pub fn sign_set(
    key: &SigningKey,
    alg: SigningAlg,
    claims: &Value,
) -> Result<String, serde_json::Error> {
    let header = serde_json::json!({"alg": alg.name(), "typ": SET_TYP, "kid": key.kid()});
    crate::jws::sign_ed25519(key.dalek(), &header, claims)
}
