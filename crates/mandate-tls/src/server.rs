//! Inbound TLS: the server side of every Mandate listener that is given a certificate
//! (API, gateway, OPA-compatible, metrics), so what a listener presents, and what it asks
//! of a client, is decided once.
//!
//! - rustls with the `ring` provider only ([`crate::provider`]), rustls' safe defaults
//!   (TLS 1.2 and 1.3, its cipher suites), ALPN `http/1.1` (the listeners speak HTTP/1.1
//!   only; a client that offers only `h2` is refused at the handshake).
//! - The certificate chain (PEM, leaf first) and its private key (PEM PKCS#8, PKCS#1 or
//!   SEC1, mode 0600 or tighter) are loaded by [`load_identity`], which refuses — with an
//!   error naming the file, never a key's content — a missing or unreadable file, a file
//!   that holds no PEM item of its kind, a key that is not the certificate's, and a leaf
//!   certificate outside its validity period (expired or not yet valid).
//! - [`Resolver`] holds the identity currently served behind a lock: INVARIANT (reload
//!   without drops) a new identity set there is presented by the next handshake; open
//!   connections keep the one they negotiated, nothing is closed.
//! - [`ClientAuth::Optional`] asks each client for a certificate without requiring one,
//!   and accepts any chain whose holder proves possession of the leaf's key (the
//!   handshake signature is verified with the ring provider). INVARIANT (chain not
//!   validated here): the chain is NOT checked against any CA, nor its dates, names or
//!   usages — it is handed to the application (`mandate_http::conn::Peer`), which decides
//!   (RFC 8705 §2.2 self-signed client authentication needs exactly that).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
pub use tokio_rustls::TlsAcceptor;
pub use tokio_rustls::server::TlsStream;

use crate::TlsError;

/// The connection a request arrived on: the remote address and, over TLS with
/// `client_auth = "optional"`, the certificate chain the client presented
/// (`mandate_http::conn` re-exports it; the binary's listener inserts one into every
/// request's extensions, the gateways' too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's address as the socket sees it (a proxy's, behind one).
    pub addr: std::net::SocketAddr,
    /// The client's certificate chain, leaf first, when the listener asked for one
    /// (`client_auth = "optional"`) and the client sent one. INVARIANT (not validated):
    /// the TLS layer checked only that the client holds the leaf's private key (the
    /// handshake signature); the chain is NOT validated against any CA, nor its dates,
    /// names or usages. Whoever relies on it decides what it proves: a thumbprint
    /// comparison (RFC 8705 §2.2, §3) needs nothing more, a CA-issued identity needs
    /// `crate::client_cert::verify_client_chain`.
    pub certificates: Option<Arc<[CertificateDer<'static>]>>,
}

impl Peer {
    /// The leaf certificate (DER) the client proved it holds the key of, if any.
    pub fn leaf(&self) -> Option<&[u8]> {
        self.certificates
            .as_deref()
            .and_then(<[CertificateDer<'static>]>::first)
            .map(AsRef::as_ref)
    }
}

/// Why a listener's certificate or key could not be used. Messages name the file, never a
/// key's content.
#[derive(Debug, thiserror::Error)]
pub enum ServerTlsError {
    /// A file could not be read, or holds no PEM item of its kind.
    #[error(transparent)]
    File(#[from] TlsError),
    /// The private key file is readable by others than its owner.
    #[error(
        "`key_file` {}: a private key must be readable by its owner only (mode {mode:o}; chmod 600)",
        path.display()
    )]
    LooseKey {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The certificate or key cannot be served (not the pair, outside its validity
    /// period, not a certificate rustls can use).
    #[error("`{setting}` {}: {what}", path.display())]
    Invalid {
        /// `cert_file` or `key_file`.
        setting: &'static str,
        /// Its file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A listener's certificate chain and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    /// The certificate chain (PEM, leaf first).
    pub cert_file: PathBuf,
    /// Its private key (PEM), mode 0600 or tighter.
    pub key_file: PathBuf,
}

/// Whether a listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// A certificate is asked for but not required; any chain is accepted at the
    /// handshake (see the module doc: the chain is not validated here).
    Optional,
}

/// Loads and checks the identity of `files` at `now` (time since the Unix epoch): the
/// chain, its key (0600 or tighter, the leaf's), and the leaf's validity period.
pub fn load_identity(
    files: &IdentityFiles,
    now: Duration,
) -> Result<Arc<CertifiedKey>, ServerTlsError> {
    let chain = crate::certificates("cert_file", &files.cert_file)?;
    let invalid = |setting: &'static str, path: &Path, what: String| ServerTlsError::Invalid {
        setting,
        path: path.to_owned(),
        what,
    };
    let leaf = chain.first().ok_or_else(|| {
        invalid(
            "cert_file",
            &files.cert_file,
            "holds no PEM certificate".into(),
        )
    })?;
    let (not_before, not_after) = validity(leaf).map_err(|e| {
        invalid(
            "cert_file",
            &files.cert_file,
            format!("the first certificate is not an X.509 certificate ({e})"),
        )
    })?;
    if now < not_before {
        return Err(invalid(
            "cert_file",
            &files.cert_file,
            format!(
                "the certificate is not valid yet (from {} s after the Unix epoch)",
                not_before.as_secs()
            ),
        ));
    }
    if now > not_after {
        return Err(invalid(
            "cert_file",
            &files.cert_file,
            format!(
                "the certificate has expired (at {} s after the Unix epoch)",
                not_after.as_secs()
            ),
        ));
    }
    let key = private_key(&files.key_file)?;
    let provider = crate::provider();
    let signing = provider.key_provider.load_private_key(key).map_err(|e| {
        invalid(
            "key_file",
            &files.key_file,
            format!("not a key rustls can use ({e})"),
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        invalid(
            "key_file",
            &files.key_file,
            format!(
                "not the key of `cert_file` {} ({e})",
                files.cert_file.display()
            ),
        )
    })?;
    Ok(Arc::new(certified))
}

/// The private key at `path`, refused when others than its owner may read it.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServerTlsError> {
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Read {
        key: "key_file",
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ServerTlsError::LooseKey {
            path: path.to_owned(),
            mode,
        });
    }
    let bytes = crate::read("key_file", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        ServerTlsError::File(TlsError::Pem {
            key: "key_file",
            path: path.to_owned(),
            what: format!("holds no usable PEM private key ({e})"),
        })
    })
}

/// The `notBefore` and `notAfter` of an X.509 certificate (RFC 5280 §4.1), as time since
/// the Unix epoch. Reads only the fields before them and skips the rest.
fn validity(cert: &CertificateDer<'_>) -> der::Result<(Duration, Duration)> {
    use der::asn1::AnyRef;
    use der::{Decode as _, Reader as _, SliceReader, Tag, TagNumber};
    let mut reader = SliceReader::new(cert.as_ref())?;
    let times = reader.sequence(|certificate| {
        let times = certificate.sequence(|tbs| {
            let version = Tag::ContextSpecific {
                constructed: true,
                number: TagNumber::N0,
            };
            if tbs.peek_tag()? == version {
                AnyRef::decode(tbs)?;
            }
            AnyRef::decode(tbs)?; // serialNumber
            AnyRef::decode(tbs)?; // signature
            AnyRef::decode(tbs)?; // issuer
            let times = tbs.sequence(|v| Ok((time(v)?, time(v)?)))?;
            let rest = tbs.remaining_len();
            tbs.read_slice(rest)?;
            Ok(times)
        })?;
        let rest = certificate.remaining_len();
        certificate.read_slice(rest)?;
        Ok(times)
    })?;
    reader.finish(times)
}

/// One X.509 `Time`: a `UTCTime` or a `GeneralizedTime`.
fn time<'a, R: der::Reader<'a>>(r: &mut R) -> der::Result<Duration> {
    use der::Decode as _;
    use der::asn1::{GeneralizedTime, UtcTime};
    if r.peek_tag()? == der::Tag::UtcTime {
        Ok(UtcTime::decode(r)?.to_unix_duration())
    } else {
        Ok(GeneralizedTime::decode(r)?.to_unix_duration())
    }
}

/// The identity a listener presents, replaceable while it serves (see the module doc).
#[derive(Debug)]
pub struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Resolver {
    /// Serves `identity` until [`Resolver::set`] replaces it.
    pub fn new(identity: Arc<CertifiedKey>) -> Self {
        Self {
            current: RwLock::new(identity),
        }
    }

    /// The identity presented from the next handshake on.
    pub fn set(&self, identity: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = identity;
    }

    /// The identity presented now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The acceptor of a listener presenting `resolver`'s identity.
pub fn acceptor(
    resolver: Arc<Resolver>,
    client_auth: ClientAuth,
) -> Result<TlsAcceptor, ServerTlsError> {
    let provider = crate::provider();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerTlsError::Config(e.to_string()))?;
    let mut config = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCert { provider }))
        }
    }
    .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts any client certificate chain whose holder signs the handshake with the leaf's
/// key. INVARIANT (chain not validated here): see the module doc.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
