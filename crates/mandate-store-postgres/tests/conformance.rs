//! The store conformance kit (`mandate_store::conformance`) against [`PostgresStore`],
//! every check one test on its own freshly created database (dropped after), plus the
//! checks only this backend has: migrations under concurrent starts, a schema newer than
//! the binary, an unreachable server, nodes registering and keeping their own audit logs
//! on one database.
//!
//! These tests need PostgreSQL: `MANDATE_TEST_PG` names a database to connect to for
//! creating and dropping the test databases (default
//! `postgres://postgres@127.0.0.1:5432/test`). If it cannot be reached every test FAILS,
//! saying so: a run without PostgreSQL never passes silently.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a setup failure fails the test loudly"
)]

use mandate_store::Store;
use mandate_store_postgres::PostgresStore;

/// The database the tests connect to in order to create and drop their own.
fn admin_url() -> String {
    std::env::var("MANDATE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Runs one statement on the admin database.
fn admin(sql: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("PostgreSQL at `{}` is unreachable: {e}", admin_url()))?;
        let conn = tokio::spawn(conn);
        let out = client.batch_execute(sql).await.map_err(|e| {
            let db = e.as_db_error().map(|d| d.message().to_owned());
            format!("{sql}: {e} {db:?}")
        });
        drop(client);
        let _ = conn.await;
        out
    })
}

/// A freshly created, empty database with a random name; dropped with the guard.
struct TestDb {
    name: String,
}

impl TestDb {
    fn new() -> Self {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap();
        let name = format!(
            "mandate_test_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        if let Err(e) = admin(&format!("CREATE DATABASE {name}")) {
            panic!(
                "the PostgreSQL tests need a server (set MANDATE_TEST_PG to a database URL): {e}"
            );
        }
        Self { name }
    }

    /// This database's URL: the admin URL with its database name replaced.
    fn url(&self) -> String {
        let admin = admin_url();
        let mut config: tokio_postgres::Config = admin.parse().unwrap();
        config.dbname(&self.name);
        // Rebuilt as key=value text, which `PostgresStore::connect` accepts too.
        let mut parts = vec![format!("dbname={}", self.name)];
        if let Some(u) = config.get_user() {
            parts.push(format!("user={u}"));
        }
        for h in config.get_hosts() {
            if let tokio_postgres::config::Host::Tcp(h) = h {
                parts.push(format!("host={h}"));
            }
        }
        for p in config.get_ports() {
            parts.push(format!("port={p}"));
        }
        if let Some(pw) = config.get_password() {
            parts.push(format!("password={}", String::from_utf8_lossy(pw)));
        }
        parts.join(" ")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Err(e) = admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )) {
            eprintln!("leaving test database {} behind: {e}", self.name);
        }
    }
}

/// The node id the kit's stores act as.
const NODE: &str = "node-kit";

/// A fresh, empty store on its own database; the database lives as long as the guard.
fn open() -> (TestDb, Box<dyn Store>) {
    let db = TestDb::new();
    let store = PostgresStore::connect(&db.url(), NODE).unwrap();
    (db, Box::new(store))
}

mandate_store::conformance_tests!(open);

/// What only the PostgreSQL backend has: its migrations and its connection errors.
mod schema {
    use super::*;

    /// Nodes starting at once on an empty database: every one opens, and each migration
    /// ran exactly once (`INVARIANT (migrate once)`).
    #[test]
    fn concurrent_starts_migrate_once() {
        let db = TestDb::new();
        let url = db.url();
        let stores: Vec<PostgresStore> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| PostgresStore::connect(&url, NODE)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        drop(stores);
        let check = format!(
            "DO $$ BEGIN IF (SELECT count(*) FROM mandate_schema) <> {v} \
                 OR (SELECT max(version) FROM mandate_schema) <> {v} THEN \
                 RAISE EXCEPTION 'migrations ran more than once'; END IF; END $$",
            v = mandate_store_postgres::SCHEMA_VERSION
        );
        run_in(&url, &check).unwrap();
    }

    /// A database migrated by a newer binary is refused, naming both versions, and
    /// nothing is written.
    #[test]
    fn a_newer_schema_refuses_to_open() {
        let db = TestDb::new();
        let url = db.url();
        drop(PostgresStore::connect(&url, NODE).unwrap());
        let newer = mandate_store_postgres::SCHEMA_VERSION + 7;
        run_in(
            &url,
            &format!("INSERT INTO mandate_schema (version) VALUES ({newer})"),
        )
        .unwrap();
        let e = PostgresStore::connect(&url, NODE).unwrap_err().to_string();
        assert!(e.starts_with("postgres: "), "{e}");
        assert!(
            e.contains(&format!("version {newer}"))
                && e.contains(&format!("({})", mandate_store_postgres::SCHEMA_VERSION)),
            "{e}"
        );
        // Reopening after the newer row is gone works: the refusal wrote nothing.
        run_in(
            &url,
            &format!("DELETE FROM mandate_schema WHERE version = {newer}"),
        )
        .unwrap();
        drop(PostgresStore::connect(&url, NODE).unwrap());
    }

    /// An unreachable server is a `postgres` backend error naming where, not a hang, and
    /// the description never shows the password.
    #[test]
    fn an_unreachable_server_is_a_clear_error_without_the_password() {
        let e = PostgresStore::connect("postgres://mandate:s3cret@127.0.0.1:1/nowhere", NODE)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("postgres: "), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let db = TestDb::new();
        let store = PostgresStore::connect(&db.url(), NODE).unwrap();
        let d = store.describe();
        assert!(d.starts_with("postgres ") && d.ends_with(&db.name), "{d}");
        store.ping().unwrap();
    }

    /// `mandate serve` opens its store and reads it from its async `run` on a
    /// multi-thread runtime: that works (no "runtime within a runtime" panic), writes
    /// included, and dropping the store there does not panic either.
    #[test]
    fn usable_from_an_async_task_of_a_multi_thread_runtime() {
        use mandate_store::prelude::*;
        let db = TestDb::new();
        let url = db.url();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let store = PostgresStore::connect(&url, NODE).unwrap();
            store.ping().unwrap();
            assert!(!store.has_bootstrap().unwrap());
            // The node's name is the id it connected as, never one made up.
            let name = store.node_name(&mut || "node-a".into()).unwrap();
            assert_eq!(name, NODE);
            drop(store);
        });
    }

    /// The sealed private half of a signing key is kept byte for byte (every byte value,
    /// as BYTEA), read back by another store on the database (another node), and erased
    /// from the row when the key is retired (`INVARIANT (one signer)`).
    #[test]
    fn the_sealed_private_half_round_trips_and_is_erased_on_retirement() {
        use mandate_store::NewSigningKey;
        use mandate_store::conformance::at;
        use mandate_store::prelude::*;
        let db = TestDb::new();
        let a = PostgresStore::connect(&db.url(), "node-a").unwrap();
        let b = PostgresStore::connect(&db.url(), "node-b").unwrap();
        let sealed: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        let k1 = NewSigningKey {
            kid: "k1",
            public_key: &[1; 32],
            sealed_private: &sealed,
        };
        a.add_signing_key(&k1, None, at(0), at(0)).unwrap();
        assert_eq!(b.signing_key_sealed("k1").unwrap(), Some(sealed.clone()));
        let k2 = NewSigningKey {
            kid: "k2",
            public_key: &[2; 32],
            sealed_private: b"k2",
        };
        b.add_signing_key(&k2, Some("k1"), at(10), at(100)).unwrap();
        assert_eq!(a.signing_key_sealed("k1").unwrap(), None);
        run_in(
            &db.url(),
            "DO $$ BEGIN IF (SELECT private_sealed FROM signing_keys WHERE kid = 'k1') \
                 IS NOT NULL THEN RAISE EXCEPTION 'a retired key kept its private half'; \
                 END IF; END $$",
        )
        .unwrap();
        assert_eq!(
            a.signing_key_sealed("k2").unwrap().as_deref(),
            Some(&b"k2"[..])
        );
    }

    /// Runs `sql` on the database at `url`.
    pub(super) fn run_in(url: &str, sql: &str) -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            let conn = tokio::spawn(conn);
            let out = client
                .batch_execute(sql)
                .await
                .map_err(|e| format!("{e}: {:?}", e.as_db_error().map(|d| d.message().to_owned())));
            drop(client);
            let _ = conn.await;
            out
        })
    }
}

/// Units running at once from many threads, which the kit (one thread) does not do: the
/// locks of each method (`LOCK:` in the crate) make them wait for each other, never fail.
mod concurrency {
    use mandate_core::agent::AgentStatus;
    use mandate_core::credential::{Credential, CredentialKind};
    use mandate_store::conformance::{agent, at, credential_id};
    use mandate_store::prelude::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Every token request records its assertion's `jti`: eight stores on one database
    /// (eight nodes, each with its own writer lock), at once, all succeed (under
    /// SERIALIZABLE 691 of these 800 failed), and of eight replaying one `jti` exactly one
    /// is fresh.
    #[test]
    fn concurrent_assertion_jtis_all_commit_and_a_replay_is_fresh_once() {
        let db = TestDb::new();
        let store = PostgresStore::connect(&db.url(), NODE).unwrap();
        let a = agent(1, "a", "o@example.com", &[]);
        store.insert_agent(&a).unwrap();
        let (errors, fresh) = (AtomicU32::new(0), AtomicU32::new(0));
        std::thread::scope(|s| {
            for t in 0..8_i64 {
                let (a, errors, fresh, url) = (&a, &errors, &fresh, db.url());
                s.spawn(move || {
                    let store = PostgresStore::connect(&url, NODE).unwrap();
                    for i in 0..100 {
                        // Earlier records expire as the clock moves: the cleanup runs too.
                        match store.record_assertion_jti(
                            &a.id,
                            &format!("j{t}-{i}"),
                            at(i + 5),
                            at(i),
                        ) {
                            Ok(true) => {}
                            Ok(false) => panic!("a fresh jti was taken for a replay"),
                            Err(e) => {
                                eprintln!("{e}");
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    if store
                        .record_assertion_jti(&a.id, "replayed", at(500), at(100))
                        .unwrap()
                    {
                        fresh.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(errors.into_inner(), 0, "units failed under concurrency");
        assert_eq!(fresh.into_inner(), 1);
    }

    /// Nodes starting at once on an empty database each try to create the first signing
    /// key: exactly one succeeds, the others get `Conflict`, and one key is current (so
    /// every node loads the same one). Likewise nodes rotating at once from the same key.
    #[test]
    fn nodes_racing_to_create_or_replace_a_signing_key_leave_one_current() {
        use mandate_store::NewSigningKey;
        let db = TestDb::new();
        let store = PostgresStore::connect(&db.url(), NODE).unwrap();
        for (round, replaces) in [(0_i64, None), (1, Some("r0-k0"))] {
            let made = AtomicU32::new(0);
            std::thread::scope(|s| {
                for t in 0..4_i64 {
                    let (made, url) = (&made, db.url());
                    s.spawn(move || {
                        let store =
                            PostgresStore::connect(&url, &format!("node-r{round}-{t}")).unwrap();
                        let kid = format!("r{round}-k{t}");
                        let key = NewSigningKey {
                            kid: &kid,
                            public_key: &[1; 32],
                            sealed_private: kid.as_bytes(),
                        };
                        match store.add_signing_key(&key, replaces, at(round), at(round + 60)) {
                            Ok(()) => {
                                made.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(StoreError::Conflict(_)) => {}
                            Err(e) => panic!("add failed: {e}"),
                        }
                    });
                }
            });
            assert_eq!(made.into_inner(), 1, "round {round}");
            let keys = store.published_signing_keys(at(round)).unwrap();
            let current: Vec<_> = keys.iter().filter(|k| k.retired_at.is_none()).collect();
            assert_eq!(current.len(), 1, "round {round}: {keys:?}");
            if round == 0 {
                // Round 1 replaces the key named `r0-k0`: make it the current one.
                let kid = current.first().unwrap().kid.clone();
                if kid != "r0-k0" {
                    let key = NewSigningKey {
                        kid: "r0-k0",
                        public_key: &[1; 32],
                        sealed_private: b"r0-k0",
                    };
                    store
                        .add_signing_key(&key, Some(&kid), at(0), at(60))
                        .unwrap();
                }
            }
        }
    }

    /// INVARIANT (decommission revokes), raced across stores on one database (as across
    /// nodes: each has its own writer lock, so only the row locks keep the rule):
    /// credentials inserted while the agent is being decommissioned are either refused or
    /// revoked, never left usable.
    #[test]
    fn a_decommission_racing_credential_inserts_leaves_none_usable() {
        let db = TestDb::new();
        let store = PostgresStore::connect(&db.url(), NODE).unwrap();
        for round in 0..10_i64 {
            let a = agent(round * 100, &format!("a{round}"), "o@example.com", &[]);
            store.insert_agent(&a).unwrap();
            std::thread::scope(|s| {
                for t in 0..4_i64 {
                    let (a, url) = (&a, db.url());
                    s.spawn(move || {
                        let store = PostgresStore::connect(&url, NODE).unwrap();
                        for i in 0..5 {
                            let c = Credential {
                                id: credential_id(round * 100 + t * 10 + i + 1),
                                agent_id: a.id.clone(),
                                kind: CredentialKind::ClientSecret,
                                public_jwk: None,
                                key_id: None,
                                cert_name: None,
                                created_at: at(0),
                                expires_at: None,
                                revoked_at: None,
                                replaced_by: None,
                            };
                            match store.insert_credential(&c, Some("$argon2id$x")) {
                                Ok(()) | Err(StoreError::Conflict(_)) => {}
                                Err(e) => panic!("insert failed: {e}"),
                            }
                        }
                    });
                }
                s.spawn(|| {
                    store
                        .update_agent(&a.id, at(10), true, &mut |x| {
                            x.status = AgentStatus::Decommissioned;
                            Ok(())
                        })
                        .unwrap();
                });
            });
            for c in store.credentials(&a.id).unwrap() {
                assert!(
                    c.credential.revoked_at.is_some(),
                    "round {round}: credential {} survived the decommission",
                    c.credential.id
                );
            }
        }
    }
}

/// The cross-node change feed (listen.rs): other nodes' commits arrive, a heartbeat proves
/// the feed complete, a lost connection is unproven and then reads everything again, and
/// one node at a time leads.
#[expect(
    clippy::disallowed_methods,
    reason = "tests wait on monotonic time; the store's proofs are monotonic instants"
)]
mod feed {
    use std::time::{Duration, Instant};

    use mandate_store::conformance::at;
    use mandate_store::prelude::*;
    use mandate_store::{Freshness, Topic};

    use super::*;

    const HEARTBEAT: Duration = Duration::from_millis(50);

    /// Waits up to 10 s for `cond`; panics naming `what` if it never holds.
    fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn proven(s: &PostgresStore) -> Option<(Instant, u64)> {
        match s.freshness() {
            Freshness::Proven { at, seq, .. } => Some((at, seq)),
            _ => None,
        }
    }

    /// A store whose feed runs, proven at least once.
    fn listening(url: &str) -> PostgresStore {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let s = PostgresStore::connect(url, &format!("node-{n}")).unwrap();
        assert_eq!(
            s.freshness(),
            Freshness::Unproven,
            "proven before it listens"
        );
        s.start_feed(HEARTBEAT);
        eventually("the first heartbeat comes back", || proven(&s).is_some());
        s
    }

    /// A revocation committed through store A reaches B's feed under its topic, and B's
    /// next proof covers it (a proof made after the commit names a sequence number at or
    /// past the change). A's own feed counts its write once: its own notification is not
    /// published again.
    #[test]
    fn another_nodes_commit_reaches_the_feed_and_the_next_proof_covers_it() {
        let db = TestDb::new();
        let a = listening(&db.url());
        let b = listening(&db.url());
        let (b_from, a_from) = (
            b.changes_since(0, Duration::ZERO).seq,
            a.changes_since(0, Duration::ZERO).seq,
        );
        let committed = Instant::now();
        a.revoke_token("jti-1", at(100), at(1)).unwrap();
        let c = b.changes_since(b_from, Duration::from_secs(5));
        assert!(c.topics.contains(Topic::TokenRevocations), "{c:?}");
        eventually("a proof made after the commit", || {
            proven(&b).is_some_and(|(t, seq)| t > committed && seq >= c.seq)
        });
        // A: one change for its one unit, however many heartbeats pass.
        std::thread::sleep(HEARTBEAT * 4);
        assert_eq!(a.changes_since(a_from, Duration::ZERO).seq, a_from + 1);
    }

    /// Only a commit is announced: a write unit that fails after writing reaches no other
    /// node (its own feed publishes it, as the seam asks, but nothing is sent).
    #[test]
    fn a_rolled_back_unit_is_not_announced() {
        let db = TestDb::new();
        let a = PostgresStore::connect(&db.url(), "node-writer").unwrap();
        let b = listening(&db.url());
        let from = b.changes_since(0, Duration::ZERO).seq;
        let failed = a.write_unit(&mut |r| {
            r.revoke_token("jti-2", at(100), at(1))?;
            Err(StoreError::Refused)
        });
        assert!(failed.is_err());
        // Then a committed one, so the wait below has an end the test can see.
        a.revoke_token("jti-3", at(100), at(1)).unwrap();
        let c = b.changes_since(from, Duration::from_secs(5));
        assert!(c.topics.contains(Topic::TokenRevocations), "{c:?}");
        assert!(!b.is_token_revoked("jti-2").unwrap());
        std::thread::sleep(HEARTBEAT * 4);
        let c2 = b.changes_since(from, Duration::ZERO);
        assert_eq!(c.seq, c2.seq, "the rolled-back unit was announced: {c2:?}");
    }

    /// The listening connection terminated by the server (`pg_terminate_backend`, as a
    /// PostgreSQL restart or a network cut does): the feed is unproven at once, comes back
    /// by itself, and publishes every topic (what it may have missed is read again).
    #[test]
    fn a_lost_listen_connection_is_unproven_then_reads_everything() {
        let db = TestDb::new();
        let b = listening(&db.url());
        let from = b.changes_since(0, Duration::ZERO).seq;
        let kill = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND application_name = 'mandate-listen'",
            db.name
        );
        schema::run_in(&db.url(), &kill).unwrap();
        eventually("the loss is seen", || proven(&b).is_none());
        eventually("the feed proves itself again", || proven(&b).is_some());
        let c = b.changes_since(from, Duration::ZERO);
        for t in Topic::ALL {
            assert!(c.topics.contains(t), "{t:?} not read again: {c:?}");
        }
    }

    /// Of two listening stores exactly one leads; when it goes (its connection ends with
    /// it), the other takes over.
    #[test]
    fn one_node_leads_and_another_takes_over() {
        let db = TestDb::new();
        let a = listening(&db.url());
        let b = listening(&db.url());
        eventually("one leads", || a.leads() || b.leads());
        std::thread::sleep(HEARTBEAT * 4);
        assert!(a.leads() != b.leads(), "both or neither lead");
        let (leader, other) = if a.leads() { (a, b) } else { (b, a) };
        drop(leader);
        eventually("the other takes over", || other.leads());
    }

    /// A store that never started its feed proves nothing and never leads: a node over it
    /// refuses to decide (mandate-service `INVARIANT (fresh or refused)`).
    #[test]
    fn without_its_feed_a_store_proves_nothing_and_never_leads() {
        let db = TestDb::new();
        let s = PostgresStore::connect(&db.url(), NODE).unwrap();
        std::thread::sleep(HEARTBEAT * 4);
        assert_eq!(s.freshness(), Freshness::Unproven);
        assert!(!s.leads());
    }
}

/// Many nodes on one database: each registers under its own id (a repeated id is
/// refused), and each keeps its own audit log, which survives it.
mod nodes {
    use mandate_core::time::Timestamp;
    use mandate_store::prelude::*;
    use mandate_store::{AuditRow, CheckpointRow};

    use super::*;

    fn row(node: &str, seq: u64) -> AuditRow {
        AuditRow {
            seq,
            time: Timestamp::from_secs(1_700_000_000),
            kind: "decision".into(),
            agent: Some(format!("agt_{}", seq % 3)),
            user: None,
            decision: Some("allow".into()),
            body: format!("{{\"node\":\"{node}\",\"seq\":{seq}}}"),
            leaf: [u8::try_from(seq % 251).unwrap(); 32],
        }
    }

    fn checkpoint(node: &str, size: u64) -> CheckpointRow {
        CheckpointRow {
            size,
            time: Timestamp::from_secs(1_700_000_000),
            root: [9; 32],
            text: format!("{node}\n{size}\nroot\n"),
        }
    }

    /// `INVARIANT (one process per node id)`: two ids both register; a third store with
    /// the first id is refused, naming the id, and writes nothing; once the first store
    /// is gone the id registers again.
    #[test]
    fn a_repeated_node_id_is_refused_until_its_store_is_gone_other_ids_register() {
        let db = TestDb::new();
        let a = PostgresStore::connect(&db.url(), "node-a").unwrap();
        let b = PostgresStore::connect(&db.url(), "node-b").unwrap();
        let again = PostgresStore::connect(&db.url(), "node-a").unwrap();
        a.register(Timestamp::from_secs(100)).unwrap();
        b.register(Timestamp::from_secs(101)).unwrap();
        let e = again.register(Timestamp::from_secs(999)).unwrap_err();
        assert!(
            matches!(e, StoreError::Conflict(_))
                && e.to_string()
                    .contains("node id `node-a` is already serving"),
            "{e}"
        );
        let nodes = a.nodes().unwrap();
        let names: Vec<_> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["node-a", "node-b"]);
        // The refused registration wrote nothing: node-a still started at 100.
        assert_eq!(nodes[0].started_at, Some(Timestamp::from_secs(100)));
        drop(a);
        // The server ends the lock when the registering connection closes; that takes a
        // moment after the store is dropped.
        let mut tries = 0;
        while again.register(Timestamp::from_secs(200)).is_err() {
            tries += 1;
            assert!(tries < 200, "the registration outlived its store by 10 s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let nodes = b.nodes().unwrap();
        assert_eq!(nodes[0].started_at, Some(Timestamp::from_secs(200)));
    }

    /// Regression (issue 21 review, atk3): the connection holding a node's registration
    /// lock was lost unseen (`pg_terminate_backend`, a network cut, a proxy restart), the
    /// lock lapsed, and a second process with the same id registered beside the first:
    /// two writers of one audit log, against `INVARIANT (one process per node id)`. Now
    /// the first takes its registration again at once; and if the other process got it
    /// first, the first proves nothing and leads nothing from then on (it refuses to
    /// decide) rather than serve beside it.
    #[test]
    fn a_lost_registration_connection_is_taken_again_or_the_node_stops_serving() {
        use std::time::Duration;
        let db = TestDb::new();
        let a = PostgresStore::connect(&db.url(), "node-a").unwrap();
        a.register(Timestamp::from_secs(1)).unwrap();
        a.start_feed(Duration::from_millis(50));
        let mut tries = 0;
        while !matches!(a.freshness(), mandate_store::Freshness::Proven { .. }) {
            tries += 1;
            assert!(tries < 200, "node-a never proved its feed");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The backend holding node-a's registration lock (`registration_lock_text`).
        let kill = format!(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_database d \
               ON d.oid = l.database AND d.datname = '{}' \
             WHERE l.locktype = 'advisory' AND l.objsubid = 1 \
               AND ((l.classid::bigint << 32) | l.objid::bigint) \
                   = hashtextextended('mandate node node-a', 0)",
            db.name
        );
        schema::run_in(&db.url(), &kill).unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        let again = PostgresStore::connect(&db.url(), "node-a").unwrap();
        match again.register(Timestamp::from_secs(2)) {
            Err(e) => assert!(matches!(e, StoreError::Conflict(_)), "{e}"),
            Ok(()) => {
                // The other process holds the id now: node-a must not serve beside it.
                std::thread::sleep(Duration::from_millis(500));
                assert_eq!(
                    a.freshness(),
                    mandate_store::Freshness::Unproven,
                    "node-a serves beside another process with its id"
                );
                assert!(!a.leads());
            }
        }
    }

    /// The other branch of the test above, made certain: another session is queued on
    /// node-a's registration lock when node-a's connection is cut, so it gets the lock
    /// first. Node-a then proves nothing and does not lead for as long as the other holds
    /// the id, and takes it again (and proves itself again) once the other lets go.
    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "the test waits on monotonic time"
    )]
    fn a_node_whose_id_was_taken_meanwhile_refuses_until_it_holds_it_again() {
        use mandate_store::Freshness;
        use std::time::{Duration, Instant};
        fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !cond() {
                assert!(Instant::now() < deadline, "never: {what}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let db = TestDb::new();
        let a = PostgresStore::connect(&db.url(), "node-a").unwrap();
        a.register(Timestamp::from_secs(1)).unwrap();
        a.start_feed(Duration::from_millis(50));
        eventually("node-a proves its feed", || {
            matches!(a.freshness(), Freshness::Proven { .. })
        });
        eventually("node-a leads", || a.leads());
        // Another process waits for node-a's id (blocking until it has it), then holds it
        // until told to let go.
        let (go, release) = std::sync::mpsc::channel::<()>();
        let (got, has) = std::sync::mpsc::channel::<()>();
        let url = db.url();
        let other = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                let conn = tokio::spawn(conn);
                client
                    .execute(
                        "SELECT pg_advisory_lock(hashtextextended('mandate node node-a', 0))",
                        &[],
                    )
                    .await
                    .unwrap();
                got.send(()).unwrap();
                let _ = tokio::task::spawn_blocking(move || release.recv()).await;
                drop(client);
                let _ = conn.await;
            });
        });
        // Queued behind node-a's lock before it is cut.
        std::thread::sleep(Duration::from_millis(300));
        let kill = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND application_name = 'mandate-register'",
            db.name
        );
        schema::run_in(&db.url(), &kill).unwrap();
        has.recv_timeout(Duration::from_secs(10)).unwrap();
        eventually("node-a stops proving", || {
            a.freshness() == Freshness::Unproven
        });
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            a.freshness(),
            Freshness::Unproven,
            "proven beside the other"
        );
        assert!(!a.leads(), "leads beside the other");
        go.send(()).unwrap();
        other.join().unwrap();
        eventually("node-a takes its id again and proves itself", || {
            matches!(a.freshness(), Freshness::Proven { .. })
        });
        eventually("node-a leads again", || a.leads());
    }

    /// Two nodes append to their logs at once: each log is gapless, holds only its
    /// node's events and checkpoints, and is readable by name from the other node.
    #[test]
    fn two_nodes_append_at_once_each_log_gapless_and_its_own() {
        let db = TestDb::new();
        let url = db.url();
        std::thread::scope(|s| {
            for node in ["node-a", "node-b"] {
                let url = url.clone();
                s.spawn(move || {
                    let store = PostgresStore::connect(&url, node).unwrap();
                    store.register(Timestamp::from_secs(1)).unwrap();
                    for batch in 0..40u64 {
                        let rows: Vec<_> =
                            (batch * 5..batch * 5 + 5).map(|q| row(node, q)).collect();
                        let cp = (batch % 10 == 9).then(|| checkpoint(node, batch * 5 + 5));
                        store.append_audit(&rows, cp.as_ref()).unwrap();
                    }
                });
            }
        });
        let a = PostgresStore::connect(&url, "node-a").unwrap();
        let b = PostgresStore::connect(&url, "node-b").unwrap();
        for (store, node, other) in [(&a, "node-a", &b), (&b, "node-b", &a)] {
            assert_eq!(store.audit_len().unwrap(), 200);
            let bodies = store.audit_bodies(0, 200).unwrap();
            let want: Vec<_> = (0..200).map(|q| row(node, q).body).collect();
            assert_eq!(bodies, want, "{node}'s log");
            assert_eq!(store.audit_leaves(200).unwrap().len(), 200);
            let sizes: Vec<_> = store
                .checkpoints()
                .unwrap()
                .iter()
                .map(|c| c.size)
                .collect();
            assert_eq!(sizes, [50, 100, 150, 200]);
            assert!(
                store
                    .checkpoints()
                    .unwrap()
                    .iter()
                    .all(|c| c.text.starts_with(node))
            );
            // Read by name from the other node: the same log.
            assert_eq!(
                other.checkpoints_of(node).unwrap(),
                store.checkpoints().unwrap()
            );
            assert_eq!(other.audit_bodies_of(node, 0, 200).unwrap(), want);
            let listed = store
                .list_audit(&mandate_store::AuditFilter::default(), None, 1000)
                .unwrap();
            assert_eq!(listed.len(), 200);
            assert!(listed.iter().all(|(_, b)| b.contains(node)));
            let recent = store.recent_audit_of_agent("agt_1", 200, 1000).unwrap();
            assert_eq!(recent.len(), 67);
            assert!(recent.iter().all(|(_, b)| b.contains(node)));
            assert_eq!(
                store.checkpoint_of_size(100).unwrap().unwrap().text,
                checkpoint(node, 100).text
            );
        }
    }

    /// A node restarted with the same id continues its log (and its one key); its log
    /// stays in the database while it is stopped, readable by the other nodes.
    #[test]
    fn a_node_restarted_with_its_id_continues_its_log() {
        let db = TestDb::new();
        let a = PostgresStore::connect(&db.url(), "node-a").unwrap();
        a.register(Timestamp::from_secs(1)).unwrap();
        a.set_audit_key("a2V5LWE=", Timestamp::from_secs(1))
            .unwrap();
        a.append_audit(
            &[row("node-a", 0), row("node-a", 1)],
            Some(&checkpoint("node-a", 2)),
        )
        .unwrap();
        drop(a);
        let b = PostgresStore::connect(&db.url(), "node-b").unwrap();
        b.register(Timestamp::from_secs(2)).unwrap();
        assert_eq!(b.audit_len().unwrap(), 0, "node-b starts its own log");
        assert_eq!(b.audit_bodies_of("node-a", 0, 10).unwrap().len(), 2);
        let listed = b.nodes().unwrap();
        assert_eq!(listed[0].name, "node-a");
        assert_eq!(listed[0].audit_key.as_deref(), Some("a2V5LWE="));

        let mut tries = 0;
        let a = loop {
            let a = PostgresStore::connect(&db.url(), "node-a").unwrap();
            if a.register(Timestamp::from_secs(3)).is_ok() {
                break a;
            }
            tries += 1;
            assert!(
                tries < 200,
                "node-a's registration outlived its store by 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert_eq!(a.audit_len().unwrap(), 2);
        a.set_audit_key("a2V5LWE=", Timestamp::from_secs(3))
            .unwrap();
        assert!(matches!(
            a.append_audit(&[row("node-a", 0)], None),
            Err(StoreError::Conflict(_))
        ));
        a.append_audit(&[row("node-a", 2)], Some(&checkpoint("node-a", 3)))
            .unwrap();
        assert_eq!(a.audit_bodies(0, 3).unwrap().len(), 3);
        assert_eq!(a.checkpoints().unwrap().len(), 2);
    }

    /// Migration 2 on a single node's database: its log (rows and checkpoints) becomes
    /// the log of the node `meta` names, listed among the nodes, and that node, started
    /// with its old name as its id, continues it.
    #[test]
    fn a_single_nodes_log_becomes_its_named_log_on_upgrade() {
        let db = TestDb::new();
        let url = db.url();
        let v1 = mandate_store_postgres::migration_sql(1).unwrap();
        schema_run_in(
            &url,
            &format!(
                "CREATE TABLE mandate_schema (version BIGINT PRIMARY KEY,
                     applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
                 {v1}
                 INSERT INTO mandate_schema (version) VALUES (1);
                 INSERT INTO meta (key, value) VALUES ('node', 'node-old');
                 INSERT INTO audit_events (seq, time, kind, body, leaf)
                     VALUES (0, 10, 'decision', '{{\"seq\":0}}', '\\x00'),
                            (1, 20, 'decision', '{{\"seq\":1}}', '\\x01');
                 INSERT INTO audit_checkpoints (size, time, root, text)
                     VALUES (2, 20, decode(repeat('02', 32), 'hex'), 'node-old cp');"
            ),
        )
        .unwrap();
        let other = PostgresStore::connect(&url, "node-new").unwrap();
        assert_eq!(other.audit_len().unwrap(), 0);
        assert_eq!(other.audit_bodies_of("node-old", 0, 5).unwrap().len(), 2);
        let listed = other.nodes().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "node-old");
        assert_eq!(listed[0].started_at, Some(Timestamp::from_secs(10)));
        let old = PostgresStore::connect(&url, "node-old").unwrap();
        assert_eq!(old.audit_len().unwrap(), 2);
        assert_eq!(old.checkpoints().unwrap()[0].text, "node-old cp");
    }

    fn schema_run_in(url: &str, sql: &str) -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            let conn = tokio::spawn(conn);
            let out = client
                .batch_execute(sql)
                .await
                .map_err(|e| format!("{e}: {:?}", e.as_db_error().map(|d| d.message().to_owned())));
            drop(client);
            let _ = conn.await;
            out
        })
    }
}
