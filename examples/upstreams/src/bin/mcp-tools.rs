//! `mcp-tools`: a tiny MCP tool server to put behind Mandate's MCP gateway
//! (`examples/gateway.toml`, server `tools`). Streamable HTTP at `POST /mcp`, answering
//! in JSON (no SSE): `initialize` (protocol version negotiated: the client's if known,
//! else the newest here; an `Mcp-Session-Id` is issued, and requests may come without
//! one), `notifications/initialized`, `ping`, `tools/list`, `tools/call`. `GET` and
//! `DELETE /mcp` are 405: no server-initiated stream, sessions just expire with the
//! process. Three tools: `lookup_contact`, `add`, and `delete_contact` — which the
//! example policy (`examples/mcp/policies.cedar`) forbids, so its call never arrives
//! here through the gateway. Prints every message it receives.
//!
//! `cargo run -p mandate-examples --bin mcp-tools [-- --listen 127.0.0.1:9100]`

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let (app, _) = mandate_examples::mcp_tools::router();
    mandate_examples::run("mcp-tools", "127.0.0.1:9100", app, |a| {
        format!(
            "mcp-tools listening on http://{a}/mcp (tools: lookup_contact, add, delete_contact)"
        )
    })
    .await
}
