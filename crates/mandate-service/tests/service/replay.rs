//! Policy impact replay is bounded (`INVARIANT (one replay per node)`, mandate-service
//! replay.rs): while one replay's job runs, a second is refused at once
//! (`ReplayRunning`) instead of queueing another blocking reader; and a caller that
//! hangs up gives the permit back when its job stops.
//!
//! The store is the real SQLite store behind a gate the test holds shut, so the first
//! replay's job is provably still inside a store read when the second one asks.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use mandate_core::id::AdminTokenId;
use mandate_service::actor::Actor;
use mandate_service::policies::{self, PolicyError, PolicySource};
use mandate_service::replay::{self, ReplayRequest};
use mandate_store::repo::{Result as StoreResult, Work};
use mandate_store::{Changes, Store, Topic};

/// A real store whose read units wait while the gate is shut.
#[derive(Debug)]
struct Gated {
    inner: Arc<dyn Store>,
    /// (shut, readers waiting at the gate)
    gate: Mutex<(bool, u32)>,
    moved: Condvar,
}

impl Gated {
    fn shut(&self, shut: bool) {
        self.gate.lock().unwrap().0 = shut;
        self.moved.notify_all();
    }

    /// Waits until some reader waits at the shut gate.
    fn wait_for_reader(&self) {
        let g = self.gate.lock().unwrap();
        let (g, t) = self
            .moved
            .wait_timeout_while(g, Duration::from_secs(10), |g| g.1 == 0)
            .unwrap();
        assert!(!t.timed_out(), "no reader reached the gate");
        drop(g);
    }
}

impl Store for Gated {
    fn read_unit(&self, work: &mut Work<'_>) -> StoreResult<()> {
        {
            let mut g = self.gate.lock().unwrap();
            if g.0 {
                g.1 += 1;
                self.moved.notify_all();
                g = self.moved.wait_while(g, |g| g.0).unwrap();
                g.1 -= 1;
            }
        }
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
    fn ping(&self) -> StoreResult<()> {
        self.inner.ping()
    }
    fn describe(&self) -> String {
        format!("gated {}", self.inner.describe())
    }
}

fn request(version: i64) -> ReplayRequest {
    ReplayRequest {
        version,
        since: None,
        until: None,
        limit: replay::DEFAULT_LIMIT,
        boundaries: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replay_is_refused_while_one_runs_and_a_dropped_one_frees_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, sqlite) = super::common::node_over_store(dir.path(), |_| {});
    let gated = Arc::new(Gated {
        inner: sqlite,
        gate: Mutex::new((false, 0)),
        moved: Condvar::new(),
    });
    let store: Arc<dyn Store> = gated.clone();
    let node = Arc::new(super::common::node_over(dir.path(), store, |_| {}));
    let admin = Actor::Admin(AdminTokenId::parse("adm_01JA0000000000000000000000").unwrap());
    let v = policies::add(
        &node,
        &admin,
        PolicySource {
            policies: "@id(\"all\") permit (principal, action, resource);".into(),
            ..PolicySource::default()
        },
    )
    .await
    .unwrap()
    .version;

    // The first replay's job stops inside a store read.
    gated.shut(true);
    let first = tokio::spawn({
        let node = Arc::clone(&node);
        async move { replay::replay(&node, request(v)).await }
    });
    gated.wait_for_reader();

    // A second is refused at once, without touching the store.
    let second = tokio::time::timeout(Duration::from_secs(5), replay::replay(&node, request(v)))
        .await
        .expect("a second replay must be refused, not queued behind the first");
    assert!(
        matches!(second, Err(PolicyError::ReplayRunning)),
        "{second:?}"
    );

    // The first caller hangs up; its job is still in the store, so the node is still
    // busy until the job stops.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    assert!(matches!(
        replay::replay(&node, request(v)).await,
        Err(PolicyError::ReplayRunning)
    ));

    // Once the job leaves the store it stops, and the node takes a replay again.
    gated.shut(false);
    let mut report = None;
    for _ in 0..200 {
        match replay::replay(&node, request(v)).await {
            Err(PolicyError::ReplayRunning) => tokio::time::sleep(Duration::from_millis(25)).await,
            other => {
                report = Some(other.unwrap());
                break;
            }
        }
    }
    let report = report.expect("the abandoned job never gave the permit back");
    assert_eq!(report.counts.decisions, 0);
}
