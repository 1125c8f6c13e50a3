//! The audit event — the record of one thing that happened on one node — and its
//! canonical bytes, which are what the Merkle log commits to.

use std::fmt;

use mandate_core::time::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::canonical::canonical_json;
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

    /// The name.
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
    format!("{node}:{seq}")
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
///   and `details`, `Some(null)` — is omitted;
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
        for (name, list) in [("policy_ids", &self.policy_ids), ("reasons", &self.reasons)] {
            if !list.is_empty() {
                m.insert(name.into(), list.iter().map(String::as_str).collect());
            }
        }
        Value::Object(m)
    }

    /// RFC 8785 canonical JSON of [`AuditEvent::to_json`]: the bytes the log commits to.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        canonical_json(&self.to_json())
    }

    /// The Merkle leaf hash, `SHA-256(0x00 ‖ canonical_bytes)`.
    pub fn leaf_hash(&self) -> Hash {
        merkle::leaf_hash(&self.canonical_bytes())
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
