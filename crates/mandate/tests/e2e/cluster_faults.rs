//! Two nodes on one PostgreSQL under faults (issue 21, "nothing acked is lost"): clients
//! hammer both nodes' `/v1/authorize` and `/oauth/token` while one node is killed with
//! SIGKILL and started again, every backend of the database is terminated
//! (`pg_terminate_backend`), and PostgreSQL becomes unreachable for a while. Afterwards
//! every `decision_id` and every token a client was given is in the logs node A exports
//! once B has stopped (`mandate audit export --all-nodes`), and each node's log verifies
//! with the key that node named; while PostgreSQL could not be reached every decision was a
//! 503, never an allow.
//!
//! PostgreSQL is shared with every other test on the machine, so it is not restarted here:
//! the nodes reach it through a TCP gate in this process ([`Gate`]), and "down" is the gate
//! cutting every connection and refusing new ones — to the nodes, exactly what a stopped
//! server looks like. A real restart (`pg_ctlcluster … restart`) is bench/cluster_faults.sh.
//! Each run makes its own database (through `psql`) and drops it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::harness::{BIN, Server, cli, data_dir};

/// The server every test database lives on (trust auth on loopback).
const PG: &str = "postgres://postgres@127.0.0.1:5432";
const ADMIN: &str = "mat_e2e_cluster_admin_token_0123456789";
const ISSUER: &str = "http://mandate.cluster.e2e.invalid";

/// A database of this test's own, dropped at the end.
struct Db {
    name: String,
}

impl Db {
    fn new() -> Db {
        let name = format!(
            "mandate_e2e_cluster_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        psql(&format!("CREATE DATABASE {name}"));
        Db { name }
    }

    /// Terminates every backend connected to the database (the nodes' pools, their
    /// listening and registration connections).
    fn terminate_backends(&self) -> String {
        psql(&format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        ))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-qtA", &format!("{PG}/postgres"), "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

/// Runs `sql` on the server's maintenance database; its output. PostgreSQL must answer:
/// a test that cannot reach it fails loudly.
fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-qtA", &format!("{PG}/postgres"), "-c", sql])
        .output()
        .expect("psql (PostgreSQL's client) must be installed for the cluster tests");
    assert!(
        out.status.success(),
        "PostgreSQL at {PG} must answer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A TCP gate in front of PostgreSQL: while open it forwards every connection; `close`
/// cuts every connection it carries and refuses (accepts and at once drops) new ones.
struct Gate {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Gate {
    async fn new() -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (o, c) = (Arc::clone(&open), Arc::clone(&conns));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    continue;
                };
                // Checked and recorded under the lock `close` takes: no connection
                // gets through after `close` began.
                let mut carried = c.lock().unwrap();
                if !o.load(Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                carried.push(tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                }));
            }
        });
        Gate {
            addr,
            open,
            conns,
            accept,
        }
    }

    fn url(&self, db: &Db) -> String {
        format!("postgres://postgres@{}/{}", self.addr, db.name)
    }

    /// Closes the gate; when it returns, no connection through it is left.
    async fn close(&self) {
        let conns: Vec<_> = {
            let mut carried = self.conns.lock().unwrap();
            self.open.store(false, Ordering::SeqCst);
            carried.drain(..).collect()
        };
        for t in conns {
            t.abort();
            let _ = t.await;
        }
    }

    fn reopen(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.accept.abort();
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// Starts a node on `store` with data dir `dir`: the same issuer and admin token on
/// every node, the detector off (the load would look like an anomaly).
fn node(dir: &Path, store: &str, id: &str) -> Server {
    Server::start(
        dir,
        &["--store", store, "--node-id", id],
        &[
            ("MANDATE_BOOTSTRAP_TOKEN", ADMIN),
            ("MANDATE_ISSUER", ISSUER),
            ("MANDATE_DETECT_ENABLED", "false"),
        ],
    )
}

/// What the clients saw, each answer with the moment it was sent and read.
#[derive(Default)]
struct Seen {
    /// (node, sent, read, status, decision_id of an allow)
    decisions: Vec<(usize, Instant, Instant, u16, Option<String>)>,
    /// Each node's last answer other than an allow.
    last_refusal: [String; 2],
    /// jti of every token handed out.
    tokens: Vec<String>,
}

fn jti(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

const BODY: &str = r#"{"action":"crm:read","resource":{"type":"Crm::Contact","id":"c-1","attributes":{"team":"sales"}},"context":{"data_class":"internal"}}"#;

/// Hammers `/v1/authorize` on node `i` (its address read from `addrs` at every request, so
/// a restarted node is followed) until `stop`.
fn decide_load(
    i: usize,
    addrs: Arc<RwLock<Vec<String>>>,
    token: String,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let http = mandate_egress::default_builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        while !stop.load(Ordering::SeqCst) {
            let url = format!("{}/v1/authorize", addrs.read().unwrap()[i]);
            let sent = Instant::now();
            let res = http
                .post(url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(BODY)
                .send()
                .await;
            let Ok(res) = res else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let status = res.status().as_u16();
            let Ok(text) = res.text().await else { continue };
            let read = Instant::now();
            let id = (status == 200)
                .then(|| serde_json::from_str::<Value>(&text).unwrap())
                .filter(|v| v["decision"] == "allow")
                .map(|v| v["decision_id"].as_str().unwrap().to_owned());
            let mut seen = seen.lock().unwrap();
            if id.is_none() {
                seen.last_refusal[i] = format!("{status} {text}");
            }
            seen.decisions.push((i, sent, read, status, id));
        }
    })
}

/// Asks node `i` for tokens until `stop`, noting the jti of every one handed out.
fn token_load(
    i: usize,
    addrs: Arc<RwLock<Vec<String>>>,
    agent: (String, String),
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let http = mandate_egress::default_builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        while !stop.load(Ordering::SeqCst) {
            let url = format!("{}/oauth/token", addrs.read().unwrap()[i]);
            let res = http
                .post(url)
                .basic_auth(&agent.0, Some(&agent.1))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await;
            if let Ok(res) = res
                && res.status() == 200
                && let Ok(v) = res.json::<Value>().await
            {
                seen.lock()
                    .unwrap()
                    .tokens
                    .push(jti(v["access_token"].as_str().unwrap()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// Waits until node `i` (`server`) has allowed a request sent after `since` (the load's
/// view); how long after `since` that allow was read.
async fn allows_again(
    seen: &Mutex<Seen>,
    i: usize,
    server: &Server,
    since: Instant,
    what: &str,
) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        {
            let seen = seen.lock().unwrap();
            if let Some(d) = seen
                .decisions
                .iter()
                .find(|d| d.0 == i && d.1 > since && d.4.is_some())
            {
                return d.2 - since;
            }
            let after = seen
                .decisions
                .iter()
                .filter(|d| d.0 == i && d.1 > since)
                .count();
            assert!(
                Instant::now() < deadline,
                "node {i} never allowed again after {what} ({after} answers since, the last \
                 refusal: {}); its log ends: {}",
                seen.last_refusal[i],
                tail(&server.stderr_text(), 3000)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tail(s: &str, n: usize) -> &str {
    s.get(s.len().saturating_sub(n)..).unwrap_or(s)
}

/// The key that verifies the log of the node at `addr`, as that node says.
fn checkpoint_key(addr: &str) -> String {
    let (code, cp, err) = cli(addr, ADMIN, &["audit", "checkpoint", "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(&cp).unwrap()["public_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `mandate audit export --all-nodes` from the node at `addr` into `dir`, verified offline
/// (`mandate audit verify DIR`) with each node's key pinned (`pins`: `node=key`): the
/// (node, seq) of every event and the token id of every issuance, over all the logs.
fn export_all_and_verify(
    addr: &str,
    dir: &Path,
    pins: &[String],
) -> (BTreeSet<String>, BTreeSet<String>) {
    let (code, out, err) = cli(
        addr,
        ADMIN,
        &[
            "audit",
            "export",
            "--all-nodes",
            "--out",
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let mut args = vec![
        "audit".to_owned(),
        "verify".into(),
        dir.to_str().unwrap().into(),
    ];
    for p in pins {
        args.extend(["--public-key".to_owned(), p.clone()]);
    }
    let v = Command::new(BIN).args(&args).output().unwrap();
    let said = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success() && said.contains(&format!("{} node logs verified", pins.len())),
        "the logs do not verify: {said}{}",
        String::from_utf8_lossy(&v.stderr)
    );
    let (mut events, mut tokens) = (BTreeSet::new(), BTreeSet::new());
    for f in std::fs::read_dir(dir).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_none_or(|x| x != "jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            // `{"event": …}` or `{"checkpoint": …}` (mandate-audit verify.rs).
            let line: Value = serde_json::from_str(line).unwrap();
            let e = &line["event"];
            if let (Some(node), Some(seq)) = (e["node"].as_str(), e["seq"].as_u64()) {
                events.insert(format!("{node}:{seq}"));
            }
            if e["kind"] == "token.issued" {
                tokens.insert(e["details"]["token_id"].as_str().unwrap().to_owned());
            }
        }
    }
    (events, tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acked_is_lost_through_a_kill_terminated_backends_and_an_outage() {
    let db = Db::new();
    let gate = Gate::new().await;
    let store = gate.url(&db);
    let (t, dir_a) = data_dir();
    let dir_b = t.path().join("data-b");
    let a = node(&dir_a, &store, "node-a");
    // Node B holds the store key too: it opens the signing keys the nodes share.
    std::fs::create_dir_all(&dir_b).unwrap();
    std::fs::copy(dir_a.join("store.key"), dir_b.join("store.key")).unwrap();
    let mut b = node(&dir_b, &store, "node-b");

    // The CRM example's policies and an agent in its sales team, on node A.
    a.activate_policies(
        ADMIN,
        include_str!("../../../../examples/crm/policies.cedar"),
        include_str!("../../../../examples/crm/schema.cedarschema"),
    )
    .await;
    let (st, v) = a
        .admin(
            ADMIN,
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "cluster-bot", "owner": "ops@example.com",
                "labels": {"team": "sales"},
                "boundary": {"grants": [{"actions": ["crm:read"],
                    "resources": ["Crm::Contact/*"], "data_classes": ["internal"]}]}})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let agent = v["id"].as_str().unwrap().to_owned();
    let secret = a.add_secret(ADMIN, &agent).await;
    let (st, v) = a.token_basic(&agent, &secret, &[]).await;
    assert_eq!(st, 200, "{v}");
    let token = v["access_token"].as_str().unwrap().to_owned();

    let addrs = Arc::new(RwLock::new(vec![a.addr.clone(), b.addr.clone()]));
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for i in [0, 1] {
        for _ in 0..2 {
            load.push(decide_load(
                i,
                Arc::clone(&addrs),
                token.clone(),
                Arc::clone(&seen),
                Arc::clone(&stop),
            ));
        }
        load.push(token_load(
            i,
            Arc::clone(&addrs),
            (agent.clone(), secret.clone()),
            Arc::clone(&seen),
            Arc::clone(&stop),
        ));
    }
    let start = Instant::now();
    allows_again(&seen, 0, &a, start, "the start").await;
    allows_again(&seen, 1, &b, start, "the start").await;

    // 1. SIGKILL node B under load, then start it again on the same data dir and id.
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restarted = Instant::now();
    let mut b2 = node(&dir_b, &store, "node-b");
    addrs.write().unwrap()[1] = b2.addr.clone();
    let back_b = allows_again(&seen, 1, &b2, restarted, "its restart").await;

    // 2. Every backend of the database terminated: both nodes come back by themselves.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let terminated = Instant::now();
    let n: u32 = db.terminate_backends().parse().unwrap();
    assert!(n >= 4, "only {n} backends terminated");
    let back_t = [
        allows_again(&seen, 0, &a, terminated, "pg_terminate_backend").await,
        allows_again(&seen, 1, &b2, terminated, "pg_terminate_backend").await,
    ];

    // 3. PostgreSQL unreachable for 2 s: every decision asked meanwhile is refused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    gate.close().await;
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let up = Instant::now();
    gate.reopen();
    let back_up = [
        allows_again(&seen, 0, &a, up, "the outage").await,
        allows_again(&seen, 1, &b2, up, "the outage").await,
    ];

    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());

    // While down: only 503s, and some were asked.
    let during: Vec<_> = seen
        .decisions
        .iter()
        .filter(|d| d.1 >= down && d.2 <= up)
        .collect();
    assert!(
        during.len() >= 10,
        "too few requests during the outage: {}",
        during.len()
    );
    let not_503: Vec<_> = during
        .iter()
        .filter(|d| d.3 != 503)
        .map(|d| (d.0, d.3))
        .collect();
    assert!(
        not_503.is_empty(),
        "answers other than 503 while PostgreSQL was down: {not_503:?}"
    );

    // Every allow and every token a client was given is in the nodes' exported logs.
    // Node B stops (sealing its log, which stays in the database); node A exports every
    // node's log, each verified with the key its node named.
    let pins = [
        format!("node-a={}", checkpoint_key(&a.addr)),
        format!("node-b={}", checkpoint_key(&b2.addr)),
    ];
    assert!(b2.stop().success());
    let (events, tokens) = export_all_and_verify(&a.addr, &t.path().join("all"), &pins);
    let allows: Vec<_> = seen.decisions.iter().filter_map(|d| d.4.clone()).collect();
    assert!(
        allows.len() > 100,
        "too little load: {} allows",
        allows.len()
    );
    assert!(
        allows.iter().any(|id| id.starts_with("node-a:"))
            && allows.iter().any(|id| id.starts_with("node-b:")),
        "both nodes decided"
    );
    let lost: Vec<_> = allows.iter().filter(|id| !events.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acked decisions not in the logs: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(
        seen.tokens.len() > 10,
        "too few tokens: {}",
        seen.tokens.len()
    );
    let lost: Vec<_> = seen
        .tokens
        .iter()
        .filter(|j| !tokens.contains(*j))
        .collect();
    assert!(
        lost.is_empty(),
        "{} tokens handed out not in the logs: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    eprintln!(
        "cluster faults: {} allows and {} tokens acked, all in the logs; {} answers while \
         PostgreSQL was unreachable, all 503; first allow again: node B {back_b:?} after its \
         restart, {back_t:?} after pg_terminate_backend, {back_up:?} after the outage",
        allows.len(),
        seen.tokens.len(),
        during.len()
    );
}
