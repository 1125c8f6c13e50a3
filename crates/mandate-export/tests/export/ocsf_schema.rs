//! Every OCSF record validated against the published OCSF schema, offline:
//! `tests/data/ocsf_validate.py` checks each with the schema definitions the pinned
//! `pydantic-ocsf` package bundles (its pydantic models, and a strict walk of the same
//! definitions for attributes the models would let through). The package comes from PyPI
//! once, into `<workspace>/target/ocsf-venv`; nothing is fetched at run time.
//!
//! The records: every case of `ocsf_cases.json`, every kind Mandate writes (bare, and
//! with an agent and its owner), and every kind with malformed details and odd strings.
//! The validator must also refuse records broken on purpose, naming the attribute.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mandate_export::Context;
use mandate_export::ocsf::{VERSION, record};
use serde_json::{Value, json};

use super::{cases, event};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// `<workspace>/target`.
fn target_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..");
    root.canonicalize().unwrap_or(root).join("target")
}

/// FNV-1a, 64 bits: a stable fingerprint with no extra crate.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A python command with nothing inherited that could redirect it.
fn python_cmd(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null())
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env("PYTHONUNBUFFERED", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1");
    cmd
}

fn show(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` to the end, failing the test (with its output) unless it exits 0.
fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{what}: cannot run {cmd:?}: {e} (this test needs python3 with its venv module)")
    });
    assert!(out.status.success(), "{what} failed:\n{}", show(&out));
    out
}

/// The python of `<workspace>/target/ocsf-venv`, built with the pins of
/// `tests/data/ocsf_requirements.txt` and rebuilt when they or the base python change.
/// An exclusive lock beside it serialises test processes that race to build it; the
/// stamp is written last, so a build that died half-way is redone.
fn venv_python() -> (PathBuf, File) {
    let pins = data("ocsf_requirements.txt");
    let base = run(
        python_cmd(Path::new("python3")).arg("--version"),
        "python3 --version",
    );
    let mut fingerprint = fs::read(&pins).unwrap();
    fingerprint.extend_from_slice(&base.stdout);
    fingerprint.extend_from_slice(&base.stderr);
    let stamp = format!("{:016x}\n", fnv1a(&fingerprint));

    let target = target_dir();
    fs::create_dir_all(&target).unwrap();
    let venv = target.join("ocsf-venv");
    let python = venv.join("bin").join("python");
    let lock = File::create(target.join("ocsf-venv.lock")).unwrap();
    lock.lock().unwrap();
    let stamp_file = venv.join(".mandate-stamp");
    if fs::read_to_string(&stamp_file).ok().as_deref() != Some(stamp.as_str()) || !python.exists() {
        if venv.exists() {
            fs::remove_dir_all(&venv).unwrap();
        }
        run(
            python_cmd(Path::new("python3"))
                .args(["-m", "venv"])
                .arg(&venv),
            "python3 -m venv",
        );
        run(
            python_cmd(&python)
                .args(["-m", "pip", "install", "--quiet", "--no-cache-dir", "-r"])
                .arg(&pins),
            "pip install -r tests/data/ocsf_requirements.txt",
        );
        fs::write(&stamp_file, &stamp).unwrap();
    }
    (python, lock)
}

/// Writes `records` (name, record) as JSON Lines and runs the validator on them.
fn validate(python: &Path, records: &[(String, Value)], file: &str) -> Output {
    let path = std::env::temp_dir().join(format!("mandate-{}-{file}", std::process::id()));
    let mut f = File::create(&path).unwrap();
    for (name, r) in records {
        writeln!(f, "{}", json!({"name": name, "record": r})).unwrap();
    }
    drop(f);
    let out = python_cmd(python)
        .arg(data("ocsf_validate.py"))
        .arg(&path)
        .arg(VERSION)
        .output()
        .unwrap();
    let _ = fs::remove_file(&path);
    out
}

/// The records every mapping path makes.
fn all_records() -> Vec<(String, Value)> {
    let cases = cases::load();
    let mut out = Vec::new();
    for c in &cases.cases {
        let r = record(
            &c.event(),
            &Context {
                owner: c.owner.as_deref(),
            },
        );
        out.push((c.name.clone(), r));
    }
    let odd_details = [
        json!({"scope": "not a list", "version": {"v": 1}, "kid": 5, "anomaly": null,
               "exp": "soon", "upstream_status": "two hundred", "outcome": 7,
               "client_id": ["x"], "severity": "catastrophic", "policy_version": [1]}),
        json!({"scope": [{"actions": [1, "ok"], "resources": "*"}, 3], "module": "",
               "name": "", "admin_token": "", "sub": "", "error": "", "reason": ""}),
        json!([1, 2]),
        json!("text"),
    ];
    for kind in &cases.kinds {
        let mut e = event(kind);
        out.push((format!("{kind} (bare)"), record(&e, &Context::default())));
        e.agent = Some("agt_01JA0000000000000000000001".into());
        e.user = Some("alice".into());
        e.actor = Some("adm_01JA0000000000000000000009".into());
        e.decision = Some("deny".into());
        e.policy_ids = vec!["p1".into()];
        e.resource = Some(json!({"type": "file", "id": "a"}));
        let owner = Context {
            owner: Some("owner@example.com"),
        };
        out.push((format!("{kind} (agent)"), record(&e, &owner)));
        for (i, d) in odd_details.iter().enumerate() {
            let mut odd = e.clone();
            odd.details = Some(d.clone());
            odd.agent = Some(String::new());
            odd.actor = Some(["user:", "", "agt_", "détecteur\n"][i % 4].into());
            odd.user = Some("\u{0}\"".into());
            odd.decision = Some(["maybe", ""][i % 2].into());
            odd.resource =
                Some([json!(null), json!([1]), json!("x"), json!({"id": {"a": 1}})][i].clone());
            odd.context = Some(json!({"ip": (["not", "an", "ip"][i % 3]), "mandate": 5}));
            out.push((format!("{kind} (odd {i})"), record(&odd, &owner)));
        }
    }
    out
}

#[test]
fn every_record_is_valid_ocsf() {
    let (python, _lock) = venv_python();
    let records = all_records();
    let out = validate(&python, &records, "ocsf-valid.jsonl");
    assert!(
        out.status.success(),
        "records that are not valid OCSF {VERSION}:\n{}",
        show(&out)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("ok {} records", records.len())),
        "{said}"
    );
}

/// The validator is not a rubber stamp: each record broken on purpose is refused, and
/// the refusal names what is wrong.
#[test]
fn the_validator_refuses_broken_records() {
    let (python, _lock) = venv_python();
    let good = |kind: &str| {
        let mut e = event(kind);
        e.agent = Some("agt_01JA0000000000000000000001".into());
        e.decision = Some("allow".into());
        e.policy_ids = vec!["p1".into()];
        record(&e, &Context::default())
    };
    type Break = fn(&mut Value);
    let breaks: &[(&str, &str, Break)] = &[
        ("token.issued", "/user: required", |r| {
            r.as_object_mut().unwrap().remove("user");
        }),
        ("decision", "/actor/user/nickname: not an attribute", |r| {
            r["actor"]["user"]["nickname"] = json!("x");
        }),
        ("decision", "/actor/authorizations: must be an array", |r| {
            r["actor"]["authorizations"] = json!({"decision": "allow"});
        }),
        ("agent.suspended", "/activity_id: 42 is not one of", |r| {
            r["activity_id"] = json!(42);
            r["type_uid"] = json!(300_142);
        }),
        ("anomaly.detected", "/finding_info/uid: required", |r| {
            r["finding_info"].as_object_mut().unwrap().remove("uid");
        }),
        ("mandate.approved", "/metadata/version", |r| {
            r["metadata"]["version"] = json!("1.1.0");
        }),
        ("policy.added", "/time: must be timestamp_t", |r| {
            r["time"] = json!("2026-12-07T10:00:00Z");
        }),
        ("token.refused", "/class_uid: 3099 is no class", |r| {
            r["class_uid"] = json!(3099);
        }),
    ];
    for (kind, said, break_it) in breaks {
        let mut r = good(kind);
        break_it(&mut r);
        let out = validate(
            &python,
            &[(format!("broken {kind}"), r)],
            "ocsf-broken.jsonl",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success() && text.contains(said),
            "a {kind} record broken at {said:?} was not refused for it:\n{}",
            show(&out)
        );
    }
}
