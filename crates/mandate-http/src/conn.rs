//! What the listener knows of the connection a request came on: the remote address and,
//! over TLS with `client_auth = "optional"`, the certificate chain the client presented.
//!
//! The binary's listener (`mandate::listen`) inserts one [`Peer`] into the extensions of
//! every request it serves, plain HTTP and TLS alike, so handlers and middleware read it
//! with `axum::Extension<Peer>` (per-source limits need the address; RFC 8705 client
//! authentication and certificate-bound tokens need the chain). A router driven without a
//! socket (tests' `oneshot`) has none: a reader must treat its absence as "unknown".

use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;

/// The connection a request arrived on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's address as the socket sees it (a proxy's, behind one).
    pub addr: SocketAddr,
    /// The client's certificate chain, leaf first, when the listener asked for one
    /// (`client_auth = "optional"`) and the client sent one. INVARIANT (not validated):
    /// the TLS layer checked only that the client holds the leaf's private key (the
    /// handshake signature); the chain is NOT validated against any CA, nor its dates,
    /// names or usages. Whoever relies on it decides what it proves.
    pub certificates: Option<Arc<[CertificateDer<'static>]>>,
}
