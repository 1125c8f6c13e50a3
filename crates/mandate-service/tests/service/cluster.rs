//! A node over a shared store (`INVARIANT (fresh or refused)`, mandate-service
//! freshness.rs and follow.rs): it decides only while it holds a recent proof that its
//! feed is complete and its snapshot covers it; writes another node made reach its
//! snapshot through the follower.
//!
//! The shared store here is the real SQLite store wrapped to report the freshness a
//! shared backend would ([`Shared`]): the test plays the backend's listener, setting the
//! proof, and "another node" writes to the store past this node's write path. The
//! PostgreSQL listener that makes these proofs is tested against a real server in
//! mandate-store-postgres (`feed::*`); whole nodes over PostgreSQL in the binary's e2e
//! tests.

#![expect(
    clippy::disallowed_methods,
    reason = "tests wait on monotonic time, and a shared store's proofs are monotonic instants"
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mandate_core::agent::AgentStatus;
use mandate_core::time::Timestamp;
use mandate_store::prelude::*;
use mandate_store::repo::{Result as StoreResult, Work};
use mandate_store::{Changes, Freshness, Store, StoreError, Topic};

use super::common::T0;

/// A real store reporting the freshness the test sets, as a shared backend does.
#[derive(Debug)]
struct Shared {
    inner: Arc<dyn Store>,
    freshness: Mutex<Freshness>,
}

impl Shared {
    fn set(&self, f: Freshness) {
        *self.freshness.lock().unwrap() = f;
    }

    /// A proof made now, covering every change so far.
    fn prove_now(&self) {
        let seq = self.inner.changes_since(0, Duration::ZERO).seq;
        self.set(Freshness::Proven {
            lag: Duration::ZERO,
            at: Instant::now(),
            seq,
        });
    }
}

impl Store for Shared {
    fn read_unit(&self, work: &mut Work<'_>) -> StoreResult<()> {
        self.inner.read_unit(work)
    }
    fn write_unit(&self, work: &mut Work<'_>) -> StoreResult<()> {
        self.inner.write_unit(work)
    }
    fn topic_seq(&self, topic: Topic) -> u64 {
        self.inner.topic_seq(topic)
    }
    fn changes_since(&self, after: u64, wait: Duration) -> Changes {
        self.inner.changes_since(after, wait)
    }
    fn freshness(&self) -> Freshness {
        *self.freshness.lock().unwrap()
    }
    fn ping(&self) -> StoreResult<()> {
        self.inner.ping()
    }
    fn describe(&self) -> String {
        format!("shared {}", self.inner.describe())
    }
}

const MAX_STALENESS: Duration = Duration::from_millis(300);

/// A node over a [`Shared`] store in `dir`, its follower running; the store, to play the
/// listener and the other nodes with.
fn clustered(dir: &std::path::Path) -> (Arc<mandate_service::Node>, Arc<Shared>) {
    let (_, _, sqlite) = super::common::node_over_store(dir, |_| {});
    let shared = Arc::new(Shared {
        inner: sqlite,
        freshness: Mutex::new(Freshness::Unproven),
    });
    let store: Arc<dyn Store> = shared.clone();
    let node = super::common::node_over(dir, store, |c| c.max_staleness = MAX_STALENESS);
    let node = Arc::new(node);
    assert!(mandate_service::follow::spawn_follower(&node).is_some());
    (node, shared)
}

/// Another node changes agent `id`'s status (past this node's write path).
fn set_status_elsewhere(shared: &Shared, id: &mandate_core::id::AgentId, to: AgentStatus) {
    shared
        .inner
        .modify_agent(id, Timestamp::from_secs(T0), |x| {
            x.status = to;
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

/// Proves the store's feed complete now and waits until the node decides again.
fn prove_fresh(node: &mandate_service::Node, shared: &Shared) {
    shared.prove_now();
    eventually("fresh", || node.snapshot().is_ok());
}

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Unproven: refused (also readiness). Proven: decides. No new proof for longer than
/// `cluster.max_staleness`: refused again (and the lapse announced to open streams),
/// until the next proof.
#[test]
fn a_node_decides_only_while_its_proof_is_recent() {
    let dir = tempfile::tempdir().unwrap();
    let (node, shared) = clustered(dir.path());
    std::thread::sleep(Duration::from_millis(50));
    assert!(node.snapshot().is_err(), "decided without any proof");
    assert!(node.is_stale());
    shared.prove_now();
    eventually("the proof is taken", || node.snapshot().is_ok());
    assert!(!node.is_stale());
    std::thread::sleep(MAX_STALENESS + Duration::from_millis(100));
    assert!(
        node.snapshot().is_err(),
        "decided on a proof older than max_staleness"
    );
    shared.prove_now();
    eventually("a new proof is taken", || node.snapshot().is_ok());
}

/// A proof the node's snapshot does not cover yet (it names a sequence number past what
/// the follower acted on) is not taken: the node regains freshness only with a snapshot
/// that holds the suspension another node wrote while this node's feed was lost.
#[test]
fn a_suspension_written_elsewhere_is_in_force_before_the_node_decides_again() {
    let dir = tempfile::tempdir().unwrap();
    let (node, shared) = clustered(dir.path());
    let a = super::node::agent(7);
    node.store().insert_agent(&a).unwrap();
    prove_fresh(&node, &shared);
    // The feed is lost; the proof ages out.
    shared.set(Freshness::Unproven);
    std::thread::sleep(MAX_STALENESS + Duration::from_millis(100));
    assert!(node.snapshot().is_err());
    // Another node suspends the agent (past this node's write path).
    set_status_elsewhere(&shared, &a.id, AgentStatus::Suspended);
    shared.prove_now();
    eventually("fresh again", || node.snapshot().is_ok());
    let s = node.snapshot().unwrap();
    assert_eq!(s.agents.get(&a.id).unwrap().status, AgentStatus::Suspended);
}

/// While fresh, another node's suspension reaches this node's snapshot by the feed alone
/// (nothing on this node wrote or refreshed).
#[test]
fn another_nodes_suspension_reaches_the_snapshot_by_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let (node, shared) = clustered(dir.path());
    let a = super::node::agent(8);
    node.store().insert_agent(&a).unwrap();
    prove_fresh(&node, &shared);
    set_status_elsewhere(&shared, &a.id, AgentStatus::Suspended);
    eventually("the suspension is in the snapshot", || {
        shared.prove_now();
        node.snapshot()
            .is_ok_and(|s| s.agents.get(&a.id).unwrap().status == AgentStatus::Suspended)
    });
}

/// A resume made on another node lifts this node's detector suspension too (detectors
/// learn per node; the human's resume is shared through the store). Without it the agent
/// stayed refused on every node but the one that resumed it.
#[test]
fn a_resume_on_another_node_lifts_this_nodes_detector_suspension() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, sqlite) = super::common::node_over_store(dir.path(), |_| {});
    let shared = Arc::new(Shared {
        inner: sqlite,
        freshness: Mutex::new(Freshness::Unproven),
    });
    let node = Arc::new(super::common::node_over(dir.path(), shared.clone(), |c| {
        c.max_staleness = MAX_STALENESS;
        c.detect.enabled = true;
    }));
    mandate_service::follow::spawn_follower(&node).unwrap();
    let mut a = super::node::agent(9);
    a.status = AgentStatus::Suspended;
    node.store().insert_agent(&a).unwrap();
    let d = node.detector().unwrap();
    d.suspend(a.id.as_str());
    prove_fresh(&node, &shared);
    set_status_elsewhere(&shared, &a.id, AgentStatus::Active);
    eventually("the detector's suspension is lifted", || {
        !d.is_suspended(a.id.as_str())
    });
}

/// Issue 21, keys: a rotation another node made reaches this node by the feed alone (the
/// follower reloads the ring from the store, then the snapshot): it signs with the new
/// key, and its decisions verify with it.
#[test]
fn a_rotation_on_another_node_reaches_this_node_by_the_feed() {
    use mandate_core::clock::ManualClock;
    use mandate_core::random::OsRandom;
    use mandate_service::keys::{KeyFiles, KeyState};
    let dir = tempfile::tempdir().unwrap();
    let (node, shared) = clustered(dir.path());
    prove_fresh(&node, &shared);
    let old = node.keys.ring().current().kid().to_owned();
    // Another node over the same store, given this node's store key.
    let other_dir = tempfile::tempdir().unwrap();
    super::common::copy_store_key(dir.path(), other_dir.path());
    let other = KeyState::open(
        shared.inner.as_ref(),
        &KeyFiles::in_data_dir(other_dir.path()),
        &ManualClock::at_millis(T0 * 1000),
        &OsRandom,
    )
    .unwrap();
    let (retired, new) = other
        .rotate(
            shared.inner.as_ref(),
            Timestamp::from_secs(T0),
            &OsRandom,
            3660,
        )
        .unwrap();
    assert_eq!(retired, old);
    shared.prove_now();
    eventually("the node signs with the new key", || {
        node.keys.ring().current().kid() == new
    });
    eventually("its snapshot holds the new key", || {
        node.snapshot().is_ok_and(|s| s.ring.current().kid() == new)
    });
}

/// A mandate written on another node (an approval there) wakes this node's long-polling
/// readers (the agent waiting on this node for its mandate), by the feed alone.
#[test]
fn a_mandate_written_elsewhere_wakes_this_nodes_long_polls() {
    use mandate_core::agent::Grant;
    use mandate_core::clock::ManualClock;
    use mandate_core::id::MandateId;
    use mandate_core::mandate::{Mandate, MandateStatus};
    use mandate_core::random::OsRandom;

    let dir = tempfile::tempdir().unwrap();
    let (node, shared) = clustered(dir.path());
    let a = super::node::agent(10);
    node.store().insert_agent(&a).unwrap();
    prove_fresh(&node, &shared);
    let mut waiting = node.mandate_changes();
    waiting.borrow_and_update();
    let m = Mandate::requested(
        MandateId::generate(&ManualClock::at_millis(T0 * 1000), &OsRandom).unwrap(),
        a.id.clone(),
        "an approval elsewhere".into(),
        vec![Grant {
            actions: vec!["crm:read".into()],
            resources: vec!["crm:contact/*".into()],
            data_classes: vec![],
        }],
        600,
        MandateStatus::PendingApproval,
        Timestamp::from_secs(T0),
    );
    // Another node writes it (past this node's write path).
    shared.inner.insert_mandate(&m).unwrap();
    eventually("the long-poll is woken", || {
        waiting.has_changed().unwrap_or(false)
    });
}

/// The store knows its feed lost (the listening connection dropped): the node refuses at
/// once, though its last proof is still young (the issue: "its listen connection is down,
/// or no heartbeat for longer than `cluster.max_staleness`"), and resumes with the next
/// proof.
#[test]
fn a_lost_feed_refuses_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (node, shared) = clustered(dir.path());
    prove_fresh(&node, &shared);
    shared.set(Freshness::Unproven);
    assert!(node.snapshot().is_err(), "decided on a feed known lost");
    assert!(node.is_stale());
    prove_fresh(&node, &shared);
}

/// Regression (adversarial pass atk8): a node whose feed is lost holds a snapshot that
/// may miss a cutoff another node wrote (a Shared Signal ending a person's sessions
/// there). `verify_user_token` read that held snapshot anyway, so an approver's old token
/// still approved here; it now reads the cutoffs from the store while the node cannot
/// show its snapshot current.
#[test]
fn a_user_cutoff_written_elsewhere_is_in_force_while_the_feed_is_lost() {
    use mandate_token::keys::SigningKey;
    use mandate_token::user::{DevUserIssuer, TrustedIssuers, UserTokenError};
    let dir = tempfile::tempdir().unwrap();
    let idp = DevUserIssuer::new(
        SigningKey::generate(&mandate_core::random::OsRandom).unwrap(),
        "https://idp.example.com".into(),
        "http://mandate.test".into(),
    );
    let users = Arc::new(TrustedIssuers::new(vec![idp.trusted().unwrap()]).unwrap());
    let (_, _, sqlite) = super::common::node_over_store(dir.path(), |_| {});
    let shared = Arc::new(Shared {
        inner: sqlite,
        freshness: Mutex::new(Freshness::Unproven),
    });
    let store: Arc<dyn Store> = shared.clone();
    // No follower: the feed is lost, and the snapshot stays as it was built.
    let node = super::common::node_over(dir.path(), store, |c| {
        c.max_staleness = MAX_STALENESS;
        c.users = users;
    });
    let at = Timestamp::from_secs;
    let old = idp
        .issue("carol", None, &[], 3600, "u-old", at(T0 - 10))
        .unwrap();
    assert!(node.verify_user_token(&old, at(T0)).is_ok());
    // Another node acts on a Shared Signal about carol.
    shared
        .inner
        .set_user_sessions_not_before("https://idp.example.com", "carol", at(T0))
        .unwrap();
    assert!(
        node.snapshot().is_err(),
        "this node cannot show its snapshot current"
    );
    assert_eq!(
        node.verify_user_token(&old, at(T0 + 1)).unwrap_err(),
        UserTokenError::SessionsRevoked
    );
    let fresh = idp
        .issue("carol", None, &[], 3600, "u-new", at(T0 + 1))
        .unwrap();
    assert!(
        node.verify_user_token(&fresh, at(T0 + 1)).is_ok(),
        "a new session is fine"
    );
}
