//! The store conformance kit (`mandate_store::conformance`) against [`PostgresStore`],
//! every check one test on its own freshly created database (dropped after), plus the
//! checks only this backend has: migrations under concurrent starts, a schema newer than
//! the binary, an unreachable server.
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

/// A fresh, empty store on its own database; the database lives as long as the guard.
fn open() -> (TestDb, Box<dyn Store>) {
    let db = TestDb::new();
    let store = PostgresStore::connect(&db.url()).unwrap();
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
                .map(|_| s.spawn(|| PostgresStore::connect(&url)))
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
        drop(PostgresStore::connect(&url).unwrap());
        let newer = mandate_store_postgres::SCHEMA_VERSION + 7;
        run_in(
            &url,
            &format!("INSERT INTO mandate_schema (version) VALUES ({newer})"),
        )
        .unwrap();
        let e = PostgresStore::connect(&url).unwrap_err().to_string();
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
        drop(PostgresStore::connect(&url).unwrap());
    }

    /// An unreachable server is a `postgres` backend error naming where, not a hang, and
    /// the description never shows the password.
    #[test]
    fn an_unreachable_server_is_a_clear_error_without_the_password() {
        let e = PostgresStore::connect("postgres://mandate:s3cret@127.0.0.1:1/nowhere")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("postgres: "), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let db = TestDb::new();
        let store = PostgresStore::connect(&db.url()).unwrap();
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
            let store = PostgresStore::connect(&url).unwrap();
            store.ping().unwrap();
            assert!(!store.has_bootstrap().unwrap());
            let name = store.node_name(&mut || "node-a".into()).unwrap();
            assert_eq!(name, "node-a");
            assert_eq!(store.node_name(&mut || "node-b".into()).unwrap(), "node-a");
            drop(store);
        });
    }

    /// One `mandate serve` per database until clustering: a second claim is refused,
    /// and the claim ends with the store that held it.
    #[test]
    fn a_second_sole_node_claim_is_refused_until_the_first_store_is_gone() {
        let db = TestDb::new();
        let a = PostgresStore::connect(&db.url()).unwrap();
        let b = PostgresStore::connect(&db.url()).unwrap();
        a.claim_sole_node().unwrap();
        let e = b.claim_sole_node().unwrap_err();
        assert!(
            matches!(e, mandate_store::StoreError::Conflict(_)) && e.to_string().contains("in use"),
            "{e}"
        );
        drop(a);
        // The server ends the lock when the claiming connection closes; that takes a
        // moment after the store is dropped.
        let mut tries = 0;
        while b.claim_sole_node().is_err() {
            tries += 1;
            assert!(tries < 200, "the claim outlived its store by 10 s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
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
        let a = PostgresStore::connect(&db.url()).unwrap();
        let b = PostgresStore::connect(&db.url()).unwrap();
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
    fn run_in(url: &str, sql: &str) -> Result<(), String> {
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
        let store = PostgresStore::connect(&db.url()).unwrap();
        let a = agent(1, "a", "o@example.com", &[]);
        store.insert_agent(&a).unwrap();
        let (errors, fresh) = (AtomicU32::new(0), AtomicU32::new(0));
        std::thread::scope(|s| {
            for t in 0..8_i64 {
                let (a, errors, fresh, url) = (&a, &errors, &fresh, db.url());
                s.spawn(move || {
                    let store = PostgresStore::connect(&url).unwrap();
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
        let store = PostgresStore::connect(&db.url()).unwrap();
        for (round, replaces) in [(0_i64, None), (1, Some("r0-k0"))] {
            let made = AtomicU32::new(0);
            std::thread::scope(|s| {
                for t in 0..4_i64 {
                    let (made, url) = (&made, db.url());
                    s.spawn(move || {
                        let store = PostgresStore::connect(&url).unwrap();
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
        let store = PostgresStore::connect(&db.url()).unwrap();
        for round in 0..10_i64 {
            let a = agent(round * 100, &format!("a{round}"), "o@example.com", &[]);
            store.insert_agent(&a).unwrap();
            std::thread::scope(|s| {
                for t in 0..4_i64 {
                    let (a, url) = (&a, db.url());
                    s.spawn(move || {
                        let store = PostgresStore::connect(&url).unwrap();
                        for i in 0..5 {
                            let c = Credential {
                                id: credential_id(round * 100 + t * 10 + i + 1),
                                agent_id: a.id.clone(),
                                kind: CredentialKind::ClientSecret,
                                public_jwk: None,
                                key_id: None,
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
