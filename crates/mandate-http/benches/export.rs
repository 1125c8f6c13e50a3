//! SIEM export throughput (issue 23): how fast one sink delivers a node's audit log of
//! `MANDATE_EXPORT_EVENTS` decision events (default 200,000) already in a real SQLite
//! store, through the real delivery loop (`mandate_service::export`), per sink:
//!
//! - `null`: a transport that accepts every batch at once: the loop's own cost (reading
//!   the log, parsing, filtering, the record), the baseline of the run;
//! - `file-jsonl`, `file-ocsf`: the file sink (JSON Lines, `fsync` per batch);
//! - `syslog-tcp-ocsf`: syslog over TCP (octet counting) to a loopback receiver that
//!   reads and discards, as a collector's socket does;
//! - `syslog-tls-ocsf`: the same over TLS (RFC 5425; `mandate-tls`'s client, rustls with
//!   ring) to a loopback rustls receiver with a certificate of a CA made here (rcgen),
//!   trusted through `ca_file`.
//!
//! Each sink starts from cursor 0 (its own name) and is timed until its cursor reaches
//! the end of the log. Printed: events/s per sink and its ratio to `null` in this run.
//! `cargo bench -p mandate-http --bench export`; results in BENCHMARKS.md.

#![expect(
    clippy::expect_used,
    clippy::print_stdout,
    clippy::disallowed_methods,
    reason = "benchmark: setup fails loudly, prints its results and times with the wall clock"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mandate_core::clock::SystemClock;
use mandate_core::random::OsRandom;
use mandate_http::export::{Item, Sending, SinkConfig, Transport};
use mandate_http::keys::{KeyFiles, KeyState};
use mandate_http::{Node, ServerConfig};
use mandate_store::Store;
use mandate_store::prelude::*;
use mandate_store_sqlite::SqliteStore;
use serde_json::json;
use tokio::io::AsyncReadExt as _;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Accepts every batch at once.
struct Null;

impl Transport for Null {
    fn send<'a>(&'a mut self, _: &'a [Item]) -> Sending<'a> {
        Box::pin(async { Ok(()) })
    }
}

fn config(dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        issuer: "http://mandate.bench".into(),
        default_audience: "https://api.bench".into(),
        default_token_lifetime_secs: 300,
        max_token_lifetime_secs: 3600,
        max_body_bytes: 64 * 1024,
        audit_key_path: dir.join("audit-key.pem"),
        checkpoint: mandate_http::audit::CheckpointPolicy {
            every_events: 1000,
            every_secs: 3600,
        },
        redact: Default::default(),
        mandates: Default::default(),
        users: Default::default(),
        dev_users: None,
        detect: Default::default(),
        ssf: Default::default(),
        max_staleness: mandate_http::freshness::DEFAULT_MAX_STALENESS,
        reviews: Default::default(),
        dpop: Default::default(),
        client_certs: Default::default(),
    }
}

fn sink(name: &str, text: &str) -> SinkConfig {
    toml::from_str(&format!("name = \"{name}\"\n{text}")).expect("sink table")
}

/// Delivers the whole log through `transport` as sink `cfg`; events per second.
async fn run(
    node: &Arc<Node>,
    store: &Arc<dyn Store>,
    cfg: SinkConfig,
    t: Box<dyn Transport>,
) -> f64 {
    let len = store.audit_len().expect("log length");
    let name = cfg.name.clone();
    let started = Instant::now();
    mandate_http::export::spawn(node, vec![(cfg, t)]);
    loop {
        let done = node
            .export
            .statuses(len)
            .iter()
            .any(|s| s.name == name && s.next >= len);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    len as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this with fewer events.
    let events: usize = std::env::var("MANDATE_EXPORT_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") {
            200_000
        } else {
            2_000
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("mandate.db")).expect("store"));
        let clock = Arc::new(SystemClock);
        let keys = KeyState::open(
            store.as_ref(),
            &KeyFiles::in_data_dir(dir.path()),
            clock.as_ref(),
            &OsRandom,
        )
        .expect("keys");
        let node = Arc::new(
            Node::new(
                Arc::clone(&store),
                keys,
                clock,
                Arc::new(OsRandom),
                config(dir.path()),
                Arc::new(mandate_http::webhook::Signed),
            )
            .expect("node"),
        );
        // The log: decision events as /v1/authorize records them.
        let filled = Instant::now();
        for chunk in 0..events.div_ceil(1000) {
            let drafts = (0..1000.min(events - chunk * 1000))
                .map(|i| {
                    let n = chunk * 1000 + i;
                    let mut e = node.event("decision");
                    e.request_id = Some(format!("req-{n:012}"));
                    e.agent = Some(format!("agt_01JA{:022}", n % 1000));
                    e.user = Some("alice@example.com".into());
                    e.action = Some("crm:read".into());
                    e.resource =
                        Some(json!({"type": "Crm::Contact", "id": format!("c-{}", n % 5000)}));
                    e.context = Some(json!({"data_class": "internal"}));
                    e.decision = Some(if n % 10 == 0 { "deny" } else { "allow" }.into());
                    e.policy_ids = vec!["team-reads-contacts".into()];
                    e.reasons = vec!["allowed_by_policy".into()];
                    e
                })
                .collect();
            for r in node.audit.record_all(drafts).await {
                r.expect("recorded");
            }
        }
        let len = store.audit_len().expect("len");
        println!(
            "log: {len} events (written in {:.1} s)",
            filled.elapsed().as_secs_f64()
        );
        // A loopback syslog receiver that reads and discards.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 16];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                });
            }
        });
        let (tls_addr, ca_file) = tls_receiver(dir.path()).await;
        let out = dir.path().join("export.jsonl");
        let null = run(
            &node,
            &store,
            sink("null", "type = \"webhook\"\nformat = \"ocsf\"\n"),
            Box::new(Null),
        )
        .await;
        println!(
            "{:<18} {:>10.0} events/s  1.000 x null",
            "null (ocsf)", null
        );
        let cases = [
            (
                "file-jsonl",
                format!("type = \"file\"\npath = \"{}\"\n", out.display()),
            ),
            (
                "file-ocsf",
                format!(
                    "type = \"file\"\nformat = \"ocsf\"\npath = \"{}.ocsf\"\n",
                    out.display()
                ),
            ),
            (
                "syslog-tcp-ocsf",
                format!("type = \"syslog\"\nformat = \"ocsf\"\naddress = \"{addr}\"\n"),
            ),
            (
                "syslog-tls-ocsf",
                format!(
                    "type = \"syslog\"\ntransport = \"tls\"\nformat = \"ocsf\"\n\
                     address = \"{tls_addr}\"\nca_file = \"{}\"\n",
                    ca_file.display()
                ),
            ),
        ];
        for (name, text) in cases {
            let cfg = sink(name, &text);
            let t = mandate_http::export_io::transport(&cfg)
                .expect("transport")
                .expect("transport");
            let rate = run(&node, &store, cfg, t).await;
            println!(
                "{name:<18} {rate:>10.0} events/s  {:.3} x null",
                rate / null
            );
        }
    });
}

/// A loopback syslog-over-TLS receiver that reads and discards: its address, and the CA
/// file (written in `dir`) that trusts its certificate.
async fn tls_receiver(dir: &std::path::Path) -> (std::net::SocketAddr, std::path::PathBuf) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("certificate");
    let ca_file = dir.join("bench-ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).expect("CA file");
    let config = rustls::ServerConfig::builder_with_provider(mandate_tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    (addr, ca_file)
}
