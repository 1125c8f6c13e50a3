//! Incident bundles: the forensic record `contain` writes about an agent (its record, the
//! mandates ended, the active policies, and its recent audit events, each with an
//! inclusion proof against a signed checkpoint), and the offline check of one.
//!
//! # Format `mandate-incident/v1`
//!
//! One JSON object, written as its RFC 8785 canonical form ([`canonical_json`]: members
//! sorted, no whitespace, no trailing newline). Shown here spread out, members in
//! reading order:
//!
//! ```text
//! {
//!   "bundle":     "mandate-incident/v1",
//!   "incident":   "inc_…",                  the incident id
//!   "node":       "node-…",                 the node whose log the events are from
//!   "agent":      "agt_…",                  the contained agent
//!   "created":    "YYYY-MM-DDTHH:MM:SSZ",   the time of the `incident.contained` event
//!   "evidence":   { … },                    what the node knew when it contained the agent
//!   "checkpoint": "mandate/node-…\n…",      a signed checkpoint of the node's log
//!   "events": [                             the agent's events, oldest first
//!     {"seq": 41, "event": { … }, "proof": ["<base64 hash>", …]},
//!     …
//!   ]
//! }
//! ```
//!
//! - `event` is the audit event in its canonical form (see [`AuditEvent`]): its
//!   canonical bytes are the Merkle leaf, and `proof` is its RFC 9162 inclusion proof
//!   (padded base64 hashes, lowest first) in the tree the checkpoint signs.
//! - Among the events is exactly one `incident.contained` event whose
//!   `details.incident` is the bundle's incident; its `details.evidence_sha256` is the
//!   lowercase hex SHA-256 of the canonical JSON of `evidence` ([`evidence_sha256`]).
//!   So the evidence, though not itself in the log, is covered by the signature too.
//! - `evidence` is an object whose members the node chooses. Mandate writes `agent` (the
//!   agent's record after containment), `previous_status`, `cutoff` (tokens issued at or
//!   before it are dead), `mandates` (the mandates it ended, after the change),
//!   `policies` (the active policy version: `version`, `policies`, `schema_fragments`,
//!   `note`, `created_at`, `created_by`; `null` when none is active) and `reason`.
//!
//! # What verifies ([`verify_bundle`])
//!
//! Only the bundle and the node's public key are needed:
//!
//! - the bytes are the canonical form of what they parse to, with no unknown member,
//!   so every byte is covered by a hash or a signature;
//! - the checkpoint's layout and signature verify and it names the bundle's node;
//! - every event is canonical, from that node, about the bundle's agent; its `seq` is
//!   the listed one, seqs strictly increase, and its leaf hash and proof lead to the
//!   checkpoint's root at index `seq`;
//! - the `incident.contained` event is there once, at the bundle's `created` time,
//!   and its `evidence_sha256` is the hash of `evidence`.
//!
//! A bundle shows the events it holds, not that they are all the agent's events: the
//! node chose which to include (the most recent ones). Compare the checkpoint with one
//! kept elsewhere, or verify the node's export, to see the rest of the log.

use ed25519_dalek::VerifyingKey;
use mandate_core::id::{AgentId, IncidentId};
use mandate_core::time::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::b64;
use crate::canonical::canonical_json;
use crate::checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
use crate::event::{AuditEvent, NodeName};
use crate::merkle::{self, Hash, ProofError};

/// The `bundle` member of this format.
pub const FORMAT: &str = "mandate-incident/v1";

/// The kind of the audit event that records a containment.
pub const CONTAINED_KIND: &str = "incident.contained";

/// One event as a node puts it into a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleEvent {
    /// Its position in the node's log.
    pub seq: u64,
    /// Its canonical JSON, as stored (the bytes its leaf hash covers).
    pub body: String,
    /// Its inclusion proof in the tree of the bundle's checkpoint.
    pub proof: Vec<Hash>,
}

/// What a node writes into a bundle (see [`write_bundle`]).
#[derive(Debug, Clone, Copy)]
pub struct NewBundle<'a> {
    /// The incident id.
    pub incident: &'a IncidentId,
    /// The node whose log the events are from.
    pub node: &'a NodeName,
    /// The contained agent.
    pub agent: &'a AgentId,
    /// What the node knew at containment; its hash is in the `incident.contained` event.
    pub evidence: &'a Map<String, Value>,
    /// A checkpoint covering every event below.
    pub checkpoint: &'a SignedCheckpoint,
    /// The agent's events, oldest first; one of them is the `incident.contained` event.
    pub events: &'a [BundleEvent],
}

/// What a verified bundle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleReport {
    /// The incident the bundle was exported for (`inc_…`).
    pub incident: IncidentId,
    /// The contained agent.
    pub agent: AgentId,
    /// The node whose log the events are from.
    pub node: NodeName,
    /// When the agent was contained (the `incident.contained` event's time).
    pub created: Timestamp,
    /// How many events the bundle holds.
    pub events: u64,
    /// The first and last of their seqs.
    pub seqs: (u64, u64),
    /// The seq of the `incident.contained` event.
    pub contained_seq: u64,
    /// The checkpoint every event was proved against.
    pub checkpoint: Checkpoint,
    /// The hex SHA-256 of the evidence.
    pub evidence_sha256: String,
}

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    /// The bytes are not one JSON value.
    #[error("not JSON: {0}")]
    Json(String),
    /// The document is not an incident bundle of a known shape.
    #[error("not an incident bundle: {0}")]
    Shape(String),
    /// The `bundle` member names another format.
    #[error("unsupported bundle format `{0}`; this verifier reads `{FORMAT}`")]
    Format(String),
    /// The bytes are not the canonical form of the bundle.
    #[error("bundle is not in canonical form (RFC 8785: sorted members, no whitespace)")]
    NotCanonical,
    /// The checkpoint's text or signature is invalid.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint is another node's.
    #[error("checkpoint is node `{checkpoint}`'s, the bundle names `{bundle}`")]
    Node {
        /// The bundle's `node`.
        bundle: String,
        /// The checkpoint's node.
        checkpoint: String,
    },
    /// The bundle has no events.
    #[error("bundle holds no events")]
    NoEvents,
    /// An event failed a check.
    #[error("event {index} (seq {seq}): {failure}")]
    Event {
        /// Its position in `events`, from 0.
        index: usize,
        /// Its listed seq.
        seq: u64,
        /// What failed.
        failure: EventFailure,
    },
    /// No `incident.contained` event of this incident is in the bundle.
    #[error("no `incident.contained` event for incident `{0}`")]
    NoContainedEvent(String),
    /// More than one `incident.contained` event of this incident is in the bundle.
    #[error("more than one `incident.contained` event for incident `{0}`")]
    RepeatedContainedEvent(String),
    /// The evidence is not what the `incident.contained` event says it was.
    #[error("evidence has SHA-256 `{got}`, the `incident.contained` event says `{want}`")]
    Evidence {
        /// The hash recorded in the event (empty if it has none).
        want: String,
        /// The hash of the bundle's evidence.
        got: String,
    },
    /// `created` is not the `incident.contained` event's time.
    #[error("`created` is `{bundle}`, the `incident.contained` event's time is {event}")]
    Created {
        /// The bundle's `created`.
        bundle: String,
        /// The event's time.
        event: Timestamp,
    },
}

/// The checks one event of a bundle can fail.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventFailure {
    /// It is not an audit event.
    #[error("not an audit event: {0}")]
    Parse(String),
    /// It is an audit event, but not in the canonical form its leaf hash covers.
    #[error("event is not in canonical form")]
    NotCanonical,
    /// The event's own `seq` is not the listed one.
    #[error("the event's own seq is {event}")]
    Seq {
        /// The event's `seq` member.
        event: u64,
    },
    /// Seqs do not strictly increase.
    #[error("seq does not follow seq {previous}")]
    Order {
        /// The seq before it.
        previous: u64,
    },
    /// The event is from another node's log.
    #[error("event is from node `{0}`")]
    Node(String),
    /// The event is not about the bundle's agent.
    #[error("event is about agent `{0}`, not the bundle's")]
    Agent(String),
    /// A proof hash is not canonical padded base64.
    #[error("proof hash {0} is not base64")]
    ProofEncoding(usize),
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error("inclusion proof: {0}")]
    Proof(ProofError),
}

/// The lowercase hex SHA-256 of the canonical JSON of `evidence`: what the
/// `incident.contained` event records as `evidence_sha256`.
pub fn evidence_sha256(evidence: &Map<String, Value>) -> String {
    let bytes = canonical_json(&Value::Object(evidence.clone()));
    crate::hex::encode(&Sha256::digest(bytes))
}

/// Whether `e` is the `incident.contained` event of `incident`.
fn is_contained(e: &AuditEvent, incident: &str) -> bool {
    e.kind == CONTAINED_KIND
        && e.details
            .as_ref()
            .and_then(|d| d.get("incident"))
            .and_then(Value::as_str)
            == Some(incident)
}

/// Writes a bundle (see the module documentation) as canonical JSON. Checks only what it
/// needs to write one: every body is an audit event, and the `incident.contained` event
/// of the incident is among them (its time is `created`). Proofs and signatures are the
/// caller's; [`verify_bundle`] checks the result.
pub fn write_bundle(b: &NewBundle<'_>) -> Result<Vec<u8>, BundleError> {
    let mut events = Vec::with_capacity(b.events.len());
    let mut created = None;
    for (index, ev) in b.events.iter().enumerate() {
        let fail = |failure| BundleError::Event {
            index,
            seq: ev.seq,
            failure,
        };
        let value: Value =
            serde_json::from_str(&ev.body).map_err(|e| fail(EventFailure::Parse(e.to_string())))?;
        let event = AuditEvent::deserialize(&value)
            .map_err(|e| fail(EventFailure::Parse(e.to_string())))?;
        if is_contained(&event, b.incident.as_str()) {
            created = Some(event.time);
        }
        let proof: Vec<Value> = ev
            .proof
            .iter()
            .map(|h| Value::String(b64::encode(h)))
            .collect();
        let mut m = Map::new();
        m.insert("seq".into(), ev.seq.into());
        m.insert("event".into(), value);
        m.insert("proof".into(), Value::Array(proof));
        events.push(Value::Object(m));
    }
    let created = created.ok_or_else(|| BundleError::NoContainedEvent(b.incident.to_string()))?;
    let mut m = Map::new();
    m.insert("bundle".into(), FORMAT.into());
    m.insert("incident".into(), b.incident.as_str().into());
    m.insert("node".into(), b.node.as_str().into());
    m.insert("agent".into(), b.agent.as_str().into());
    m.insert("created".into(), created.to_string().into());
    m.insert("evidence".into(), Value::Object(b.evidence.clone()));
    m.insert("checkpoint".into(), b.checkpoint.text.clone().into());
    m.insert("events".into(), Value::Array(events));
    Ok(canonical_json(&Value::Object(m)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    bundle: String,
    incident: String,
    node: NodeName,
    agent: String,
    /// Kept as text: it must be the event's time exactly as the event writes it.
    created: String,
    evidence: Map<String, Value>,
    checkpoint: String,
    events: Vec<WireEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvent {
    seq: u64,
    event: Value,
    proof: Vec<String>,
}

/// Verifies an incident bundle (see the module documentation) against the public key of
/// the node that wrote it.
pub fn verify_bundle(bytes: &[u8], key: &VerifyingKey) -> Result<BundleReport, BundleError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| BundleError::Json(e.to_string()))?;
    // The format first, so a later version is reported as such and not as a bad shape.
    match value.get("bundle") {
        Some(Value::String(f)) if f == FORMAT => {}
        Some(Value::String(f)) => return Err(BundleError::Format(f.chars().take(64).collect())),
        _ => {
            return Err(BundleError::Shape(
                "expected an object with a `bundle` member".into(),
            ));
        }
    }
    if canonical_json(&value) != bytes {
        return Err(BundleError::NotCanonical);
    }
    let wire = Wire::deserialize(&value).map_err(|e| BundleError::Shape(e.to_string()))?;
    if wire.bundle != FORMAT {
        return Err(BundleError::Format(wire.bundle));
    }
    let incident =
        IncidentId::parse(&wire.incident).map_err(|e| BundleError::Shape(e.to_string()))?;
    let agent = AgentId::parse(&wire.agent).map_err(|e| BundleError::Shape(e.to_string()))?;
    let checkpoint = SignedCheckpoint {
        text: wire.checkpoint,
    }
    .verify(key)?;
    if checkpoint.node != wire.node {
        return Err(BundleError::Node {
            bundle: wire.node.to_string(),
            checkpoint: checkpoint.node.to_string(),
        });
    }
    let mut previous: Option<u64> = None;
    let mut contained: Option<AuditEvent> = None;
    for (index, ev) in wire.events.iter().enumerate() {
        let fail = |failure| BundleError::Event {
            index,
            seq: ev.seq,
            failure,
        };
        let event = AuditEvent::deserialize(&ev.event)
            .map_err(|e| fail(EventFailure::Parse(e.to_string())))?;
        let leaf_bytes = canonical_json(&ev.event);
        if event.canonical_bytes() != leaf_bytes {
            return Err(fail(EventFailure::NotCanonical));
        }
        if event.seq != ev.seq {
            return Err(fail(EventFailure::Seq { event: event.seq }));
        }
        if let Some(p) = previous
            && ev.seq <= p
        {
            return Err(fail(EventFailure::Order { previous: p }));
        }
        previous = Some(ev.seq);
        // An event from before a restore names the node's earlier name
        // (`crate::epoch`); its inclusion proof below still ties it to this log.
        if event.node != checkpoint.node
            && !crate::epoch::same_lineage(&event.node, &checkpoint.node)
        {
            return Err(fail(EventFailure::Node(event.node.to_string())));
        }
        if event.agent.as_deref() != Some(agent.as_str()) {
            return Err(fail(EventFailure::Agent(
                event.agent.clone().unwrap_or_default(),
            )));
        }
        let proof = ev
            .proof
            .iter()
            .enumerate()
            .map(|(i, h)| b64::decode_canonical(h).ok_or(EventFailure::ProofEncoding(i)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        merkle::verify_inclusion(
            &merkle::leaf_hash(&leaf_bytes),
            ev.seq,
            checkpoint.size,
            &proof,
            &checkpoint.root,
        )
        .map_err(|e| fail(EventFailure::Proof(e)))?;
        if is_contained(&event, incident.as_str()) {
            if contained.is_some() {
                return Err(BundleError::RepeatedContainedEvent(incident.to_string()));
            }
            contained = Some(event);
        }
    }
    let (Some(first), Some(last)) = (wire.events.first(), wire.events.last()) else {
        return Err(BundleError::NoEvents);
    };
    let contained = contained.ok_or_else(|| BundleError::NoContainedEvent(incident.to_string()))?;
    let digest = evidence_sha256(&wire.evidence);
    let recorded = contained
        .details
        .as_ref()
        .and_then(|d| d.get("evidence_sha256"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if recorded != digest {
        return Err(BundleError::Evidence {
            want: recorded.to_owned(),
            got: digest,
        });
    }
    if contained.time.to_string() != wire.created {
        return Err(BundleError::Created {
            bundle: wire.created.chars().take(64).collect(),
            event: contained.time,
        });
    }
    Ok(BundleReport {
        incident,
        agent,
        node: checkpoint.node.clone(),
        created: contained.time,
        events: u64::try_from(wire.events.len()).unwrap_or(u64::MAX),
        seqs: (first.seq, last.seq),
        contained_seq: contained.seq,
        checkpoint,
        evidence_sha256: digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evidence_hash_is_of_the_canonical_form() {
        let a = json!({"b": [1, "x"], "a": {"z": null, "y": true}});
        let b: Value =
            serde_json::from_str(r#"{ "a": {"y": true, "z": null}, "b": [1, "x"] }"#).unwrap();
        let (Value::Object(a), Value::Object(b)) = (a, b) else {
            panic!("objects")
        };
        assert_eq!(evidence_sha256(&a), evidence_sha256(&b));
        // Pinned: `printf '{"a":{"y":true,"z":null},"b":[1,"x"]}' | sha256sum`.
        assert_eq!(
            evidence_sha256(&a),
            crate::hex::encode(&Sha256::digest(br#"{"a":{"y":true,"z":null},"b":[1,"x"]}"#))
        );
        assert_eq!(evidence_sha256(&a).len(), 64);
    }

    #[test]
    fn shape_errors_come_before_canonical_form() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        assert!(matches!(
            verify_bundle(b"not json", &key),
            Err(BundleError::Json(_))
        ));
        assert!(matches!(
            verify_bundle(b"[1,2]", &key),
            Err(BundleError::Shape(_))
        ));
        assert!(matches!(
            verify_bundle(br#"{"event":{}}"#, &key),
            Err(BundleError::Shape(_))
        ));
        assert_eq!(
            verify_bundle(br#"{"bundle": "mandate-incident/v9"}"#, &key),
            Err(BundleError::Format("mandate-incident/v9".into()))
        );
        assert_eq!(
            verify_bundle(br#"{"bundle": "mandate-incident/v1"}"#, &key),
            Err(BundleError::NotCanonical)
        );
        assert!(matches!(
            verify_bundle(br#"{"bundle":"mandate-incident/v1"}"#, &key),
            Err(BundleError::Shape(_))
        ));
    }
}
