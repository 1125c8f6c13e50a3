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
        all_nodes: false,
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

const SCHEMA: &str = r#"
namespace Doc { entity File { owner?: String }; }
namespace Mandate {
  action "doc:read", "doc:write" in ["all"] appliesTo { principal: [Agent], resource: [Doc::File] };
}
"#;

const ACTIVE: &str = r#"
@id("work") permit (principal, action in Mandate::Action::"all", resource);
@id("root-files") forbid (principal, action == Mandate::Action::"doc:write", resource)
  when { resource has owner && resource.owner == "root" };
"#;

const DECISIONS: usize = 100_000;
const AGENTS: usize = 100;
const FILES: usize = 100;

/// The issue's check, on a generated log of 100,000 real decisions (decided and recorded
/// by the decision path every enforcement point uses): replaying the active version
/// changes nothing, and a version with one added forbid changes exactly the decisions
/// it matches — every allow on the two files it names, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_100k_decisions_changes_exactly_what_one_added_forbid_matches() {
    use mandate_core::agent::{AgentName, Boundary, Grant, Labels, Owner, Purpose};
    use mandate_engine::decide::{Principal, Resource, TokenAudience};
    use mandate_service::agents::{self, NewAgent};
    use mandate_service::decisions::{Question, decide_question, record_decisions};
    use mandate_service::metrics::Surface;

    let dir = tempfile::tempdir().unwrap();
    let (node, _clock) = super::common::node_in(dir.path(), |_| {});
    let node = Arc::new(node);
    let admin = Actor::Admin(AdminTokenId::parse("adm_01JA0000000000000000000000").unwrap());
    let add = |policies: String| {
        let node = Arc::clone(&node);
        let admin = admin.clone();
        async move {
            policies::add(
                &node,
                &admin,
                PolicySource {
                    policies,
                    schema_fragments: vec![SCHEMA.to_owned()],
                    ..PolicySource::default()
                },
            )
            .await
            .unwrap()
            .version
        }
    };
    let active = add(ACTIVE.to_owned()).await;
    policies::activate(&node, &admin, policies::Target::Version(active))
        .await
        .unwrap();
    let candidate = add(format!(
        "{ACTIVE}\n@id(\"two-files\") forbid (principal, action in [Mandate::Action::\"doc:read\", Mandate::Action::\"doc:write\"], resource) \
         when {{ [Doc::File::\"f-7\", Doc::File::\"f-13\"].contains(resource) }};"
    ))
    .await;
    let mut ids = Vec::new();
    for i in 0..AGENTS {
        let a = agents::register(
            &node,
            &admin,
            NewAgent {
                name: AgentName::try_from(format!("gen-{i}")).unwrap(),
                owner: Owner::try_from("alice@example.com".to_owned()).unwrap(),
                purpose: Purpose::try_from("generated".to_owned()).unwrap(),
                labels: Labels::default(),
                boundary: Boundary {
                    grants: vec![Grant {
                        actions: vec!["doc:*".into()],
                        resources: vec!["Doc::File/*".into()],
                        data_classes: Vec::new(),
                    }],
                    ..Boundary::default()
                },
            },
        )
        .await
        .unwrap();
        ids.push(a.id);
    }

    // The log: every agent reads and writes every file; every tenth file is root's.
    let context = serde_json::json!({});
    let mut allowed = 0_u64;
    let mut allowed_on_two = 0_u64;
    for batch in 0..DECISIONS / 1000 {
        let snapshot = node.snapshot().unwrap();
        let now = node.clock.now();
        let mut events = Vec::with_capacity(1000);
        for j in 0..1000 {
            let n = batch * 1000 + j;
            let file = n % FILES;
            let resource = Resource {
                type_name: "Doc::File".into(),
                id: format!("f-{file}"),
                attributes: if file.is_multiple_of(10) {
                    serde_json::json!({"owner": "root"})
                } else {
                    serde_json::json!({"owner": "alice"})
                },
            };
            let action = if (n / FILES).is_multiple_of(2) {
                "doc:read"
            } else {
                "doc:write"
            };
            let (d, e, _) = decide_question(
                &node,
                &snapshot,
                now,
                Question {
                    principal: Principal::Agent(ids[(n / 7) % AGENTS].as_str()),
                    action,
                    resource: &resource,
                    context: &context,
                    request_id: None,
                    trace_id: None,
                    actor: None,
                    via: None,
                    audience: TokenAudience::Mandate,
                },
            );
            if d.verdict() == mandate_core::decision::Verdict::Allow {
                allowed += 1;
                if file == 7 || file == 13 {
                    allowed_on_two += 1;
                }
            }
            events.push(e);
        }
        record_decisions(&node, Surface::Authorize, events, Vec::new(), None)
            .await
            .unwrap();
    }
    assert!(
        allowed > 0 && allowed < DECISIONS as u64,
        "a mix: {allowed}"
    );
    assert!(allowed_on_two > 0);

    let same = replay::replay(&node, request(active)).await.unwrap();
    assert_eq!(same.counts.decisions, DECISIONS as u64);
    assert_eq!(same.counts.same, DECISIONS as u64, "{:?}", same.counts);
    assert!(!same.truncated);

    let changed = replay::replay(&node, request(candidate)).await.unwrap();
    let c = &changed.counts;
    assert_eq!(c.decisions, DECISIONS as u64);
    assert_eq!(c.allow_to_deny, allowed_on_two, "{c:?}");
    assert_eq!(c.same, DECISIONS as u64 - allowed_on_two, "{c:?}");
    assert_eq!(
        c.deny_to_allow + c.other_changes + c.skipped + c.errors,
        0,
        "{c:?}"
    );
    assert!(
        changed
            .changes
            .iter()
            .all(|g| g.policies == ["two-files"] && g.reason == "forbidden_by_policy"),
        "{:?}",
        changed.changes
    );
}
