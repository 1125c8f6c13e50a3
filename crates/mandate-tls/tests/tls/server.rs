//! The listeners' side (`mandate_tls::server`) over real TLS on loopback, with
//! certificates made here: every identity a start must refuse, a reloaded certificate
//! served to the next handshake while an open connection keeps going, and optional client
//! certificates accepted without validation but only with proof of the key.

use std::sync::Arc;
use std::time::Duration;

use mandate_tls::server::{
    ClientAuth, IdentityFiles, Resolver, ServerTlsError, acceptor, load_identity,
};
use rcgen::{CertificateParams, DnType, KeyPair, SerialNumber};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Ca, ca, write};

/// 2026-01-01 as time since the Unix epoch: "now" for the validity checks.
const NOW: Duration = Duration::from_secs(1_767_225_600);

/// A certificate of `ca` for `localhost` with `serial`, valid in `years` (inclusive), and
/// its key.
fn cert(ca: &Ca, serial: u64, years: (i32, i32)) -> (String, String) {
    let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    p.serial_number = Some(SerialNumber::from(serial));
    p.not_before = rcgen::date_time_ymd(years.0, 1, 1);
    p.not_after = rcgen::date_time_ymd(years.1, 12, 31);
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// (case, certificate file content, key file content (none: no file), key mode, what
/// the error says (empty: accepted)).
type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, u32, &'a str);

#[test]
fn every_bad_identity_refuses_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ours = ca("ours");
    let (good_cert, good_key) = cert(&ours, 1, (2020, 2040));
    let (_, other_key) = cert(&ours, 2, (2020, 2040));
    let (expired, expired_key) = cert(&ours, 3, (2010, 2020));
    let (future, future_key) = cert(&ours, 4, (2030, 2040));
    let rsa_junk = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
    // (case, cert file content, key file content, key mode, what the error says)
    let cases: &[Case<'_>] = &[
        ("good", Some(&good_cert), Some(&good_key), 0o600, ""),
        (
            "owner read only",
            Some(&good_cert),
            Some(&good_key),
            0o400,
            "",
        ),
        (
            "no cert file",
            None,
            Some(&good_key),
            0o600,
            "reading `cert_file`",
        ),
        (
            "no key file",
            Some(&good_cert),
            None,
            0o600,
            "reading `key_file`",
        ),
        (
            "empty cert",
            Some(""),
            Some(&good_key),
            0o600,
            "holds no PEM certificate",
        ),
        (
            "garbled cert",
            Some(rsa_junk),
            Some(&good_key),
            0o600,
            "not a PEM certificate",
        ),
        (
            "cert is a key",
            Some(&good_key),
            Some(&good_key),
            0o600,
            "holds no PEM certificate",
        ),
        (
            "key is a cert",
            Some(&good_cert),
            Some(&good_cert),
            0o600,
            "no usable PEM private key",
        ),
        (
            "wrong key",
            Some(&good_cert),
            Some(&other_key),
            0o600,
            "not the key of `cert_file`",
        ),
        (
            "expired",
            Some(&expired),
            Some(&expired_key),
            0o600,
            "has expired",
        ),
        (
            "not yet valid",
            Some(&future),
            Some(&future_key),
            0o600,
            "not valid yet",
        ),
        (
            "key readable by group",
            Some(&good_cert),
            Some(&good_key),
            0o640,
            "owner only",
        ),
        (
            "key readable by all",
            Some(&good_cert),
            Some(&good_key),
            0o644,
            "owner only",
        ),
    ];
    for (i, (case, cert_pem, key_pem, mode, want)) in cases.iter().enumerate() {
        let cert_file = d.join(format!("{i}.crt"));
        let key_file = d.join(format!("{i}.key"));
        if let Some(c) = cert_pem {
            write(d, &format!("{i}.crt"), c, 0o644);
        }
        if let Some(k) = key_pem {
            write(d, &format!("{i}.key"), k, *mode);
        }
        let files = IdentityFiles {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        };
        match load_identity(&files, NOW) {
            Ok(_) => assert!(want.is_empty(), "{case}: accepted"),
            Err(e) => {
                let text = e.to_string();
                assert!(!want.is_empty(), "{case}: refused: {text}");
                assert!(text.contains(want), "{case}: {text}");
                // The file at fault is named; a key's content never is.
                let named = [&cert_file, &key_file]
                    .iter()
                    .any(|f| text.contains(&f.display().to_string()));
                assert!(named, "{case}: {text}");
                assert!(!text.contains("PRIVATE KEY"), "{case}: {text}");
                if *case == "wrong key" || *case == "no key file" {
                    assert!(text.contains("key_file"), "{case}: {text}");
                }
                let _: &ServerTlsError = &e;
            }
        }
    }
}

/// A TLS server on loopback presenting `resolver`'s identity; each connection answers
/// every chunk it reads with `<how many client certificates it got>:<chunk>`. Its port.
async fn echo_server(resolver: Arc<Resolver>, client_auth: ClientAuth) -> u16 {
    let acceptor = acceptor(resolver, client_auth).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                let certs = tls.get_ref().1.peer_certificates().map_or(0, <[_]>::len);
                let mut buf = [0u8; 64];
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let answer = format!("{certs}:{}", String::from_utf8_lossy(&buf[..n]));
                    if tls.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

type Conn = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A client trusting `ca` (presenting `identity` when given).
fn client(ca: &Ca, identity: Option<(&str, &str)>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(mandate_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        // Through a resolver, which (unlike `with_client_auth_cert`) lets a test present
        // a certificate with a key that is not its own.
        Some((cert, key)) => builder.with_client_cert_resolver(Arc::new(Presents(Arc::new(
            rustls::sign::CertifiedKey::new(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                mandate_tls::provider()
                    .key_provider
                    .load_private_key(PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap())
                    .unwrap(),
            ),
        )))),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A client identity presented as it is, checked by nobody here.
#[derive(Debug)]
struct Presents(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Presents {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

async fn connect(connector: &tokio_rustls::TlsConnector, port: u16) -> std::io::Result<Conn> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// The certificate the server presented on `conn`.
fn served(conn: &Conn) -> CertificateDer<'static> {
    conn.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

async fn round_trip(conn: &mut Conn, line: &str) -> String {
    conn.write_all(line.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = conn.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn a_reloaded_identity_is_served_to_the_next_handshake_and_open_ones_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ours = ca("ours");
    let (c1, k1) = cert(&ours, 1, (2020, 2040));
    let (c2, k2) = cert(&ours, 2, (2020, 2040));
    let load = |c: &str, k: &str, n: &str| {
        let files = IdentityFiles {
            cert_file: write(d, &format!("{n}.crt"), c, 0o644),
            key_file: write(d, &format!("{n}.key"), k, 0o600),
        };
        load_identity(&files, NOW).unwrap()
    };
    let resolver = Arc::new(Resolver::new(load(&c1, &k1, "one")));
    let port = echo_server(Arc::clone(&resolver), ClientAuth::None).await;
    let connector = client(&ours, None);
    let mut open = connect(&connector, port).await.unwrap();
    let first = served(&open);
    assert_eq!(
        first,
        CertificateDer::from_pem_slice(c1.as_bytes()).unwrap()
    );
    assert_eq!(open.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(round_trip(&mut open, "a").await, "0:a");

    resolver.set(load(&c2, &k2, "two"));
    // A new client: one that resumes its earlier TLS session is not sent a certificate
    // again (the resumed session stands for the one it authenticated).
    let next = connect(&client(&ours, None), port).await.unwrap();
    assert_eq!(
        served(&next),
        CertificateDer::from_pem_slice(c2.as_bytes()).unwrap()
    );
    // The connection made before the reload still works, on the certificate it got.
    assert_eq!(round_trip(&mut open, "b").await, "0:b");
    assert_eq!(served(&open), first);
    // A client of another CA is refused.
    let stranger = client(&ca("theirs"), None);
    assert!(connect(&stranger, port).await.is_err());
}

#[tokio::test]
async fn optional_client_certificates_any_chain_is_taken_and_none_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ours = ca("ours");
    let (c, k) = cert(&ours, 1, (2020, 2040));
    let files = IdentityFiles {
        cert_file: write(d, "s.crt", &c, 0o644),
        key_file: write(d, "s.key", &k, 0o600),
    };
    let resolver = Arc::new(Resolver::new(load_identity(&files, NOW).unwrap()));
    let port = echo_server(Arc::clone(&resolver), ClientAuth::Optional).await;
    // A self-signed client certificate of no CA the server knows: taken (not validated).
    let mut p = CertificateParams::new(vec!["agent".to_owned()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "agent");
    let key = KeyPair::generate().unwrap();
    let self_signed = p.self_signed(&key).unwrap().pem();
    let with = client(&ours, Some((&self_signed, &key.serialize_pem())));
    let mut conn = connect(&with, port).await.unwrap();
    assert_eq!(round_trip(&mut conn, "x").await, "1:x");
    // No certificate at all: fine too.
    let mut conn = connect(&client(&ours, None), port).await.unwrap();
    assert_eq!(round_trip(&mut conn, "y").await, "0:y");
    // A certificate presented with another key: the handshake signature fails.
    let other = KeyPair::generate().unwrap();
    let liar = client(&ours, Some((&self_signed, &other.serialize_pem())));
    let refused = match connect(&liar, port).await {
        Err(_) => true,
        // TLS 1.3: the client learns of the refusal at its first read.
        Ok(mut conn) => {
            let _ = conn.write_all(b"z").await;
            let mut buf = [0u8; 8];
            !matches!(conn.read(&mut buf).await, Ok(n) if n > 0)
        }
    };
    assert!(refused, "a certificate without its key was accepted");
}
