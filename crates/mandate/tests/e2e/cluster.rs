//! Several `mandate serve` nodes on one PostgreSQL database (issue 21): each registers
//! under its own node id (a repeated id is refused) and keeps its own audit log, which
//! `mandate audit export --all-nodes` exports and `mandate audit verify` checks node by
//! node, each with its own key.
//!
//! These tests need PostgreSQL: `MANDATE_TEST_PG` names a database to connect to for
//! creating and dropping the test database (default
//! `postgres://postgres@127.0.0.1:5432/test`), through `psql`. Without it they FAIL,
//! saying so: a run without PostgreSQL never passes silently.

use std::path::Path;
use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::harness::{BIN, Server, cli, data_dir};

fn admin_url() -> String {
    std::env::var("MANDATE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn psql(url: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .map_err(|e| format!("running psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A fresh database with a random name, dropped with the guard.
struct PgDb {
    name: String,
}

impl PgDb {
    fn new() -> Self {
        let mut bytes = [0u8; 8];
        getrandom_bytes(&mut bytes);
        let name = format!(
            "mandate_e2e_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        if let Err(e) = psql(&admin_url(), &format!("CREATE DATABASE {name}")) {
            panic!(
                "the PostgreSQL e2e tests need a server and psql (set MANDATE_TEST_PG to a \
                 database URL): {e}"
            );
        }
        Self { name }
    }

    /// The URL of this database: the admin URL with its database replaced.
    fn url(&self) -> String {
        let admin = admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        format!("{base}/{}", self.name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = psql(
            &admin_url(),
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Random bytes for a database name (the OS source, through /dev/urandom).
fn getrandom_bytes(buf: &mut [u8]) {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(buf)
        .unwrap();
}

/// Gives `to` the store key of `from`: the nodes of one database sign tokens with the
/// key set in the store, sealed under the store key every node holds (issue 21).
fn share_signing_keys(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::copy(from.join("store.key"), to.join("store.key")).unwrap();
}

/// The node's audit key, as `mandate audit checkpoint` shows it.
fn audit_key(srv: &Server, token: &str) -> String {
    let (code, out, err) = cli(&srv.addr, token, &["audit", "checkpoint"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .find_map(|l| l.strip_prefix("public key:"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Two nodes on one database, each with events of its own; the second stops (its log
/// survives it); an export of every node's log from the first verifies node by node,
/// with keys pinned or from the export, and any changed byte, a swapped key or a log
/// under another node's name fails.
#[tokio::test]
async fn two_nodes_keep_their_own_logs_and_an_export_of_all_nodes_verifies() {
    let db = PgDb::new();
    let url = db.url();
    let (_ta, dir_a) = data_dir();
    let (_tb, dir_b) = data_dir();
    let a = Server::start(&dir_a, &["--store", &url, "--node-id", "node-a"], &[]);
    let token = a
        .token
        .clone()
        .expect("the first start prints the bootstrap token");
    share_signing_keys(&dir_a, &dir_b);
    // B takes the id its data dir keeps, made on its first start.
    let mut b = Server::start(&dir_b, &["--store", &url], &[]);
    let b_id = std::fs::read_to_string(dir_b.join("node-id"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(b_id.starts_with("node-") && b_id.len() == 31, "{b_id}");

    for (srv, name) in [(&a, "on-a"), (&b, "on-b")] {
        let (status, v) = srv
            .admin(
                &token,
                Method::POST,
                "/v1/agents",
                Some(json!({"name": name, "owner": "o@example.com", "boundary": {}})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
    }
    let key_a = audit_key(&a, &token);
    let key_b = audit_key(&b, &token);
    assert_ne!(key_a, key_b, "each node signs with its own key");
    // Each node's own log holds its own events only.
    for (srv, mine, theirs) in [(&a, "on-a", "on-b"), (&b, "on-b", "on-a")] {
        let (code, out, err) = cli(&srv.addr, &token, &["audit", "events", "--json"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(mine) && !out.contains(theirs), "{out}");
    }
    // B stops (sealing its log); its log stays, exported by A.
    assert!(b.stop().success());

    let (t, _) = data_dir();
    let out_dir = t.path().join("all");
    let out_arg = out_dir.to_str().unwrap();
    let (code, _, err) = cli(&a.addr, &token, &["audit", "export", "--all-nodes"]);
    assert_eq!(code, 2, "--all-nodes needs --out: {err}");
    let (code, out, err) = cli(
        &a.addr,
        &token,
        &["audit", "export", "--all-nodes", "--out", out_arg],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("the logs of 2 nodes"), "{out}");
    let nodes: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("nodes.json")).unwrap())
            .unwrap();
    assert_eq!(nodes["this_node"], "node-a");
    let listed: Vec<_> = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap(),
                n["public_key"].as_str().unwrap(),
            )
        })
        .collect();
    let mut want = vec![("node-a", key_a.as_str()), (b_id.as_str(), key_b.as_str())];
    want.sort();
    assert_eq!(listed, want);

    let verify = |keys: &[String]| {
        let mut args = vec!["audit".to_owned(), "verify".into(), out_arg.into()];
        for k in keys {
            args.push("--public-key".into());
            args.push(k.clone());
        }
        let out = Command::new(BIN).args(&args).output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = verify(&[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok: node node-a:") && out.contains(&format!("ok: node {b_id}:")),
        "{out}"
    );
    assert!(out.contains("2 node logs verified"), "{out}");
    let (code, out, err) = verify(&[format!("node-a={key_a}"), format!("{b_id}={key_b}")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pinned key"), "{out}");
    // A key pinned for the wrong node fails.
    let (code, _, err) = verify(&[format!("node-a={key_b}")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("verification failed"), "{err}");
    // A pinned node missing from the export fails.
    let (code, _, err) = verify(&[format!("node-gone={key_a}")]);
    assert_eq!(code, 1, "{err}");
    // One log passed off as the other's fails, whatever the key.
    let a_log = out_dir.join("node-a.jsonl");
    let b_log = out_dir.join(format!("{b_id}.jsonl"));
    let a_text = std::fs::read(&a_log).unwrap();
    let b_text = std::fs::read(&b_log).unwrap();
    assert!(String::from_utf8_lossy(&b_text).contains("on-b"));
    std::fs::write(&b_log, &a_text).unwrap();
    let (code, _, err) = verify(&[format!("{b_id}={key_a}")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not `"), "{err}");
    // A changed byte in a node's log fails.
    let mut bad = b_text.clone();
    let at = String::from_utf8_lossy(&b_text).find("on-b").unwrap();
    bad[at + 3] = b'x';
    std::fs::write(&b_log, &bad).unwrap();
    let (code, _, err) = verify(&[]);
    assert_eq!(code, 1, "{err}");
    std::fs::write(&b_log, &b_text).unwrap();
    assert_eq!(verify(&[]).0, 0);
}

/// `INVARIANT (one process per node id)`: a second `mandate serve` with a node id
/// already serving on the database is refused (exit 1, naming the id) and serves
/// nothing; once the first stops, the id serves again from its own data dir, and from
/// another data dir (another audit key) it is refused, since its log has one key.
#[tokio::test]
async fn a_second_serve_with_the_same_node_id_is_refused() {
    let db = PgDb::new();
    let url = db.url();
    let (_ta, dir_a) = data_dir();
    let (_tb, dir_b) = data_dir();
    let mut a = Server::start(&dir_a, &["--store", &url, "--node-id", "node-a"], &[]);
    let serve_b = |id: &str| {
        Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--store",
                &url,
                "--node-id",
                id,
            ])
            .arg("--data-dir")
            .arg(&dir_b)
            .output()
            .unwrap()
    };
    let out = serve_b("node-a");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("node id `node-a` is already serving"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
    assert!(
        !dir_b.join("audit-key.pem").exists(),
        "the refused start made no audit key"
    );

    assert!(a.stop().success());
    // The id is free again, but its log is signed with node-a's key, in dir_a.
    share_signing_keys(&dir_a, &dir_b);
    let out = serve_b("node-a");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("signed with another key"), "{err}");
    let mut again = Server::start(&dir_a, &["--store", &url, "--node-id", "node-a"], &[]);
    assert!(again.stop().success());
}

/// Polls `check` every 20 ms for up to `secs` seconds; panics naming `what` if it never
/// holds.
async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Whether `srv` answers `/readyz` with 200 (it holds a proof that it is current).
async fn ready(srv: &Server) -> bool {
    srv.http
        .get(srv.url("/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// The kill switch across nodes (issue 21): an agent suspended on node A can no longer
/// get a token from node B, and its token no longer introspects active there, within
/// the feed's delay (bounded here at 2 s; `bench/` measures it). `mandate cluster
/// status` shows both nodes alive and deciding and exactly one leader; when the leader
/// is killed, the other takes over.
#[tokio::test]
async fn a_suspension_on_one_node_holds_on_the_other_and_leadership_moves() {
    let db = PgDb::new();
    let url = db.url();
    let (_ta, dir_a) = data_dir();
    let (_tb, dir_b) = data_dir();
    let a = Server::start(&dir_a, &["--store", &url, "--node-id", "node-a"], &[]);
    let admin = a.token.clone().expect("bootstrap token");
    share_signing_keys(&dir_a, &dir_b);
    let mut b = Server::start(&dir_b, &["--store", &url, "--node-id", "node-b"], &[]);
    eventually(10, "both nodes prove themselves current", || async {
        ready(&a).await && ready(&b).await
    })
    .await;

    let (agent, secret) = a.agent_with_secret(&admin, "roamer").await;
    // Registered on A, its credential is usable on B once B's feed brought it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let token = loop {
        let (st, v) = b.token_basic(&agent, &secret, &[]).await;
        if st == 200 {
            break v["access_token"].as_str().unwrap().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B never issued a token for an agent registered on A: {st} {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(b.introspect(&admin, &token).await["active"], true);

    let (st, v) = a
        .admin(
            &admin,
            Method::POST,
            &format!("/v1/agents/{agent}/suspend"),
            Some(json!({"reason": "incident drill"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    eventually(
        2,
        "B stops honouring the suspended agent's token",
        || async { b.introspect(&admin, &token).await["active"] == false },
    )
    .await;
    // Introspection reads the store, so it can see the suspension before B's feed has
    // brought it to B's snapshot, which token requests read: B must refuse within the
    // feed's delay too, not at the same instant.
    eventually(2, "B refuses a token to the suspended agent", || async {
        b.token_basic(&agent, &secret, &[]).await.0 != 200
    })
    .await;

    let status = |srv: &Server| {
        let (addr, admin) = (srv.addr.clone(), admin.clone());
        async move {
            let (code, out, err) = cli(&addr, &admin, &["cluster", "status", "--json"]);
            assert_eq!(code, 0, "{err}");
            serde_json::from_str::<serde_json::Value>(&out).unwrap()
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let leader = loop {
        let s = status(&a).await;
        let nodes = s["nodes"].as_array().unwrap();
        let ok = s["store"] == "postgres"
            && s["store_reachable"] == true
            && nodes.len() == 2
            && nodes
                .iter()
                .all(|n| n["alive"] == true && n["deciding"] == true)
            && nodes.iter().filter(|n| n["leader"] == true).count() == 1;
        if ok {
            break s["leader"].as_str().unwrap().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never both alive and deciding with one leader: {s}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // The leader dies; the survivor leads within a few heartbeats.
    let survivor = if leader == "node-b" {
        b.kill9();
        "node-a"
    } else {
        "node-b"
    };
    let mut a = a;
    let (alive, dead) = if leader == "node-b" {
        (&a, "node-b")
    } else {
        a.kill9();
        (&b, "node-a")
    };
    eventually(
        10,
        "the survivor leads, the dead node is not alive",
        || async {
            let s = status(alive).await;
            let nodes = s["nodes"].as_array().unwrap();
            s["leader"] == survivor
                && nodes
                    .iter()
                    .any(|n| n["node"] == dead && n["alive"] == false)
        },
    )
    .await;
}

/// Issue 21's bad input: a read-only PostgreSQL (a hot standby, or a database set
/// `default_transaction_read_only`) is a clear error at start, exit 1, nothing served
/// and nothing written; the same database made writable starts.
#[test]
fn a_read_only_database_is_refused_at_start_and_nothing_is_written() {
    let db = PgDb::new();
    psql(
        &admin_url(),
        &format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            db.name
        ),
    )
    .unwrap();
    let (_t, dir) = data_dir();
    let serve = |dir: &Path| {
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--store", &db.url()])
            .arg("--data-dir")
            .arg(dir)
            .output()
            .unwrap()
    };
    let out = serve(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("opening the PostgreSQL store") && err.contains("read-only"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
    // Nothing was written: not even the migrations' own table.
    let tables = Command::new("psql")
        .args([
            &db.url(),
            "-qAt",
            "-c",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&tables.stdout).trim(), "0");
    psql(
        &admin_url(),
        &format!(
            "ALTER DATABASE {} SET default_transaction_read_only = off",
            db.name
        ),
    )
    .unwrap();
    let mut s = Server::start(&dir, &["--store", &db.url()], &[]);
    assert!(s.stop().success());
}

/// Found attacking a real cluster (issue 21): a start refused for want of the store key
/// (a new node whose operator forgot to copy `store.key`) has already registered its
/// node id, with no audit key and no log. `mandate audit export --all-nodes` must leave
/// such a node out, so the export of the nodes that did serve still verifies; a node
/// with events but no key is still exported (and fails verification: fail closed).
#[tokio::test]
async fn a_node_refused_at_start_does_not_break_the_export_of_all_nodes() {
    let db = PgDb::new();
    let url = db.url();
    let (_ta, dir_a) = data_dir();
    let (_tb, dir_b) = data_dir();
    let a = Server::start(&dir_a, &["--store", &url, "--node-id", "node-a"], &[]);
    let token = a.token.clone().expect("bootstrap token");
    // No store key copied to dir_b: refused, after registering `node-b`.
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &url,
            "--node-id",
            "node-b",
        ])
        .arg("--data-dir")
        .arg(&dir_b)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no store key"), "{err}");

    let (t, _) = data_dir();
    let out_dir = t.path().join("all");
    let out_arg = out_dir.to_str().unwrap();
    let (code, out, err) = cli(
        &a.addr,
        &token,
        &["audit", "export", "--all-nodes", "--out", out_arg],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("the logs of 1 nodes"), "{out}");
    let out = Command::new(BIN)
        .args(["audit", "verify", out_arg])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SIEM export on a cluster (issue 23): each node delivers its own log, once, from its
/// own cursor in the shared store: two nodes on one PostgreSQL database, each with a
/// file sink of the same name, get every event of their own log and none of the other's.
#[tokio::test(flavor = "multi_thread")]
async fn each_node_of_a_cluster_exports_its_own_log_once() {
    let db = PgDb::new();
    let url = db.url();
    let (ta, dir_a) = data_dir();
    let (tb, dir_b) = data_dir();
    let conf = |t: &tempfile::TempDir| {
        let out = t.path().join("export.jsonl");
        let c = t.path().join("mandate.toml");
        std::fs::write(
            &c,
            format!(
                "[[export.sinks]]\nname = \"siem\"\ntype = \"file\"\npath = \"{}\"\n",
                out.display()
            ),
        )
        .unwrap();
        (c, out)
    };
    let (conf_a, out_a) = conf(&ta);
    let (conf_b, out_b) = conf(&tb);
    let a = Server::start(
        &dir_a,
        &["--store", &url, "--node-id", "node-a"],
        &[("MANDATE_CONFIG", conf_a.to_str().unwrap())],
    );
    let token = a.token.clone().unwrap();
    share_signing_keys(&dir_a, &dir_b);
    let b = Server::start(
        &dir_b,
        &["--store", &url, "--node-id", "node-b"],
        &[("MANDATE_CONFIG", conf_b.to_str().unwrap())],
    );
    for (srv, name) in [(&a, "x-on-a"), (&b, "x-on-b"), (&a, "y-on-a")] {
        let (status, v) = srv
            .admin(
                &token,
                Method::POST,
                "/v1/agents",
                Some(json!({"name": name, "owner": "o@example.com", "boundary": {}})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
    }
    for (srv, node, out) in [(&a, "node-a", &out_a), (&b, "node-b", &out_b)] {
        let mut last = None;
        let ids = loop {
            let (st, v) = srv.admin(&token, Method::GET, "/v1/export", None).await;
            assert_eq!(st, 200, "{v}");
            let len = v["log_length"].as_u64().unwrap();
            let ids: Vec<String> = std::fs::read_to_string(out)
                .unwrap_or_default()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            if ids.len() as u64 == len && last == Some(len) {
                break ids;
            }
            last = Some(len);
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        };
        let want: Vec<String> = (0..ids.len()).map(|s| format!("{node}:{s}")).collect();
        assert_eq!(ids, want, "{node} exports its own log, in order, once");
    }
}

/// A poll of stream `sid` on `srv`: its answer (a 200).
async fn poll(srv: &Server, token: &str, sid: &str, body: serde_json::Value) -> serde_json::Value {
    let (st, v) = srv
        .admin(token, Method::POST, &format!("/ssf/poll/{sid}"), Some(body))
        .await;
    assert_eq!(st, 200, "{v}");
    v
}

/// A poll stream in a cluster (docs/ssf.md "In a cluster"): made on one node, it is
/// delivered by every node from its own log into the one queue in PostgreSQL. A
/// receiver polling either node gets the SETs of suspensions made on both (each node's
/// log once), a verification asked on the other node, and an acknowledgement made on
/// one node holds on the other.
#[tokio::test(flavor = "multi_thread")]
async fn a_poll_stream_carries_every_nodes_sets_and_an_ack_holds_on_every_node() {
    let db = PgDb::new();
    let url = db.url();
    let (_ta, dir_a) = data_dir();
    let (_tb, dir_b) = data_dir();
    let a = Server::start(&dir_a, &["--store", &url, "--node-id", "node-a"], &[]);
    let token = a.token.clone().unwrap();
    share_signing_keys(&dir_a, &dir_b);
    let b = Server::start(&dir_b, &["--store", &url, "--node-id", "node-b"], &[]);
    let (st, stream) = a
        .admin(
            &token,
            Method::POST,
            "/ssf/stream",
            Some(json!({"delivery": {"method": "urn:ietf:rfc:8936"}})),
        )
        .await;
    assert_eq!(st, 201, "{stream}");
    let sid = stream["stream_id"].as_str().unwrap().to_owned();
    // Node B sees the stream (the shared store).
    let (st, _) = b
        .admin(
            &token,
            Method::GET,
            &format!("/ssf/stream?stream_id={sid}"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = b
        .admin(
            &token,
            Method::POST,
            "/ssf/verify",
            Some(json!({"stream_id": sid, "state": "on-b"})),
        )
        .await;
    assert_eq!(st, 204);
    let mut agents = Vec::new();
    for (srv, name) in [(&a, "polled-on-a"), (&b, "polled-on-b")] {
        let (status, v) = srv
            .admin(
                &token,
                Method::POST,
                "/v1/agents",
                Some(json!({"name": name, "owner": "o@example.com", "boundary": {}})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        let id = v["id"].as_str().unwrap().to_owned();
        let (status, v) = srv
            .admin(
                &token,
                Method::POST,
                &format!("/v1/agents/{id}/suspend"),
                Some(json!({"reason": "cluster poll test"})),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        agents.push(id);
    }
    // Polled on node A: the verification (B's log) and both suspensions (A's and B's).
    let mut sets = serde_json::Map::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sets.len() < 3 {
        assert!(std::time::Instant::now() < deadline, "polled only {sets:?}");
        let v = poll(&a, &token, &sid, json!({"returnImmediately": true})).await;
        sets = v["sets"].as_object().unwrap().clone();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(sets.len(), 3, "each node's log once: {sets:?}");
    let jtis: Vec<String> = sets.keys().cloned().collect();
    assert!(jtis.iter().any(|j| j.starts_with("node-a:")), "{jtis:?}");
    assert_eq!(
        jtis.iter().filter(|j| j.starts_with("node-b:")).count(),
        2,
        "B's verification and suspension: {jtis:?}"
    );
    // Acknowledged on A: never again, on B either.
    let v = poll(
        &a,
        &token,
        &sid,
        json!({"ack": jtis, "returnImmediately": true}),
    )
    .await;
    assert_eq!(v, json!({"sets": {}, "moreAvailable": false}));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let v = poll(&b, &token, &sid, json!({"returnImmediately": true})).await;
    assert_eq!(v, json!({"sets": {}, "moreAvailable": false}));
}

/// Policy replay across a cluster: decisions made on two nodes sit in two logs; a replay
/// on one node reads its own log by default and every node's with `--all-nodes`, each
/// decision once, with example events named by their node.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_with_all_nodes_reads_every_nodes_decisions() {
    let db = PgDb::new();
    let url = db.url();
    let (_ta, dir_a) = data_dir();
    let (_tb, dir_b) = data_dir();
    let a = Server::start(&dir_a, &["--store", &url, "--node-id", "node-a"], &[]);
    let token = a.token.clone().expect("bootstrap token");
    share_signing_keys(&dir_a, &dir_b);
    let b = Server::start(&dir_b, &["--store", &url, "--node-id", "node-b"], &[]);
    let schema = "namespace Doc { entity File; }\nnamespace Mandate { action \"doc:read\" in [\"all\"] appliesTo { principal: [Agent], resource: [Doc::File] }; }";
    let add = |policies: &'static str| {
        let a = &a;
        let token = &token;
        async move {
            let (st, v) = a
                .admin(
                    token,
                    Method::POST,
                    "/v1/policies",
                    Some(json!({"policies": policies, "schema_fragments": [schema]})),
                )
                .await;
            assert_eq!(st, 201, "{v}");
            v["version"].as_i64().unwrap().to_string()
        }
    };
    let active =
        add("@id(\"all\") permit (principal, action in Mandate::Action::\"all\", resource);").await;
    let (st, v) = a
        .admin(
            &token,
            Method::POST,
            &format!("/v1/policies/{active}/activate"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let candidate =
        add("@id(\"none\") forbid (principal, action in Mandate::Action::\"all\", resource);")
            .await;
    let (st, agent) = a
        .admin(
            &token,
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "reader", "owner": "o@example.com",
                        "boundary": {"grants": [{"actions": ["doc:read"], "resources": ["Doc::File/*"]}]}})),
        )
        .await;
    assert_eq!(st, 201, "{agent}");
    let agent = agent["id"].as_str().unwrap().to_owned();
    let ask = json!({"principal": agent, "action": "doc:read",
                     "resource": {"type": "Doc::File", "id": "f1"}});
    // Node B learns of the agent and the activation through the feed.
    eventually(10, "node B allows the agent", || {
        let (b, token, ask) = (&b, &token, ask.clone());
        async move {
            let (st, v) = b
                .admin(token, Method::POST, "/v1/authorize", Some(ask))
                .await;
            st == 200 && v["decision"] == "allow"
        }
    })
    .await;
    for srv in [&a, &a, &b, &b] {
        let (st, v) = srv
            .admin(&token, Method::POST, "/v1/authorize", Some(ask.clone()))
            .await;
        assert_eq!((st, v["decision"].as_str()), (200, Some("allow")), "{v}");
    }
    // B's log holds its decisions and the one that passed the wait above.
    let count_on = |addr: &str, args: &[&str]| {
        let mut all = vec![
            "policy",
            "replay",
            "--version",
            &candidate,
            "--format",
            "json",
        ];
        all.extend_from_slice(args);
        let (code, out, err) = cli(addr, &token, &all);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let own = count_on(&a.addr, &[]);
    assert_eq!(own["nodes"], json!(["node-a"]), "{own}");
    assert_eq!(own["counts"]["decisions"], 2, "{own}");
    let own_b = count_on(&b.addr, &[]);
    assert_eq!(own_b["nodes"], json!(["node-b"]), "{own_b}");
    let all = count_on(&a.addr, &["--all-nodes"]);
    assert_eq!(all["nodes"], json!(["node-a", "node-b"]), "{all}");
    let on_b = all["counts"]["decisions"].as_u64().unwrap() - 2;
    assert!(on_b >= 3, "B's decisions read too: {all}");
    // Each node's own count, summed (B's refusals while it did not know the agent yet
    // are not about policy: `not_replayed`).
    let c = &all["counts"];
    for k in ["decisions", "allow_to_deny", "not_replayed"] {
        assert_eq!(
            c[k].as_u64().unwrap(),
            own["counts"][k].as_u64().unwrap() + own_b["counts"][k].as_u64().unwrap(),
            "{k}: {all}"
        );
    }
    assert_eq!(
        c["allow_to_deny"].as_u64().unwrap() + c["not_replayed"].as_u64().unwrap(),
        c["decisions"].as_u64().unwrap(),
        "{all}"
    );
    let examples: Vec<&str> = all["changes"][0]["example_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        examples.iter().any(|e| e.starts_with("node-a:"))
            && examples.iter().any(|e| e.starts_with("node-b:")),
        "{examples:?}"
    );
    // An access review started on A counts the agent's allows on both nodes: a
    // suggestion cut from one node's share would drop grants it uses on the other.
    let allows = own["counts"]["allow_to_deny"].as_u64().unwrap()
        + own_b["counts"]["allow_to_deny"].as_u64().unwrap();
    // A window ends at the start time, exclusive, in whole seconds: start the review in
    // the next second, so the decisions just made are inside it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let due = "2999-01-01T00:00:00Z";
    let (st, review) = a
        .admin(
            &token,
            Method::POST,
            "/v1/reviews",
            Some(json!({"owner": "o@example.com", "due": due})),
        )
        .await;
    assert_eq!(st, 201, "{review}");
    assert_eq!(review["review"]["decisions_read"], allows, "{review}");
    assert_eq!(review["items"][0]["used"]["allows"], allows, "{review}");
}
