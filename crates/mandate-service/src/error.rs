//! [`ServiceError`]: why a use case of the node did not complete, typed so that each
//! edge maps it to its own answer (the HTTP edge: one `From` into its problem+json
//! error). Nothing here knows a status code.

use mandate_store::StoreError;

use crate::acts::ActError;
use crate::detect::DetectError;
use crate::snapshot_cell::StaleSnapshot;

/// Why the node could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The change was made and stands, but its audit event could not be recorded.
    #[error("the change was made but could not be recorded in the audit log")]
    AuditUnavailable,
    /// A decision's audit event could not be recorded, so no decision is given
    /// (`INVARIANT (durable before the answer)`, decisions.rs).
    #[error("the audit log cannot be written; no decision is given")]
    DecisionUnrecorded,
    /// A domain act was refused.
    #[error(transparent)]
    Act(#[from] ActError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Decisions are held: the snapshot could not be refreshed.
    #[error(transparent)]
    Stale(#[from] StaleSnapshot),
    /// The detector's findings or baselines could not be stored.
    #[error(transparent)]
    Detect(#[from] DetectError),
    /// A blocking task did not finish (it panicked).
    #[error("blocking task: {0}")]
    Task(#[from] tokio::task::JoinError),
}
