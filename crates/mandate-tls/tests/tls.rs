//! The TLS client against a real rustls server on loopback, with certificates made here
//! (rcgen): what it trusts, the names it checks, mutual TLS; and every settings error a
//! start can meet, each a `TlsError` naming the setting, never a panic. The listeners'
//! side (`mandate_tls::server`) is tested in `server.rs`.
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test: a failed step fails the test loudly"
)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[path = "tls/server.rs"]
mod server;

#[path = "tls/client_cert.rs"]
mod client_cert;

use mandate_tls::{Client, Settings, TlsError, host_port};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A CA: its certificate (PEM) and what signs with it.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
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

/// A certificate of `ca` for `names` (and its key), valid now unless `expired`.
fn leaf(ca: &Ca, names: &[&str], expired: bool) -> (String, String) {
    let mut p =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, names[0]);
    if expired {
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// A rustls server on loopback with `cert`/`key`, requiring a client certificate of
/// `client_ca` when given; it echoes one line. Its port.
async fn server(cert: &str, key: &str, client_ca: Option<&str>) -> u16 {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let builder = rustls::ServerConfig::builder_with_provider(mandate_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let config = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                mandate_tls::provider(),
            )
            .build()
            .unwrap();
            builder
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)
                .unwrap()
        }
        None => builder
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    let mut buf = [0u8; 64];
                    if let Ok(n) = tls.read(&mut buf).await {
                        let _ = tls.write_all(&buf[..n]).await;
                        let _ = tls.shutdown().await;
                    }
                }
            });
        }
    });
    port
}

/// Connects with `settings` to `host` at `port`, sends a line and reads it back: the
/// error text when any step fails.
async fn talk(settings: &Settings, host: &str, port: u16) -> Result<(), String> {
    let client = Client::new(settings).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut tls = client.connect(host, tcp).await.map_err(|e| e.to_string())?;
    tls.write_all(b"hello\n").await.map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    tls.read_to_end(&mut got).await.map_err(|e| e.to_string())?;
    assert_eq!(got, b"hello\n");
    Ok(())
}

#[tokio::test]
async fn the_client_trusts_its_ca_file_checks_the_name_and_presents_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ours = ca("ours");
    let theirs = ca("theirs");
    let ca_file = write(dir.path(), "ca.pem", &ours.pem, 0o644);
    let trusting = Settings {
        ca_file: Some(ca_file.clone()),
        ..Settings::default()
    };
    let (cert, key) = leaf(&ours, &["siem.test", "127.0.0.1"], false);
    let port = server(&cert, &key, None).await;
    // The name in the certificate, as a DNS name or as the IP address connected to.
    talk(&trusting, "siem.test", port).await.unwrap();
    talk(&trusting, "127.0.0.1", port).await.unwrap();
    // Another name: refused, and `server_name` makes the right one be asked for.
    let e = talk(&trusting, "other.test", port).await.unwrap_err();
    assert!(e.contains("not valid for name \"other.test\""), "{e}");
    let renamed = Settings {
        server_name: Some("siem.test".into()),
        ..trusting.clone()
    };
    talk(&renamed, "other.test", port).await.unwrap();

    // Signed by a CA the client does not trust (and `ca_file` replaces the system's).
    let (cert, key) = leaf(&theirs, &["siem.test"], false);
    let port = server(&cert, &key, None).await;
    let e = talk(&trusting, "siem.test", port).await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");

    // Expired.
    let (cert, key) = leaf(&ours, &["siem.test"], true);
    let port = server(&cert, &key, None).await;
    let e = talk(&trusting, "siem.test", port).await.unwrap_err();
    assert!(e.contains("certificate expired"), "{e}");

    // Mutual TLS: a server that requires a client certificate of its CA.
    let (cert, key) = leaf(&ours, &["siem.test"], false);
    let port = server(&cert, &key, Some(&ours.pem)).await;
    assert!(talk(&trusting, "siem.test", port).await.is_err());
    let (ccert, ckey) = leaf(&ours, &["mandate-node"], false);
    let with_identity = Settings {
        client_cert_file: Some(write(dir.path(), "client.pem", &ccert, 0o644)),
        client_key_file: Some(write(dir.path(), "client.key", &ckey, 0o600)),
        ..trusting.clone()
    };
    talk(&with_identity, "siem.test", port).await.unwrap();
    // A client certificate of another CA is refused by that server.
    let (ccert, ckey) = leaf(&theirs, &["mandate-node"], false);
    let stranger = Settings {
        client_cert_file: Some(write(dir.path(), "stranger.pem", &ccert, 0o644)),
        client_key_file: Some(write(dir.path(), "stranger.key", &ckey, 0o600)),
        ..trusting
    };
    assert!(talk(&stranger, "siem.test", port).await.is_err());
}

/// Every settings error a start can meet: a stable error naming the setting.
#[test]
fn bad_settings_are_errors_that_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ours = ca("ours");
    let (cert, key) = leaf(&ours, &["mandate-node"], false);
    let (_, other_key) = leaf(&ours, &["someone-else"], false);
    let ca_file = write(d, "ca.pem", &ours.pem, 0o644);
    let cert_file = write(d, "client.pem", &cert, 0o644);
    let key_file = write(d, "client.key", &key, 0o600);
    let with = |f: &dyn Fn(&mut Settings)| {
        let mut s = Settings {
            ca_file: Some(ca_file.clone()),
            client_cert_file: Some(cert_file.clone()),
            client_key_file: Some(key_file.clone()),
            server_name: None,
        };
        f(&mut s);
        s
    };
    let cases: Vec<(&str, Settings, &str)> = vec![
        (
            "a missing CA bundle",
            with(&|s| s.ca_file = Some(d.join("nope.pem"))),
            "reading `ca_file`",
        ),
        (
            "a CA bundle that is not PEM",
            with(&|s| s.ca_file = Some(write(d, "junk.pem", "not a certificate\n", 0o644))),
            "`ca_file`",
        ),
        (
            "a CA bundle whose certificate does not parse",
            with(&|s| {
                s.ca_file = Some(write(
                    d,
                    "bad.pem",
                    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                    0o644,
                ));
            }),
            "not a usable CA certificate",
        ),
        (
            "a CA bundle with a key instead of a certificate",
            with(&|s| s.ca_file = Some(write(d, "key-as-ca.pem", &key, 0o600))),
            "holds no PEM certificate",
        ),
        (
            "a CA bundle that is not a regular file (a device: read, it never ends)",
            with(&|s| s.ca_file = Some(PathBuf::from("/dev/null"))),
            "not a regular file",
        ),
        (
            "a CA bundle larger than any bundle",
            with(&|s| {
                let mut big = ours.pem.clone();
                while (big.len() as u64) <= mandate_tls::MAX_FILE_BYTES {
                    big.push_str(&ours.pem);
                }
                s.ca_file = Some(write(d, "huge.pem", &big, 0o644));
            }),
            "larger than 4 MiB",
        ),
        (
            "a key file that is a directory",
            with(&|s| {
                let dir = d.join("key-dir");
                std::fs::create_dir(&dir).unwrap();
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
                s.client_key_file = Some(dir);
            }),
            "not a regular file",
        ),
        (
            "a certificate without its key",
            with(&|s| s.client_key_file = None),
            "go together",
        ),
        (
            "a key without its certificate",
            with(&|s| s.client_cert_file = None),
            "go together",
        ),
        (
            "a missing key file",
            with(&|s| s.client_key_file = Some(d.join("nope.key"))),
            "reading `client_key_file`",
        ),
        (
            "a key readable by others",
            with(&|s| s.client_key_file = Some(write(d, "loose.key", &key, 0o644))),
            "chmod 600",
        ),
        (
            "a key file with no key",
            with(&|s| s.client_key_file = Some(write(d, "nokey.key", &cert, 0o600))),
            "no usable PEM private key",
        ),
        (
            "a key that is not the certificate's",
            with(&|s| s.client_key_file = Some(write(d, "other.key", &other_key, 0o600))),
            "not the key of `client_cert_file`",
        ),
        (
            "a certificate file with no certificate",
            with(&|s| s.client_cert_file = Some(write(d, "empty.pem", "", 0o644))),
            "`client_cert_file`",
        ),
        (
            "a server name that is no name",
            with(&|s| s.server_name = Some("not a name!".into())),
            "`server_name`",
        ),
    ];
    for (what, settings, want) in cases {
        let e = Client::new(&settings)
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        let text = e.to_string();
        assert!(text.contains(want), "{what}: {text}");
        assert!(
            !text.contains("PRIVATE KEY"),
            "{what}: a key in the error: {text}"
        );
    }
    // The settings that are right build.
    Client::new(&with(&|_| {})).unwrap();
    // A key error never holds the key.
    let e = Client::new(&with(&|s| {
        s.client_key_file = Some(write(d, "other2.key", &other_key, 0o600));
    }))
    .unwrap_err();
    assert!(matches!(e, TlsError::Identity { .. }), "{e:?}");
}

#[test]
fn addresses_split_into_host_and_port() {
    assert_eq!(
        host_port("siem.test", 6514),
        Some(("siem.test".into(), 6514))
    );
    assert_eq!(
        host_port("siem.test:1514", 6514),
        Some(("siem.test".into(), 1514))
    );
    assert_eq!(host_port("[::1]:1514", 6514), Some(("::1".into(), 1514)));
    assert_eq!(host_port("[::1]", 6514), Some(("::1".into(), 6514)));
    assert_eq!(host_port("::1", 6514), Some(("::1".into(), 6514)));
    assert_eq!(
        host_port("127.0.0.1:7", 6514),
        Some(("127.0.0.1".into(), 7))
    );
    for bad in ["", ":1514", "h:port", "h:99999", "[::1]x", "[::1"] {
        assert_eq!(host_port(bad, 6514), None, "{bad}");
    }
}
