//! Where the decision snapshot lives: the only holder of it, so that no reader can get
//! one the store has moved past.
//!
//! INVARIANT (fail closed on a stale snapshot): a rebuild that fails (returns an error or
//! panics) marks the cell stale before [`SnapshotCell::rebuild`] returns, and from then
//! on [`SnapshotCell::get`] refuses until a rebuild succeeds. The one write path rebuilds
//! after every write that can change a decision (write_path.rs), so a failed rebuild may leave the store holding a
//! suspension, revocation or new policy that the old snapshot does not: refusing every
//! reader is what keeps such a write in force. Outside this module the snapshot can only
//! be reached through `get` (and, for building the next one, inside `rebuild`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use mandate_engine::decide::Snapshot;

/// The decision snapshot may be older than the store: the last refresh failed
/// (`INVARIANT (fail closed on a stale snapshot)`, above). Nothing is decided, no
/// agent authenticated and no token accepted until a refresh succeeds.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("decisions are held until the decision snapshot is refreshed")]
pub struct StaleSnapshot;

/// Why the decision snapshot could not be rebuilt; decisions are then held until a
/// rebuild succeeds. The cause is for the log: callers answer 503 `snapshot_stale` when
/// they read the held snapshot, whatever it was.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] mandate_store::StoreError),
    /// The active policy version is not in the store.
    #[error("active policy version {0} is missing")]
    MissingVersion(i64),
    /// The active policy version no longer compiles (e.g. against a newer base schema).
    #[error("active policy version {version} no longer compiles: {why}")]
    DoesNotCompile {
        /// The version.
        version: i64,
        /// The compiler's messages, joined.
        why: String,
    },
}

/// The current snapshot and whether it may be stale.
pub struct SnapshotCell {
    current: RwLock<Arc<Snapshot>>,
    /// Set when the last rebuild failed.
    stale: AtomicBool,
    /// Held by a rebuild from its first read of the store to its swap, so a rebuild that
    /// read the store earlier can never be swapped in over one that read it later. Holds
    /// the change-feed sequence number the current snapshot was built from (`None`:
    /// never built, or the last rebuild failed: the next one reads everything).
    rebuilding: Mutex<Option<u64>>,
    /// Bumped after every rebuild, successful or not: what decisions read changed or
    /// became unreadable. Gateways holding open streams watch it and re-check.
    changed: tokio::sync::watch::Sender<u64>,
}

impl SnapshotCell {
    /// A cell holding `first` (not stale).
    pub fn new(first: Snapshot) -> Self {
        Self {
            current: RwLock::new(Arc::new(first)),
            stale: AtomicBool::new(false),
            rebuilding: Mutex::new(None),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The snapshot decisions read now, or [`StaleSnapshot`] while the last rebuild
    /// failed.
    pub fn get(&self) -> Result<Arc<Snapshot>, StaleSnapshot> {
        if self.stale.load(Ordering::Acquire) {
            return Err(StaleSnapshot);
        }
        Ok(self.read())
    }

    /// A receiver that sees every rebuild (see the `changed` field).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Whether readers are refused because the last rebuild failed.
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    /// Builds the next snapshot with `build` and swaps it in; on failure marks the cell
    /// stale. `build` is given the current snapshot, stale or not, to share what did not
    /// change, and the change-feed sequence number it was built from (`None`: read
    /// everything); it returns the new snapshot and the sequence number it read the store
    /// at (read before the data). Rebuilds run one at a time.
    pub fn rebuild(
        &self,
        build: impl FnOnce(&Snapshot, Option<u64>) -> Result<(Snapshot, u64), RefreshError>,
    ) -> Result<(), RefreshError> {
        let mut built_from = self
            .rebuilding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Until this rebuild succeeds, the next one reads everything (also if this one
        // panics: the lock is then poisoned and read through).
        let previous_seq = built_from.take();
        // Marks the cell stale when dropped, unless forgotten after a successful swap: a
        // build that panics holds readers just as one that returns an error does.
        let guard = StaleUnlessSwapped(&self.stale, &self.changed);
        let (fresh, seq) = match build(&self.read(), previous_seq) {
            Ok(built) => built,
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "snapshot refresh failed: decisions are refused until one succeeds"
                );
                crate::metrics::snapshot_refreshed(false);
                return Err(e);
            }
        };
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(fresh);
        *built_from = Some(seq);
        if self.stale.load(Ordering::Acquire) {
            tracing::warn!("snapshot refreshed: decisions resume");
        }
        std::mem::forget(guard);
        // After the swap: a reader that sees the flag clear also sees the new snapshot.
        self.stale.store(false, Ordering::Release);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        crate::metrics::snapshot_refreshed(true);
        Ok(())
    }

    /// The change-feed sequence number the current snapshot was built from (`None`: never
    /// built, or the last rebuild failed). Waits for a rebuild in progress.
    pub fn built_from(&self) -> Option<u64> {
        *self
            .rebuilding
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the receivers of [`SnapshotCell::changes`] without a rebuild: what they may
    /// read changed in another way (a node's proof of freshness lapsed), so they re-check.
    pub fn poke(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn read(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Sets the stale flag when dropped (see [`SnapshotCell::rebuild`]).
struct StaleUnlessSwapped<'a>(&'a AtomicBool, &'a tokio::sync::watch::Sender<u64>);

impl Drop for StaleUnlessSwapped<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
        // Open streams re-check and find the snapshot stale: they close (fail closed).
        self.1.send_modify(|n| *n = n.wrapping_add(1));
    }
}
