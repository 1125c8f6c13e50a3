//! The service layer's use cases over a real node on a SQLite store, without HTTP: one
//! test binary, a module per area.
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test: a failed step fails the test loudly"
)]

mod cluster;
mod common;
mod compliance;
mod discovery;
mod export;
mod keys;
mod mandates;
mod node;
mod replay;
mod ssf;
mod ssf_streams;
mod tokens;
mod use_cases;
