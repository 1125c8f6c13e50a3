//! TLS on the listeners, end to end with the real binary and certificates made here
//! (rcgen): curl, Python `requests` and Node's `fetch` each verify Mandate's certificate
//! against the test's CA and get a token from `/oauth/token` and a decision from
//! `/v1/authorize`, with every metadata URL `https://`; a client trusting another CA is
//! refused. SIGHUP serves a replaced certificate to the next connection and keeps the old
//! one when the new files are bad (logged, counted). A bad certificate or key refuses the
//! start, naming the file. Python `requests` authenticates with client certificates
//! (RFC 8705 §2: a client CA's, a registered self-signed one) and gets bound tokens.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::harness::{BIN, Server, data_dir};
use crate::interop_env::{interop_dir, node_cmd, python_cmd, run_until, venv_python};

const DEADLINE: Duration = Duration::from_secs(120);

/// A CA: its certificate (PEM) and what signs with it.
pub(crate) struct Ca {
    pub(crate) pem: String,
    issuer: Issuer<'static, KeyPair>,
}

pub(crate) fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let pem = p.self_signed(&key).unwrap().pem();
    Ca {
        pem,
        issuer: Issuer::new(p, key),
    }
}

/// A server certificate of `ca` for `localhost` and 127.0.0.1 (valid in `years`), and its
/// key.
pub(crate) fn leaf(ca: &Ca, years: (i32, i32)) -> (String, String) {
    let mut p =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    p.not_before = rcgen::date_time_ymd(years.0, 1, 1);
    p.not_after = rcgen::date_time_ymd(years.1, 12, 31);
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

pub(crate) fn write(path: &Path, text: &str, mode: u32) -> PathBuf {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_owned()
}

/// Writes `cert`/`key` to `dir`/tls.crt and tls.key and a config file naming them under
/// `[tls]`; the config file.
fn tls_files(dir: &Path, cert: &str, key: &str) -> PathBuf {
    let c = write(&dir.join("tls.crt"), cert, 0o644);
    let k = write(&dir.join("tls.key"), key, 0o600);
    write(
        &dir.join("mandate.toml"),
        &format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            c.display(),
            k.display()
        ),
        0o644,
    )
}

/// `curl --cacert ca ARGS…`: (exit code, stdout).
fn curl(ca: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30", "--cacert"])
        .arg(ca)
        .args(args)
        .output()
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn curl_python_and_node_verify_mandate_and_get_a_token_and_a_decision() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = ca("mandate test ca");
    let (cert, key) = leaf(&ours, (2020, 2040));
    let config = tls_files(tmp.path(), &cert, &key);
    let ca_file = write(&tmp.path().join("ca.pem"), &ours.pem, 0o644);
    let wrong_ca = write(&tmp.path().join("wrong.pem"), &ca("another ca").pem, 0o644);
    let server = Server::start_dev(&["--config", config.to_str().unwrap()], &[]);
    assert!(
        server.addr.starts_with("https://127.0.0.1:"),
        "{}",
        server.addr
    );
    let exports = server.exports();
    assert_eq!(exports["MANDATE_ADDR"], server.addr);
    let (agent, secret) = (&exports["DEMO_AGENT"], &exports["DEMO_SECRET"]);

    // curl: the metadata is https throughout, a token, an allow.
    let (code, meta) = curl(
        &ca_file,
        &[&server.url("/.well-known/oauth-authorization-server")],
    );
    assert_eq!(code, 0, "{meta}");
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["issuer"], server.addr.as_str());
    for k in ["token_endpoint", "jwks_uri", "introspection_endpoint"] {
        assert!(
            meta[k].as_str().unwrap().starts_with("https://"),
            "{k}: {meta}"
        );
    }
    let (code, oidc) = curl(
        &ca_file,
        &[&server.url("/.well-known/openid-configuration")],
    );
    if code == 0 && oidc.starts_with('{') {
        let oidc: serde_json::Value = serde_json::from_str(&oidc).unwrap();
        if let Some(jwks) = oidc["jwks_uri"].as_str() {
            assert!(jwks.starts_with("https://"), "{oidc}");
        }
    }
    let user = format!("{agent}:{secret}");
    let (code, token) = curl(
        &ca_file,
        &[
            "-u",
            &user,
            "-d",
            "grant_type=client_credentials",
            &server.url("/oauth/token"),
        ],
    );
    assert_eq!(code, 0, "{token}");
    let access = serde_json::from_str::<serde_json::Value>(&token).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, decision) = curl(
        &ca_file,
        &[
            "-H",
            &format!("Authorization: Bearer {access}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"action": "crm:read", "context": {"data_class": "internal"},
                "resource": {"type": "Crm::Contact", "id": "c42", "attributes": {"team": "sales"}}}"#,
            &server.url("/v1/authorize"),
        ],
    );
    assert_eq!(code, 0, "{decision}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&decision).unwrap()["decision"],
        "allow"
    );
    // Another CA: curl refuses the certificate (exit 60), nothing is sent.
    let (code, _) = curl(&wrong_ca, &[&server.url("/.well-known/jwks.json")]);
    assert_eq!(code, 60, "curl trusting another CA");
    // Plain HTTP to the TLS port gets no answer.
    let plain = server.addr.replace("https://", "http://");
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("{plain}/.well-known/jwks.json"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "plain HTTP was answered");

    // Python requests.
    let python =
        venv_python("interop-tls-venv", "requirements-tls.txt").unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = python_cmd(&python);
    cmd.arg(interop_dir().join("tls_requests.py"))
        .env("MANDATE_ADDR", &server.addr)
        .env("TLS_CA", &ca_file)
        .env("TLS_WRONG_CA", &wrong_ca)
        .env("DEMO_AGENT", agent)
        .env("DEMO_SECRET", secret)
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE");
    let (status, out, err) = run_until(&mut cmd, "tls_requests.py", DEADLINE);
    assert!(status.success() && out.contains("done"), "{out}\n{err}");

    // Node fetch, told of the CA by NODE_EXTRA_CA_CERTS; then of another CA only.
    for (extra, mode) in [(&ca_file, "ok"), (&wrong_ca, "refused")] {
        let mut cmd = node_cmd("node", &interop_dir());
        cmd.arg("tls_fetch.mjs")
            .arg(mode)
            .env("NODE_EXTRA_CA_CERTS", extra)
            .env("MANDATE_ADDR", &server.addr)
            .env("DEMO_AGENT", agent)
            .env("DEMO_SECRET", secret);
        let (status, out, err) = run_until(&mut cmd, "tls_fetch.mjs", DEADLINE);
        assert!(
            status.success() && out.contains("done"),
            "{mode}: {out}\n{err}"
        );
    }
}

/// The certificate a new TLS client (trusting `ca_pem`) is served at `addr`.
async fn served(addr: &str, ca_pem: &str) -> CertificateDer<'static> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(mandate_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr.trim_start_matches("https://"))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn sighup_serves_a_new_certificate_and_keeps_the_old_one_when_the_new_is_bad() {
    let tmp = tempfile::tempdir().unwrap();
    let (_d, dir) = data_dir();
    let ours = ca("mandate test ca");
    let (first, key) = leaf(&ours, (2020, 2040));
    let config = tls_files(tmp.path(), &first, &key);
    let ca_file = write(&tmp.path().join("ca.pem"), &ours.pem, 0o644);
    let server = Server::start(&dir, &["--config", config.to_str().unwrap()], &[]);
    assert_eq!(served(&server.addr, &ours.pem).await, der(&first));
    let hangup = || {
        let ok = Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.stderr_text().contains(what) {
            assert!(
                Instant::now() < deadline,
                "no `{what}` in: {}",
                server.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // A new certificate and key, then SIGHUP: the next connection gets it.
    let (second, key2) = leaf(&ours, (2021, 2041));
    tls_files(tmp.path(), &second, &key2);
    hangup();
    wait_for("TLS certificate reloaded");
    assert_eq!(served(&server.addr, &ours.pem).await, der(&second));

    // An expired certificate: refused, logged naming the file, counted; the second one
    // is still served.
    let (expired, key3) = leaf(&ours, (2010, 2011));
    tls_files(tmp.path(), &expired, &key3);
    hangup();
    wait_for("TLS certificate not reloaded");
    let log = server.stderr_text();
    let cert_path = tmp.path().join("tls.crt").display().to_string();
    assert!(
        log.contains("has expired") && log.contains(&cert_path),
        "{log}"
    );
    assert!(!log.contains("PRIVATE KEY"), "{log}");
    assert_eq!(served(&server.addr, &ours.pem).await, der(&second));
    let token = server.token.clone().unwrap();
    let (code, metrics) = curl(
        &ca_file,
        &[
            "-H",
            &format!("Authorization: Bearer {token}"),
            &server.url("/metrics"),
        ],
    );
    assert_eq!(code, 0, "{metrics}");
    assert!(
        metrics.contains(r#"mandate_tls_reloads_total{outcome="failed"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"mandate_tls_reloads_total{outcome="ok"} 1"#),
        "{metrics}"
    );
}

/// A refused start: (case, certificate (none: no file), key, key mode, the file the error
/// names, what it says).
type Case<'a> = (&'a str, Option<&'a str>, &'a str, u32, &'a str, &'a str);

#[test]
fn a_bad_certificate_or_key_refuses_the_start_naming_the_file() {
    let ours = ca("mandate test ca");
    let (good, key) = leaf(&ours, (2020, 2040));
    let (_, other_key) = leaf(&ours, (2020, 2040));
    let (expired, expired_key) = leaf(&ours, (2010, 2011));
    let (future, future_key) = leaf(&ours, (2090, 2095));
    // (case, certificate, key, key mode, the file named, what the error says)
    let cases: &[Case<'_>] = &[
        (
            "wrong key",
            Some(&good),
            &other_key,
            0o600,
            "tls.key",
            "not the key of",
        ),
        (
            "expired",
            Some(&expired),
            &expired_key,
            0o600,
            "tls.crt",
            "has expired",
        ),
        (
            "not yet valid",
            Some(&future),
            &future_key,
            0o600,
            "tls.crt",
            "not valid yet",
        ),
        (
            "unparsable",
            Some("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"),
            &key,
            0o600,
            "tls.crt",
            "PEM",
        ),
        (
            "missing",
            None,
            &key,
            0o600,
            "tls.crt",
            "reading `cert_file`",
        ),
        (
            "loose key",
            Some(&good),
            &key,
            0o644,
            "tls.key",
            "owner only",
        ),
    ];
    for (case, cert, key, mode, file, want) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let config = tls_files(tmp.path(), cert.unwrap_or(""), key);
        std::fs::set_permissions(
            tmp.path().join("tls.key"),
            std::fs::Permissions::from_mode(*mode),
        )
        .unwrap();
        if cert.is_none() {
            std::fs::remove_file(tmp.path().join("tls.crt")).unwrap();
        }
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(tmp.path().join("data"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("MANDATE_")) {
            cmd.env_remove(k);
        }
        let (status, out, err) = run_until(&mut cmd, "mandate serve", Duration::from_secs(60));
        assert!(!status.success(), "{case}: started\n{out}");
        let named = tmp.path().join(file).display().to_string();
        assert!(err.contains(&named) && err.contains(want), "{case}: {err}");
        assert!(err.contains("[tls]"), "{case}: the table is named: {err}");
        assert!(!out.contains("listening on"), "{case}: {out}");
        // Refused before the data dir is made: a first start's bootstrap token is never
        // created only to be lost unprinted.
        assert!(!tmp.path().join("data").exists(), "{case}: data dir made");
    }
}

/// A client certificate of `ca` with the URI SAN `uri` (client-authentication usage),
/// and its key (PEM).
fn client_leaf(ca: &Ca, uri: &str) -> (String, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// RFC 8705 §2 through the binary: `tls_client_auth` (a client CA and a credential naming
/// a URI SAN) and `self_signed_tls_client_auth` (a registered `x5c`), with Python
/// `requests` presenting the certificates (tests/interop/mtls_requests.py).
#[test]
fn python_requests_authenticates_with_client_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server_ca = ca("mandate test ca");
    let (cert, key) = leaf(&server_ca, (2020, 2040));
    let ca_file = write(&dir.join("ca.pem"), &server_ca.pem, 0o644);
    let clients = ca("agents ca");
    let client_ca = write(&dir.join("client-ca.pem"), &clients.pem, 0o644);
    let spiffe = "spiffe://example.org/agent/demo";
    let (pki_cert, pki_key) = client_leaf(&clients, spiffe);
    let (stranger_cert, stranger_key) = client_leaf(&ca("another ca"), spiffe);
    // P-256: ring writes Ed25519 keys as PKCS#8 v2, which Python's OpenSSL refuses to load.
    let self_key = KeyPair::generate().unwrap();
    let self_cert = CertificateParams::new(vec!["self.example".to_owned()])
        .unwrap()
        .self_signed(&self_key)
        .unwrap();
    let config = tls_files(dir, &cert, &key);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "client_auth = \"optional\"\nclient_ca_file = \"{}\"\n",
        client_ca.display()
    ));
    write(&config, &text, 0o644);
    let server = Server::start_dev(&["--config", config.to_str().unwrap()], &[]);
    let exports = server.exports();
    let (agent, admin) = (&exports["DEMO_AGENT"], &exports["MANDATE_TOKEN"]);
    let bearer = format!("Authorization: Bearer {admin}");
    let json_post = |path: &str, body: serde_json::Value| {
        let (code, out) = curl(
            &ca_file,
            &[
                "-H",
                &bearer,
                "-H",
                "Content-Type: application/json",
                "-d",
                &body.to_string(),
                &server.url(path),
            ],
        );
        assert_eq!(code, 0, "{out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let added = json_post(
        &format!("/v1/agents/{agent}/credentials"),
        serde_json::json!({"type": "tls_client_auth", "tls_client_auth_san_uri": spiffe}),
    );
    assert_eq!(
        added["credential"]["tls_client_auth_san_uri"], spiffe,
        "{added}"
    );
    let other = json_post(
        "/v1/agents",
        serde_json::json!({"name": "self-signed-agent", "owner": "alice@example.com"}),
    );
    let other = other["id"].as_str().unwrap().to_owned();
    let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
    let point = self_key.public_key_raw(); // 0x04 || x || y
    let url =
        |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
    let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": url(&point[1..33]),
                                 "y": url(&point[33..65]), "x5c": [b64(self_cert.der())]});
    let added = json_post(
        &format!("/v1/agents/{other}/credentials"),
        serde_json::json!({"type": "public_key", "jwk": jwk}),
    );
    assert_eq!(added["credential"]["type"], "public_key", "{added}");

    let file = |name: &str, text: &str| write(&dir.join(name), text, 0o600);
    let python =
        venv_python("interop-tls-venv", "requirements-tls.txt").unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = python_cmd(&python);
    cmd.arg(interop_dir().join("mtls_requests.py"))
        .env("MANDATE_ADDR", &server.addr)
        .env("TLS_CA", &ca_file)
        .env("PKI_AGENT", agent)
        .env("SELF_AGENT", &other)
        .env("PKI_CERT", file("pki.crt", &pki_cert))
        .env("PKI_KEY", file("pki.key", &pki_key))
        .env("SELF_CERT", file("self.crt", &self_cert.pem()))
        .env("SELF_KEY", file("self.key", &self_key.serialize_pem()))
        .env("STRANGER_CERT", file("stranger.crt", &stranger_cert))
        .env("STRANGER_KEY", file("stranger.key", &stranger_key))
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE");
    let (status, out, err) = run_until(&mut cmd, "mtls_requests.py", DEADLINE);
    assert!(status.success() && out.contains("done"), "{out}\n{err}");
    // Each refusal is on the record as a token.refused event.
    let (code, events) = curl(
        &ca_file,
        &[
            "-H",
            &bearer,
            &server.url("/v1/audit/events?kind=token.refused"),
        ],
    );
    assert_eq!(code, 0, "{events}");
    let events: serde_json::Value = serde_json::from_str(&events).unwrap();
    assert!(events["items"].as_array().unwrap().len() >= 3, "{events}");
}
