//! The governance core's tests: discovery against the documented output shapes
//! (`tests/data/discover/`), reconciliation, the least-privilege suggestion's properties,
//! and the inventory findings.
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test: a failed step fails the test loudly"
)]

mod discover;
mod findings;
mod reconcile;
mod suggest;
