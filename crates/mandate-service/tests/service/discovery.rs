//! Discovery runs (mandate-service discovery.rs) over a real node on a SQLite store:
//! a `kubectl get pods -o json` document reconciled with the registry (matched by link
//! and by labels, shadows, ghosts), one `discovery.run` event a run, drafts registered
//! suspended with the labels the next run matches, refusals that record nothing, and the
//! scheduled job's runs and failures.

use std::sync::Arc;

use mandate_core::agent::{AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
use mandate_core::id::AdminTokenId;
use mandate_store::prelude::*;
use serde_json::{Value, json};

use mandate_service::Node;
use mandate_service::actor::Actor;
use mandate_service::agents::{self, NewAgent};
use mandate_service::discovery::{
    self, DiscoveryError, FileFetch, RunRequest, Scheduled, Selector, Source, Trigger,
};

struct Env {
    node: Arc<Node>,
    dir: tempfile::TempDir,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = super::common::node_in(dir.path(), |_| {});
    Env {
        node: Arc::new(node),
        dir,
    }
}

fn admin() -> Actor {
    Actor::Admin(AdminTokenId::parse("adm_01JA0000000000000000000000").unwrap())
}

fn events(node: &Node, kind: &str) -> Vec<Value> {
    let store = node.store();
    store
        .audit_bodies(0, store.audit_len().unwrap())
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str::<Value>(b).unwrap())
        .filter(|e| e["kind"] == kind)
        .collect()
}

async fn register(node: &Arc<Node>, name: &str, labels: &[(&str, &str)]) -> String {
    let labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<std::collections::BTreeMap<_, _>>();
    let new = NewAgent {
        name: AgentName::try_from(name.to_owned()).unwrap(),
        owner: Owner::try_from("alice@example.com".to_owned()).unwrap(),
        purpose: Purpose::try_from("discovery tests".to_owned()).unwrap(),
        labels: Labels::try_from(labels).unwrap(),
        boundary: Boundary::default(),
    };
    agents::register(node, &admin(), new)
        .await
        .unwrap()
        .id
        .to_string()
}

/// A pod as `kubectl get pods -o json` prints one.
fn pod(ns: &str, name: &str, labels: Value, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"),
                     "labels": labels, "annotations": annotations},
        "spec": {"containers": [{"name": "main", "image": "agent:1"}]},
        "status": {"phase": "Running"}
    })
}

fn list(items: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "List", "items": items,
                               "metadata": {"resourceVersion": ""}}))
    .unwrap()
}

fn req(register: bool) -> RunRequest {
    RunRequest {
        source: Source::Kubernetes,
        selector: Selector::kubernetes_default(),
        register,
        trigger: Trigger::Api,
    }
}

/// The cluster of these tests: a pod linked to `linked` by annotation, one with an
/// owner and no agent, one without an owner, one whose owner is not a valid owner, and
/// a web pod the default selector leaves out.
fn cluster(linked: &str) -> Vec<u8> {
    let agent = json!({"app": "ai-agent"});
    list(vec![
        pod(
            "agents",
            "support-bot",
            agent.clone(),
            json!({"mandate.dev/agent-id": linked}),
        ),
        pod(
            "agents",
            "crm-agent",
            json!({"app": "ai-agent", "team": "sales"}),
            json!({"mandate.dev/owner": "bob@example.com"}),
        ),
        pod("agents", "orphan", agent.clone(), json!({})),
        pod(
            "agents",
            "badowner",
            agent,
            json!({"mandate.dev/owner": "bob smith"}),
        ),
        pod("web", "frontend", json!({"app": "web"}), json!({})),
    ])
}

#[tokio::test]
async fn a_run_reconciles_records_once_and_registers_nothing_unless_asked() {
    let e = env();
    let linked = register(&e.node, "support", &[]).await;
    let ghost = register(
        &e.node,
        "gone",
        &[
            ("mandate.dev/source", "kubernetes"),
            ("mandate.dev/name", "gone"),
        ],
    )
    .await;
    // An agent on another source is no ghost of a Kubernetes run.
    register(
        &e.node,
        "lambda",
        &[("mandate.dev/source", "aws"), ("mandate.dev/name", "fn")],
    )
    .await;
    let before = events(&e.node, "agent.registered").len();

    let r = discovery::run(&e.node, &admin(), req(false), vec![cluster(&linked)])
        .await
        .unwrap();
    assert_eq!(r.found, 4);
    assert_eq!(r.reconciliation.matched.len(), 1);
    assert_eq!(r.reconciliation.matched[0].agent.as_str(), linked);
    let shadows: Vec<(&str, &str)> = r
        .reconciliation
        .shadows
        .iter()
        .map(|s| (s.item.name.as_str(), s.reason.code()))
        .collect();
    assert_eq!(
        shadows,
        [
            ("badowner", "unregistered"),
            ("crm-agent", "unregistered"),
            ("orphan", "unregistered")
        ]
    );
    let ghosts: Vec<&str> = r
        .reconciliation
        .ghosts
        .iter()
        .map(|g| g.agent.as_str())
        .collect();
    assert_eq!(ghosts, [ghost.as_str()]);
    assert!(r.registered.is_empty() && r.not_registered.is_empty());
    assert_eq!(events(&e.node, "agent.registered").len(), before);

    let runs = events(&e.node, "discovery.run");
    assert_eq!(runs.len(), 1);
    let d = &runs[0]["details"];
    assert_eq!(runs[0]["actor"], "adm_01JA0000000000000000000000");
    assert_eq!(d["trigger"], "api");
    assert_eq!(d["source"], "kubernetes");
    assert_eq!(d["selector"], "app=ai-agent");
    assert_eq!(
        d["counts"],
        json!({"found": 4, "matched": 1, "shadows": 3, "ghosts": 1, "registered": 0,
               "not_registered": 0})
    );
    assert_eq!(d["ghosts"], json!([ghost]));
    assert_eq!(d["shadows"].as_array().unwrap().len(), 3);
    assert_eq!(d["shadows"][1]["uid"], "uid-agents-crm-agent");
    assert_eq!(d["shadows_truncated"], false);
}

#[tokio::test]
async fn register_drafts_suspended_agents_the_next_run_matches() {
    let e = env();
    let linked = register(&e.node, "support", &[]).await;
    let doc = cluster(&linked);

    let r = discovery::run(&e.node, &admin(), req(true), vec![doc.clone()])
        .await
        .unwrap();
    assert_eq!(r.registered.len(), 1, "{:?}", r.registered);
    let draft = &r.registered[0];
    assert_eq!(draft.name, "crm-agent");
    assert_eq!(draft.uid, "uid-agents-crm-agent");
    let reasons: Vec<(&str, &str)> = r
        .not_registered
        .iter()
        .map(|n| (n.uid.as_str(), n.reason.code()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("uid-agents-badowner", "invalid_owner"),
            ("uid-agents-orphan", "no_owner")
        ]
    );

    let agent = agents::show(&e.node, draft.agent.clone()).await.unwrap();
    assert_eq!(agent.status, AgentStatus::Suspended);
    assert_eq!(agent.owner.as_str(), "bob@example.com");
    assert!(agent.boundary.grants.is_empty());
    let labels: Vec<(&str, &str)> = agent.labels.iter().collect();
    assert_eq!(
        labels,
        [
            ("mandate.dev/discovered", "true"),
            ("mandate.dev/name", "crm-agent"),
            ("mandate.dev/scope", "agents"),
            ("mandate.dev/source", "kubernetes"),
        ]
    );
    // Its registration is audited as every registration is, saying what was found.
    let reg = events(&e.node, "agent.registered");
    let last = reg.last().unwrap();
    assert_eq!(last["agent"], draft.agent.as_str());
    assert_eq!(last["details"]["status"], "suspended");
    assert_eq!(last["details"]["discovered"]["uid"], "uid-agents-crm-agent");
    let run = events(&e.node, "discovery.run");
    assert_eq!(run[0]["details"]["registered"], json!([draft.agent]));
    assert_eq!(run[0]["details"]["counts"]["not_registered"], 2);

    // The next run matches the draft by its labels and registers nothing new.
    let again = discovery::run(&e.node, &admin(), req(true), vec![doc])
        .await
        .unwrap();
    assert!(again.registered.is_empty());
    let by_labels: Vec<&str> = again
        .reconciliation
        .matched
        .iter()
        .filter(|m| m.rule == discovery::MatchRule::Labels)
        .map(|m| m.agent.as_str())
        .collect();
    assert_eq!(by_labels, [draft.agent.as_str()]);
    assert_eq!(again.reconciliation.shadows.len(), 2);
    assert!(again.reconciliation.ghosts.is_empty());
    assert_eq!(events(&e.node, "discovery.run").len(), 2);
}

#[tokio::test]
async fn names_are_sanitized_deduplicated_and_a_collision_is_reported() {
    let e = env();
    register(&e.node, "dup", &[]).await;
    register(&e.node, "taken", &[]).await;
    register(&e.node, "x.taken", &[]).await;
    let owner = json!({"owner": "carol"});
    let agent = json!({"app": "ai-agent"});
    let doc = list(vec![
        pod("x", "dup", agent.clone(), owner.clone()),
        pod("x", "taken", agent.clone(), owner.clone()),
        pod("y", "_weird name!", agent.clone(), owner.clone()),
        pod("y", "twin", agent.clone(), owner.clone()),
        pod("z", "twin", agent, owner),
    ]);
    let r = discovery::run(&e.node, &admin(), req(true), vec![doc])
        .await
        .unwrap();
    let names: Vec<&str> = r.registered.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["x.dup", "weird-name-", "twin", "z.twin"]);
    let skipped: Vec<(&str, &str)> = r
        .not_registered
        .iter()
        .map(|n| (n.uid.as_str(), n.reason.code()))
        .collect();
    assert_eq!(skipped, [("uid-x-taken", "name_taken")]);
}

#[tokio::test]
async fn a_run_registers_at_most_the_limit() {
    let e = env();
    let items = (0..discovery::MAX_REGISTER + 3)
        .map(|i| {
            pod(
                "ns",
                &format!("a{i:03}"),
                json!({"app": "ai-agent"}),
                json!({"owner": "dave"}),
            )
        })
        .collect();
    let r = discovery::run(&e.node, &admin(), req(true), vec![list(items)])
        .await
        .unwrap();
    assert_eq!(r.registered.len(), discovery::MAX_REGISTER);
    assert_eq!(r.not_registered.len(), 3);
    assert!(r.not_registered.iter().all(|n| n.reason.code() == "limit"));
    let again = discovery::run(
        &e.node,
        &admin(),
        req(true),
        vec![list(
            (0..discovery::MAX_REGISTER + 3)
                .map(|i| {
                    pod(
                        "ns",
                        &format!("a{i:03}"),
                        json!({"app": "ai-agent"}),
                        json!({"owner": "dave"}),
                    )
                })
                .collect(),
        )],
    )
    .await
    .unwrap();
    assert_eq!(again.registered.len(), 3, "a later run takes the rest");
}

#[tokio::test]
async fn a_document_that_does_not_read_records_and_changes_nothing() {
    let e = env();
    let len = e.node.store().audit_len().unwrap();
    for (doc, code) in [
        (b"{not json".to_vec(), "not_json"),
        (br#"{"items": 3}"#.to_vec(), "bad_shape"),
        (
            br#"{"items": [{"kind": "Pod", "metadata": {"labels": []}}]}"#.to_vec(),
            "bad_shape",
        ),
    ] {
        match discovery::run(&e.node, &admin(), req(true), vec![doc]).await {
            Err(DiscoveryError::Input(err)) => assert_eq!(err.code(), code),
            other => panic!("expected {code}, got {other:?}"),
        }
    }
    assert_eq!(e.node.store().audit_len().unwrap(), len);
    let agents = e
        .node
        .store()
        .list_agents(&Default::default(), None, 10)
        .unwrap();
    assert!(agents.is_empty());
}

fn scheduled() -> Scheduled {
    Scheduled {
        name: "cluster".into(),
        source: Source::Kubernetes,
        selector: Selector::kubernetes_default(),
        every: std::time::Duration::from_secs(60),
        register: true,
    }
}

#[tokio::test]
async fn the_scheduled_job_records_each_run_and_each_failure() {
    let e = env();
    let path = e.dir.path().join("pods.json");
    let fetch = FileFetch { path: path.clone() };

    // No file yet: a failed fetch, recorded.
    discovery::scheduled_run(&e.node, &scheduled(), &fetch).await;
    let failed = events(&e.node, "discovery.failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["actor"], "discovery");
    assert_eq!(failed[0]["details"]["stage"], "fetch");
    assert_eq!(failed[0]["details"]["code"], "unreadable");
    assert_eq!(failed[0]["details"]["trigger"], "scheduled");

    // A file that is not JSON: a failed parse, recorded.
    std::fs::write(&path, "oops").unwrap();
    discovery::scheduled_run(&e.node, &scheduled(), &fetch).await;
    let failed = events(&e.node, "discovery.failed");
    assert_eq!(failed[1]["details"]["stage"], "parse");
    assert_eq!(failed[1]["details"]["code"], "not_json");

    // A directory is not a file.
    let dirfetch = FileFetch {
        path: e.dir.path().to_path_buf(),
    };
    discovery::scheduled_run(&e.node, &scheduled(), &dirfetch).await;
    assert_eq!(events(&e.node, "discovery.failed").len(), 3);

    // The cron job refreshed it: a run, by the job, registering the draft.
    std::fs::write(&path, cluster("agt_01JA0000000000000000000009")).unwrap();
    discovery::scheduled_run(&e.node, &scheduled(), &fetch).await;
    let runs = events(&e.node, "discovery.run");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["actor"], "discovery");
    assert_eq!(runs[0]["details"]["trigger"], "scheduled");
    assert_eq!(runs[0]["details"]["counts"]["registered"], 1);
    assert_eq!(runs[0]["details"]["shadows"][3]["reason"], "unknown_agent");
    let reg = events(&e.node, "agent.registered");
    assert_eq!(reg.len(), 1);
    assert_eq!(reg[0]["actor"], "discovery");
}
