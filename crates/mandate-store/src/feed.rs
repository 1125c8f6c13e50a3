//! The change feed: what a node learns about committed writes. Every write unit that
//! touched a [`Topic`] gets the next sequence number; a reader remembers the last number
//! it acted on and asks what changed since ([`crate::Store::changes_since`]), waiting for a
//! change if there is none yet.
//!
//! [`LocalFeed`] is the in-process feed a single-node backend publishes to (SQLite). A
//! backend shared by several nodes (PostgreSQL) publishes what its own node writes there
//! too, and what other nodes wrote when their notifications arrive.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What a write changed: one per aggregate (repository trait) the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Topic {
    /// Agents: identity, owner, boundary, status.
    Agents,
    /// Credentials (client secrets, public keys).
    Credentials,
    /// Admin tokens.
    AdminTokens,
    /// Token signing keys.
    SigningKeys,
    /// Token revocations and per-agent token cutoffs.
    TokenRevocations,
    /// Client-assertion replay records (`jti`s): written on every token request that
    /// authenticates with a signed assertion, so kept apart from what decisions read.
    AssertionReplay,
    /// The audit log and its checkpoints.
    Audit,
    /// Policy versions and which one is active.
    Policies,
    /// Mandates.
    Mandates,
    /// Anomalies and detector baselines.
    Anomalies,
    /// Upstream secrets.
    Secrets,
    /// The node's own record (its name).
    Node,
    /// Export sinks' cursors (issue 23): nothing a decision reads.
    Export,
    /// Agents' and credentials' last activity (issue 24's inventory): nothing a
    /// decision reads.
    Activity,
    /// Access review campaigns and their items (issue 24): nothing a decision reads.
    Reviews,
}

impl Topic {
    /// Every topic, in declaration order.
    pub const ALL: [Topic; 15] = [
        Topic::Agents,
        Topic::Credentials,
        Topic::AdminTokens,
        Topic::SigningKeys,
        Topic::TokenRevocations,
        Topic::AssertionReplay,
        Topic::Audit,
        Topic::Policies,
        Topic::Mandates,
        Topic::Anomalies,
        Topic::Secrets,
        Topic::Node,
        Topic::Export,
        Topic::Activity,
        Topic::Reviews,
    ];

    /// A stable name (`agents`, `credentials`, …), e.g. for a notification payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Agents => "agents",
            Topic::Credentials => "credentials",
            Topic::AdminTokens => "admin_tokens",
            Topic::SigningKeys => "signing_keys",
            Topic::TokenRevocations => "token_revocations",
            Topic::AssertionReplay => "assertion_replay",
            Topic::Audit => "audit",
            Topic::Policies => "policies",
            Topic::Mandates => "mandates",
            Topic::Anomalies => "anomalies",
            Topic::Secrets => "secrets",
            Topic::Node => "node",
            Topic::Export => "export",
            Topic::Activity => "activity",
            Topic::Reviews => "reviews",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

/// A set of topics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Topics(u16);

impl Topics {
    /// No topic.
    pub const NONE: Topics = Topics(0);

    /// This set with `t` added.
    #[must_use]
    pub fn with(self, t: Topic) -> Topics {
        Topics(self.0 | t.bit())
    }

    /// Whether `t` is in the set.
    pub fn contains(self, t: Topic) -> bool {
        self.0 & t.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The union of two sets.
    #[must_use]
    pub fn union(self, other: Topics) -> Topics {
        Topics(self.0 | other.0)
    }

    /// Every topic.
    pub fn all() -> Topics {
        Topic::ALL.into_iter().collect()
    }

    /// The set as bits (bit `n` is the `n`th topic of [`Topic::ALL`]), e.g. for a
    /// notification payload; [`Topics::from_bits`] reads it back.
    pub fn bits(self) -> u16 {
        self.0
    }

    /// A set from [`Topics::bits`]. A bit naming no topic this build knows (a newer
    /// writer's) is read as "every topic": a reader that cannot tell what changed must
    /// read everything again.
    pub fn from_bits(bits: u16) -> Topics {
        let known = Topics::all().0;
        if bits & !known != 0 {
            Topics::all()
        } else {
            Topics(bits)
        }
    }

    /// The topics in both sets.
    #[must_use]
    pub fn intersection(self, other: Topics) -> Topics {
        Topics(self.0 & other.0)
    }

    /// The topics of this set not in `other`.
    #[must_use]
    pub fn without(self, other: Topics) -> Topics {
        Topics(self.0 & !other.0)
    }

    /// The topics in the set, in [`Topic::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Topic> {
        Topic::ALL.into_iter().filter(move |t| self.contains(*t))
    }
}

impl FromIterator<Topic> for Topics {
    fn from_iter<I: IntoIterator<Item = Topic>>(iter: I) -> Self {
        iter.into_iter().fold(Topics::NONE, Topics::with)
    }
}

/// What a node can prove about how up to date its change feed is ([`crate::Store::freshness`]).
///
/// A node decides from a snapshot built from the store and kept in step by the feed. On
/// one node every write goes through the node's own feed before it is visible, so the
/// feed is complete by construction ([`Freshness::Local`]). Where other processes write
/// too (PostgreSQL), their writes arrive as notifications, which can be delayed or lost
/// with the connection; the backend then proves completeness from time to time: a
/// heartbeat it sent through the same channel came back, so every change committed before
/// the heartbeat was sent has been published ([`Freshness::Proven`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Every write to the store is published to this feed before it is visible: the feed
    /// is always complete.
    Local,
    /// Every change committed before `at` (monotonic time) is published to this feed, at a
    /// sequence number at most `seq`.
    Proven {
        /// When the proof's heartbeat was sent (every change committed before is in).
        at: Instant,
        /// The feed's sequence number when the heartbeat came back.
        seq: u64,
        /// How long the heartbeat took to come back (how far the feed lags, at least).
        lag: Duration,
    },
    /// Nothing can be proven now: the feed has not started, or its connection is lost (a
    /// node must then refuse to decide: `INVARIANT (fresh or refused)`, mandate-service).
    Unproven,
}

/// What changed after a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    /// The sequence number of the newest change (the `after` asked with, if none).
    pub seq: u64,
    /// Every topic some change after `after` (up to `seq`) touched.
    pub topics: Topics,
}

#[derive(Debug, Default)]
struct FeedState {
    seq: u64,
    /// The sequence number of the last change that touched each topic.
    last: [u64; Topic::ALL.len()],
}

/// An in-process change feed: a counter per topic, and a condition variable to wait on.
///
/// INVARIANT (published before visible): a reader that reads [`LocalFeed::topic_seq`]
/// *before* reading the data never keeps a stale fact under an unchanged number. SQLite
/// holds it strictly: it calls [`LocalFeed::publish`] while it still excludes every reader
/// of what the unit wrote (before it releases its one connection). A backend with many
/// connections (PostgreSQL) publishes once the commit returned and before the write unit
/// returns, never before the commit: a reader may then see the new data under the old
/// number for a moment, and reads again when the number moves (one re-read; what it saw
/// was already the newer state). A unit that touched a topic and then failed publishes
/// too: that costs readers one re-read, while missing a change would leave them stale.
#[derive(Debug, Default)]
pub struct LocalFeed {
    state: Mutex<FeedState>,
    changed: Condvar,
}

impl LocalFeed {
    /// A feed with no changes yet (every sequence number 0).
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FeedState> {
        // The state is two counters updated together under the lock; a panic elsewhere
        // cannot leave them half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one change touching `topics` and wakes every waiter; returns its sequence
    /// number. An empty set records nothing and returns the current number.
    #[expect(
        clippy::indexing_slicing,
        reason = "`last` has one slot per topic: its length is `Topic::ALL.len()`"
    )]
    pub fn publish(&self, topics: Topics) -> u64 {
        let mut s = self.state();
        if topics.is_empty() {
            return s.seq;
        }
        s.seq += 1;
        let seq = s.seq;
        for t in topics.iter() {
            s.last[t as usize] = seq;
        }
        drop(s);
        self.changed.notify_all();
        seq
    }

    /// The sequence number of the last change that touched `topic` (0: none since the
    /// feed started).
    #[expect(
        clippy::indexing_slicing,
        reason = "`last` has one slot per topic: its length is `Topic::ALL.len()`"
    )]
    pub fn topic_seq(&self, topic: Topic) -> u64 {
        self.state().last[topic as usize]
    }

    /// The newest sequence number.
    pub fn seq(&self) -> u64 {
        self.state().seq
    }

    /// What changed after `after`; if nothing has, waits up to `wait` for a change.
    #[expect(
        clippy::indexing_slicing,
        clippy::disallowed_methods,
        reason = "`last` has one slot per topic; a wait's deadline is monotonic time, not the time of day"
    )]
    pub fn changes_since(&self, after: u64, wait: Duration) -> Changes {
        let deadline = Instant::now() + wait;
        let mut s = self.state();
        while s.seq <= after {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = self
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let topics = Topic::ALL
            .into_iter()
            .filter(|t| s.last[*t as usize] > after)
            .collect();
        Changes {
            seq: s.seq.max(after),
            topics,
        }
    }
}
