//! The store's error type.

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
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
}
