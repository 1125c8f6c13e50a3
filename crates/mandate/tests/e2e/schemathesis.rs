//! schemathesis (issue 25, "proof under fire") against a real `mandate serve`: every
//! operation of `docs/openapi.json`, every check but the exclusions that
//! `tests/interop/schemathesis.toml` lists with their reasons (docs/running.md), a fixed
//! budget of examples generated deterministically, as the bootstrap admin and then as an
//! agent with its own access token. Any finding
//! (a 5xx, an answer its schema does not allow, invalid data accepted, …) fails the
//! test, and so does a run that tested fewer operations than the document has.

use std::path::Path;
use std::time::Duration;

use crate::harness::{Server, data_dir};
use crate::interop_env::{interop_dir, python_cmd, run_until, venv_python};

/// Examples per operation and phase: the whole run stays near a minute on 2 cores.
const MAX_EXAMPLES: &str = "10";

/// The operations `docs/openapi.json` declares.
fn operations(spec: &Path) -> usize {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(spec).unwrap()).unwrap();
    doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| {
            ["get", "put", "post", "delete", "patch"]
                .iter()
                .filter(|m| item.get(**m).is_some())
                .count()
        })
        .sum()
}

/// Runs schemathesis against `server` with `bearer`; fails the test on any finding or
/// when fewer than all operations were tested.
fn run(server: &Server, bearer: &str, who: &str) {
    let python = venv_python("interop-schemathesis-venv", "requirements-schemathesis.txt")
        .unwrap_or_else(|e| panic!("{e}"));
    let schemathesis = python.with_file_name("schemathesis");
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let expected = operations(&spec);
    let work = tempfile::tempdir().unwrap();

    let mut cmd = python_cmd(&schemathesis);
    cmd.current_dir(work.path())
        .env("PYTHONPATH", interop_dir())
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        // Every check: schemathesis.toml turns all on and names each exclusion with
        // its reason (`--checks all` here would override the per-operation ones).
        .arg("--config-file")
        .arg(interop_dir().join("schemathesis.toml"))
        .arg("run")
        .arg(&spec)
        .args(["--url", &server.addr])
        .args(["--header", &format!("Authorization: Bearer {bearer}")])
        .args(["--max-examples", MAX_EXAMPLES])
        // Reproducible: the same cases every run (and no example database).
        .arg("--generation-deterministic")
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        .arg("--no-color");
    let (status, out, err) = run_until(&mut cmd, "schemathesis", Duration::from_secs(600));
    let report = format!(
        "as {who}:\n{out}\n--- stderr\n{err}\n--- server stderr\n{}",
        server.stderr_text()
    );
    assert!(status.success(), "schemathesis found something {report}");
    assert!(
        out.contains(&format!("Tested: {expected}")),
        "schemathesis did not test all {expected} operations {report}"
    );
    assert!(
        !server.stderr_text().contains("panicked"),
        "the server panicked {report}"
    );
}

/// As the bootstrap admin, then as an agent with its own access token (which most of
/// the API refuses, each refusal as documented).
#[tokio::test]
async fn schemathesis_finds_nothing() {
    let (_t, dir) = data_dir();
    // Its negative cases send bad credentials from one address: with the default
    // back-off (docs/running.md#abuse-limits) the rest of the run would be throttled
    // (429 `too_many_failures`, as documented) instead of exercised.
    let server = Server::start(
        &dir,
        &[],
        &[
            ("MANDATE_LIMITS_AUTH_FAILURES_FREE", "1000"),
            ("MANDATE_LIMITS_AUTH_SOURCE_FAILURES_FREE", "100000"),
        ],
    );
    let admin = server.token.clone().expect("bootstrap token");
    run(&server, &admin, "the admin");

    let (agent, secret) = server.agent_with_secret(&admin, "schemathesis-agent").await;
    let (st, t) = server.token_basic(&agent, &secret, &[]).await;
    assert_eq!(st, 200, "{t}");
    run(&server, t["access_token"].as_str().unwrap(), "an agent");

    // Still serving after all of it (on a new connection: the server has long closed
    // the idle one the harness's client pooled).
    let health = mandate_egress::default_builder()
        .build()
        .unwrap()
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
