//! OCSF 1.x records of audit events: one record per event, in the class that fits its
//! kind ([`activity`]), so a SIEM that speaks OCSF files Mandate's decisions, logins and
//! account changes with everyone else's.
//!
//! Targets OCSF [`VERSION`]; `tests/export/ocsf_schema.rs` validates every case against
//! that version's published schema (as the `pydantic-ocsf` package bundles it).
//!
//! | kinds | class |
//! | --- | --- |
//! | `token.*`, `dev.user_token_issued` | Authentication (3002) |
//! | `agent.*`, `credential.*`, `incident.contained` | Account Change (3001) |
//! | `mandate.*` | User Access Management (3005) |
//! | `decision`, `opa.decision`, `authzen.search`, `gateway.result` | API Activity (6003) |
//! | `anomaly.*` | Detection Finding (2004) |
//! | `policy.*`, `keys.*`, `admin_token.*`, `gateway.secret_*` | Entity Management (3004) |
//! | anything else | Base Event (0) |
//!
//! Where the agent goes: the class's `user` (3001, 3002, 3005), `actor.user` (6003), the
//! finding's `evidences[].actor.user` (2004) — an OCSF user of `type` `AI agent`
//! (`type_id` 99, Other: OCSF 1.7 has no agent user type). Its accountable owner is
//! `resources[].owner` of the agent's own resource entry (role Actor) where the class
//! has `resources` (6003, 3005, 2004). OCSF has no attribute for the human an agent acts
//! for, nor for a mandate: those, the owner again, and everything else Mandate knows
//! (kind, node, seq, actor, policy ids, reasons, details, context) are under
//! `unmapped`, named as in Mandate's own event.

use mandate_audit::event::AuditEvent;
use serde_json::{Map, Value, json};

use crate::Context;
use crate::facts::{self, Outcome, detail, detail_str, text};

/// The OCSF schema version the records follow (`metadata.version`).
pub const VERSION: &str = "1.7.0";

/// `metadata.product.name` and `vendor_name`.
pub const PRODUCT: &str = "Mandate";

/// The OCSF classes Mandate's events map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Base Event (0): a kind Mandate does not map, kept rather than dropped.
    Base,
    /// Detection Finding (2004): anomalies.
    DetectionFinding,
    /// Account Change (3001): an agent's lifecycle and credentials.
    AccountChange,
    /// Authentication (3002): tokens issued, refused, revoked.
    Authentication,
    /// Entity Management (3004): admin changes to policies, keys, admin tokens, secrets.
    EntityManagement,
    /// User Access Management (3005): mandates, the privileges an agent is granted.
    UserAccess,
    /// API Activity (6003): authorization decisions and what became of them.
    ApiActivity,
}

impl Class {
    /// `class_uid`: the category's uid times 1000 plus the class's own.
    pub fn uid(self) -> u32 {
        match self {
            Self::Base => 0,
            Self::DetectionFinding => 2004,
            Self::AccountChange => 3001,
            Self::Authentication => 3002,
            Self::EntityManagement => 3004,
            Self::UserAccess => 3005,
            Self::ApiActivity => 6003,
        }
    }

    /// `class_name`, the schema's caption.
    pub fn name(self) -> &'static str {
        match self {
            Self::Base => "Base Event",
            Self::DetectionFinding => "Detection Finding",
            Self::AccountChange => "Account Change",
            Self::Authentication => "Authentication",
            Self::EntityManagement => "Entity Management",
            Self::UserAccess => "User Access Management",
            Self::ApiActivity => "API Activity",
        }
    }

    /// `category_uid`.
    pub fn category_uid(self) -> u32 {
        self.uid() / 1000
    }

    /// `category_name`, the schema's caption.
    fn category_name(self) -> &'static str {
        match self.category_uid() {
            2 => "Findings",
            3 => "Identity & Access Management",
            6 => "Application Activity",
            _ => "Uncategorized",
        }
    }
}

/// A kind's class and activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// The class.
    pub class: Class,
    /// `activity_id`, one of the class's; 99 (Other) where none fits.
    pub id: u32,
    /// The schema's caption of `id`; `None` for 99, whose `activity_name` is the kind.
    pub caption: Option<&'static str>,
}

/// The OCSF "Other" activity, status and type: the event's own label says what it is.
const OTHER: u32 = 99;

/// The class and activity of `kind` (see the module's table). Why each:
/// - a token is an agent's login: issued and refused are Logon (1), succeeded or
///   failed; revoked is Logoff (2);
/// - an agent is an account: registered is Create, suspended Disable, resumed Enable,
///   decommissioned Delete; containment (`incident.contained`) Lock; a rotated
///   credential is Password Change, the closest OCSF has for a key;
/// - a mandate grants an agent privileges: requested, approved and their refusals are
///   Assign Privileges (their status says whether it was granted); revoked, expired
///   and completed end it, Revoke Privileges;
/// - a decision answers an API call: OCSF's CRUD activities do not say "authorize", so
///   Other, except a search (Read);
/// - an anomaly is a finding: detected Create, acknowledged and dismissed Close;
/// - policies, signing keys, admin tokens and gateway secrets are what an admin
///   manages: Entity Management's Create, Update, Delete and Activate (a policy version
///   activated or rolled back to);
/// - an access review campaign is a managed entity (started Create, completed Update);
///   narrowing an agent in one revokes privileges, decommissioning deletes the account;
///   a certification or an escalation is the family's Other;
/// - a discovery run reads what runs in a cluster or cloud: Entity Management's Read;
/// - an unknown kind is a Base Event, so no event is ever dropped.
pub fn activity(kind: &str) -> Activity {
    use Class::*;
    let (class, id, caption) = match kind {
        "token.issued" | "token.refused" | "dev.user_token_issued" => {
            (Authentication, 1, Some("Logon"))
        }
        "token.revoked" => (Authentication, 2, Some("Logoff")),
        "agent.registered" => (AccountChange, 1, Some("Create")),
        "agent.resumed" => (AccountChange, 2, Some("Enable")),
        "credential.rotated" => (AccountChange, 3, Some("Password Change")),
        "agent.suspended" => (AccountChange, 5, Some("Disable")),
        "agent.decommissioned" => (AccountChange, 6, Some("Delete")),
        "incident.contained" => (AccountChange, 9, Some("Lock")),
        "mandate.requested"
        | "mandate.approved"
        | "mandate.denied"
        | "mandate.refused"
        | "mandate.pending_approval"
        | "mandate.approval_timed_out" => (UserAccess, 1, Some("Assign Privileges")),
        "mandate.revoked" | "mandate.expired" | "mandate.completed" => {
            (UserAccess, 2, Some("Revoke Privileges"))
        }
        "authzen.search" => (ApiActivity, 2, Some("Read")),
        "decision" | "opa.decision" | "gateway.result" => (ApiActivity, OTHER, None),
        "anomaly.detected" => (DetectionFinding, 1, Some("Create")),
        "anomaly.acknowledged" | "anomaly.dismissed" => (DetectionFinding, 3, Some("Close")),
        "policy.added" | "admin_token.created" => (EntityManagement, 1, Some("Create")),
        "policy.module_put" | "keys.rotated" | "gateway.secret_set" => {
            (EntityManagement, 3, Some("Update"))
        }
        "policy.module_deleted" | "admin_token.revoked" | "gateway.secret_deleted" => {
            (EntityManagement, 4, Some("Delete"))
        }
        "policy.activated" | "policy.rolled_back" => (EntityManagement, 10, Some("Activate")),
        "review.started" => (EntityManagement, 1, Some("Create")),
        "review.completed" => (EntityManagement, 3, Some("Update")),
        "review.narrowed" => (UserAccess, 2, Some("Revoke Privileges")),
        "review.decommissioned" => (AccountChange, 6, Some("Delete")),
        "discovery.run" | "discovery.failed" => (EntityManagement, 2, Some("Read")),
        _ => {
            let family = kind.split_once('.').map_or(kind, |(f, _)| f);
            let class = match family {
                "token" => Authentication,
                "agent" | "credential" | "incident" => AccountChange,
                "mandate" => UserAccess,
                "anomaly" => DetectionFinding,
                "policy" | "keys" | "admin_token" | "gateway" | "review" | "discovery" => {
                    EntityManagement
                }
                _ => Base,
            };
            (class, OTHER, None)
        }
    };
    Activity { class, id, caption }
}

/// `severity_id` and its caption, from the syslog severity of the event
/// ([`crate::syslog::severity`]), so both formats rank an event alike: critical 2 is
/// Critical (5), error 3 High (4), warning 4 Medium (3), notice 5 Low (2), and anything
/// milder Informational (1).
pub fn severity(event: &AuditEvent) -> (u32, &'static str) {
    match crate::syslog::severity(event) {
        0..=2 => (5, "Critical"),
        3 => (4, "High"),
        4 => (3, "Medium"),
        5 => (2, "Low"),
        _ => (1, "Informational"),
    }
}

/// The OCSF record of `event`.
pub fn record(event: &AuditEvent, cx: &Context<'_>) -> Value {
    let act = activity(&event.kind);
    let class = act.class;
    let (severity_id, severity) = severity(event);
    let activity_name = act.caption.unwrap_or(event.kind.as_str());
    let mut r = Map::new();
    let mut put = |k: &str, v: Value| {
        r.insert(k.to_owned(), v);
    };
    put("category_uid", class.category_uid().into());
    put("category_name", class.category_name().into());
    put("class_uid", class.uid().into());
    put("class_name", class.name().into());
    put("activity_id", act.id.into());
    put("activity_name", activity_name.into());
    put(
        "type_uid",
        (u64::from(class.uid()) * 100 + u64::from(act.id)).into(),
    );
    put(
        "type_name",
        format!("{}: {activity_name}", class.name()).into(),
    );
    put("severity_id", severity_id.into());
    put("severity", severity.into());
    put("time", event.time.secs().saturating_mul(1000).into());
    put("message", facts::summary(event).into());
    put("metadata", metadata(event));
    put("unmapped", unmapped(event, cx));
    if class != Class::DetectionFinding {
        let (id, name) = match facts::outcome(event) {
            Outcome::Success => (1, "Success"),
            Outcome::Failure => (2, "Failure"),
            Outcome::Pending => (OTHER, "Pending"),
            Outcome::Unknown => (0, "Unknown"),
        };
        put("status_id", id.into());
        put("status", name.into());
    }
    match class {
        Class::Base => {}
        Class::Authentication => authentication(event, &mut r),
        Class::AccountChange => account_change(event, &mut r),
        Class::UserAccess => user_access(event, cx, &mut r),
        Class::ApiActivity => api_activity(event, cx, &mut r),
        Class::DetectionFinding => detection_finding(event, cx, &mut r),
        Class::EntityManagement => entity_management(event, &mut r),
    }
    Value::Object(r)
}

/// `metadata`: the event id as `uid` (a receiver de-duplicates by it and asks for its
/// Merkle proof by it), its seq as `sequence`, and as `correlation_uid` what links it
/// to other events: its W3C trace id when it has one (issue 23: OCSF 1.7's `trace`
/// object exists only as a profile, `correlation_uid` is the base attribute for it),
/// else the request (or, for a gateway result, the decision) it belongs to; the
/// request id stays in `unmapped`.
fn metadata(event: &AuditEvent) -> Value {
    let mut m = Map::new();
    m.insert("version".into(), VERSION.into());
    m.insert(
        "product".into(),
        json!({"name": PRODUCT, "vendor_name": PRODUCT, "version": env!("CARGO_PKG_VERSION")}),
    );
    m.insert("uid".into(), event.id().into());
    m.insert("sequence".into(), event.seq.into());
    m.insert("log_name".into(), "audit".into());
    m.insert("original_time".into(), event.time.to_string().into());
    let correlation = event
        .trace_id
        .map(|t| t.to_string())
        .or_else(|| event.request_id.clone())
        .or_else(|| detail_str(event, "decision_id").map(str::to_owned));
    if let Some(c) = correlation {
        m.insert("correlation_uid".into(), c.into());
    }
    Value::Object(m)
}

/// `unmapped`: what OCSF has no attribute for, named as in Mandate's own event, plus the
/// agent's `owner` and the `mandate`.
fn unmapped(event: &AuditEvent, cx: &Context<'_>) -> Value {
    let mut m = facts::own_fields(event, cx);
    for (k, v) in [
        ("resource", &event.resource),
        ("context", &event.context),
        ("details", &event.details),
    ] {
        match v {
            None | Some(Value::Null) => {}
            Some(v) => {
                m.insert(k.into(), v.clone());
            }
        }
    }
    Value::Object(m)
}

/// The OCSF user of agent `id`.
fn agent_user(id: &str) -> Value {
    json!({"uid": id, "type_id": OTHER, "type": "AI agent"})
}

/// The user of a class that must have one: the agent, or an unknown user named
/// `unknown` when the event has none (the attribute is required).
fn class_user(event: &AuditEvent) -> Value {
    event.agent.as_deref().map_or_else(
        || json!({"name": "unknown", "type_id": 0, "type": "Unknown"}),
        agent_user,
    )
}

/// The OCSF user of an act's actor, by the form of Mandate's actor names: an admin
/// token `adm_…`, an agent `agt_…`, a human `user:{sub}`, or Mandate itself (`policy`,
/// `timeout`, `expiry`, `detector`).
fn actor_user(actor: &str) -> Value {
    if let Some(sub) = actor.strip_prefix("user:") {
        return json!({"uid": sub, "type_id": 1, "type": "User"});
    }
    if actor.starts_with("agt_") {
        return agent_user(actor);
    }
    if actor.starts_with("adm_") {
        return json!({"uid": actor, "type_id": 2, "type": "Admin"});
    }
    if matches!(actor, "policy" | "timeout" | "expiry" | "detector") {
        return json!({"name": actor, "type_id": 3, "type": "System"});
    }
    json!({"uid": actor, "type_id": 0, "type": "Unknown"})
}

/// `actor` with the act's actor as its user, when the event names one.
fn put_actor(event: &AuditEvent, r: &mut Map<String, Value>) {
    if let Some(a) = &event.actor {
        r.insert("actor".into(), json!({ "user": actor_user(a) }));
    }
}

/// The agent as a resource (role Actor), with its accountable owner.
fn agent_resource(event: &AuditEvent, cx: &Context<'_>) -> Option<Value> {
    let agent = event.agent.as_deref()?;
    let mut m = Map::new();
    m.insert("uid".into(), agent.into());
    m.insert("type".into(), "AI agent".into());
    m.insert("role_id".into(), 2.into());
    m.insert("role".into(), "Actor".into());
    if let Some(o) = cx.owner {
        m.insert(
            "owner".into(),
            json!({"name": o, "type_id": 1, "type": "User"}),
        );
    }
    Some(Value::Object(m))
}

/// Authentication: the agent logs on (is issued a token), is refused, or is logged off
/// (a token revoked). A refused client's claimed id is unverified: it is the user's
/// `name`, typed Unknown, unless it was a well-formed agent id.
fn authentication(event: &AuditEvent, r: &mut Map<String, Value>) {
    let user = if event.kind == "dev.user_token_issued" {
        let sub = detail_str(event, "sub").unwrap_or("unknown");
        json!({"uid": sub, "type_id": 1, "type": "User"})
    } else if event.agent.is_none()
        && let Some(claimed) = detail_str(event, "client_id")
    {
        json!({"name": claimed, "type_id": 0, "type": "Unknown"})
    } else {
        class_user(event)
    };
    r.insert("user".into(), user);
    if let Some(e) = detail_str(event, "error") {
        r.insert("status_detail".into(), e.into());
    }
    let token = detail_str(event, "token_id").or_else(|| detail_str(event, "jti"));
    if let Some(jti) = token {
        let mut s = Map::new();
        s.insert("uid".into(), jti.into());
        if let Some(exp) = detail(event, "exp").and_then(Value::as_i64) {
            s.insert("expiration_time".into(), exp.saturating_mul(1000).into());
        }
        r.insert("session".into(), Value::Object(s));
    }
    put_actor(event, r);
}

/// Account Change: the agent is the account; a credential event names the credential
/// as the user's `credential_uid`.
fn account_change(event: &AuditEvent, r: &mut Map<String, Value>) {
    let mut user = class_user(event);
    if let (Some(c), Value::Object(u)) = (detail_str(event, "credential"), &mut user) {
        u.insert("credential_uid".into(), c.into());
    }
    r.insert("user".into(), user);
    if let Some(why) = detail_str(event, "reason") {
        r.insert("status_detail".into(), why.into());
    }
    put_actor(event, r);
}

/// User Access Management: a mandate assigns the agent privileges — the action patterns
/// of its grants (`details.scope`), or the mandate itself when the event does not list
/// them (a revocation names only the mandate).
fn user_access(event: &AuditEvent, cx: &Context<'_>, r: &mut Map<String, Value>) {
    r.insert("user".into(), class_user(event));
    let mut privileges: Vec<String> = Vec::new();
    let mut resources: Vec<Value> = Vec::new();
    let grants = detail(event, "scope").and_then(Value::as_array);
    for g in grants.into_iter().flatten() {
        let list = |k: &str| {
            g.get(k)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
        };
        for a in list("actions") {
            if !privileges.iter().any(|p| p == a) {
                privileges.push(a.to_owned());
            }
        }
        for res in list("resources") {
            resources.push(
                json!({"name": res, "type": "resource pattern", "role_id": 1, "role": "Target"}),
            );
        }
    }
    if privileges.is_empty() {
        privileges.push(
            facts::mandate(event).map_or_else(|| "mandate".to_owned(), |m| format!("mandate:{m}")),
        );
    }
    r.insert("privileges".into(), privileges.into());
    resources.extend(agent_resource(event, cx));
    if !resources.is_empty() {
        r.insert("resources".into(), resources.into());
    }
    if let Some(s) = detail_str(event, "status") {
        r.insert("status_code".into(), s.into());
    }
    put_actor(event, r);
}

/// API Activity: the agent's call that Mandate decided. The agent is `actor.user`, the
/// caller that asked (an enforcer's token) `actor.app_uid`, and the decision with each
/// policy that made it `actor.authorizations[]`; the resource asked for and the agent
/// itself are `resources`.
fn api_activity(event: &AuditEvent, cx: &Context<'_>, r: &mut Map<String, Value>) {
    let mut actor = Map::new();
    if let Some(a) = &event.agent {
        actor.insert("user".into(), agent_user(a));
    }
    if let Some(a) = &event.actor {
        actor.insert("app_uid".into(), a.as_str().into());
    }
    if let Some(d) = &event.decision {
        let version = detail(event, "policy_version").map(text);
        let auths: Vec<Value> = if event.policy_ids.is_empty() {
            vec![json!({ "decision": d })]
        } else {
            event
                .policy_ids
                .iter()
                .map(|p| {
                    let mut policy = json!({"uid": p, "name": p, "is_applied": true});
                    if let (Some(v), Value::Object(o)) = (&version, &mut policy) {
                        o.insert("version".into(), v.as_str().into());
                    }
                    json!({"decision": d, "policy": policy})
                })
                .collect()
        };
        actor.insert("authorizations".into(), auths.into());
    }
    if !actor.contains_key("user") && !actor.contains_key("app_uid") {
        // `actor` must name someone: a gateway result is the gateway's own record.
        actor.insert("app_name".into(), "mandate".into());
    }
    r.insert("actor".into(), Value::Object(actor));

    let mut api = Map::new();
    let operation = event
        .action
        .as_deref()
        .unwrap_or(match event.kind.as_str() {
            "decision" | "opa.decision" => "authorize",
            "authzen.search" => "search",
            "gateway.result" => "forward",
            k => k,
        });
    api.insert("operation".into(), operation.into());
    api.insert("service".into(), json!({"name": "mandate"}));
    if let Some(id) = &event.request_id {
        api.insert("request".into(), json!({ "uid": id }));
    }
    r.insert("api".into(), Value::Object(api));

    // Who called, as far as the event knows: the context's `ip` when it is one, and the
    // caller's id.
    let mut src = Map::new();
    let caller = event
        .agent
        .as_deref()
        .or(event.actor.as_deref())
        .unwrap_or("unknown");
    src.insert("name".into(), caller.into());
    let ip = event
        .context
        .as_ref()
        .and_then(|c| c.get("ip"))
        .and_then(Value::as_str)
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    if let Some(ip) = ip {
        src.insert("ip".into(), ip.into());
    }
    r.insert("src_endpoint".into(), Value::Object(src));
    r.insert(
        "dst_endpoint".into(),
        json!({"name": event.node.as_str(), "svc_name": "mandate"}),
    );

    let mut resources: Vec<Value> = Vec::new();
    if let Some(res) = event.resource.as_ref().and_then(target_resource) {
        resources.push(res);
    }
    resources.extend(agent_resource(event, cx));
    if !resources.is_empty() {
        r.insert("resources".into(), resources.into());
    }
    if let Some(s) = detail(event, "upstream_status").or_else(|| detail(event, "upstream_error")) {
        r.insert("status_code".into(), text(s).into());
    }
    if let Some(o) = detail_str(event, "outcome") {
        r.insert("status_detail".into(), o.into());
    } else if !event.reasons.is_empty() {
        r.insert("status_detail".into(), event.reasons.join("; ").into());
    }
}

/// The resource an event's `resource` names (role Target): `{type, id}` as `type` and
/// `uid`; a string (a search's type) as `uid`; anything else as its JSON text in `uid`,
/// since OCSF needs a name or uid and its `data` must be an object.
fn target_resource(v: &Value) -> Option<Value> {
    let mut m = Map::new();
    match v {
        Value::Null => return None,
        Value::Object(o) if o.contains_key("id") => {
            if let Some(t) = o.get("type") {
                m.insert("type".into(), text(t).into());
            }
            if let Some(id) = o.get("id") {
                m.insert("uid".into(), text(id).into());
            }
        }
        v => {
            if let Some(t) = v.get("type") {
                m.insert("type".into(), text(t).into());
            }
            m.insert("uid".into(), text(v).into());
        }
    }
    m.insert("role_id".into(), 1.into());
    m.insert("role".into(), "Target".into());
    Some(Value::Object(m))
}

/// Detection Finding: the anomaly is the finding (`finding_info.uid` its id), the
/// detector's kind its behavioural analytic; detected is New and an alert,
/// acknowledged Resolved, dismissed (a false positive) Suppressed.
fn detection_finding(event: &AuditEvent, cx: &Context<'_>, r: &mut Map<String, Value>) {
    let mut info = Map::new();
    let uid = detail_str(event, "anomaly").map_or_else(|| event.id(), str::to_owned);
    info.insert("uid".into(), uid.into());
    let kind = detail_str(event, "kind");
    let title = detail_str(event, "explanation")
        .or(kind)
        .unwrap_or(event.kind.as_str());
    info.insert("title".into(), title.into());
    if let Some(k) = kind {
        info.insert("types".into(), json!([k]));
    }
    info.insert(
        "analytic".into(),
        json!({"type_id": 2, "type": "Behavioral", "name": kind.unwrap_or("mandate-detect")}),
    );
    r.insert("finding_info".into(), Value::Object(info));
    let (status_id, status) = match event.kind.as_str() {
        "anomaly.detected" => (1, "New"),
        "anomaly.acknowledged" => (4, "Resolved"),
        "anomaly.dismissed" => (3, "Suppressed"),
        _ => (2, "In Progress"),
    };
    r.insert("status_id".into(), status_id.into());
    r.insert("status".into(), status.into());
    r.insert("is_alert".into(), (event.kind == "anomaly.detected").into());
    if let Some(c) = detail_str(event, "comment") {
        r.insert("comment".into(), c.into());
    }
    if let Some(a) = &event.agent {
        r.insert(
            "evidences".into(),
            json!([{ "actor": { "user": agent_user(a) } }]),
        );
    }
    if let Some(res) = agent_resource(event, cx) {
        r.insert("resources".into(), json!([res]));
    }
}

/// Entity Management: what an admin changed — a policy version or module, the token
/// signing key, an admin token, a gateway secret (by name; its value is never
/// recorded).
fn entity_management(event: &AuditEvent, r: &mut Map<String, Value>) {
    let family = event
        .kind
        .split_once('.')
        .map_or(event.kind.as_str(), |(f, _)| f);
    let mut e = Map::new();
    let version = detail(event, "version").map(text);
    match (family, event.kind.as_str()) {
        ("policy", _) => {
            e.insert("type_id".into(), 5.into());
            e.insert("type".into(), "Policy".into());
            let module = detail_str(event, "module");
            e.insert("name".into(), module.unwrap_or("policy set").into());
            if let Some(uid) = module.map(str::to_owned).or_else(|| version.clone()) {
                e.insert("uid".into(), uid.into());
            }
            if let Some(v) = version {
                e.insert("version".into(), v.into());
            }
        }
        (_, "keys.rotated") => {
            e.insert("type".into(), "Signing Key".into());
            e.insert("name".into(), "token signing key".into());
            if let Some(kid) = detail_str(event, "kid") {
                e.insert("uid".into(), kid.into());
            }
        }
        ("admin_token", _) => {
            e.insert("type".into(), "Admin Token".into());
            let name = detail_str(event, "name").unwrap_or("admin token");
            e.insert("name".into(), name.into());
            if let Some(id) = detail_str(event, "admin_token") {
                e.insert("uid".into(), id.into());
            }
        }
        (_, "gateway.secret_set" | "gateway.secret_deleted") => {
            e.insert("type".into(), "Gateway Secret".into());
            let name = detail_str(event, "name").unwrap_or("gateway secret");
            e.insert("name".into(), name.into());
        }
        _ => {
            e.insert("type".into(), family.into());
            e.insert("name".into(), event.kind.as_str().into());
        }
    }
    r.insert("entity".into(), Value::Object(e));
    put_actor(event, r);
}
