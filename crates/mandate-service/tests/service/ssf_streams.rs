//! Shared Signals streams receivers manage, over a real node and SQLite store: a poll
//! stream queues the SETs of the events it takes, holds them until acknowledged, never
//! returns an acknowledged one (across a restart too), delivers verification events,
//! holds while paused, drops while disabled, leaves removed subjects out; bad input
//! changes nothing; every change is recorded.

#![expect(
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test: JSON is read by index; a long poll's wait is measured on the real clock"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use mandate_core::id::AdminTokenId;
use mandate_service::Node;
use mandate_service::actor::Actor;
use mandate_service::ssf_streams::{
    PollAnswer, PollRequest, PushSenders, SetSender, SetSending, Status, Stream, StreamError,
    StreamInput, VERIFICATION, spawn,
};
use mandate_store::prelude::*;
use serde_json::{Value, json};

use crate::common::node_over_store;

const AGENT_A: &str = "agt_01JA0000000000000000000001";
const AGENT_B: &str = "agt_01JA0000000000000000000002";

fn admin() -> Actor {
    Actor::Admin(AdminTokenId::parse("adm_01JA0000000000000000000000").unwrap())
}

/// Push streams' SETs, kept: the push sender the HTTP edge would make.
#[derive(Clone, Default)]
struct Pushed(Arc<Mutex<Vec<(String, String)>>>);

impl PushSenders for Pushed {
    fn sender(&self, _stream: &Stream) -> Result<Box<dyn SetSender>, String> {
        Ok(Box::new(self.clone()))
    }
}

impl SetSender for Pushed {
    fn send<'a>(&'a mut self, sets: &'a [(String, String)]) -> SetSending<'a> {
        Box::pin(async move {
            self.0.lock().unwrap().extend(sets.iter().cloned());
            Ok(())
        })
    }
}

fn poll_input() -> StreamInput {
    StreamInput {
        delivery: Some(("urn:ietf:rfc:8936".into(), None)),
        ..StreamInput::default()
    }
}

/// Records an `agent.suspended` event about `agent` (durable when it returns); its id.
async fn suspended(node: &Node, agent: &str) -> String {
    let mut e = node.event("agent.suspended");
    e.agent = Some(agent.into());
    node.audit.record_all(vec![e]).await.remove(0).unwrap()
}

/// The claims of a SET (its signature is checked end to end, against PyJWT).
fn claims(set: &str) -> Value {
    let payload = set.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn poll(node: &Arc<Node>, id: &str, ack: Vec<String>) -> PollAnswer {
    node.poll_stream(
        id.into(),
        PollRequest {
            ack,
            return_immediately: true,
            ..PollRequest::default()
        },
        Duration::ZERO,
    )
    .await
    .unwrap()
}

/// Polls (acknowledging nothing) until `n` SETs wait, up to 20 s.
async fn until_queued(node: &Arc<Node>, id: &str, n: usize) -> PollAnswer {
    for _ in 0..400 {
        let a = poll(node, id, Vec::new()).await;
        if a.sets.len() >= n {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {n} SETs on {id}");
}

fn kinds(store: &dyn Store) -> Vec<String> {
    let len = store.audit_len().unwrap();
    store
        .audit_bodies(0, len)
        .unwrap()
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Waits for the node to see a stream's change (it looks every 200 ms).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(600)).await;
}

fn life<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_poll_stream_holds_sets_until_acknowledged_and_never_returns_an_acknowledged_one() {
    let dir = tempfile::tempdir().unwrap();
    let (stream_id, first) = life(async {
        let (node, _clock, store) = node_over_store(dir.path(), |_| {});
        let node = Arc::new(node);
        // Before the stream: never its.
        suspended(&node, AGENT_A).await;
        let stream = node.create_stream(&admin(), poll_input()).await.unwrap();
        assert_eq!(stream.status, Status::Enabled);
        assert_eq!(stream.aud, stream.id, "a poll stream's default `aud`");
        assert_eq!(
            stream.events_delivered(),
            [
                mandate_export::ssf::SESSION_REVOKED,
                mandate_export::ssf::CREDENTIAL_CHANGE
            ]
        );
        spawn(&node, Arc::new(Pushed::default()));
        let ids = [
            suspended(&node, AGENT_A).await,
            suspended(&node, AGENT_B).await,
        ];
        // A decision makes no SET.
        node.audit.record_all(vec![node.event("decision")]).await;
        let a = until_queued(&node, &stream.id, 2).await;
        let jtis: Vec<&str> = a.sets.iter().map(|(j, _)| j.as_str()).collect();
        assert_eq!(
            jtis,
            [ids[0].as_str(), ids[1].as_str()],
            "in order, each once"
        );
        assert!(!a.more);
        let c = claims(&a.sets[0].1);
        assert_eq!(c["jti"], ids[0].as_str());
        assert_eq!(c["aud"], stream.id.as_str());
        assert_eq!(c["iss"], node.config.issuer.as_str());
        assert_eq!(c["sub_id"]["sub"], AGENT_A);
        assert!(c["events"][mandate_export::ssf::SESSION_REVOKED].is_object());
        // At most `maxEvents`, and `moreAvailable`.
        let one = node
            .poll_stream(
                stream.id.clone(),
                PollRequest {
                    max_events: Some(1),
                    return_immediately: true,
                    ..PollRequest::default()
                },
                Duration::ZERO,
            )
            .await
            .unwrap();
        assert_eq!((one.sets.len(), one.more), (1, true));
        // Acknowledged (with a `jti` never sent: ignored): gone; the other stays.
        let a = poll(&node, &stream.id, vec![ids[0].clone(), "nope:1".into()]).await;
        let jtis: Vec<&str> = a.sets.iter().map(|(j, _)| j.as_str()).collect();
        assert_eq!(jtis, [ids[1].as_str()]);
        let a = poll(&node, &stream.id, vec![ids[1].clone()]).await;
        assert!(a.sets.is_empty() && !a.more);
        // Polls are deliveries, not acts: only the stream's creation is recorded.
        assert_eq!(
            kinds(store.as_ref())
                .iter()
                .filter(|k| k.starts_with("ssf."))
                .collect::<Vec<_>>(),
            ["ssf.stream.created"]
        );
        (stream.id, ids)
    });
    // A restart (its loop resends from its stored cursor, at least once): what was
    // acknowledged is never returned again; what comes next is.
    life(async {
        let (node, _clock, store) = node_over_store(dir.path(), |_| {});
        let node = Arc::new(node);
        // What a loop restarted from a cursor stored before them sends again.
        let resent: Vec<(String, String)> = first
            .iter()
            .map(|j| (j.clone(), "resent".to_owned()))
            .collect();
        store.queue_ssf_sets(&stream_id, &resent).unwrap();
        spawn(&node, Arc::new(Pushed::default()));
        let next = suspended(&node, AGENT_A).await;
        let a = until_queued(&node, &stream_id, 1).await;
        let jtis: Vec<&str> = a.sets.iter().map(|(j, _)| j.as_str()).collect();
        assert_eq!(jtis, [next.as_str()]);
        for old in &first {
            assert!(!jtis.contains(&old.as_str()));
        }
    });
}

#[test]
fn verification_paused_disabled_and_removed_subjects() {
    life(async {
        let dir = tempfile::tempdir().unwrap();
        let (node, _clock, store) = node_over_store(dir.path(), |_| {});
        let node = Arc::new(node);
        let pushed = Pushed::default();
        spawn(&node, Arc::new(pushed.clone()));
        let stream = node.create_stream(&admin(), poll_input()).await.unwrap();
        let id = stream.id.clone();

        // Verification: an SSF `verification` SET about the stream, with the state.
        node.verify_stream(&admin(), id.clone(), Some("st-1".into()))
            .await
            .unwrap();
        let a = until_queued(&node, &id, 1).await;
        let c = claims(&a.sets[0].1);
        assert_eq!(c["events"][VERIFICATION]["state"], "st-1");
        assert_eq!(c["sub_id"], json!({"format": "opaque", "id": id}));
        poll(&node, &id, vec![a.sets[0].0.clone()]).await;

        // Removed: no SET about the agent; the other agent's come.
        let subject = json!({"format": "iss_sub", "iss": node.config.issuer, "sub": AGENT_A});
        node.remove_stream_subject(&admin(), id.clone(), &subject)
            .await
            .unwrap();
        // At once: the loop checks its stream before each batch (`INVARIANT
        // (delivered as the stream is now)`), though the node restarts it only when it
        // next looks (200 ms).
        suspended(&node, AGENT_A).await;
        let b = suspended(&node, AGENT_B).await;
        let a = until_queued(&node, &id, 1).await;
        assert_eq!(a.sets.len(), 1);
        assert_eq!(a.sets[0].0, b);
        poll(&node, &id, vec![b]).await;
        node.add_stream_subject(&admin(), id.clone(), &subject)
            .await
            .unwrap();
        settle().await;

        // Paused: held, then delivered once enabled.
        node.set_stream_status(
            &admin(),
            id.clone(),
            Status::Paused,
            Some("maintenance".into()),
        )
        .await
        .unwrap();
        settle().await;
        let held = suspended(&node, AGENT_A).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(poll(&node, &id, Vec::new()).await.sets.is_empty(), "held");
        let s = node
            .set_stream_status(&admin(), id.clone(), Status::Enabled, None)
            .await
            .unwrap();
        assert_eq!(s.status_reason, None);
        let a = until_queued(&node, &id, 1).await;
        assert_eq!(a.sets[0].0, held);
        poll(&node, &id, vec![held]).await;

        // Disabled: dropped, never delivered, even once enabled again.
        node.set_stream_status(&admin(), id.clone(), Status::Disabled, None)
            .await
            .unwrap();
        settle().await;
        let dropped = suspended(&node, AGENT_A).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        node.set_stream_status(&admin(), id.clone(), Status::Enabled, None)
            .await
            .unwrap();
        let after = suspended(&node, AGENT_B).await;
        let a = until_queued(&node, &id, 1).await;
        let jtis: Vec<&str> = a.sets.iter().map(|(j, _)| j.as_str()).collect();
        assert_eq!(jtis, [after.as_str()], "{dropped} was dropped");

        // A push stream made now delivers through its sender, from now on.
        let push = node
            .create_stream(
                &admin(),
                StreamInput {
                    delivery: Some((
                        "urn:ietf:rfc:8935".into(),
                        Some("http://127.0.0.1:9/ssf/push".into()),
                    )),
                    events_requested: Some(vec![mandate_export::ssf::SESSION_REVOKED.into()]),
                    ..StreamInput::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(push.aud, "http://127.0.0.1:9");
        let p = suspended(&node, AGENT_B).await;
        for _ in 0..200 {
            if !pushed.0.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got: Vec<String> = pushed
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(j, _)| j.clone())
            .collect();
        assert_eq!(got, [p]);
        // Deleted: its loop stops, and it is gone.
        node.delete_stream(&admin(), push.id.clone()).await.unwrap();
        assert!(matches!(
            node.stream(push.id.clone()).await,
            Err(StreamError::NotFound(_))
        ));
        tokio::time::sleep(Duration::from_millis(600)).await;
        suspended(&node, AGENT_B).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            pushed.0.lock().unwrap().len(),
            1,
            "a deleted stream sends nothing"
        );

        let ssf: Vec<String> = kinds(store.as_ref())
            .into_iter()
            .filter(|k| k.starts_with("ssf."))
            .collect();
        assert_eq!(
            ssf,
            [
                "ssf.stream.created",
                "ssf.stream.verification",
                "ssf.stream.subject_removed",
                "ssf.stream.subject_added",
                "ssf.stream.status_updated",
                "ssf.stream.status_updated",
                "ssf.stream.status_updated",
                "ssf.stream.status_updated",
                "ssf.stream.created",
                "ssf.stream.deleted",
            ]
        );
    });
}

#[test]
fn bad_input_changes_nothing() {
    life(async {
        let dir = tempfile::tempdir().unwrap();
        let (node, _clock, store) = node_over_store(dir.path(), |_| {});
        let node = Arc::new(node);
        let stream = node.create_stream(&admin(), poll_input()).await.unwrap();
        let id = stream.id.clone();
        let len = store.audit_len().unwrap();
        let bad_inputs = [
            StreamInput::default(),
            StreamInput {
                delivery: Some(("urn:example:carrier-pigeon".into(), None)),
                ..StreamInput::default()
            },
            StreamInput {
                delivery: Some(("urn:ietf:rfc:8935".into(), None)),
                ..StreamInput::default()
            },
            StreamInput {
                delivery: Some(("urn:ietf:rfc:8935".into(), Some("ftp://x/".into()))),
                ..StreamInput::default()
            },
            StreamInput {
                delivery: Some(("urn:ietf:rfc:8936".into(), Some("http://evil/".into()))),
                ..StreamInput::default()
            },
            StreamInput {
                delivery: Some((
                    "urn:ietf:rfc:8935".into(),
                    Some("http://user:secret@rx.test/push".into()),
                )),
                ..StreamInput::default()
            },
            StreamInput {
                description: Some(String::new()),
                ..poll_input()
            },
        ];
        for input in bad_inputs {
            let e = node.create_stream(&admin(), input.clone()).await;
            assert!(
                matches!(e, Err(StreamError::Invalid(_))),
                "{input:?}: {e:?}"
            );
        }
        // A push stream cannot become a poll stream in place.
        let e = node
            .update_stream(
                &admin(),
                id.clone(),
                StreamInput {
                    delivery: Some(("urn:ietf:rfc:8935".into(), Some("http://r/".into()))),
                    ..StreamInput::default()
                },
                false,
            )
            .await;
        assert!(matches!(e, Err(StreamError::Invalid(_))), "{e:?}");
        for subject in [
            json!({"format": "iss_sub", "iss": "https://other.example", "sub": AGENT_A}),
            json!({"format": "opaque", "id": "not-an-agent"}),
            json!({"format": "email", "email": "a@b.c"}),
        ] {
            let e = node
                .remove_stream_subject(&admin(), id.clone(), &subject)
                .await;
            assert!(
                matches!(e, Err(StreamError::Invalid(_))),
                "{subject}: {e:?}"
            );
        }
        let e = node.verify_stream(&admin(), "sst_nope".into(), None).await;
        assert!(matches!(e, Err(StreamError::NotFound(_))), "{e:?}");
        let e = node
            .poll_stream(
                id.clone(),
                PollRequest {
                    max_events: Some(1001),
                    ..PollRequest::default()
                },
                Duration::ZERO,
            )
            .await;
        assert!(matches!(e, Err(StreamError::Invalid(_))), "{e:?}");
        assert_eq!(node.stream(id).await.unwrap(), stream);
        assert_eq!(node.streams().await.unwrap().len(), 1);
        assert_eq!(store.audit_len().unwrap(), len, "nothing recorded");
    });
}

#[test]
fn a_long_poll_answers_when_a_set_arrives() {
    life(async {
        let dir = tempfile::tempdir().unwrap();
        let (node, _clock, _store) = node_over_store(dir.path(), |_| {});
        let node = Arc::new(node);
        spawn(&node, Arc::new(Pushed::default()));
        let stream = node.create_stream(&admin(), poll_input()).await.unwrap();
        let waiting = {
            let (node, id) = (Arc::clone(&node), stream.id.clone());
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let a = node
                    .poll_stream(id, PollRequest::default(), Duration::from_secs(10))
                    .await
                    .unwrap();
                (a, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let jti = suspended(&node, AGENT_A).await;
        let (a, took) = waiting.await.unwrap();
        assert_eq!(a.sets.len(), 1);
        assert_eq!(a.sets[0].0, jti);
        assert!(took < Duration::from_secs(5), "{took:?}");
        // With nothing to return, a long poll ends at its bound.
        let started = std::time::Instant::now();
        let a = node
            .poll_stream(
                stream.id.clone(),
                PollRequest {
                    ack: vec![jti],
                    ..PollRequest::default()
                },
                Duration::from_millis(400),
            )
            .await
            .unwrap();
        assert!(a.sets.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(400));
    });
}

/// A store that counts the read units run against it (the SQLite store underneath).
#[derive(Debug)]
struct Counted {
    inner: Arc<dyn mandate_store::Store>,
    reads: std::sync::atomic::AtomicU64,
}

impl mandate_store::Store for Counted {
    fn read_unit(
        &self,
        work: &mut mandate_store::repo::Work<'_>,
    ) -> mandate_store::repo::Result<()> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.read_unit(work)
    }
    fn write_unit(
        &self,
        work: &mut mandate_store::repo::Work<'_>,
    ) -> mandate_store::repo::Result<()> {
        self.inner.write_unit(work)
    }
    fn topic_seq(&self, topic: mandate_store::Topic) -> u64 {
        self.inner.topic_seq(topic)
    }
    fn changes_since(&self, after: u64, wait: Duration) -> mandate_store::Changes {
        self.inner.changes_since(after, wait)
    }
    fn ping(&self) -> mandate_store::repo::Result<()> {
        self.inner.ping()
    }
    fn describe(&self) -> String {
        format!("counted {}", self.inner.describe())
    }
}

/// Adversarial pass 9: every waiting long poll read the store every 50 ms, and its wait
/// was a count of those reads. 1,500 concurrent long polls on an empty stream (one
/// admin token) read it 30,000 times a second, pegged both cores, made `/v1/authorize`
/// 10 to 60 times slower and stretched each poll from 15 s to 26 s. Now a waiter reads
/// only when the change feed moved (or once a second), at most `MAX_LONG_POLLS` waiters
/// read at all, and the wait is a timer. And a poll waiting on a stream that is deleted
/// ends with `NotFound` (it answered an empty 200 at the end of its wait).
#[test]
fn atk9_many_long_polls_barely_read_the_store_and_end_on_time() {
    life(async {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, sqlite) = node_over_store(dir.path(), |_| {});
        let counted = Arc::new(Counted {
            inner: sqlite,
            reads: std::sync::atomic::AtomicU64::new(0),
        });
        let store: Arc<dyn mandate_store::Store> = counted.clone();
        let node = Arc::new(crate::common::node_over(dir.path(), store, |_| {}));
        let stream = node.create_stream(&admin(), poll_input()).await.unwrap();
        let wait = Duration::from_secs(2);
        let polls = 200;
        let before = counted.reads.load(std::sync::atomic::Ordering::Relaxed);
        let started = std::time::Instant::now();
        let waiting: Vec<_> = (0..polls)
            .map(|_| {
                let (node, id) = (Arc::clone(&node), stream.id.clone());
                tokio::spawn(async move {
                    let a = node.poll_stream(id, PollRequest::default(), wait).await;
                    (a, started.elapsed())
                })
            })
            .collect();
        for w in waiting {
            let (a, took) = w.await.unwrap();
            assert!(a.unwrap().sets.is_empty());
            assert!(took >= wait, "{took:?}");
            assert!(took < wait + Duration::from_secs(2), "{took:?}");
        }
        let reads = counted.reads.load(std::sync::atomic::Ordering::Relaxed) - before;
        // 200 polls × (a read to start, one a second while waiting for the 64 that look,
        // one to end) is under 1,000; reading every 50 ms was 200 × 40 = 8,000.
        assert!(reads < 1_500, "{reads} store reads for {polls} long polls");

        // A long poll of a stream deleted while it waits ends with `NotFound`.
        let waiting = {
            let (node, id) = (Arc::clone(&node), stream.id.clone());
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let a = node
                    .poll_stream(id, PollRequest::default(), Duration::from_secs(10))
                    .await;
                (a, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        node.delete_stream(&admin(), stream.id.clone())
            .await
            .unwrap();
        let (a, took) = waiting.await.unwrap();
        assert!(matches!(a, Err(StreamError::NotFound(_))), "{a:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    });
}
