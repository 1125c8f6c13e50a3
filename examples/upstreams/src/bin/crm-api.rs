//! `crm-api`: a tiny CRM HTTP API to put behind Mandate's HTTP gateway
//! (`examples/gateway.toml`, route `/crm`). Contacts live in memory:
//! `GET /api/contacts`, `GET /api/contacts/{id}`, `POST`/`PUT /api/contacts/{id}` (a JSON
//! object merged into the contact). It requires the API key the gateway injects
//! (`Authorization: Bearer demo-crm-key`: the gateway secret `crm-key` holds it) and
//! prints every request it receives.
//!
//! `cargo run -p mandate-examples --bin crm-api [-- --listen 127.0.0.1:9000]`

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let (app, _) = mandate_examples::crm::router();
    mandate_examples::run("crm-api", "127.0.0.1:9000", app, |a| {
        format!(
            "crm-api listening on http://{a}/api (API key `{}`; contacts c42, c7)",
            mandate_examples::crm::KEY
        )
    })
    .await
}
