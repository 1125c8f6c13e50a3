//! The node's snapshot refresh and its one write path, over a real SQLite store: a write
//! through `Node::store()` is in the snapshot when it returns, a failed refresh holds
//! decisions, and a refresh reuses unchanged agents but never a stale one.

use std::sync::Arc;

use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
use mandate_core::id::AgentId;
use mandate_core::time::Timestamp;
use mandate_store::StoreError;
use mandate_store::prelude::*;

use super::common::T0;
use mandate_service::Node;

pub(super) fn agent(i: usize) -> Agent {
    let labels = std::collections::BTreeMap::from([("team".to_owned(), format!("team-{i}"))]);
    Agent {
        id: AgentId::parse(&format!("agt_01JA{i:022}")).unwrap(),
        name: AgentName::try_from(format!("agent-{i}")).unwrap(),
        owner: Owner::try_from("alice@example.com".to_owned()).unwrap(),
        purpose: Purpose::try_from("refresh test".to_owned()).unwrap(),
        labels: Labels::try_from(labels).unwrap(),
        boundary: Boundary::default(),
        status: AgentStatus::Active,
        status_reason: None,
        created_at: Timestamp::from_secs(T0),
        updated_at: Timestamp::from_secs(T0),
    }
}

fn state(dir: &tempfile::TempDir) -> Node {
    super::common::node_in(dir.path(), |_| {}).0
}

/// INVARIANT (one write path): a write through `Node::store()` is in the snapshot
/// when it returns, with no refresh called by its caller; a write to what decisions
/// do not read (a credential) rebuilds nothing; and a write that reached the store
/// some other way is read by the next rebuild, because the change feed names it.
#[test]
fn a_write_is_in_the_snapshot_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _, store) = super::common::node_over_store(dir.path(), |_| {});
    let now = Timestamp::from_secs(T0);
    let a = agent(0);
    s.store().insert_agent(&a).unwrap();
    assert!(s.snapshot().unwrap().agents.get(&a.id).is_some());
    s.store()
        .modify_agent(&a.id, now, |x| {
            x.status = AgentStatus::Suspended;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let held = s.snapshot().unwrap();
    assert_eq!(
        held.agents.get(&a.id).unwrap().status,
        AgentStatus::Suspended
    );

    let rebuilds = s.snapshot_changes();
    let before = *rebuilds.borrow();
    let credential = mandate_core::credential::Credential {
        id: mandate_core::id::CredentialId::parse("crd_01JA0000000000000000000000").unwrap(),
        agent_id: a.id.clone(),
        kind: mandate_core::credential::CredentialKind::ClientSecret,
        public_jwk: None,
        key_id: None,
        cert_name: None,
        created_at: now,
        expires_at: None,
        revoked_at: None,
        replaced_by: None,
    };
    s.store()
        .insert_credential(&credential, Some("$argon2id$not-checked-here"))
        .unwrap();
    assert_eq!(
        *rebuilds.borrow(),
        before,
        "a credential is not in the snapshot"
    );

    let b = agent(1);
    store.insert_agent(&b).unwrap();
    assert!(
        s.snapshot().unwrap().agents.get(&b.id).is_none(),
        "not through the write path"
    );
    s.refresh().unwrap();
    assert!(
        s.snapshot().unwrap().agents.get(&b.id).is_some(),
        "the feed named agents"
    );
}

/// INVARIANT (fail closed on a stale snapshot): a refresh that fails holds every
/// reader of the snapshot until one succeeds. The failure here is an active policy
/// version that does not compile, written straight to the store.
#[test]
fn a_failed_refresh_holds_the_snapshot_until_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    s.store().insert_agent(&agent(0)).unwrap();
    s.refresh().unwrap();
    assert!(!s.is_stale() && s.snapshot().is_ok());

    let at = Timestamp::from_secs(T0);
    let broken = s
        .store()
        .insert_policy_version(
            "permit (principal, action, resource) when { nonsense",
            &[],
            "",
            "broken",
            at,
            "test",
        )
        .unwrap();
    s.store()
        .activate_policy_version(broken, at, "test")
        .unwrap();
    assert!(s.refresh().is_err());
    assert!(s.is_stale());
    assert!(s.snapshot().is_err(), "no reader gets the older snapshot");
    assert!(s.refresh().is_err(), "still failing, still held");
    assert!(s.snapshot().is_err());

    let fixed = s
        .store()
        .insert_policy_version(
            "permit (principal, action, resource);",
            &[],
            "",
            "fixed",
            at,
            "test",
        )
        .unwrap();
    s.store()
        .activate_policy_version(fixed, at, "test")
        .unwrap();
    s.refresh().unwrap();
    assert!(!s.is_stale());
    let snapshot = s.snapshot().expect("held no longer");
    assert_eq!(snapshot.policy_version, Some(fixed));
    assert_eq!(snapshot.agents.len(), 1);
}

/// INVARIANT (snapshot): a suspension made in the same second as the agent's last
/// change (so `updated_at` does not move) is in the snapshot after `refresh`, and
/// only the changed agent is a new allocation.
#[test]
fn refresh_reuses_unchanged_agents_and_never_a_stale_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(&dir);
    for i in 0..3 {
        s.store().insert_agent(&agent(i)).unwrap();
    }
    s.refresh().unwrap();
    let before = s.snapshot().unwrap();
    assert_eq!(before.agents.len(), 3);

    let (a0, a1) = (agent(0).id, agent(1).id);
    s.store()
        .modify_agent(&a1, Timestamp::from_secs(T0), |a| {
            a.status = AgentStatus::Suspended;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    s.store().insert_agent(&agent(3)).unwrap();
    s.refresh().unwrap();
    let after = s.snapshot().unwrap();

    assert_eq!(after.agents.len(), 4);
    assert_eq!(
        after.agents.get(&a1).map(|a| (a.status, a.updated_at)),
        Some((AgentStatus::Suspended, Timestamp::from_secs(T0)))
    );
    let shared = |id: &AgentId| {
        Arc::ptr_eq(
            before.agents.get_shared(id).unwrap(),
            after.agents.get_shared(id).unwrap(),
        )
    };
    assert!(
        shared(&a0) && shared(&agent(2).id),
        "unchanged agents are shared"
    );
    assert!(!shared(&a1), "the changed agent is read anew");
    assert_eq!(after.agents.get(&agent(3).id), Some(&agent(3)));
}
