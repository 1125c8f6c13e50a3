//! Outbound TLS and plain HTTP through the real binary (issue 25): a configured
//! `http://` target off the machine stops `mandate serve` with the key named; a trusted
//! issuer whose `jwks_uri` cannot be reached does not stop the node (its fetches are
//! counted as failed); the CLI's `--ca-file` is checked before any call.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{BIN, Server, cli, data_dir};

/// Each target's plain-HTTP URL to another host is a start error naming the key.
#[test]
fn plain_http_off_the_machine_stops_the_start() {
    let (t, dir) = data_dir();
    let secret = t.path().join("secret");
    std::fs::write(&secret, "a-webhook-secret-of-24-chars\n").unwrap();
    let cases = [
        (
            format!(
                "[approvals]\nwebhook_url = \"http://hooks.example.com/m\"\nwebhook_secret_file = \"{}\"\n",
                secret.display()
            ),
            "`approvals.webhook_url`: plain `http://` to `hooks.example.com` is refused",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:0\"\n[[gateway.routes]]\nprefix = \"/crm\"\n\
             upstream = \"http://crm.example.com\"\naction = \"crm:read\"\n\
             resource_type = \"Crm::Contact\"\nresource_id = \"{path.1}\"\n"
                .to_owned(),
            "gateway route `/crm`: `upstream`: plain `http://` to `crm.example.com` is refused",
        ),
        (
            "[[trusted_issuers]]\nissuer = \"https://idp.example.com\"\naudience = \"m\"\n\
             jwks_uri = \"http://idp.example.com/jwks\"\n"
                .to_owned(),
            "`jwks_uri`: plain `http://` to `idp.example.com` is refused",
        ),
    ];
    for (text, want) in cases {
        let conf = t.path().join("m.toml");
        std::fs::write(&conf, text).unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .env("MANDATE_CONFIG", &conf)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{want}: {err}");
        assert!(err.contains(want), "{want}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// An IdP that cannot be reached at start leaves the node serving; the failed fetches
/// show in `/metrics`.
#[tokio::test]
async fn an_unreachable_idp_does_not_stop_the_node() {
    let (t, dir) = data_dir();
    let conf = t.path().join("m.toml");
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    std::fs::write(
        &conf,
        "[[trusted_issuers]]\nissuer = \"https://idp.example.com\"\naudience = \"m\"\n\
         jwks_uri = \"https://127.0.0.1:9/jwks\"\njwks_refetch_min_secs = 1\n",
    )
    .unwrap();
    let conf = conf.display().to_string();
    let s = Server::start(&dir, &[], &[("MANDATE_CONFIG", conf.as_str())]);
    let admin = s.token.clone().unwrap();
    let want =
        "mandate_jwks_fetches_total{issuer=\"https://idp.example.com\",outcome=\"unreachable\"}";
    let start = Instant::now();
    loop {
        let (_, text) = metrics(&s, &admin).await;
        if text
            .lines()
            .any(|l| l.starts_with(want) && !l.ends_with(" 0"))
        {
            assert!(
                text.contains("mandate_jwks_usable_seconds{issuer=\"https://idp.example.com\"} 0"),
                "{text}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = s
        .admin(&admin, reqwest::Method::GET, "/v1/agents", None)
        .await;
    assert_eq!(status, 200, "the node serves");
}

async fn metrics(s: &Server, admin: &str) -> (u16, String) {
    let r = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `--ca-file` that is missing or not PEM is a usage error (2) before any call.
#[test]
fn the_clis_ca_file_is_checked_before_any_call() {
    let (t, _dir) = data_dir();
    let junk = t.path().join("junk.pem");
    std::fs::write(&junk, "not PEM\n").unwrap();
    for (file, want) in [
        (t.path().join("missing.pem"), "reading `ca_file`"),
        (junk, "`ca_file`"),
    ] {
        let f = file.display().to_string();
        let (code, _, err) = cli(
            "https://127.0.0.1:9",
            "mdt_admin_x",
            &["agent", "list", "--ca-file", &f],
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(want), "{err}");
    }
}

/// An OTLP/HTTP collector over TLS on 127.0.0.1 with `cert`/`key` (PEM): the request
/// paths it was sent, in order.
async fn tls_collector(
    cert: &str,
    key: &str,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let certs = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(mandate_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let paths = std::sync::Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, paths) = (acceptor.clone(), std::sync::Arc::clone(&paths));
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // Requests one after another on the kept-alive connection.
                let mut buf = Vec::new();
                loop {
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        let mut chunk = [0u8; 4096];
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                    paths.lock().unwrap().push(path);
                    buf.drain(..head_end + len);
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if tls.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

/// The OTLP exporter is a TLS client like every other: it trusts
/// `telemetry.otlp_ca_file` (not the system's roots), and a collector whose certificate
/// chains elsewhere is sent nothing (the node keeps serving).
#[tokio::test(flavor = "multi_thread")]
async fn an_otlp_collector_over_tls_is_trusted_by_its_configured_ca_only() {
    use crate::tls::{ca, leaf, write};
    let t = tempfile::tempdir().unwrap();
    let ours = ca("collector ca");
    let (cert, key) = leaf(&ours, (2020, 2040));
    let ca_file = write(&t.path().join("ca.pem"), &ours.pem, 0o644);
    let other = write(&t.path().join("other.pem"), &ca("another ca").pem, 0o644);
    for (trusted, want_spans) in [(&ca_file, true), (&other, false)] {
        let (port, seen) = tls_collector(&cert, &key).await;
        let (_d, dir) = data_dir();
        let conf = t.path().join("m.toml");
        std::fs::write(
            &conf,
            format!(
                "[telemetry]\notlp_endpoint = \"https://127.0.0.1:{port}/v1/traces\"\n\
                 otlp_ca_file = \"{}\"\nsampling_ratio = 1.0\n",
                trusted.display()
            ),
        )
        .unwrap();
        let s = Server::start(&dir, &["--config", conf.to_str().unwrap()], &[]);
        let admin = s.token.clone().unwrap();
        let (agent, _) = s.agent_with_secret(&admin, "traced").await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let res = s
                .http
                .post(s.url("/v1/authorize"))
                .bearer_auth(&admin)
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .json(
                    &serde_json::json!({"principal": agent, "action": "crm:read",
                    "resource": {"type": "Crm::Contact", "id": "c1"}}),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "the node serves either way");
            let got = seen.lock().unwrap().clone();
            if !got.is_empty() || Instant::now() > deadline || !want_spans {
                if want_spans {
                    assert!(got.iter().all(|p| p == "/v1/traces"), "{got:?}");
                    assert!(!got.is_empty(), "no spans reached the collector");
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if !want_spans {
            // Several export flushes' worth of time: nothing got through the handshake.
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert!(
                seen.lock().unwrap().is_empty(),
                "a collector of another CA was sent spans"
            );
        }
    }
}
