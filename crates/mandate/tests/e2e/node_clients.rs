//! Interoperability with stock Node clients (issue 19): the official MCP TypeScript SDK
//! finds Mandate by itself from an MCP gateway URL (401, RFC 9728, RFC 8414) with its own
//! `ClientCredentialsProvider` and `PrivateKeyJwtProvider`, and `openid-client` gets
//! tokens by discovery with a client secret, a P-256 key and an Ed25519 key, verified
//! with `jose` against the JWKS (signed as `EdDSA`, and as `Ed25519` with
//! `token.signing_alg`). The checks are ES modules in `tests/interop/node/`
//! (one `ok …` line per check); the packages are pinned exactly in its `package.json` and
//! `package-lock.json` and installed with `npm ci` into `<workspace>/target/interop-node`,
//! rebuilt when the lock (or the Node version) changes. No Python is needed: the MCP
//! upstream is the TypeScript SDK's `McpServer` (`mcp_upstream.mjs`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, data_dir};
use crate::interop_env::{Upstream, install_locked, interop_dir, io_err, node_cmd, run, run_until};
use crate::mcp::{Gateway, POLICIES};

/// How long one run of a client script may take.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

const NEEDS: &str = "these tests need node 20 or later and npm on the PATH";

/// `<workspace>/target/interop-node` with the pinned packages of `tests/interop/node`
/// installed and the current scripts beside them (ES modules resolve packages from their
/// own directory, so they run from there). `npm ci` runs unless the stamp says the
/// install came from this very `package-lock.json`, `package.json` and Node version
/// (see [`install_locked`]).
fn node_dir() -> Result<PathBuf, String> {
    let src = interop_dir().join("node");
    let node = run(
        node_cmd("node", &src).arg("--version"),
        "node --version",
        NEEDS,
    )?;
    let version = String::from_utf8_lossy(&node.stdout).trim().to_owned();
    let major: Option<u32> = version
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok());
    if major.is_none_or(|m| m < 20) {
        return Err(format!(
            "these tests need node 20 or later (the pinned packages' minimum), found `{version}`"
        ));
    }
    let mut fingerprint = Vec::new();
    for file in ["package.json", "package-lock.json"] {
        let p = src.join(file);
        fingerprint.extend(fs::read(&p).map_err(io_err("reading", &p))?);
    }
    fingerprint.extend_from_slice(&node.stdout);
    let install = install_locked(
        "interop-node",
        &fingerprint,
        |dir| dir.join("node_modules").is_dir(),
        |dir| {
            fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
            for file in ["package.json", "package-lock.json"] {
                fs::copy(src.join(file), dir.join(file))
                    .map_err(io_err("copying", &src.join(file)))?;
            }
            run(
                node_cmd("npm", dir).args(["ci", "--no-audit", "--no-fund"]),
                "npm ci (tests/interop/node/package-lock.json)",
                NEEDS,
            )
            .map(drop)
        },
    )?;
    let dir = &install.dir;
    // The scripts are copied on every run, under the lock, so an edit takes effect at once.
    for entry in fs::read_dir(&src).map_err(io_err("listing", &src))? {
        let p = entry.map_err(io_err("listing", &src))?.path();
        if p.extension().is_some_and(|e| e == "mjs") {
            let to = dir.join(p.file_name().unwrap_or_default());
            if fs::read(&p).ok() != fs::read(&to).ok() {
                fs::copy(&p, &to).map_err(io_err("copying", &p))?;
            }
        }
    }
    Ok(install.dir.clone())
}

/// Runs `node <script>` in `dir` with `env`, killed after [`SCRIPT_DEADLINE`];
/// (success, stdout, stderr).
fn node_script(dir: &Path, script: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let (status, out, err) = run_until(
        node_cmd("node", dir).arg(script).envs(env.iter().copied()),
        &format!("node {script}"),
        SCRIPT_DEADLINE,
    );
    (status.success(), out, err)
}

/// Asserts that `script` passed and printed `ok <check>` for every one of `checks` (so a
/// check the script never reached fails too).
fn assert_checks(
    script: &str,
    (ok, out, err): &(bool, String, String),
    checks: &[String],
    s: &Server,
) {
    let report = format!(
        "--- {script} stdout\n{out}--- {script} stderr\n{err}--- mandate stderr\n{}",
        s.stderr_text()
    );
    let missing: Vec<&String> = checks
        .iter()
        .filter(|c| !out.lines().any(|l| l == format!("ok {c}")))
        .collect();
    assert!(
        *ok && missing.is_empty(),
        "{script} failed; checks not passed: {missing:#?}\n{report}"
    );
}

/// A P-256 and an Ed25519 key pair made by `keys.mjs`: `{"es256": {"private", "public"},
/// "ed25519": …}`, as JWKs.
fn key_pairs(dir: &Path) -> Value {
    let (ok, out, err) = node_script(dir, "keys.mjs", &[]);
    assert!(ok, "keys.mjs: {out}\n{err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("keys.mjs ({e}): {out}"))
}

/// Registers `jwk` as a public key of `agent`.
async fn add_public_key(s: &Server, admin: &str, agent: &str, jwk: &Value) {
    let (st, c) = s
        .admin(
            admin,
            Method::POST,
            &format!("/v1/agents/{agent}/credentials"),
            Some(json!({"type": "public_key", "jwk": jwk})),
        )
        .await;
    assert_eq!(st, 201, "{c}");
}

/// The TypeScript SDK's MCP server (`mcp_upstream.mjs`), running until dropped.
fn upstream(dir: &Path) -> Upstream {
    let mut cmd = node_cmd("node", dir);
    cmd.arg("mcp_upstream.mjs");
    Upstream::start(cmd, "mcp_upstream.mjs", Duration::from_secs(30))
}

/// Issue 19: the MCP TypeScript SDK's `ClientCredentialsProvider` failed on Mandate's
/// RFC 8414 metadata (`authorization_endpoint: expected string, received undefined`),
/// and its `PrivateKeyJwtProvider` with an Ed25519 key signs `alg: "Ed25519"`. Given only
/// the gateway URL and the agent's credentials, each provider now finds Mandate, gets a
/// token for the gateway, lists the allowed tools, calls one, and is refused the denied
/// one, which never reaches the upstream.
#[tokio::test]
async fn issue_19_the_mcp_typescript_sdk_finds_mandate_from_the_gateway_and_calls_tools() {
    let dir = node_dir().unwrap_or_else(|e| panic!("{e}"));
    let up = upstream(&dir);
    let g = Gateway::start(&up, &[], POLICIES).await;
    let (s, admin, endpoint) = (&g.s, &g.admin, &g.endpoint);
    let (agent, secret) = g.client("node-mcp-bot").await;
    let keys = key_pairs(&dir);
    add_public_key(s, admin, &agent, &keys["es256"]["public"]).await;
    add_public_key(s, admin, &agent, &keys["ed25519"]["public"]).await;

    let result = node_script(
        &dir,
        "mcp_sdk_client.mjs",
        &[
            ("GATEWAY_URL", endpoint),
            ("MANDATE_ISSUER", &s.addr),
            ("CLIENT_ID", &agent),
            ("CLIENT_SECRET", &secret),
            ("ES256_JWK", &keys["es256"]["private"].to_string()),
            ("ED25519_JWK", &keys["ed25519"]["private"].to_string()),
        ],
    );
    let mut checks = Vec::new();
    for (run, alg) in [
        ("client_secret", None),
        ("private_key_jwt ES256", Some("ES256")),
        ("private_key_jwt Ed25519", Some("Ed25519")),
    ] {
        checks.push(format!("{run}: connects through the gateway"));
        checks.push(format!("{run}: discovered Mandate from the gateway's 401"));
        checks.push(format!(
            "{run}: the token is Mandate's, for the gateway, for this agent"
        ));
        if let Some(alg) = alg {
            checks.push(format!(
                "{run}: the SDK signed its client assertion with alg {alg}"
            ));
        }
        checks.push(format!(
            "{run}: tools/list is filtered to the allowed tools"
        ));
        checks.push(format!("{run}: an allowed tool answers"));
        checks.push(format!("{run}: a denied tool is an error"));
    }
    assert_checks("mcp_sdk_client.mjs", &result, &checks, s);

    // The upstream's own count: each run's allowed call reached it, no denied one did,
    // and no agent token was passed on.
    let seen = up.calls().await;
    assert_eq!(
        seen["tools"],
        json!({"add": 3, "delete_everything": 0}),
        "{seen}"
    );
    assert_eq!(seen["with_authorization"], 0, "{seen}");

    // The record: each run got one token, for the gateway, at the first try (no
    // refusal), and made one decision per call with it.
    let refused = s.audit_events(admin, "token.refused", Some(&agent)).await;
    assert!(refused.is_empty(), "{refused:#?}");
    let issued = s.audit_events(admin, "token.issued", Some(&agent)).await;
    let tokens: Vec<&str> = issued
        .iter()
        .map(|e| {
            assert_eq!(e["details"]["aud"], endpoint.as_str(), "{e}");
            e["details"]["token_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(tokens.len(), 3, "{issued:#?}");
    let decisions: Vec<(String, String, String)> = s
        .audit_events(admin, "decision", Some(&agent))
        .await
        .iter()
        .map(|e| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                text(&e["details"]["token_id"]),
                text(&e["resource"]["id"]),
                text(&e["decision"]),
            )
        })
        .collect();
    let want: Vec<(String, String, String)> = tokens
        .iter()
        .flat_map(|t| {
            [("demo__add", "allow"), ("demo__delete_everything", "deny")]
                .map(|(r, d)| ((*t).to_owned(), r.to_owned(), d.to_owned()))
        })
        .collect();
    assert_eq!(decisions, want);
}

/// Issue 19: openid-client signs client assertions for an Ed25519 key with the
/// fully-specified `alg: "Ed25519"` (RFC 9864), which Mandate refused with a bare
/// `invalid_client`. By discovery from the issuer URL, with a client secret, a P-256 key,
/// an Ed25519 key (`Ed25519`, and `EdDSA` through the library's own hook) it now gets
/// tokens that `jose` verifies against the JWKS, as `EdDSA` by default.
#[tokio::test]
async fn issue_19_openid_client_gets_tokens_with_a_secret_a_p256_key_and_an_ed25519_key() {
    openid_client(&[], "EdDSA").await;
}

/// With `token.signing_alg = "Ed25519"` Mandate's tokens carry the fully-specified
/// `alg`, and jose verifies them against the JWKS just the same.
#[tokio::test]
async fn openid_client_and_jose_accept_tokens_signed_as_ed25519() {
    openid_client(&[("MANDATE_TOKEN_SIGNING_ALG", "Ed25519")], "Ed25519").await;
}

/// Runs `openid_client.mjs` against a server started with `env`, whose tokens must
/// carry `token_alg`.
async fn openid_client(env: &[(&str, &str)], token_alg: &str) {
    let dir = node_dir().unwrap_or_else(|e| panic!("{e}"));
    let (_t, data) = data_dir();
    let s = Server::start(&data, &[], env);
    let admin = s.token.clone().expect("bootstrap token");
    let (agent, secret) = s.agent_with_secret(&admin, "node-oidc-bot").await;
    let keys = key_pairs(&dir);
    add_public_key(&s, &admin, &agent, &keys["es256"]["public"]).await;
    add_public_key(&s, &admin, &agent, &keys["ed25519"]["public"]).await;

    let result = node_script(
        &dir,
        "openid_client.mjs",
        &[
            ("MANDATE_ISSUER", &s.addr),
            ("CLIENT_ID", &agent),
            ("CLIENT_SECRET", &secret),
            ("ES256_JWK", &keys["es256"]["private"].to_string()),
            ("ED25519_JWK", &keys["ed25519"]["private"].to_string()),
            ("TOKEN_ALG", token_alg),
        ],
    );
    let mut checks = Vec::new();
    for (run, alg) in [
        ("client_secret_basic", None),
        ("private_key_jwt P-256", Some("ES256")),
        ("private_key_jwt Ed25519", Some("Ed25519")),
        ("private_key_jwt Ed25519 as EdDSA", Some("EdDSA")),
    ] {
        checks.push(format!("{run}: discovery from the issuer URL"));
        checks.push(format!("{run}: client credentials grant"));
        if let Some(alg) = alg {
            checks.push(format!("{run}: the assertion was signed with alg {alg}"));
        }
        checks.push(format!("{run}: the token verifies against the JWKS"));
    }
    checks.push("an unregistered Ed25519 key is refused with invalid_client".to_owned());
    assert_checks("openid_client.mjs", &result, &checks, &s);
}
