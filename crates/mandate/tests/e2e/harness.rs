//! Runs the real `mandate` binary on a loopback port and talks to it over HTTP.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_mandate");

/// A running `mandate serve` and what it printed.
pub struct Server {
    child: Option<Child>,
    pub addr: String,
    /// The bootstrap token, when this start printed or was given one.
    pub token: Option<String>,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
    pub http: reqwest::Client,
}

/// Collects what `r` says, line by line, into `buf`.
pub(crate) fn pump(r: impl Read + Send + 'static, buf: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            let mut b = buf.lock().unwrap();
            b.push_str(&line);
            b.push('\n');
        }
    });
}

impl Server {
    /// Starts `mandate serve --listen 127.0.0.1:0 --data-dir DIR ARGS…` with `env`
    /// (and no other MANDATE_* variables), waiting until it prints its address.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(args);
        Self::spawn(cmd, env)
    }

    /// Starts `mandate serve --dev --listen 127.0.0.1:0 ARGS…` with `env` (and no other
    /// MANDATE_* variables): no data dir unless `args` gives one.
    pub fn start_dev(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--dev", "--listen", "127.0.0.1:0"])
            .args(args);
        Self::spawn(cmd, env)
    }

    /// The variables of the banner's `export …` line (`MANDATE_ADDR`, `MANDATE_TOKEN`,
    /// and under `--dev` `DEMO_AGENT`, `DEMO_SECRET`).
    pub fn exports(&self) -> std::collections::BTreeMap<String, String> {
        let out = self.stdout_text();
        let line = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("export "))
            .unwrap_or_else(|| panic!("no export line in: {out}"));
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// As [`Server::start`], with the process's open-file limit set to `files` first
    /// (`ulimit -n` in a shell that then execs the server, so the pid is the server's).
    pub fn start_with_file_limit(
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        files: u32,
    ) -> Server {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "ulimit -n \"$0\" && exec \"$@\""])
            .arg(files.to_string())
            .args([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(args);
        Self::spawn(cmd, env)
    }

    fn spawn(mut cmd: Command, env: &[(&str, &str)]) -> Server {
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("MANDATE_")) {
            cmd.env_remove(k);
        }
        cmd.envs(env.iter().copied());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn mandate");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        pump(child.stdout.take().unwrap(), Arc::clone(&stdout));
        pump(child.stderr.take().unwrap(), Arc::clone(&stderr));
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            // The banner ends with the suggested next command; wait for all of it so the
            // bootstrap token (printed between) is never missed.
            let out = stdout.lock().unwrap().clone();
            if let Some(a) = out
                .contains("mandate agent register")
                .then(|| {
                    out.lines()
                        .find_map(|l| l.split("listening on ").nth(1).map(str::to_owned))
                })
                .flatten()
            {
                break a;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("mandate exited {status}: {}", stderr.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "mandate did not start: {}",
                stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let token = stdout
            .lock()
            .unwrap()
            .split_whitespace()
            .find(|w| w.starts_with("mat_"))
            .map(str::to_owned);
        Server {
            child: Some(child),
            addr,
            token,
            stdout,
            stderr,
            http: mandate_egress::default_builder().build().unwrap(),
        }
    }

    /// Adds `policies` with the schema fragment `schema` as a version and activates it,
    /// as `admin`.
    pub async fn activate_policies(&self, admin: &str, policies: &str, schema: &str) {
        let (st, v) = self
            .admin(
                admin,
                reqwest::Method::POST,
                "/v1/policies",
                Some(serde_json::json!({"policies": policies, "schema_fragments": [schema]})),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        let version = v["version"].as_i64().unwrap();
        let (st, v) = self
            .admin(
                admin,
                reqwest::Method::POST,
                &format!("/v1/policies/{version}/activate"),
                None,
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }

    /// The key ids the JWKS publishes now.
    pub async fn published_kids(&self) -> Vec<String> {
        let jwks: serde_json::Value = self
            .http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The gateway's base URL, from the banner's `gateway on …` line.
    pub fn gateway_base(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.stdout.lock().unwrap().clone();
            if let Some(u) = out.lines().find_map(|l| l.strip_prefix("gateway on ")) {
                return u.trim().to_owned();
            }
            assert!(Instant::now() < deadline, "no gateway line in: {out}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    /// The server's process id (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                // Let the pump threads drain what is left.
                std::thread::sleep(Duration::from_millis(50));
                return s;
            }
            assert!(Instant::now() < deadline, "mandate ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL (no chance to flush or clean up).
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// An admin API call with `token`; returns status and JSON (Null when empty).
    pub async fn admin(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    }

    /// `POST /oauth/token` with client_secret_basic.
    pub async fn token_basic(
        &self,
        client: &str,
        secret: &str,
        extra: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        let res = self
            .http
            .post(self.url("/oauth/token"))
            .basic_auth(client, Some(secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    /// `POST /oauth/introspect` as `admin`.
    pub async fn introspect(&self, admin: &str, token: &str) -> Value {
        let res = self
            .http
            .post(self.url("/oauth/introspect"))
            .bearer_auth(admin)
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// Registers an agent and gives it a client secret; returns (agent id, secret).
    pub async fn agent_with_secret(&self, admin: &str, name: &str) -> (String, String) {
        let (s, a) = self
            .admin(
                admin,
                reqwest::Method::POST,
                "/v1/agents",
                Some(serde_json::json!({
                    "name": name,
                    "owner": "alice@example.com",
                    "boundary": {
                        "grants": [{"actions": ["crm:*"], "resources": ["crm:*"]}],
                        "audiences": ["https://crm.example.com"]
                    }
                })),
            )
            .await;
        assert_eq!(s, 201, "{a}");
        let id = a["id"].as_str().unwrap().to_owned();
        let secret = self.add_secret(admin, &id).await;
        (id, secret)
    }

    /// Gives `agent` a new client secret; returns it.
    pub async fn add_secret(&self, admin: &str, agent: &str) -> String {
        let (s, c) = self
            .admin(
                admin,
                reqwest::Method::POST,
                &format!("/v1/agents/{agent}/credentials"),
                Some(serde_json::json!({"type": "client_secret"})),
            )
            .await;
        assert_eq!(s, 201, "{c}");
        c["client_secret"].as_str().unwrap().to_owned()
    }

    /// The audit events of `kind` (for `agent`, if given), oldest first.
    pub async fn audit_events(&self, admin: &str, kind: &str, agent: Option<&str>) -> Vec<Value> {
        let mut path = format!("/v1/audit/events?kind={kind}&limit=1000");
        if let Some(a) = agent {
            path.push_str(&format!("&agent={a}"));
        }
        let (st, v) = self.admin(admin, reqwest::Method::GET, &path, None).await;
        assert_eq!(st, 200, "{v}");
        v["items"].as_array().unwrap().clone()
    }

    pub fn stdout_text(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the CLI with MANDATE_ADDR/MANDATE_TOKEN set; returns (exit code, stdout, stderr).
pub fn cli(addr: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("MANDATE_ADDR", addr)
        .env("MANDATE_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh temporary data directory.
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("data");
    (t, p)
}

/// Each agent's client credentials, by an access token issued with them: a token
/// exchange authenticates as the client whose token is its `actor_token` (RFC 8693
/// §2.1: the exchange needs client authentication; a token alone is refused).
static CLIENTS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, (String, String)>>,
> = std::sync::LazyLock::new(Default::default);

/// Remembers that `token` was issued to client `id` with `secret`.
pub fn remember_client(token: &str, id: &str, secret: &str) {
    CLIENTS
        .lock()
        .unwrap()
        .insert(token.to_owned(), (id.to_owned(), secret.to_owned()));
}

/// The client credentials of the agent whose token is `form`'s `actor_token`.
pub fn client_of(form: &[(&str, &str)]) -> Option<(String, String)> {
    let actor = form.iter().find(|(k, _)| *k == "actor_token")?.1;
    CLIENTS.lock().unwrap().get(actor).cloned()
}

/// Turns data dir `dir`, whose server has stopped, into one from before the store key
/// (issue 21): the store's current signing key becomes a new key whose private half is
/// only in `keys/<kid>.pem`, the schema is version 6 (no sealed column), and there is no
/// store key nor its check. Returns that key: what the server signed with before.
pub fn wind_back_to_a_key_file(dir: &Path) -> mandate_token::keys::SigningKey {
    let key = mandate_token::keys::SigningKey::generate(&mandate_core::random::OsRandom).unwrap();
    let raw = rusqlite::Connection::open(dir.join("mandate.db")).unwrap();
    raw.execute(
        "UPDATE signing_keys SET kid = ?1, public_key = ?2 WHERE retired_at IS NULL",
        rusqlite::params![key.kid(), key.public_bytes().as_slice()],
    )
    .unwrap();
    raw.execute_batch(
        "ALTER TABLE signing_keys DROP COLUMN private_sealed;
         ALTER TABLE policy_versions DROP COLUMN rego;
         DROP TABLE last_activity;
         DROP TABLE review_items;
         DROP TABLE reviews;
         DROP TABLE ssf_poll_sets;
         DROP TABLE ssf_streams;
         DROP TABLE export_cursors;
         DROP TABLE user_session_cutoffs;
         DELETE FROM meta WHERE key = 'store_key_check';
         PRAGMA user_version = 6;",
    )
    .unwrap();
    drop(raw);
    std::fs::remove_file(dir.join("store.key")).unwrap();
    std::fs::create_dir(dir.join("keys")).unwrap();
    mandate_store::keyfile::write_private(
        &dir.join(format!("keys/{}.pem", key.kid())),
        &key.to_pkcs8_pem().unwrap(),
    )
    .unwrap();
    key
}
