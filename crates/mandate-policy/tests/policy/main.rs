//! Policy decisions through the public API, table-driven from data files:
//!
//! - `tests/data/decisions/<case>/`: `*.cedarschema` (optional schema fragments, in
//!   name order), `policies.cedar` and `requests.json` (a test file as
//!   `mandate_policy::testfile` reads it); every request must get its expected answer.
//! - `tests/data/refused/<case>/`: `*.cedarschema`, `policies.cedar` and
//!   `errors.json` (`[{"source", "line", "column", "contains"}]`, in order); compiling
//!   must fail with exactly those errors.
//! - `examples/<name>/` at the repository root: `schema.cedarschema`,
//!   `policies.cedar` and `tests.json`, run like a decision case.
//!
//! Each table runs every case and reports all failures at once. `equivalence` checks
//! that the policy index and the directly built requests change no answer (property
//! tests against Cedar over every policy and Cedar's JSON parser).

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test loudly"
)]

mod equivalence;
mod rego;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
use mandate_core::id::AgentId;
use mandate_core::time::Timestamp;
use mandate_policy::{
    CompiledPolicies, PolicyError, PolicyRequest, TestFileError, compile, run_tests,
};
use serde::Deserialize;
use serde_json::{Value, json};

// ---- harness ----

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The case directories under `dir`, sorted.
fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every `*.cedarschema` file in `dir`, in name order.
fn fragments(dir: &Path) -> Vec<String> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .expect("case directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cedarschema"))
        .collect();
    paths.sort();
    paths.iter().map(|p| read(p)).collect()
}

fn show(errors: &[PolicyError]) -> String {
    errors.iter().map(|e| format!("\n    {e}")).collect()
}

/// Compiles a case directory and runs `tests` against it; the failures, if any.
fn run_case(dir: &Path, tests: &str) -> Option<String> {
    let compiled = match compile(&fragments(dir), &read(&dir.join("policies.cedar"))) {
        Ok(c) => c,
        Err(errors) => return Some(format!("does not compile:{}", show(&errors))),
    };
    match run_tests(&compiled, &read(&dir.join(tests))) {
        Err(e) => Some(format!("{tests}: {e}")),
        Ok(report) if report.all_passed() => None,
        Ok(report) => Some(format!("\n{report}")),
    }
}

fn run_table(dirs: &[PathBuf], tests: &str, at_least: usize) {
    assert!(
        dirs.len() >= at_least,
        "expected at least {at_least} cases, found {dirs:?}"
    );
    let mut failures = String::new();
    for dir in dirs {
        if let Some(why) = run_case(dir, tests) {
            let _ = write!(failures, "\n{}: {why}", dir.display());
        }
    }
    assert!(failures.is_empty(), "failing cases:{failures}");
}

fn agent(id: &str, labels: &[(&str, &str)]) -> Agent {
    Agent {
        id: AgentId::parse(id).expect("agent id"),
        name: AgentName::try_from("test-bot".to_owned()).expect("name"),
        owner: Owner::try_from("alice@example.com".to_owned()).expect("owner"),
        purpose: Purpose::default(),
        labels: Labels::try_from(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .expect("labels"),
        boundary: Boundary::default(),
        status: AgentStatus::Active,
        status_reason: None,
        created_at: Timestamp::from_secs(0),
        updated_at: Timestamp::from_secs(0),
    }
}

const AGENT_ID: &str = "agt_01JA0000000000000000000000";

// ---- tables ----

#[test]
fn decisions() {
    run_table(
        &cases(&crate_dir().join("tests/data/decisions")),
        "requests.json",
        5,
    );
}

#[test]
fn examples() {
    // Policy examples only (`examples/upstreams` is the sample servers' crate).
    let examples: Vec<PathBuf> = cases(&crate_dir().join("../../examples"))
        .into_iter()
        .filter(|dir| dir.join("policies.cedar").exists())
        .collect();
    assert!(examples.len() >= 3, "crm, mcp and billing: {examples:?}");
    run_table(&examples, "tests.json", 1);
    for dir in &examples {
        let compiled =
            compile(&fragments(dir), &read(&dir.join("policies.cedar"))).expect("compiled above");
        assert!(
            compiled.warnings().is_empty(),
            "{}: warnings:{}",
            dir.display(),
            show(compiled.warnings())
        );
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedError {
    source: String,
    line: Option<u32>,
    column: Option<u32>,
    contains: String,
}

#[test]
fn refused() {
    let dirs = cases(&crate_dir().join("tests/data/refused"));
    assert!(dirs.len() >= 5, "expected refused cases, found {dirs:?}");
    let mut failures = String::new();
    for dir in &dirs {
        let want: Vec<ExpectedError> = serde_json::from_str(&read(&dir.join("errors.json")))
            .unwrap_or_else(|e| panic!("{}: errors.json: {e}", dir.display()));
        let got = match compile(&fragments(dir), &read(&dir.join("policies.cedar"))) {
            Ok(_) => {
                let _ = write!(failures, "\n{}: compiled, expected errors", dir.display());
                continue;
            }
            Err(errors) => errors,
        };
        let matches = got.len() == want.len()
            && got.iter().zip(&want).all(|(g, w)| {
                g.source == w.source
                    && g.line == w.line
                    && g.column == w.column
                    && g.message.contains(&w.contains)
            });
        if !matches {
            let want: String = want
                .iter()
                .map(|w| {
                    format!(
                        "\n    {}:{}:{}: …{}…",
                        w.source,
                        w.line.map_or("-".to_owned(), |l| l.to_string()),
                        w.column.map_or("-".to_owned(), |c| c.to_string()),
                        w.contains
                    )
                })
                .collect();
            let _ = write!(
                failures,
                "\n{}:\n  want:{want}\n  got:{}",
                dir.display(),
                show(&got)
            );
        }
    }
    assert!(failures.is_empty(), "mismatched errors:{failures}");
}

// ---- behaviour the data files cannot express ----

fn crm() -> CompiledPolicies {
    let examples = crate_dir().join("../../examples/crm");
    compile(
        &fragments(&examples),
        &read(&examples.join("policies.cedar")),
    )
    .expect("crm example")
}

#[test]
fn malformed_requests_are_denied_not_panics() {
    let c = crm();
    let a = agent(AGENT_ID, &[("team", "sales")]);
    let contact = json!({"team": "sales"});
    let ctx = json!({"data_class": "internal"});
    let cases: [(&str, &str, &Value, &Value, &str); 8] = [
        (
            "crm:read",
            "Crm::Contact",
            &contact,
            &json!([1]),
            "context must be a JSON object, not an array",
        ),
        (
            "crm:read",
            "Crm::Contact",
            &json!("x"),
            &ctx,
            "resource attributes must be a JSON object, not a string",
        ),
        (
            "crm:read",
            "not a type!",
            &contact,
            &ctx,
            "invalid resource type `not a type!`",
        ),
        ("crm:read", "Crm::Nope", &contact, &ctx, "invalid resource"),
        (
            "crm:read",
            "Mandate::Agent",
            &json!({}),
            &ctx,
            "invalid resource",
        ),
        (
            "all",
            "Crm::Contact",
            &contact,
            &ctx,
            "action `all` applies to nothing",
        ),
        ("", "Crm::Contact", &contact, &ctx, "unknown action ``"),
        (
            "crm:read\0\"",
            "Crm::Contact",
            &contact,
            &ctx,
            "unknown action `crm:read\\0\\\"`",
        ),
    ];
    for (action, resource_type, attrs, context, want) in cases {
        let out = c.evaluate(&PolicyRequest {
            principal: &a,
            action,
            resource_type,
            resource_id: "c1",
            resource_attributes: attrs,
            context,
            on_behalf: Default::default(),
        });
        assert!(!out.allowed, "{action} {resource_type}: {out:?}");
        assert!(
            out.errors.iter().any(|e| e.contains(want)),
            "{action} {resource_type}: want `{want}` in {:?}",
            out.errors
        );
    }
    // `null` attributes and context read as empty objects.
    let out = c.evaluate(&PolicyRequest {
        principal: &a,
        action: "crm:read",
        resource_type: "Crm::Contact",
        resource_id: "c1",
        resource_attributes: &Value::Null,
        context: &Value::Null,
        on_behalf: Default::default(),
    });
    assert!(
        !out.allowed && out.errors.iter().any(|e| e.contains("team")),
        "{out:?}"
    );
}

#[test]
fn shared_across_threads() {
    let c = Arc::new(crm());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                let a = agent(AGENT_ID, &[("team", "sales")]);
                c.evaluate(&PolicyRequest {
                    principal: &a,
                    action: "crm:read",
                    resource_type: "Crm::Contact",
                    resource_id: "c1",
                    resource_attributes: &json!({"team": "sales"}),
                    context: &json!({"data_class": "internal"}),
                    on_behalf: Default::default(),
                })
            })
        })
        .collect();
    for h in handles {
        let out = h.join().expect("thread");
        assert!(out.allowed, "{out:?}");
        assert_eq!(out.policy_ids, ["team-reads-contacts"]);
    }
}

/// Policy ids are reported as written in `@id` — quotes and backslashes included, as
/// `policy_ids()` lists them — and in source order; an `@approval` forbid with such an
/// id still asks for approval.
#[test]
fn odd_policy_ids_are_reported_as_written() {
    let examples = crate_dir().join("../../examples/crm");
    let text = r#"
@id("second \"quoted\"")
permit (principal, action == Mandate::Action::"crm:read", resource);
@id("first\\slash")
permit (principal, action == Mandate::Action::"crm:read", resource);
@id("hold \"it\"")
@approval
forbid (principal, action == Mandate::Action::"crm:write", resource);
@id("let writes")
permit (principal, action == Mandate::Action::"crm:write", resource);
"#;
    let c = compile(&fragments(&examples), text).expect("compiles");
    assert_eq!(
        c.policy_ids(),
        [
            "second \"quoted\"",
            "first\\slash",
            "hold \"it\"",
            "let writes"
        ]
    );
    let a = agent(AGENT_ID, &[("team", "sales")]);
    let ask = |action| {
        c.evaluate(&PolicyRequest {
            principal: &a,
            action,
            resource_type: "Crm::Contact",
            resource_id: "c1",
            resource_attributes: &json!({"team": "sales"}),
            context: &json!({"data_class": "internal"}),
            on_behalf: Default::default(),
        })
    };
    let read = ask("crm:read");
    assert!(read.allowed, "{read:?}");
    assert_eq!(read.policy_ids, ["second \"quoted\"", "first\\slash"]);
    let write = ask("crm:write");
    assert!(!write.allowed && write.approval_required, "{write:?}");
    assert_eq!(write.policy_ids, ["hold \"it\""]);
}

/// Well-typed requests are built directly, not through Cedar's parser; a mistyped one
/// goes through the parser, which refuses it.
#[test]
fn well_typed_requests_take_the_direct_path() {
    use mandate_core::mandate::UserRef;
    use mandate_core::risk::Risk;
    use mandate_policy::{OnBehalf, parsed_on_this_thread};

    let c = crm();
    let a = agent(AGENT_ID, &[("team", "sales")]);
    let user = UserRef {
        issuer: "https://idp.example.com".to_owned(),
        sub: "alice".to_owned(),
        email: Some("alice@example.com".to_owned()),
        groups: vec!["sales".to_owned()],
    };
    let risk = Risk {
        score: 40,
        anomalies: vec!["rate_spike".to_owned()],
        step_up: false,
    };
    let chain = ["agt_01JA0000000000000000000001"];
    let ask = |context: Value, on_behalf: OnBehalf<'_>| {
        c.evaluate(&PolicyRequest {
            principal: &a,
            action: "crm:read",
            resource_type: "Crm::Contact",
            resource_id: "c1",
            resource_attributes: &json!({"team": "sales", "region": "eu", "undeclared": [1]}),
            context: &context,
            on_behalf,
        })
    };
    let before = parsed_on_this_thread();
    let plain = ask(
        json!({"data_class": "internal", "source_ip": "10.1.2.3", "extra": {"x": 1}}),
        OnBehalf::default(),
    );
    let delegated = ask(
        json!({"data_class": "internal", "user": "forged"}),
        OnBehalf {
            user: Some(&user),
            mandate: None,
            chain: &chain,
            risk: Some(&risk),
        },
    );
    assert_eq!(parsed_on_this_thread(), before, "{plain:?} {delegated:?}");
    assert!(plain.allowed && plain.errors.is_empty(), "{plain:?}");
    assert!(delegated.errors.is_empty(), "{delegated:?}");

    let mistyped = ask(json!({"data_class": 5}), OnBehalf::default());
    assert_eq!(parsed_on_this_thread(), before + 1);
    assert!(
        !mistyped.allowed && !mistyped.errors.is_empty(),
        "{mistyped:?}"
    );
}

/// A request on the mandate its token is bound to sees the mandate's own attributes,
/// whatever the caller sends as the resource's.
#[test]
fn the_own_mandate_as_resource_cannot_be_forged() {
    use mandate_core::id::MandateId;
    use mandate_core::mandate::{Mandate, MandateStatus};
    use mandate_policy::{OnBehalf, mandate_attributes};

    let policies = r#"
        permit (principal, action == Mandate::Action::"mandate:request", resource)
        when { context has mandate && context.mandate.intent == "forged" };
        permit (principal, action == Mandate::Action::"mandate:request", resource)
        when { resource.intent == "forged" };
    "#;
    let c = compile(&[], policies).unwrap_or_else(|e| panic!("{}", show(&e)));
    let a = agent(AGENT_ID, &[]);
    let m = Mandate::requested(
        MandateId::parse("mdt_01JA0000000000000000000000").expect("mandate id"),
        AgentId::parse(AGENT_ID).expect("agent id"),
        "real".to_owned(),
        Vec::new(),
        60,
        MandateStatus::Active,
        Timestamp::from_secs(0),
    );
    let mut forged = mandate_attributes(&m);
    forged["intent"] = json!("forged");
    let ask = |id: &str| {
        c.evaluate(&PolicyRequest {
            principal: &a,
            action: "mandate:request",
            resource_type: "Mandate::Mandate",
            resource_id: id,
            resource_attributes: &forged,
            context: &Value::Null,
            on_behalf: OnBehalf {
                mandate: Some(&m),
                ..OnBehalf::default()
            },
        })
    };
    let own = ask(m.id.as_str());
    assert!(!own.allowed && own.errors.is_empty(), "{own:?}");
    // Another mandate as the resource keeps the caller's attributes.
    let other = ask("mdt_01JA0000000000000000000001");
    assert!(other.allowed, "{other:?}");
}

#[test]
fn resource_ref_prints_as_cedar() {
    let a = agent(AGENT_ID, &[]);
    let req = PolicyRequest {
        principal: &a,
        action: "crm:read",
        resource_type: "Crm::Contact",
        resource_id: "c\"1",
        resource_attributes: &Value::Null,
        context: &Value::Null,
        on_behalf: Default::default(),
    };
    assert_eq!(req.resource().to_string(), r#"Crm::Contact::"c\"1""#);
}

#[test]
fn test_file_problems_are_errors() {
    let c = crm();
    let case = |name: &str, id: &str| {
        json!({
            "name": name,
            "principal": {"id": id, "name": "bot", "owner": "alice@example.com"},
            "action": "crm:read",
            "resource": {"type": "Crm::Contact", "id": "c1"},
            "expect": "deny"
        })
    };
    let file = |tests: Vec<Value>| json!({ "tests": tests }).to_string();

    let err = run_tests(&c, "{").unwrap_err();
    assert!(matches!(err, TestFileError::Json(_)), "{err}");
    let err = run_tests(&c, r#"{"tests": [], "extra": 1}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `extra`"), "{err}");
    let err = run_tests(&c, &file(vec![])).unwrap_err();
    assert!(matches!(err, TestFileError::Empty), "{err}");
    let err = run_tests(&c, &file(vec![case("a", AGENT_ID), case("a", AGENT_ID)])).unwrap_err();
    assert_eq!(err.to_string(), "duplicate test name `a`");
    let err = run_tests(&c, &file(vec![case("bad id", "agt_nope")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "test `bad id`: invalid principal: invalid agent id `agt_nope`"
    );
}

#[test]
fn report_names_each_failure() {
    let c = crm();
    let tests = json!({"tests": [
        {
            "name": "wrongly expects allow",
            "principal": {"id": AGENT_ID, "name": "bot", "owner": "alice@example.com"},
            "action": "crm:read",
            "resource": {"type": "Crm::Contact", "id": "c1", "attributes": {"team": "sales"}},
            "context": {"data_class": "internal"},
            "expect": "allow"
        },
        {
            "name": "wrong policies and error",
            "principal": {"id": AGENT_ID, "name": "bot", "owner": "alice@example.com"},
            "action": "crm:nope",
            "resource": {"type": "Crm::Contact", "id": "c1"},
            "expect": "deny",
            "policies": ["refund-limit"],
            "error": "overflow"
        },
        {
            "name": "passes",
            "principal": {"id": AGENT_ID, "name": "bot", "owner": "alice@example.com"},
            "action": "crm:nope",
            "resource": {"type": "Crm::Contact", "id": "c1"},
            "expect": "deny"
        }
    ]});
    let report = run_tests(&c, &tests.to_string()).expect("runs");
    assert_eq!((report.passed(), report.failed()), (1, 2));
    assert_eq!(report.failures().count(), 2);
    assert_eq!(
        report.to_string(),
        "FAIL wrongly expects allow: expected allow, got deny\n\
         FAIL wrong policies and error: expected determining policies [`refund-limit`], got []; \
         expected an error containing `overflow` (errors: unknown action `crm:nope`: it is not \
         declared in the schema)\n\
         PASS passes\n\
         1 passed, 2 failed"
    );
}
