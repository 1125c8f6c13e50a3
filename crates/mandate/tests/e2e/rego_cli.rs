//! The CLI's offline Rego commands and its reading of Rego inputs (issue 22):
//! `policy eval` prints the Data API's body, `policy validate` locates errors, `policy
//! test` runs `*_test.rego` like `opa test`, OPA bundles (`.tar.gz`, built here as
//! `opa build` lays them out) are read with their manifest and hostile ones refused,
//! and `policy add` sends the modules and data in one request.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::harness::BIN;

fn mandate(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, rel: &str, text: &str) -> String {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}

const AUTHZ: &str = "package http.authz\n\ndefault allow := false\n\nallow if {\n    \
                     input.request_source == \"internal_network\"\n    \
                     input.team in data.teams.allowed\n}\n";

const AUTHZ_TEST: &str = "package http.authz_test\n\nimport data.http.authz\n\n\
     test_internal if authz.allow with input as {\"request_source\": \"internal_network\", \"team\": \"a\"}\n\
     test_outside_denied if not authz.allow with input as {\"request_source\": \"internet\", \"team\": \"a\"}\n";

/// A policy directory as OPA loads it: modules below it, `data.json` by directory.
fn policy_dir(dir: &Path) -> String {
    write(dir, "p/authz.rego", AUTHZ);
    write(dir, "p/teams/data.json", r#"{"allowed": ["a"]}"#);
    write(dir, "p/authz_test.rego", AUTHZ_TEST);
    dir.join("p").to_str().unwrap().to_owned()
}

#[test]
fn eval_prints_the_data_api_body() {
    let dir = tempfile::tempdir().unwrap();
    let p = policy_dir(dir.path());
    let input = write(
        dir.path(),
        "input.json",
        r#"{"request_source": "internal_network", "team": "a"}"#,
    );
    let o = mandate(
        &[
            "policy",
            "eval",
            &p,
            "--data-path",
            "http/authz",
            "--input",
            &input,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(out(&o), "{\"result\":{\"allow\":true}}\n");
    // The input from standard input; a rule's own path.
    let o = mandate(
        &[
            "policy",
            "eval",
            &p,
            "--data-path",
            "http/authz/allow",
            "--input",
            "-",
        ],
        Some(r#"{"request_source": "internet", "team": "a"}"#),
    );
    assert_eq!(out(&o), "{\"result\":false}\n");
    // Undefined: no `result`.
    let o = mandate(&["policy", "eval", &p, "--data-path", "http/nope"], None);
    assert_eq!((o.status.code(), out(&o)), (Some(0), "{}\n".to_owned()));
    // The root: base data and rule values together, test modules included.
    let o = mandate(&["policy", "eval", &p], None);
    let body: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(body["result"]["teams"], json!({"allowed": ["a"]}));
    assert_eq!(body["result"]["http"]["authz"], json!({"allow": false}));
    assert_eq!(
        body["result"]["http"]["authz_test"]["test_outside_denied"],
        json!(true)
    );
    // `print` in a policy writes nothing (in the server, standard error is the log).
    let pr = write(
        dir.path(),
        "pr.rego",
        "package pr\n\nx if {\n    print(\"leak\")\n}\n",
    );
    let o = mandate(&["policy", "eval", &pr, "--data-path", "pr/x"], None);
    assert_eq!(out(&o), "{\"result\":true}\n");
    assert!(!err(&o).contains("leak"), "{}", err(&o));
    // An evaluation error: OPA's error body, exit 2.
    let c = write(
        dir.path(),
        "c.rego",
        "package c\n\nx := y if {\n    some y in input.v\n}\n",
    );
    let o = mandate(
        &["policy", "eval", &c, "--data-path", "c/x", "--input", "-"],
        Some(r#"{"v": [1, 2]}"#),
    );
    assert_eq!(o.status.code(), Some(2));
    let body: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(body["code"], "internal_error");
    assert!(
        body["message"].as_str().unwrap().contains("c.rego:3:1:"),
        "{body}"
    );
    // Does not compile: exit 1, located, nothing on standard output.
    let bad = write(
        dir.path(),
        "bad.rego",
        "package bad\n\nallow if {\n    input.a && input.b\n}\n",
    );
    let o = mandate(&["policy", "eval", &bad], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(out(&o), "");
    assert!(
        err(&o).contains("bad.rego:4:13: `&&` is not Rego"),
        "{}",
        err(&o)
    );
}

#[test]
fn validate_locates_rego_errors_and_hints_v0() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(
        dir.path(),
        "old.rego",
        "package old\n\nallow { input.x == 1 }\n",
    );
    let o = mandate(&["policy", "validate", &old], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("old.rego:3:7:"), "{}", err(&o));
    assert!(err(&o).contains("--rego-v0"), "{}", err(&o));
    let o = mandate(&["policy", "validate", "--rego-v0", &old], None);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        out(&o).contains("valid: 1 Rego modules (packages: old)"),
        "{}",
        out(&o)
    );
    // Cedar and Rego in one call: both checked, both errors reported.
    let cedar = write(
        dir.path(),
        "bad.cedar",
        "permit (principal, action, resource) when { 1 + };\n",
    );
    let o = mandate(&["policy", "validate", &cedar, &old], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("policies:1:"), "{}", err(&o));
    assert!(err(&o).contains("old.rego:3:7:"), "{}", err(&o));
}

#[test]
fn rego_tests_run_like_opa_test() {
    let dir = tempfile::tempdir().unwrap();
    let p = policy_dir(dir.path());
    let o = mandate(&["policy", "test", &p], None);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains("data.http.authz_test.test_internal: PASS"),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("PASS: 2/2"), "{}", out(&o));
    // A failing test: exit 1, named.
    write(
        dir.path(),
        "p/more_test.rego",
        "package http.more_test\n\ntest_wrong if data.http.authz.allow\n\ntodo_test_later if false\n",
    );
    let o = mandate(&["policy", "test", &p], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out(&o).contains("more_test.rego:3: data.http.more_test.test_wrong: FAIL"),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("SKIPPED: 1/4"), "{}", out(&o));
    assert!(err(&o).contains("1 of 4 tests failed"), "{}", err(&o));
    // --run picks tests by name.
    let o = mandate(&["policy", "test", &p, "--run", "test_internal"], None);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("PASS: 1/1"), "{}", out(&o));
    // No tests at all is a usage error.
    let lone = write(dir.path(), "lone/a.rego", "package a\n\nx := 1\n");
    let o = mandate(&["policy", "test", &lone], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("no tests found"), "{}", err(&o));
}

/// A `.tar.gz` of `(path, bytes)` entries; a path is written as given (even `..`).
fn bundle(dir: &Path, name: &str, entries: &[(&str, &[u8])]) -> String {
    let path = dir.join(name);
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    for (p, bytes) in entries {
        let mut h = tar::Header::new_gnu();
        let raw = &mut h.as_gnu_mut().unwrap().name;
        raw[..p.len()].copy_from_slice(p.as_bytes());
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.append(&h, *bytes).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn bundles_are_read_like_opa() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = br#"{"revision": "r1", "roots": [""], "rego_version": 0, "file_rego_versions": {"/http/authz.rego": 1, "/http/authz_test.rego": 1}}"#;
    let b = bundle(
        dir.path(),
        "bundle.tar.gz",
        &[
            ("/.manifest", manifest),
            ("/http/authz.rego", AUTHZ.as_bytes()),
            (
                "/legacy/old.rego",
                b"package legacy\n\nallow { input.x == 1 }\n",
            ),
            ("/teams/data.json", br#"{"allowed": ["a"]}"#),
            ("/data.json", br#"{"region": "eu"}"#),
            ("/http/authz_test.rego", AUTHZ_TEST.as_bytes()),
            ("/.signatures.json", br#"{"signatures": []}"#),
        ],
    );
    let o = mandate(&["policy", "eval", &b], None);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let body: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(body["result"]["teams"], json!({"allowed": ["a"]}));
    assert_eq!(body["result"]["region"], json!("eu"));
    assert_eq!(body["result"]["http"]["authz"], json!({"allow": false}));
    let o = mandate(
        &[
            "policy",
            "eval",
            &b,
            "--data-path",
            "legacy/allow",
            "--input",
            "-",
        ],
        Some(r#"{"x": 1}"#),
    );
    assert_eq!(out(&o), "{\"result\":true}\n", "{}", err(&o));
    let o = mandate(&["policy", "test", &b], None);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert!(
        err(&o).contains("`.signatures.json` is not verified"),
        "{}",
        err(&o)
    );
    assert!(out(&o).contains("http/authz_test.rego:"), "{}", out(&o));
}

#[test]
fn hostile_or_compiled_bundles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |name: &str, entries: &[(&str, &[u8])], want: &str| {
        let b = bundle(dir.path(), name, entries);
        let o = mandate(&["policy", "validate", &b], None);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", err(&o));
        assert!(err(&o).contains(want), "{name}: {}", err(&o));
    };
    refused(
        "escape.tar.gz",
        &[("../../evil.rego", b"package evil\n")],
        "leaves the bundle",
    );
    refused(
        "wasm.tar.gz",
        &[(
            "/.manifest",
            br#"{"wasm": [{"entrypoint": "a/b", "module": "/policy.wasm"}]}"#,
        )],
        "a compiled bundle",
    );
    refused("plan.tar.gz", &[("/plan.json", b"{}")], "a compiled bundle");
    let huge = vec![b' '; 17 * 1024 * 1024];
    refused("huge.tar.gz", &[("/big/data.json", &huge)], "larger than");
    refused(
        "yaml.tar.gz",
        &[("/data.yaml", b"a: 1\n")],
        "YAML data is not supported",
    );
    // A link entry.
    let path = dir.path().join("link.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    tar.append_link(&mut h, "x.rego", "/etc/passwd").unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let o = mandate(&["policy", "validate", path.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("not a regular file"), "{}", err(&o));
    // Not gzip at all.
    let junk = write(dir.path(), "junk.tar.gz", "not a bundle");
    let o = mandate(&["policy", "validate", &junk], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("not a gzipped tar archive"), "{}", err(&o));
}

/// `policy add` sends Cedar, Rego and data in one request: what it sends, read by a
/// stand-in for the server on a loopback port.
#[test]
fn policy_add_sends_rego_modules_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let p = policy_dir(dir.path());
    let old = write(dir.path(), "old.rego", "package old\n\nallow { true }\n");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    // It answers the CLI's `GET /v1/policies` (no active version: nothing to carry
    // over) and keeps the body of the `POST` that adds the version.
    let server = std::thread::spawn(move || {
        loop {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let (status, answer) = if request_line.starts_with("GET /v1/policies ") {
                ("200 OK", r#"{"active_version": null, "items": []}"#)
            } else {
                (
                    "201 Created",
                    r#"{"version": 2, "active": false, "policy_ids": []}"#,
                )
            };
            write!(
                &stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            )
            .unwrap();
            if request_line.starts_with("POST /v1/policies ") {
                return serde_json::from_slice::<Value>(&body).unwrap();
            }
        }
    });
    let o = mandate(
        &[
            "policy",
            "add",
            "--addr",
            &addr,
            "--token",
            "adm_x",
            &p,
            "--rego-v0",
            &old,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(err(&o).contains("left out 1 test module"), "{}", err(&o));
    assert!(
        out(&o).contains("policy version 2 added (2 Rego modules)"),
        "{}",
        out(&o)
    );
    let sent = server.join().unwrap();
    let modules = sent["rego_modules"].as_array().unwrap();
    let ids: Vec<&str> = modules.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [format!("{p}/authz.rego"), old.clone()]);
    // --rego-v0 applies to every module of the command.
    assert!(
        modules.iter().all(|m| m["rego_v0"] == json!(true)),
        "{sent}"
    );
    assert_eq!(sent["data"], json!({"teams": {"allowed": ["a"]}}));
    assert_eq!(sent["policies"], json!(""));
}
