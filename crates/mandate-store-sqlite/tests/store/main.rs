//! The SQLite store against a real database file in a temporary directory: migrations,
//! agents, credentials, replay records, revocations, admin tokens and signing keys; mandates
//! in [`mandates`].

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail the test loudly on setup errors"
)]

use std::collections::BTreeMap;
use std::path::Path;

use mandate_core::admin::{AdminToken, Role};
use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
use mandate_core::clock::ManualClock;
use mandate_core::credential::{Credential, CredentialKind};
use mandate_core::id::{AdminTokenId, AgentId, CredentialId};
use mandate_core::random::OsRandom;
use mandate_core::time::Timestamp;
use mandate_store::{AgentFilter, Store, StoreError};
use serde_json::json;

mod audit_seal;
mod detect;
mod mandates;

/// 2023-11-14T22:13:20Z, the base time of every test.
const T0: i64 = 1_700_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs(T0 + secs)
}

/// A fresh store in its own temporary directory (kept alive by the returned guard).
fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("mandate.db")).unwrap();
    (dir, store)
}

/// An id created at `T0 + ms` milliseconds, so ids sort in the order tests make them.
fn agent_id(ms: i64) -> AgentId {
    AgentId::generate(&ManualClock::at_millis(T0 * 1000 + ms), &OsRandom).unwrap()
}

fn credential_id(ms: i64) -> CredentialId {
    CredentialId::generate(&ManualClock::at_millis(T0 * 1000 + ms), &OsRandom).unwrap()
}

fn admin_id(ms: i64) -> AdminTokenId {
    AdminTokenId::generate(&ManualClock::at_millis(T0 * 1000 + ms), &OsRandom).unwrap()
}

fn agent(ms: i64, name: &str, owner: &str, labels: &[(&str, &str)]) -> Agent {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Agent {
        id: agent_id(ms),
        name: AgentName::try_from(name.to_owned()).unwrap(),
        owner: Owner::try_from(owner.to_owned()).unwrap(),
        purpose: Purpose::try_from(format!("test agent {name}")).unwrap(),
        labels: Labels::try_from(labels).unwrap(),
        boundary: Boundary::default(),
        status: AgentStatus::Active,
        status_reason: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn secret_credential(ms: i64, agent: &AgentId) -> Credential {
    Credential {
        id: credential_id(ms),
        agent_id: agent.clone(),
        kind: CredentialKind::ClientSecret,
        public_jwk: None,
        key_id: None,
        created_at: at(0),
        expires_at: None,
        revoked_at: None,
        replaced_by: None,
    }
}

fn key_credential(ms: i64, agent: &AgentId) -> Credential {
    Credential {
        kind: CredentialKind::PublicKey,
        public_jwk: Some(
            json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
        ),
        key_id: Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k".into()),
        ..secret_credential(ms, agent)
    }
}

fn admin_token(ms: i64, name: &str, role: Role, bootstrap: bool) -> AdminToken {
    AdminToken {
        id: admin_id(ms),
        name: name.into(),
        role,
        bootstrap,
        created_at: at(0),
        revoked_at: None,
    }
}

fn names(agents: &[Agent]) -> Vec<&str> {
    agents.iter().map(|a| a.name.as_str()).collect()
}

fn credential(store: &Store, agent: &AgentId, id: &CredentialId) -> Credential {
    store
        .credentials(agent)
        .unwrap()
        .into_iter()
        .find(|c| c.credential.id == *id)
        .unwrap()
        .credential
}

fn assert_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::Conflict(_))),
        "expected Conflict, got {r:?}"
    );
}

// ---- opening ----

#[test]
fn reopen_is_idempotent_and_keeps_data_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = &dir.path().join("mandate.db");
    let a = agent(1, "survivor", "alice@example.com", &[("team", "billing")]);
    {
        let store = Store::open(path).unwrap();
        assert_eq!(store.journal_mode().unwrap(), "wal");
        store.insert_agent(&a).unwrap();
    }
    // A second open runs the migrations again: they must be no-ops on a current schema.
    let store = Store::open(path).unwrap();
    assert_eq!(store.journal_mode().unwrap(), "wal");
    assert_eq!(store.get_agent(&a.id).unwrap(), Some(a));
    drop(store);
    assert!(Store::open(path).is_ok(), "third open");
}

// ---- agents ----

#[test]
fn insert_get_and_unknown_agent() {
    let (_dir, store) = open();
    let a = agent(1, "billing-bot", "alice@example.com", &[("env", "prod")]);
    store.insert_agent(&a).unwrap();
    assert_eq!(store.get_agent(&a.id).unwrap(), Some(a));
    assert_eq!(store.get_agent(&agent_id(2)).unwrap(), None);
}

#[test]
fn agent_names_are_unique() {
    let (_dir, store) = open();
    store
        .insert_agent(&agent(1, "twin", "alice@example.com", &[]))
        .unwrap();
    let again = agent(2, "twin", "bob@example.com", &[]);
    assert_conflict(store.insert_agent(&again));
    assert_eq!(store.get_agent(&again.id).unwrap(), None);
}

#[test]
fn list_filters_by_owner_status_and_label() {
    let (_dir, store) = open();
    store
        .insert_agent(&agent(
            1,
            "a1",
            "alice@example.com",
            &[("team", "billing"), ("env", "prod")],
        ))
        .unwrap();
    store
        .insert_agent(&agent(2, "a2", "alice@example.com", &[("team", "search")]))
        .unwrap();
    let mut b1 = agent(3, "b1", "bob@example.com", &[("team", "billing")]);
    b1.status = AgentStatus::Suspended;
    store.insert_agent(&b1).unwrap();
    store
        .insert_agent(&agent(4, "b2", "bob@example.com", &[("team.name/x", "v")]))
        .unwrap();

    let list = |f: AgentFilter| names(&store.list_agents(&f, None, 100).unwrap()).join(",");
    assert_eq!(list(AgentFilter::default()), "a1,a2,b1,b2");
    assert_eq!(
        list(AgentFilter {
            owner: Some("alice@example.com".into()),
            ..Default::default()
        }),
        "a1,a2"
    );
    assert_eq!(
        list(AgentFilter {
            owner: Some("nobody".into()),
            ..Default::default()
        }),
        ""
    );
    assert_eq!(
        list(AgentFilter {
            status: Some(AgentStatus::Suspended),
            ..Default::default()
        }),
        "b1"
    );
    assert_eq!(
        list(AgentFilter {
            status: Some(AgentStatus::Decommissioned),
            ..Default::default()
        }),
        ""
    );
    let label = |k: &str, v: &str| Some((k.to_owned(), v.to_owned()));
    assert_eq!(
        list(AgentFilter {
            label: label("team", "billing"),
            ..Default::default()
        }),
        "a1,b1"
    );
    assert_eq!(
        list(AgentFilter {
            label: label("team.name/x", "v"),
            ..Default::default()
        }),
        "b2"
    );
    assert_eq!(
        list(AgentFilter {
            label: label("env", "dev"),
            ..Default::default()
        }),
        ""
    );
    assert_eq!(
        list(AgentFilter {
            owner: Some("bob@example.com".into()),
            status: Some(AgentStatus::Active),
            label: label("team", "billing"),
        }),
        "",
        "filters combine with AND"
    );
    assert_eq!(
        list(AgentFilter {
            owner: Some("bob@example.com".into()),
            label: label("team", "billing"),
            ..Default::default()
        }),
        "b1"
    );
}

#[test]
fn list_pages_with_a_cursor() {
    let (_dir, store) = open();
    let all: Vec<Agent> = (0..7)
        .map(|i| agent(i, &format!("agent-{i}"), "alice@example.com", &[]))
        .collect();
    // Insert out of order: pages follow id (creation) order, not insertion order.
    for a in all.iter().rev() {
        store.insert_agent(a).unwrap();
    }
    let f = AgentFilter::default();
    let mut seen = Vec::new();
    let mut cursor: Option<AgentId> = None;
    let mut pages = 0;
    loop {
        let page = store.list_agents(&f, cursor.as_ref(), 3).unwrap();
        assert!(page.len() <= 3);
        pages += 1;
        let Some(last) = page.last() else { break };
        cursor = Some(last.id.clone());
        seen.extend(page.iter().map(|a| a.name.as_str().to_owned()));
    }
    assert_eq!(pages, 4, "3 + 3 + 1, then an empty page");
    let want: Vec<String> = all.iter().map(|a| a.name.as_str().to_owned()).collect();
    assert_eq!(seen, want);
    assert!(
        store
            .list_agents(&f, Some(&all[6].id), 3)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn for_each_agent_streams_every_agent_in_id_order() {
    let (_dir, store) = open();
    let all: Vec<Agent> = (0..5)
        .map(|i| {
            agent(
                i,
                &format!("agent-{i}"),
                "alice@example.com",
                &[("team", "x")],
            )
        })
        .collect();
    for a in all.iter().rev() {
        store.insert_agent(a).unwrap();
    }
    let mut seen = Vec::new();
    store.for_each_agent(|a| seen.push(a)).unwrap();
    assert_eq!(seen, all, "every field, in id order");
}

#[test]
fn modify_agent_changes_fields_and_refuses_taken_names() {
    let (_dir, store) = open();
    let a = agent(1, "one", "alice@example.com", &[]);
    let b = agent(2, "two", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    store.insert_agent(&b).unwrap();
    let out = store
        .modify_agent(&a.id, at(10), |x| -> Result<(), StoreError> {
            x.owner = Owner::try_from("carol@example.com".to_owned()).unwrap();
            Ok(())
        })
        .unwrap();
    assert_eq!(out.updated_at, at(10));
    assert_eq!(store.get_agent(&a.id).unwrap(), Some(out.clone()));
    let r = store.modify_agent(&a.id, at(20), |x| -> Result<(), StoreError> {
        x.name = b.name.clone();
        Ok(())
    });
    assert_conflict(r);
    assert_eq!(store.get_agent(&a.id).unwrap(), Some(out));
    let r = store.modify_agent(&agent_id(3), at(20), |_| -> Result<(), StoreError> {
        Ok(())
    });
    assert!(matches!(r, Err(StoreError::NotFound("agent"))), "{r:?}");
}

#[test]
fn decommission_revokes_every_credential_in_the_same_transaction() {
    let (_dir, store) = open();
    let a = agent(1, "retiree", "alice@example.com", &[]);
    let other = agent(2, "bystander", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    store.insert_agent(&other).unwrap();
    let c1 = secret_credential(10, &a.id);
    let c2 = key_credential(11, &a.id);
    let mut c3 = secret_credential(12, &a.id);
    c3.revoked_at = Some(at(5));
    let c4 = secret_credential(13, &other.id);
    store
        .insert_credential(&c1, Some("$argon2id$fake"))
        .unwrap();
    store.insert_credential(&c2, None).unwrap();
    store
        .insert_credential(&c3, Some("$argon2id$fake"))
        .unwrap();
    store
        .insert_credential(&c4, Some("$argon2id$fake"))
        .unwrap();

    let out = store
        .modify_agent(&a.id, at(100), |x| -> Result<(), StoreError> {
            x.status = AgentStatus::Decommissioned;
            x.status_reason = Some("retired".into());
            Ok(())
        })
        .unwrap();
    assert_eq!(out.status, AgentStatus::Decommissioned);
    assert_eq!(credential(&store, &a.id, &c1.id).revoked_at, Some(at(100)));
    assert_eq!(credential(&store, &a.id, &c2.id).revoked_at, Some(at(100)));
    assert_eq!(
        credential(&store, &a.id, &c3.id).revoked_at,
        Some(at(5)),
        "an earlier revocation stands"
    );
    assert_eq!(
        credential(&store, &other.id, &c4.id).revoked_at,
        None,
        "other agents are untouched"
    );
    assert!(
        store
            .credentials(&a.id)
            .unwrap()
            .iter()
            .all(|c| !c.credential.usable_at(at(100)))
    );
}

#[test]
fn a_refusing_change_writes_nothing() {
    let (_dir, store) = open();
    let a = agent(1, "steady", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    let c = secret_credential(10, &a.id);
    store.insert_credential(&c, Some("$argon2id$fake")).unwrap();

    let r = store.modify_agent(&a.id, at(100), |x| {
        // Change everything first, then refuse: none of it may reach the database.
        x.status = AgentStatus::Decommissioned;
        x.owner = Owner::try_from("mallory@example.com".to_owned()).unwrap();
        Err(StoreError::Conflict("refused".into()))
    });
    assert!(
        matches!(&r, Err(StoreError::Conflict(m)) if m == "refused"),
        "{r:?}"
    );
    assert_eq!(store.get_agent(&a.id).unwrap(), Some(a.clone()));
    assert_eq!(credential(&store, &a.id, &c.id).revoked_at, None);
    // The connection is still usable after the rollback.
    store
        .insert_agent(&agent(2, "next", "alice@example.com", &[]))
        .unwrap();
}

// ---- credentials ----

#[test]
fn credentials_round_trip_oldest_first() {
    let (_dir, store) = open();
    let a = agent(1, "keyed", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    let k = key_credential(20, &a.id);
    let s = secret_credential(10, &a.id);
    store.insert_credential(&k, None).unwrap();
    store.insert_credential(&s, Some("$argon2id$hash")).unwrap();
    let got = store.credentials(&a.id).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].credential, s);
    assert_eq!(got[0].secret_hash.as_deref(), Some("$argon2id$hash"));
    assert_eq!(got[1].credential, k);
    assert_eq!(got[1].secret_hash, None);
    assert!(store.credentials(&agent_id(99)).unwrap().is_empty());
}

#[test]
fn every_credential_change_moves_the_generation_and_reads_do_not() {
    let (_dir, store) = open();
    let a = agent(1, "counted", "alice@example.com", &[]);
    let b = agent(2, "bystander", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    store.insert_agent(&b).unwrap();
    let mut last = store.credentials_generation();
    let mut moved = |what: &str, store: &Store| {
        let now = store.credentials_generation();
        assert_ne!(now, last, "{what} must move the credentials generation");
        last = now;
    };
    let c = secret_credential(10, &a.id);
    store.insert_credential(&c, Some("$argon2id$c")).unwrap();
    moved("insert", &store);
    let n = secret_credential(11, &a.id);
    store
        .rotate_credential(&c.id, &n, Some("$argon2id$n"), at(60), at(0))
        .unwrap();
    moved("rotate", &store);
    store.revoke_credential(&a.id, &n.id, at(1)).unwrap();
    moved("revoke", &store);
    store
        .insert_credential(&secret_credential(12, &b.id), Some("$argon2id$b"))
        .unwrap();
    moved("insert for another agent", &store);
    store
        .modify_agent(&b.id, at(2), |x| -> Result<(), StoreError> {
            x.status = AgentStatus::Decommissioned;
            Ok(())
        })
        .unwrap();
    moved("decommission", &store);

    let before = store.credentials_generation();
    store.credentials(&a.id).unwrap();
    store.get_agent(&a.id).unwrap();
    store
        .modify_agent(&a.id, at(3), |x| -> Result<(), StoreError> {
            x.status = AgentStatus::Suspended;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        store.credentials_generation(),
        before,
        "reads and changes that leave credentials alone keep the generation"
    );
}

#[test]
fn rotation_limits_the_old_credential_and_links_the_new() {
    let (_dir, store) = open();
    let a = agent(1, "rotor", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();

    // No earlier expiry: the old one works until `until`.
    let old = secret_credential(10, &a.id);
    store
        .insert_credential(&old, Some("$argon2id$old"))
        .unwrap();
    let new = secret_credential(11, &a.id);
    store
        .rotate_credential(&old.id, &new, Some("$argon2id$new"), at(3600), at(0))
        .unwrap();
    let o = credential(&store, &a.id, &old.id);
    assert_eq!(o.expires_at, Some(at(3600)));
    assert_eq!(o.replaced_by, Some(new.id.clone()));
    assert!(o.usable_at(at(3599)) && !o.usable_at(at(3600)));
    assert_eq!(credential(&store, &a.id, &new.id), new);

    // An earlier expiry is never extended.
    let mut short = secret_credential(20, &a.id);
    short.expires_at = Some(at(60));
    store
        .insert_credential(&short, Some("$argon2id$short"))
        .unwrap();
    let newer = secret_credential(21, &a.id);
    store
        .rotate_credential(&short.id, &newer, Some("$argon2id$newer"), at(3600), at(0))
        .unwrap();
    assert_eq!(
        credential(&store, &a.id, &short.id).expires_at,
        Some(at(60))
    );

    // A later expiry is shortened.
    let mut long = key_credential(30, &a.id);
    long.expires_at = Some(at(86_400));
    store.insert_credential(&long, None).unwrap();
    let next_key = key_credential(31, &a.id);
    store
        .rotate_credential(&long.id, &next_key, None, at(600), at(0))
        .unwrap();
    assert_eq!(
        credential(&store, &a.id, &long.id).expires_at,
        Some(at(600))
    );
}

#[test]
fn rotation_refuses_unusable_replaced_and_mismatched_credentials() {
    let (_dir, store) = open();
    let a = agent(1, "strict", "alice@example.com", &[]);
    let b = agent(2, "stranger", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    store.insert_agent(&b).unwrap();

    let mut refused = Vec::new();
    let mut try_rotate = |old: &CredentialId, new: Credential, hash: Option<&str>, until, now| {
        let r = store.rotate_credential(old, &new, hash, until, now);
        refused.push(new.id);
        r
    };

    let revoked = secret_credential(10, &a.id);
    store.insert_credential(&revoked, Some("h")).unwrap();
    store.revoke_credential(&a.id, &revoked.id, at(1)).unwrap();
    assert_conflict(try_rotate(
        &revoked.id,
        secret_credential(11, &a.id),
        Some("h"),
        at(60),
        at(2),
    ));

    let replaced = secret_credential(20, &a.id);
    store.insert_credential(&replaced, Some("h")).unwrap();
    let successor = secret_credential(21, &a.id);
    store
        .rotate_credential(&replaced.id, &successor, Some("h"), at(600), at(0))
        .unwrap();
    // Still usable during its overlap, but already replaced: rotating it again would fork.
    assert_conflict(try_rotate(
        &replaced.id,
        secret_credential(22, &a.id),
        Some("h"),
        at(600),
        at(1),
    ));

    let mut expired = secret_credential(30, &a.id);
    expired.expires_at = Some(at(5));
    store.insert_credential(&expired, Some("h")).unwrap();
    assert_conflict(try_rotate(
        &expired.id,
        secret_credential(31, &a.id),
        Some("h"),
        at(60),
        at(5),
    ));

    let secret = secret_credential(40, &a.id);
    store.insert_credential(&secret, Some("h")).unwrap();
    assert_conflict(try_rotate(
        &secret.id,
        key_credential(41, &a.id),
        None,
        at(60),
        at(0),
    ));

    // Another agent's credential is not found through this agent.
    let r = try_rotate(
        &secret.id,
        secret_credential(50, &b.id),
        Some("h"),
        at(60),
        at(0),
    );
    assert!(
        matches!(r, Err(StoreError::NotFound("credential"))),
        "{r:?}"
    );

    // No refused rotation inserted its new credential or touched the old one.
    let ids: Vec<CredentialId> = store
        .credentials(&a.id)
        .unwrap()
        .into_iter()
        .map(|c| c.credential.id)
        .collect();
    assert_eq!(
        ids,
        [
            revoked.id,
            replaced.id,
            successor.id,
            expired.id,
            secret.id.clone()
        ]
    );
    assert!(refused.iter().all(|r| !ids.contains(r)));
    assert_eq!(credential(&store, &a.id, &secret.id), secret);
    assert!(store.credentials(&b.id).unwrap().is_empty());
}

#[test]
fn revoke_credential_is_scoped_to_its_agent() {
    let (_dir, store) = open();
    let a = agent(1, "owner-a", "alice@example.com", &[]);
    let b = agent(2, "owner-b", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    store.insert_agent(&b).unwrap();
    let c = secret_credential(10, &a.id);
    store.insert_credential(&c, Some("h")).unwrap();
    let r = store.revoke_credential(&b.id, &c.id, at(1));
    assert!(
        matches!(r, Err(StoreError::NotFound("credential"))),
        "{r:?}"
    );
    assert_eq!(credential(&store, &a.id, &c.id).revoked_at, None);
    store.revoke_credential(&a.id, &c.id, at(1)).unwrap();
    store.revoke_credential(&a.id, &c.id, at(9)).unwrap();
    assert_eq!(
        credential(&store, &a.id, &c.id).revoked_at,
        Some(at(1)),
        "the first revocation time stands"
    );
}

// ---- replay and revocation ----

#[test]
fn assertion_jtis_refuse_replays_and_expire() {
    let (_dir, store) = open();
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

#[test]
fn revoked_tokens_are_remembered_until_they_expire() {
    let (_dir, store) = open();
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

// ---- admin tokens ----

#[test]
fn admin_tokens_are_found_by_digest_until_revoked() {
    let (_dir, store) = open();
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

#[test]
fn set_bootstrap_digest_replaces_the_previous_bootstrap() {
    let (_dir, store) = open();
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

// ---- signing keys ----

#[test]
fn adding_a_signing_key_retires_the_previous_one() {
    let (_dir, store) = open();
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

#[test]
fn an_agents_recent_audit_events_and_a_checkpoint_by_size() {
    let (_dir, store) = open();
    let rows: Vec<mandate_store::AuditRow> = (0..10u64)
        .map(|seq| mandate_store::AuditRow {
            seq,
            time: at(0),
            kind: "decision".into(),
            // Events 0, 3, 6, 9 are agent a's; the others b's, or nobody's.
            agent: match seq % 3 {
                0 => Some("a".into()),
                1 => Some("b".into()),
                _ => None,
            },
            user: None,
            decision: None,
            body: format!("{{\"seq\":{seq}}}"),
            leaf: [u8::try_from(seq).unwrap(); 32],
        })
        .collect();
    store.append_audit(&rows).unwrap();
    let seqs = |v: Vec<(u64, String)>| v.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
    assert_eq!(
        seqs(store.recent_audit_of_agent("a", 10, 100).unwrap()),
        [0, 3, 6, 9]
    );
    assert_eq!(
        seqs(store.recent_audit_of_agent("a", 9, 2).unwrap()),
        [3, 6]
    );
    assert_eq!(seqs(store.recent_audit_of_agent("a", 7, 1).unwrap()), [6]);
    assert!(store.recent_audit_of_agent("c", 10, 5).unwrap().is_empty());
    let (_, body) = store.recent_audit_of_agent("b", 10, 1).unwrap().remove(0);
    assert_eq!(body, "{\"seq\":7}");

    let cp = mandate_store::CheckpointRow {
        size: 4,
        time: at(1),
        root: [4; 32],
        text: "signed".into(),
    };
    store.insert_checkpoint(&cp).unwrap();
    assert_eq!(store.checkpoint_of_size(4).unwrap(), Some(cp));
    assert_eq!(store.checkpoint_of_size(5).unwrap(), None);
}
