//! Token state: client-assertion replay records, revoked tokens, admin tokens and the
//! bootstrap token, the signing keys' publication windows and sealed private halves, and
//! the store key's check.

#![expect(clippy::unwrap_used, reason = "checks are tests: a failure panics")]
#![expect(
    clippy::indexing_slicing,
    reason = "checks are tests: lengths asserted first"
)]

use mandate_core::admin::Role;

use super::{admin_id, admin_token, agent_id, at};
use crate::prelude::*;
use crate::{NewSigningKey, Topic};

/// A client assertion `jti` is accepted once per client until its expiry.
pub fn assertion_jtis_refuse_replays_and_expire(store: &dyn Store) {
    let a = agent_id(1);
    let b = agent_id(2);
    assert!(
        store
            .record_assertion_jti(&a, "j1", at(100), at(0))
            .unwrap()
    );
    assert!(
        !store
            .record_assertion_jti(&a, "j1", at(100), at(50))
            .unwrap(),
        "replay"
    );
    assert!(
        store
            .record_assertion_jti(&b, "j1", at(100), at(50))
            .unwrap(),
        "jtis are per client"
    );
    assert!(
        store
            .record_assertion_jti(&a, "j2", at(100), at(50))
            .unwrap()
    );
    // At its expiry the record is forgotten, so the (by then expired) jti is accepted
    // again; the assertion's own exp check refuses it before it gets here.
    assert!(
        store
            .record_assertion_jti(&a, "j1", at(200), at(100))
            .unwrap()
    );
    assert!(
        !store
            .record_assertion_jti(&a, "j1", at(200), at(150))
            .unwrap()
    );
}

/// A revoked token stays revoked (a repeat is fine) until it would have expired.
pub fn revoked_tokens_are_remembered_until_they_expire(store: &dyn Store) {
    assert!(!store.is_token_revoked("tok_a").unwrap());
    store.revoke_token("tok_a", at(300), at(0)).unwrap();
    assert!(store.is_token_revoked("tok_a").unwrap());
    store.revoke_token("tok_a", at(300), at(10)).unwrap();
    assert!(
        store.is_token_revoked("tok_a").unwrap(),
        "revoking twice is fine"
    );
    assert!(!store.is_token_revoked("tok_b").unwrap());
    // A later revocation sweeps records whose tokens have expired anyway.
    store.revoke_token("tok_b", at(900), at(300)).unwrap();
    assert!(!store.is_token_revoked("tok_a").unwrap());
    assert!(store.is_token_revoked("tok_b").unwrap());
}

/// Admin tokens are found by digest until revoked, stay listed, and digests are unique.
pub fn admin_tokens_are_found_by_digest_until_revoked(store: &dyn Store) {
    let t = admin_token(1, "ci", Role::Admin, false);
    let u = admin_token(2, "soc", Role::Auditor, false);
    store.insert_admin_token(&t, "digest-t").unwrap();
    store.insert_admin_token(&u, "digest-u").unwrap();
    assert_eq!(
        store.admin_token_by_digest("digest-t").unwrap(),
        Some(t.clone())
    );
    assert_eq!(
        store
            .admin_token_by_digest("digest-u")
            .unwrap()
            .map(|x| x.role),
        Some(Role::Auditor)
    );
    assert_eq!(store.admin_token_by_digest("nope").unwrap(), None);
    store.revoke_admin_token(&t.id, at(5)).unwrap();
    assert_eq!(store.admin_token_by_digest("digest-t").unwrap(), None);
    let listed = store.list_admin_tokens().unwrap();
    assert_eq!(listed.len(), 2, "revoked tokens stay listed");
    assert_eq!(listed[0].revoked_at, Some(at(5)));
    assert_eq!(listed[1].revoked_at, None);
    let r = store.revoke_admin_token(&admin_id(3), at(5));
    assert!(
        matches!(r, Err(StoreError::NotFound("admin token"))),
        "{r:?}"
    );
    // Digests are unique.
    assert!(
        store
            .insert_admin_token(&admin_token(4, "dup", Role::Admin, false), "digest-u")
            .is_err()
    );
}

/// Setting the bootstrap digest replaces the previous bootstrap token and leaves others alone.
pub fn set_bootstrap_digest_replaces_the_previous_bootstrap(store: &dyn Store) {
    assert!(!store.has_bootstrap().unwrap());
    let other = admin_token(1, "ci", Role::Admin, false);
    store.insert_admin_token(&other, "digest-ci").unwrap();
    store
        .set_bootstrap_digest(&admin_token(2, "bootstrap", Role::Admin, true), "digest-1")
        .unwrap();
    assert!(store.has_bootstrap().unwrap());
    assert!(
        store
            .admin_token_by_digest("digest-1")
            .unwrap()
            .is_some_and(|t| t.bootstrap)
    );
    let second = admin_token(3, "bootstrap", Role::Admin, true);
    store.set_bootstrap_digest(&second, "digest-2").unwrap();
    assert_eq!(
        store.admin_token_by_digest("digest-1").unwrap(),
        None,
        "the old bootstrap is gone"
    );
    assert_eq!(
        store.admin_token_by_digest("digest-2").unwrap(),
        Some(second)
    );
    let all = store.list_admin_tokens().unwrap();
    assert_eq!(all.iter().filter(|t| t.bootstrap).count(), 1);
    assert!(all.contains(&other), "other tokens are untouched");
}

/// A signing key: its kid, public key, and a stand-in for its sealed private half.
fn key(kid: &str, public: u8) -> (String, [u8; 32], Vec<u8>) {
    (kid.to_owned(), [public; 32], kid.as_bytes().repeat(16))
}

/// Records `k` as the new current key, replacing `replaces`.
fn add(
    store: &dyn Store,
    k: &(String, [u8; 32], Vec<u8>),
    replaces: Option<&str>,
    now: i64,
    old_until: i64,
) -> Result<(), StoreError> {
    let new = NewSigningKey {
        kid: &k.0,
        public_key: &k.1,
        sealed_private: &k.2,
    };
    store.add_signing_key(&new, replaces, at(now), at(old_until))
}

/// A new signing key retires the current one, which stays published until its own
/// `publish_until`; only the current key keeps its sealed private half.
pub fn adding_a_signing_key_retires_the_previous_one(store: &dyn Store) {
    assert!(store.published_signing_keys(at(0)).unwrap().is_empty());
    let k1 = key("k1", 1);
    add(store, &k1, None, 0, 0).unwrap();
    let keys = store.published_signing_keys(at(0)).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid, "k1");
    assert_eq!(keys[0].public_key, vec![1; 32]);
    assert_eq!((keys[0].retired_at, keys[0].publish_until), (None, None));
    assert_eq!(store.signing_key_sealed("k1").unwrap(), Some(k1.2.clone()));

    let k2 = key("k2", 2);
    add(store, &k2, Some("k1"), 100, 1060).unwrap();
    let keys = store.published_signing_keys(at(100)).unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, ["k2", "k1"], "current first");
    assert_eq!(keys[0].retired_at, None);
    assert_eq!(keys[1].retired_at, Some(at(100)));
    assert_eq!(keys[1].publish_until, Some(at(1060)));
    assert_eq!(
        store.signing_key_sealed("k1").unwrap(),
        None,
        "INVARIANT (one signer): a retired key's private half is erased"
    );
    assert_eq!(store.signing_key_sealed("k2").unwrap(), Some(k2.2.clone()));
    assert_eq!(store.published_signing_keys(at(1059)).unwrap().len(), 2);
    let kids: Vec<String> = store
        .published_signing_keys(at(1060))
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, ["k2"], "gone once publish_until is reached");

    // A third key retires only the current one; k1 keeps its own window.
    add(store, &key("k3", 3), Some("k2"), 200, 2000).unwrap();
    let keys = store.published_signing_keys(at(200)).unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids.first(), Some(&"k3"));
    assert_eq!(
        keys.iter()
            .find(|k| k.kid == "k1")
            .and_then(|k| k.publish_until),
        Some(at(1060))
    );
    assert_eq!(
        keys.iter()
            .find(|k| k.kid == "k2")
            .and_then(|k| k.publish_until),
        Some(at(2000))
    );
    assert_eq!(keys.iter().filter(|k| k.retired_at.is_none()).count(), 1);
    assert_eq!(store.signing_key_sealed("unknown").unwrap(), None);
}

/// A new key replaces only the key its caller saw current: naming another (or none,
/// when one exists) is a `Conflict` that writes nothing, so two nodes creating the
/// first key, or rotating at once, end with one current key.
pub fn a_signing_key_replaces_only_the_key_its_caller_saw(store: &dyn Store) {
    add(store, &key("k1", 1), Some("k0"), 0, 0).unwrap_err();
    assert!(
        store.published_signing_keys(at(0)).unwrap().is_empty(),
        "a first key that names a predecessor writes nothing"
    );
    add(store, &key("k1", 1), None, 0, 0).unwrap();
    let r = add(store, &key("k2", 2), None, 10, 100);
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    let r = add(store, &key("k2", 2), Some("k9"), 10, 100);
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    let keys = store.published_signing_keys(at(10)).unwrap();
    assert_eq!(keys.len(), 1, "nothing written: {keys:?}");
    assert_eq!((keys[0].kid.as_str(), keys[0].retired_at), ("k1", None));
    assert!(store.signing_key_sealed("k1").unwrap().is_some());
    add(store, &key("k2", 2), Some("k1"), 10, 100).unwrap();
}

/// A current key without its sealed half (a store from before the store key) gets it
/// once; a retired, unknown or already sealed key is left as it is.
pub fn a_key_from_before_gets_its_sealed_half_once(store: &dyn Store) {
    add(store, &key("k1", 1), None, 0, 0).unwrap();
    assert!(
        !store.import_signing_key_sealed("k1", b"other").unwrap(),
        "already sealed"
    );
    assert_eq!(
        store.signing_key_sealed("k1").unwrap(),
        Some(b"k1".repeat(16))
    );
    assert!(!store.import_signing_key_sealed("k0", b"x").unwrap());
    add(store, &key("k2", 2), Some("k1"), 10, 100).unwrap();
    assert!(
        !store.import_signing_key_sealed("k1", b"x").unwrap(),
        "retired"
    );
    assert_eq!(store.signing_key_sealed("k1").unwrap(), None);
}

/// The store key's check is recorded by the first claim and kept ever after.
pub fn the_store_key_check_is_claimed_once(store: &dyn Store) {
    assert_eq!(store.store_key_check().unwrap(), None);
    let before = store.topic_seq(Topic::Node);
    assert_eq!(store.claim_store_key_check("c1").unwrap(), "c1");
    assert_ne!(store.topic_seq(Topic::Node), before, "a claim is a change");
    assert_eq!(store.claim_store_key_check("c2").unwrap(), "c1");
    assert_eq!(store.store_key_check().unwrap().as_deref(), Some("c1"));
}

/// A user's session cutoff is kept per issuer and subject, moves only later, and is a
/// token-revocation change (what the decision snapshot reloads on).
pub fn user_session_cutoffs_only_move_later(store: &dyn Store) {
    assert!(store.user_session_cutoffs().unwrap().is_empty());
    let before = store.topic_seq(crate::Topic::TokenRevocations);
    store
        .set_user_sessions_not_before("https://idp.x", "alice", at(100))
        .unwrap();
    assert_ne!(store.topic_seq(crate::Topic::TokenRevocations), before);
    store
        .set_user_sessions_not_before("https://idp.x", "alice", at(50))
        .unwrap();
    store
        .set_user_sessions_not_before("https://other.x", "alice", at(70))
        .unwrap();
    let mut got: Vec<(String, String, i64)> = store
        .user_session_cutoffs()
        .unwrap()
        .into_iter()
        .map(|(i, s, t)| (i, s, t.secs()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("https://idp.x".into(), "alice".into(), at(100).secs()),
            ("https://other.x".into(), "alice".into(), at(70).secs()),
        ]
    );
    store
        .set_user_sessions_not_before("https://idp.x", "alice", at(200))
        .unwrap();
    assert!(
        store
            .user_session_cutoffs()
            .unwrap()
            .iter()
            .any(|(i, _, t)| i == "https://idp.x" && t.secs() == at(200).secs())
    );
}
