//! End-to-end tests: the real `mandate` binary on a loopback port, driven over HTTP, by
//! the CLI, and by third-party OAuth clients.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test harness: a failed step fails the test loudly; deadlines for real processes use real time"
)]

mod abuse;
mod authzen;
mod backup;
mod cluster;
mod cluster_faults;
mod compliance;
mod decide;
mod detect;
mod dev;
mod discover;
mod disk_full;
mod export;
mod export_tls;
mod gateway;
mod harness;
mod incident;
mod interop;
mod interop_env;
mod inventory;
mod lifecycle;
mod mandates;
mod mcp;
mod metrics;
mod node_clients;
mod opa;
mod opa_corpus;
mod readme;
mod rego_cli;
mod replay;
mod review;
mod schemathesis;
mod serve;
mod ssf;
mod tls;
mod tls_out;
mod traces;
mod upstreams;
mod wire;
