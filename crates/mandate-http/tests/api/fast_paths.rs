//! What the hot paths skip must never change an answer: the token endpoint takes the
//! agent from the decision snapshot and signs with the snapshot's key ring (no store
//! read, no blocking thread for either), reads no credentials for a remembered secret
//! while the store's credentials generation is unchanged, and the audit writer commits
//! a due checkpoint with the group commit that completes it. Each test pins an invariant those
//! shortcuts rely on: a revoked, rotated-out or suspended client is refused on the very
//! next request even though its secret is remembered; a token signed right after a key
//! rotation verifies; a checkpoint is on the record as soon as its last event is.
//!
//! Router tests on the api tests' `Env` (a fresh SQLite file, a manual clock).

#![expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test loudly; JSON is read by index"
)]

use mandate_store::prelude::*;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mandate_audit::checkpoint::SignedCheckpoint;
use mandate_audit::event::AuditEvent;
use mandate_core::clock::{Clock, ManualClock};
use mandate_core::random::OsRandom;
use mandate_http::audit::{AuditLog, CheckpointPolicy};
use mandate_store::Store;
use mandate_store_sqlite::SqliteStore;
use serde_json::{Value, json};

use super::{Env, Reply};

/// Client-credential steps the tests below repeat, on the api tests' `Env`.
trait Tokens {
    async fn agent(&self, name: &str) -> String;
    async fn token_reply(&self, agent: &str, secret: &str) -> Reply;
    async fn issued(&self, agent: &str, secret: &str) -> String;
    async fn refused(&self, agent: &str, secret: &str);
    async fn revoke(&self, agent: &str, credential: &str);
}

impl Tokens for Env {
    /// A new agent whose boundary allows `crm:read` on contacts; its id.
    async fn agent(&self, name: &str) -> String {
        let boundary =
            json!({"grants": [{"actions": ["crm:read"], "resources": ["Crm::Contact/*"]}]});
        self.register(name, boundary).await
    }

    /// `client_credentials` with `client_secret_basic`.
    async fn token_reply(&self, agent: &str, secret: &str) -> Reply {
        let grant = [("grant_type", "client_credentials")];
        self.form("/oauth/token", Some((agent, secret)), &grant)
            .await
    }

    async fn issued(&self, agent: &str, secret: &str) -> String {
        let r = self.token_reply(agent, secret).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json());
        r.json()["access_token"].as_str().expect("token").to_owned()
    }

    async fn refused(&self, agent: &str, secret: &str) {
        let r = self.token_reply(agent, secret).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.json());
        assert_eq!(r.json()["error"], "invalid_client");
    }

    /// Revokes one credential through the admin API.
    async fn revoke(&self, agent: &str, credential: &str) {
        let path = format!("/v1/agents/{agent}/credentials/{credential}");
        let r = self.admin(Method::DELETE, &path, None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
}

#[tokio::test]
async fn a_remembered_secret_stops_with_its_revoked_credential() {
    let env = Env::new();
    let agent = env.agent("revoked").await;
    let (cid, secret) = env.add_secret(&agent).await;
    let (_, other) = env.add_secret(&agent).await;
    // Twice: the second request is served from the verified-secret cache.
    env.issued(&agent, &secret).await;
    env.issued(&agent, &secret).await;
    env.revoke(&agent, &cid).await;
    env.refused(&agent, &secret).await;
    env.issued(&agent, &other).await;
}

#[tokio::test]
async fn a_secret_remembered_again_after_another_clients_change_still_stops_with_its_own() {
    let env = Env::new();
    let agent = env.agent("steady").await;
    let other = env.agent("bystander").await;
    let (cid, secret) = env.add_secret(&agent).await;
    env.issued(&agent, &secret).await;
    env.issued(&agent, &secret).await;
    // Another client's change moves the credentials generation: the next request reads
    // the store again and remembers the secret under the new generation...
    let (ocid, osecret) = env.add_secret(&other).await;
    env.issued(&agent, &secret).await;
    env.issued(&agent, &secret).await;
    // ...under which this client's own revocation must still hold at once.
    env.revoke(&agent, &cid).await;
    env.refused(&agent, &secret).await;
    env.issued(&other, &osecret).await;
    env.issued(&other, &osecret).await;
    env.revoke(&other, &ocid).await;
    env.refused(&other, &osecret).await;
}

#[tokio::test]
async fn a_memo_renewed_after_a_rotation_ends_with_the_shortened_overlap() {
    let env = Env::new();
    let agent = env.agent("overlapped").await;
    let (cid, old) = env.add_secret(&agent).await;
    env.issued(&agent, &old).await;
    let r = env
        .admin(
            Method::POST,
            &format!("/v1/agents/{agent}/credentials/{cid}/rotate"),
            Some(json!({"overlap_secs": 60})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    // Within the overlap: served from the store, and the memo renewed under the new
    // generation — but only until the old credential's new expiry.
    env.issued(&agent, &old).await;
    env.issued(&agent, &old).await;
    env.clock.advance_secs(60);
    env.refused(&agent, &old).await;
}

#[tokio::test]
async fn a_remembered_secret_rotated_without_overlap_stops_at_once() {
    let env = Env::new();
    let agent = env.agent("rotated").await;
    let (cid, old) = env.add_secret(&agent).await;
    env.issued(&agent, &old).await;
    env.issued(&agent, &old).await;
    let r = env
        .admin(
            Method::POST,
            &format!("/v1/agents/{agent}/credentials/{cid}/rotate"),
            Some(json!({"overlap_secs": 0})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let new = r.json()["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    env.refused(&agent, &old).await;
    env.issued(&agent, &new).await;
}

#[tokio::test]
async fn a_suspension_refuses_a_remembered_secret_on_the_next_request() {
    let env = Env::new();
    let agent = env.agent("suspended").await;
    let (_, secret) = env.add_secret(&agent).await;
    env.issued(&agent, &secret).await;
    let path = format!("/v1/agents/{agent}");
    let r = env
        .admin(Method::POST, &format!("{path}/suspend"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    env.refused(&agent, &secret).await;
    let r = env
        .admin(Method::POST, &format!("{path}/resume"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    env.issued(&agent, &secret).await;
    let r = env
        .admin(Method::POST, &format!("{path}/decommission"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    env.refused(&agent, &secret).await;
}

#[tokio::test]
async fn an_unknown_client_is_refused_like_a_wrong_secret() {
    let env = Env::new();
    let agent = env.agent("known").await;
    let (_, secret) = env.add_secret(&agent).await;
    env.refused("agt_01JZZZZZZZZZZZZZZZZZZZZZZZ", &secret).await;
    env.refused("not-an-agent-id", &secret).await;
    env.refused(&agent, "wrong").await;
}

fn kid(token: &str) -> String {
    let header = token.split('.').next().expect("JWT header");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url"))
        .expect("JSON header");
    header["kid"].as_str().expect("kid").to_owned()
}

#[tokio::test]
async fn a_token_signed_right_after_a_key_rotation_has_the_new_key_and_decides() {
    let env = Env::new();
    let agent = env.agent("rotating-keys").await;
    let (_, secret) = env.add_secret(&agent).await;
    let before = env.issued(&agent, &secret).await;
    let r = env.admin(Method::POST, "/v1/keys/rotate", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let new_kid = r.json()["kid"].as_str().expect("kid").to_owned();
    assert_ne!(kid(&before), new_kid);
    let after = env.issued(&agent, &secret).await;
    assert_eq!(kid(&after), new_kid);
    for token in [&before, &after] {
        let r = env
            .bearer(
                token,
                Method::POST,
                "/v1/authorize",
                Some(json!({"action": "crm:read",
                    "resource": {"type": "Crm::Contact", "id": "c-1"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json());
        // No policy is active, so it is denied — but for that, not for its token.
        assert_eq!(r.json()["reasons"][0], "no_active_policy", "{}", r.json());
    }
}

#[tokio::test]
async fn a_due_checkpoint_is_committed_with_the_events_it_covers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("mandate.db")).expect("store"));
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_millis(1_700_000_000_000));
    let log = AuditLog::open(
        Arc::clone(&store),
        Arc::clone(&clock),
        &OsRandom,
        &dir.path().join("audit-key.pem"),
        CheckpointPolicy {
            every_events: 3,
            every_secs: 3600,
        },
    )
    .expect("audit log");
    let draft = || AuditEvent::new(0, clock.now(), log.node().clone(), "test.event");
    for result in log.record_all(vec![draft(), draft(), draft()]).await {
        result.expect("recorded");
    }
    // As soon as the events are durable, so is the checkpoint over them: the writer
    // signed it before committing them, not in a second commit afterwards.
    let checkpoints = store.checkpoints().expect("checkpoints");
    let [stored] = checkpoints.as_slice() else {
        panic!("one checkpoint expected, found {checkpoints:?}")
    };
    assert_eq!(stored.size, 3);
    let signed = SignedCheckpoint {
        text: stored.text.clone(),
    }
    .verify(&log.public_key())
    .expect("signed by the node's audit key");
    let leaves: Vec<_> = store
        .audit_bodies(0, 3)
        .expect("bodies")
        .iter()
        .map(|b| mandate_audit::merkle::leaf_hash(b.as_bytes()))
        .collect();
    assert_eq!(signed.root, mandate_audit::merkle::root(&leaves));
    assert_eq!(signed.size, 3);
    log.close();
    assert_eq!(
        store.checkpoints().expect("checkpoints").len(),
        1,
        "closing seals nothing new when the last checkpoint covers the log"
    );
}

/// `INVARIANT (never behind what was signed)`: a store older than the checkpoints this
/// node signed (a backup copied back under the same node name) does not open, so no
/// sequence number it signed is signed again with another event.
#[tokio::test]
async fn a_store_older_than_what_the_node_signed_does_not_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("mandate.db");
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at_millis(1_700_000_000_000));
    let policy = CheckpointPolicy {
        every_events: 3,
        every_secs: 3600,
    };
    let open = || {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).expect("store"));
        AuditLog::open(
            store,
            Arc::clone(&clock),
            &OsRandom,
            &dir.path().join("audit-key.pem"),
            policy,
        )
    };
    let three = |log: &AuditLog| {
        let node = log.node().clone();
        (0..3)
            .map(|_| AuditEvent::new(0, clock.now(), node.clone(), "test.event"))
            .collect::<Vec<_>>()
    };
    let log = open().expect("audit log");
    for r in log.record_all(three(&log)).await {
        r.expect("recorded");
    }
    let node = log.node().clone();
    log.close();
    // The "backup": the file as it was with 3 events signed.
    let backup = dir.path().join("backup.db");
    std::fs::copy(&db, &backup).expect("copy");
    let log = open().expect("audit log");
    for r in log.record_all(three(&log)).await {
        r.expect("recorded");
    }
    log.close();
    let mark = std::fs::read_to_string(dir.path().join("audit-signed")).expect("mark");
    assert_eq!(mark.trim(), format!("{node} 6"));
    // Copied back under the same name: refused, saying why.
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(db.with_extension(ext));
    }
    std::fs::copy(&backup, &db).expect("copy back");
    let Err(e) = open() else {
        panic!("a store behind the signed checkpoints opened")
    };
    let e = e.to_string();
    assert!(e.contains("signed a checkpoint over 6 events"), "{e}");
    assert!(e.contains("new node id"), "{e}");
}
