//! Rego, OPA's policy language, as a policy version's second language: the modules and
//! base `data` document a version holds, compiled once into [`RegoPolicies`] and queried
//! by the Data API's slash path. The Data API (`opa.listen`) answers from them;
//! `/v1/authorize` never reads them (Cedar decides there).
//!
//! This module and `rego_test` are the only code that names `regorus`
//! (Microsoft's Rust Rego interpreter). The builtins compiled in are listed in the
//! workspace `Cargo.toml`: every pure OPA builtin group regorus has, but no `http.send`
//! (a policy never reaches the network), no `uuid.*` or `rand.*` (no OS randomness), no
//! `opa.runtime`, no JSON Schema or YAML.
//!
//! # Time
//!
//! `time.now_ns()` does not read the wall clock: every query is given the caller's
//! `now` (from its `Clock`) and `time.now_ns()` answers that, the same for the whole
//! query as in OPA. The one clock regorus itself reads is the monotonic timer behind
//! the evaluation time limit ([`QUERY_TIME_LIMIT`]); it bounds work and never reaches
//! a result.
//!
//! # Limits
//!
//! At most [`MAX_MODULES`] modules of at most [`MAX_MODULE_BYTES`] each (20,000 lines,
//! 1,024 columns: regorus' own limits), and [`MAX_SOURCE_BYTES`] for all modules plus
//! `data` as JSON; brackets nest at most [`MAX_LITERAL_NESTING`] (`[`, `{`) and
//! [`MAX_NESTING`] (any) deep, since regorus' parser is exponential in the first and
//! overflows the stack on the second; one expression chains at most [`MAX_OPERATORS`]
//! operators (a longer chain overflows the stack too). A query that runs longer than
//! [`QUERY_TIME_LIMIT`] is stopped with [`RegoError::TimeLimit`], checked between
//! interpreter steps: a builtin's one step (`net.cidr_expand` of a wide prefix) can run
//! past it, so callers evaluate off their async workers.
//!
//! # Inline queries
//!
//! Handing every query to a blocking thread halves the Data API's throughput (the
//! hop, not Rego, is most of a query's cost: BENCHMARKS.md). So a caller may first try
//! [`Budget::Inline`] on its async worker: the time limit is then [`INLINE_TIME_LIMIT`],
//! checked every [`INLINE_CHECK_INTERVAL`] steps, and a query that reaches it answers
//! [`RegoError::TimeLimit`], to be run again with [`Budget::Full`] off the worker
//! (queries are pure: `time.now_ns` is the caller's `now`, so the second run answers
//! what the first would have). One step must then be short too, which holds when the
//! input is small ([`INLINE_INPUT_BYTES`]) and no module calls a builtin whose work is
//! not bounded by its arguments' size ([`RegoPolicies::may_run_inline`]).

use std::num::NonZeroU32;
use std::time::Duration;

use regorus::Engine;
use regorus::utils::limits::ExecutionTimerConfig;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::PolicyError;

/// The most modules a version may hold.
pub const MAX_MODULES: usize = 256;

/// The largest module, in bytes (regorus refuses larger ones too).
pub const MAX_MODULE_BYTES: usize = 1024 * 1024;

/// The most bytes of module text plus `data` (as JSON) a version may hold.
pub const MAX_SOURCE_BYTES: usize = 16 * 1024 * 1024;

/// How long one query may evaluate before it is stopped (checked every few hundred
/// steps of the interpreter, so it overshoots by microseconds).
pub const QUERY_TIME_LIMIT: Duration = Duration::from_millis(500);

/// How long a [`Budget::Inline`] query may evaluate on an async worker before it stops
/// with [`RegoError::TimeLimit`] (and its caller runs it again off the worker).
pub const INLINE_TIME_LIMIT: Duration = Duration::from_millis(2);

/// How many interpreter steps an inline query takes between looks at the clock: few,
/// since a step of a builtin over a small input is microseconds.
pub const INLINE_CHECK_INTERVAL: u32 = 8;

/// The largest input (as the JSON the caller sent, in bytes) a caller should try inline:
/// with more, one builtin step over it (`replace`, `strings.any_prefix_match`) can take
/// milliseconds by itself.
pub const INLINE_INPUT_BYTES: usize = 4096;

/// Builtins whose one call can do work out of proportion to its arguments' size: a range
/// of a billion numbers from two small ones, a /8 expanded, a shift by millions of bits,
/// a patch that copies the document into itself again and again, every path of a graph,
/// regex intersection, a replacement count from the input. A module that names any of
/// them (as a whole word, anywhere: a comment too, erring towards the blocking thread)
/// never runs inline.
const AMPLIFYING: &[&str] = &[
    "range",
    "range_step",
    "cidr_expand",
    "lsh",
    "replace_n",
    "reachable_paths",
    "patch",
    "globs_match",
];

/// How long a query may run, and so where: see the module's "Inline queries".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// [`INLINE_TIME_LIMIT`]: on an async worker, for a query
    /// [`RegoPolicies::may_run_inline`] allows with an input of at most
    /// [`INLINE_INPUT_BYTES`].
    Inline,
    /// [`QUERY_TIME_LIMIT`]: off the async workers.
    Full,
}

/// A rule no module can define (`__` is not a package path a loader produces); asked
/// for only to make regorus prepare its engine.
const PREPARE_RULE: &str = "data.__mandate_prepare__.__mandate_prepare__";

/// The deepest nesting of `[` and `{` (together) a module may have. regorus parses
/// them in time exponential in their depth (16 deep: seconds; 20: most of a minute), so
/// deeper ones are refused before it sees them.
pub const MAX_LITERAL_NESTING: usize = 12;

/// The deepest nesting of brackets of any kind (`(`, `[`, `{`): regorus' recursive
/// descent parser overflows the stack in the thousands.
pub const MAX_NESTING: usize = 100;

/// The most arithmetic and set operators (`+ - * / % | &`, unary minus included) one
/// expression may chain, counted along its brackets (an operand in brackets adds its own
/// to the expression around it): regorus builds and walks such a chain recursively and
/// overflowed the stack, aborting the server, at 200 unary minuses or 1,000 `+` (debug
/// build).
pub const MAX_OPERATORS: usize = 64;

/// The `source` of a [`PolicyError`] about the `data` document.
pub const DATA_SOURCE: &str = "data";

/// One Rego module as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegoModule {
    /// The file name or bundle path it came from, or the id given to OPA's Policy API;
    /// the `source` of its errors.
    pub id: String,
    /// The module's text.
    pub source: String,
    /// Parsed as Rego v0 (OPA 0.x, `--v0-compatible`) rather than v1.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rego_v0: bool,
}

/// A version's Rego part: its modules and its base `data` document. Stored as this
/// type's JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegoSource {
    /// The modules, in the order given; ids unique.
    #[serde(default)]
    pub modules: Vec<RegoModule>,
    /// The base document (`data`); an object.
    #[serde(default)]
    pub data: Map<String, Value>,
}

impl RegoSource {
    /// No modules and no data: the version has no Rego part.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty() && self.data.is_empty()
    }
}

/// An evaluation error: OPA's Data API answers these with HTTP 500 and its error
/// shape ([`RegoError::code`]); Mandate fails closed on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegoError {
    /// The path is not a Data API path (an empty segment, say).
    #[error("invalid data path `{0}`")]
    InvalidPath(String),
    /// The input could not be handed to the interpreter.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The query ran past [`QUERY_TIME_LIMIT`].
    #[error("evaluation stopped after {} ms (the time limit)", QUERY_TIME_LIMIT.as_millis())]
    TimeLimit,
    /// The policy failed while evaluating: conflicting values for a complete rule or a
    /// function, an object with conflicting keys, a failing builtin in a module that
    /// asks for strict errors, …; regorus' message, located.
    #[error("{0}")]
    Eval(String),
}

impl RegoError {
    /// From regorus' error text (its errors are `anyhow` errors; the time limit's is
    /// recognised by its text).
    pub(crate) fn from_regorus(message: &str) -> Self {
        if message.contains("execution exceeded time limit") {
            return Self::TimeLimit;
        }
        Self::Eval(located_message(message))
    }

    /// OPA's error code for it: `invalid_parameter` for a bad path or input,
    /// `internal_error` otherwise (as OPA answers evaluation errors).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPath(_) | Self::InvalidInput(_) => "invalid_parameter",
            Self::TimeLimit | Self::Eval(_) => "internal_error",
        }
    }
}

/// A version's compiled Rego: parsed and analysed modules with their base data, ready
/// to query. `RegoPolicies::default()` holds nothing (every path but `""` is
/// undefined).
///
/// `Send + Sync`; held in an `Arc` in the decision snapshot. A query works on its own
/// copy of the prepared interpreter (a clone shares the modules and data), so queries
/// never wait for each other.
#[derive(Clone, Default)]
pub struct RegoPolicies {
    /// `None` when there is nothing to evaluate.
    engine: Option<Engine>,
    /// Package paths, slash-separated, sorted, without duplicates.
    packages: Vec<String>,
    /// The Data API paths of the rules (not functions) whose package and name are
    /// plain identifiers: `http/authz/allow`, `app/limits/max`. Such a path is
    /// answered by a rule lookup.
    rules: std::collections::HashSet<String>,
    /// Some module names an [`AMPLIFYING`] builtin, or calls `sprintf` with a format
    /// that is not a literal (a width read from the input, `%999999999d`, is a
    /// gigabyte in one step).
    amplifies: bool,
}

impl std::fmt::Debug for RegoPolicies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegoPolicies")
            .field("packages", &self.packages)
            .finish_non_exhaustive()
    }
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<RegoPolicies>();
};

impl RegoPolicies {
    /// No modules and no data.
    pub fn is_empty(&self) -> bool {
        self.engine.is_none()
    }

    /// Whether a query with a small input ([`INLINE_INPUT_BYTES`]) may be tried with
    /// [`Budget::Inline`]: no module names a builtin whose one call can outrun the
    /// inline time limit by itself.
    pub fn may_run_inline(&self) -> bool {
        !self.amplifies
    }

    /// The packages defined, as Data API paths (`http/authz`), sorted.
    pub fn packages(&self) -> Vec<String> {
        self.packages.clone()
    }

    /// Evaluates the document at the Data API's slash `path` (`"http/authz"`,
    /// `"http/authz/allow"`, `""` for all of `data`, base documents and rule values
    /// together) with `input`, as OPA's `POST /v1/data/{path}` does. `Ok(None)` is
    /// undefined (OPA then answers without `result`). `now_millis` is what
    /// `time.now_ns()` answers (in nanoseconds), from the caller's clock.
    ///
    /// Builtin errors follow OPA's Data API default (`strict-builtin-errors` off): the
    /// failing expression is undefined. Conflicts and the time limit are errors.
    pub fn query(
        &self,
        path: &str,
        input: Option<&Value>,
        now_millis: i64,
    ) -> Result<Option<Value>, RegoError> {
        self.query_within(path, input, now_millis, Budget::Full)
    }

    /// [`RegoPolicies::query`] within `budget`: with [`Budget::Inline`], a query that
    /// reaches [`INLINE_TIME_LIMIT`] answers [`RegoError::TimeLimit`], and is to be run
    /// again with [`Budget::Full`] off the async worker.
    pub fn query_within(
        &self,
        path: &str,
        input: Option<&Value>,
        now_millis: i64,
        budget: Budget,
    ) -> Result<Option<Value>, RegoError> {
        let segments = path_segments(path)?;
        let Some(engine) = &self.engine else {
            return Ok(if segments.is_empty() {
                Some(Value::Object(Map::new()))
            } else {
                None
            });
        };
        let mut engine = engine.clone();
        if budget == Budget::Inline {
            engine.set_execution_timer_config(ExecutionTimerConfig {
                limit: INLINE_TIME_LIMIT,
                check_interval: NonZeroU32::new(INLINE_CHECK_INTERVAL).unwrap_or(NonZeroU32::MIN),
            });
        }
        if let Some(input) = input {
            let value = regorus::Value::deserialize(input)
                .map_err(|e| RegoError::InvalidInput(e.to_string()))?;
            engine.set_input(value);
        }
        set_now(&mut engine, now_millis)?;
        let joined = segments.join("/");
        let value = if self.rules.contains(&joined) {
            // A rule's own path: a rule lookup, a third of a general query's cost
            // (BENCHMARKS.md); the same answer (the table tests ask both kinds).
            engine
                .eval_rule(format!("data.{}", segments.join(".")))
                .map_err(|e| eval_error(&e.to_string()))?
        } else {
            general_query(&mut engine, &segments)?
        };
        if value == regorus::Value::Undefined {
            return Ok(None);
        }
        serde_json::to_value(&value)
            .map(Some)
            .map_err(|e| RegoError::Eval(e.to_string()))
    }
}

/// Any path: `data["a"]["b"]` as a query.
fn general_query(engine: &mut Engine, segments: &[&str]) -> Result<regorus::Value, RegoError> {
    let results = engine
        .eval_query(data_ref(segments), false)
        .map_err(|e| eval_error(&e.to_string()))?;
    Ok(
        match results
            .result
            .into_iter()
            .next()
            .and_then(|r| r.expressions.into_iter().next())
        {
            Some(e) => e.value,
            None => regorus::Value::Undefined,
        },
    )
}

/// Makes `time.now_ns()` answer `now_millis` (as nanoseconds) in this engine: an
/// extension is looked up before the builtin of the same name.
pub(crate) fn set_now(engine: &mut Engine, now_millis: i64) -> Result<(), RegoError> {
    let now_ns = regorus::Value::from(now_millis.saturating_mul(1_000_000));
    engine
        .add_extension(
            "time.now_ns".to_owned(),
            0,
            Box::new(move |_: Vec<regorus::Value>| Ok(now_ns.clone())),
        )
        .map_err(|e| RegoError::Eval(e.to_string()))
}

/// Splits a Data API path into its segments; `""` and `"/"` are the root. A trailing
/// slash is allowed (OPA allows it); an empty segment inside is not.
fn path_segments(path: &str) -> Result<Vec<&str>, RegoError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let segments: Vec<&str> = trimmed.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(RegoError::InvalidPath(path.to_owned()));
    }
    Ok(segments)
}

/// `data["a"]["b"]`: a reference any segment can be written in.
fn data_ref(segments: &[&str]) -> String {
    let mut out = String::from("data");
    for s in segments {
        out.push('[');
        out.push_str(&Value::String((*s).to_owned()).to_string());
        out.push(']');
    }
    out
}

fn eval_error(message: &str) -> RegoError {
    RegoError::from_regorus(message)
}

/// regorus' multi-line message (`--> file:line:col`, the line, a caret, `error: msg`)
/// as one line: `file:line:col: msg`.
fn located_message(message: &str) -> String {
    match parse_location(message) {
        Some((file, line, col, msg)) => format!("{file}:{line}:{col}: {msg}"),
        None => message.trim().to_owned(),
    }
}

/// The location and the last message line of a regorus error.
fn parse_location(message: &str) -> Option<(String, u32, u32, String)> {
    let loc = message
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("--> "))?;
    let mut parts = loc.rsplitn(3, ':');
    let col = parts.next()?.trim().parse().ok()?;
    let line = parts.next()?.trim().parse().ok()?;
    let file = parts.next()?.to_owned();
    let last = message.lines().rev().find(|l| !l.trim().is_empty())?;
    let msg = last
        .trim()
        .strip_prefix("error: ")
        .unwrap_or(last.trim())
        .to_owned();
    Some((file, line, col, msg))
}

fn error(source: &str, line: Option<u32>, column: Option<u32>, message: String) -> PolicyError {
    PolicyError {
        source: source.to_owned(),
        line,
        column,
        message,
    }
}

/// An engine with Mandate's settings: the time limit, OPA's default (non-strict)
/// builtin errors, regorus' length limits.
pub(crate) fn new_engine() -> Engine {
    let mut engine = Engine::new();
    // `rand.intn` is a core builtin in regorus (no feature leaves it out) and draws
    // from the OS random source; an extension, looked up first, refuses it.
    // INVARIANT (no OS randomness in a policy): with `uuid` left out of the features,
    // this is the last builtin that would read it.
    let refused = engine.add_extension(
        "rand.intn".to_owned(),
        2,
        Box::new(|_: Vec<regorus::Value>| {
            Err(RegoError::Eval(
                "rand.intn is not available: Mandate's policies draw no randomness".to_owned(),
            )
            .into())
        }),
    );
    debug_assert!(refused.is_ok(), "a fresh engine has no extensions");
    // `print(…)` in a policy is gathered (and dropped with the query's interpreter)
    // rather than written to the process's standard error, which in the server is its
    // log stream.
    engine.set_gather_prints(true);
    engine.set_strict_builtin_errors(false);
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: QUERY_TIME_LIMIT,
        check_interval: NonZeroU32::MIN.saturating_add(63),
    });
    engine
}

/// Parses and analyses a version's Rego part. Every module is parsed (as Rego v1, as
/// OPA 1.x does, or v0 when marked `rego_v0`), ids must be unique and non-empty, and
/// the limits hold. Every problem found is returned, each located in the module it is
/// in; a parse error says how to fix it (Rego's `&&`, v0 syntax in a v1 module).
pub fn compile_rego(src: &RegoSource) -> Result<RegoPolicies, Vec<PolicyError>> {
    let (engine, packages) = load(src)?;
    if src.modules.is_empty() && src.data.is_empty() {
        return Ok(RegoPolicies::default());
    }
    let mut engine = engine;
    // Prepare (analyse, schedule) once here, so the errors regorus finds then are
    // compile errors and every query's clone starts prepared.
    // The rule asked for does not exist: regorus answers "not a valid rule path" once
    // preparing succeeded.
    if let Err(e) = engine.eval_rule(PREPARE_RULE.to_owned()) {
        let message = e.to_string();
        if message != "not a valid rule path" {
            return Err(vec![located_error(&message, "rego")]);
        }
    }
    let rules = rule_paths(&mut engine);
    let mut conflicts: Vec<PolicyError> = rules
        .iter()
        .filter(|(path, _)| data_conflicts(&src.data, path))
        .map(|(path, (id, line, col))| {
            error(
                id,
                Some(*line),
                Some(*col),
                format!(
                    "rule `data.{}` conflicts with the base document: `data` already has a \
                     value at or around that path; a rule's value may not be given as data \
                     too (rename the rule or move the data)",
                    path.replace('/', ".")
                ),
            )
        })
        .collect();
    if !conflicts.is_empty() {
        conflicts.sort_by(|a, b| (&a.source, a.line).cmp(&(&b.source, b.line)));
        return Err(conflicts);
    }
    Ok(RegoPolicies {
        engine: Some(engine),
        packages,
        rules: rules.into_keys().collect(),
        amplifies: src.modules.iter().any(|m| amplifies(&m.source)),
    })
}

/// Whether `source` names an [`AMPLIFYING`] builtin as a whole word, or has a `sprintf(`
/// whose format is not a string literal. A textual scan, so it errs one way only: a
/// comment or a string that says `range` sends the module's queries off the worker,
/// which costs throughput and never safety. Rego has no first-class functions: a
/// builtin is called (or replaced with `with`) only by writing its name.
pub(crate) fn amplifies(source: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut words = source.char_indices().peekable();
    while let Some((start, c)) = words.next() {
        if !is_ident(c) {
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, c)) = words.peek() {
            if !is_ident(c) {
                break;
            }
            end = i + c.len_utf8();
            words.next();
        }
        let word = &source[start..end];
        if AMPLIFYING.contains(&word) {
            return true;
        }
        if word == "sprintf" {
            let rest = source[end..].trim_start();
            let literal = rest
                .strip_prefix('(')
                .map(str::trim_start)
                .is_some_and(|a| a.starts_with('"') || a.starts_with('`'));
            if !literal {
                return true;
            }
        }
    }
    false
}

/// The engine with every module and the data added, and the package paths; or every
/// problem found.
pub(crate) fn load(src: &RegoSource) -> Result<(Engine, Vec<String>), Vec<PolicyError>> {
    let mut errors = Vec::new();
    if src.modules.len() > MAX_MODULES {
        errors.push(error(
            "rego",
            None,
            None,
            format!(
                "too many modules: {} (at most {MAX_MODULES})",
                src.modules.len()
            ),
        ));
    }
    let mut total: usize = 0;
    let mut seen = std::collections::HashSet::new();
    for m in &src.modules {
        total = total.saturating_add(m.source.len());
        if m.id.is_empty() {
            errors.push(error("rego", None, None, "a module has an empty id".into()));
        } else if !seen.insert(m.id.as_str()) {
            errors.push(error(
                &m.id,
                None,
                None,
                format!("duplicate module id `{}`", m.id),
            ));
        }
        if m.source.len() > MAX_MODULE_BYTES {
            errors.push(error(
                &m.id,
                None,
                None,
                format!(
                    "module is {} bytes, more than the limit of {MAX_MODULE_BYTES}",
                    m.source.len()
                ),
            ));
        }
    }
    let data_len = serde_json::to_string(&src.data).map_or(usize::MAX, |s| s.len());
    total = total.saturating_add(data_len);
    if total > MAX_SOURCE_BYTES {
        errors.push(error(
            "rego",
            None,
            None,
            format!(
                "modules and data are {total} bytes, more than the limit of {MAX_SOURCE_BYTES}"
            ),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut engine = new_engine();
    let mut packages = Vec::new();
    for m in &src.modules {
        if let Some((line, column, message)) = too_deep(&m.source) {
            errors.push(error(&m.id, Some(line), Some(column), message));
            continue;
        }
        engine.set_rego_v0(m.rego_v0);
        match engine.add_policy(m.id.clone(), m.source.clone()) {
            Ok(package) => {
                let path = package.strip_prefix("data.").unwrap_or(&package);
                packages.push(path.replace('.', "/"));
            }
            Err(e) => errors.push(parse_error(m, &e.to_string())),
        }
    }
    if !src.data.is_empty() {
        let data = regorus::Value::deserialize(&Value::Object(src.data.clone()));
        match data
            .map_err(|e| e.to_string())
            .and_then(|d| engine.add_data(d).map_err(|e| e.to_string()))
        {
            Ok(()) => {}
            Err(e) => errors.push(error(DATA_SOURCE, None, None, format!("invalid data: {e}"))),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    packages.sort();
    packages.dedup();
    Ok((engine, packages))
}

/// Whether the base document has a value at the rule's slash `path`, or a non-object
/// on the way to it: regorus would answer the data and never evaluate the rule, where
/// OPA refuses the pair.
fn data_conflicts(data: &Map<String, Value>, path: &str) -> bool {
    let mut at = data;
    let mut segments = path.split('/').peekable();
    while let Some(seg) = segments.next() {
        match at.get(seg) {
            None => return false,
            Some(_) if segments.peek().is_none() => return true,
            Some(Value::Object(next)) => at = next,
            Some(_) => return true,
        }
    }
    false
}

/// The slash paths of the rules a rule lookup can answer: a rule head (not a function)
/// whose package and reference are dotted identifiers, up to any `[`
/// (`by_id[user.id]` is the rule `by_id`).
/// Each with where its first definition is (module id, line, column).
fn rule_paths(engine: &mut Engine) -> std::collections::HashMap<String, (String, u32, u32)> {
    use regorus::unstable::{Rule, RuleHead};
    let plain = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                part.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    };
    let mut out = std::collections::HashMap::new();
    for module in engine.get_modules() {
        let package = module.package.refr.span().text();
        if !plain(package) {
            continue;
        }
        for rule in &module.policy {
            let refr = match rule.as_ref() {
                Rule::Spec {
                    head: RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. },
                    ..
                } => refr,
                Rule::Default { refr, args, .. } if args.is_empty() => refr,
                _ => continue,
            };
            let text = refr.span().text();
            let name = text.split('[').next().unwrap_or_default().trim();
            if plain(name) {
                let span = rule.span();
                out.entry(format!("{package}.{name}").replace('.', "/"))
                    .or_insert_with(|| (span.source.file().to_string(), span.line, span.col));
            }
        }
    }
    out
}

/// A located error from a regorus message naming its own location, or unlocated under
/// `fallback` when it does not.
fn located_error(message: &str, fallback: &str) -> PolicyError {
    match parse_location(message) {
        Some((file, line, col, msg)) => error(&file, Some(line), Some(col), msg),
        None => error(fallback, None, None, message.trim().to_owned()),
    }
}

/// What a parse error on a line with `&&` says: the guidance's example joins conditions
/// with it, and Rego has no such operator.
const AND_HINT: &str = "`&&` is not Rego: the conditions of a rule body are all required, so \
    write each on its own line of the body, or separate them with `;` (`allow if { a; b }`); \
    for \"or\", write the rule twice";

/// What a parse error on a line with `||` says.
const OR_HINT: &str = "`||` is not Rego: write the rule once per alternative (`allow if a` \
    and `allow if b`: the rule holds when any of its bodies does), or use `in` for a set of \
    values";

/// The line and column (1-based, in characters) of the first `op` (`&&`, `||`) outside a
/// comment and a string (a `"…"` on one line; raw strings are rare enough to be code).
fn find_operator(source: &str, op: char) -> Option<(u32, u32)> {
    source.lines().enumerate().find_map(|(i, l)| {
        let mut in_string = false;
        let mut escaped = false;
        let mut prev = None;
        for (col, c) in l.chars().enumerate() {
            if in_string {
                match (escaped, c) {
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => escaped = false,
                }
            } else if c == '#' {
                return None;
            } else if c == '"' {
                in_string = true;
            } else if c == op && prev == Some(op) {
                return Some((u32::try_from(i + 1).ok()?, u32::try_from(col).ok()?));
            }
            prev = (!in_string).then_some(c);
        }
        None
    })
}

/// Where brackets nest deeper than regorus can parse safely, with the message; outside
/// comments and strings (`"…"` with escapes, raw `` `…` ``).
fn too_deep(source: &str) -> Option<(u32, u32, String)> {
    let mut stack: Vec<char> = Vec::new();
    let mut literal = 0usize;
    let mut string: Option<char> = None;
    let mut escaped = false;
    let mut comment = false;
    // Operators of the expression being read at each open bracket level (`ops[0]`: the
    // top level), and their sum: the depth of the chain being read.
    let mut ops: Vec<usize> = vec![0];
    let mut chained = 0usize;
    // The last character outside comments and strings on this line was an operator:
    // the expression goes on on the next line.
    let mut continues = false;
    let (mut line, mut column) = (1u32, 0u32);
    for c in source.chars() {
        if c == '\n' {
            line = line.saturating_add(1);
            column = 0;
            comment = false;
            escaped = false;
            if string == Some('"') {
                string = None;
            }
            // A new line ends the expression in a rule body or at the top level, unless
            // the line ended on an operator; inside `(` and `[` it may go on.
            if string.is_none() && !continues && matches!(stack.last(), None | Some('{')) {
                let at = ops.last_mut();
                if let Some(n) = at {
                    chained = chained.saturating_sub(*n);
                    *n = 0;
                }
            }
            continue;
        }
        column = column.saturating_add(1);
        if comment {
            continue;
        }
        if let Some(q) = string {
            match (escaped, c) {
                (false, '\\') if q == '"' => escaped = true,
                (false, c) if c == q => string = None,
                _ => escaped = false,
            }
            continue;
        }
        if !c.is_whitespace() {
            continues = matches!(c, '+' | '-' | '*' | '/' | '%' | '|' | '&');
        }
        match c {
            '#' => comment = true,
            '"' | '`' => string = Some(c),
            '+' | '-' | '*' | '/' | '%' | '|' | '&' => {
                if let Some(n) = ops.last_mut() {
                    *n += 1;
                }
                chained += 1;
                if chained > MAX_OPERATORS {
                    return Some((
                        line,
                        column,
                        format!(
                            "more than {MAX_OPERATORS} operators chained in one expression: \
                             split it into several rules or local variables"
                        ),
                    ));
                }
            }
            ',' | ';' => {
                if let Some(n) = ops.last_mut() {
                    chained = chained.saturating_sub(*n);
                    *n = 0;
                }
            }
            '(' | '[' | '{' => {
                stack.push(c);
                ops.push(0);
                if c != '(' {
                    literal += 1;
                }
                if literal > MAX_LITERAL_NESTING {
                    return Some((
                        line,
                        column,
                        format!(
                            "`[` and `{{` nested more than {MAX_LITERAL_NESTING} deep: flatten \
                             the value, or put it in `data.json` and read it as `data.…`"
                        ),
                    ));
                }
                if stack.len() > MAX_NESTING {
                    return Some((
                        line,
                        column,
                        format!("brackets nested more than {MAX_NESTING} deep"),
                    ));
                }
            }
            ')' | ']' | '}' => {
                if let Some(open) = stack.pop() {
                    if open != '(' {
                        literal = literal.saturating_sub(1);
                    }
                    if ops.len() > 1
                        && let Some(n) = ops.pop()
                    {
                        chained = chained.saturating_sub(n);
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// The error for a module that does not parse, with a hint that says how to fix it.
fn parse_error(m: &RegoModule, message: &str) -> PolicyError {
    let mut e = located_error(message, &m.id);
    e.source.clone_from(&m.id);
    // The first `&&` or `||` on the failing line or before it (the parser may stop
    // later).
    let hint = [('&', AND_HINT), ('|', OR_HINT)]
        .into_iter()
        .filter_map(|(op, hint)| Some((find_operator(&m.source, op)?, hint)))
        .filter(|((line, _), _)| e.line.is_none_or(|l| *line <= l))
        .min_by_key(|(at, _)| *at);
    if let Some(((line, column), hint)) = hint {
        return error(&m.id, Some(line), Some(column), hint.to_owned());
    }
    // Only when v1 asks for `if` or `contains` (what v0 leaves out): a v0 parse of v1
    // text prints regorus' warnings on standard error.
    if !m.rego_v0 && e.message.contains("keyword is required") {
        let mut v0 = Engine::new();
        v0.set_rego_v0(true);
        if v0.add_policy(m.id.clone(), m.source.clone()).is_ok() {
            e.message = format!(
                "{}: this module is Rego v0 (OPA 0.x syntax); add `if` before rule bodies \
                 and `contains` to partial set rules to make it v1, or load it with \
                 `--rego-v0`",
                e.message
            );
            return e;
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(source: &str) -> Result<RegoPolicies, Vec<PolicyError>> {
        compile_rego(&RegoSource {
            modules: vec![RegoModule {
                id: "chain.rego".into(),
                source: format!("package chain\n\nf(a, b) := a\n\n{source}\n"),
                rego_v0: false,
            }],
            data: Map::new(),
        })
    }

    /// Regression (adversarial pass, issue 22): regorus overflowed the stack, aborting
    /// the server, on a module with a long operator chain (`x := ------…1`, 200 deep; a
    /// `+` chain over lines, 1,000); `PUT /v1/policies/{id}` by an admin took the node
    /// down. Such chains are refused, located; lists of negative numbers still load.
    #[test]
    fn long_operator_chains_are_refused_before_regorus_parses_them() {
        let minus = format!("x := {}1", "-".repeat(300));
        let plus = format!("x := 1{}", " +\n  1".repeat(3000));
        let parens = format!("x := (1{})", "\n+ 1".repeat(3000));
        let calls = format!("x := 1{}", " + f(1, 2)".repeat(400));
        let sets = format!("x := {{1}}{}", " |\n {1}".repeat(3000));
        for source in [minus, plus, parens, calls, sets] {
            let errs = one(&source).expect_err(&source[..20]);
            assert!(
                errs[0].message.contains("operators chained"),
                "{:?}",
                errs[0]
            );
            assert_eq!(errs[0].source, "chain.rego");
            assert!(errs[0].line >= Some(5), "{:?}", errs[0]);
        }
        let negatives = format!("x := [{}]", vec!["-1"; 500].join(",\n"));
        let ok = one(&negatives).unwrap();
        assert_eq!(
            ok.query("chain/x", None, 0).unwrap().unwrap()[499],
            serde_json::json!(-1)
        );
        one("x := 1 + 2 * 3 - 4 % 5\ny := {1, 2} | {3}\nz := [v | some v in [1, 2]; v > 1]")
            .unwrap();
    }

    /// The rule lookup answers what the general query answers, for every rule path and
    /// input of the table cases (`tests/data/rego`), errors included.
    #[test]
    fn rule_lookup_equals_the_general_query() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rego");
        let mut compared = 0;
        for case in std::fs::read_dir(&root).unwrap() {
            let dir = case.unwrap().path();
            let mut modules = Vec::new();
            let mut data = Map::new();
            let mut inputs = vec![None];
            for f in std::fs::read_dir(&dir).unwrap() {
                let p = f.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(&p).unwrap();
                if name.ends_with(".rego") {
                    modules.push(RegoModule {
                        rego_v0: name.ends_with(".v0.rego"),
                        id: name,
                        source: text,
                    });
                } else if name == "data.json" {
                    data = serde_json::from_str(&text).unwrap();
                } else if name == "queries.json" {
                    let qs: Vec<Value> = serde_json::from_str(&text).unwrap();
                    inputs.extend(qs.iter().map(|q| q.get("input").cloned()));
                }
            }
            let policies = compile_rego(&RegoSource { modules, data }).unwrap();
            assert!(!policies.rules.is_empty(), "{}", dir.display());
            for rule in &policies.rules {
                for input in &inputs {
                    let fast = policies.query(rule, input.as_ref(), 7);
                    let mut engine = policies.engine.clone().unwrap();
                    if let Some(i) = input {
                        engine.set_input(regorus::Value::deserialize(i).unwrap());
                    }
                    set_now(&mut engine, 7).unwrap();
                    let segments: Vec<&str> = rule.split('/').collect();
                    let general = general_query(&mut engine, &segments).map(|v| {
                        (v != regorus::Value::Undefined).then(|| serde_json::to_value(&v).unwrap())
                    });
                    assert_eq!(fast, general, "{rule} with {input:?}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 50, "{compared}");
    }
}
