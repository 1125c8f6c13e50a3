//! Fixtures shared by the fuzz targets: fixed keys, a JWS signer, an audit export
//! writer and the CRM example's policies.
//!
//! The keys are fixed (not drawn from the OS) so that a crash input reproduces exactly
//! on any machine, and so that seed tokens in `corpus/` carry valid signatures. The
//! signer lets a target sign a fuzzer-chosen header and payload, so the checks that run
//! after a signature verifies are fuzzed too, not only the parsing in front of them.
//!
//! Input convention of the token targets: `X!` in front picks mode `X` (see each
//! target's `//!` lines), anything else is a token as presented. No JWT starts that way,
//! `!` not being base64url, and the seeds stay readable text.

pub mod discover;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mandate_audit::checkpoint::Checkpoint;
use mandate_audit::event::{AuditEvent, NodeName};
use mandate_audit::merkle::Frontier;
use mandate_audit::verify::{VerifyReport, checkpoint_line, event_line};
use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
use mandate_core::id::AgentId;
use mandate_core::random::{Random, RandomError};
use mandate_core::time::Timestamp;
use mandate_policy::{CompiledPolicies, PolicyOutcome, PolicyRequest};
use mandate_token::jwk::PublicJwk;
use mandate_token::keys::{KeyRing, SigningKey};
use serde_json::{Value, json};

/// The issuer the access-token target verifies against.
pub const ISSUER: &str = "http://x";
/// The token endpoint: the other accepted client-assertion audience.
pub const TOKEN_ENDPOINT: &str = "http://x/oauth/token";
/// The client whose assertions the client-assertion target verifies.
pub const CLIENT_ID: &str = "agt_01J00000000000000000000000";
/// The registered Ed25519 key's `kid`; the P-256 key is registered without one (so it
/// is found by RFC 7638 thumbprint or by trying every key).
pub const ED25519_KID: &str = "ed-1";
/// "Now" for every verification: 2023-11-14T22:13:20Z.
pub const NOW_SECS: i64 = 1_700_000_000;

/// [`NOW_SECS`] as a timestamp.
pub fn now() -> Timestamp {
    Timestamp::from_secs(NOW_SECS)
}

/// RFC 8037 Appendix A.1's private key seed (`d`).
const ED25519_SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];
/// Any scalar below the P-256 group order is a private key.
const P256_SCALAR: [u8; 32] = [0x11; 32];
/// The bytes the "random" source yields for the access-token signing key.
const RING_SEED_BYTE: u8 = 0x42;

/// A random source that is not random: every byte is [`RING_SEED_BYTE`].
struct FixedRandom;

impl Random for FixedRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        buf.fill(RING_SEED_BYTE);
        Ok(())
    }
}

/// The mode and data of a token target's input: `X!data` is `Some((X, data))`.
pub fn mode(data: &[u8]) -> Option<(u8, &[u8])> {
    match data {
        [m, b'!', rest @ ..] => Some((*m, rest)),
        _ => None,
    }
}

/// `header\npayload` split at the first newline (no newline: all header).
pub fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (
            data.get(..i).unwrap_or_default(),
            data.get(i + 1..).unwrap_or_default(),
        ),
        None => (data, &[]),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A private key the fixtures sign with.
pub enum Signer {
    /// EdDSA over Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
    /// ES256.
    P256(p256::ecdsa::SigningKey),
}

impl Signer {
    /// A compact JWS of exactly these header and payload bytes.
    pub fn jws(&self, header: &[u8], payload: &[u8]) -> String {
        use p256::ecdsa::signature::Signer as _;
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = match self {
            Self::Ed25519(k) => k.sign(input.as_bytes()).to_bytes().to_vec(),
            Self::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(input.as_bytes());
                s.to_bytes().to_vec()
            }
        };
        format!("{input}.{}", b64(&sig))
    }
}

/// Mandate's access-token key ring (one fixed Ed25519 key) and the same key for raw signing.
pub struct Ring {
    /// What `access::verify` checks against.
    pub ring: KeyRing,
    /// The ring's current key, to sign fuzzer-chosen tokens with.
    pub signer: Signer,
    /// The ring key's `kid`.
    pub kid: String,
}

/// The access-token fixture, built once per process.
#[expect(
    clippy::expect_used,
    reason = "fixture setup; a failure is a harness bug"
)]
pub fn ring() -> &'static Ring {
    static RING: OnceLock<Ring> = OnceLock::new();
    RING.get_or_init(|| {
        let current = SigningKey::generate(&FixedRandom).expect("fixed random cannot fail");
        let raw = ed25519_dalek::SigningKey::from_bytes(&[RING_SEED_BYTE; 32]);
        assert_eq!(
            raw.verifying_key().to_bytes(),
            current.public_bytes(),
            "same key"
        );
        let kid = current.kid().to_owned();
        let ring = KeyRing::new(current, vec![]).expect("a fresh key is valid");
        Ring {
            ring,
            signer: Signer::Ed25519(raw),
            kid,
        }
    })
}

/// One registered client key and its private half.
pub struct ClientKey {
    /// As registered (parsed by `PublicJwk::parse`).
    pub jwk: PublicJwk,
    /// The private half.
    pub signer: Signer,
}

/// The client-assertion fixture: an Ed25519 key (index 0, with `kid`) and a P-256 key
/// (index 1, without), both registered for [`CLIENT_ID`].
#[expect(
    clippy::expect_used,
    reason = "fixture setup; a failure is a harness bug"
)]
pub fn client_keys() -> &'static [ClientKey; 2] {
    static KEYS: OnceLock<[ClientKey; 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ed = ed25519_dalek::SigningKey::from_bytes(&ED25519_SEED);
        let ed_jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": ED25519_KID,
            "x": b64(ed.verifying_key().as_bytes())});
        let ec = p256::ecdsa::SigningKey::from_slice(&P256_SCALAR).expect("scalar in range");
        let point = ec.verifying_key().to_encoded_point(false);
        let ec_jwk = json!({"kty": "EC", "crv": "P-256",
            "x": b64(point.x().expect("uncompressed")), "y": b64(point.y().expect("uncompressed"))});
        [
            ClientKey { jwk: PublicJwk::parse(&ed_jwk).expect("valid"), signer: Signer::Ed25519(ed) },
            ClientKey { jwk: PublicJwk::parse(&ec_jwk).expect("valid"), signer: Signer::P256(ec) },
        ]
    })
}

// ---- audit log ----

/// The seed of the audit node's Ed25519 signing key.
const AUDIT_SEED: [u8; 32] = [0x5a; 32];

/// The audit node's signing key, fixed: exports and checkpoints in `corpus/` carry its
/// signatures.
pub fn audit_key() -> &'static ed25519_dalek::SigningKey {
    static KEY: OnceLock<ed25519_dalek::SigningKey> = OnceLock::new();
    KEY.get_or_init(|| ed25519_dalek::SigningKey::from_bytes(&AUDIT_SEED))
}

/// A valid node name made of whatever in `s` is allowed (letters, digits, `.`, `_`, `-`),
/// at most 64 of them; `node-1` when nothing is left.
#[expect(clippy::expect_used, reason = "the fallback is a valid name")]
pub fn node_name(s: &str) -> NodeName {
    let name: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(64)
        .collect();
    NodeName::new(&name).unwrap_or_else(|_| NodeName::new("node-1").expect("valid"))
}

/// An export written the way a node writes one: events numbered from 0, each
/// checkpoint signed with [`audit_key`] over the events before it.
pub struct ExportBuilder {
    node: NodeName,
    frontier: Frontier,
    time: Timestamp,
    /// The lines, without their `\n`.
    pub lines: Vec<String>,
    /// Which of `lines` are events.
    pub event_lines: Vec<usize>,
    /// The checkpoints written, in order.
    pub checkpoints: Vec<Checkpoint>,
}

impl ExportBuilder {
    /// An empty export of `node`'s log; checkpoint times start at [`NOW_SECS`].
    pub fn new(node: NodeName) -> Self {
        Self {
            node,
            frontier: Frontier::new(),
            time: now(),
            lines: Vec::new(),
            event_lines: Vec::new(),
            checkpoints: Vec::new(),
        }
    }

    /// Appends `event` as the next one of the log (its `seq` and `node` are set here).
    #[expect(clippy::expect_used, reason = "a harness log never holds 2^64 events")]
    pub fn event(&mut self, mut event: AuditEvent) {
        event.seq = self.frontier.size();
        event.node = self.node.clone();
        self.frontier
            .push(event.leaf_hash())
            .expect("log size in range");
        self.event_lines.push(self.lines.len());
        self.lines.push(event_line(&event));
    }

    /// Appends a checkpoint of the events so far, `advance_secs` after the previous one
    /// (one second more when it would repeat the previous checkpoint).
    pub fn checkpoint(&mut self, advance_secs: u32) {
        let size = self.frontier.size();
        let mut time = self.time.plus_secs(i64::from(advance_secs));
        if self
            .checkpoints
            .last()
            .is_some_and(|c| c.size == size && c.time == time)
        {
            time = time.plus_secs(1);
        }
        self.time = time;
        let cp = Checkpoint {
            node: self.node.clone(),
            size,
            root: self.frontier.root(),
            time,
        };
        self.lines.push(checkpoint_line(&cp.sign(audit_key())));
        self.checkpoints.push(cp);
    }

    /// Seals the export (a last checkpoint unless it already ends with one).
    pub fn seal(&mut self) {
        let sealed = self.lines.len().checked_sub(1).is_some_and(|last| {
            self.event_lines.last() != Some(&last) && !self.checkpoints.is_empty()
        });
        if !sealed {
            self.checkpoint(0);
        }
    }

    /// What verifying the sealed export must report.
    #[expect(clippy::expect_used, reason = "called on a sealed export")]
    pub fn report(&self) -> VerifyReport {
        let last = self.checkpoints.last().expect("sealed");
        VerifyReport {
            node: self.node.clone(),
            events: self.frontier.size(),
            checkpoints: u64::try_from(self.checkpoints.len()).unwrap_or(u64::MAX),
            root: last.root,
            time: last.time,
        }
    }

    /// The export's bytes: every line ending in `\n`.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for line in &self.lines {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        out
    }
}

/// The agent of the incident-bundle fixtures.
pub const BUNDLE_AGENT: &str = "agt_01J00000000000000000000000";
/// Another agent, whose events a bundle of [`BUNDLE_AGENT`] never holds.
pub const BUNDLE_OTHER_AGENT: &str = "agt_01J0000000000000000000000X";
/// The incident of the incident-bundle fixtures.
pub const BUNDLE_INCIDENT: &str = "inc_01J00000000000000000000000";

/// An incident bundle written the way a node writes one, with [`audit_key`]: `node`'s log
/// is `log` (each event [`BUNDLE_AGENT`]'s when its flag is set, [`BUNDLE_OTHER_AGENT`]'s
/// otherwise; `seq`, `node` and `agent` are set here) with the `incident.contained` event
/// of [`BUNDLE_INCIDENT`] (recording `evidence`'s hash) inserted at `contained_at`
/// (clamped), signed by a checkpoint of all of it. The bundle holds the agent's last
/// `n` (at least 1) events up to the containment. `None` only on a harness bug.
pub fn incident_bundle(
    node: &NodeName,
    log: &[(bool, AuditEvent)],
    contained_at: usize,
    evidence: &serde_json::Map<String, Value>,
    n: usize,
) -> Option<Vec<u8>> {
    use mandate_audit::bundle::{BundleEvent, CONTAINED_KIND, NewBundle, evidence_sha256};
    use mandate_audit::merkle;
    use mandate_core::id::IncidentId;

    let incident = IncidentId::parse(BUNDLE_INCIDENT).ok()?;
    let agent = AgentId::parse(BUNDLE_AGENT).ok()?;
    let mut contained = AuditEvent::new(0, now(), node.clone(), CONTAINED_KIND);
    contained.actor = Some("adm_01J00000000000000000000000".into());
    contained.details = Some(json!({
        "incident": BUNDLE_INCIDENT,
        "evidence_sha256": evidence_sha256(evidence),
    }));
    let at = contained_at.min(log.len());
    let mut events: Vec<(bool, AuditEvent)> = log.to_vec();
    events.insert(at, (true, contained));
    let mut leaves = Vec::with_capacity(events.len());
    for (seq, (ours, e)) in events.iter_mut().enumerate() {
        e.seq = u64::try_from(seq).ok()?;
        e.node = node.clone();
        let agent = if *ours {
            BUNDLE_AGENT
        } else {
            BUNDLE_OTHER_AGENT
        };
        e.agent = Some(agent.to_owned());
        leaves.push(e.leaf_hash());
    }
    let checkpoint = Checkpoint {
        node: node.clone(),
        size: u64::try_from(events.len()).ok()?,
        root: merkle::root(&leaves),
        time: now(),
    }
    .sign(audit_key());
    let mut ours: Vec<&AuditEvent> = events
        .iter()
        .take(at + 1)
        .filter(|(o, _)| *o)
        .map(|(_, e)| e)
        .collect();
    ours.drain(..ours.len().saturating_sub(n.max(1)));
    let seqs: Vec<u64> = ours.iter().map(|e| e.seq).collect();
    let proofs = merkle::inclusion_proofs(&leaves, &seqs).ok()?;
    let bundle_events: Vec<BundleEvent> = ours
        .iter()
        .zip(proofs)
        .map(|(e, proof)| BundleEvent {
            seq: e.seq,
            body: String::from_utf8_lossy(&e.canonical_bytes()).into_owned(),
            proof,
        })
        .collect();
    mandate_audit::bundle::write_bundle(&NewBundle {
        incident: &incident,
        node,
        agent: &agent,
        evidence,
        checkpoint: &checkpoint,
        events: &bundle_events,
    })
    .ok()
}

// ---- policies ----

/// The CRM example's schema fragment.
pub const CRM_SCHEMA: &str = include_str!("../../examples/crm/schema.cedarschema");
/// The CRM example's policies.
pub const CRM_POLICIES: &str = include_str!("../../examples/crm/policies.cedar");

/// The CRM example compiled, once per process.
#[expect(
    clippy::expect_used,
    reason = "fixture setup; a failure is a harness bug"
)]
pub fn crm() -> &'static CompiledPolicies {
    static CRM: OnceLock<CompiledPolicies> = OnceLock::new();
    CRM.get_or_init(|| {
        mandate_policy::compile(&[CRM_SCHEMA.to_owned()], CRM_POLICIES)
            .expect("the CRM example compiles")
    })
}

/// The CRM example's test principals: sales, support, sales cleared for secrets, sales
/// with write access, billing, and the sales agent suspended.
#[expect(
    clippy::expect_used,
    reason = "fixture setup; a failure is a harness bug"
)]
pub fn crm_agents() -> &'static [Agent] {
    static AGENTS: OnceLock<Vec<Agent>> = OnceLock::new();
    AGENTS.get_or_init(|| {
        let agent = |id: &str, name: &str, labels: &[(&str, &str)], status| Agent {
            id: AgentId::parse(id).expect("agent id"),
            name: AgentName::try_from(name.to_owned()).expect("name"),
            owner: Owner::try_from("alice@example.com".to_owned()).expect("owner"),
            purpose: Purpose::default(),
            labels: Labels::try_from(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            )
            .expect("labels"),
            boundary: Boundary::default(),
            status,
            status_reason: None,
            created_at: Timestamp::from_secs(0),
            updated_at: Timestamp::from_secs(0),
        };
        use AgentStatus::{Active, Suspended};
        vec![
            agent(
                "agt_01JA0000000000000000SA1ES0",
                "sales-assistant",
                &[("team", "sales")],
                Active,
            ),
            agent(
                "agt_01JA0000000000000SVPP0RT00",
                "support-bot",
                &[("team", "support")],
                Active,
            ),
            agent(
                "agt_01JA00000000000000C1EARED0",
                "sales-cleared",
                &[("clearance", "secret"), ("team", "sales")],
                Active,
            ),
            agent(
                "agt_01JA000000000000000WR1TER0",
                "sales-writer",
                &[("access", "write"), ("team", "sales")],
                Active,
            ),
            agent(
                "agt_01JA00000000000000B1111NG0",
                "billing-bot",
                &[("role", "billing")],
                Active,
            ),
            agent(
                "agt_01JA0000000000000000SA1ES0",
                "sales-assistant",
                &[("team", "sales")],
                Suspended,
            ),
        ]
    })
}

/// What any outcome must satisfy: an allow has no errors and names the permits that
/// allowed it; the policies named are the set's, in source order, each once.
pub fn sound_outcome(compiled: &CompiledPolicies, outcome: &PolicyOutcome) {
    if outcome.allowed {
        assert!(
            outcome.errors.is_empty(),
            "allowed with errors: {outcome:?}"
        );
        assert!(
            !outcome.policy_ids.is_empty(),
            "allowed by no policy: {outcome:?}"
        );
    }
    let ids = compiled.policy_ids();
    let positions: Vec<Option<usize>> = outcome
        .policy_ids
        .iter()
        .map(|p| ids.iter().position(|x| x == p))
        .collect();
    assert!(
        positions.iter().all(Option::is_some),
        "names policies not in the set: {outcome:?} (set: {ids:?})"
    );
    assert!(
        positions.is_sorted_by(|a, b| a < b),
        "policies not in source order or repeated: {outcome:?}"
    );
}

/// The actions a digit selector of the `policy_request` input picks.
pub const ACTIONS: [&str; 5] = ["crm:read", "crm:write", "crm:refund", "all", "crm:delete"];
/// The resource types a digit selector of the `policy_request` input picks.
pub const TYPES: [&str; 5] = [
    "Crm::Contact",
    "Crm::Invoice",
    "Mandate::Agent",
    "Crm::Unknown",
    "Crm",
];

/// A request against the CRM example, read from a `policy_request` input: three
/// selector bytes `<action><type><principal>`, then `\n`-separated fields: the action
/// (only when its selector is not a digit `0`..`4`, which picks from [`ACTIONS`]), the
/// resource type (likewise from [`TYPES`]), the resource id, the resource attributes as
/// JSON (empty: `null`), and the rest is the context as JSON. The principal selector
/// picks one of [`crm_agents`] (any byte, modulo).
#[derive(Debug)]
pub struct CrmRequest {
    /// The agent asking.
    pub principal: &'static Agent,
    /// The action.
    pub action: String,
    /// The resource type.
    pub resource_type: String,
    /// The resource id.
    pub resource_id: String,
    /// The resource attributes.
    pub attributes: Value,
    /// The context.
    pub context: Value,
}

impl CrmRequest {
    /// Reads an input; `None` when it is too short or a JSON field is not JSON.
    pub fn parse(data: &[u8]) -> Option<Self> {
        let [a, t, p, rest @ ..] = data else {
            return None;
        };
        let mut rest = rest;
        let mut pick = |selector: u8, list: &[&str]| -> String {
            if let Some(s) = selector
                .checked_sub(b'0')
                .and_then(|i| list.get(usize::from(i)))
            {
                return (*s).to_owned();
            }
            let (field, tail) = split_line(rest);
            rest = tail;
            String::from_utf8_lossy(field).into_owned()
        };
        let action = pick(*a, &ACTIONS);
        let resource_type = pick(*t, &TYPES);
        let (id, rest) = split_line(rest);
        let (attributes, context) = split_line(rest);
        let json = |b: &[u8]| {
            if b.is_empty() {
                Some(Value::Null)
            } else {
                serde_json::from_slice(b).ok()
            }
        };
        let agents = crm_agents();
        Some(Self {
            principal: agents.get(usize::from(*p) % agents.len())?,
            action,
            resource_type,
            resource_id: String::from_utf8_lossy(id).into_owned(),
            attributes: json(attributes)?,
            context: json(context)?,
        })
    }

    /// The request to evaluate.
    pub fn request(&self) -> PolicyRequest<'_> {
        PolicyRequest {
            principal: self.principal,
            action: &self.action,
            resource_type: &self.resource_type,
            resource_id: &self.resource_id,
            resource_attributes: &self.attributes,
            context: &self.context,
            on_behalf: Default::default(),
        }
    }
}
