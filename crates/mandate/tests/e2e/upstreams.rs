//! The gateway demo as shipped (issue 19, item 4): the sample upstreams of
//! `examples/upstreams` (the very routers the `crm-api` and `mcp-tools` binaries serve,
//! on loopback ports), `mandate serve --dev --config examples/gateway.toml` (the shipped
//! file, its upstream addresses pointed at those ports), and the demo agent's printed
//! credentials. The HTTP route allows a read thanks to its static `resource_attributes`
//! (before them, every request was 403 `policy_error`: `Crm::Contact` requires `team`),
//! injects the CRM's key and never the agent's token; a write is denied and never
//! arrives. The MCP server answers a raw JSON-RPC exchange through the gateway
//! (initialize, initialized, tools/list, tools/call), and the call the example policy
//! forbids never reaches it. The official MCP Python SDK client (the suite's pinned
//! `tests/interop/mcp_client.py`) works with `mcp-tools` directly and through the
//! gateway.

use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::Server;
use crate::mcp::{mcp_client, message, open_session, rpc_post, tool_call, venv_python};

/// Serves `app` on a loopback port; returns its base URL.
async fn serve(app: axum::Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

fn seen(s: &mandate_examples::Seen) -> String {
    s.lock().unwrap().join("\n")
}

/// The sample upstreams, and the shipped `examples/gateway.toml` pointed at them.
struct Demo {
    server: Server,
    _dir: tempfile::TempDir,
    crm_seen: mandate_examples::Seen,
    mcp_seen: mandate_examples::Seen,
    admin: String,
    agent: String,
    secret: String,
    gateway: String,
}

async fn demo() -> Demo {
    let (crm, crm_seen) = mandate_examples::crm::router();
    let (mcp, mcp_seen) = mandate_examples::mcp_tools::router();
    let crm_url = serve(crm).await;
    let mcp_url = serve(mcp).await;
    let shipped = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/gateway.toml"),
    )
    .unwrap();
    assert!(shipped.contains("http://127.0.0.1:9000/api"));
    assert!(shipped.contains("http://127.0.0.1:9100/mcp"));
    let config = shipped
        .replace("http://127.0.0.1:9000", &crm_url)
        .replace("http://127.0.0.1:9100", &mcp_url);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, config).unwrap();
    let server = Server::start_dev(
        &["--config", file.to_str().unwrap()],
        &[
            ("MANDATE_GATEWAY_LISTEN", "127.0.0.1:0"),
            ("TMPDIR", dir.path().to_str().unwrap()),
        ],
    );
    let vars = server.exports();
    let gateway = server.gateway_base();
    // The banner names each gateway resource (the lines after `gateway on …`).
    let hint = format!("(a token for it: -d resource={gateway}/mcp)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.stdout_text().contains(&hint) {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            server.stdout_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        server
            .stdout_text()
            .contains(&format!("(a token for it: -d resource={gateway}/crm)"))
    );
    Demo {
        admin: vars["MANDATE_TOKEN"].clone(),
        agent: vars["DEMO_AGENT"].clone(),
        secret: vars["DEMO_SECRET"].clone(),
        server,
        _dir: dir,
        crm_seen,
        mcp_seen,
        gateway,
    }
}

impl Demo {
    /// A token of the demo agent for the gateway resource `path`.
    async fn token_for(&self, path: &str) -> String {
        let resource = format!("{}{path}", self.gateway);
        let (st, tok) = self
            .server
            .token_basic(&self.agent, &self.secret, &[("resource", &resource)])
            .await;
        assert_eq!(st, 200, "{tok}");
        tok["access_token"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn the_http_route_of_the_shipped_demo_allows_a_read_with_a_static_attribute() {
    let d = demo().await;
    let (st, v) = d
        .server
        .admin(
            &d.admin,
            Method::PUT,
            "/v1/gateway/secrets/crm-key",
            Some(json!({"value": mandate_examples::crm::KEY})),
        )
        .await;
    assert!(st == 200 || st == 201 || st == 204, "{st} {v}");
    let access = d.token_for("/crm").await;
    let http = mandate_egress::default_builder().build().unwrap();

    let r = http
        .get(format!("{}/crm/contacts/c42", d.gateway))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "Ada Lovelace");
    let got = seen(&d.crm_seen);
    assert!(got.contains("crm-api: GET /api/contacts/c42"), "{got}");
    assert!(got.contains("authorization: Bearer demo-crm-key"), "{got}");
    assert!(got.contains("mandate-decision-id: "), "{got}");
    assert!(
        !got.contains(&access),
        "the agent's token never arrives: {got}"
    );
    assert!(!got.contains("access token (JWT) arrived"), "{got}");

    // A write: inside the demo boundary, but no policy permits it; nothing is sent.
    let r = http
        .post(format!("{}/crm/contacts/c42", d.gateway))
        .bearer_auth(&access)
        .json(&json!({"email": "ada@evil.example"}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!((status, &body["code"]), (403, &json!("denied")), "{body}");
    assert!(!seen(&d.crm_seen).contains("POST"), "{}", seen(&d.crm_seen));
}

#[tokio::test]
async fn the_mcp_tools_sample_answers_raw_json_rpc_through_the_gateway() {
    let d = demo().await;
    let access = d.token_for("/mcp").await;
    let http = mandate_egress::default_builder().build().unwrap();
    let url = format!("{}/mcp", d.gateway);

    let (sid, init) = open_session(&http, &url, &access).await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");

    let r = rpc_post(
        &http,
        &url,
        Some(&access),
        Some(&sid),
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .send()
    .await
    .unwrap();
    let list = message(r).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["tools__lookup_contact", "tools__add"],
        "the forbidden tool is not listed"
    );

    let r = rpc_post(
        &http,
        &url,
        Some(&access),
        Some(&sid),
        &tool_call(3, "tools__add", json!({"a": 2, "b": 3})),
    )
    .send()
    .await
    .unwrap();
    let added = message(r).await;
    assert_eq!(added["result"]["content"][0]["text"], "5", "{added}");

    let r = rpc_post(
        &http,
        &url,
        Some(&access),
        Some(&sid),
        &tool_call(4, "tools__delete_contact", json!({"id": "c42"})),
    )
    .send()
    .await
    .unwrap();
    let refused = message(r).await;
    assert_eq!(refused["error"]["code"], -32003, "{refused}");

    let got = seen(&d.mcp_seen);
    assert!(got.contains("-> ran `add`"), "{got}");
    assert!(!got.contains("delete_contact\""), "never forwarded: {got}");
    assert!(
        !got.contains(&access),
        "the agent's token never arrives: {got}"
    );
    assert!(!got.contains("authorization:"), "{got}");
}

/// Runs the SDK client off the runtime's threads (the upstreams are served on them).
async fn sdk_client(
    url: String,
    token: Option<String>,
    calls: Vec<(&'static str, Value)>,
) -> Value {
    tokio::task::spawn_blocking(move || {
        let python = venv_python().unwrap_or_else(|e| panic!("{e}"));
        mcp_client(&python, &url, token.as_deref(), &calls)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_mcp_tools_sample_works_with_the_official_sdk_client() {
    // Directly: the sample is a plain MCP server (no token needed).
    let (mcp, _) = mandate_examples::mcp_tools::router();
    let direct = format!("{}/mcp", serve(mcp).await);
    let report = sdk_client(direct, None, vec![("add", json!({"a": 1, "b": 2}))]).await;
    assert!(report.get("connect_error").is_none(), "{report:#}");
    assert!(report["protocol_version"].as_str().is_some(), "{report:#}");
    assert_eq!(report["calls"][0]["text"], json!(["3"]), "{report:#}");

    // Through the gateway, with the demo agent's token for it.
    let d = demo().await;
    let access = d.token_for("/mcp").await;
    let report = sdk_client(
        format!("{}/mcp", d.gateway),
        Some(access),
        vec![
            ("tools__lookup_contact", json!({"id": "c42"})),
            ("tools__delete_contact", json!({"id": "c42"})),
        ],
    )
    .await;
    assert!(report.get("connect_error").is_none(), "{report:#}");
    let calls = report["calls"].as_array().unwrap();
    assert_eq!(calls[0]["ok"], true, "{report:#}");
    assert!(
        calls[0]["text"][0]
            .as_str()
            .unwrap()
            .contains("Ada Lovelace"),
        "{report:#}"
    );
    assert_eq!(calls[1]["ok"], false, "{report:#}");
    assert_eq!(calls[1]["error"]["code"], -32003, "{report:#}");
    assert!(!seen(&d.mcp_seen).contains("ran `delete_contact`"));
}
