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

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, data_dir};

/// How long one run of a client script may take.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

const SCHEMA: &str = r#"
namespace Mcp { entity Tool; }
namespace Mandate {
  action "mcp:call_tool" in ["all"] appliesTo {
    principal: [Agent], resource: [Mcp::Tool], context: { server: String, tool: String },
  };
}
"#;

/// Every tool may be called but one.
const POLICIES: &str = r#"
@id("call-tools") permit (principal, action == Mandate::Action::"mcp:call_tool", resource);
@id("never-delete") forbid (
  principal,
  action == Mandate::Action::"mcp:call_tool",
  resource == Mcp::Tool::"demo__delete_everything"
);
"#;

/// The sources: `package.json`, `package-lock.json` and the `.mjs` scripts.
fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
        .join("node")
}

fn target_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..");
    root.canonicalize().unwrap_or(root).join("target")
}

fn show(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A command with nothing inherited that could redirect Node or npm to other code.
fn node_cmd(program: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("NODE_OPTIONS")
        .env_remove("NODE_PATH")
        .env("NO_UPDATE_NOTIFIER", "1")
        .env("npm_config_update_notifier", "false");
    cmd
}

/// Runs `cmd` to the end; `Err` (with its output) unless it exits 0.
fn run(cmd: &mut Command, what: &str) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| {
        format!("{what}: cannot run {cmd:?}: {e} (these tests need node 20 or later and npm on the PATH)")
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!("{what} failed:\n{}", show(&out)))
    }
}

/// `<workspace>/target/interop-node` with the pinned packages installed and the current
/// scripts beside them (ES modules resolve packages from their own directory, so they
/// run from there). `npm ci` runs unless the stamp says the install came from this very
/// `package-lock.json`, `package.json` and Node version. An exclusive lock on a file
/// beside it serialises test processes that race to build it; the stamp is written last,
/// so an install that died half-way is redone.
fn node_dir() -> Result<PathBuf, String> {
    let io = |what: &str, p: &Path| {
        let what = format!("{what} {}", p.display());
        move |e: std::io::Error| format!("{what}: {e}")
    };
    let target = target_dir();
    fs::create_dir_all(&target).map_err(io("creating", &target))?;
    let dir = target.join("interop-node");
    let stamp_file = dir.join(".mandate-stamp");
    let src = source_dir();

    let node = run(node_cmd("node", &target).arg("--version"), "node --version")?;
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
        fingerprint.extend(fs::read(&p).map_err(io("reading", &p))?);
    }
    fingerprint.extend_from_slice(&node.stdout);
    // FNV-1a, 64 bits: a stable fingerprint with no extra crate.
    let hash = fingerprint.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let stamp = format!("{hash:016x}\n");

    let lock_path = target.join("interop-node.lock");
    let lock = File::create(&lock_path).map_err(io("creating", &lock_path))?;
    lock.lock().map_err(io("locking", &lock_path))?;
    let installed = fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str())
        && dir.join("node_modules").is_dir();
    if !installed {
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io("removing", &dir))?;
        }
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        for file in ["package.json", "package-lock.json"] {
            fs::copy(src.join(file), dir.join(file)).map_err(io("copying", &src.join(file)))?;
        }
        run(
            node_cmd("npm", &dir).args(["ci", "--no-audit", "--no-fund"]),
            "npm ci (tests/interop/node/package-lock.json)",
        )?;
        fs::write(&stamp_file, &stamp).map_err(io("writing", &stamp_file))?;
    }
    // The scripts are copied on every run, under the lock, so an edit takes effect at once.
    for entry in fs::read_dir(&src).map_err(io("listing", &src))? {
        let p = entry.map_err(io("listing", &src))?.path();
        if p.extension().is_some_and(|e| e == "mjs") {
            let to = dir.join(p.file_name().unwrap_or_default());
            if fs::read(&p).ok() != fs::read(&to).ok() {
                fs::copy(&p, &to).map_err(io("copying", &p))?;
            }
        }
    }
    drop(lock);
    Ok(dir)
}

/// A child process killed and reaped when dropped, so a failed assertion leaves nothing
/// running.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads all of `r` on a thread.
fn read_all(r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(r).read_to_string(&mut s);
        s
    })
}

/// Runs `node <script>` in `dir` with `env`, killed after [`SCRIPT_DEADLINE`];
/// (success, stdout, stderr).
fn node_script(dir: &Path, script: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let mut child = node_cmd("node", dir)
        .arg(script)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("node {script}: {e} (these tests need node on the PATH)"));
    let out = read_all(child.stdout.take().unwrap());
    let err = read_all(child.stderr.take().unwrap());
    let mut child = Killed(child);
    let deadline = Instant::now() + SCRIPT_DEADLINE;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "node {script} ran past {SCRIPT_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.success(), out.join().unwrap(), err.join().unwrap())
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
struct Upstream {
    _child: Killed,
    /// Its Streamable HTTP endpoint.
    url: String,
    /// Its `GET /calls`: what reached it.
    calls: String,
}

impl Upstream {
    fn start(dir: &Path) -> Upstream {
        let mut child = node_cmd("node", dir)
            .arg("mcp_upstream.mjs")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node mcp_upstream.mjs");
        let stdout = child.stdout.take().unwrap();
        let stderr = read_all(child.stderr.take().unwrap());
        let mut child = Killed(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| {
                let _ = child.0.kill();
                panic!(
                    "mcp_upstream.mjs did not say where it listens ({e}):\n{}",
                    stderr.join().unwrap_or_default()
                )
            });
        let v: Value = serde_json::from_str(&line).unwrap();
        Upstream {
            _child: child,
            url: v["url"].as_str().unwrap().to_owned(),
            calls: v["calls"].as_str().unwrap().to_owned(),
        }
    }

    /// Its own count of what reached it.
    async fn calls(&self) -> Value {
        let r = reqwest::get(&self.calls).await.unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

/// The audit events of `kind` for `agent`, oldest first.
async fn events(s: &Server, admin: &str, kind: &str, agent: &str) -> Vec<Value> {
    let (st, v) = s
        .admin(
            admin,
            Method::GET,
            &format!("/v1/audit/events?kind={kind}&agent={agent}&limit=1000"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["items"].as_array().unwrap().clone()
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
    let up = Upstream::start(&dir);
    let (_t, data) = data_dir();
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("mandate.toml");
    fs::write(
        &config,
        format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\n\n[[gateway.mcp]]\nname = \"demo\"\nurl = \"{}\"\n",
            up.url
        ),
    )
    .unwrap();
    let s = Server::start(&data, &["--config", config.to_str().unwrap()], &[]);
    let admin = s.token.clone().expect("bootstrap token");
    let endpoint = format!("{}/mcp", s.gateway_base());
    s.activate_policies(&admin, POLICIES, SCHEMA).await;
    let (st, a) = s
        .admin(
            &admin,
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "node-mcp-bot", "owner": "alice@example.com",
                        "boundary": {"grants": [{"actions": ["mcp:*"], "resources": ["Mcp::Tool/*"]}],
                                     "audiences": [endpoint]}})),
        )
        .await;
    assert_eq!(st, 201, "{a}");
    let agent = a["id"].as_str().unwrap().to_owned();
    let secret = s.add_secret(&admin, &agent).await;
    let keys = key_pairs(&dir);
    add_public_key(&s, &admin, &agent, &keys["es256"]["public"]).await;
    add_public_key(&s, &admin, &agent, &keys["ed25519"]["public"]).await;

    let result = node_script(
        &dir,
        "mcp_sdk_client.mjs",
        &[
            ("GATEWAY_URL", &endpoint),
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
    assert_checks("mcp_sdk_client.mjs", &result, &checks, &s);

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
    let refused = events(&s, &admin, "token.refused", &agent).await;
    assert!(refused.is_empty(), "{refused:#?}");
    let issued = events(&s, &admin, "token.issued", &agent).await;
    let tokens: Vec<&str> = issued
        .iter()
        .map(|e| {
            assert_eq!(e["details"]["aud"], endpoint.as_str(), "{e}");
            e["details"]["token_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(tokens.len(), 3, "{issued:#?}");
    let decisions: Vec<(String, String, String)> = events(&s, &admin, "decision", &agent)
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
