//! What the OCSF and ECS records both read off an event — its [`Outcome`], a one-line
//! summary, its details by name — so the two formats cannot disagree on them.

use mandate_audit::event::AuditEvent;
use serde_json::Value;

/// What became of what an event records: one answer for OCSF's `status_id` and ECS's
/// `event.outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed, issued, done.
    Success,
    /// Denied, refused, timed out, failed upstream.
    Failure,
    /// Neither yet: a mandate waiting for a human's approval.
    Pending,
    /// Not stated by the event (an OPA query whose result names no allow/deny).
    Unknown,
}

impl Outcome {
    /// ECS `event.outcome`: `success`, `failure` or `unknown` (ECS has no pending).
    pub fn ecs(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Pending | Self::Unknown => "unknown",
        }
    }
}

/// The outcome of `event`:
/// - a decision (`decision`, `opa.decision`) by its `decision`, `allow` or `deny`; an OPA
///   query that failed (it has reasons but no decision) fails; one whose result states
///   no verdict is unknown;
/// - `gateway.result` by the upstream's answer: an error, an MCP outcome other than
///   `ok`, or an HTTP status of 400 or more fails;
/// - `token.refused`, `mandate.denied`, `mandate.refused`, `mandate.approval_timed_out`
///   fail; a `mandate.requested` by its resulting `status` (`pending_approval`
///   pending, `denied` failed);
/// - any other act succeeded: an act's event is recorded after its change committed.
pub fn outcome(event: &AuditEvent) -> Outcome {
    match event.kind.as_str() {
        "decision" | "opa.decision" => match event.decision.as_deref() {
            Some("allow") => Outcome::Success,
            Some("deny") => Outcome::Failure,
            _ if !event.reasons.is_empty() => Outcome::Failure,
            _ => Outcome::Unknown,
        },
        "gateway.result" => gateway_outcome(event),
        "token.refused" | "mandate.denied" | "mandate.refused" | "mandate.approval_timed_out" => {
            Outcome::Failure
        }
        "mandate.pending_approval" => Outcome::Pending,
        "mandate.requested" => match detail_str(event, "status") {
            Some("pending_approval") => Outcome::Pending,
            Some("denied") => Outcome::Failure,
            _ => Outcome::Success,
        },
        _ => Outcome::Success,
    }
}

/// What the gateway said of a forwarded call (`details` of `gateway.result`).
fn gateway_outcome(event: &AuditEvent) -> Outcome {
    if detail(event, "upstream_error").is_some() || detail(event, "request_body_error").is_some() {
        return Outcome::Failure;
    }
    if let Some(o) = detail_str(event, "outcome") {
        return if o == "ok" {
            Outcome::Success
        } else {
            Outcome::Failure
        };
    }
    match detail(event, "upstream_status").and_then(Value::as_u64) {
        Some(s) if s < 400 => Outcome::Success,
        Some(_) => Outcome::Failure,
        None => Outcome::Unknown,
    }
}

/// The member `key` of the event's `details`, when they are an object that has it.
pub(crate) fn detail<'a>(event: &'a AuditEvent, key: &str) -> Option<&'a Value> {
    event.details.as_ref()?.as_object()?.get(key)
}

/// [`detail`], when it is a string.
pub(crate) fn detail_str<'a>(event: &'a AuditEvent, key: &str) -> Option<&'a str> {
    detail(event, key)?.as_str()
}

/// `value` as text: a string as it is, anything else as its JSON.
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// The mandate an event concerns: `details.mandate` (every mandate event, a decision
/// under a mandate, an exchanged token), else `context.mandate`.
pub(crate) fn mandate(event: &AuditEvent) -> Option<&str> {
    detail_str(event, "mandate").or_else(|| {
        event
            .context
            .as_ref()?
            .as_object()?
            .get("mandate")?
            .as_str()
    })
}

/// One line saying what happened, for OCSF `message` and ECS `message`:
/// `decision deny: agent agt_1 for alice, files.read on file a.txt`.
pub(crate) fn summary(event: &AuditEvent) -> String {
    let mut s = event.kind.clone();
    if let Some(d) = &event.decision {
        s.push(' ');
        s.push_str(d);
    }
    let mut parts: Vec<String> = Vec::new();
    if let Some(a) = &event.agent {
        parts.push(format!("agent {a}"));
    }
    if let Some(u) = &event.user {
        parts.push(format!("for {u}"));
    }
    if let Some(a) = &event.actor {
        parts.push(format!("by {a}"));
    }
    if let Some(a) = &event.action {
        let on = event
            .resource
            .as_ref()
            .and_then(Value::as_object)
            .map(|r| {
                let part = |k: &str| r.get(k).map(text).unwrap_or_default();
                format!(" on {} {}", part("type"), part("id"))
            })
            .unwrap_or_default();
        parts.push(format!("{a}{on}"));
    }
    if let Some(m) = mandate(event) {
        parts.push(format!("mandate {m}"));
    }
    if !parts.is_empty() {
        s.push_str(": ");
        s.push_str(&parts.join(", "));
    }
    s
}

/// Mandate's own fields of `event` that OCSF and ECS have no place for, named as in
/// Mandate's event: `kind`, `node`, `seq`, the strings it has (agent, its `owner`,
/// user, actor, `mandate`, request id, action, decision), and the policy ids and reasons
/// when there are any. `ocsf::unmapped` and `ecs::extras` start from these.
pub(crate) fn own_fields(
    event: &mandate_audit::event::AuditEvent,
    cx: &crate::Context<'_>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("kind".into(), event.kind.as_str().into());
    m.insert("node".into(), event.node.as_str().into());
    m.insert("seq".into(), event.seq.into());
    let strings = [
        ("agent", event.agent.as_deref()),
        ("owner", cx.owner),
        ("user", event.user.as_deref()),
        ("actor", event.actor.as_deref()),
        ("mandate", mandate(event)),
        ("request_id", event.request_id.as_deref()),
        ("action", event.action.as_deref()),
        ("decision", event.decision.as_deref()),
    ];
    for (k, v) in strings {
        if let Some(v) = v {
            m.insert(k.into(), v.into());
        }
    }
    for (k, list) in [
        ("policy_ids", &event.policy_ids),
        ("reasons", &event.reasons),
    ] {
        if !list.is_empty() {
            m.insert(k.into(), list.iter().map(String::as_str).collect());
        }
    }
    m
}
