//! Interoperability with third-party OAuth clients: Python `authlib` (client credentials
//! with `client_secret_basic`, `client_secret_post` and `private_key_jwt` signed
//! `Ed25519`; RFC 8693 token exchange for a mandate), `PyJWT`'s `PyJWKClient` verifying
//! the access tokens against the JWKS, and `joserfc` verifying them without a
//! `SecurityWarning` when Mandate signs under RFC 9864's `Ed25519` name. The checks live
//! in `tests/interop/oauth_clients.py`, `tests/interop/token_exchange.py` and
//! `tests/interop/joserfc_ed25519.py`; these tests give them a venv with the versions
//! pinned in `tests/interop/requirements.txt` and a running server. (The MCP Python SDK's
//! own OAuth providers are tested in `mcp.rs`, with its venv.)

use crate::harness::{Server, data_dir};
use crate::interop_env::{interop_dir, python_cmd, show, venv_python};

/// Runs `tests/interop/{script}` against `server` (MANDATE_ADDR, MANDATE_TOKEN = its
/// bootstrap token); it must exit 0 and print `done`.
fn run_script(server: &Server, script: &str, done: &str) {
    let python = venv_python("interop-venv", "requirements.txt").unwrap_or_else(|e| panic!("{e}"));
    let token = server.token.clone().expect("a bootstrap token");
    let out = python_cmd(&python)
        .arg(interop_dir().join(script))
        .env("MANDATE_ADDR", &server.addr)
        .env("MANDATE_TOKEN", &token)
        .output()
        .unwrap();
    let report = show(&out);
    println!("{report}");
    assert!(
        out.status.success(),
        "{script} failed:\n{report}\n--- server stderr\n{}",
        server.stderr_text()
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(done),
        "{report}"
    );
}

#[test]
fn authlib_and_pyjwt_interoperate() {
    let (_t, dir) = data_dir();
    let server = Server::start(&dir, &[], &[]);
    run_script(&server, "oauth_clients.py", "all interop checks passed");
}

/// Issue 19: with `token.signing_alg = "Ed25519"`, joserfc verifies Mandate's access
/// tokens with no `SecurityWarning`, and Ed25519-named client assertions it signs work.
#[test]
fn joserfc_verifies_ed25519_tokens_without_a_warning() {
    let (_t, dir) = data_dir();
    let server = Server::start(&dir, &[], &[("MANDATE_TOKEN_SIGNING_ALG", "Ed25519")]);
    run_script(&server, "joserfc_ed25519.py", "all joserfc checks passed");
}

#[test]
fn authlib_exchanges_a_user_token_for_a_mandate_token() {
    let (_t, dir) = data_dir();
    let server = Server::start(&dir, &[], &[("MANDATE_DEV_USER_TOKENS", "true")]);
    run_script(
        &server,
        "token_exchange.py",
        "all token exchange checks passed",
    );
}

/// Issue 25 (DPoP, RFC 9449): proofs made by an independent implementation (Python
/// `cryptography`, the JWS and the RFC 7638 thumbprint assembled in
/// `tests/interop/dpop_client.py`) get bound tokens and pass at `/v1/authorize` and the
/// HTTP gateway; a replayed proof, a wrong `htm` or `htu` and the bound token presented
/// as `Bearer` are refused at both.
// Multi-threaded: the Python client runs synchronously on this thread while the
// upstream answers the gateway from another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_dpop_client_binds_and_is_held_to_its_key() {
    let up = crate::gateway::upstream(crate::gateway::Seen::default()).await;
    let (_t, dir) = data_dir();
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("mandate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[gateway]
listen = "127.0.0.1:0"

[[gateway.routes]]
prefix = "/crm"
upstream = "{up}/api"
actions = {{ GET = "crm:read" }}
resource_type = "Crm::Contact"
resource_id = "{{path.1}}"
context = {{ data_class = "internal" }}
"#
        ),
    )
    .unwrap();
    let server = Server::start(&dir, &["--config", config.to_str().unwrap()], &[]);
    let admin = server.token.clone().expect("a bootstrap token");
    server
        .activate_policies(&admin, crate::gateway::POLICIES, crate::gateway::SCHEMA)
        .await;
    let python = venv_python("interop-venv", "requirements.txt").unwrap_or_else(|e| panic!("{e}"));
    let out = python_cmd(&python)
        .arg(interop_dir().join("dpop_client.py"))
        .env("MANDATE_ADDR", &server.addr)
        .env("MANDATE_TOKEN", &admin)
        .env("MANDATE_GATEWAY", server.gateway_base())
        .output()
        .unwrap();
    let report = show(&out);
    println!("{report}");
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("all dpop checks passed"),
        "dpop_client.py failed:\n{report}\n--- server stderr\n{}",
        server.stderr_text()
    );
}
