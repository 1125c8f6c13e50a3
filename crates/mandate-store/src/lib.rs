//! Mandate's source of truth: the SQLite store (one file, WAL), its migrations, and the
//! private key files beside it.
//!
//! Only this crate contains SQL. Its calls block; async callers run them on a blocking
//! thread. A PostgreSQL implementation behind shared repository traits arrives with the
//! multi-node issue; until then [`Store`] is concrete.

#![warn(missing_docs)]

mod audit;
mod detect;
mod err;
pub mod keyfile;
mod mandate;
mod migrate;
mod secrets;
mod sqlite;

pub use audit::{AuditFilter, AuditRow, CheckpointRow, PolicyVersionRow};
pub use detect::{AnomalyFilter, AnomalyRow};
pub use err::StoreError;
pub use mandate::MandateFilter;
pub use secrets::SecretRow;
pub use sqlite::{AgentFilter, AuthCredential, SigningKeyRow, Store};
