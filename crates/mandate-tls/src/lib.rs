//! Outbound TLS: the one client configuration every connection Mandate opens to
//! another system shares (syslog over TLS, the Kubernetes API, and through
//! `mandate-egress` every HTTP client: webhooks, gateway and MCP upstreams, export sinks, IdP JWKS), so
//! that what is trusted, and how a certificate is presented, is decided once.
//!
//! - rustls with the `ring` provider only (no aws-lc, no OpenSSL), rustls' safe
//!   defaults: TLS 1.2 and 1.3, its cipher suites, full certificate and name checks.
//! - Trust: the system's roots (`rustls-native-certs`: Debian's
//!   `/etc/ssl/certs/ca-certificates.crt`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`), or —
//!   INVARIANT (one trust source) — when `ca_file` is set, the certificates of that PEM
//!   bundle **instead**: a receiver on a private CA is trusted through that CA alone, and
//!   a public CA cannot stand in for it.
//! - Mutual TLS: `client_cert_file` (PEM chain, leaf first) and `client_key_file` (PEM
//!   PKCS#8, PKCS#1 or SEC1 key, 0600 or tighter), both or neither; the key must be the
//!   certificate's.
//! - `server_name`: the name the server's certificate must carry, when it is not the host
//!   connected to (an IP address, a load balancer's name). INVARIANT (one name): when
//!   set, the certificate is checked against that name whatever host a client connects
//!   to (the verifier is told it, not the connecting code), so an HTTP client whose URL
//!   names an address still checks the configured name.
//!
//! Every file is read once, when the client is built: a file that is missing or does
//! not parse is a [`TlsError`] at start, never a failure at the first connection. No
//! error holds a key's content.
//!
//! The listeners' side — inbound TLS, a certificate reloaded while serving — is
//! [`server`].

use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
pub use tokio_rustls::client::TlsStream;

pub mod client_cert;
mod outbound;
pub mod server;
mod verifier;

pub use outbound::{check_url, is_loopback_host};

/// What a TLS client is told (the `ca_file`, `client_cert_file`, `client_key_file` and
/// `server_name` settings of a config table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// A PEM bundle of the CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// The client certificate chain (PEM, leaf first), for mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM), for mutual TLS.
    pub client_key_file: Option<PathBuf>,
    /// The name the server's certificate must carry, if not the host connected to.
    pub server_name: Option<String>,
}

/// Why a TLS client could not be built. Messages name the setting and the file, never a
/// key's content.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading `{key}` {}: {source}", path.display())]
    Read {
        /// The setting.
        key: &'static str,
        /// Its file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file holds no PEM item of the kind wanted, or one that does not parse.
    #[error("`{key}` {}: {what}", path.display())]
    Pem {
        /// The setting.
        key: &'static str,
        /// Its file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A client certificate without its key, or a key without its certificate.
    #[error("`client_cert_file` and `client_key_file` go together: set both or neither")]
    HalfIdentity,
    /// The private key file is readable by others than its owner.
    #[error(
        "`client_key_file` {}: a private key must be readable by its owner only (mode {mode:o}; chmod 600)",
        path.display()
    )]
    LooseKey {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key is not the client certificate's, or rustls cannot use it.
    #[error("`client_key_file` {}: {what}", path.display())]
    Identity {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// `server_name` is neither a DNS name nor an IP address.
    #[error("`server_name` `{0}` is not a DNS name or an IP address")]
    ServerName(String),
    /// No `ca_file`, and the system has no root certificate.
    #[error("no trusted roots: the system's store has none ({0}); set `ca_file`")]
    NoRoots(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A built TLS client: the rustls configuration (shared) and the server name override.
#[derive(Debug, Clone)]
pub struct Client {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

/// The process's one TLS provider: `ring`.
#[expect(
    deprecated,
    reason = "rustls marks ring's provider deprecated for lacking post-quantum key exchange; \
              aws-lc (which has it) is kept out of the build (DESIGN.md)"
)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Client {
    /// Builds the client of `settings`, reading its files now.
    pub fn new(settings: &Settings) -> Result<Self, TlsError> {
        Self::build(settings, false)
    }

    /// As [`Client::new`], but a system without root certificates gives an empty trust
    /// store instead of an error (every server is then refused at its handshake: fail
    /// closed), for a client that may only ever speak plain HTTP to loopback.
    pub fn new_lenient(settings: &Settings) -> Result<Self, TlsError> {
        Self::build(settings, true)
    }

    fn build(settings: &Settings, lenient_roots: bool) -> Result<Self, TlsError> {
        let server_name = match &settings.server_name {
            Some(n) => {
                Some(ServerName::try_from(n.clone()).map_err(|_| TlsError::ServerName(n.clone()))?)
            }
            None => None,
        };
        let roots = match &settings.ca_file {
            Some(path) => ca_roots(path)?,
            None => match system_roots() {
                Err(TlsError::NoRoots(_)) if lenient_roots => RootCertStore::empty(),
                r => r?,
            },
        };
        let provider = provider();
        let versions = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &server_name {
            None => versions.with_root_certificates(roots),
            Some(name) => {
                versions
                    .dangerous()
                    .with_custom_certificate_verifier(verifier::Named::new(
                        roots,
                        Arc::clone(&provider),
                        name.clone(),
                    )?)
            }
        };
        let config = match (&settings.client_cert_file, &settings.client_key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = certificates("client_cert_file", cert)?;
                let key_der = private_key(key)?;
                check_pair(&provider, &chain, &key_der, key)?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| TlsError::Identity {
                        path: key.clone(),
                        what: e.to_string(),
                    })?
            }
            _ => return Err(TlsError::HalfIdentity),
        };
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }

    /// The rustls configuration, for a client that makes its own connections (an HTTP
    /// client given a preconfigured TLS backend).
    pub fn config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// The name the server's certificate must carry when connecting to `host`: the
    /// `server_name` setting, else `host` (a DNS name or an IP address, brackets off).
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        if let Some(n) = &self.server_name {
            return Ok(n.clone());
        }
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        ServerName::try_from(bare.to_owned()).map_err(|_| TlsError::ServerName(host.to_owned()))
    }

    /// The TLS handshake over `io`, a connection to `host`. An error says why the
    /// server was refused (unknown issuer, wrong name, expired) or the handshake failed.
    pub async fn connect<IO>(&self, host: &str, io: IO) -> io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name = self
            .server_name(host)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
            .connect(name, io)
            .await
    }
}

/// Splits `address` (`host:port`, `[v6]:port`, `host`, `[v6]`) into its host and port,
/// with `default_port` when it names none. `None`: not an address.
pub fn host_port(address: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':')?)),
        }
    } else {
        match address.rsplit_once(':') {
            // A bare IPv6 address without brackets has several colons: no port.
            Some((h, _)) if h.contains(':') => (address, None),
            Some((h, p)) => (h, Some(p)),
            None => (address, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some((host.to_owned(), port))
}

/// The most a certificate, bundle or key file may hold (a system CA bundle is ~200 KiB).
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The content of the file at `path`. INVARIANT (bounded TLS files): only a regular file
/// (after symlinks) of at most [`MAX_FILE_BYTES`] is read — a device (`/dev/zero`), a
/// FIFO or a huge file is an error at start, not a start that eats memory or never ends.
pub(crate) fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read as _;
    let failed = |source: io::Error| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    };
    // Checked before opening: opening a FIFO blocks until someone writes to it.
    if !std::fs::metadata(path).map_err(failed)?.is_file() {
        return Err(failed(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(failed)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(failed(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {} MiB", MAX_FILE_BYTES / (1024 * 1024)),
        )));
    }
    Ok(bytes)
}

/// Every certificate of the PEM file at `path`; an error if one does not parse or there
/// is none.
pub(crate) fn certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            key,
            path: path.to_owned(),
            what: format!("not a PEM certificate bundle ({e})"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            key,
            path: path.to_owned(),
            what: "holds no PEM certificate".to_owned(),
        });
    }
    Ok(certs)
}

/// The roots of a `ca_file`: every certificate must be one rustls can use as a trust
/// anchor (none is silently left out).
fn ca_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in certificates("ca_file", path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| TlsError::Pem {
            key: "ca_file",
            path: path.to_owned(),
            what: format!("certificate {} is not a usable CA certificate ({e})", i + 1),
        })?;
    }
    Ok(roots)
}

/// The system's roots; those that do not parse are left out (a system store holds
/// certificates rustls may not take), an empty result is an error.
fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (_, _) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(|| "no certificate found".to_owned(), ToString::to_string);
        return Err(TlsError::NoRoots(why));
    }
    Ok(roots)
}

/// The private key at `path`, refused when others than its owner may read it.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Read {
        key: "client_key_file",
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::LooseKey {
            path: path.to_owned(),
            mode,
        });
    }
    let bytes = read("client_key_file", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        key: "client_key_file",
        path: path.to_owned(),
        what: format!("holds no usable PEM private key ({e})"),
    })
}

/// Checks that `key` is the private key of `chain`'s leaf.
fn check_pair(
    provider: &CryptoProvider,
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    path: &Path,
) -> Result<(), TlsError> {
    let identity = |what: String| TlsError::Identity {
        path: path.to_owned(),
        what,
    };
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| identity(format!("not a key rustls can use ({e})")))?;
    rustls::sign::CertifiedKey::new(chain.to_vec(), signing)
        .keys_match()
        .map_err(|e| identity(format!("not the key of `client_cert_file` ({e})")))
}
