//! Mandate's service layer: what a node does, whatever edge asked. It knows no HTTP
//! framework and no SQL driver (`crates/mandate/tests/layers.rs`): edges map its typed
//! errors to their own answers, and it reaches the store only through `mandate-store`.
//!
//! Today it holds the domain acts, each written once ([`acts`]), who acted ([`actor`]),
//! the cell the decision snapshot lives in ([`snapshot_cell`]), the audit writer
//! ([`audit`]), the signing keys ([`keys`]), the bootstrap token ([`bootstrap`]) and the
//! verification caches ([`cache`]) and the node's configuration ([`config`]). The node's
//! state (`AppState`), the one write path and the jobs are still in `mandate-server` and
//! move here next (ARCHITECTURE.md).

#![warn(missing_docs)]

pub mod actor;
pub mod acts;
pub mod audit;
pub mod bootstrap;
pub mod cache;
pub mod config;
pub mod keys;
pub mod snapshot_cell;

pub use snapshot_cell::{RefreshError, StaleSnapshot};
