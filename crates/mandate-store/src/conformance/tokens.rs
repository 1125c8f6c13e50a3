//! Token state: client-assertion replay records, revoked tokens, admin tokens and the
//! bootstrap token, and the signing keys' publication windows.

#![expect(clippy::unwrap_used, reason = "checks are tests: a failure panics")]
#![expect(
    clippy::indexing_slicing,
    reason = "checks are tests: lengths asserted first"
)]

use mandate_core::admin::Role;

use super::{admin_id, admin_token, agent_id, at};
use crate::prelude::*;

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

/// A new signing key retires the current one, which stays published until its own `publish_until`.
pub fn adding_a_signing_key_retires_the_previous_one(store: &dyn Store) {
    assert!(store.published_signing_keys(at(0)).unwrap().is_empty());
    store.add_signing_key("k1", &[1; 32], at(0), at(0)).unwrap();
    let keys = store.published_signing_keys(at(0)).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid, "k1");
    assert_eq!(keys[0].public_key, vec![1; 32]);
    assert_eq!((keys[0].retired_at, keys[0].publish_until), (None, None));

    store
        .add_signing_key("k2", &[2; 32], at(100), at(1060))
        .unwrap();
    let keys = store.published_signing_keys(at(100)).unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, ["k2", "k1"], "current first");
    assert_eq!(keys[0].retired_at, None);
    assert_eq!(keys[1].retired_at, Some(at(100)));
    assert_eq!(keys[1].publish_until, Some(at(1060)));
    assert_eq!(store.published_signing_keys(at(1059)).unwrap().len(), 2);
    let kids: Vec<String> = store
        .published_signing_keys(at(1060))
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, ["k2"], "gone once publish_until is reached");

    // A third key retires only the current one; k1 keeps its own window.
    store
        .add_signing_key("k3", &[3; 32], at(200), at(2000))
        .unwrap();
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
}
