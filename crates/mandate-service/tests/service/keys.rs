//! One signing key set for every node (issue 21): nodes over one store sign with the same
//! key and publish the same JWKS, a rotation on one reaches another on reload, a node
//! with another store key is refused, and a data dir from before the store key (its key
//! in `keys/<kid>.pem`, its gateway secrets under the audit-derived key) is imported.

use std::path::Path;
use std::sync::Arc;

use mandate_audit::redact::Rule;
use mandate_core::clock::{Clock as _, ManualClock};
use mandate_core::random::OsRandom;
use mandate_service::Node;
use mandate_service::admin;
use mandate_service::keys::KeysError;
use mandate_store::Store;
use mandate_store::prelude::*;
use mandate_token::access::{self, AccessClaims, Audience, Expected};
use mandate_token::keys::{KeyRing, SigningKey};
use serde_json::json;

use super::common::{T0, copy_store_key, node_over_store, node_sharing};

/// Makes data dir `to` a second node of `from`'s store: the store key, and (one SQLite
/// store has one audit log, `INVARIANT (one key per log)`) the audit key too; on
/// PostgreSQL each node keeps its own.
fn join(from: &Path, to: &Path) {
    copy_store_key(from, to);
    std::fs::copy(from.join("audit-key.pem"), to.join("audit-key.pem")).unwrap();
}

fn claims(jti: &str, now: i64) -> AccessClaims {
    AccessClaims {
        iss: "http://mandate.test".into(),
        sub: "agt_01J00000000000000000000000".into(),
        aud: Audience::One("http://mandate.test".into()),
        exp: now + 300,
        iat: now,
        nbf: now,
        jti: jti.into(),
        client_id: "agt_01J00000000000000000000000".into(),
        scope: None,
        act: None,
        mandate: None,
        parents: Vec::new(),
        cnf: None,
    }
}

/// A token signed by `ring`'s current key.
fn sign(ring: &KeyRing, jti: &str) -> String {
    access::issue_as(ring.current(), ring.signing_alg(), &claims(jti, T0)).unwrap()
}

fn verifies(ring: &KeyRing, token: &str, clock: &ManualClock) -> bool {
    let expected = Expected {
        issuer: "http://mandate.test",
        max_lifetime_secs: 3600,
    };
    access::verify(ring, token, &expected, clock.now()).is_ok()
}

fn hashing_prompt(c: &mut mandate_service::config::ServerConfig) {
    c.redact.insert("prompt".into(), Rule::Hash);
}

/// Two nodes over one store, the second given the first's store key; their data dirs
/// live as long as it does.
struct Pair {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    a: Arc<Node>,
    b: Arc<Node>,
    clock: Arc<ManualClock>,
    store: Arc<dyn Store>,
}

fn two_nodes() -> Pair {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, clock, store) = node_over_store(da.path(), hashing_prompt);
    join(da.path(), db.path());
    let b = node_sharing(db.path(), &store, &clock, hashing_prompt).unwrap();
    Pair {
        _dirs: (da, db),
        a: Arc::new(a),
        b: Arc::new(b),
        clock,
        store,
    }
}

/// Two nodes over one store sign with the same key, publish byte-identical JWKS, hash a
/// redacted field the same, and open the same gateway secrets.
#[tokio::test]
async fn two_nodes_over_one_store_sign_with_one_key_and_publish_one_jwks() {
    // `_dirs` is bound (not `..`): the data dirs must outlive the nodes.
    let Pair {
        _dirs, a, b, clock, ..
    } = two_nodes();
    let (ra, rb) = (a.keys.ring(), b.keys.ring());
    assert_eq!(ra.current().kid(), rb.current().kid());
    assert_eq!(
        ra.jwks(clock.now()).to_string(),
        rb.jwks(clock.now()).to_string()
    );
    assert!(verifies(&rb, &sign(&ra, "tok_a"), &clock));
    assert!(verifies(&ra, &sign(&rb, "tok_b"), &clock));

    let context = json!({"prompt": "the same words", "kept": 1});
    assert_eq!(a.redact(&context), b.redact(&context));
    assert_ne!(a.redact(&context)["prompt"], "the same words");

    let actor = mandate_service::actor::Actor::Admin(
        mandate_core::id::AdminTokenId::parse("adm_01JA0000000000000000000000").unwrap(),
    );
    a.put_secret(&actor, "crm".into(), "s3cret-value".into())
        .await
        .unwrap();
    assert_eq!(b.secret("crm"), None, "B has not heard of it yet");
    b.reload_secrets().unwrap();
    assert_eq!(b.secret("crm").as_deref(), Some("s3cret-value"));
}

/// A rotation on node A reaches node B when B reloads (what the change feed calls): B
/// then signs with the new key and verifies A's new tokens, and both still verify tokens
/// of the retired key; their JWKS are identical again.
#[tokio::test]
async fn a_rotation_on_one_node_reaches_another_on_reload() {
    let Pair {
        _dirs,
        a,
        b,
        clock,
        store,
    } = two_nodes();
    let before = sign(&b.keys.ring(), "tok_before");
    let actor = mandate_service::actor::Actor::Admin(
        mandate_core::id::AdminTokenId::parse("adm_01JA0000000000000000000000").unwrap(),
    );
    let rotation = admin::rotate_keys(&a, &actor).await.unwrap();
    assert_eq!(rotation.retired_kid, b.keys.ring().current().kid());
    let after = sign(&a.keys.ring(), "tok_after");
    assert!(
        !verifies(&b.keys.ring(), &after, &clock),
        "B has not reloaded: the new key is unknown to it"
    );
    assert_eq!(
        store.signing_key_sealed(&rotation.retired_kid).unwrap(),
        None,
        "the retired key's private half is gone from the store"
    );

    admin::reload_keys(&b).unwrap();
    let rb = b.keys.ring();
    assert_eq!(rb.current().kid(), rotation.kid);
    assert!(verifies(&rb, &after, &clock));
    assert!(verifies(&b.snapshot().unwrap().ring, &after, &clock));
    for ring in [a.keys.ring(), rb.clone()] {
        assert!(verifies(&ring, &before, &clock), "the retired key verifies");
    }
    assert_eq!(
        a.keys.ring().jwks(clock.now()).to_string(),
        rb.jwks(clock.now()).to_string()
    );
    assert!(verifies(&a.keys.ring(), &sign(&rb, "tok_b2"), &clock));
}

/// A node whose store key is not the store's, or that has none, is refused with a clear
/// error and writes nothing: no key, no check, no file.
#[test]
fn a_node_with_another_store_key_or_none_is_refused_and_writes_nothing() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_a, clock, store) = node_over_store(da.path(), |_| {});
    let check = store.store_key_check().unwrap();
    let keys = store.published_signing_keys(clock.now()).unwrap();

    let e = node_sharing(db.path(), &store, &clock, |_| {}).unwrap_err();
    let shown = db.path().join("store.key").display().to_string();
    assert!(matches!(e, KeysError::StoreKey(_)), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("copy {shown} from a node of the cluster")),
        "{e}"
    );
    assert!(!db.path().join("store.key").exists(), "no key file made");

    mandate_store::keyfile::write_private(&db.path().join("store.key"), &"ab".repeat(32)).unwrap();
    let e = node_sharing(db.path(), &store, &clock, |_| {}).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "this node's store key does not open this store: copy {shown} from a node of the cluster"
        )
    );
    assert_eq!(store.store_key_check().unwrap(), check);
    assert_eq!(store.published_signing_keys(clock.now()).unwrap(), keys);
    assert!(
        !db.path().join("audit-key.pem").exists(),
        "refused before the audit log"
    );
}

/// Turns data dir `dir` (its node stopped) into one from before the store key: the
/// store's current key is `key`, with no sealed half (schema 6), its private half in
/// `keys/<kid>.pem`; no store key and no check; and gateway secret `crm` encrypted as
/// before, under the key derived from the node's audit key.
fn wind_back(dir: &Path, key: &SigningKey) {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    use sha2::Digest;
    let audit = std::fs::read_to_string(dir.join("audit-key.pem")).unwrap();
    let audit = ed25519_dalek::SigningKey::from_pkcs8_pem(&audit).unwrap();
    let mut h = sha2::Sha256::new();
    h.update(b"mandate-gateway-secrets-v1");
    h.update(audit.to_bytes());
    let legacy: [u8; 32] = h.finalize().into();
    let nonce = [9u8; 12];
    let ct = chacha20poly1305::ChaCha20Poly1305::new(&legacy.into())
        .encrypt(
            &nonce.into(),
            Payload {
                msg: b"old-value",
                aad: b"crm",
            },
        )
        .unwrap();

    let raw = rusqlite::Connection::open(dir.join("mandate.db")).unwrap();
    raw.execute(
        "UPDATE signing_keys SET kid = ?1, public_key = ?2 WHERE retired_at IS NULL",
        rusqlite::params![key.kid(), key.public_bytes().as_slice()],
    )
    .unwrap();
    raw.execute(
        "INSERT INTO gateway_secrets (name, nonce, ciphertext, created_at, updated_at)
         VALUES ('crm', ?1, ?2, 0, 0)",
        rusqlite::params![nonce.as_slice(), ct],
    )
    .unwrap();
    raw.execute_batch(
        "ALTER TABLE signing_keys DROP COLUMN private_sealed;
         ALTER TABLE policy_versions DROP COLUMN rego;
         DROP TABLE last_activity;
         DROP TABLE review_items;
         DROP TABLE reviews;
         DROP TABLE ssf_poll_sets;
         DROP TABLE ssf_streams;
         DROP TABLE export_cursors;
         DROP TABLE user_session_cutoffs;
         DELETE FROM meta WHERE key = 'store_key_check';
         PRAGMA user_version = 6;",
    )
    .unwrap();
    drop(raw);
    std::fs::remove_file(dir.join("store.key")).unwrap();
    std::fs::create_dir(dir.join("keys")).unwrap();
    mandate_store::keyfile::write_private(
        &dir.join(format!("keys/{}.pem", key.kid())),
        &key.to_pkcs8_pem().unwrap(),
    )
    .unwrap();
}

/// A data dir from before the store key starts: its key file is sealed into the store
/// (a store key created for it), the key files are removed, tokens it signed before
/// still verify and it keeps signing with it; its gateway secret is sealed again under
/// the store key, so a second node given that key opens it too.
#[test]
fn a_data_dir_from_before_imports_its_key_file_and_its_secrets() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    drop(node_over_store(da.path(), |_| {}));
    let old = SigningKey::generate(&OsRandom).unwrap();
    wind_back(da.path(), &old);
    let token = access::issue(&old, &claims("tok_old", T0)).unwrap();

    let (a, clock, store) = node_over_store(da.path(), |_| {});
    let ring = a.keys.ring();
    assert_eq!(
        ring.current().kid(),
        old.kid(),
        "the key from before signs on"
    );
    assert!(verifies(&ring, &token, &clock));
    assert!(verifies(&a.snapshot().unwrap().ring, &token, &clock));
    assert!(
        !da.path().join("keys").exists(),
        "the key files are removed"
    );
    assert!(da.path().join("store.key").exists());
    assert!(store.signing_key_sealed(old.kid()).unwrap().is_some());
    assert_eq!(a.secret("crm").as_deref(), Some("old-value"));

    join(da.path(), db.path());
    let b = node_sharing(db.path(), &store, &clock, |_| {}).unwrap();
    assert_eq!(b.keys.ring().current().kid(), old.kid());
    assert_eq!(b.secret("crm").as_deref(), Some("old-value"));
    drop((a, b));

    // A restart finds everything in the store: nothing to import again.
    let (a, clock, _) = node_over_store(da.path(), |_| {});
    assert!(verifies(&a.keys.ring(), &token, &clock));
    assert_eq!(a.secret("crm").as_deref(), Some("old-value"));
}
