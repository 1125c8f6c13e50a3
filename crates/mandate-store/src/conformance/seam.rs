//! The seam itself: units of work (all or nothing, read-only reads, several writes that
//! commit together), the change feed (what a write publishes, what a read does not, a
//! wait that times out, a waiter woken from another thread), and the two invariants a
//! backend could get wrong on its own: decommission publishes credentials, and a
//! mandate's identity is fixed.

#![expect(clippy::unwrap_used, reason = "checks are tests: a failure panics")]
#![expect(
    clippy::disallowed_methods,
    reason = "the feed's waits are measured on the monotonic clock they run on"
)]

use std::time::{Duration, Instant};

use mandate_core::agent::AgentStatus;
use mandate_core::clock::ManualClock;
use mandate_core::id::MandateId;
use mandate_core::mandate::{Mandate, MandateStatus};
use mandate_core::random::OsRandom;

use super::{T0, agent, assert_conflict, at, secret_credential};
use crate::prelude::*;
use crate::{Topic, Topics};

/// How long a check waits for a wake-up that should come at once.
const BOUND: Duration = Duration::from_secs(5);

/// The newest sequence number of `store`'s change feed.
fn latest(store: &dyn Store) -> u64 {
    store.changes_since(0, Duration::ZERO).seq
}

/// The caller's own error type, carrying a value to see it comes back unchanged.
#[derive(Debug, PartialEq)]
enum Mine {
    Store(String),
    Nope(u32),
}

impl From<StoreError> for Mine {
    fn from(e: StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

/// A write unit whose work fails after writing rolls every write back, returns the
/// work's error, and leaves the store usable.
// Seen failing: with SQLite's write_unit committing after a failed work
// (`work(&db).ok()` before `tx.commit()`), the agent was present.
pub fn a_failing_write_unit_writes_nothing(store: &dyn Store) {
    let a = agent(1, "doomed", "alice@example.com", &[]);
    let c = secret_credential(10, &a.id);
    let r = store.write_unit(&mut |r| {
        r.insert_agent(&a)?;
        r.insert_credential(&c, Some("$argon2id$fake"))?;
        Err(StoreError::Conflict("refused".into()))
    });
    assert!(
        matches!(&r, Err(StoreError::Conflict(m)) if m == "refused"),
        "{r:?}"
    );
    assert_eq!(store.get_agent(&a.id).unwrap(), None);
    assert!(store.credentials(&a.id).unwrap().is_empty());
    // The store is still usable, and the same writes succeed now.
    store.insert_agent(&a).unwrap();
    store.insert_credential(&c, Some("$argon2id$fake")).unwrap();
}

/// `StoreExt::write` returns the work's own error value unchanged, having written
/// nothing; a store error inside comes back through `From`.
// Seen failing: with the same mutation, the agent of the refused unit was present.
pub fn write_returns_the_callers_own_error(store: &dyn Store) {
    let a = agent(1, "doomed", "alice@example.com", &[]);
    let r = store.write(|r| -> Result<(), Mine> {
        r.insert_agent(&a)?;
        Err(Mine::Nope(42))
    });
    assert_eq!(r, Err(Mine::Nope(42)));
    assert_eq!(store.get_agent(&a.id).unwrap(), None);

    store.insert_agent(&a).unwrap();
    let twin = agent(2, "doomed", "bob@example.com", &[]);
    let r = store.write(|r| -> Result<(), Mine> { Ok(r.insert_agent(&twin)?) });
    assert!(matches!(r, Err(Mine::Store(_))), "{r:?}");
    let fine = agent(3, "fine", "bob@example.com", &[]);
    let got = store.write(|r| -> Result<u32, Mine> {
        r.insert_agent(&fine)?;
        Ok(7)
    });
    assert_eq!(got, Ok(7));
    assert_eq!(store.get_agent(&fine.id).unwrap(), Some(fine));
}

/// A write inside a read unit is refused with `ReadOnly` and writes nothing, even when
/// the work swallows the refusal and succeeds.
// Seen failing: with SQLite's `touch` not checking `writable` (`if false`), the insert
// succeeded and the agent was written.
pub fn a_write_in_a_read_unit_is_refused_and_writes_nothing(store: &dyn Store) {
    let a = agent(1, "sneaky", "alice@example.com", &[]);
    let r = store.read_unit(&mut |r| r.insert_agent(&a));
    assert!(matches!(r, Err(StoreError::ReadOnly)), "{r:?}");
    assert_eq!(store.get_agent(&a.id).unwrap(), None);

    let mut refused = None;
    store
        .read_unit(&mut |r| {
            refused = Some(r.insert_agent(&a));
            Ok(())
        })
        .unwrap();
    assert!(
        matches!(refused, Some(Err(StoreError::ReadOnly))),
        "{refused:?}"
    );
    assert_eq!(store.get_agent(&a.id).unwrap(), None);

    let r = store.read(|r| r.put_secret("s", b"n", b"c", at(0)));
    assert!(matches!(r, Err(StoreError::ReadOnly)), "{r:?}");
    assert_eq!(store.get_secret("s").unwrap(), None);
}

/// Several writes in one write unit all commit, and later ones see earlier ones.
// Seen failing: with SQLite's write_unit dropping its transaction instead of committing
// it, the agents were absent after the unit.
pub fn two_writes_in_one_unit_both_commit(store: &dyn Store) {
    let a = agent(1, "first", "alice@example.com", &[]);
    let b = agent(2, "second", "alice@example.com", &[]);
    let c = secret_credential(10, &a.id);
    let seen = store
        .write(|r| -> Result<bool, StoreError> {
            r.insert_agent(&a)?;
            r.insert_agent(&b)?;
            r.insert_credential(&c, Some("$argon2id$fake"))?;
            Ok(r.get_agent(&b.id)?.is_some())
        })
        .unwrap();
    assert!(seen, "a unit reads its own writes");
    assert_eq!(store.get_agent(&a.id).unwrap(), Some(a.clone()));
    assert_eq!(store.get_agent(&b.id).unwrap(), Some(b));
    assert_eq!(store.credentials(&a.id).unwrap().len(), 1);
}

/// A write unit touching agents moves `topic_seq(Agents)` and is listed by
/// `changes_since` with `Agents` and no topic it did not touch.
// Seen failing: with SQLite's write_unit not publishing, `topic_seq(Agents)` stayed put.
pub fn a_write_unit_publishes_the_topics_it_touched(store: &dyn Store) {
    let before = latest(store);
    let agents_before = store.topic_seq(Topic::Agents);
    let mandates_before = store.topic_seq(Topic::Mandates);
    let a = agent(1, "news", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    assert!(store.topic_seq(Topic::Agents) > agents_before);
    assert_eq!(store.topic_seq(Topic::Mandates), mandates_before);
    let c = store.changes_since(before, Duration::ZERO);
    assert!(c.seq > before, "{c:?}");
    assert!(c.topics.contains(Topic::Agents), "{c:?}");
    assert!(!c.topics.contains(Topic::Mandates), "{c:?}");
    assert_eq!(c.topics, Topics::NONE.with(Topic::Agents), "{c:?}");
    assert_eq!(store.topic_seq(Topic::Agents), c.seq);
}

/// Reads (single calls and read units) publish nothing.
// Seen failing: with SQLite's read_unit publishing `Agents`, the feed moved.
pub fn reads_publish_nothing(store: &dyn Store) {
    let a = agent(1, "quiet", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    let after = latest(store);
    let agents = store.topic_seq(Topic::Agents);
    store.get_agent(&a.id).unwrap();
    store
        .list_agents(&crate::AgentFilter::default(), None, 10)
        .unwrap();
    store.credentials(&a.id).unwrap();
    store.audit_len().unwrap();
    store
        .read(|r| {
            r.get_agent(&a.id)?;
            r.active_mandates(at(0))
        })
        .unwrap();
    let c = store.changes_since(after, Duration::ZERO);
    assert_eq!((c.seq, c.topics), (after, Topics::NONE), "{c:?}");
    assert_eq!(store.topic_seq(Topic::Agents), agents);
}

/// `changes_since(latest, wait)` with no change returns after the wait, with no topics.
// Seen failing: with SQLite's changes_since passing a zero wait to the feed, it returned
// at once.
pub fn a_wait_with_no_change_times_out_empty(store: &dyn Store) {
    store
        .insert_agent(&agent(1, "once", "alice@example.com", &[]))
        .unwrap();
    let after = latest(store);
    let started = Instant::now();
    let c = store.changes_since(after, Duration::from_millis(50));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(50),
        "returned after {waited:?}"
    );
    assert!(waited < BOUND, "returned after {waited:?}");
    assert_eq!((c.seq, c.topics), (after, Topics::NONE), "{c:?}");
}

/// A waiter in `changes_since` on another thread is woken by a write, well before its
/// wait ends.
// Seen failing: with SQLite's write_unit not publishing, the waiter slept the whole 5 s
// and saw no topic; with a zero wait passed to the feed, it returned before the write.
pub fn a_write_wakes_a_waiter_on_another_thread(store: &dyn Store) {
    let after = latest(store);
    let a = agent(1, "wake", "alice@example.com", &[]);
    let (c, waited) = std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let started = Instant::now();
            let c = store.changes_since(after, BOUND);
            (c, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        store.insert_agent(&a).unwrap();
        waiter.join().unwrap()
    });
    assert!(waited < BOUND, "the waiter was not woken: {waited:?}");
    assert!(c.seq > after, "{c:?}");
    assert!(c.topics.contains(Topic::Agents), "{c:?}");
}

/// Decommissioning an agent publishes `Credentials` (its credentials were revoked), so
/// the credentials generation moves; suspending it does not.
// Seen failing: with SQLite's update_agent not touching `Credentials` on decommission,
// the generation stayed put.
pub fn decommissioning_publishes_credentials(store: &dyn Store) {
    let a = agent(1, "retiring", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    store
        .insert_credential(&secret_credential(10, &a.id), Some("$argon2id$fake"))
        .unwrap();

    let before = latest(store);
    let generation = store.credentials_generation();
    store
        .modify_agent(&a.id, at(1), |x| -> Result<(), StoreError> {
            x.status = AgentStatus::Suspended;
            Ok(())
        })
        .unwrap();
    assert_eq!(store.credentials_generation(), generation, "suspending");
    let c = store.changes_since(before, Duration::ZERO);
    assert!(!c.topics.contains(Topic::Credentials), "{c:?}");

    let before = latest(store);
    store
        .modify_agent(&a.id, at(2), |x| -> Result<(), StoreError> {
            x.status = AgentStatus::Decommissioned;
            Ok(())
        })
        .unwrap();
    assert_ne!(
        store.credentials_generation(),
        generation,
        "decommissioning"
    );
    let c = store.changes_since(before, Duration::ZERO);
    assert!(c.topics.contains(Topic::Credentials), "{c:?}");
    assert!(c.topics.contains(Topic::Agents), "{c:?}");
}

/// INVARIANT (mandate identity), through `update_mandate` itself: a change of id or
/// agent is a `Conflict` and writes nothing (not even the change's other fields).
// Seen failing: with SQLite's update_mandate not comparing id and agent (`if false`), the
// new id came back `NotFound("mandate")` instead of `Conflict`.
pub fn update_mandate_refuses_a_new_id_or_agent(store: &dyn Store) {
    let a = agent(1, "holder", "alice@example.com", &[]);
    let b = agent(2, "other", "bob@example.com", &[]);
    store.insert_agent(&a).unwrap();
    store.insert_agent(&b).unwrap();
    let id = |ms| MandateId::generate(&ManualClock::at_millis(T0 * 1000 + ms), &OsRandom);
    let m = Mandate::requested(
        id(10).unwrap(),
        a.id.clone(),
        "steady".into(),
        vec![],
        600,
        MandateStatus::PendingApproval,
        at(0),
    );
    store.insert_mandate(&m).unwrap();
    let fresh = id(11).unwrap();
    assert_conflict(store.update_mandate(&m.id, false, &mut |x, _| {
        x.id = fresh.clone();
        x.intent = "moved".into();
        Ok(())
    }));
    assert_conflict(store.update_mandate(&m.id, true, &mut |x, _| {
        x.agent = b.id.clone();
        x.intent = "moved".into();
        Ok(())
    }));
    assert_eq!(store.get_mandate(&m.id).unwrap(), Some(m));
    assert_eq!(store.get_mandate(&fresh).unwrap(), None);
    assert!(store.mandates_of_agent(&b.id).unwrap().is_empty());
}
