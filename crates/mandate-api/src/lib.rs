//! The wire contract of Mandate's HTTP API: the request and response bodies of the
//! endpoints the CLI calls, the problem (error) body and the OAuth error body, as
//! `serde` types with their OpenAPI schemas (`utoipa::ToSchema`).
//!
//! One crate holds the contract so the server, the typed client (`mandate-client`)
//! and the CLI agree by construction. The OpenAPI document is generated from it
//! ([`openapi::document`], with the operations of [`paths`]) and checked in as
//! `docs/openapi.json`. Field names and optionality are those the server sends today; where a
//! member is "present only when set" the type skips it when `None`, where it is always
//! present (maybe `null`) the field is a plain `Option` marked `required`.
//!
//! Identifiers and timestamps are `String`s here: a response is what the server wrote,
//! and a request carries what the user typed, which the server (not the client) judges.
//! From `mandate-core` this crate re-uses only the closed enums whose serialisation is
//! already the wire's: [`Role`], [`CredentialKind`], [`AgentStatus`] and
//! [`MandateStatus`] (re-exported). The domain structs (`Agent`, `Mandate`, …) are not
//! re-used: their newtypes validate on deserialisation, which is the server's job.
//!
//! This crate does no IO: it is pure data (`crates/mandate/tests/layers.rs`, PURE).

#![warn(missing_docs)]

pub mod admin;
pub mod agents;
pub mod anomalies;
pub mod audit;
pub mod authorize;
pub mod authzen;
pub mod cluster;
pub mod compliance;
pub mod discovery_runs;
pub mod export;
pub mod formats;
pub mod gateway;
pub mod incidents;
pub mod inventory;
pub mod mandates;
pub mod oauth;
pub mod openapi;
pub mod paths;
pub mod policies;
pub mod problem;
pub mod responses;
pub mod reviews;
pub mod ssf;

pub use mandate_core::admin::Role;
pub use mandate_core::agent::AgentStatus;
pub use mandate_core::credential::CredentialKind;
pub use mandate_core::mandate::MandateStatus;

pub use admin::*;
pub use agents::*;
pub use anomalies::*;
pub use audit::*;
pub use authorize::*;
pub use authzen::*;
pub use cluster::*;
pub use compliance::*;
pub use discovery_runs::*;
pub use export::*;
pub use gateway::*;
pub use incidents::*;
pub use inventory::*;
pub use mandates::*;
pub use oauth::*;
pub use policies::*;
pub use problem::*;
pub use reviews::*;
pub use ssf::*;

/// A list answer without paging (`{"items": […]}`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Items<T> {
    /// Every item.
    pub items: Vec<T>,
}
