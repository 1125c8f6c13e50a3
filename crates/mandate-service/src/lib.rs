//! Mandate's service layer: what a node does, whatever edge asked. It knows no HTTP
//! framework and no SQL driver (`crates/mandate/tests/layers.rs`): edges map its typed
//! errors ([`ServiceError`] and the acts' own) to their own answers, and it reaches the
//! store only through `mandate-store`.
//!
//! The [`Node`] ([`node`]) holds one server's state; its one write path ([`write_path`])
//! commits, refreshes the decision snapshot and records the audit event of each act.
//! Around it: the domain acts, each written once ([`acts`]), the decision path every
//! enforcement point shares ([`decisions`]), the detector's wiring ([`detect`]), the
//! jobs ([`jobs`]), the follower that keeps a node of a cluster in step ([`follow`]) and its
//! proof of freshness ([`freshness`]), the gateways' secrets ([`secrets`]), who acted ([`actor`]), the cell
//! the snapshot lives in ([`snapshot_cell`]), the audit writer ([`audit`]), the signing
//! keys ([`keys`]) and the store key that seals what nodes share ([`store_key`]), the
//! bootstrap token ([`bootstrap`]), last activity noted and flushed ([`activity`]), the verification caches
//! ([`cache`]), the node's configuration ([`config`]) and what it counts for Prometheus
//! ([`metrics`]).
//!
//! The use cases, one function each, by area:
//! - [`agents`]: the agent registry (register, update, lifecycle, credentials).
//! - [`admin`]: admin tokens and the signing keys.
//! - [`policies`]: policy versions (add, validate, activate, roll back).
//! - [`anomalies`]: what the detector raised, a human's answer, the baselines.
//! - [`mandates`]: mandates (request, read, long-poll, complete, revoke); [`approvals`]:
//!   their approval by humans; [`dev_users`]: the development user issuer.
//! - [`incidents`]: containment and revocation of a token by its id.
//! - [`inventory`]: every agent with its facts and findings (issue 24); [`compliance`]:
//!   a framework's controls mapped to what the registry and the log prove.
//! - [`cluster`]: the cluster's status, and each node's heartbeat into it.
//! - [`discovery`]: discovery runs (reconciling found workloads with the registry,
//!   registering drafts) and the scheduled discovery job.
//! - [`tokens`]: client authentication, client credentials, introspection, revocation;
//!   [`exchange`]: token exchange and delegation.

#![warn(missing_docs)]

pub mod activity;
pub mod actor;
pub mod acts;
pub mod admin;
pub mod agents;
pub mod anomalies;
pub mod approvals;
pub mod audit;
pub mod bootstrap;
pub mod cache;
pub mod client_certs;
pub mod cluster;
pub mod compliance;
pub mod config;
pub mod decisions;
pub mod detect;
pub mod dev_users;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod exchange;
pub mod export;
pub mod export_io;
pub mod follow;
pub mod freshness;
pub mod incidents;
pub mod inventory;
pub mod jobs;
pub mod keys;
pub mod mandates;
pub mod metrics;
pub mod node;
pub mod opa;
pub mod policies;
pub mod replay;
pub mod reviews;
pub mod secrets;
pub mod snapshot_cell;
pub mod ssf;
pub mod ssf_streams;
pub mod store_key;
pub mod tokens;
pub mod write_path;

pub use error::ServiceError;
pub use node::{Node, StartError, VersionError, Webhooks};
pub use snapshot_cell::{RefreshError, StaleSnapshot};
pub use write_path::Recorded;
