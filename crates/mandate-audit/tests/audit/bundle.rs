//! Incident bundles: one written the way a node writes it verifies offline, to the report
//! its writer expects; any changed byte of it (in an event, the evidence, a proof or
//! anywhere else) fails; and each kind of tampering is reported as what it is.

use ed25519_dalek::{SigningKey, VerifyingKey};
use mandate_audit::bundle::{
    BundleError, BundleEvent, CONTAINED_KIND, EventFailure, FORMAT, NewBundle, evidence_sha256,
    verify_bundle, write_bundle,
};
use mandate_audit::canonical::canonical_json;
use mandate_audit::checkpoint::Checkpoint;
use mandate_audit::event::{AuditEvent, NodeName};
use mandate_audit::merkle::{self, ProofError};
use mandate_core::id::{AgentId, IncidentId};
use mandate_core::time::Timestamp;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn vk() -> VerifyingKey {
    key().verifying_key()
}

fn node() -> NodeName {
    NodeName::new("node-a").unwrap()
}

fn agent() -> AgentId {
    AgentId::parse("agt_01HZX0000000000000000000AG").unwrap()
}

fn other_agent() -> AgentId {
    AgentId::parse("agt_01HZX0000000000000000000XY").unwrap()
}

fn incident() -> IncidentId {
    IncidentId::parse("inc_01HZX00000000000000000001N").unwrap()
}

const CONTAINED_AT: i64 = 1_700_000_100;

fn evidence() -> Map<String, Value> {
    let v = json!({
        "agent": {"id": agent(), "name": "billing-bot", "status": "suspended",
                  "status_reason": "exfiltration — \"suspected\"\n", "labels": {"team": "ops"}},
        "previous_status": "active",
        "cutoff": "2023-11-14T22:15:00Z",
        "mandates": [{"id": "mdt_01HZX0000000000000000000MD", "status": "revoked"}],
        "policies": {"version": 3, "policies": "permit (principal, action, resource);",
                     "schema_fragments": ["namespace Crm { entity Contact; }"]},
        "reason": "exfiltration suspected",
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// A log and the bundle written from it.
struct Fixture {
    /// The whole log.
    log: Vec<AuditEvent>,
    /// The bundle's bytes.
    bytes: Vec<u8>,
    /// The seqs in the bundle.
    seqs: Vec<u64>,
    /// The seq of the `incident.contained` event.
    contained: u64,
}

/// A log of `before` (one flag per event: is it the agent's?), the `incident.contained`
/// event, then `after` more events; the bundle holds the agent's last `n` events up to
/// the contained one, proved against a checkpoint of the whole log.
fn fixture(before: &[bool], after: &[bool], n: usize) -> Fixture {
    renamed_fixture(before, after, n, 0, &node())
}

/// As [`fixture`], with the first `renamed` events named `earlier` (the node's name
/// before a restore, or another node's).
fn renamed_fixture(
    before: &[bool],
    after: &[bool],
    n: usize,
    renamed: u64,
    earlier: &NodeName,
) -> Fixture {
    let mut log = Vec::new();
    let push = |log: &mut Vec<AuditEvent>, ours: bool, kind: &str| {
        let seq = log.len() as u64;
        let mut e = AuditEvent::new(
            seq,
            Timestamp::from_secs(1_700_000_000 + seq as i64),
            if seq < renamed {
                earlier.clone()
            } else {
                node()
            },
            kind,
        );
        let who = if ours { agent() } else { other_agent() };
        e.agent = Some(who.to_string());
        if kind == "decision" {
            e.action = Some("crm:read".into());
            e.decision = Some(
                if seq.is_multiple_of(2) {
                    "allow"
                } else {
                    "deny"
                }
                .into(),
            );
            e.context = Some(json!({"score": 0.25, "prompt": "é\u{1}"}));
            e.reasons = vec!["allowed_by_policy".into()];
        }
        log.push(e);
    };
    for &ours in before {
        push(&mut log, ours, "decision");
    }
    let contained = log.len() as u64;
    let mut e = AuditEvent::new(
        contained,
        Timestamp::from_secs(CONTAINED_AT),
        node(),
        CONTAINED_KIND,
    );
    e.agent = Some(agent().to_string());
    e.actor = Some("adm_01HZX0000000000000000000AD".into());
    e.details = Some(json!({
        "incident": incident(),
        "reason": "exfiltration suspected",
        "mandates_revoked": ["mdt_01HZX0000000000000000000MD"],
        "evidence_sha256": evidence_sha256(&evidence()),
    }));
    log.push(e);
    for &ours in after {
        push(&mut log, ours, "decision");
    }
    let leaves: Vec<_> = log.iter().map(AuditEvent::leaf_hash).collect();
    let checkpoint = Checkpoint {
        node: node(),
        size: log.len() as u64,
        root: merkle::root(&leaves),
        time: Timestamp::from_secs(CONTAINED_AT + 1),
    }
    .sign(&key());
    let mut seqs: Vec<u64> = log
        .iter()
        .filter(|e| e.seq <= contained && e.agent.as_deref() == Some(agent().as_str()))
        .map(|e| e.seq)
        .collect();
    seqs = seqs.split_off(seqs.len().saturating_sub(n.max(1)));
    let proofs = merkle::inclusion_proofs(&leaves, &seqs).unwrap();
    let events: Vec<BundleEvent> = seqs
        .iter()
        .zip(proofs)
        .map(|(&seq, proof)| BundleEvent {
            seq,
            body: String::from_utf8(log[seq as usize].canonical_bytes()).unwrap(),
            proof,
        })
        .collect();
    let bytes = write_bundle(&NewBundle {
        incident: &incident(),
        node: &node(),
        agent: &agent(),
        evidence: &evidence(),
        checkpoint: &checkpoint,
        events: &events,
    })
    .unwrap();
    Fixture {
        log,
        bytes,
        seqs,
        contained,
    }
}

/// Regression (backup and restore): a restored node's bundle holds the agent's events
/// from before the restore, which name the node's earlier name; they verify, while an
/// event naming another node is still refused.
#[test]
fn events_from_before_a_restore_verify_and_another_nodes_do_not() {
    let restored = NodeName::new("node-a.r0011223344").unwrap();
    let before = NodeName::new("node-a").unwrap();
    // The fixture's checkpoint names `node()` (`node-a`); lineage ignores which of two
    // names of one node came first, so `node-a.rff` stands for the other name here.
    assert!(mandate_audit::epoch::same_lineage(&before, &restored));
    let f = renamed_fixture(
        &[true, false, true],
        &[],
        10,
        2,
        &NodeName::new("node-a.rff").unwrap(),
    );
    verify_bundle(&f.bytes, &vk()).unwrap();
    let f = renamed_fixture(
        &[true, false, true],
        &[],
        10,
        2,
        &NodeName::new("node-b").unwrap(),
    );
    assert!(matches!(
        verify_bundle(&f.bytes, &vk()),
        Err(BundleError::Event {
            failure: EventFailure::Node(_),
            ..
        })
    ));
}

fn small() -> Fixture {
    fixture(&[true, false, true, false, false, true], &[true, false], 10)
}

/// The bundle as a JSON value.
fn parsed(f: &Fixture) -> Value {
    serde_json::from_slice(&f.bytes).unwrap()
}

/// Re-encodes a changed bundle canonically (so only the change itself is judged).
fn encode(v: &Value) -> Vec<u8> {
    canonical_json(v)
}

/// The byte range of `needle` in `hay` (it must occur).
fn range_of(hay: &[u8], needle: &[u8]) -> std::ops::Range<usize> {
    let start = hay.windows(needle.len()).position(|w| w == needle).unwrap();
    start..start + needle.len()
}

#[test]
fn a_written_bundle_verifies_to_its_report() {
    let f = small();
    let r = verify_bundle(&f.bytes, &vk()).unwrap();
    assert_eq!(r.incident, incident());
    assert_eq!(r.agent, agent());
    assert_eq!(r.node, node());
    assert_eq!(r.created, Timestamp::from_secs(CONTAINED_AT));
    assert_eq!(r.events, f.seqs.len() as u64);
    assert_eq!(r.seqs, (f.seqs[0], *f.seqs.last().unwrap()));
    assert_eq!(r.contained_seq, f.contained);
    assert_eq!(r.checkpoint.size, f.log.len() as u64);
    assert_eq!(r.evidence_sha256, evidence_sha256(&evidence()));
    // Canonical: sorted members, no whitespace, the format first among what a reader
    // looks for.
    let v = parsed(&f);
    assert_eq!(v["bundle"], FORMAT);
    assert_eq!(v["events"].as_array().unwrap().len(), 4);
    assert_eq!(encode(&v), f.bytes);
    assert!(!f.bytes.contains(&b'\n'));
}

#[test]
fn only_the_agents_most_recent_events_up_to_the_containment() {
    let f = fixture(&[true, true, false, true], &[true], 2);
    assert_eq!(f.seqs, vec![3, 4]);
    assert_eq!(verify_bundle(&f.bytes, &vk()).unwrap().events, 2);
    // Just the contained event, first in its log.
    let f = fixture(&[], &[], 1);
    assert_eq!(f.seqs, vec![0]);
    assert_eq!(verify_bundle(&f.bytes, &vk()).unwrap().checkpoint.size, 1);
}

#[test]
fn every_single_byte_change_fails() {
    let f = small();
    for i in 0..f.bytes.len() {
        for delta in [0x01u8, 0x20, 0x80] {
            let mut b = f.bytes.clone();
            b[i] ^= delta;
            assert!(
                verify_bundle(&b, &vk()).is_err(),
                "byte {i} ^ {delta:#04x} accepted: {}",
                String::from_utf8_lossy(&b)
            );
        }
    }
}

#[test]
fn the_wrong_key_or_a_foreign_node_fails() {
    let f = small();
    let other = SigningKey::from_bytes(&[7; 32]).verifying_key();
    assert!(matches!(
        verify_bundle(&f.bytes, &other),
        Err(BundleError::Checkpoint(_))
    ));
    let mut v = parsed(&f);
    v["node"] = json!("node-b");
    assert!(matches!(
        verify_bundle(&encode(&v), &vk()),
        Err(BundleError::Node { .. })
    ));
}

#[test]
fn each_kind_of_tampering_is_named() {
    let f = small();
    let v = parsed(&f);
    let check = |v: &Value| verify_bundle(&encode(v), &vk());
    let event_failure = |r: Result<_, BundleError>| match r {
        Err(BundleError::Event { failure, .. }) => failure,
        other => panic!("expected an event failure, got {other:?}"),
    };

    // The evidence changed: its hash no longer matches the signed event.
    let mut t = v.clone();
    t["evidence"]["agent"]["status"] = json!("active");
    assert!(matches!(check(&t), Err(BundleError::Evidence { .. })));
    let mut t = v.clone();
    t["evidence"]["policies"] = Value::Null;
    assert!(matches!(check(&t), Err(BundleError::Evidence { .. })));

    // An event changed: its leaf no longer leads to the signed root.
    let mut t = v.clone();
    t["events"][0]["event"]["decision"] = json!("allow");
    t["events"][0]["event"]["reasons"] = json!(["no_permit"]);
    assert_eq!(
        event_failure(check(&t)),
        EventFailure::Proof(ProofError::RootMismatch)
    );
    // A proof hash changed, dropped or added.
    let mut t = v.clone();
    t["events"][1]["proof"][0] = json!(b64(&[9; 32]));
    assert_eq!(
        event_failure(check(&t)),
        EventFailure::Proof(ProofError::RootMismatch)
    );
    let mut t = v.clone();
    t["events"][1]["proof"].as_array_mut().unwrap().pop();
    assert!(matches!(
        event_failure(check(&t)),
        EventFailure::Proof(ProofError::ProofLength { .. })
    ));
    let mut t = v.clone();
    t["events"][1]["proof"][0] = json!("AAAA");
    assert!(matches!(
        event_failure(check(&t)),
        EventFailure::Proof(ProofError::HashLength(3))
    ));
    let mut t = v.clone();
    t["events"][1]["proof"][0] = json!("not base64!");
    assert_eq!(event_failure(check(&t)), EventFailure::ProofEncoding(0));

    // Reordered, or listed under another seq.
    let mut t = v.clone();
    t["events"].as_array_mut().unwrap().swap(0, 1);
    assert!(matches!(
        event_failure(check(&t)),
        EventFailure::Order { .. }
    ));
    let mut t = v.clone();
    t["events"][0]["seq"] = json!(f.seqs[0] + 1);
    assert!(matches!(event_failure(check(&t)), EventFailure::Seq { .. }));
    // The same event twice.
    let mut t = v.clone();
    let first = t["events"][0].clone();
    t["events"].as_array_mut().unwrap().insert(0, first);
    assert!(matches!(
        event_failure(check(&t)),
        EventFailure::Order { .. }
    ));
    // Another agent's event slipped in (with its valid proof).
    let leaves: Vec<_> = f.log.iter().map(AuditEvent::leaf_hash).collect();
    let foreign = 1u64;
    assert_eq!(f.log[1].agent.as_deref(), Some(other_agent().as_str()));
    let mut t = v.clone();
    let proof: Vec<Value> = merkle::inclusion_proof(&leaves, foreign)
        .unwrap()
        .iter()
        .map(|h| json!(b64(h)))
        .collect();
    t["events"].as_array_mut().unwrap().insert(
        1,
        json!({"seq": foreign, "event": f.log[1].to_json(), "proof": proof}),
    );
    assert!(matches!(event_failure(check(&t)), EventFailure::Agent(_)));
    // A non-canonical event (an explicit null the canonical form leaves out).
    let mut t = v.clone();
    t["events"][0]["event"]["details"] = Value::Null;
    assert_eq!(event_failure(check(&t)), EventFailure::NotCanonical);
    let mut t = v.clone();
    t["events"][0]["event"]["extra"] = json!(1);
    assert!(matches!(event_failure(check(&t)), EventFailure::Parse(_)));

    // The containment itself removed, or the time it claims changed.
    let mut t = v.clone();
    t["events"].as_array_mut().unwrap().pop();
    assert!(matches!(check(&t), Err(BundleError::NoContainedEvent(_))));
    let mut t = v.clone();
    t["created"] = json!("2023-11-14T22:15:01Z");
    assert!(matches!(check(&t), Err(BundleError::Created { .. })));
    let mut t = v.clone();
    t["incident"] = json!("inc_01HZX0000000000000000000XX");
    assert!(matches!(check(&t), Err(BundleError::NoContainedEvent(_))));
    let mut t = v.clone();
    t["agent"] = json!(other_agent());
    assert!(matches!(event_failure(check(&t)), EventFailure::Agent(_)));
    let mut t = v.clone();
    t["events"] = json!([]);
    assert_eq!(check(&t), Err(BundleError::NoEvents));

    // Shape: unknown or missing members, a bad incident id, another version.
    let mut t = v.clone();
    t["note"] = json!("added");
    assert!(matches!(check(&t), Err(BundleError::Shape(_))));
    let mut t = v.clone();
    t.as_object_mut().unwrap().remove("evidence");
    assert!(matches!(check(&t), Err(BundleError::Shape(_))));
    let mut t = v.clone();
    t["incident"] = json!("incident-1");
    assert!(matches!(check(&t), Err(BundleError::Shape(_))));
    let mut t = v.clone();
    t["bundle"] = json!("mandate-incident/v2");
    assert!(matches!(check(&t), Err(BundleError::Format(_))));
}

#[test]
fn only_the_canonical_bytes_verify() {
    let f = small();
    let v = parsed(&f);
    let pretty = serde_json::to_vec_pretty(&v).unwrap();
    assert_eq!(
        verify_bundle(&pretty, &vk()),
        Err(BundleError::NotCanonical)
    );
    let mut newline = f.bytes.clone();
    newline.push(b'\n');
    assert_eq!(
        verify_bundle(&newline, &vk()),
        Err(BundleError::NotCanonical)
    );
    // A repeated member parses (the last wins) but is not canonical.
    let text = String::from_utf8(f.bytes.clone()).unwrap();
    let doubled = text.replacen("{\"agent\":", "{\"agent\":\"x\",\"agent\":", 1);
    assert_eq!(
        verify_bundle(doubled.as_bytes(), &vk()),
        Err(BundleError::NotCanonical)
    );
    assert!(verify_bundle(&f.bytes[..f.bytes.len() - 1], &vk()).is_err());
}

#[test]
fn writing_needs_the_contained_event() {
    let f = small();
    let v = parsed(&f);
    let events: Vec<BundleEvent> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|e| BundleEvent {
            seq: e["seq"].as_u64().unwrap(),
            body: String::from_utf8(canonical_json(&e["event"])).unwrap(),
            proof: vec![],
        })
        .collect();
    let cp = Checkpoint {
        node: node(),
        size: 1,
        root: [0; 32],
        time: Timestamp::from_secs(0),
    }
    .sign(&key());
    let r = write_bundle(&NewBundle {
        incident: &incident(),
        node: &node(),
        agent: &agent(),
        evidence: &evidence(),
        checkpoint: &cp,
        events: &events,
    });
    assert!(matches!(r, Err(BundleError::NoContainedEvent(_))));
}

fn b64(h: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(h)
}

/// Which part of the bundle a mutation lands in.
#[derive(Debug, Clone, Copy)]
enum Part {
    Event,
    Evidence,
    Proof,
    Anywhere,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_changed_byte_fails_and_untouched_verifies(
        before in prop::collection::vec(any::<bool>(), 0..12),
        after in prop::collection::vec(any::<bool>(), 0..4),
        n in 1usize..8,
        part in prop::sample::select(vec![Part::Event, Part::Evidence, Part::Proof, Part::Anywhere]),
        which in any::<Index>(),
        at in any::<Index>(),
        byte in any::<u8>(),
    ) {
        let f = fixture(&before, &after, n);
        let report = verify_bundle(&f.bytes, &vk());
        prop_assert!(report.is_ok(), "{:?}", report);
        let v = parsed(&f);
        let events = v["events"].as_array().unwrap();
        let pick = &events[which.index(events.len())];
        let range = match part {
            Part::Event => range_of(&f.bytes, &canonical_json(&pick["event"])),
            Part::Evidence => range_of(&f.bytes, &canonical_json(&v["evidence"])),
            Part::Proof if pick["proof"].as_array().is_some_and(|p| !p.is_empty()) => {
                range_of(&f.bytes, &canonical_json(&pick["proof"]))
            }
            Part::Proof | Part::Anywhere => 0..f.bytes.len(),
        };
        let i = range.start + at.index(range.len());
        let mut b = f.bytes.clone();
        b[i] = byte;
        let got = verify_bundle(&b, &vk());
        if b == f.bytes {
            prop_assert!(got.is_ok());
        } else {
            prop_assert!(got.is_err(), "byte {} set to {:#04x} accepted: {}", i, byte,
                String::from_utf8_lossy(&b));
        }
    }
}
