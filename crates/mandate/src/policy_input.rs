//! Reading what `mandate policy add|validate|test|eval` are given: Cedar files
//! (`*.cedar`), schema fragments (`*.cedarschema`), Rego modules (`*.rego`), base data
//! (`data.json`, any `*.json` named as a file), directories, and OPA bundles (`.tar.gz`
//! as `opa build` writes them); and the offline Rego commands over them.
//!
//! Like the other shared modules (`cmd_io`), it names no command module.
//!
//! - A directory: its `*.cedar` files (not below it, as before), and, as OPA loads a
//!   directory, every `*.rego` below it and every `data.json` merged at its directory's
//!   path (`teams/data.json` is `data.teams`). Entries whose name starts with `.` and
//!   symbolic links are skipped.
//! - A bundle: `/.manifest` (`rego_version`, `file_rego_versions`), `*.rego` and
//!   `data.json` by directory. Compiled bundles (`-t wasm`, `-t plan`) are refused;
//!   `.signatures.json` is not verified (the version is recorded as added by the admin
//!   who sent it; a note says so). Paths leaving the bundle, links and entries over
//!   [`MAX_FILE_BYTES`] are refused.
//! - `*_test.rego` modules in directories and bundles are left out of `policy add` (a
//!   version holds policies, not their tests, whose rules would otherwise be part of the
//!   `data` document the Data API answers); named as a file they are kept. `validate`,
//!   `test` and `eval` keep them, as `opa test` and `opa eval` do.

use std::io::Read as _;
use std::path::{Component, Path, PathBuf};

use mandate_policy::{RegoModule, RegoSource};
use serde_json::{Map, Value};

use crate::cmd_io::{Fail, Res, usage};

/// The largest file read (a module, a data file, a bundle entry), and the most bytes a
/// bundle may unpack to in all.
pub(crate) const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The most entries a bundle may have.
const MAX_BUNDLE_ENTRIES: usize = 10_000;

/// How the inputs are read.
#[derive(Clone, Copy)]
pub(crate) struct ReadOptions {
    /// Rego modules are v0 unless a bundle's manifest says otherwise.
    pub(crate) rego_v0: bool,
    /// Keep `*_test.rego` found in directories and bundles.
    pub(crate) tests: bool,
}

/// Everything the arguments name.
#[derive(Default)]
pub(crate) struct Inputs {
    /// Cedar policy files, in order.
    pub(crate) cedar: Vec<PathBuf>,
    /// Schema fragment files named as arguments.
    pub(crate) schemas: Vec<PathBuf>,
    /// Rego modules and merged data.
    pub(crate) rego: RegoSource,
    /// Test modules left out (their ids).
    pub(crate) left_out_tests: Vec<String>,
    /// Notes for the operator (printed on standard error).
    pub(crate) notes: Vec<String>,
}

impl Inputs {
    /// Whether any Rego module or data was given.
    pub(crate) fn has_rego(&self) -> bool {
        !self.rego.is_empty()
    }
}

fn is_bundle(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

fn ext_is(p: &Path, ext: &str) -> bool {
    p.extension().is_some_and(|e| e == ext)
}

fn is_test_module(name: &str) -> bool {
    name.ends_with("_test.rego")
}

/// Reads every argument; an argument naming nothing usable is an error.
pub(crate) fn read_inputs(args: &[PathBuf], opts: ReadOptions) -> Res<Inputs> {
    let mut inputs = Inputs::default();
    for a in args {
        if a.is_dir() {
            read_dir(a, opts, &mut inputs)?;
        } else if is_bundle(a) {
            read_bundle(a, opts, &mut inputs)?;
        } else if ext_is(a, "cedar") {
            inputs.cedar.push(a.clone());
        } else if ext_is(a, "cedarschema") {
            inputs.schemas.push(a.clone());
        } else if ext_is(a, "rego") {
            let source = read_text(a)?;
            push_module(&mut inputs, a.display().to_string(), source, opts.rego_v0)?;
        } else if ext_is(a, "json") {
            let data = read_data(a, &read_text(a)?)?;
            merge(&mut inputs.rego.data, &[], data, &a.display().to_string())?;
        } else if ext_is(a, "yaml") || ext_is(a, "yml") {
            return Err(usage(format!(
                "{}: YAML data is not supported; convert it to JSON (`data.json`)",
                a.display()
            )));
        } else {
            return Err(usage(format!(
                "{}: not a policy input (`.cedar`, `.cedarschema`, `.rego`, `.json`, a \
                 directory or an OPA bundle `.tar.gz`)",
                a.display()
            )));
        }
    }
    Ok(inputs)
}

fn push_module(inputs: &mut Inputs, id: String, source: String, rego_v0: bool) -> Res<()> {
    if inputs.rego.modules.iter().any(|m| m.id == id) {
        return Err(usage(format!("`{id}` is given twice")));
    }
    inputs.rego.modules.push(RegoModule {
        id,
        source,
        rego_v0,
    });
    Ok(())
}

/// A file's text, refusing one over [`MAX_FILE_BYTES`].
fn read_text(path: &Path) -> Res<String> {
    let file =
        std::fs::File::open(path).map_err(|e| usage(format!("reading {}: {e}", path.display())))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| usage(format!("reading {}: {e}", path.display())))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(usage(format!(
            "{}: larger than {MAX_FILE_BYTES} bytes",
            path.display()
        )));
    }
    Ok(text)
}

/// A data file's object.
fn read_data(path: &Path, text: &str) -> Res<Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(usage(format!(
            "{}: data must be a JSON object",
            path.display()
        ))),
        Err(e) => Err(usage(format!("{}: not JSON: {e}", path.display()))),
    }
}

/// Merges `data` into `into` at `path` (object keys), as OPA merges data files: objects
/// merge key by key; any other value given twice differently is a conflict.
fn merge(
    into: &mut Map<String, Value>,
    path: &[String],
    data: Map<String, Value>,
    from: &str,
) -> Res<()> {
    let mut at = into;
    for key in path {
        let slot = at
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        at = match slot {
            Value::Object(m) => m,
            _ => {
                return Err(usage(format!(
                    "{from}: data at `{}` conflicts with a value already there",
                    path.join(".")
                )));
            }
        };
    }
    merge_objects(at, data, from, &path.join("."))
}

fn merge_objects(
    into: &mut Map<String, Value>,
    data: Map<String, Value>,
    from: &str,
    at: &str,
) -> Res<()> {
    for (k, v) in data {
        let here = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        match (into.get_mut(&k), v) {
            (None, v) => {
                into.insert(k, v);
            }
            (Some(Value::Object(old)), Value::Object(new)) => merge_objects(old, new, from, &here)?,
            (Some(old), v) if *old == v => {}
            (Some(_), _) => {
                return Err(usage(format!(
                    "{from}: data at `{here}` conflicts with a value already there"
                )));
            }
        }
    }
    Ok(())
}

/// A directory: `*.cedar` in it; `*.rego` and `data.json` below it.
fn read_dir(dir: &Path, opts: ReadOptions, inputs: &mut Inputs) -> Res<()> {
    let before = (
        inputs.cedar.len(),
        inputs.rego.modules.len(),
        inputs.rego.data.clone(),
    );
    let mut cedar: Vec<PathBuf> = list(dir)?
        .into_iter()
        .filter(|(p, is_dir)| !is_dir && ext_is(p, "cedar"))
        .map(|(p, _)| p)
        .collect();
    inputs.cedar.append(&mut cedar);
    let mut found_data = false;
    walk(dir, dir, opts, inputs, &mut found_data, 0)?;
    if inputs.cedar.len() == before.0 && inputs.rego.modules.len() == before.1 && !found_data {
        return Err(usage(format!(
            "no `*.cedar`, `*.rego` or `data.json` file in {}",
            dir.display()
        )));
    }
    Ok(())
}

/// The entries of a directory, sorted, without dot-entries and symbolic links.
fn list(dir: &Path) -> Res<Vec<(PathBuf, bool)>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| usage(format!("reading directory {}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|e| usage(format!("reading directory {}: {e}", dir.display())))?;
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_symlink() {
            continue;
        }
        out.push((e.path(), kind.is_dir()));
    }
    out.sort();
    Ok(out)
}

fn walk(
    root: &Path,
    dir: &Path,
    opts: ReadOptions,
    inputs: &mut Inputs,
    found_data: &mut bool,
    depth: usize,
) -> Res<()> {
    if depth > 64 {
        return Err(usage(format!(
            "{}: directories nested too deep",
            dir.display()
        )));
    }
    for (path, is_dir) in list(dir)? {
        if is_dir {
            walk(root, &path, opts, inputs, found_data, depth + 1)?;
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if ext_is(&path, "rego") {
            if is_test_module(&name) && !opts.tests {
                inputs.left_out_tests.push(path.display().to_string());
                continue;
            }
            let source = read_text(&path)?;
            push_module(inputs, path.display().to_string(), source, opts.rego_v0)?;
        } else if name == "data.json" {
            let rel = dir.strip_prefix(root).unwrap_or(Path::new(""));
            let at: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let data = read_data(&path, &read_text(&path)?)?;
            merge(
                &mut inputs.rego.data,
                &at,
                data,
                &path.display().to_string(),
            )?;
            *found_data = true;
        }
    }
    Ok(())
}

/// An OPA bundle's `.manifest`, the parts that matter here.
#[derive(serde::Deserialize, Default)]
struct Manifest {
    rego_version: Option<u8>,
    #[serde(default)]
    file_rego_versions: std::collections::BTreeMap<String, u8>,
    #[serde(default)]
    wasm: Vec<Value>,
}

/// A bundle path made relative (no leading `/` or `./`); `None` when it leaves the
/// bundle (`..`, a drive or root inside).
fn bundle_path(raw: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?.to_owned()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

fn read_bundle(file: &Path, opts: ReadOptions, inputs: &mut Inputs) -> Res<()> {
    let shown = file.display().to_string();
    let f = std::fs::File::open(file).map_err(|e| usage(format!("reading {shown}: {e}")))?;
    // INVARIANT (bounded unpacking): at most MAX_FILE_BYTES come out of the
    // decompressor in all, whatever the archive claims.
    let gz = flate2::read::GzDecoder::new(f).take(MAX_FILE_BYTES + 1);
    let mut archive = tar::Archive::new(gz);
    let bad = |what: String| usage(format!("{shown}: {what}"));
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a gzipped tar archive: {e}")))?;
    let mut manifest: Option<Manifest> = None;
    let mut modules: Vec<(String, String)> = Vec::new();
    let mut data_files: Vec<(String, String)> = Vec::new();
    let mut signed = false;
    let mut total: u64 = 0;
    for (n, entry) in entries.enumerate() {
        if n >= MAX_BUNDLE_ENTRIES {
            return Err(bad(format!("more than {MAX_BUNDLE_ENTRIES} entries")));
        }
        let mut entry = entry.map_err(|e| bad(format!("not a gzipped tar archive: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| bad(format!("an entry's path is unreadable: {e}")))?
            .into_owned();
        let Some(path) = bundle_path(&raw) else {
            return Err(bad(format!(
                "entry `{}` leaves the bundle (`..`); refused",
                raw.display()
            )));
        };
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(bad(format!(
                "entry `{path}` is not a regular file (a link or device); refused"
            )));
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        total = total.saturating_add(size);
        if size > MAX_FILE_BYTES || total > MAX_FILE_BYTES {
            return Err(bad(format!(
                "entry `{path}` makes the bundle larger than {MAX_FILE_BYTES} bytes unpacked"
            )));
        }
        let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
        let wanted = name == ".manifest"
            || name == "data.json"
            || name.ends_with(".rego")
            || name == ".signatures.json";
        if name.ends_with(".wasm") || name == "plan.json" {
            return Err(bad(
                "a compiled bundle (`opa build -t wasm` or `-t plan`); Mandate evaluates \
                 Rego source: give the bundle `opa build` writes without `-t`"
                    .to_owned(),
            ));
        }
        if name == "data.yaml" || name == "data.yml" {
            return Err(bad(format!(
                "`{path}`: YAML data is not supported; convert it to `data.json`"
            )));
        }
        if !wanted {
            continue;
        }
        let mut text = String::new();
        (&mut entry)
            .take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| bad(format!("reading `{path}`: {e}")))?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(bad(format!(
                "entry `{path}` is larger than {MAX_FILE_BYTES} bytes"
            )));
        }
        if name == ".signatures.json" {
            signed = true;
        } else if path == ".manifest" {
            manifest = Some(
                serde_json::from_str(&text)
                    .map_err(|e| bad(format!("`.manifest` is not a bundle manifest: {e}")))?,
            );
        } else if name == "data.json" {
            data_files.push((path, text));
        } else if name.ends_with(".rego") {
            modules.push((path, text));
        }
    }
    let manifest = manifest.unwrap_or_default();
    if !manifest.wasm.is_empty() {
        return Err(bad(
            "a compiled bundle (its manifest lists wasm modules); Mandate evaluates Rego \
             source: give the bundle `opa build` writes without `-t wasm`"
                .to_owned(),
        ));
    }
    if signed {
        inputs.notes.push(format!(
            "{shown}: `.signatures.json` is not verified; the version is recorded in the \
             audit log as added by the admin who sends it"
        ));
    }
    let default_v0 = match manifest.rego_version {
        Some(0) => true,
        Some(1) => false,
        Some(v) => return Err(bad(format!("`.manifest`: unknown rego_version {v}"))),
        None => opts.rego_v0,
    };
    for (path, text) in modules {
        if is_test_module(&path) && !opts.tests {
            inputs.left_out_tests.push(format!("{shown}:{path}"));
            continue;
        }
        let version = manifest
            .file_rego_versions
            .get(&path)
            .or_else(|| manifest.file_rego_versions.get(&format!("/{path}")))
            .copied();
        let v0 = match version {
            Some(0) => true,
            Some(1) => false,
            Some(v) => {
                return Err(bad(format!(
                    "`.manifest`: unknown rego version {v} for `{path}`"
                )));
            }
            None => default_v0,
        };
        push_module(inputs, path, text, v0)?;
    }
    for (path, text) in data_files {
        let at: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let at = at.split_last().map_or(&[][..], |(_, dirs)| dirs);
        let data = read_data(Path::new(&format!("{shown}:{path}")), &text)?;
        merge(&mut inputs.rego.data, at, data, &format!("{shown}:{path}"))?;
    }
    Ok(())
}

/// Compiles the Rego part offline; `Err` (exit 1) lists every located error.
pub(crate) fn compile_rego_local(src: &RegoSource) -> Res<mandate_policy::RegoPolicies> {
    mandate_policy::compile_rego(src).map_err(|errs| located(&errs))
}

/// Every error on its own line, for exit code 1.
pub(crate) fn located(errs: &[mandate_policy::PolicyError]) -> Fail {
    let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
    Fail(
        1,
        format!("{} problem(s):\n  {}", errs.len(), lines.join("\n  ")),
    )
}

/// The wall clock's milliseconds, for `time.now_ns()` in offline evaluation.
pub(crate) fn now_millis() -> i64 {
    use mandate_core::clock::Clock as _;
    mandate_core::clock::SystemClock.now_millis()
}

/// `mandate policy eval`: the Data API's body on standard output, one line: `{"result":
/// …}`, `{}` when undefined (exit 0); OPA's error shape `{"code", "message"}` on an
/// evaluation error (exit 2); located compile errors on standard error (exit 1).
pub(crate) fn eval(src: &RegoSource, path: &str, input: Option<&Value>) -> Res<()> {
    let policies = compile_rego_local(src)?;
    match policies.query(path, input, now_millis()) {
        Ok(Some(v)) => println!("{}", serde_json::json!({ "result": v })),
        Ok(None) => println!("{{}}"),
        Err(e) => {
            println!(
                "{}",
                serde_json::json!({"code": e.code(), "message": e.to_string()})
            );
            return Err(Fail(2, format!("evaluation failed: {e}")));
        }
    }
    Ok(())
}

/// The input document of `policy eval --input FILE|-` (the input itself, as `opa eval
/// --input` reads it, not the Data API's `{"input": …}` body).
pub(crate) fn read_input(arg: &Path) -> Res<Value> {
    let text = if arg == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut s)
            .map_err(|e| usage(format!("reading the input from standard input: {e}")))?;
        s
    } else {
        read_text(arg)?
    };
    serde_json::from_str(&text).map_err(|e| usage(format!("the input is not JSON: {e}")))
}

/// `mandate policy test` over Rego: runs every `test_*` rule, prints one line per test
/// and a summary like `opa test`; exit 1 when one fails or errors, 2 when there is none.
pub(crate) fn run_tests(src: &RegoSource, filter: Option<&str>) -> Res<()> {
    use mandate_policy::RegoTestOutcome as O;
    let report =
        mandate_policy::run_rego_tests(src, filter, now_millis()).map_err(|e| located(&e))?;
    if report.results.is_empty() {
        return Err(usage(
            "no tests found (rules named `test_*` in `*.rego`; a Cedar test file needs --policies)",
        ));
    }
    for r in &report.results {
        let outcome = match &r.outcome {
            O::Pass => "PASS".to_owned(),
            O::Fail => "FAIL".to_owned(),
            O::Skip => "SKIPPED".to_owned(),
            O::Error(m) => format!("ERROR\n    {m}"),
        };
        println!("{}:{}: {}: {outcome}", r.module, r.line, r.name);
    }
    let n = report.results.len();
    println!("{}", "-".repeat(80));
    for (label, kind) in [
        ("PASS", O::Pass),
        ("FAIL", O::Fail),
        ("SKIPPED", O::Skip),
        ("ERROR", O::Error(String::new())),
    ] {
        let c = report.count(&kind);
        if c > 0 {
            println!("{label}: {c}/{n}");
        }
    }
    if report.all_passed() {
        Ok(())
    } else {
        let bad = report.count(&O::Fail) + report.count(&O::Error(String::new()));
        Err(Fail(1, format!("{bad} of {n} tests failed")))
    }
}
