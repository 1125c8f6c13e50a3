//! The gateways at this crate's boundary: each driven through a real loopback socket
//! with a scripted `Authorizer` (the server's real one is tested end to end in
//! `crates/mandate/tests/e2e/`) and real upstreams that count what reaches them.

mod http;
mod mcp;
mod tls_pki;
