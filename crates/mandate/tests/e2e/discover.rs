//! Discovery against a real `mandate serve`: `mandate discover kubernetes` with a
//! `kubectl get pods -o json` file and from standard input, `--register` drafting the
//! unregistered, a second run reporting them matched; and the scheduled job against a
//! Kubernetes API server the test runs on loopback over HTTPS (rcgen certificates), which
//! checks the bearer token and the label selector and serves `PodList` and
//! `ServiceAccountList` documents (mandate-govern's fixtures, written from the API
//! reference). A source whose CA bundle, token file or selector is bad stops the start.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{BIN, Server, cli, data_dir};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../mandate-govern/tests/data/discover"
);

fn fixture(case: &str) -> PathBuf {
    Path::new(FIXTURES).join(case).join("input.json")
}

/// `mandate discover ARGS…` with `input` on standard input.
fn cli_stdin(addr: &str, token: &str, args: &[&str], input: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("MANDATE_ADDR", addr)
        .env("MANDATE_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn mandate_discover_registers_drafts_and_the_next_run_matches_them() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let file = fixture("kubectl_pods");
    let file = file.to_str().unwrap();

    let (code, out, err) = cli(
        &s.addr,
        &admin,
        &["discover", "kubernetes", "--file", file, "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let run: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(run["selector"], "app=ai-agent", "{run}");
    assert_eq!(run["counts"]["shadows"], 2, "{run}");
    assert_eq!(run["counts"]["registered"], 0, "{run}");

    let (code, out, err) = cli(
        &s.addr,
        &admin,
        &["discover", "kubernetes", "--file", file, "--register"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("registered 1"), "{out}");
    let draft = out
        .lines()
        .find_map(|l| l.strip_prefix("registered agt_"))
        .map(|rest| format!("agt_{}", rest.split_whitespace().next().unwrap()))
        .unwrap_or_else(|| panic!("no draft in: {out}"));
    let (st, agent) = s
        .admin(
            &admin,
            reqwest::Method::GET,
            &format!("/v1/agents/{draft}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{agent}");
    assert_eq!(agent["status"], "suspended", "{agent}");
    assert_eq!(agent["name"], "scraper", "{agent}");

    // The second run, the document on standard input: matched, nothing new.
    let input = std::fs::read(file).unwrap();
    let (code, out, err) = cli_stdin(
        &s.addr,
        &admin,
        &["discover", "kubernetes", "-", "--register", "--json"],
        &input,
    );
    assert_eq!(code, 0, "{err}");
    let run: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(run["counts"]["registered"], 0, "{run}");
    assert_eq!(run["matched"][0]["agent"], draft.as_str(), "{run}");
    assert_eq!(run["matched"][0]["rule"], "labels", "{run}");

    // A document that does not read: the server's code, exit 1, nothing recorded.
    let (code, _, err) = cli_stdin(&s.addr, &admin, &["discover", "aws"], b"[{\"x\": ");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not JSON"), "{err}");
    let runs = s.audit_events(&admin, "discovery.run", None).await;
    assert_eq!(runs.len(), 3);
    // An auditor may not run discovery.
    let (st, made) = s
        .admin(
            &admin,
            reqwest::Method::POST,
            "/v1/admin-tokens",
            Some(serde_json::json!({"name": "aud", "role": "auditor"})),
        )
        .await;
    assert_eq!(st, 201, "{made}");
    let (code, _, err) = cli(
        &s.addr,
        made["token"].as_str().unwrap(),
        &["discover", "kubernetes", "--file", file],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("forbidden") || err.contains("403"), "{err}");
}

/// A CA the test made, and a server certificate of it for `localhost`.
fn pki(dir: &Path) -> (PathBuf, String, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "test cluster CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = p.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(p, ca_key);
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let ca_file = dir.join("ca.crt");
    std::fs::write(&ca_file, ca_pem).unwrap();
    (ca_file, cert.pem(), key.serialize_pem())
}

/// What the fake API server saw: each request's target and `Authorization` header.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

#[expect(
    deprecated,
    reason = "ring's provider, as mandate-tls uses (DESIGN.md: no aws-lc)"
)]
/// A Kubernetes API server on 127.0.0.1 over TLS: `GET /api/v1/pods` and
/// `/api/v1/serviceaccounts` with the right bearer token and `labelSelector=app=ai-agent`
/// answer the fixtures; anything else 401 or 400.
async fn fake_api(cert_pem: String, key_pem: String, token: &'static str) -> (u16, Seen) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let pods = std::fs::read(fixture("pod_list")).unwrap();
    let accounts = std::fs::read(fixture("serviceaccount_list")).unwrap();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let (pods, accounts, record) = (pods.clone(), accounts.clone(), Arc::clone(&record));
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let target = text
                    .lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("")
                    .to_owned();
                let auth = text
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("authorization")
                            .then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default();
                record.lock().unwrap().push((target.clone(), auth.clone()));
                let (status, body) = if auth != format!("Bearer {token}") {
                    (
                        "401 Unauthorized",
                        br#"{"kind":"Status","code":401}"#.to_vec(),
                    )
                } else if target == "/api/v1/pods?labelSelector=app%3Dai-agent" {
                    ("200 OK", pods)
                } else if target == "/api/v1/serviceaccounts?labelSelector=app%3Dai-agent" {
                    ("200 OK", accounts)
                } else {
                    (
                        "400 Bad Request",
                        br#"{"kind":"Status","code":400}"#.to_vec(),
                    )
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(&body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, seen)
}

fn source_config(dir: &Path, port: u16, ca_file: &Path, token_file: &Path, extra: &str) -> PathBuf {
    let p = dir.join("mandate.toml");
    std::fs::write(
        &p,
        format!(
            "[[discovery.sources]]\nname = \"cluster\"\nsource = \"kubernetes\"\nevery = 10\n\
             register = true\nkubernetes_api = \"https://localhost:{port}\"\n\
             token_file = \"{}\"\nca_file = \"{}\"\n{extra}",
            token_file.display(),
            ca_file.display()
        ),
    )
    .unwrap();
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduled_job_reads_the_kubernetes_api_over_tls_and_records_each_run() {
    let (t, dir) = data_dir();
    let (ca_file, cert, key) = pki(t.path());
    let token_file = t.path().join("token");
    std::fs::write(&token_file, "sa-token-123\n").unwrap();
    let (port, seen) = fake_api(cert, key, "sa-token-123").await;
    let conf = source_config(t.path(), port, &ca_file, &token_file, "");
    let s = Server::start(&dir, &[], &[("MANDATE_CONFIG", conf.to_str().unwrap())]);
    let admin = s.token.clone().unwrap();

    // The first tick is at start.
    let deadline = Instant::now() + Duration::from_secs(20);
    let runs = loop {
        let runs = s.audit_events(&admin, "discovery.run", None).await;
        if !runs.is_empty() {
            break runs;
        }
        let failed = s.audit_events(&admin, "discovery.failed", None).await;
        assert!(failed.is_empty(), "{failed:?}");
        assert!(Instant::now() < deadline, "no run: {}", s.stderr_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let d = &runs[0]["details"];
    assert_eq!(runs[0]["actor"], "discovery", "{d}");
    assert_eq!(d["trigger"], "scheduled", "{d}");
    assert_eq!(d["selector"], "app=ai-agent", "{d}");
    // The pod links an agent that is not registered; the service account names its
    // owner and is registered as a draft.
    assert_eq!(d["counts"]["found"], 2, "{d}");
    assert_eq!(d["counts"]["registered"], 1, "{d}");
    // Shadows by item: the service account (namespace `agents`) before the pod (`ops`).
    assert_eq!(d["shadows"][0]["reason"], "unregistered", "{d}");
    assert_eq!(d["shadows"][1]["reason"], "unknown_agent", "{d}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (
                "/api/v1/pods?labelSelector=app%3Dai-agent".to_owned(),
                "Bearer sa-token-123".to_owned()
            ),
            (
                "/api/v1/serviceaccounts?labelSelector=app%3Dai-agent".to_owned(),
                "Bearer sa-token-123".to_owned()
            ),
        ]
    );
    let drafts = s.audit_events(&admin, "agent.registered", None).await;
    assert_eq!(drafts.len(), 1);
    assert_eq!(drafts[0]["details"]["owner"], "carol@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_the_api_refuses_is_a_recorded_failure_not_a_crash() {
    let (t, dir) = data_dir();
    let (ca_file, cert, key) = pki(t.path());
    let token_file = t.path().join("token");
    std::fs::write(&token_file, "the-wrong-token\n").unwrap();
    let (port, _) = fake_api(cert, key, "sa-token-123").await;
    let conf = source_config(t.path(), port, &ca_file, &token_file, "");
    let s = Server::start(&dir, &[], &[("MANDATE_CONFIG", conf.to_str().unwrap())]);
    let admin = s.token.clone().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let failed = loop {
        let failed = s.audit_events(&admin, "discovery.failed", None).await;
        if !failed.is_empty() {
            break failed;
        }
        assert!(Instant::now() < deadline, "no failure: {}", s.stderr_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let d = &failed[0]["details"];
    assert_eq!(d["stage"], "fetch", "{d}");
    assert_eq!(d["code"], "http_status", "{d}");
    assert!(d["message"].as_str().unwrap().contains("401"), "{d}");
    assert!(!d.to_string().contains("the-wrong-token"), "{d}");
    // Still serving.
    let (st, _) = s
        .admin(&admin, reqwest::Method::GET, "/v1/agents", None)
        .await;
    assert_eq!(st, 200);
}

#[test]
fn a_bad_source_stops_the_start_with_a_clear_error() {
    let (t, dir) = data_dir();
    let (ca_file, _, _) = pki(t.path());
    let token_file = t.path().join("token");
    std::fs::write(&token_file, "tok\n").unwrap();
    let junk = t.path().join("junk.pem");
    std::fs::write(&junk, "not PEM\n").unwrap();
    let cases: [(PathBuf, PathBuf, &str, &str); 4] = [
        (junk.clone(), token_file.clone(), "", "`ca_file`"),
        (
            ca_file.clone(),
            t.path().join("missing-token"),
            "",
            "`token_file`",
        ),
        (
            ca_file.clone(),
            token_file.clone(),
            "selector = \"a=b=c\"\n",
            "`selector`",
        ),
        (ca_file, token_file, "every = 1\n", "`every`"),
    ];
    for (ca, token, extra, want) in cases {
        let conf = source_config(t.path(), 6443, &ca, &token, "");
        if !extra.is_empty() {
            // Replace the key the case changes.
            let key = extra.split(" =").next().unwrap();
            let text = std::fs::read_to_string(&conf).unwrap();
            let text: String = text
                .lines()
                .filter(|l| !l.starts_with(&format!("{key} =")))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(&conf, format!("{text}{extra}")).unwrap();
        }
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .env("MANDATE_CONFIG", &conf)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{want}: {err}");
        assert!(err.contains("discovery source `cluster`"), "{want}: {err}");
        assert!(err.contains(want), "{want}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
