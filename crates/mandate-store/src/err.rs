//! The store's error type, the same for every backend.

/// What went wrong in the store. `NotFound` and `Conflict` are the caller's fault;
/// everything else is the server's (and fails closed).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("unknown {0}")]
    NotFound(&'static str),
    /// The write would break a uniqueness or state rule.
    #[error("{0}")]
    Conflict(String),
    /// The backend failed (its driver's message; the database, not the caller).
    #[error("{backend}: {message}")]
    Backend {
        /// Which backend (`sqlite`, `postgres`).
        backend: &'static str,
        /// The driver's message.
        message: String,
    },
    /// A stored value does not parse (the file was edited or is from a newer version).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// File IO (key files, the data directory).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A write was attempted inside a read-only unit of work ([`crate::Store::read_unit`]).
    /// A bug in the caller; nothing was written.
    #[error("a write inside a read-only unit of work")]
    ReadOnly,
    /// The unit of work's own closure refused (the caller's reason travels beside this
    /// error, see [`crate::StoreExt`]); everything it wrote was rolled back.
    #[error("the unit of work was refused by its caller; nothing was written")]
    Refused,
}
