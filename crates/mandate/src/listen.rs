//! Serving a router on one listener with the limits a public port needs: a deadline for
//! each request head and a cap on open connections.
//!
//! `axum::serve` sets neither: a connection that sends half a request head, or nothing,
//! stays open forever, and enough of them (the adversarial pass after issue 18 held
//! 20,000) exhaust the process's file descriptors, so that every listener — the admin
//! API and the token endpoint too — stops answering, without a token being needed.
//! Here each listener serves HTTP/1.1 connections through hyper directly:
//!
//! - the request head (the first one, and every one after on a kept-alive connection)
//!   must arrive within [`Limits::header_read_timeout`] (`limits.header_read_timeout_secs`,
//!   10 s), else the connection is closed (hyper's `header_read_timeout`, which needs a
//!   timer: axum's server gives it none) and counted (`mandate_header_timeouts_total`);
//! - at most [`Limits::max_connections`] connections are open at once per listener
//!   (`limits.max_connections`; by default a fifth of the process's open-file limit);
//!   past that, accepting waits (new connections queue in the kernel's backlog, counted
//!   in `mandate_connections_queued_total`) until one closes, so one flooded listener
//!   cannot take the descriptors another one needs;
//! - on shutdown no new connection is accepted, open ones finish what they are doing
//!   (hyper's graceful shutdown: kept-alive connections close after their current
//!   response) for up to [`Limits::drain`], then the rest are dropped — an open event
//!   stream never ends by itself;
//! - with a [`TlsAcceptor`] (`tls_in`), each connection is TLS: its handshake must end
//!   within the head deadline and holds a connection slot like any other;
//! - every request carries a [`Peer`] extension (the remote address; over TLS, the
//!   client's certificate chain when one was asked for and sent).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use mandate_http::conn::Peer;
use mandate_tls::server::TlsAcceptor;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The listener's name in metrics (one of `mandate_service::metrics::LISTENERS`: api, gateway, opa, metrics).
    pub name: &'static str,
    /// How long a client has to send a whole request head.
    pub header_read_timeout: Duration,
    /// The most connections open at once.
    pub max_connections: usize,
    /// How long open connections may take to finish at shutdown.
    pub drain: Duration,
}

impl Limits {
    /// What every Mandate listener uses: `header_read_timeout` for a request head (10 s
    /// by default, as Go servers are commonly configured; a slow-header attack needs far
    /// longer), 10 s to drain, and `max_connections`, by default a fifth of the
    /// process's open-file limit per listener (at most four listeners: API, gateway,
    /// OPA-compatible, and a fifth left for the store, key files and upstream
    /// connections), between 64 and 65,536. Named "api"; see [`Self::named`].
    pub fn for_this_process(header_read_timeout: Duration, max_connections: Option<usize>) -> Self {
        let files = open_file_limit().unwrap_or(1024);
        Self {
            name: "api",
            header_read_timeout,
            max_connections: max_connections.unwrap_or_else(|| {
                usize::try_from(files / 5)
                    .unwrap_or(usize::MAX)
                    .clamp(64, 65_536)
            }),
            drain: Duration::from_secs(10),
        }
    }

    /// The same limits for the listener `name`.
    pub fn named(self, name: &'static str) -> Self {
        Self { name, ..self }
    }
}

/// The soft limit on open files (`Max open files` in `/proc/self/limits`), if readable.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Serves `router` on `listener` until `shutdown` completes, then drains (see the module
/// doc); over TLS when `tls` is given. Accept errors (e.g. out of descriptors) are logged
/// and retried after a pause; they never end the server.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                mandate_http::metrics::connection_queued(limits.name);
                tokio::select! {
                    () = &mut shutdown => break,
                    p = Arc::clone(&permits).acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let (stream, addr) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let http = http.clone();
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let peer = Peer {
                        addr,
                        certificates: None,
                    };
                    connection(&http, watcher, stream, peer, router, limits.name).await;
                }
                Some(acceptor) => {
                    // INVARIANT (handshake deadline): the TLS handshake is part of the
                    // first request head's deadline, and holds its connection permit, so
                    // a client that stalls it ties up one slot for that long at most.
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
                    // Failed handshakes (wrong CA, no shared version, stalled) end the
                    // connection; the client was told by the alert.
                    let handshake = handshake.await;
                    if handshake.is_err() {
                        mandate_http::metrics::header_timed_out(limits.name);
                    }
                    if let Ok(Ok(stream)) = handshake {
                        let certificates = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect());
                        let peer = Peer { addr, certificates };
                        connection(&http, watcher, stream, peer, router, limits.name).await;
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("connections still open after the drain period are dropped");
    }
}

/// Serves one connection to its end (or the drain's), each request carrying `peer`.
async fn connection<IO>(
    http: &hyper::server::conn::http1::Builder,
    watcher: Watcher,
    io: IO,
    peer: Peer,
    router: Router,
    listener: &'static str,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(peer.clone());
        router.clone().oneshot(request)
    });
    // Client resets and head timeouts end connections; only the timeouts are counted.
    if let Err(e) = watcher
        .watch(http.serve_connection(TokioIo::new(io), service))
        .await
        && e.is_timeout()
    {
        mandate_http::metrics::header_timed_out(listener);
    }
}

#[cfg(test)]
mod tests {
    //! Real TLS on loopback with certificates made here (rcgen): the certificate a
    //! listener serves is replaced for the next connection when its files change, an
    //! open kept-alive connection goes on; a stalled handshake holds its slot only until
    //! the head deadline; every request carries its `Peer`.

    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use axum::Extension;
    use axum::routing::get;
    use mandate_core::clock::SystemClock;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

    use super::*;
    use crate::tls_in::{Listener, Served, TlsConfig};

    fn ca() -> (String, Issuer<'static, KeyPair>) {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, "test ca");
        let key = KeyPair::generate().unwrap();
        let pem = p.self_signed(&key).unwrap().pem();
        (pem, Issuer::new(p, key))
    }

    /// Writes a certificate of `issuer` for `localhost` with `serial` (and its key, 0600)
    /// to `dir`/tls.crt and tls.key; the certificate's DER.
    fn issue(
        dir: &Path,
        issuer: &Issuer<'static, KeyPair>,
        serial: u64,
    ) -> CertificateDer<'static> {
        use std::os::unix::fs::PermissionsExt as _;
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.serial_number = Some(serial.into());
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, issuer).unwrap();
        // Written aside and renamed in, as a certificate manager does.
        let (crt, k) = (dir.join("new.crt"), dir.join("new.key"));
        std::fs::write(&crt, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&k, dir.join("tls.key")).unwrap();
        std::fs::rename(&crt, dir.join("tls.crt")).unwrap();
        cert.der().clone()
    }

    fn tls_config(dir: &Path, client_auth: &str) -> TlsConfig {
        let mut c = TlsConfig::default();
        for (k, v) in [
            ("tls.cert_file", dir.join("tls.crt").display().to_string()),
            ("tls.key_file", dir.join("tls.key").display().to_string()),
            ("tls.client_auth", client_auth.to_owned()),
        ] {
            assert_eq!(c.apply(k, &v), Some(Ok(())));
        }
        c
    }

    /// Serves a router answering `GET /` with `<peer ip> <client certificates>`; its port.
    async fn start(tls: Option<TlsAcceptor>, limits: Limits) -> u16 {
        let router = Router::new().route(
            "/",
            get(|Extension(peer): Extension<Peer>| async move {
                let certs = peer.certificates.map_or(0, |c| c.len());
                format!("{} {certs}", peer.addr.ip())
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(serve(listener, router, limits, tls, std::future::pending()));
        port
    }

    fn limits() -> Limits {
        Limits {
            name: "api",
            header_read_timeout: Duration::from_secs(5),
            max_connections: 64,
            drain: Duration::from_secs(1),
        }
    }

    type Conn = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

    async fn connect(ca_pem: &str, port: u16) -> Conn {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(mandate_tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }

    fn served(conn: &Conn) -> CertificateDer<'static> {
        conn.get_ref().1.peer_certificates().unwrap()[0]
            .clone()
            .into_owned()
    }

    /// One `GET /` on a kept-alive connection: the response body.
    async fn get_body<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> String {
        s.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 1024];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                if body.len() >= len {
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    return body.to_owned();
                }
            }
        }
    }

    #[tokio::test]
    async fn a_changed_certificate_is_served_to_the_next_connection_and_open_ones_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, issuer) = ca();
        let first = issue(dir.path(), &issuer, 1);
        let tls = Served::load(&tls_config(dir.path(), "none"), &SystemClock).unwrap();
        let acceptor = tls.acceptor(Listener::Api);
        assert!(tls.acceptor(Listener::Gateway).is_some(), "inherits [tls]");
        tls.spawn_reloader(Arc::new(SystemClock), Duration::from_millis(50));
        let port = start(acceptor, limits()).await;

        let mut open = connect(&ca_pem, port).await;
        assert_eq!(served(&open), first);
        assert_eq!(get_body(&mut open).await, "127.0.0.1 0");

        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = issue(dir.path(), &issuer, 2);
        assert_ne!(first, second);
        let mut next = None;
        for _ in 0..100 {
            let mut c = connect(&ca_pem, port).await;
            if served(&c) == second {
                assert_eq!(get_body(&mut c).await, "127.0.0.1 0");
                next = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(next.is_some(), "the new certificate was never served");
        // The kept-alive connection from before the reload still answers.
        assert_eq!(get_body(&mut open).await, "127.0.0.1 0");
        assert_eq!(served(&open), first);

        // A certificate file that does not parse keeps the one served.
        std::fs::write(dir.path().join("tls.crt"), "not a certificate").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let c = connect(&ca_pem, port).await;
        assert_eq!(served(&c), second);
    }

    #[tokio::test]
    async fn a_stalled_handshake_holds_its_slot_only_until_the_head_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, issuer) = ca();
        issue(dir.path(), &issuer, 1);
        let tls = Served::load(&tls_config(dir.path(), "none"), &SystemClock).unwrap();
        let deadline = Duration::from_millis(400);
        let port = start(
            tls.acceptor(Listener::Api),
            Limits {
                name: "api",
                header_read_timeout: deadline,
                max_connections: 1,
                drain: Duration::from_secs(1),
            },
        )
        .await;
        // Connects and says nothing: the one slot is taken.
        let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = tokio::time::Instant::now();
        let mut c = connect(&ca_pem, port).await;
        assert!(started.elapsed() >= deadline / 2, "{:?}", started.elapsed());
        assert_eq!(get_body(&mut c).await, "127.0.0.1 0");
        // The stalled one was closed.
        let mut buf = [0u8; 8];
        assert_eq!(stalled.read(&mut buf).await.unwrap_or(0), 0);
    }

    #[tokio::test]
    async fn plain_and_tls_requests_carry_their_peer_and_optional_client_certificates() {
        let port = start(None, limits()).await;
        let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        assert_eq!(get_body(&mut plain).await, "127.0.0.1 0");

        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, issuer) = ca();
        issue(dir.path(), &issuer, 1);
        let tls = Served::load(&tls_config(dir.path(), "optional"), &SystemClock).unwrap();
        let port = start(tls.acceptor(Listener::Api), limits()).await;
        // A self-signed client certificate nobody vouches for: handed to the application.
        let mut p = CertificateParams::new(vec!["agent".to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "agent");
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(mandate_tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
                    .unwrap(),
            )
            .unwrap();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut conn = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(get_body(&mut conn).await, "127.0.0.1 1");
        let mut without = connect(&ca_pem, port).await;
        assert_eq!(get_body(&mut without).await, "127.0.0.1 0");
    }
}
