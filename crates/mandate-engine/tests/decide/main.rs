//! The decision function (`mandate_engine::decide::decide`), table-driven from data files,
//! plus property tests of its two fail-closed gates.
//!
//! Each directory `tests/data/decisions/<case>/` holds:
//!
//! - `policies.cedar`: the active policy set (an empty file is an active, empty set);
//!   without the file no policy version is active.
//! - `schema.cedarschema` (optional): the schema fragment, by default
//!   `examples/crm/schema.cedarschema`.
//! - `agent.json`: `{"status", "labels", "boundary"}` of the one agent the snapshot
//!   knows; the runner fills in its id, name, owner and timestamps.
//! - `cases.json`: a list of `{"name", "principal", "token_scope"?, "action",
//!   "resource": {"type", "id", "attributes"}, "context", "expect": {"decision",
//!   "reason", "policy_ids"?, "detail"?}}`. `principal` is `"agent"` (the agent named
//!   by an enforcement point), `{"agent": "<any string>"}`, `"token"` (a valid access
//!   token for the agent, with `token_scope` as its scope) or `{"token": "<kind>"}`
//!   for a bad one (see [`TokenKind`]). `reason` is the first reason code, `detail` a
//!   text one of the later reasons must contain.
//!
//! Every snapshot revokes [`REVOKED_JTI`] and cuts the agent's tokens off at
//! [`CUTOFF`]; decisions are taken at [`NOW`]. The runner runs every case and reports
//! all failures at once.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test loudly"
)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod chains;
mod reasons;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
use mandate_core::id::AgentId;
use mandate_core::random::OsRandom;
use mandate_core::time::Timestamp;
use mandate_engine::decide::{
    Decision, DecisionRequest, Principal, Resource, Snapshot, decide, inside_boundary,
};
use mandate_policy::{CompiledPolicies, compile};
use mandate_token::access::{AccessClaims, Audience, issue};
use mandate_token::keys::{KeyRing, SigningKey};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

const ISSUER: &str = "http://mandate.test";
/// When every decision is taken.
const NOW: i64 = 1_750_000_000;
/// The agent's token cutoff: tokens issued at or before it are dead.
const CUTOFF: i64 = NOW - 60;
/// The agent every snapshot holds.
const AGENT_ID: &str = "agt_01JA0000000000000000000000";
/// A well-formed agent id no snapshot holds.
const OTHER_AGENT_ID: &str = "agt_01JA00000000000000000000ZZ";
/// The `jti` of valid tokens.
const TOKEN_JTI: &str = "tok_01JA0000000000000000000001";
/// The `jti` every snapshot lists as revoked.
const REVOKED_JTI: &str = "tok_01JA00000000000000000REV0K";

/// Every reason code `decide` documents, first the allow.
const REASONS: &[&str] = &[
    "allowed_by_policy",
    "invalid_token",
    "token_revoked",
    "unknown_agent",
    "agent_suspended",
    "agent_decommissioned",
    "outside_token_scope",
    "outside_boundary",
    "no_active_policy",
    "no_permit",
    "forbidden_by_policy",
    "policy_error",
];

// ---- data files ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    status: AgentStatus,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    boundary: Boundary,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    principal: PrincipalSpec,
    #[serde(default)]
    token_scope: Option<String>,
    action: String,
    resource: Resource,
    #[serde(default = "empty_object")]
    context: Value,
    expect: Expect,
}

fn empty_object() -> Value {
    json!({})
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PrincipalSpec {
    /// `"token"` or `"agent"`.
    Plain(Plain),
    /// `{"token": kind}` or `{"agent": name}`.
    Special(Special),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Plain {
    Token,
    Agent,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Special {
    Token(TokenKind),
    Agent(String),
}

/// The access tokens a case can present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum TokenKind {
    /// Signed by the ring's key, for the agent, inside its window.
    Valid,
    /// `exp` is now.
    Expired,
    /// `nbf` is after now.
    NotYetValid,
    /// Not a JWT.
    Garbage,
    /// The empty string.
    Empty,
    /// Another `iss`.
    WrongIssuer,
    /// Signed by a key the ring does not hold, under that key's `kid`.
    ForeignKey,
    /// Signed by a key the ring does not hold, under the ring's `kid`.
    ForgedKid,
    /// `alg: none`, no signature.
    AlgNone,
    /// `client_id` is not an agent id.
    BadClientId,
    /// Its `jti` is revoked.
    Revoked,
    /// Issued at the agent's cutoff.
    CutOff,
    /// Valid, for an agent the snapshot does not hold.
    UnknownAgent,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    decision: Verdict,
    reason: String,
    #[serde(default)]
    policy_ids: Option<Vec<String>>,
    #[serde(default)]
    detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    Allow,
    Deny,
}

// ---- fixture ----

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn agent(file: AgentFile) -> Agent {
    Agent {
        id: AgentId::parse(AGENT_ID).expect("agent id"),
        name: AgentName::try_from("sales-bot".to_owned()).expect("name"),
        owner: Owner::try_from("alice@example.com".to_owned()).expect("owner"),
        purpose: Purpose::default(),
        labels: file.labels,
        boundary: file.boundary,
        status: file.status,
        status_reason: None,
        created_at: Timestamp::from_secs(NOW - 86_400),
        updated_at: Timestamp::from_secs(NOW - 86_400),
    }
}

fn compiled(what: &str, schema: &str, policies: &str) -> CompiledPolicies {
    compile(&[schema.to_owned()], policies).unwrap_or_else(|errors| {
        let shown: String = errors.iter().map(|e| format!("\n    {e}")).collect();
        panic!("{what}: policies do not compile:{shown}")
    })
}

/// A snapshot holding one agent, plus a key the snapshot does not trust.
struct Fixture {
    snapshot: Snapshot,
    foreign: SigningKey,
}

impl Fixture {
    fn new(agent: Agent, policies: Option<Arc<CompiledPolicies>>) -> Self {
        let key = SigningKey::generate(&OsRandom).expect("signing key");
        let id = agent.id.clone();
        Self {
            snapshot: Snapshot {
                agents: [agent].into_iter().collect(),
                policy_version: policies.as_ref().map(|_| 1),
                policies,
                ring: Arc::new(KeyRing::new(key, vec![]).expect("key ring")),
                issuer: ISSUER.to_owned(),
                audiences: vec![ISSUER.to_owned()],
                max_token_lifetime_secs: 3600,
                cutoffs: HashMap::from([(id, Timestamp::from_secs(CUTOFF))]),
                user_cutoffs: HashMap::new(),
                revoked: HashSet::from([REVOKED_JTI.to_owned()]),
                mandates: HashMap::new(),
            },
            foreign: SigningKey::generate(&OsRandom).expect("foreign key"),
        }
    }

    /// Reads a case directory's policies, schema and agent.
    fn load(dir: &Path) -> Self {
        let schema_path = dir.join("schema.cedarschema");
        let schema = if schema_path.exists() {
            read(&schema_path)
        } else {
            read(&crate_dir().join("../../examples/crm/schema.cedarschema"))
        };
        let policies_path = dir.join("policies.cedar");
        let policies = policies_path
            .exists()
            .then(|| compiled(&dir.display().to_string(), &schema, &read(&policies_path)))
            .map(Arc::new);
        let file: AgentFile = serde_json::from_str(&read(&dir.join("agent.json")))
            .unwrap_or_else(|e| panic!("{}/agent.json: {e}", dir.display()));
        Self::new(agent(file), policies)
    }

    /// An access token of `kind` for the agent, with `scope`.
    fn token(&self, kind: TokenKind, scope: Option<&str>) -> String {
        let mut c = AccessClaims {
            iss: ISSUER.to_owned(),
            sub: AGENT_ID.to_owned(),
            aud: Audience::One(ISSUER.to_owned()),
            exp: NOW + 300,
            iat: NOW - 1,
            nbf: NOW - 1,
            jti: TOKEN_JTI.to_owned(),
            client_id: AGENT_ID.to_owned(),
            scope: scope.map(str::to_owned),
            act: None,
            mandate: None,
            parents: Vec::new(),
            cnf: None,
        };
        let ring_key = self.snapshot.ring.current();
        let mut key = ring_key;
        match kind {
            TokenKind::Valid => {}
            TokenKind::Expired => (c.iat, c.nbf, c.exp) = (NOW - 300, NOW - 300, NOW),
            TokenKind::NotYetValid => (c.iat, c.nbf) = (NOW + 10, NOW + 10),
            TokenKind::Garbage => return "not.a.jwt".to_owned(),
            TokenKind::Empty => return String::new(),
            TokenKind::WrongIssuer => c.iss = "http://elsewhere.test".to_owned(),
            TokenKind::ForeignKey => key = &self.foreign,
            TokenKind::ForgedKid => return self.forged_kid(&c),
            TokenKind::AlgNone => {
                let header = json!({"alg": "none", "typ": "at+jwt", "kid": ring_key.kid()});
                return format!("{}.{}.", b64_json(&header), b64_json(&json!(c)));
            }
            TokenKind::BadClientId => {
                c.client_id = "sales-bot".to_owned();
                c.sub = "sales-bot".to_owned();
            }
            TokenKind::Revoked => c.jti = REVOKED_JTI.to_owned(),
            TokenKind::CutOff => (c.iat, c.nbf) = (CUTOFF, CUTOFF),
            TokenKind::UnknownAgent => {
                c.client_id = OTHER_AGENT_ID.to_owned();
                c.sub = OTHER_AGENT_ID.to_owned();
            }
        }
        issue(key, &c).expect("issue token")
    }

    /// `c` signed by the foreign key but naming the ring's key.
    fn forged_kid(&self, c: &AccessClaims) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(self.snapshot.ring.current().kid().to_owned());
        let pem = self.foreign.to_pkcs8_pem().expect("foreign key pem");
        let der = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
            .and_then(|k| k.to_pkcs8_der())
            .expect("foreign key der");
        let key = jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes());
        jsonwebtoken::encode(&header, c, &key).expect("sign forged token")
    }
}

fn b64_json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn now() -> Timestamp {
    Timestamp::from_secs(NOW)
}

// ---- table ----

/// Runs one case; what is wrong with its decision, if anything.
fn run_case(fx: &Fixture, case: &Case) -> Result<(), String> {
    let token = match (&case.principal, &case.token_scope) {
        (PrincipalSpec::Plain(Plain::Token), scope) => {
            Some(fx.token(TokenKind::Valid, scope.as_deref()))
        }
        (PrincipalSpec::Special(Special::Token(kind)), scope) => {
            Some(fx.token(*kind, scope.as_deref()))
        }
        (_, Some(_)) => return Err("token_scope given without a token".to_owned()),
        _ => None,
    };
    let principal = match (&case.principal, &token) {
        (_, Some(t)) => Principal::Token(t),
        (PrincipalSpec::Special(Special::Agent(name)), None) => Principal::Agent(name),
        _ => Principal::Agent(AGENT_ID),
    };
    let want = &case.expect;
    if !REASONS.contains(&want.reason.as_str()) {
        return Err(format!("unknown reason code `{}` in the case", want.reason));
    }
    let d = decide(
        &fx.snapshot,
        &DecisionRequest {
            principal,
            action: &case.action,
            resource: &case.resource,
            context: &case.context,
        },
        now(),
    );

    let mut wrong = Vec::new();
    let got_reason = d.reason().code();
    if d.is_allowed() != (want.decision == Verdict::Allow) || got_reason != want.reason {
        wrong.push(format!(
            "want {:?} `{}`, got {} `{got_reason}`",
            want.decision,
            want.reason,
            if d.is_allowed() { "Allow" } else { "Deny" },
        ));
    }
    if let Some(ids) = &want.policy_ids
        && *ids != d.policy_ids
    {
        wrong.push(format!("want policy_ids {ids:?}, got {:?}", d.policy_ids));
    }
    if let Some(detail) = &want.detail
        && !d
            .reasons()
            .iter()
            .skip(1)
            .any(|r| r.contains(detail.as_str()))
    {
        wrong.push(format!("no later reason contains `{detail}`"));
    }
    wrong.extend(invariants(&d, &case.principal));
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n      decision: {d:?}", wrong.join("; ")))
    }
}

/// What must hold of every decision, whatever the case expects.
fn invariants(d: &Decision, principal: &PrincipalSpec) -> Vec<String> {
    let mut wrong = Vec::new();
    let first = Some(d.reason().code());
    if d.is_allowed() != (first == Some("allowed_by_policy")) {
        wrong.push("allow and the first reason disagree".to_owned());
    }
    if d.is_allowed() && d.policy_ids.is_empty() {
        wrong.push("an allow names no policy".to_owned());
    }
    if d.is_allowed() && d.reasons().len() != 1 {
        wrong.push("an allow carries error details".to_owned());
    }
    let verified = !matches!(first, Some("invalid_token"));
    let is_token = matches!(
        principal,
        PrincipalSpec::Plain(Plain::Token) | PrincipalSpec::Special(Special::Token(_))
    );
    if !is_token && d.token_id.is_some() {
        wrong.push("a token id without a token".to_owned());
    }
    if is_token && verified && d.token_id.is_none() {
        wrong.push("a verified token's id is missing".to_owned());
    }
    wrong
}

#[test]
fn decide_table() {
    let root = crate_dir().join("tests/data/decisions");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("read {}: {e}", root.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();

    let mut failures = String::new();
    let mut ran = 0usize;
    let mut reasons_seen = BTreeMap::<String, usize>::new();
    for dir in &dirs {
        let fx = Fixture::load(dir);
        let cases: Vec<Case> = serde_json::from_str(&read(&dir.join("cases.json")))
            .unwrap_or_else(|e| panic!("{}/cases.json: {e}", dir.display()));
        assert!(!cases.is_empty(), "{}: no cases", dir.display());
        for case in &cases {
            ran += 1;
            *reasons_seen.entry(case.expect.reason.clone()).or_default() += 1;
            if let Err(why) = run_case(&fx, case) {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default();
                let _ = write!(failures, "\n  {name} / {}: {why}", case.name);
            }
        }
    }
    assert!(failures.is_empty(), "failing decision cases:{failures}");
    assert!(ran >= 25, "expected at least 25 cases, ran {ran}");
    let missing: Vec<&&str> = REASONS
        .iter()
        .filter(|r| !reasons_seen.contains_key(**r))
        .collect();
    assert!(missing.is_empty(), "no case expects reasons {missing:?}");
}

// ---- properties ----

/// A schema where every action applies to every resource type and the context is
/// optional, so that a permit-everything policy set allows whatever reaches Cedar.
const OPEN_SCHEMA: &str = r#"
namespace Crm { entity Contact; entity Invoice; }
namespace Mandate {
  action "crm:read" in ["all"] appliesTo {
    principal: [Agent], resource: [Crm::Contact, Crm::Invoice], context: { data_class?: String },
  };
  action "crm:write" in ["all"] appliesTo {
    principal: [Agent], resource: [Crm::Contact, Crm::Invoice], context: { data_class?: String },
  };
  action "crm:refund" in ["all"] appliesTo {
    principal: [Agent], resource: [Crm::Contact, Crm::Invoice], context: { data_class?: String },
  };
}
"#;

const PERMIT_ALL: &str = r#"@id("permit-all") permit (principal, action, resource);"#;

fn open_policies() -> Arc<CompiledPolicies> {
    Arc::new(compiled("OPEN_SCHEMA", OPEN_SCHEMA, PERMIT_ALL))
}

/// An active agent with `boundary`, permitted everything by `policies`.
fn open_fixture(boundary: Boundary, policies: &Arc<CompiledPolicies>) -> Fixture {
    let file = AgentFile {
        status: AgentStatus::Active,
        labels: Labels::default(),
        boundary,
    };
    Fixture::new(agent(file), Some(Arc::clone(policies)))
}

fn action_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "crm:read",
            "crm:write",
            "crm:refund",
            "crm:*",
            "*",
            "crm:re*",
            "crm:r*d",
            "*:read",
        ])
        .prop_map(str::to_owned),
        "[a-z:*]{1,10}",
    ]
}

fn resource_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "*",
            "Crm::Contact/*",
            "Crm::Invoice/*",
            "Crm::Contact/c-1",
            "Crm::*/c-*",
            "*/inv-*",
            "Crm::Invoice/inv-*",
            "Crm::Contact",
        ])
        .prop_map(str::to_owned),
        "(Crm::)?[A-Za-z:/*-]{1,14}",
    ]
}

fn data_class_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["internal", "secret", "financial", "*", "fin*", "pii"])
            .prop_map(str::to_owned),
        "[a-z*]{1,8}",
    ]
}

fn boundary() -> impl Strategy<Value = Boundary> {
    let grant = (
        prop::collection::vec(action_pattern(), 1..3),
        prop::collection::vec(resource_pattern(), 1..3),
        prop::collection::vec(data_class_pattern(), 0..3),
    )
        .prop_map(|(actions, resources, data_classes)| {
            json!({"actions": actions, "resources": resources, "data_classes": data_classes})
        });
    prop::collection::vec(grant, 0..4).prop_map(|grants| {
        serde_json::from_value(json!({ "grants": grants })).expect("valid boundary")
    })
}

#[derive(Debug, Clone)]
struct Request {
    action: String,
    resource: Resource,
    data_class: Option<String>,
    by_token: bool,
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop::sample::select(vec!["crm:read", "crm:write", "crm:refund"]),
        prop::sample::select(vec!["Crm::Contact", "Crm::Invoice"]),
        prop_oneof![
            prop::sample::select(vec!["c-1", "c-2", "inv-1", "inv-", "x"]).prop_map(str::to_owned),
            "[a-z0-9/*-]{0,6}",
        ],
        prop::option::of(prop_oneof![
            prop::sample::select(vec!["internal", "secret", "financial", "pii"])
                .prop_map(str::to_owned),
            "[a-z]{0,6}",
        ]),
        any::<bool>(),
    )
        .prop_map(|(action, type_name, id, data_class, by_token)| Request {
            action: action.to_owned(),
            resource: Resource {
                type_name: type_name.to_owned(),
                id,
                attributes: Value::Null,
            },
            data_class,
            by_token,
        })
}

/// INVARIANT (ceiling) at decision time: with Cedar permitting everything, a request is
/// allowed exactly when `inside_boundary` accepts it, and never when it rejects it.
#[test]
fn decide_allows_nothing_outside_the_boundary() {
    let policies = open_policies();
    proptest!(ProptestConfig::with_cases(512), |(b in boundary(), r in request())| {
        let fx = open_fixture(b, &policies);
        let token = fx.token(TokenKind::Valid, None);
        let context = match &r.data_class {
            Some(dc) => json!({ "data_class": dc }),
            None => json!({}),
        };
        let d = decide(
            &fx.snapshot,
            &DecisionRequest {
                principal: if r.by_token { Principal::Token(&token) } else { Principal::Agent(AGENT_ID) },
                action: &r.action,
                resource: &r.resource,
                context: &context,
            },
            now(),
        );
        let agent = fx.snapshot.agents.values().next().expect("the agent");
        let inside = inside_boundary(
            &agent.boundary,
            &r.action,
            &r.resource.boundary_name(),
            r.data_class.as_deref(),
        );
        if !inside {
            prop_assert!(!d.is_allowed(), "allowed outside the boundary: {d:?}");
            prop_assert_eq!(Some(d.reason().code()), Some("outside_boundary"));
        } else {
            prop_assert!(d.is_allowed(), "denied inside the boundary by a permit-all set: {d:?}");
        }
    });
}

/// A valid token with one character changed (never to itself).
fn mutated_token(valid: &str) -> impl Strategy<Value = String> + use<> {
    let valid = valid.to_owned();
    let len = valid.len();
    (0..len, "[A-Za-z0-9_.=+/-]").prop_filter_map("same character", move |(at, c)| {
        let mut chars: Vec<char> = valid.chars().collect();
        let slot = chars.get_mut(at)?;
        let new = c.chars().next()?;
        if *slot == new {
            return None;
        }
        *slot = new;
        Some(chars.into_iter().collect())
    })
}

/// A valid token cut short or with text appended.
fn truncated_or_extended(valid: &str) -> impl Strategy<Value = String> + use<> {
    let valid = valid.to_owned();
    let len = valid.len();
    prop_oneof![
        (0..len).prop_map({
            let valid = valid.clone();
            move |n| valid.chars().take(n).collect::<String>()
        }),
        "[A-Za-z0-9_.-]{1,8}".prop_map(move |tail| format!("{valid}{tail}")),
    ]
}

/// Whatever string is presented as a token, `decide` does not panic and does not allow.
#[test]
fn decide_allows_no_bad_token() {
    let fx = open_fixture(
        serde_json::from_value(json!({"grants": [{"actions": ["*"], "resources": ["*"]}]}))
            .expect("boundary"),
        &open_policies(),
    );
    let resource = Resource {
        type_name: "Crm::Contact".to_owned(),
        id: "c-1".to_owned(),
        attributes: Value::Null,
    };
    let context = json!({});
    let ask = |token: &str| {
        decide(
            &fx.snapshot,
            &DecisionRequest {
                principal: Principal::Token(token),
                action: "crm:read",
                resource: &resource,
                context: &context,
            },
            now(),
        )
    };
    // The unmodified token is allowed, so every deny below is the token's doing.
    let valid = fx.token(TokenKind::Valid, None);
    assert!(ask(&valid).is_allowed(), "the valid token is allowed");
    let header_and_payload = valid
        .rsplit_once('.')
        .map(|(hp, _)| hp.to_owned())
        .expect("jws");

    let tokens = prop_oneof![
        "\\PC{0,300}",
        prop::collection::vec(any::<u8>(), 0..300)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[A-Za-z0-9_-]{0,80}\\.[A-Za-z0-9_-]{0,300}\\.[A-Za-z0-9_-]{0,90}",
        "[A-Za-z0-9_-]{0,90}".prop_map(move |sig| format!("{header_and_payload}.{sig}")),
        mutated_token(&valid),
        truncated_or_extended(&valid),
    ];
    proptest!(ProptestConfig::with_cases(1024), |(token in tokens)| {
        let d = ask(&token);
        prop_assert!(!d.is_allowed(), "allowed with {token:?}: {d:?}");
        prop_assert_eq!(Some(d.reason().code()), Some("invalid_token"));
        prop_assert!(d.agent.is_none() && d.token_id.is_none());
    });
}

/// Regression (found by this suite): the boundary gate read `data_class` only when it
/// was a string, so a context naming it as an array, object or `null` counted as naming
/// none. Where the action's
/// schema context does not declare `data_class`, Cedar drops the field and the request
/// is allowed, though the same data class as a string is outside the boundary.
#[test]
fn decide_puts_a_non_string_data_class_outside_the_boundary() {
    let schema = r#"
namespace Crm { entity Contact; }
namespace Mandate {
  action "crm:read" in ["all"] appliesTo { principal: [Agent], resource: [Crm::Contact] };
}
"#;
    let boundary = serde_json::from_value(json!({
        "grants": [{"actions": ["*"], "resources": ["*"], "data_classes": ["public"]}]
    }))
    .expect("boundary");
    let fx = open_fixture(boundary, &Arc::new(compiled("schema", schema, PERMIT_ALL)));
    let resource = Resource {
        type_name: "Crm::Contact".to_owned(),
        id: "c-1".to_owned(),
        attributes: Value::Null,
    };
    for context in [
        json!({"data_class": "secret"}),
        json!({"data_class": ["secret"]}),
        json!({"data_class": {"class": "secret"}}),
        json!({"data_class": null}),
    ] {
        let d = decide(
            &fx.snapshot,
            &DecisionRequest {
                principal: Principal::Agent(AGENT_ID),
                action: "crm:read",
                resource: &resource,
                context: &context,
            },
            now(),
        );
        assert!(!d.is_allowed(), "{context} allowed: {d:?}");
        assert_eq!(
            Some(d.reason().code()),
            Some("outside_boundary"),
            "{context}"
        );
    }
}
