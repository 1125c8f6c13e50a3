//! What the listener knows of the connection a request came on: the remote address and,
//! over TLS with `client_auth = "optional"`, the certificate chain the client presented.
//!
//! The binary's listener (`mandate::listen`) inserts one [`Peer`] into the extensions of
//! every request it serves, plain HTTP and TLS alike, so handlers and middleware read it
//! with `axum::Extension<Peer>` (per-source limits need the address; RFC 8705 client
//! authentication and certificate-bound tokens need the chain). A router driven without a
//! socket (tests' `oneshot`) has none: a reader must treat its absence as "unknown".

// Defined in mandate-tls so the gateways (mandate-gateway, which does not depend on
// this crate) read the same extension.
pub use mandate_tls::server::Peer;
