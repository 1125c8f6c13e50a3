//! Data-driven policy tests (like `opa test` or Cedar's integration tests): a JSON file
//! of requests and the decision each must get, run against compiled policies.
//!
//! ```json
//! {"tests": [{
//!   "name": "sales agent reads a sales contact",
//!   "principal": {"id": "agt_01J…", "name": "crm-bot", "owner": "alice@example.com",
//!                 "labels": {"team": "sales"}, "status": "active"},
//!   "action": "crm:read",
//!   "resource": {"type": "Crm::Contact", "id": "c1", "attributes": {"team": "sales"}},
//!   "context": {"data_class": "internal"},
//!   "expect": "allow",
//!   "policies": ["team-reads-contacts"],
//!   "error": "overflow"
//! }]}
//! ```
//!
//! `expect` is `allow`, `deny` or `approval_required` (denied only by `@approval`
//! forbids). A test may also name the human the agent acts for and the agents that
//! delegated to it, which fill `context.user`, `context.chain` and
//! `context.delegation_depth`: `"user": {"sub": "alice", "email": "…", "groups":
//! ["finance"]}`, `"chain": ["agt_…"]`. `"risk": {"score": 80, "anomalies":
//! ["rate_spike"], "step_up": false}` fills `context.risk` (default: score 0).
//!
//! `labels` (default none), `status` (default `active`), `attributes`, `context`
//! (default `{}`), `user`, `chain`, `risk` and the two checks `policies` (the exact set of determining policy
//! ids) and `error` (some error contains this text; `""` asks for no error at all)
//! are optional. Unknown fields are errors.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
use mandate_core::id::AgentId;
use mandate_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compile::CompiledPolicies;
use crate::evaluate::{OnBehalf, PolicyOutcome, PolicyRequest};
use mandate_core::mandate::UserRef;
use mandate_core::risk::Risk;

/// A test file that cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum TestFileError {
    /// Not JSON, or not the shape above.
    #[error("invalid test file: {0}")]
    Json(#[from] serde_json::Error),
    /// A test's principal is not a valid agent.
    #[error("test `{test}`: invalid principal: {message}")]
    Principal {
        /// The test's name.
        test: String,
        /// What is wrong.
        message: String,
    },
    /// Two tests share a name.
    #[error("duplicate test name `{0}`")]
    DuplicateName(String),
    /// The file holds no tests.
    #[error("the test file has no tests")]
    Empty,
}

/// The decision a test expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// The request must be allowed.
    Allow,
    /// The request must be denied, with no approval possible.
    Deny,
    /// The request must be held for a human's approval.
    ApprovalRequired,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    tests: Vec<TestCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    principal: PrincipalSpec,
    action: String,
    resource: ResourceSpec,
    #[serde(default = "empty_object")]
    context: Value,
    expect: Expect,
    #[serde(default)]
    policies: Option<BTreeSet<String>>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    user: Option<UserSpec>,
    #[serde(default)]
    chain: Vec<String>,
    #[serde(default)]
    risk: Option<Risk>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserSpec {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalSpec {
    id: String,
    name: String,
    owner: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default = "active")]
    status: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceSpec {
    #[serde(rename = "type")]
    type_name: String,
    id: String,
    #[serde(default = "empty_object")]
    attributes: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn active() -> String {
    AgentStatus::Active.as_str().to_owned()
}

/// The result of one test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestResult {
    /// The test's name.
    pub name: String,
    /// Whether the outcome matched every expectation.
    pub passed: bool,
    /// Why it failed, when it did.
    pub failure: Option<String>,
    /// What the policies answered.
    pub outcome: PolicyOutcome,
}

/// The results of a test file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestReport {
    /// One result per test.
    pub results: Vec<TestResult>,
}

impl TestReport {
    /// How many tests passed.
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }

    /// How many tests failed.
    pub fn failed(&self) -> usize {
        self.results.len().saturating_sub(self.passed())
    }

    /// Whether every test passed.
    pub fn all_passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    /// The failed tests.
    pub fn failures(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().filter(|r| !r.passed)
    }
}

impl fmt::Display for TestReport {
    /// One line per test (`PASS name` or `FAIL name: why`), then the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.results {
            match &r.failure {
                None => writeln!(f, "PASS {}", r.name)?,
                Some(why) => writeln!(f, "FAIL {}: {why}", r.name)?,
            }
        }
        write!(f, "{} passed, {} failed", self.passed(), self.failed())
    }
}

/// Runs every test in `test_json` against `compiled`. A test that gets the wrong
/// decision is a failed result, not an error; a file that cannot be read as tests is
/// an error.
pub fn run_tests(
    compiled: &CompiledPolicies,
    test_json: &str,
) -> Result<TestReport, TestFileError> {
    let file: TestFile = serde_json::from_str(test_json)?;
    if file.tests.is_empty() {
        return Err(TestFileError::Empty);
    }
    let mut names = HashSet::new();
    for t in &file.tests {
        if !names.insert(t.name.as_str()) {
            return Err(TestFileError::DuplicateName(t.name.clone()));
        }
    }
    let mut results = Vec::with_capacity(file.tests.len());
    for t in &file.tests {
        let agent = agent(&t.principal).map_err(|message| TestFileError::Principal {
            test: t.name.clone(),
            message,
        })?;
        let user = t.user.as_ref().map(|u| UserRef {
            issuer: "test".to_owned(),
            sub: u.sub.clone(),
            email: u.email.clone(),
            groups: u.groups.clone(),
        });
        let chain: Vec<&str> = t.chain.iter().map(String::as_str).collect();
        let outcome = compiled.evaluate(&PolicyRequest {
            principal: &agent,
            action: &t.action,
            resource_type: &t.resource.type_name,
            resource_id: &t.resource.id,
            resource_attributes: &t.resource.attributes,
            context: &t.context,
            on_behalf: OnBehalf {
                user: user.as_ref(),
                mandate: None,
                chain: &chain,
                risk: t.risk.as_ref(),
            },
        });
        let failure = check(t, &outcome);
        results.push(TestResult {
            name: t.name.clone(),
            passed: failure.is_none(),
            failure,
            outcome,
        });
    }
    Ok(TestReport { results })
}

/// Why `outcome` does not meet the test's expectations, if it does not.
fn check(t: &TestCase, outcome: &PolicyOutcome) -> Option<String> {
    let got = if outcome.allowed {
        Expect::Allow
    } else if outcome.approval_required {
        Expect::ApprovalRequired
    } else {
        Expect::Deny
    };
    let mut why = Vec::new();
    if got != t.expect {
        why.push(format!("expected {}, got {}", word(t.expect), word(got)));
    }
    if let Some(want) = &t.policies {
        let have: BTreeSet<String> = outcome.policy_ids.iter().cloned().collect();
        if &have != want {
            why.push(format!(
                "expected determining policies {}, got {}",
                list(want.iter()),
                list(outcome.policy_ids.iter())
            ));
        }
    }
    match t.error.as_deref() {
        None => {}
        Some("") if !outcome.errors.is_empty() => why.push("expected no error".to_owned()),
        Some("") => {}
        Some(want) if !outcome.errors.iter().any(|e| e.contains(want)) => {
            why.push(format!("expected an error containing `{want}`"));
        }
        Some(_) => {}
    }
    if why.is_empty() {
        return None;
    }
    let mut message = why.join("; ");
    if !outcome.errors.is_empty() {
        message = format!("{message} (errors: {})", outcome.errors.join("; "));
    }
    Some(message)
}

fn word(e: Expect) -> &'static str {
    match e {
        Expect::Allow => "allow",
        Expect::Deny => "deny",
        Expect::ApprovalRequired => "approval_required",
    }
}

fn list<'a>(ids: impl Iterator<Item = &'a String>) -> String {
    let ids: Vec<String> = ids.map(|i| format!("`{i}`")).collect();
    format!("[{}]", ids.join(", "))
}

fn agent(p: &PrincipalSpec) -> Result<Agent, String> {
    let status = AgentStatus::parse(&p.status).ok_or_else(|| {
        format!(
            "unknown status `{}` (expected active, suspended or decommissioned)",
            p.status.escape_debug()
        )
    })?;
    let epoch = Timestamp::from_secs(0);
    Ok(Agent {
        id: AgentId::parse(&p.id).map_err(|e| e.to_string())?,
        name: AgentName::try_from(p.name.clone()).map_err(|e| e.to_string())?,
        owner: Owner::try_from(p.owner.clone()).map_err(|e| e.to_string())?,
        purpose: Purpose::default(),
        labels: Labels::try_from(p.labels.clone()).map_err(|e| e.to_string())?,
        boundary: Boundary::default(),
        status,
        status_reason: None,
        created_at: epoch,
        updated_at: epoch,
    })
}
