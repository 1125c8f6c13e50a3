//! The audit event — the record of one thing that happened on one node — and its
//! canonical bytes, which are what the Merkle log commits to.

use std::fmt;
use std::fmt::Write as _;

use mandate_core::time::Timestamp;
use mandate_core::trace::TraceId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::canonical::{write_canonical_json, write_string};
use crate::merkle::{self, Hash};

/// The name of a node: 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
///
/// It appears in events, in the checkpoint origin `mandate/<node>` and in the signed-note
/// key name, which must contain neither spaces nor `+`; the small alphabet keeps all
/// three unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(String);

/// A string that is not a valid node name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid node name `{0}`: use 1 to 64 ASCII letters, digits, `.`, `_` or `-`")]
pub struct NodeNameError(String);

impl NodeName {
    /// Checks and wraps a node name.
    pub fn new(name: &str) -> Result<Self, NodeNameError> {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(NodeNameError(name.to_owned()))
        }
    }

    /// The checked name: 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for NodeName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NodeName::new(&s).map_err(serde::de::Error::custom)
    }
}

/// The id of an event: `"{node}:{seq}"`, unique across nodes because each node numbers
/// its own log. The `seq` is the part after the last `:`.
pub fn event_id(node: &NodeName, seq: u64) -> String {
    let mut id = String::with_capacity(node.0.len() + 21);
    id.push_str(&node.0);
    id.push(':');
    // Writing to a `String` cannot fail.
    let _ = write!(id, "{seq}");
    id
}

/// One thing that happened: a decision, a token issued or refused, an admin action.
///
/// # Canonical form
///
/// The leaf the log commits to is [`AuditEvent::canonical_bytes`]: the RFC 8785
/// canonical JSON of the object with the members below, where
/// - `seq`, `time`, `node` and `kind` are always present (`time` as the RFC 3339 string
///   `YYYY-MM-DDTHH:MM:SSZ`);
/// - an optional field that is `None` — or, for the JSON-valued `resource`, `context`
///   and `details`, `Some(null)` — is omitted (so `trace_id`, added later, is absent
///   from every event written before it, whose leaves are unchanged);
/// - `policy_ids` and `reasons` are omitted when empty.
///
/// The `Serialize` form is exactly this object, so an event parsed back from an export
/// has the same canonical bytes (a `null` JSON field deserializes as `None`, which is why
/// `Some(null)` is omitted rather than written).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Position in this node's log, from 0.
    pub seq: u64,
    /// When it happened.
    pub time: Timestamp,
    /// The node whose log this is.
    pub node: NodeName,
    /// What happened: `decision`, `token.issued`, `token.refused`, `credential.added`,
    /// `policy.activated`, `agent.suspended`, …
    pub kind: String,
    /// The request it belongs to.
    pub request_id: Option<String>,
    /// The W3C trace the request belonged to (the caller's `traceparent`'s trace id, or
    /// the one Mandate started), lower-case hex.
    pub trace_id: Option<TraceId>,
    /// The agent concerned.
    pub agent: Option<String>,
    /// The user on whose behalf the agent acted.
    pub user: Option<String>,
    /// Who did it, for admin actions: the admin token id.
    pub actor: Option<String>,
    /// The action asked for.
    pub action: Option<String>,
    /// The resource acted on.
    pub resource: Option<Value>,
    /// Request context, after redaction (see `redact`).
    pub context: Option<Value>,
    /// `allow` or `deny`, for decisions.
    pub decision: Option<String>,
    /// Policies that determined the decision.
    #[serde(default)]
    pub policy_ids: Vec<String>,
    /// Human-readable reasons.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Anything else worth keeping.
    pub details: Option<Value>,
}

impl AuditEvent {
    /// An event with only the required fields set.
    pub fn new(seq: u64, time: Timestamp, node: NodeName, kind: impl Into<String>) -> Self {
        Self {
            seq,
            time,
            node,
            kind: kind.into(),
            request_id: None,
            trace_id: None,
            agent: None,
            user: None,
            actor: None,
            action: None,
            resource: None,
            context: None,
            decision: None,
            policy_ids: Vec::new(),
            reasons: Vec::new(),
            details: None,
        }
    }

    /// This event's id, `"{node}:{seq}"`.
    pub fn id(&self) -> String {
        event_id(&self.node, self.seq)
    }

    /// The JSON object of the canonical form (see the type's documentation).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("seq".into(), self.seq.into());
        m.insert("time".into(), self.time.to_string().into());
        m.insert("node".into(), self.node.as_str().into());
        m.insert("kind".into(), self.kind.as_str().into());
        let strings = [
            ("request_id", &self.request_id),
            ("agent", &self.agent),
            ("user", &self.user),
            ("actor", &self.actor),
            ("action", &self.action),
            ("decision", &self.decision),
        ];
        for (name, value) in strings {
            if let Some(v) = value {
                m.insert(name.into(), v.as_str().into());
            }
        }
        let values = [
            ("resource", &self.resource),
            ("context", &self.context),
            ("details", &self.details),
        ];
        for (name, value) in values {
            match value {
                None | Some(Value::Null) => {}
                Some(v) => {
                    m.insert(name.into(), v.clone());
                }
            }
        }
        if let Some(t) = &self.trace_id {
            m.insert("trace_id".into(), t.to_string().into());
        }
        for (name, list) in [("policy_ids", &self.policy_ids), ("reasons", &self.reasons)] {
            if !list.is_empty() {
                m.insert(name.into(), list.iter().map(String::as_str).collect());
            }
        }
        Value::Object(m)
    }

    /// RFC 8785 canonical JSON of [`AuditEvent::to_json`]: the bytes the log commits to.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        self.write_canonical(&mut out);
        out.into_bytes()
    }

    /// Appends [`AuditEvent::canonical_bytes`] to `out`, straight from the fields: no
    /// [`AuditEvent::to_json`] object is built and nothing is cloned.
    pub fn write_canonical(&self, out: &mut String) {
        self.write_canonical_with(out, &mut TimeText::default());
    }

    /// [`AuditEvent::write_canonical`], taking the text of `time` from `times` when the
    /// previous event written with it had the same time (a group commit's events all
    /// do; formatting a time costs a fifth of writing a decision event).
    ///
    /// INVARIANT (canonical order): the members are written in RFC 8785 order — their
    /// names are ASCII, so UTF-16 order is byte order — with `to_json`'s omission rules;
    /// `write_canonical_is_canonical_json_of_to_json` checks it against
    /// `canonical_json(&self.to_json())` for arbitrary events. A change here changes the
    /// leaves of every existing log.
    pub fn write_canonical_with(&self, out: &mut String, times: &mut TimeText) {
        fn text(out: &mut String, name: &str, value: Option<&String>) {
            if let Some(v) = value {
                member(out, name);
                write_string(out, v);
            }
        }
        fn json(out: &mut String, name: &str, value: Option<&Value>) {
            match value {
                None | Some(Value::Null) => {}
                Some(v) => {
                    member(out, name);
                    write_canonical_json(out, v);
                }
            }
        }
        fn list(out: &mut String, name: &str, values: &[String]) {
            if values.is_empty() {
                return;
            }
            member(out, name);
            out.push('[');
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, v);
            }
            out.push(']');
        }
        /// `"name":`, after a `,` unless it is the first member (names here need no
        /// escaping).
        fn member(out: &mut String, name: &str) {
            // No value ends with `{`: only the object's own opening brace does.
            if !out.ends_with('{') {
                out.push(',');
            }
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
        }
        out.push('{');
        text(out, "action", self.action.as_ref());
        text(out, "actor", self.actor.as_ref());
        text(out, "agent", self.agent.as_ref());
        json(out, "context", self.context.as_ref());
        text(out, "decision", self.decision.as_ref());
        json(out, "details", self.details.as_ref());
        text(out, "kind", Some(&self.kind));
        member(out, "node");
        write_string(out, self.node.as_str());
        list(out, "policy_ids", &self.policy_ids);
        list(out, "reasons", &self.reasons);
        text(out, "request_id", self.request_id.as_ref());
        json(out, "resource", self.resource.as_ref());
        member(out, "seq");
        let _ = write!(out, "{}", self.seq);
        member(out, "time");
        // RFC 3339 `YYYY-MM-DDTHH:MM:SSZ`: nothing in it is escaped.
        out.push('"');
        out.push_str(times.of(self.time));
        out.push('"');
        if let Some(t) = &self.trace_id {
            member(out, "trace_id");
            // Lower-case hex: nothing in it is escaped.
            let _ = write!(out, "\"{t}\"");
        }
        text(out, "user", self.user.as_ref());
        out.push('}');
    }

    /// The Merkle leaf hash, `SHA-256(0x00 ‖ canonical_bytes)`.
    pub fn leaf_hash(&self) -> Hash {
        merkle::leaf_hash(&self.canonical_bytes())
    }
}

/// The RFC 3339 text of the last time asked for, kept for the next event with the same
/// time (see [`AuditEvent::write_canonical_with`]).
#[derive(Debug, Default)]
pub struct TimeText {
    /// INVARIANT (time text): `text` is `time`'s `Display` form, whenever `time` is set.
    time: Option<Timestamp>,
    text: String,
}

impl TimeText {
    /// The text of `time`, formatted only when it differs from the last one.
    fn of(&mut self, time: Timestamp) -> &str {
        if self.time != Some(time) {
            self.text.clear();
            // Writing to a `String` cannot fail.
            let _ = write!(self.text, "{time}");
            self.time = Some(time);
        }
        &self.text
    }
}

impl Serialize for AuditEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::canonical_json;
    use crate::testgen::arb_json;
    use proptest::prelude::*;
    use serde_json::json;

    fn node() -> NodeName {
        NodeName::new("node-1").unwrap()
    }

    #[test]
    fn node_names() {
        for good in ["a", "node-1", "eu-west.pod_7", &"x".repeat(64)] {
            assert!(NodeName::new(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "a+b", "a:b", "a/b", "é", &"x".repeat(65)] {
            assert!(NodeName::new(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<NodeName>(r#""a b""#).is_err());
        assert_eq!(event_id(&node(), 42), "node-1:42");
    }

    #[test]
    fn minimal_event_canonical_form() {
        let e = AuditEvent::new(
            0,
            Timestamp::from_secs(1_700_000_000),
            node(),
            "token.issued",
        );
        assert_eq!(
            String::from_utf8(e.canonical_bytes()).unwrap(),
            r#"{"kind":"token.issued","node":"node-1","seq":0,"time":"2023-11-14T22:13:20Z"}"#
        );
        assert_eq!(e.id(), "node-1:0");
        // Pinned (`printf '\x00…' | sha256sum`): changing the canonical form changes every
        // leaf of every existing log.
        assert_eq!(
            crate::hex::encode(&e.leaf_hash()),
            "8b258b3c9c054e848a4640a3cad6af1620753cb95f2373a5ad1abae3f796fcd6"
        );
    }

    #[test]
    fn full_event_round_trips_with_same_leaf() {
        let mut e = AuditEvent::new(7, Timestamp::from_secs(1_700_000_000), node(), "decision");
        e.request_id = Some("req_1".into());
        e.trace_id = Some(TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap());
        e.agent = Some("agt_01".into());
        e.user = Some("alice".into());
        e.actor = Some("adm_01".into());
        e.action = Some("files.read".into());
        e.resource = Some(json!({"type": "file", "id": "a\u{1}b"}));
        e.context = Some(json!({"ip": "10.0.0.1", "score": 0.25}));
        e.decision = Some("deny".into());
        e.policy_ids = vec!["p1".into(), "p2".into()];
        e.reasons = vec!["outside boundary".into()];
        e.details = Some(json!([1, 2.5, null]));
        let text = serde_json::to_string(&e).unwrap();
        let back: AuditEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.canonical_bytes(), e.canonical_bytes());
        assert_eq!(serde_json::to_value(&e).unwrap(), e.to_json());
    }

    #[test]
    fn omission_rules() {
        let mut e = AuditEvent::new(1, Timestamp::from_secs(0), node(), "x");
        let bare = e.canonical_bytes();
        e.resource = Some(Value::Null);
        e.policy_ids = vec![];
        assert_eq!(
            e.canonical_bytes(),
            bare,
            "null JSON fields and empty lists are omitted"
        );
        e.user = Some(String::new());
        assert_ne!(e.canonical_bytes(), bare, "an empty string is a value");
        let back: AuditEvent = serde_json::from_slice(&e.canonical_bytes()).unwrap();
        assert_eq!(back.canonical_bytes(), e.canonical_bytes());
    }

    fn arb_event() -> impl Strategy<Value = AuditEvent> {
        let text = || prop::option::of(any::<String>());
        let json = || prop::option::of(arb_json());
        (
            (
                any::<u64>(),
                -10_000_000_000_i64..300_000_000_000,
                any::<String>(),
            ),
            (text(), text(), text(), text(), text(), text()),
            (json(), json(), json(), prop::option::of(any::<[u8; 16]>())),
            (
                prop::collection::vec(any::<String>(), 0..3),
                prop::collection::vec(any::<String>(), 0..3),
            ),
        )
            .prop_map(
                |(
                    (seq, secs, kind),
                    (request_id, agent, user, actor, action, decision),
                    (resource, context, details, trace),
                    (policy_ids, reasons),
                )| AuditEvent {
                    seq,
                    time: Timestamp::from_secs(secs),
                    node: NodeName::new("eu-west.pod_7").unwrap(),
                    kind,
                    request_id,
                    trace_id: trace.and_then(|b| TraceId::from_bytes(b).ok()),
                    agent,
                    user,
                    actor,
                    action,
                    resource,
                    context,
                    decision,
                    policy_ids,
                    reasons,
                    details,
                },
            )
    }

    proptest! {
        // INVARIANT (canonical order): the direct writer and the canonical JSON of the
        // event's JSON object are the same bytes.
        #[test]
        fn write_canonical_is_canonical_json_of_to_json(e in arb_event()) {
            let mut out = String::from("prefix");
            e.write_canonical(&mut out);
            let want = canonical_json(&e.to_json());
            prop_assert_eq!(out.strip_prefix("prefix").unwrap().as_bytes(), want.as_slice());
            prop_assert_eq!(e.canonical_bytes(), want);
            // A kept time text is used only for the same time.
            let mut times = TimeText::default();
            let mut other = e.clone();
            other.time = other.time.plus_secs(1);
            let mut first = String::new();
            other.write_canonical_with(&mut first, &mut times);
            prop_assert_eq!(first.into_bytes(), other.canonical_bytes());
            let mut second = String::new();
            e.write_canonical_with(&mut second, &mut times);
            prop_assert_eq!(second.into_bytes(), e.canonical_bytes());
        }
    }

    /// Issue 23: the trace id is a member of the canonical form, in its sorted place, and
    /// an event without one has the bytes it had before the field existed.
    #[test]
    fn trace_id_member() {
        let mut e = AuditEvent::new(0, Timestamp::from_secs(1_700_000_000), node(), "decision");
        e.user = Some("u".into());
        let before = e.canonical_bytes();
        assert_eq!(
            String::from_utf8(before).unwrap(),
            r#"{"kind":"decision","node":"node-1","seq":0,"time":"2023-11-14T22:13:20Z","user":"u"}"#
        );
        e.trace_id = Some(TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap());
        assert_eq!(
            String::from_utf8(e.canonical_bytes()).unwrap(),
            r#"{"kind":"decision","node":"node-1","seq":0,"time":"2023-11-14T22:13:20Z","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","user":"u"}"#
        );
        let bad = r#"{"kind":"x","node":"n","seq":0,"time":"1970-01-01T00:00:00Z","trace_id":"4BF92F3577B34DA6A3CE929D0E0E4736"}"#;
        assert!(serde_json::from_str::<AuditEvent>(bad).is_err());
    }

    #[test]
    fn strict_parsing() {
        let ok = r#"{"kind":"x","node":"n","seq":0,"time":"1970-01-01T00:00:00Z"}"#;
        assert!(serde_json::from_str::<AuditEvent>(ok).is_ok());
        for bad in [
            r#"{"kind":"x","node":"n","seq":0,"time":"1970-01-01T00:00:00Z","extra":1}"#,
            r#"{"kind":"x","node":"n","seq":0}"#,
            r#"{"kind":"x","node":"n n","seq":0,"time":"1970-01-01T00:00:00Z"}"#,
            r#"{"kind":"x","node":"n","seq":-1,"time":"1970-01-01T00:00:00Z"}"#,
        ] {
            assert!(serde_json::from_str::<AuditEvent>(bad).is_err(), "{bad}");
        }
    }
}
