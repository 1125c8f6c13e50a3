//! Agents and their credentials: identity and names, listing, read-modify-write, the
//! decommission rule, rotation and revocation, and the credentials generation.

#![expect(clippy::unwrap_used, reason = "checks are tests: a failure panics")]
#![expect(
    clippy::indexing_slicing,
    reason = "checks are tests: lengths asserted first"
)]

use mandate_core::agent::{Agent, AgentStatus, Owner};
use mandate_core::credential::Credential;
use mandate_core::id::{AgentId, CredentialId};

use super::{
    agent, agent_id, assert_conflict, at, credential, key_credential, names, secret_credential,
};
use crate::AgentFilter;
use crate::prelude::*;

/// An inserted agent reads back equal; an unknown id reads as `None`.
pub fn insert_get_and_unknown_agent(store: &dyn Store) {
    let a = agent(1, "billing-bot", "alice@example.com", &[("env", "prod")]);
    store.insert_agent(&a).unwrap();
    assert_eq!(store.get_agent(&a.id).unwrap(), Some(a));
    assert_eq!(store.get_agent(&agent_id(2)).unwrap(), None);
}

/// A second agent with a taken name is a `Conflict` and is not stored.
pub fn agent_names_are_unique(store: &dyn Store) {
    store
        .insert_agent(&agent(1, "twin", "alice@example.com", &[]))
        .unwrap();
    let again = agent(2, "twin", "bob@example.com", &[]);
    assert_conflict(store.insert_agent(&again));
    assert_eq!(store.get_agent(&again.id).unwrap(), None);
}

/// `list_agents` filters by owner, status and label, combined with AND, in id order.
pub fn list_filters_by_owner_status_and_label(store: &dyn Store) {
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

/// `list_agents` pages in id (creation) order after a cursor, whatever the insertion order.
pub fn list_pages_with_a_cursor(store: &dyn Store) {
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

/// `for_each_agent` hands over every agent, every field, in id order.
pub fn for_each_agent_streams_every_agent_in_id_order(store: &dyn Store) {
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
    store.for_each_agent(&mut |a| seen.push(a)).unwrap();
    assert_eq!(seen, all, "every field, in id order");
}

/// `modify_agent` writes the change with `updated_at`; a taken name is a `Conflict`, an unknown id `NotFound("agent")`.
pub fn modify_agent_changes_fields_and_refuses_taken_names(store: &dyn Store) {
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

/// INVARIANT (decommission revokes): decommissioning revokes every unrevoked credential of that agent only, at `now`.
pub fn decommission_revokes_every_credential_in_the_same_transaction(store: &dyn Store) {
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
    assert_eq!(credential(store, &a.id, &c1.id).revoked_at, Some(at(100)));
    assert_eq!(credential(store, &a.id, &c2.id).revoked_at, Some(at(100)));
    assert_eq!(
        credential(store, &a.id, &c3.id).revoked_at,
        Some(at(5)),
        "an earlier revocation stands"
    );
    assert_eq!(
        credential(store, &other.id, &c4.id).revoked_at,
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

/// INVARIANT (decommission revokes): a decommissioned agent gets no new credential: the
/// insert is refused (`Conflict`) and nothing is written, checked in the insert's own
/// unit, so a decommission cannot fall between a caller's check and the insert.
// Seen failing: SQLite inserted it (adversarial review, "a credential for a
// decommissioned agent": the API checked the status in one unit and inserted in another).
pub fn a_decommissioned_agent_gets_no_new_credential(store: &dyn Store) {
    let a = agent(1, "retired", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    store
        .modify_agent(&a.id, at(100), |x| -> Result<(), StoreError> {
            x.status = AgentStatus::Decommissioned;
            Ok(())
        })
        .unwrap();
    let r = store.insert_credential(&secret_credential(10, &a.id), Some("$argon2id$late"));
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    assert!(store.credentials(&a.id).unwrap().is_empty());
    let r = store.insert_credential(&key_credential(11, &a.id), None);
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    assert!(store.credentials(&a.id).unwrap().is_empty());
}

/// An agent change that refuses writes nothing, and the store stays usable.
pub fn a_refusing_change_writes_nothing(store: &dyn Store) {
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
    assert_eq!(credential(store, &a.id, &c.id).revoked_at, None);
    // The connection is still usable after the rollback.
    store
        .insert_agent(&agent(2, "next", "alice@example.com", &[]))
        .unwrap();
}

/// Credentials read back equal, with their secret hash, in id order.
pub fn credentials_round_trip_oldest_first(store: &dyn Store) {
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

/// The credentials generation moves on every credential change (insert, rotate, revoke, decommission) and not on reads or other agent changes.
pub fn every_credential_change_moves_the_generation_and_reads_do_not(store: &dyn Store) {
    let a = agent(1, "counted", "alice@example.com", &[]);
    let b = agent(2, "bystander", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    store.insert_agent(&b).unwrap();
    let mut last = store.credentials_generation();
    let mut moved = |what: &str, store: &dyn Store| {
        let now = store.credentials_generation();
        assert_ne!(now, last, "{what} must move the credentials generation");
        last = now;
    };
    let c = secret_credential(10, &a.id);
    store.insert_credential(&c, Some("$argon2id$c")).unwrap();
    moved("insert", store);
    let n = secret_credential(11, &a.id);
    store
        .rotate_credential(&c.id, &n, Some("$argon2id$n"), at(60), at(0))
        .unwrap();
    moved("rotate", store);
    store.revoke_credential(&a.id, &n.id, at(1)).unwrap();
    moved("revoke", store);
    store
        .insert_credential(&secret_credential(12, &b.id), Some("$argon2id$b"))
        .unwrap();
    moved("insert for another agent", store);
    store
        .modify_agent(&b.id, at(2), |x| -> Result<(), StoreError> {
            x.status = AgentStatus::Decommissioned;
            Ok(())
        })
        .unwrap();
    moved("decommission", store);

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

/// Rotation links old to new and limits the old one to `old_until`, never extending an earlier expiry.
pub fn rotation_limits_the_old_credential_and_links_the_new(store: &dyn Store) {
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
    let o = credential(store, &a.id, &old.id);
    assert_eq!(o.expires_at, Some(at(3600)));
    assert_eq!(o.replaced_by, Some(new.id.clone()));
    assert!(o.usable_at(at(3599)) && !o.usable_at(at(3600)));
    assert_eq!(credential(store, &a.id, &new.id), new);

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
    assert_eq!(credential(store, &a.id, &short.id).expires_at, Some(at(60)));

    // A later expiry is shortened.
    let mut long = key_credential(30, &a.id);
    long.expires_at = Some(at(86_400));
    store.insert_credential(&long, None).unwrap();
    let next_key = key_credential(31, &a.id);
    store
        .rotate_credential(&long.id, &next_key, None, at(600), at(0))
        .unwrap();
    assert_eq!(credential(store, &a.id, &long.id).expires_at, Some(at(600)));
}

/// Rotation refuses a revoked, replaced, expired, other-kind or other agent's credential, writing nothing.
pub fn rotation_refuses_unusable_replaced_and_mismatched_credentials(store: &dyn Store) {
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
    assert_eq!(credential(store, &a.id, &secret.id), secret);
    assert!(store.credentials(&b.id).unwrap().is_empty());
}

/// Revoking goes through the owning agent only; the first revocation time stands.
pub fn revoke_credential_is_scoped_to_its_agent(store: &dyn Store) {
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
    assert_eq!(credential(store, &a.id, &c.id).revoked_at, None);
    store.revoke_credential(&a.id, &c.id, at(1)).unwrap();
    store.revoke_credential(&a.id, &c.id, at(9)).unwrap();
    assert_eq!(
        credential(store, &a.id, &c.id).revoked_at,
        Some(at(1)),
        "the first revocation time stands"
    );
}

/// `for_each_credential` streams every agent's credentials in id order, without their
/// secret hashes.
pub fn for_each_credential_streams_every_credential_in_id_order(store: &dyn Store) {
    let a = agent(1, "first", "alice@example.com", &[]);
    let b = agent(2, "second", "bob@example.com", &[]);
    store.insert_agent(&a).unwrap();
    store.insert_agent(&b).unwrap();
    let c3 = secret_credential(30, &b.id);
    let c1 = key_credential(10, &a.id);
    let c2 = secret_credential(20, &a.id);
    store.insert_credential(&c3, Some("$argon2id$c3")).unwrap();
    store.insert_credential(&c1, None).unwrap();
    store.insert_credential(&c2, Some("$argon2id$c2")).unwrap();
    let mut seen = Vec::new();
    store.for_each_credential(&mut |c| seen.push(c)).unwrap();
    assert_eq!(seen, [c1, c2, c3]);
}

/// `INVARIANT (activity only moves later)`: a subject's stored time is the latest ever
/// recorded, whatever order batches come in (two nodes' batches may cross); a batch
/// naming one subject twice keeps the later; writes publish [`crate::Topic::Activity`]
/// and a read unit refuses them.
pub fn activity_only_moves_later(store: &dyn Store) {
    assert!(store.activity().unwrap().is_empty());
    let before = store.topic_seq(crate::Topic::Activity);
    store
        .record_activity(&[("agt_b".into(), at(50)), ("crd_a".into(), at(10))])
        .unwrap();
    assert_ne!(store.topic_seq(crate::Topic::Activity), before);
    // An older batch (another node's, late) moves nothing back; a newer one moves on.
    store
        .record_activity(&[
            ("agt_b".into(), at(40)),
            ("crd_a".into(), at(20)),
            ("crd_a".into(), at(15)),
        ])
        .unwrap();
    store.record_activity(&[]).unwrap();
    let got: Vec<(String, i64)> = store
        .activity()
        .unwrap()
        .into_iter()
        .map(|(s, t)| (s, t.secs()))
        .collect();
    assert_eq!(
        got,
        [
            ("agt_b".to_owned(), at(50).secs()),
            ("crd_a".to_owned(), at(20).secs())
        ]
    );
    let mut refused = None;
    store
        .read_unit(&mut |r| {
            refused = Some(r.record_activity(&[("agt_c".into(), at(1))]));
            Ok(())
        })
        .unwrap();
    assert!(matches!(refused, Some(Err(StoreError::ReadOnly))));
}

/// A `tls_client_auth` credential (RFC 8705 §2.1) reads back with its subjectAltName,
/// by `credentials` and `for_each_credential` alike, and rotates to one with another
/// name; each kind of name survives the round trip.
pub fn a_tls_client_auth_credential_keeps_its_name(store: &dyn Store) {
    use mandate_core::credential::{CertName, CredentialKind};
    let a = agent(1, "pki-bot", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    let names = [
        CertName::Uri("spiffe://example.org/agent/pki-bot".into()),
        CertName::Dns("pki-bot.example.com".into()),
        CertName::Ip("2001:db8::7".parse().unwrap()),
    ];
    let creds: Vec<Credential> = names
        .iter()
        .zip(10..)
        .map(|(n, ms)| Credential {
            kind: CredentialKind::TlsClientAuth,
            cert_name: Some(n.clone()),
            ..secret_credential(ms, &a.id)
        })
        .collect();
    store.insert_credential(&creds[0], None).unwrap();
    store.insert_credential(&creds[1], None).unwrap();
    let read: Vec<Credential> = store
        .credentials(&a.id)
        .unwrap()
        .into_iter()
        .map(|c| c.credential)
        .collect();
    assert_eq!(read, creds[..2]);
    store
        .rotate_credential(&creds[0].id, &creds[2], None, at(50), at(10))
        .unwrap();
    let mut streamed = Vec::new();
    store
        .for_each_credential(&mut |c| streamed.push(c))
        .unwrap();
    assert_eq!(streamed.len(), 3);
    assert_eq!(streamed[2], creds[2]);
    assert_eq!(streamed[0].replaced_by.as_ref(), Some(&creds[2].id));
    assert_eq!(streamed[0].cert_name, creds[0].cert_name);
}
