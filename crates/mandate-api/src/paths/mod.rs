//! The contract of every route of `mandate serve`: one module per tag, one marker function
//! per operation carrying its `#[utoipa::path(...)]` (path, operation id, summary and
//! description, parameters, request body, every response with its content type and
//! schema, security). The functions do nothing; mandate-http's handler named in each
//! doc comment serves the route, and `mandate-http`'s `routes_test` checks that the
//! document's (method, path) set is its `ROUTES` and routed.
//!
//! This crate may not depend on axum (it is pure data), so the operations are declared
//! here rather than on the handlers themselves.

pub mod admin;
pub mod agents;
pub mod anomalies;
pub mod approvals;
pub mod audit;
pub mod authzen;
pub mod cluster;
pub mod decisions;
pub mod dev;
pub mod discovery;
pub mod discovery_runs;
pub mod export;
pub mod gateway;
pub mod incidents;
pub mod inventory;
pub mod mandates;
pub mod metrics;
pub mod oauth;
pub mod policies;
pub mod reports;
pub mod reviews;
pub mod ssf;
