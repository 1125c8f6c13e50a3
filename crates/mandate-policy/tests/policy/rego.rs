//! Rego through the public API, table-driven from data files:
//!
//! - `tests/data/rego/<case>/`: `*.rego` modules (a name ending `.v0.rego` is Rego v0),
//!   an optional `data.json` (the base document) and `queries.json`
//!   (`[{"path", "input"?, "now_millis"?, "result"? | "error"?}]`): each query must
//!   answer `result` (absent = undefined) or fail with an error containing `error`.
//! - `tests/data/rego_refused/<case>/`: `*.rego` and `errors.json` (`[{"source", "line",
//!   "column", "contains"}]`, in order); compiling must fail with exactly those errors.
//!
//! Plus the limits, the test runner and the Data API's path handling.

use std::fs;
use std::path::{Path, PathBuf};

use mandate_policy::{
    Budget, MAX_MODULES, RegoError, RegoModule, RegoPolicies, RegoSource, RegoTestOutcome,
    compile_rego, run_rego_tests,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{cases, crate_dir, read, show};

fn module(id: &str, source: &str) -> RegoModule {
    RegoModule {
        id: id.to_owned(),
        source: source.to_owned(),
        rego_v0: false,
    }
}

fn one(source: &str) -> RegoSource {
    RegoSource {
        modules: vec![module("policy.rego", source)],
        data: Map::new(),
    }
}

/// The modules and data of a case directory.
fn load(dir: &Path) -> RegoSource {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .expect("case directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rego"))
        .collect();
    paths.sort();
    let modules = paths
        .iter()
        .map(|p| {
            let id = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            RegoModule {
                rego_v0: id.ends_with(".v0.rego"),
                id,
                source: read(p),
            }
        })
        .collect();
    let data_path = dir.join("data.json");
    let data = if data_path.exists() {
        serde_json::from_str(&read(&data_path)).expect("data.json is an object")
    } else {
        Map::new()
    };
    RegoSource { modules, data }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    path: String,
    input: Option<Value>,
    #[serde(default)]
    now_millis: i64,
    result: Option<Value>,
    error: Option<String>,
}

#[test]
fn rego_queries() {
    let mut failures = String::new();
    for dir in cases(&crate_dir().join("tests/data/rego")) {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let policies = match compile_rego(&load(&dir)) {
            Ok(p) => p,
            Err(errors) => {
                failures.push_str(&format!("\n{name}: does not compile:{}", show(&errors)));
                continue;
            }
        };
        let queries: Vec<Query> = serde_json::from_str(&read(&dir.join("queries.json")))
            .unwrap_or_else(|e| panic!("{name}: queries.json: {e}"));
        for q in queries {
            let got = policies.query(&q.path, q.input.as_ref(), q.now_millis);
            // An inline query answers what a full one does, unless it ran out of its
            // budget (then its caller asks again with the full one).
            let inline =
                policies.query_within(&q.path, q.input.as_ref(), q.now_millis, Budget::Inline);
            if inline != got && inline != Err(RegoError::TimeLimit) {
                failures.push_str(&format!(
                    "\n{name}: `{}`: inline {inline:?}, full {got:?}",
                    q.path
                ));
            }
            let ok = match (&got, &q.error) {
                (Err(e), Some(want)) => e.to_string().contains(want.as_str()),
                (Ok(v), None) => *v == q.result,
                _ => false,
            };
            if !ok {
                failures.push_str(&format!(
                    "\n{name}: `{}`: got {got:?}, want {}",
                    q.path,
                    q.error
                        .as_ref()
                        .map_or_else(|| format!("{:?}", q.result), |e| format!("error {e:?}"))
                ));
            }
        }
    }
    assert!(failures.is_empty(), "failing queries:{failures}");
}

#[derive(Deserialize)]
struct ExpectedError {
    source: String,
    line: Option<u32>,
    column: Option<u32>,
    contains: String,
}

#[test]
fn rego_refused() {
    let mut failures = String::new();
    for dir in cases(&crate_dir().join("tests/data/rego_refused")) {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let want: Vec<ExpectedError> = serde_json::from_str(&read(&dir.join("errors.json")))
            .unwrap_or_else(|e| panic!("{name}: errors.json: {e}"));
        let got = match compile_rego(&load(&dir)) {
            Ok(_) => {
                failures.push_str(&format!("\n{name}: compiled"));
                continue;
            }
            Err(errors) => errors,
        };
        let same = got.len() == want.len()
            && got.iter().zip(&want).all(|(g, w)| {
                g.source == w.source
                    && g.line == w.line
                    && g.column == w.column
                    && g.message.contains(&w.contains)
            });
        if !same {
            failures.push_str(&format!("\n{name}: got{}", show(&got)));
        }
    }
    assert!(failures.is_empty(), "unexpected errors:{failures}");
}

#[test]
fn empty_policies_answer_only_the_root() {
    let empty = RegoPolicies::default();
    assert!(empty.is_empty());
    assert_eq!(empty.query("", None, 0), Ok(Some(json!({}))));
    assert_eq!(empty.query("http/authz", None, 0), Ok(None));
    let compiled = compile_rego(&RegoSource::default()).expect("empty compiles");
    assert!(compiled.is_empty());
}

#[test]
fn packages_are_listed_as_paths() {
    let src = RegoSource {
        modules: vec![
            module("b.rego", "package http.authz\nallow := true\n"),
            module("a.rego", "package app\nx := 1\n"),
            module("c.rego", "package http.authz\ny := 2\n"),
        ],
        data: Map::new(),
    };
    let p = compile_rego(&src).expect("compiles");
    assert_eq!(p.packages(), ["app", "http/authz"]);
    assert!(!p.is_empty());
}

#[test]
fn an_empty_path_segment_is_refused() {
    let p = compile_rego(&one("package a\nx := 1\n")).expect("compiles");
    assert_eq!(
        p.query("a//x", None, 0),
        Err(RegoError::InvalidPath("a//x".into()))
    );
    assert_eq!(p.query("a/x/", None, 0), Ok(Some(json!(1))));
    assert_eq!(p.query("/a/x", None, 0), Ok(Some(json!(1))));
}

#[test]
fn time_now_ns_is_the_callers_clock() {
    let p = compile_rego(&one("package t\nnow := time.now_ns()\n")).expect("compiles");
    assert_eq!(
        p.query("t/now", None, 1_700_000_000_123),
        Ok(Some(json!(1_700_000_000_123_000_000_i64)))
    );
    assert_eq!(p.query("t/now", None, 5), Ok(Some(json!(5_000_000))));
}

/// A query that outruns the inline budget stops with `TimeLimit` (its caller then runs it
/// off the worker), and the full budget answers it.
#[test]
fn an_inline_query_stops_at_its_budget_and_the_full_one_answers() {
    let mut src = one("package loop
         n := count([1 | some a in data.xs; some b in data.xs])
");
    src.data
        .insert("xs".into(), json!((0..200).collect::<Vec<_>>()));
    let p = compile_rego(&src).expect("compiles");
    assert!(p.may_run_inline(), "no amplifying builtin");
    assert_eq!(
        p.query_within("loop/n", None, 0, Budget::Inline),
        Err(RegoError::TimeLimit)
    );
    assert_eq!(
        p.query_within("loop/n", None, 0, Budget::Full),
        Ok(Some(json!(40_000)))
    );
}

/// Which policies may be tried inline, from `tests/data/rego_inline.json`
/// (`[{"source", "inline", "why"}]`): a module naming a builtin whose one call can do
/// unbounded work (or a `sprintf` whose format is not a literal) never is.
#[test]
fn amplifying_builtins_keep_a_policy_off_the_worker() {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Case {
        source: String,
        inline: bool,
        why: String,
    }
    let cases: Vec<Case> =
        serde_json::from_str(&read(&crate_dir().join("tests/data/rego_inline.json")))
            .expect("rego_inline.json");
    let mut failures = String::new();
    for c in &cases {
        let p = compile_rego(&one(&c.source))
            .unwrap_or_else(|e| panic!("{}: does not compile:{}", c.why, show(&e)));
        if p.may_run_inline() != c.inline {
            failures.push_str(&format!("\n{}: inline {}", c.why, !c.inline));
        }
    }
    assert!(failures.is_empty(), "wrong:{failures}");
}

#[test]
fn a_runaway_query_stops_at_the_time_limit() {
    let src = one("package slow\n\
         n := [x | some a in numbers.range(1, 2000); some b in numbers.range(1, 2000); x := a * b]\n\
         count_n := count(n)\n");
    let p = compile_rego(&src).expect("compiles");
    #[expect(
        clippy::disallowed_methods,
        reason = "the test measures the limit itself"
    )]
    let started = std::time::Instant::now();
    let got = p.query("slow/count_n", None, 0);
    assert_eq!(got, Err(RegoError::TimeLimit));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(RegoError::TimeLimit.code(), "internal_error");
}

#[test]
fn too_many_modules_are_refused() {
    let modules = (0..=MAX_MODULES)
        .map(|i| module(&format!("m{i}.rego"), &format!("package m{i}\nx := 1\n")))
        .collect();
    let errors = compile_rego(&RegoSource {
        modules,
        data: Map::new(),
    })
    .expect_err("refused");
    assert!(errors[0].message.contains("too many modules"), "{errors:?}");
}

#[test]
fn duplicate_ids_and_oversized_modules_are_refused() {
    let big = format!(
        "package big\n#{}\n",
        "x".repeat(mandate_policy::MAX_MODULE_BYTES)
    );
    let errors = compile_rego(&RegoSource {
        modules: vec![
            module("a.rego", "package a\n"),
            module("a.rego", "package b\n"),
            module("big.rego", &big),
        ],
        data: Map::new(),
    })
    .expect_err("refused");
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].contains("duplicate module id `a.rego`"),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with("big.rego: module is"),
        "{messages:?}"
    );
}

#[test]
fn tests_run_like_opa_test() {
    let src = RegoSource {
        modules: vec![
            module(
                "authz.rego",
                "package authz\ndefault allow := false\nallow if input.user == \"alice\"\n",
            ),
            module(
                "authz_test.rego",
                "package authz_test\n\
                 import data.authz\n\
                 test_alice if authz.allow with input as {\"user\": \"alice\"}\n\
                 test_bob_fails if authz.allow with input as {\"user\": \"bob\"}\n\
                 test_undefined if data.nope\n\
                 test_conflict := x if { some x in [true, false] }\n\
                 todo_test_later if false\n\
                 test_false := false\n",
            ),
        ],
        data: Map::new(),
    };
    let report = run_rego_tests(&src, None, 0).expect("compiles");
    let got: Vec<(String, RegoTestOutcome)> = report
        .results
        .iter()
        .map(|r| (r.name.clone(), r.outcome.clone()))
        .collect();
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "data.authz_test.test_alice",
            "data.authz_test.test_bob_fails",
            "data.authz_test.test_undefined",
            "data.authz_test.test_conflict",
            "data.authz_test.todo_test_later",
            "data.authz_test.test_false",
        ]
    );
    assert_eq!(got[0].1, RegoTestOutcome::Pass);
    assert_eq!(got[1].1, RegoTestOutcome::Fail);
    assert_eq!(got[2].1, RegoTestOutcome::Fail);
    assert!(
        matches!(&got[3].1, RegoTestOutcome::Error(m) if m.contains("multiple outputs")),
        "{:?}",
        got[3]
    );
    assert_eq!(got[4].1, RegoTestOutcome::Skip);
    assert_eq!(got[5].1, RegoTestOutcome::Fail);
    assert_eq!(report.results[0].line, 3);
    assert_eq!(report.results[0].module, "authz_test.rego");
    assert!(!report.all_passed());

    let only = run_rego_tests(&src, Some("alice"), 0).expect("compiles");
    assert_eq!(only.results.len(), 1);
    assert!(only.all_passed());
}

/// regorus is built without `http` and `uuid`: a policy cannot reach the network or the
/// OS random source; calling those builtins is an evaluation error naming them.
#[test]
fn no_network_and_no_randomness_from_a_policy() {
    let src = one("package p\n\n\
         fetched := http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1:9\"})\n\n\
         id := uuid.rfc4122(\"k\")\n\n\
         roll := rand.intn(\"k\", 10)\n");
    let p = compile_rego(&src).expect("compiles: unknown functions are found when called");
    for (path, name) in [
        ("p/fetched", "http.send"),
        ("p/id", "uuid.rfc4122"),
        ("p/roll", "rand.intn"),
    ] {
        match p.query(path, None, 0) {
            Err(RegoError::Eval(m)) => assert!(m.contains(name), "{m}"),
            other => panic!("{path}: {other:?}"),
        }
    }
}

/// regorus parses nested `[`/`{` in exponential time and overflows its stack on deep
/// brackets: such modules are refused before it sees them, located at the bracket
/// that goes too deep (regression: 20 nested arrays took 43 s to refuse, 3,000 aborted
/// the process).
#[test]
fn deeply_nested_brackets_are_refused_before_parsing() {
    let nested = |open: &str, close: &str, n: usize| {
        format!(
            "package deep\n\nx := {}1{}\n",
            format!("{open}\n").repeat(n),
            format!("{close}\n").repeat(n)
        )
    };
    let limit = mandate_policy::MAX_LITERAL_NESTING;
    // At the limit: parsed (and quickly).
    let ok = compile_rego(&one(&nested("[", "]", limit))).expect("12 deep compiles");
    assert!(ok.query("deep/x", None, 0).expect("evaluates").is_some());
    // One deeper: refused where it goes too deep.
    for (open, close) in [("[", "]"), ("{\"a\":", "}"), ("[{\"a\":", "}]")] {
        let errors = compile_rego(&one(&nested(open, close, 20))).expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].line,
            Some(3 + u32::try_from(limit).unwrap() / open.matches(['[', '{']).count() as u32),
            "{errors:?}"
        );
        assert!(
            errors[0].message.contains("nested more than 12 deep"),
            "{errors:?}"
        );
    }
    let errors = compile_rego(&one(&nested("(", ")", 3000))).expect_err("refused");
    assert!(
        errors[0]
            .message
            .contains("brackets nested more than 100 deep"),
        "{errors:?}"
    );
    // Brackets in strings and comments do not count.
    let text = format!(
        "package s\n\n# {}\nx := \"{}\"\n",
        "[".repeat(50),
        "{".repeat(50)
    );
    compile_rego(&one(&text)).expect("compiles");
}
