//! The MCP gateway end to end with the official MCP Python SDK (`mcp` on PyPI): a real
//! FastMCP server upstream (`tests/interop/mcp_upstream.py`), `mandate serve` with
//! `[[gateway.mcp]]` in front of it, and a real `ClientSession` over Streamable HTTP
//! (`tests/interop/mcp_client.py`) holding a Mandate access token. Allowed calls work,
//! progress streams through as it happens, a denied call is a JSON-RPC error that the
//! upstream's own counters prove never reached it, `tools/list` is filtered, clients
//! without a token for the gateway cannot connect, a token whose scope does not cover
//! `mcp:call_tool` gets the scope challenge, and the audit log holds one decision per
//! call (arguments hashed) and the upstream's answers. The Python packages are pinned in
//! `tests/interop/requirements-mcp.txt`, installed into `<workspace>/target/interop-mcp-venv`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, data_dir};
use crate::interop_env::{self, Upstream, interop_dir, python_cmd, run_until};

pub(crate) const SCHEMA: &str = r#"
namespace Mcp { entity Tool; }
namespace Mandate {
  action "mcp:call_tool" in ["all"] appliesTo {
    principal: [Agent], resource: [Mcp::Tool], context: { server: String, tool: String },
  };
}
"#;

/// Every tool may be called but one.
pub(crate) const POLICIES: &str = r#"
@id("call-tools") permit (principal, action == Mandate::Action::"mcp:call_tool", resource);
@id("never-delete") forbid (
  principal,
  action == Mandate::Action::"mcp:call_tool",
  resource == Mcp::Tool::"demo__delete_everything"
);
"#;

/// How long one run of the Python client may take (it gives up by itself after 60 s).
const CLIENT_DEADLINE: Duration = Duration::from_secs(120);

/// The venv's python: `<workspace>/target/interop-mcp-venv` with the pins of
/// `tests/interop/requirements-mcp.txt` (the same scheme as `interop.rs`, with its own
/// venv: the SDK's pins are not the OAuth clients').
pub(crate) fn venv_python() -> Result<PathBuf, String> {
    interop_env::venv_python("interop-mcp-venv", "requirements-mcp.txt")
}

/// The FastMCP server (`mcp_upstream.py`), running until dropped.
fn upstream(python: &Path) -> Upstream {
    let mut cmd = python_cmd(python);
    cmd.arg(interop_dir().join("mcp_upstream.py"));
    Upstream::start(cmd, "mcp_upstream.py", Duration::from_secs(60))
}

/// Runs the SDK client against `url` (with `token` in `MCP_TOKEN`, if any) making
/// `calls`; returns its JSON report.
pub(crate) fn mcp_client(
    python: &Path,
    url: &str,
    token: Option<&str>,
    calls: &[(&str, Value)],
) -> Value {
    match token {
        Some(t) => mcp_client_env(python, url, &[("MCP_TOKEN", t)], calls),
        None => mcp_client_env(python, url, &[], calls),
    }
}

/// [`mcp_client`] with exactly `env` of its `MCP_*` variables set (a token, or the
/// credentials its own OAuth provider uses; see `mcp_client.py`).
fn mcp_client_env(
    python: &Path,
    url: &str,
    env: &[(&str, &str)],
    calls: &[(&str, Value)],
) -> Value {
    let mut cmd = python_cmd(python);
    cmd.arg(interop_dir().join("mcp_client.py")).arg(url);
    for (name, args) in calls {
        cmd.arg("--call").arg(name).arg(args.to_string());
    }
    for var in [
        "MCP_TOKEN",
        "MCP_CLIENT_ID",
        "MCP_CLIENT_SECRET",
        "MCP_CLIENT_KEY",
        "MCP_CLIENT_KEY_ALG",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (status, out, err) = run_until(&mut cmd, "mcp_client.py", CLIENT_DEADLINE);
    assert!(
        status.success(),
        "mcp_client.py: {status}\n--- stdout\n{out}--- stderr\n{err}"
    );
    let line = out.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("mcp_client.py's report ({e}):\n{out}--- stderr\n{err}"))
}

/// A JSON-RPC POST to the gateway as a Streamable HTTP client sends it.
pub(crate) fn rpc_post(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    session: Option<&str>,
    body: &Value,
) -> reqwest::RequestBuilder {
    let mut req = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-06-18");
    }
    req
}

pub(crate) fn initialize(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "mandate-e2e-raw", "version": "0"},
    }})
}

pub(crate) fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_owned()
}

/// A raw Streamable HTTP session at `url` with `token`: initialize (200) and
/// initialized (202); (its id, the initialize result message).
pub(crate) async fn open_session(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> (String, Value) {
    let r = rpc_post(http, url, Some(token), None, &initialize(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sid = header(&r, "mcp-session-id");
    let init = message(r).await;
    let r = rpc_post(
        http,
        url,
        Some(token),
        Some(&sid),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 202);
    (sid, init)
}

/// `mandate serve` with the gateway in front of one upstream, policies active.
pub(crate) struct Gateway {
    pub(crate) s: Server,
    pub(crate) admin: String,
    /// `{gateway}/mcp`.
    pub(crate) endpoint: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Gateway {
    pub(crate) async fn start(up: &Upstream, env: &[(&str, &str)], policies: &str) -> Gateway {
        let (t, dir) = data_dir();
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
        let s = Server::start(&dir, &["--config", config.to_str().unwrap()], env);
        let admin = s.token.clone().expect("bootstrap token");
        let endpoint = format!("{}/mcp", s.gateway_base());
        s.activate_policies(&admin, policies, SCHEMA).await;
        Gateway {
            s,
            admin,
            endpoint,
            _dirs: (t, files),
        }
    }

    /// An agent whose boundary is the MCP tools at this gateway; (id, its client
    /// credentials token for the gateway).
    async fn agent(&self, name: &str) -> (String, String) {
        let (id, secret) = self.client(name).await;
        let (st, t) = self
            .s
            .token_basic(&id, &secret, &[("resource", self.endpoint.as_str())])
            .await;
        assert_eq!(st, 200, "{t}");
        (id, t["access_token"].as_str().unwrap().to_owned())
    }

    /// Registers an agent that may call every tool and get tokens for the gateway;
    /// (its id, a client secret).
    pub(crate) async fn client(&self, name: &str) -> (String, String) {
        let id = self.register(name).await;
        let secret = self.s.add_secret(&self.admin, &id).await;
        (id, secret)
    }

    /// Registers an agent whose boundary is the MCP tools at this gateway, with no
    /// credentials yet; its id.
    async fn register(&self, name: &str) -> String {
        let (st, a) = self
            .s
            .admin(
                &self.admin,
                Method::POST,
                "/v1/agents",
                Some(json!({"name": name, "owner": "ops@example.com",
                            "boundary": {"grants": [{"actions": ["mcp:*"], "resources": ["Mcp::Tool/*"]}],
                                         "audiences": [self.endpoint]}})),
            )
            .await;
        assert_eq!(st, 201, "{a}");
        a["id"].as_str().unwrap().to_owned()
    }

    /// A raw Streamable HTTP session: initialize and initialized; its id.
    async fn session(&self, http: &reqwest::Client, token: &str) -> String {
        open_session(http, &self.endpoint, token).await.0
    }
}

/// Issue 19: the SDK's own OAuth providers — `ClientCredentialsOAuthProvider` (client id +
/// secret) and `PrivateKeyJWTOAuthProvider` (client id + an Ed25519 key, its assertions
/// addressed to the issuer as pydantic writes it, with a root `/`) — given nothing but the
/// gateway URL and the agent's credentials: the 401 names the RFC 9728 metadata, that
/// names Mandate, Mandate's RFC 8414 metadata must satisfy the SDK's schema (it failed
/// with "No authorization server metadata discovered" while `authorization_endpoint` was
/// missing), and the token it gets calls a tool.
#[tokio::test]
async fn the_mcp_sdk_gets_its_own_token_from_the_gateway_url_alone() {
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

    let python = venv_python().unwrap_or_else(|e| panic!("{e}"));
    let up = upstream(&python);
    let g = Gateway::start(&up, &[], POLICIES).await;
    let (s, admin, endpoint) = (&g.s, &g.admin, &g.endpoint);
    let mut agents = Vec::new();
    for name in ["sdk-secret", "sdk-key"] {
        agents.push(g.register(name).await);
    }
    let secret = s.add_secret(admin, &agents[0]).await;
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let x = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())
    };
    let (st, c) = s
        .admin(
            admin,
            Method::POST,
            &format!("/v1/agents/{}/credentials", agents[1]),
            Some(json!({"type": "public_key", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}})),
        )
        .await;
    assert_eq!(st, 201, "{c}");

    let runs: [(&str, Vec<(&str, &str)>); 2] = [
        (
            "ClientCredentialsOAuthProvider",
            vec![
                ("MCP_CLIENT_ID", &agents[0]),
                ("MCP_CLIENT_SECRET", &secret),
            ],
        ),
        (
            "PrivateKeyJWTOAuthProvider",
            vec![("MCP_CLIENT_ID", &agents[1]), ("MCP_CLIENT_KEY", &pem)],
        ),
    ];
    for ((provider, env), agent) in runs.iter().zip(&agents) {
        let report = mcp_client_env(
            &python,
            endpoint,
            env,
            &[("demo__add", json!({"a": 2, "b": 40}))],
        );
        let context = || {
            format!(
                "{provider}: {report:#}\n--- mandate stderr\n{}",
                s.stderr_text()
            )
        };
        assert!(report.get("connect_error").is_none(), "{}", context());
        let oauth = &report["oauth"];
        assert_eq!(oauth["resource"], endpoint.as_str(), "{}", context());
        assert_eq!(
            oauth["issuer"].as_str().map(|i| i.trim_end_matches('/')),
            Some(s.addr.as_str()),
            "{}",
            context()
        );
        assert_eq!(oauth["has_token"], true, "{}", context());
        let calls = report["calls"].as_array().unwrap();
        assert_eq!(calls[0]["text"], json!(["42"]), "{}", context());
        // Mandate issued it for this gateway's resource, to this agent.
        let issued = s.audit_events(admin, "token.issued", Some(agent)).await;
        assert_eq!(issued.len(), 1, "{}", context());
    }
}

#[tokio::test]
async fn the_mcp_sdk_calls_tools_through_the_gateway_and_denials_never_reach_upstream() {
    let python = venv_python().unwrap_or_else(|e| panic!("{e}"));
    let up = upstream(&python);
    // Schema, policies, an agent whose boundary is the MCP tools at this gateway.
    let g = Gateway::start(&up, &[], POLICIES).await;
    let (s, admin, endpoint) = (&g.s, &g.admin, &g.endpoint);
    let gw = s.gateway_base();
    let (agent, secret) = g.client("mcp-bot").await;
    let mut tokens = Vec::new();
    for extra in [
        &[("resource", endpoint.as_str())][..],
        // A scope inside the boundary (`mcp:*`) that does not cover `mcp:call_tool`.
        &[("resource", endpoint.as_str()), ("scope", "mcp:list")],
        // The server's default audience: not this gateway.
        &[],
    ] {
        let (st, t) = s.token_basic(&agent, &secret, extra).await;
        assert_eq!(st, 200, "{t}");
        tokens.push(t["access_token"].as_str().unwrap().to_owned());
    }
    let [token, scoped, elsewhere] = <[String; 3]>::try_from(tokens).unwrap();

    // The SDK client through the gateway: list, two allowed calls, one denied.
    let report = mcp_client(
        &python,
        endpoint,
        Some(&token),
        &[
            ("demo__add", json!({"a": 2, "b": 40})),
            ("demo__slow_count", json!({"n": 4, "delay_ms": 300})),
            ("demo__delete_everything", json!({"confirm": true})),
        ],
    );
    let context = || {
        format!(
            "{report:#}\n--- mandate stderr\n{}\n--- upstream stderr\n{}",
            s.stderr_text(),
            up.stderr.lock().unwrap()
        )
    };
    assert!(report.get("connect_error").is_none(), "{}", context());
    assert!(
        report["session_id"].as_str().is_some_and(|s| s.len() == 64),
        "{}",
        context()
    );
    let mut listed: Vec<&str> = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        ["demo__add", "demo__phish", "demo__slow_count", "demo__tick"],
        "tools/list is filtered: {}",
        context()
    );
    let calls = report["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3, "{}", context());

    let add = &calls[0];
    assert_eq!(add["ok"], true, "{}", context());
    assert_eq!(add["is_error"], false, "{}", context());
    assert_eq!(add["text"], json!(["42"]), "{}", context());

    let count = &calls[1];
    assert_eq!(count["ok"], true, "{}", context());
    assert_eq!(count["is_error"], false, "{}", context());
    assert_eq!(count["text"], json!(["counted to 4"]), "{}", context());
    let progress = count["progress"].as_array().unwrap();
    assert_eq!(
        progress
            .iter()
            .map(|p| (
                p["progress"].as_f64().unwrap(),
                p["total"].as_f64().unwrap()
            ))
            .collect::<Vec<_>>(),
        [(1.0, 4.0), (2.0, 4.0), (3.0, 4.0), (4.0, 4.0)],
        "every progress notification came through: {}",
        context()
    );
    assert_eq!(progress[0]["message"], "step 1 of 4");
    assert_eq!(
        count["logs"],
        json!(["counted 1", "counted 2", "counted 3", "counted 4"]),
        "the tool's log messages came through: {}",
        context()
    );
    // Streamed, not buffered: the steps arrived as the tool made them, 300 ms apart,
    // the first well before the call's result.
    let at = |p: &Value| p["t"].as_f64().unwrap();
    let elapsed = count["elapsed"].as_f64().unwrap();
    assert!(
        at(&progress[3]) - at(&progress[0]) >= 0.6,
        "progress arrived all at once: {}",
        context()
    );
    assert!(
        at(&progress[0]) <= elapsed - 0.6,
        "the first step arrived only with the result: {}",
        context()
    );

    let delete = &calls[2];
    assert_eq!(delete["ok"], false, "{}", context());
    let err = &delete["error"];
    assert_eq!(err["code"], -32003, "{}", context());
    assert_eq!(err["message"], "denied by Mandate");
    assert_eq!(err["data"]["error"], "denied");
    assert_eq!(err["data"]["decision"], "deny");
    let denied_id = err["data"]["decision_id"].as_str().unwrap().to_owned();

    // The upstream's own count: the allowed calls ran once each, the denied one never,
    // and the agent's token never reached it.
    let seen = up.calls().await;
    assert_eq!(
        seen["tools"],
        json!({"add": 1, "slow_count": 1, "delete_everything": 0, "tick": 0, "phish": 0}),
        "{seen}"
    );
    assert_eq!(seen["with_authorization"], 0, "{seen}");
    assert!(seen["mcp_requests"].as_u64().unwrap() > 0, "{seen}");

    // No token, or a token for another audience: the SDK client cannot even connect.
    for (who, t) in [("no token", None), ("another audience", Some(&elsewhere))] {
        let r = mcp_client(
            &python,
            endpoint,
            t.map(String::as_str),
            &[("demo__add", json!({"a": 1, "b": 1}))],
        );
        let e = r["connect_error"].as_str().unwrap_or_else(|| {
            panic!("{who}: the client connected: {r:#}");
        });
        assert!(e.contains("401 Unauthorized"), "{who}: {e}");
    }
    // The same over raw HTTP: 401, the challenge points at the metadata, which names
    // Mandate as the authorization server.
    let http = mandate_egress::default_builder().build().unwrap();
    let r = rpc_post(&http, endpoint, None, None, &initialize(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = header(&r, "www-authenticate");
    let metadata_url = format!("{gw}/.well-known/oauth-protected-resource/mcp");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp:call_tool\""), "{challenge}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32001, "{body}");
    let r = rpc_post(&http, endpoint, Some(&elsewhere), None, &initialize(1))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a token for another audience");
    let challenge = header(&r, "www-authenticate");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    let meta: Value = http
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], *endpoint, "{meta}");
    assert_eq!(meta["authorization_servers"], json!([s.addr]), "{meta}");

    // A token whose scope does not cover `mcp:call_tool`: it opens a session (the token
    // is valid for this resource), but a call is the scope challenge, HTTP 403.
    let (session, init) = open_session(&http, endpoint, &scoped).await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");
    let r = rpc_post(
        &http,
        endpoint,
        Some(&scoped),
        Some(&session),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "demo__add", "arguments": {"a": 1, "b": 2}}}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let challenge = header(&r, "www-authenticate");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"mcp:call_tool\""), "{challenge}");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["id"], 2, "{body}");
    assert_eq!(body["error"]["code"], -32003, "{body}");
    assert_eq!(
        body["error"]["data"]["reasons"][0], "outside_token_scope",
        "{body}"
    );
    let seen = up.calls().await;
    assert_eq!(seen["tools"]["add"], 1, "never reached: {seen}");
    assert_eq!(seen["with_authorization"], 0, "{seen}");

    // The record: one decision per call, seen through the MCP gateway, with the
    // arguments hashed; and the upstream's answer to each allowed call.
    let decisions = s.audit_events(admin, "decision", Some(&agent)).await;
    let summary: Vec<(&str, &str)> = decisions
        .iter()
        .map(|e| {
            (
                e["resource"]["id"].as_str().unwrap(),
                e["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("demo__add", "allow"),
            ("demo__slow_count", "allow"),
            ("demo__delete_everything", "deny"),
            ("demo__add", "deny"),
        ],
        "{decisions:#?}"
    );
    for e in &decisions {
        assert_eq!(e["action"], "mcp:call_tool", "{e}");
        assert_eq!(e["resource"]["type"], "Mcp::Tool", "{e}");
        assert_eq!(e["details"]["via"]["gateway"], "mcp", "{e}");
        assert_eq!(e["details"]["via"]["method"], "tools/call", "{e}");
        assert_eq!(e["details"]["via"]["server"], "demo", "{e}");
        assert_eq!(e["context"]["server"], "demo", "{e}");
        assert!(
            e["context"]["tool_arguments"]
                .as_str()
                .is_some_and(|h| h.starts_with("hmac-sha256:")),
            "the arguments are stored hashed: {e}"
        );
    }
    assert!(
        !decisions[2].to_string().contains("confirm"),
        "no argument in clear: {}",
        decisions[2]
    );
    assert_ne!(
        decisions[0]["context"]["tool_arguments"], decisions[3]["context"]["tool_arguments"],
        "different arguments, different hashes"
    );
    assert!(
        decisions[2]["policy_ids"]
            .as_array()
            .unwrap()
            .contains(&json!("never-delete")),
        "{}",
        decisions[2]
    );
    // A decision's id is `<node>:<seq>`.
    let id_of = |e: &Value| format!("{}:{}", e["node"].as_str().unwrap(), e["seq"]);
    assert_eq!(
        denied_id,
        id_of(&decisions[2]),
        "the client's decision_id names the recorded decision"
    );
    assert_eq!(decisions[3]["reasons"][0], "outside_token_scope");
    // Counted as the MCP gateway's, by verdict and reason (issue 23, docs/metrics.md).
    assert_eq!(
        crate::metrics::decisions_counted(s, admin, "gateway_mcp").await,
        crate::metrics::decisions_recorded(&decisions),
    );
    assert!(
        crate::metrics::decisions_counted(s, admin, "gateway_http")
            .await
            .is_empty()
    );

    // A result is recorded when the forwarded response has ended: wait for both.
    let deadline = Instant::now() + Duration::from_secs(10);
    let results = loop {
        let r = s.audit_events(admin, "gateway.result", None).await;
        if r.len() >= 2 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut tools: Vec<&str> = results
        .iter()
        .map(|e| e["details"]["tool"].as_str().unwrap_or(""))
        .collect();
    tools.sort_unstable();
    assert_eq!(tools, ["add", "slow_count"], "{results:#?}");
    let mut linked: Vec<&str> = results
        .iter()
        .map(|e| e["details"]["decision_id"].as_str().unwrap_or(""))
        .collect();
    linked.sort_unstable();
    let mut allowed = [id_of(&decisions[0]), id_of(&decisions[1])];
    allowed.sort_unstable();
    assert_eq!(
        linked, allowed,
        "each result names its decision: {results:#?}"
    );
    for e in &results {
        let d = &e["details"];
        assert_eq!(d["gateway"], "mcp", "{e}");
        assert_eq!(d["server"], "demo", "{e}");
        assert_eq!(d["upstream_status"], 200, "{e}");
        assert_eq!(d["outcome"], "ok", "{e}");
    }
}

// ---------------------------------------------------------------------------------
// Regression tests for issue 18 (the MCP gateway's findings), named after them.

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Every tool may be called, and agents may have mandates.
const POLICIES_WITH_MANDATES: &str = r#"
@id("call-tools") permit (principal, action == Mandate::Action::"mcp:call_tool", resource);
@id("mandates") permit (principal, action == Mandate::Action::"mandate:request", resource);
"#;

pub(crate) fn tool_call(id: u64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

/// The one JSON-RPC message of a response (JSON, or the last event of a stream).
pub(crate) async fn message(r: reqwest::Response) -> Value {
    let text = r.text().await.unwrap();
    let data = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data:"))
        .map_or(text.as_str(), str::trim);
    serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Finding 6 (issue 18): agents X and Y each hold a mandate for alice and exchange it
/// for a gateway token, so both tokens' `sub` is alice. X's session belonged to `sub`,
/// so Y could use it: list, call in X's upstream session, listen to it, end it. A
/// session belongs to the acting agent: Y gets 404 for all of it, X carries on, and Y
/// with its own session is served as usual.
#[tokio::test]
async fn finding_6_an_agent_acting_for_the_same_user_cannot_use_another_agents_session() {
    let python = venv_python().unwrap_or_else(|e| panic!("{e}"));
    let up = upstream(&python);
    let g = Gateway::start(
        &up,
        &[("MANDATE_DEV_USER_TOKENS", "true")],
        POLICIES_WITH_MANDATES,
    )
    .await;
    let (code, alice, err) = crate::harness::cli(
        &g.s.addr,
        &g.admin,
        &["dev", "issue-user-token", "--sub", "alice"],
    );
    assert_eq!(code, 0, "{err}");
    let alice = alice.trim().to_owned();
    let mut tokens = Vec::new();
    for name in ["agent-x", "agent-y"] {
        // The agent's own token for Mandate (no resource) asks for the mandate; the
        // exchange authenticates the agent as a client.
        let (id, secret) = g.client(name).await;
        let (st, own) = g.s.token_basic(&id, &secret, &[]).await;
        assert_eq!(st, 200, "{own}");
        let own = own["access_token"].as_str().unwrap().to_owned();
        let (st, m) =
            g.s.admin(
                &own,
                Method::POST,
                "/v1/mandates",
                Some(json!({"intent": "use the demo tools for alice",
                            "scope": [{"actions": ["mcp:call_tool"], "resources": ["Mcp::Tool/*"]}],
                            "lifetime_secs": 600, "user_token": alice})),
            )
            .await;
        assert_eq!(st, 201, "{m}");
        assert_eq!(m["status"], "active", "{m}");
        let res =
            g.s.http
                .post(g.s.url("/oauth/token"))
                .basic_auth(&id, Some(&secret))
                .form(&[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("subject_token", &alice),
                    ("subject_token_type", JWT),
                    ("actor_token", &own),
                    ("actor_token_type", ACCESS_TOKEN),
                    ("mandate", m["id"].as_str().unwrap()),
                    ("resource", &g.endpoint),
                ])
                .send()
                .await
                .unwrap();
        assert_eq!(res.status(), 200);
        let ex: Value = res.json().await.unwrap();
        tokens.push((id, ex["access_token"].as_str().unwrap().to_owned()));
    }
    let [(_, x), (y_id, y)] = <[(String, String); 2]>::try_from(tokens).unwrap();

    let http = mandate_egress::default_builder().build().unwrap();
    let sid = g.session(&http, &x).await;
    let r = rpc_post(
        &http,
        &g.endpoint,
        Some(&x),
        Some(&sid),
        &tool_call(2, "demo__add", json!({"a": 1, "b": 2})),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(message(r).await["result"]["content"][0]["text"], "3");

    // Y, with its own valid token for the gateway and X's session id.
    for body in [
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
        tool_call(4, "demo__add", json!({"a": 40, "b": 2})),
        json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}),
    ] {
        let r = rpc_post(&http, &g.endpoint, Some(&y), Some(&sid), &body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{body}");
        assert_eq!(message(r).await["error"]["code"], -32006, "{body}");
    }
    let r = http
        .get(&g.endpoint)
        .bearer_auth(&y)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "GET");
    let r = http
        .delete(&g.endpoint)
        .bearer_auth(&y)
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "DELETE");

    // X's session carries on; only X's calls reached the upstream.
    let r = rpc_post(
        &http,
        &g.endpoint,
        Some(&x),
        Some(&sid),
        &tool_call(6, "demo__add", json!({"a": 2, "b": 2})),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(message(r).await["result"]["content"][0]["text"], "4");
    assert_eq!(up.calls().await["tools"]["add"], 2);
    // Nothing Y tried was decided.
    assert!(
        g.s.audit_events(&g.admin, "decision", Some(&y_id))
            .await
            .is_empty()
    );

    // Y's token is good for a session of its own (the SDK client lists the tools).
    let report = mcp_client(&python, &g.endpoint, Some(&y), &[]);
    assert!(report.get("connect_error").is_none(), "{report:#}");
    assert_ne!(report["session_id"], sid.as_str());
    assert!(
        report["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("demo__add")),
        "{report:#}"
    );
}

/// Finding 7 (issue 18): after `contain`, a `GET /mcp` stream opened before kept
/// relaying the upstream's notifications. The upstream (FastMCP) sends one on the
/// standalone stream every 500 ms; once `POST /v1/agents/{id}/contain` has answered the
/// client receives at most one more, then the stream ends; and the agent can open
/// nothing (the SDK client cannot connect).
#[tokio::test]
async fn finding_7_contain_cuts_an_open_mcp_stream_within_one_notification() {
    let python = venv_python().unwrap_or_else(|e| panic!("{e}"));
    let up = upstream(&python);
    let g = Gateway::start(&up, &[], POLICIES).await;
    let (agent, token) = g.agent("ticker").await;
    let http = mandate_egress::default_builder().build().unwrap();
    let sid = g.session(&http, &token).await;
    let listen = http
        .get(&g.endpoint)
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(listen.status(), 200);
    let r = rpc_post(
        &http,
        &g.endpoint,
        Some(&token),
        Some(&sid),
        &tool_call(2, "demo__tick", json!({"n": 120, "interval_ms": 500})),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(message(r).await["result"]["content"][0]["text"], "ticking");

    // Ticks arrive on the standalone stream.
    let mut stream = listen.bytes_stream();
    let mut seen = String::new();
    let ticks = |s: &str| s.matches("\"tick ").count();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ticks(&seen) < 3 {
        assert!(Instant::now() < deadline, "no ticks: {seen}");
        let chunk = tokio::time::timeout(
            Duration::from_secs(10),
            futures_util::StreamExt::next(&mut stream),
        )
        .await
        .expect("a tick")
        .expect("the stream is open")
        .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }

    let (st, v) =
        g.s.admin(
            &g.admin,
            Method::POST,
            &format!("/v1/agents/{agent}/contain"),
            Some(json!({"reason": "issue 18, finding 7"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let before = ticks(&seen);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let ended = loop {
        match tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut stream)).await {
            Err(_) => break false,
            Ok(None | Some(Err(_))) => break true,
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
        }
    };
    assert!(ended, "the stream outlived the containment: {seen}");
    assert!(
        ticks(&seen) - before <= 1,
        "{} notifications after contain: {seen}",
        ticks(&seen) - before
    );

    // Nothing opens any more.
    let r = rpc_post(&http, &g.endpoint, Some(&token), None, &initialize(9))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a contained agent's token is cut off");
    let report = mcp_client(&python, &g.endpoint, Some(&token), &[]);
    let e = report["connect_error"]
        .as_str()
        .unwrap_or_else(|| panic!("the SDK client connected: {report:#}"));
    assert!(e.contains("401"), "{e}");
}

/// Finding 8 (issue 18): an allowed tool that asks the client, on its `tools/call`
/// stream, to elicit (a sign-in page at evil.example), to sample its model and to list
/// its roots: the SDK client received all three. Through the gateway it receives none,
/// gets the tool's result, and the upstream waits for answers that never come.
#[tokio::test]
async fn finding_8_the_sdk_client_is_asked_nothing_by_an_upstream_through_the_gateway() {
    let python = venv_python().unwrap_or_else(|e| panic!("{e}"));
    let up = upstream(&python);
    let g = Gateway::start(&up, &[], POLICIES).await;
    let (_, token) = g.agent("phished").await;
    let report = mcp_client(
        &python,
        &g.endpoint,
        Some(&token),
        &[("demo__phish", json!({}))],
    );
    assert!(report.get("connect_error").is_none(), "{report:#}");
    assert_eq!(report["calls"][0]["ok"], true, "{report:#}");
    assert_eq!(
        report["calls"][0]["text"],
        json!(["phish done"]),
        "{report:#}"
    );
    assert_eq!(report["server_requests"], json!([]), "{report:#}");
    let seen = up.calls().await;
    assert_eq!(seen["tools"]["phish"], 1, "{seen}");
    assert_eq!(
        seen["asked"],
        json!([
            {"method": "elicitation/create", "outcome": "no answer"},
            {"method": "sampling/createMessage", "outcome": "no answer"},
            {"method": "roots/list", "outcome": "no answer"},
        ]),
        "{seen}"
    );
    // The record says what was dropped.
    let deadline = Instant::now() + Duration::from_secs(10);
    let result = loop {
        let r = g.s.audit_events(&g.admin, "gateway.result", None).await;
        if let Some(e) = r.into_iter().next() {
            break e;
        }
        assert!(Instant::now() < deadline, "no gateway.result");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(result["details"]["outcome"], "ok", "{result}");
    assert_eq!(result["details"]["dropped_server_requests"], 3, "{result}");
}
