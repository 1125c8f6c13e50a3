//! The Security Event Token (RFC 8417, as OpenID SSF 1.0 profiles it) Mandate transmits
//! for an audit event, when other systems must hear of it at once: an agent stopped
//! (suspended, decommissioned, contained), a mandate or a token revoked → CAEP
//! `session-revoked`; a credential added, rotated or revoked → CAEP `credential-change`.
//! Every other event transmits nothing.
//!
//! The claims only; signing is `mandate_token::set::sign_set`, delivery the export loop
//! (an `ssf` sink). The subject is the agent, as Mandate's tokens name it: `iss_sub` with
//! Mandate's issuer and the agent id (an agent's access tokens carry `sub` = its id).
//! `jti` is the event id (`node:seq`), so a SET sent again after a failure is the same
//! SET to its receiver.

use mandate_audit::event::AuditEvent;
use serde_json::{Value, json};

/// CAEP: a session (here: the agent's tokens) was revoked.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// CAEP: a credential was created, changed or revoked.
pub const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";

/// The event kinds that transmit a SET (the default filter of an `ssf` sink).
pub const KINDS: &[&str] = &[
    "agent.suspended",
    "agent.decommissioned",
    "incident.contained",
    "mandate.revoked",
    "token.revoked",
    "credential.added",
    "credential.rotated",
    "credential.revoked",
];

/// The SET claims of `event` from `issuer` for `audience`, issued at `now_secs`; `None`
/// when the event transmits nothing (another kind, or one about no agent).
pub fn set_claims(
    event: &AuditEvent,
    issuer: &str,
    audience: &str,
    now_secs: i64,
) -> Option<Value> {
    let agent = event.agent.as_deref()?;
    let details = event.details.as_ref();
    let detail = |k: &str| details.and_then(|d| d.get(k)).and_then(Value::as_str);
    let initiating_entity = match event.actor.as_deref() {
        Some("detector" | "policy" | "expiry" | "timeout" | "ssf") => "policy",
        Some(a) if a.starts_with("mat_") => "admin",
        Some(a) if a.starts_with("user:") => "user",
        _ => "system",
    };
    let mut body = json!({
        "event_timestamp": event.time.secs(),
        "initiating_entity": initiating_entity,
    });
    let (event_type, reason) = match event.kind.as_str() {
        "agent.suspended" => (SESSION_REVOKED, "the agent was suspended".to_owned()),
        "agent.decommissioned" => (SESSION_REVOKED, "the agent was decommissioned".to_owned()),
        "incident.contained" => (
            SESSION_REVOKED,
            "the agent was contained (kill switch)".to_owned(),
        ),
        "mandate.revoked" => (
            SESSION_REVOKED,
            format!("mandate {} was revoked", detail("mandate").unwrap_or("?")),
        ),
        "token.revoked" => (
            SESSION_REVOKED,
            "a token of the agent was revoked".to_owned(),
        ),
        kind @ ("credential.added" | "credential.rotated" | "credential.revoked") => {
            let change_type = match kind {
                "credential.added" => "create",
                "credential.rotated" => "update",
                _ => "revoke",
            };
            // CAEP's credential types name what a person holds; an agent's client secret
            // is a shared secret (`password`), its registered key pair `x509`'s nearest
            // kin among them is none, so it is named as Mandate names it.
            let credential_type = match detail("type") {
                Some("client_secret") => "password",
                Some(other) => other,
                None => "unknown",
            };
            if let Value::Object(m) = &mut body {
                m.insert("change_type".into(), change_type.into());
                m.insert("credential_type".into(), credential_type.into());
                if let Some(id) = detail("credential") {
                    m.insert("friendly_name".into(), id.into());
                }
            }
            (
                CREDENTIAL_CHANGE,
                format!("a credential of the agent: {change_type}"),
            )
        }
        _ => return None,
    };
    if let Value::Object(m) = &mut body {
        m.insert("reason_admin".into(), json!({ "en": reason }));
    }
    let mut set = json!({
        "iss": issuer,
        "aud": audience,
        "jti": event.id(),
        "iat": now_secs,
        "sub_id": {"format": "iss_sub", "iss": issuer, "sub": agent},
        "events": { event_type: body },
    });
    if let (Some(txn), Value::Object(m)) = (&event.request_id, &mut set) {
        m.insert("txn".into(), txn.as_str().into());
    }
    Some(set)
}
