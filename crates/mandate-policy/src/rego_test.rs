//! Rego unit tests the way `opa test` runs them: every rule named `test_*` in any
//! package is a test that passes iff it is defined and `true`; `todo_test_*` rules are
//! reported skipped. Each test evaluates on its own copy of the prepared interpreter
//! (no input, the version's base data), under the query time limit.

use regorus::unstable::{Rule, RuleHead};
use serde::Serialize;

use crate::PolicyError;
use crate::rego::{RegoError, RegoSource, load, set_now};

/// What one test came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "message")]
pub enum RegoTestOutcome {
    /// Defined and `true`.
    Pass,
    /// Undefined, or a value other than `true`.
    Fail,
    /// A `todo_test_*` rule: not run.
    Skip,
    /// Evaluation failed (a conflict, the time limit, …).
    Error(String),
}

/// One test's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegoTestResult {
    /// `data.<package>.<rule>`, as `opa test` names it.
    pub name: String,
    /// The id of the module it is in.
    pub module: String,
    /// 1-based line of the rule.
    pub line: u32,
    /// What it came to.
    #[serde(flatten)]
    pub outcome: RegoTestOutcome,
}

/// The results, by module then line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegoTestReport {
    /// One per test rule, skipped ones included.
    pub results: Vec<RegoTestResult>,
}

impl RegoTestReport {
    /// How many results have this outcome kind (`Error`'s message is ignored).
    pub fn count(&self, kind: &RegoTestOutcome) -> usize {
        self.results
            .iter()
            .filter(|r| std::mem::discriminant(&r.outcome) == std::mem::discriminant(kind))
            .count()
    }

    /// Whether no test failed or errored (skipped ones do not count).
    pub fn all_passed(&self) -> bool {
        self.results
            .iter()
            .all(|r| matches!(r.outcome, RegoTestOutcome::Pass | RegoTestOutcome::Skip))
    }
}

/// Compiles `src` and runs its tests whose name (`data.<package>.<rule>`) contains
/// `filter` (all when `None`). `time.now_ns()` answers `now_millis`. Compile errors
/// are returned as [`crate::compile_rego`] returns them.
pub fn run_rego_tests(
    src: &RegoSource,
    filter: Option<&str>,
    now_millis: i64,
) -> Result<RegoTestReport, Vec<PolicyError>> {
    // Compiling first reports analysis errors with their locations.
    crate::rego::compile_rego(src)?;
    let (mut engine, _) = load(src)?;
    let mut tests = Vec::new();
    let ids: Vec<&str> = src.modules.iter().map(|m| m.id.as_str()).collect();
    for (i, module) in engine.get_modules().iter().enumerate() {
        let package = module.package.refr.span().text().to_owned();
        let id = ids.get(i).copied().unwrap_or_default().to_owned();
        for rule in &module.policy {
            let Rule::Spec { head, span, .. } = rule.as_ref() else {
                continue;
            };
            let (RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. }) = head else {
                continue;
            };
            let name = refr.span().text();
            let is_test = name.starts_with("test_");
            let is_todo = name.starts_with("todo_test_");
            if !(is_test || is_todo) || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let full = format!("data.{package}.{name}");
            if filter.is_some_and(|f| !full.contains(f)) {
                continue;
            }
            tests.push((full, id.clone(), span.line, is_todo));
        }
    }
    // A test defined by several bodies is one test.
    tests.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    let mut seen = std::collections::HashSet::new();
    tests.retain(|t| seen.insert(t.0.clone()));

    let mut results = Vec::with_capacity(tests.len());
    for (name, module, line, todo) in tests {
        let outcome = if todo {
            RegoTestOutcome::Skip
        } else {
            run_one(&engine, &name, now_millis)
        };
        results.push(RegoTestResult {
            name,
            module,
            line,
            outcome,
        });
    }
    Ok(RegoTestReport { results })
}

fn run_one(engine: &regorus::Engine, name: &str, now_millis: i64) -> RegoTestOutcome {
    let mut engine = engine.clone();
    if let Err(e) = set_now(&mut engine, now_millis) {
        return RegoTestOutcome::Error(e.to_string());
    }
    match engine.eval_rule(name.to_owned()) {
        Ok(regorus::Value::Bool(true)) => RegoTestOutcome::Pass,
        Ok(_) => RegoTestOutcome::Fail,
        Err(e) => RegoTestOutcome::Error(RegoError::from_regorus(&e.to_string()).to_string()),
    }
}
