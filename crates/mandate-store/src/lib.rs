//! The store seam: one repository trait per aggregate, a unit of work, a change feed,
//! [`StoreError`], and a conformance kit every backend must pass. No SQL here: the
//! backends are `mandate-store-sqlite` (the default, one file) and, with the cluster,
//! PostgreSQL. Also the private key files kept beside a node's data ([`keyfile`]).
//!
//! How a backend plugs in: it implements every repository trait for its unit-of-work
//! handle and [`Store`] for itself (see [`repo`]); it publishes its writes to a change
//! feed ([`LocalFeed`] in process); and its test suite runs [`conformance`] (feature
//! `conformance`) with a fresh store per check.

#![warn(missing_docs)]

#[cfg(feature = "conformance")]
pub mod conformance;
mod err;
mod ext;
mod feed;
pub mod keyfile;
pub mod repo;
mod rows;

pub use err::StoreError;
pub use ext::StoreExt;
pub use feed::{Changes, Freshness, LocalFeed, Topic, Topics};
pub use repo::{
    ActivityRepo, AdminTokenRepo, AgentRepo, AnomalyRepo, AuditRepo, CredentialRepo, ExportRepo,
    MandateRepo, NodeRepo, PolicyRepo, Repos, ReviewRepo, SecretRepo, SigningKeyRepo,
    SsfStreamRepo, Store, StoreKeyRepo, TokenRevocationRepo,
};
pub use rows::{
    AgentFilter, AnomalyFilter, AnomalyRow, AuditColumns, AuditFilter, AuditRow, AuthCredential,
    CheckpointRow, ExportCursorRow, MandateFilter, NewSigningKey, NodeReport, NodeRow,
    PolicyVersionRow, ReviewItemRow, ReviewRow, SecretRow, SigningKeyRow, SsfStreamRow,
};

/// Everything a caller of the store needs in scope: the traits whose methods it calls.
pub mod prelude {
    pub use crate::repo::{
        ActivityRepo, AdminTokenRepo, AgentRepo, AnomalyRepo, AuditRepo, CredentialRepo,
        ExportRepo, MandateRepo, NodeRepo, PolicyRepo, Repos, ReviewRepo, SecretRepo,
        SigningKeyRepo, SsfStreamRepo, Store, StoreKeyRepo, TokenRevocationRepo,
    };
    pub use crate::{StoreError, StoreExt};
}
