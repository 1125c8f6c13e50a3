//! The use cases of the agent registry, the administration, the policy sets and the
//! anomalies (mandate-service agents.rs, admin.rs, policies.rs, anomalies.rs), over a
//! real node on a real SQLite store, with no HTTP: each domain rule refuses what it
//! must with its own error, changes nothing when it refuses, and records the act's
//! audit event when it does not.

use std::sync::Arc;

use mandate_core::admin::Role;
use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
use mandate_core::clock::{Clock as _, ManualClock};
use mandate_core::credential::CredentialKind;
use mandate_core::id::{AdminTokenId, AgentId, AnomalyId};
use mandate_core::time::Timestamp;
use mandate_store::prelude::*;
use mandate_store::{AgentFilter, AnomalyRow, StoreError};
use serde_json::{Value, json};

use super::common::T0;
use mandate_service::Node;
use mandate_service::actor::Actor;
use mandate_service::admin::{self, AdminError};
use mandate_service::agents::{self, AgentChanges, AgentError, NewAgent, StatusChange};
use mandate_service::anomalies::{self, AgentBaseline, AnomalyError, Answer};
use mandate_service::policies::{self, PolicyError, PolicySource, Target};

struct Env {
    node: Arc<Node>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (node, clock) = super::common::node_in(dir.path(), |_| {});
    Env {
        node: Arc::new(node),
        clock,
        _dir: dir,
    }
}

fn admin() -> Actor {
    Actor::Admin(AdminTokenId::parse("adm_01JA0000000000000000000000").unwrap())
}

/// The audit events of `kind` recorded so far, as JSON.
fn events(node: &Node, kind: &str) -> Vec<Value> {
    let store = node.store();
    store
        .audit_bodies(0, store.audit_len().unwrap())
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str::<Value>(b).unwrap())
        .filter(|e| e["kind"] == kind)
        .collect()
}

fn new_agent(name: &str) -> NewAgent {
    NewAgent {
        name: AgentName::try_from(name.to_owned()).unwrap(),
        owner: Owner::try_from("alice@example.com".to_owned()).unwrap(),
        purpose: Purpose::try_from("use case tests".to_owned()).unwrap(),
        labels: Labels::default(),
        boundary: Boundary::default(),
    }
}

async fn registered(e: &Env, name: &str) -> Agent {
    agents::register(&e.node, &admin(), new_agent(name))
        .await
        .unwrap()
}

/// INVARIANT (lifecycle): a decommissioned agent is final — an update is refused with
/// `Decommissioned` and writes nothing, a resume is an invalid transition, and it gets
/// no credential; `revoke_tokens` is only for a suspension. Each act that happened is
/// recorded, by its actor, with its details.
#[tokio::test]
async fn a_decommissioned_agent_is_final() {
    let e = env();
    let a = registered(&e, "final").await;
    assert_eq!(a.status, AgentStatus::Active);
    let rec = events(&e.node, "agent.registered");
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0]["actor"], "adm_01JA0000000000000000000000");
    assert_eq!(rec[0]["agent"], a.id.as_str());
    assert_eq!(rec[0]["details"]["name"], "final");

    let resume_revoking = StatusChange {
        reason: None,
        revoke_tokens: true,
    };
    let refused = agents::change_status(
        &e.node,
        &admin(),
        a.id.clone(),
        AgentStatus::Active,
        resume_revoking,
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(AgentError::Invalid {
                field: "revoke_tokens",
                ..
            })
        ),
        "{refused:?}"
    );
    let long = StatusChange {
        reason: Some("x".repeat(agents::MAX_REASON_CHARS + 1)),
        revoke_tokens: false,
    };
    let refused = agents::change_status(
        &e.node,
        &admin(),
        a.id.clone(),
        AgentStatus::Suspended,
        long,
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(AgentError::Invalid {
                field: "reason",
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(
        events(&e.node, "agent.suspended").is_empty(),
        "a refusal records nothing"
    );

    let retire = StatusChange {
        reason: Some("retired".into()),
        revoke_tokens: false,
    };
    let done = agents::change_status(
        &e.node,
        &admin(),
        a.id.clone(),
        AgentStatus::Decommissioned,
        retire,
    )
    .await
    .unwrap();
    assert_eq!(done.status, AgentStatus::Decommissioned);
    let rec = events(&e.node, "agent.decommissioned");
    assert_eq!(
        rec[0]["details"],
        json!({"reason": "retired", "revoke_tokens": false})
    );

    e.clock.advance_secs(10);
    let rename = AgentChanges {
        name: Some(AgentName::try_from("renamed".to_owned()).unwrap()),
        ..AgentChanges::default()
    };
    let refused = agents::update(&e.node, &admin(), a.id.clone(), rename).await;
    assert!(
        matches!(&refused, Err(AgentError::Decommissioned(id)) if *id == a.id),
        "{refused:?}"
    );
    let stored = agents::show(&e.node, a.id.clone()).await.unwrap();
    assert_eq!(stored, done, "the final record was written");
    assert!(events(&e.node, "agent.updated").is_empty());

    let refused = agents::change_status(
        &e.node,
        &admin(),
        a.id.clone(),
        AgentStatus::Active,
        StatusChange::default(),
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(AgentError::Act(
                mandate_service::acts::ActError::InvalidTransition { .. }
            ))
        ),
        "{refused:?}"
    );

    let secret = agents::NewCredential {
        kind: CredentialKind::ClientSecret,
        jwk: None,
        names: vec![],
        expires_at: None,
    };
    let refused = agents::add_credential(&e.node, &admin(), a.id.clone(), secret).await;
    assert!(
        matches!(refused, Err(AgentError::DecommissionedNoCredentials(_))),
        "{refused:?}"
    );

    let unknown = AgentId::parse("agt_01JA0000000000000000000009").unwrap();
    let refused = agents::update(&e.node, &admin(), unknown.clone(), AgentChanges::default()).await;
    assert!(
        matches!(&refused, Err(AgentError::Unknown(id)) if *id == unknown),
        "{refused:?}"
    );
    assert!(matches!(
        agents::show(&e.node, unknown).await,
        Err(AgentError::Unknown(_))
    ));
}

/// Credentials: a secret is returned once and only its hash stored; a rotation keeps the
/// old credential working for the overlap (never longer than it would have), refuses an
/// overlap over the maximum and a credential no longer active; a public key needs a JWK
/// and a secret takes none; an expiry must be in the future.
#[tokio::test]
async fn credentials_rotate_within_the_overlap_and_only_while_active() {
    let e = env();
    let a = registered(&e, "keyed").await;
    let secret = || agents::NewCredential {
        kind: CredentialKind::ClientSecret,
        jwk: None,
        names: vec![],
        expires_at: None,
    };
    let issued = agents::add_credential(&e.node, &admin(), a.id.clone(), secret())
        .await
        .unwrap();
    let clear = issued.client_secret.as_ref().unwrap().expose().to_owned();
    assert_eq!(issued.view.state, "active");
    let stored = e.node.store().credentials(&a.id).unwrap();
    assert_eq!(stored.len(), 1);
    let hash = stored[0].secret_hash.as_deref().unwrap();
    assert!(
        !hash.contains(&clear),
        "the secret is stored only as a hash"
    );
    assert_eq!(
        events(&e.node, "credential.added")[0]["details"]["type"],
        "client_secret"
    );

    let cid = issued.view.credential.id.clone();
    let too_long = agents::Rotation {
        overlap_secs: Some(agents::MAX_OVERLAP_SECS + 1),
        names: vec![],
        jwk: None,
    };
    let refused =
        agents::rotate_credential(&e.node, &admin(), a.id.clone(), cid.clone(), too_long).await;
    assert!(
        matches!(
            refused,
            Err(AgentError::Invalid {
                field: "overlap_secs",
                ..
            })
        ),
        "{refused:?}"
    );

    let overlap = agents::Rotation {
        overlap_secs: Some(600),
        names: vec![],
        jwk: None,
    };
    let rotated = agents::rotate_credential(&e.node, &admin(), a.id.clone(), cid.clone(), overlap)
        .await
        .unwrap();
    let now = e.clock.now();
    assert_eq!(rotated.previous, cid);
    assert_eq!(rotated.previous_expires_at, now.plus_secs(600));
    assert!(rotated.issued.client_secret.is_some());
    let rec = events(&e.node, "credential.rotated");
    assert_eq!(
        rec[0]["details"]["previous"],
        json!({"id": cid, "expires_at": now.plus_secs(600)})
    );

    let again = agents::rotate_credential(
        &e.node,
        &admin(),
        a.id.clone(),
        cid.clone(),
        agents::Rotation::default(),
    )
    .await;
    assert!(
        matches!(&again, Err(AgentError::CredentialNotActive(c)) if *c == cid),
        "a replaced credential is rotated once: {again:?}"
    );

    let listed = agents::list_credentials(&e.node, a.id.clone())
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);

    let no_jwk = agents::NewCredential {
        kind: CredentialKind::PublicKey,
        jwk: None,
        names: vec![],
        expires_at: None,
    };
    let refused = agents::add_credential(&e.node, &admin(), a.id.clone(), no_jwk).await;
    assert!(
        matches!(refused, Err(AgentError::Missing("jwk"))),
        "{refused:?}"
    );
    let secret_with_jwk = agents::NewCredential {
        jwk: Some(json!({"kty": "OKP"})),
        ..secret()
    };
    let refused = agents::add_credential(&e.node, &admin(), a.id.clone(), secret_with_jwk).await;
    assert!(
        matches!(refused, Err(AgentError::Invalid { field: "jwk", .. })),
        "{refused:?}"
    );
    let past = agents::NewCredential {
        expires_at: Some(Timestamp::from_secs(T0 - 1)),
        ..secret()
    };
    let refused = agents::add_credential(&e.node, &admin(), a.id.clone(), past).await;
    assert!(
        matches!(
            refused,
            Err(AgentError::Invalid {
                field: "expires_at",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        agents::list_credentials(&e.node, a.id.clone())
            .await
            .unwrap()
            .len(),
        2,
        "a refused credential is not stored"
    );

    agents::revoke_credential(
        &e.node,
        &admin(),
        a.id.clone(),
        rotated.issued.view.credential.id,
    )
    .await
    .unwrap();
    assert_eq!(
        e.node.store().tokens_not_before(&a.id).unwrap(),
        Some(e.clock.now()),
        "a revocation kills every token issued so far"
    );
}

/// A full page of agents carries the cursor of its last item; a short one none.
#[tokio::test]
async fn a_full_page_of_agents_has_a_next_cursor() {
    let e = env();
    let first = registered(&e, "one").await;
    // Ids sort by creation time at millisecond resolution; within one, at random.
    e.clock.advance_secs(1);
    let second = registered(&e, "two").await;
    let page = agents::list(&e.node, AgentFilter::default(), None, 1)
        .await
        .unwrap();
    assert_eq!(page.items, vec![first.clone()]);
    assert_eq!(page.next_cursor, Some(first.id.clone()));
    let page = agents::list(&e.node, AgentFilter::default(), Some(first.id), 5)
        .await
        .unwrap();
    assert_eq!(page.items, vec![second]);
    assert_eq!(page.next_cursor, None);
}

/// An admin token's name is 1–64 printable characters (else nothing is stored); the
/// token is returned once and only its record is listed.
#[tokio::test]
async fn admin_token_names_are_checked_and_tokens_never_listed() {
    let e = env();
    let before = admin::list_tokens(&e.node).await.unwrap().len();
    for name in [
        "",
        "tab\there",
        &"n".repeat(admin::MAX_TOKEN_NAME_CHARS + 1),
    ] {
        let refused = admin::create_token(&e.node, &admin(), name.to_owned(), Role::Auditor).await;
        assert!(
            matches!(refused, Err(AdminError::Invalid { field: "name", .. })),
            "{name:?}: {:?}",
            refused.map(|(record, _)| record)
        );
    }
    assert_eq!(admin::list_tokens(&e.node).await.unwrap().len(), before);

    let (record, token) = admin::create_token(&e.node, &admin(), "ci".into(), Role::Auditor)
        .await
        .unwrap();
    let listed = admin::list_tokens(&e.node).await.unwrap();
    assert!(listed.contains(&record));
    let shown = serde_json::to_string(&listed).unwrap();
    assert!(!shown.contains(token.expose()), "a token is never listed");
    assert_eq!(
        events(&e.node, "admin_token.created")[0]["details"],
        json!({"admin_token": record.id, "name": "ci", "role": "auditor"})
    );

    admin::revoke_token(&e.node, &admin(), record.id.clone())
        .await
        .unwrap();
    let unknown = AdminTokenId::parse("adm_01JA0000000000000000000009").unwrap();
    let refused = admin::revoke_token(&e.node, &admin(), unknown).await;
    assert!(
        matches!(refused, Err(AdminError::Store(StoreError::NotFound(_)))),
        "{refused:?}"
    );
}

/// A key rotation: the new key is current at once (in the snapshot's ring), and the old
/// one stays published for the longest token lifetime plus a minute.
#[tokio::test]
async fn a_rotated_key_stays_published_for_the_longest_token_lifetime() {
    let e = env();
    let now = e.clock.now();
    let r = admin::rotate_keys(&e.node, &admin()).await.unwrap();
    assert_ne!(r.kid, r.retired_kid);
    assert_eq!(r.retired_published_until, now.plus_secs(3600 + 60));
    let snapshot = e.node.snapshot().unwrap();
    assert_eq!(snapshot.ring.current().kid(), r.kid);
    let keys = admin::list_keys(&e.node).await.unwrap();
    let old = keys.iter().find(|k| k.kid == r.retired_kid).unwrap();
    assert_eq!(old.publish_until, Some(r.retired_published_until));
    assert!(
        keys.iter()
            .any(|k| k.kid == r.kid && k.retired_at.is_none())
    );
    assert_eq!(events(&e.node, "keys.rotated")[0]["details"]["kid"], r.kid);
}

const PERMIT_ALL: &str = "@id(\"all\") permit (principal, action, resource);";

fn source(policies: &str) -> PolicySource {
    PolicySource {
        policies: policies.into(),
        ..PolicySource::default()
    }
}

/// A policy set that does not compile is refused with every problem located, and no
/// version is stored; an activation governs the next decision; a rollback needs an
/// earlier version; an unknown version is `UnknownVersion`.
#[tokio::test]
async fn policy_versions_compile_before_they_are_stored_and_roll_back() {
    let e = env();
    let refused = policies::add(&e.node, &admin(), source("permit (principal, action")).await;
    match refused {
        Err(PolicyError::Rejected(errs)) => {
            assert!(!errs.is_empty());
            assert_eq!(errs[0].source, "policies");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(
        policies::list(&e.node).await.unwrap().versions.is_empty(),
        "nothing stored"
    );
    let big = PolicySource {
        note: "n".repeat(policies::MAX_NOTE_CHARS + 1),
        ..source(PERMIT_ALL)
    };
    assert!(matches!(
        policies::validate(big).await,
        Err(PolicyError::Invalid { field: "note", .. })
    ));
    assert_eq!(
        policies::validate(source(PERMIT_ALL)).await.unwrap(),
        vec!["all".to_owned()]
    );

    let refused = policies::activate(&e.node, &admin(), Target::Previous).await;
    assert!(
        matches!(refused, Err(PolicyError::NothingToRollBack)),
        "{refused:?}"
    );

    let one = policies::add(&e.node, &admin(), source(PERMIT_ALL))
        .await
        .unwrap();
    let two = policies::add(&e.node, &admin(), source(PERMIT_ALL))
        .await
        .unwrap();
    assert_eq!(one.policy_ids, vec!["all".to_owned()]);
    assert_eq!(
        events(&e.node, "policy.added")[0]["details"],
        json!({"version": one.version, "policy_ids": ["all"]})
    );
    let a = policies::activate(&e.node, &admin(), Target::Version(one.version))
        .await
        .unwrap();
    assert_eq!((a.version, a.previous), (one.version, None));
    assert_eq!(e.node.snapshot().unwrap().policy_version, Some(one.version));
    policies::activate(&e.node, &admin(), Target::Version(two.version))
        .await
        .unwrap();
    let back = policies::activate(&e.node, &admin(), Target::Previous)
        .await
        .unwrap();
    assert_eq!(
        (back.version, back.previous),
        (one.version, Some(two.version))
    );
    assert_eq!(e.node.snapshot().unwrap().policy_version, Some(one.version));
    assert_eq!(
        events(&e.node, "policy.rolled_back")[0]["details"],
        json!({"version": one.version, "previous": two.version})
    );

    let refused = policies::activate(&e.node, &admin(), Target::Version(999)).await;
    assert!(
        matches!(refused, Err(PolicyError::UnknownVersion(999))),
        "{refused:?}"
    );
    assert!(matches!(
        policies::show(&e.node, 999).await,
        Err(PolicyError::UnknownVersion(999))
    ));
    let (row, active) = policies::show(&e.node, two.version).await.unwrap();
    assert_eq!((row.version, active), (two.version, Some(one.version)));
}

fn anomaly(agent: &AgentId) -> AnomalyRow {
    AnomalyRow {
        id: AnomalyId::parse("anm_01JA0000000000000000000001").unwrap(),
        agent: agent.clone(),
        at: Timestamp::from_secs(T0),
        kind: "new_action".into(),
        key: "action:Action::\"read\"".into(),
        score: 80,
        severity: "high".into(),
        response: "record".into(),
        explanation: "a new action".into(),
        details: json!({"observed": 1.0}),
        status: "open".into(),
        resolved_at: None,
        resolved_by: None,
        comment: None,
    }
}

/// An anomaly is answered once: a second answer is `NotOpen` and changes nothing; the
/// answer is recorded with the comment. A baseline is only of a known agent.
#[tokio::test]
async fn an_anomaly_is_answered_once() {
    let e = env();
    let a = registered(&e, "watched").await;
    let row = anomaly(&a.id);
    e.node
        .store()
        .insert_anomalies(std::slice::from_ref(&row))
        .unwrap();

    let done = anomalies::resolve(
        &e.node,
        &admin(),
        row.id.clone(),
        Answer::Dismiss,
        Some("expected".into()),
    )
    .await
    .unwrap();
    assert_eq!(done.status, "dismissed");
    assert_eq!(
        done.resolved_by.as_deref(),
        Some("adm_01JA0000000000000000000000")
    );
    let rec = events(&e.node, "anomaly.dismissed");
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0]["agent"], a.id.as_str());
    assert_eq!(rec[0]["details"]["comment"], "expected");

    let again =
        anomalies::resolve(&e.node, &admin(), row.id.clone(), Answer::Acknowledge, None).await;
    assert!(matches!(again, Err(AnomalyError::NotOpen(_))), "{again:?}");
    let stored = anomalies::show(&e.node, row.id.clone()).await.unwrap();
    assert_eq!(stored, done, "a second answer changes nothing");
    assert!(events(&e.node, "anomaly.acknowledged").is_empty());

    let unknown = AnomalyId::parse("anm_01JA0000000000000000000009").unwrap();
    assert!(matches!(
        anomalies::show(&e.node, unknown).await,
        Err(AnomalyError::Unknown(_))
    ));
    let page = anomalies::list(&e.node, Default::default(), None, 1)
        .await
        .unwrap();
    assert_eq!(page.next_cursor, Some(row.id));

    match anomalies::baseline(&e.node, a.id.clone()).await.unwrap() {
        AgentBaseline::Enabled {
            suspended_by_detector,
            summary,
        } => {
            assert!(!suspended_by_detector);
            assert!(summary.is_object());
        }
        AgentBaseline::Disabled => panic!("detection is on by default"),
    }
    let stranger = AgentId::parse("agt_01JA0000000000000000000009").unwrap();
    assert!(matches!(
        anomalies::baseline(&e.node, stranger).await,
        Err(AnomalyError::UnknownAgent(_))
    ));
}
