//! Elastic Common Schema documents of audit events, for an Elasticsearch or OpenSearch
//! `_bulk` sink: the ECS fields a SIEM's rules and dashboards query (`event.*`, `user.*`,
//! `rule.*`, `observer.*`, `related.user`), and everything Mandate-specific under
//! `mandate.*`.
//!
//! The agent is `user.id`/`user.name` (Mandate knows agents by id), the human it acted
//! for `user.effective.id`/`user.effective.name`; both, the owner and a human or agent
//! actor are in `related.user`, so one query finds every event touching a person.
//!
//! `mandate.details` and `mandate.context` are JSON text, not objects: their members
//! differ by kind (`details.previous` is a number in `policy.activated` and a string in
//! `credential.rotated`), and as objects one index's dynamic mapping would refuse the
//! second kind's documents.

use mandate_audit::event::AuditEvent;
use serde_json::{Map, Value, json};

use crate::Context;
use crate::facts::{self, detail, text};

/// The ECS version the documents follow (`ecs.version`).
pub const VERSION: &str = "8.17.0";

/// ECS `event.kind`, `event.category` and `event.type` of `kind` (`decision` is allowed
/// or denied by `decision`). Only ECS's allowed values, and only a type its category
/// expects; an unknown kind has no category rather than a wrong one.
pub fn categorization(
    kind: &str,
    decision: Option<&str>,
) -> (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
) {
    let family = kind.split_once('.').map_or(kind, |(f, _)| f);
    let event = "event";
    match (family, kind) {
        (_, "decision" | "opa.decision") => {
            let types: &[&str] = match decision {
                Some("allow") => &["access", "allowed"],
                Some("deny") => &["access", "denied"],
                _ => &["access", "info"],
            };
            (event, &["api"], types)
        }
        (_, "authzen.search") => (event, &["api"], &["access", "info"]),
        (_, "gateway.result") => (event, &["api"], &["info"]),
        (_, "token.revoked") => (event, &["authentication"], &["end"]),
        ("token", _) | (_, "dev.user_token_issued") => (event, &["authentication"], &["start"]),
        (_, "agent.registered") => (event, &["iam"], &["user", "creation"]),
        (_, "agent.decommissioned") => (event, &["iam"], &["user", "deletion"]),
        ("agent" | "credential" | "incident" | "mandate", _) => {
            (event, &["iam"], &["user", "change"])
        }
        (_, "admin_token.created") => (event, &["iam"], &["admin", "creation"]),
        (_, "admin_token.revoked") => (event, &["iam"], &["admin", "deletion"]),
        ("admin_token", _) => (event, &["iam"], &["admin", "change"]),
        (_, "anomaly.detected") => ("alert", &["intrusion_detection"], &["info"]),
        ("anomaly", _) => (event, &["intrusion_detection"], &["info"]),
        (_, "policy.added") => (event, &["configuration"], &["creation"]),
        (_, "policy.module_deleted" | "gateway.secret_deleted") => {
            (event, &["configuration"], &["deletion"])
        }
        ("policy" | "keys" | "gateway", _) => (event, &["configuration"], &["change"]),
        // An access review changes who may do what (iam); a discovery run looks at
        // what runs (host inventory).
        (_, "review.decommissioned") => (event, &["iam"], &["user", "deletion"]),
        ("review", _) => (event, &["iam"], &["user", "change"]),
        ("discovery", _) => (event, &["host"], &["info"]),
        _ => (event, &[], &[]),
    }
}

/// The ECS document of `event`.
pub fn document(event: &AuditEvent, cx: &Context<'_>) -> Value {
    let (kind, category, types) = categorization(&event.kind, event.decision.as_deref());
    let mut ev = Map::new();
    ev.insert("id".into(), event.id().into());
    ev.insert("kind".into(), kind.into());
    if !category.is_empty() {
        ev.insert("category".into(), json!(category));
        ev.insert("type".into(), json!(types));
    }
    ev.insert("action".into(), event.kind.as_str().into());
    ev.insert("outcome".into(), facts::outcome(event).ecs().into());
    ev.insert("sequence".into(), event.seq.into());
    // OCSF's severity_id (1 informational … 5 critical): larger is worse, as ECS
    // readers expect; the syslog severity is beside it in `log.syslog`.
    ev.insert("severity".into(), crate::ocsf::severity(event).0.into());
    ev.insert("module".into(), "mandate".into());
    ev.insert("dataset".into(), "mandate.audit".into());
    if !event.reasons.is_empty() {
        ev.insert("reason".into(), event.reasons.join("; ").into());
    }

    let mut doc = Map::new();
    doc.insert("@timestamp".into(), event.time.to_string().into());
    doc.insert("ecs".into(), json!({ "version": VERSION }));
    doc.insert("message".into(), facts::summary(event).into());
    doc.insert("event".into(), Value::Object(ev));
    if let Some(t) = &event.trace_id {
        doc.insert("trace".into(), json!({ "id": t.to_string() }));
    }
    let syslog = crate::syslog::severity(event);
    doc.insert(
        "log".into(),
        json!({"syslog": {"severity": {"code": syslog, "name": syslog_name(syslog)}}}),
    );
    doc.insert(
        "observer".into(),
        json!({"hostname": event.node.as_str(), "product": "Mandate", "vendor": "Mandate",
               "version": env!("CARGO_PKG_VERSION")}),
    );

    let mut user = Map::new();
    if let Some(a) = &event.agent {
        user.insert("id".into(), a.as_str().into());
        user.insert("name".into(), a.as_str().into());
    }
    if let Some(u) = &event.user {
        user.insert("effective".into(), json!({"id": u, "name": u}));
    }
    if !user.is_empty() {
        doc.insert("user".into(), Value::Object(user));
    }
    let human_actor = event
        .actor
        .as_deref()
        .map(|a| a.strip_prefix("user:").unwrap_or(a))
        .filter(|a| !matches!(*a, "policy" | "timeout" | "expiry" | "detector"));
    let mut related: Vec<&str> = Vec::new();
    for u in [
        event.agent.as_deref(),
        event.user.as_deref(),
        cx.owner,
        human_actor,
    ]
    .into_iter()
    .flatten()
    {
        if !related.contains(&u) {
            related.push(u);
        }
    }
    if !related.is_empty() {
        doc.insert("related".into(), json!({ "user": related }));
    }
    if !event.policy_ids.is_empty() {
        let mut rule = Map::new();
        rule.insert("id".into(), json!(event.policy_ids));
        if let Some(v) = detail(event, "policy_version") {
            rule.insert("ruleset".into(), text(v).into());
        }
        doc.insert("rule".into(), Value::Object(rule));
    }
    doc.insert("mandate".into(), extras(event, cx));
    Value::Object(doc)
}

/// `mandate.*`: what ECS has no field for, named as in Mandate's own event.
fn extras(event: &AuditEvent, cx: &Context<'_>) -> Value {
    let mut m = facts::own_fields(event, cx);
    // Type and id as text: one mapping whatever a caller's ids look like; a resource
    // that is not `{type, id}` (a search's type name) is all id.
    let mut res = Map::new();
    match &event.resource {
        None | Some(Value::Null) => {}
        Some(Value::Object(r)) => {
            for k in ["type", "id"] {
                if let Some(v) = r.get(k) {
                    res.insert(k.into(), text(v).into());
                }
            }
        }
        Some(v) => {
            res.insert("id".into(), text(v).into());
        }
    }
    if !res.is_empty() {
        m.insert("resource".into(), Value::Object(res));
    }
    for (k, v) in [("context", &event.context), ("details", &event.details)] {
        match v {
            None | Some(Value::Null) => {}
            Some(v) => {
                m.insert(k.into(), v.to_string().into());
            }
        }
    }
    Value::Object(m)
}

/// The RFC 5424 name of a syslog severity.
fn syslog_name(code: u8) -> &'static str {
    match code {
        0 => "emergency",
        1 => "alert",
        2 => "critical",
        3 => "error",
        4 => "warning",
        5 => "notice",
        6 => "informational",
        _ => "debug",
    }
}
