//! The practical ceiling for `bench/http.sh`: a hello-world server on Mandate's own HTTP
//! stack (axum + tokio, the workspace versions and features, the same multi-threaded
//! runtime and allocator), with one route shaped like `POST /v1/authorize` — it parses the JSON body
//! and answers a small decision-like JSON — and nothing else: no auth, no policy, no
//! audit. Binds 127.0.0.1:0 (or the first argument) and prints `http://<addr>`.
//!
//!     cargo build --release -p mandate-http --example hello
//!     target/release/examples/hello [127.0.0.1:0]

use std::io::Write as _;

/// The allocator `mandate serve` uses, so the ceiling runs on the same stack.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use axum::{Json, Router, routing::post};
use serde_json::{Value, json};

async fn authorize(Json(req): Json<Value>) -> Json<Value> {
    let allow = req.get("action").is_some();
    Json(json!({
        "decision": if allow { "allow" } else { "deny" },
        "reasons": [],
        "policy_ids": ["team-reads-contacts"],
        "decision_id": "evt_01HELLOWORLD0000000000000",
    }))
}

fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "http://{}", listener.local_addr()?)?;
            out.flush()?;
            drop(out);
            let app = Router::new().route("/v1/authorize", post(authorize));
            axum::serve(listener, app).await
        })
}
