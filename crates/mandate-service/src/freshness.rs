//! Whether a node may decide now: its proof that the decision snapshot is fresh.
//!
//! INVARIANT (fresh or refused): a node over a shared store decides, authenticates an
//! agent or accepts a token only while it can prove its snapshot fresh: the store proved
//! its feed complete up to a moment (`Freshness::Proven { at, seq }`), the snapshot covers
//! every snapshot-topic change up to `seq` (the follower, follow.rs, takes a proof only
//! then), `at` is at most `cluster.max_staleness` ago, and the store does not know its
//! feed lost (`Freshness::Unproven`: a lost listening connection refuses at once, without
//! waiting for the proof to age). Otherwise `Node::snapshot`
//! refuses (503 `snapshot_stale`), exactly as after a failed refresh. So a suspension
//! committed on another node is in force here within the feed's delay, or this node
//! refuses everything after `max_staleness`: never an allow from a snapshot that cannot
//! be shown current. A single node's store needs no proof (`Freshness::Local`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `cluster.max_staleness` by default.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(2);

/// When this node last proved its snapshot fresh (see the module docs).
#[derive(Debug)]
pub(crate) struct Proof {
    /// The store proves nothing because nothing else writes it (`Freshness::Local`).
    local: bool,
    /// The base of `at_nanos`.
    epoch: Instant,
    /// Nanoseconds after `epoch` of the newest proof the snapshot covers, plus one (0: none).
    at_nanos: AtomicU64,
    /// `cluster.max_staleness`.
    max_staleness: Duration,
}

impl Proof {
    pub(crate) fn new(local: bool, max_staleness: Duration) -> Self {
        #[expect(
            clippy::disallowed_methods,
            reason = "monotonic time to age a proof by, not the time of day"
        )]
        let epoch = Instant::now();
        Self {
            local,
            epoch,
            at_nanos: AtomicU64::new(0),
            max_staleness,
        }
    }

    /// Whether the store needs no proof (one node's).
    pub(crate) fn is_local(&self) -> bool {
        self.local
    }

    /// Whether decisions may be made now (see `INVARIANT (fresh or refused)`).
    pub(crate) fn fresh(&self) -> bool {
        if self.local {
            return true;
        }
        let at = self.at_nanos.load(Ordering::Acquire);
        if at == 0 {
            return false;
        }
        let at = self.epoch + Duration::from_nanos(at - 1);
        #[expect(
            clippy::disallowed_methods,
            reason = "monotonic time to age a proof by, not the time of day"
        )]
        let age = Instant::now().saturating_duration_since(at);
        age <= self.max_staleness
    }

    /// How old the proof the node holds is (`None`: none, or a single node's store).
    pub(crate) fn age(&self) -> Option<Duration> {
        let at = self.at_nanos.load(Ordering::Acquire);
        if self.local || at == 0 {
            return None;
        }
        #[expect(
            clippy::disallowed_methods,
            reason = "monotonic time to age a proof by, not the time of day"
        )]
        let now = Instant::now();
        Some(now.saturating_duration_since(self.epoch + Duration::from_nanos(at - 1)))
    }

    /// Takes a proof made at `at` (only ever moves forward).
    pub(crate) fn take(&self, at: Instant) {
        let nanos = u64::try_from(at.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX - 1)
            + 1;
        self.at_nanos.fetch_max(nanos, Ordering::AcqRel);
    }
}
