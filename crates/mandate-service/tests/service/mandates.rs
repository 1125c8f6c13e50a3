//! The mandate and approval use cases (`mandates.rs`, `approvals.rs`, `dev_users.rs`)
//! over a real node on a SQLite store, without HTTP: who may request, read, complete,
//! revoke and decide a mandate, the boundary a request must stay within, and the
//! long-poll that wakes when a request is decided.

use std::sync::Arc;
use std::time::Duration;

use mandate_core::admin::{AdminToken, Role};
use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Grant, Labels, Owner, Purpose};
use mandate_core::id::{AdminTokenId, AgentId, MandateId};
use mandate_core::mandate::{Mandate, MandateStatus, UserRef};
use mandate_core::random::OsRandom;
use mandate_core::time::Timestamp;
use mandate_store::prelude::*;
use mandate_store::{MandateFilter, StoreError};
use mandate_token::access::{AccessClaims, Audience};
use mandate_token::keys::SigningKey;
use mandate_token::user::{DevUserIssuer, TrustedIssuers, VerifiedUser};

use super::common::T0;
use mandate_service::Node;
use mandate_service::acts::ActError;
use mandate_service::approvals::{ApprovalError, Approver, Decision};
use mandate_service::config::{MandateConfig, ServerConfig};
use mandate_service::dev_users::{self, DevTokenError, UserTokenRequest};
use mandate_service::mandates::{self, MandateError, MandateRequest, Party};

const APPROVERS: &str = "approvers";

fn node(dir: &tempfile::TempDir) -> Arc<Node> {
    node_with(dir, |_| {})
}

/// As [`node`], with `adjust` applied to the configuration.
fn node_with(dir: &tempfile::TempDir, adjust: impl FnOnce(&mut ServerConfig)) -> Arc<Node> {
    let (node, _) = super::common::node_in(dir.path(), |c| {
        c.mandates = MandateConfig {
            approver_group: Some(APPROVERS.into()),
            ..MandateConfig::default()
        };
        adjust(c);
    });
    Arc::new(node)
}

fn grant(action: &str) -> Grant {
    Grant {
        actions: vec![action.into()],
        resources: vec!["crm:contact/*".into()],
        data_classes: Vec::new(),
    }
}

/// Agent `i`, owned by alice, whose boundary is reading CRM contacts.
pub(super) fn agent(i: usize) -> Agent {
    let boundary = Boundary {
        grants: vec![grant("crm:read")],
        ..Boundary::default()
    };
    Agent {
        id: AgentId::parse(&format!("agt_01JA{i:022}")).unwrap(),
        name: AgentName::try_from(format!("agent-{i}")).unwrap(),
        owner: Owner::try_from("alice@example.com".to_owned()).unwrap(),
        purpose: Purpose::try_from("mandate test".to_owned()).unwrap(),
        labels: Labels::default(),
        boundary,
        status: AgentStatus::Active,
        status_reason: None,
        created_at: Timestamp::from_secs(T0),
        updated_at: Timestamp::from_secs(T0),
    }
}

fn as_agent(a: &Agent) -> Party {
    Party::Agent {
        agent: Box::new(a.clone()),
        claims: Box::new(AccessClaims {
            iss: "http://mandate.test".into(),
            sub: a.id.to_string(),
            aud: Audience::One("http://mandate.test".into()),
            exp: T0 + 300,
            iat: T0,
            nbf: T0,
            jti: "tok_01JA0000000000000000000000".into(),
            client_id: a.id.to_string(),
            scope: None,
            act: None,
            mandate: None,
            parents: Vec::new(),
            cnf: None,
        }),
    }
}

fn admin(role: Role) -> Party {
    Party::Admin(AdminToken {
        id: AdminTokenId::parse("adm_01JA0000000000000000000000").unwrap(),
        name: "test".into(),
        role,
        bootstrap: false,
        created_at: Timestamp::from_secs(T0),
        revoked_at: None,
    })
}

fn user_ref(sub: &str, groups: &[&str]) -> UserRef {
    UserRef {
        issuer: "https://idp.test".into(),
        sub: sub.into(),
        email: None,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn user(sub: &str, groups: &[&str]) -> Party {
    Party::User(Box::new(VerifiedUser {
        user: user_ref(sub, groups),
        expires_at: Timestamp::from_secs(T0 + 3600),
        token_id: None,
        issued_at: None,
    }))
}

/// A stored mandate `n` of `agent` in `status`, for `for_user`, reading contacts for
/// 600 seconds (pending ones until T0 + 300, active ones until T0 + 600).
pub(super) fn stored(
    node: &Node,
    n: usize,
    agent: &Agent,
    status: MandateStatus,
    for_user: Option<UserRef>,
) -> MandateId {
    let id = MandateId::parse(&format!("mdt_01JA{n:022}")).unwrap();
    let now = Timestamp::from_secs(T0);
    let mut m = Mandate::requested(
        id.clone(),
        agent.id.clone(),
        "read contacts".into(),
        vec![grant("crm:read")],
        600,
        status,
        now,
    );
    m.user = for_user;
    match status {
        MandateStatus::PendingApproval => m.approval_deadline = Some(now.plus_secs(300)),
        MandateStatus::Active => {
            m.activated_at = Some(now);
            m.expires_at = Some(now.plus_secs(600));
        }
        _ => {}
    }
    node.store().insert_mandate(&m).unwrap();
    id
}

fn request(scope: Vec<Grant>, lifetime_secs: Option<u32>) -> MandateRequest {
    MandateRequest {
        intent: "read contacts".into(),
        scope,
        lifetime_secs,
        justification: None,
        user_token: None,
    }
}

fn all_mandates(node: &Node) -> Vec<Mandate> {
    node.store()
        .list_mandates(&MandateFilter::default(), None, 100)
        .unwrap()
}

/// INVARIANT (narrowing): a request reaching beyond the agent's boundary is refused,
/// says which grant and which part, and stores nothing; one within it is decided by
/// policy (here: none active, so denied by `policy`).
#[tokio::test(flavor = "multi_thread")]
async fn a_request_beyond_the_boundary_is_refused_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir);
    let a = agent(0);
    node.store().insert_agent(&a).unwrap();

    let beyond = vec![grant("crm:read"), grant("crm:write")];
    match mandates::request(&node, as_agent(&a), request(beyond, None)).await {
        Err(MandateError::OutsideBoundary { detail }) => {
            assert!(detail.starts_with("action: scope[1]"), "{detail}");
        }
        other => panic!("expected OutsideBoundary, got {other:?}"),
    }
    assert!(all_mandates(&node).is_empty(), "a refusal stores nothing");

    let within = mandates::request(&node, as_agent(&a), request(vec![grant("crm:read")], None))
        .await
        .unwrap();
    assert_eq!(within.mandate.status, MandateStatus::Denied);
    assert_eq!(within.mandate.decided_by.as_deref(), Some("policy"));
    assert_eq!(
        within.mandate.lifetime_secs,
        mandates::DEFAULT_LIFETIME_SECS
    );
    assert_eq!(all_mandates(&node).len(), 1);
}

/// Only an agent requests, with its own token, for at most the configured lifetime;
/// with a policy that permits, the mandate is active for its lifetime from now.
#[tokio::test(flavor = "multi_thread")]
async fn only_an_agent_requests_within_the_lifetime_and_policy_grants() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir);
    let a = agent(0);
    node.store().insert_agent(&a).unwrap();
    let scope = || vec![grant("crm:read")];

    let by_admin = mandates::request(&node, admin(Role::Admin), request(scope(), None)).await;
    assert!(
        matches!(by_admin, Err(MandateError::AgentsOnly)),
        "{by_admin:?}"
    );
    let too_long = mandates::request(&node, as_agent(&a), request(scope(), Some(7200))).await;
    assert!(
        matches!(too_long, Err(MandateError::LifetimeTooLong { max: 3600 })),
        "{too_long:?}"
    );
    let Party::Agent { agent, mut claims } = as_agent(&a) else {
        unreachable!()
    };
    claims.mandate = Some("mdt_01JA0000000000000000000000".into());
    let with_mandate_token = mandates::request(
        &node,
        Party::Agent { agent, claims },
        request(scope(), None),
    )
    .await;
    assert!(
        matches!(with_mandate_token, Err(MandateError::MandateToken)),
        "{with_mandate_token:?}"
    );
    assert!(all_mandates(&node).is_empty());

    let at = Timestamp::from_secs(T0);
    let v = node
        .store()
        .insert_policy_version(
            "permit (principal, action, resource);",
            &[],
            "",
            "all",
            at,
            "t",
        )
        .unwrap();
    node.store().activate_policy_version(v, at, "t").unwrap();
    let granted = mandates::request(&node, as_agent(&a), request(scope(), Some(120)))
        .await
        .unwrap();
    assert_eq!(granted.mandate.status, MandateStatus::Active);
    assert_eq!(granted.mandate.expires_at, Some(at.plus_secs(120)));
}

/// Only the mandate's agent completes it, once; another agent is told it does not
/// exist, an admin that it may not.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_mandates_agent_completes_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir);
    let (a, b) = (agent(0), agent(1));
    node.store().insert_agent(&a).unwrap();
    node.store().insert_agent(&b).unwrap();
    let id = stored(&node, 1, &a, MandateStatus::Active, None);

    let other = mandates::complete(&node, as_agent(&b), id.clone()).await;
    assert!(matches!(other, Err(MandateError::Unknown(_))), "{other:?}");
    let by_admin = mandates::complete(&node, admin(Role::Admin), id.clone()).await;
    assert!(
        matches!(by_admin, Err(MandateError::NotAllowed(_))),
        "{by_admin:?}"
    );

    let done = mandates::complete(&node, as_agent(&a), id.clone())
        .await
        .unwrap();
    assert_eq!(done.mandate.status, MandateStatus::Completed);
    assert_eq!(done.mandate.ended_by.as_deref(), Some(a.id.as_str()));
    let again = mandates::complete(&node, as_agent(&a), id).await;
    assert!(
        matches!(
            again,
            Err(MandateError::NotActive {
                status: MandateStatus::Completed,
                ..
            })
        ),
        "{again:?}"
    );
}

/// A read-only admin may not revoke; the agent's owner may, once.
#[tokio::test(flavor = "multi_thread")]
async fn the_owner_revokes_a_read_only_admin_may_not() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir);
    let a = agent(0);
    node.store().insert_agent(&a).unwrap();
    let id = stored(&node, 1, &a, MandateStatus::PendingApproval, None);

    let auditor = mandates::revoke(&node, admin(Role::Auditor), id.clone(), None).await;
    assert!(
        matches!(auditor, Err(MandateError::Act(ActError::NotAllowed(_)))),
        "{auditor:?}"
    );
    let stranger = mandates::revoke(&node, user("bob", &[]), id.clone(), None).await;
    assert!(
        matches!(
            stranger,
            Err(MandateError::Act(ActError::UnknownMandate(_)))
        ),
        "{stranger:?}"
    );

    let owner = user("alice@example.com", &[]);
    let revoked = mandates::revoke(&node, owner, id.clone(), Some("done".into()))
        .await
        .unwrap();
    assert_eq!(revoked.mandate.status, MandateStatus::Revoked);
    assert_eq!(
        revoked.mandate.ended_by.as_deref(),
        Some("user:alice@example.com")
    );
    let again = mandates::revoke(&node, user("alice@example.com", &[]), id, None).await;
    assert!(
        matches!(again, Err(MandateError::Act(ActError::NotLive { .. }))),
        "{again:?}"
    );
}

/// An agent lists only its own mandates; a user only those for them, from their issuer.
#[tokio::test(flavor = "multi_thread")]
async fn each_party_lists_only_what_it_may_see() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir);
    let (a, b) = (agent(0), agent(1));
    node.store().insert_agent(&a).unwrap();
    node.store().insert_agent(&b).unwrap();
    let carol = user_ref("carol", &[]);
    let mine = stored(&node, 1, &a, MandateStatus::Active, Some(carol.clone()));
    let elsewhere = UserRef {
        issuer: "https://other-idp.test".into(),
        ..carol
    };
    stored(&node, 2, &b, MandateStatus::Active, Some(elsewhere));

    let ids = |p: mandates::Page| p.mandates.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let all = MandateFilter::default;
    let page = mandates::list(&node, &as_agent(&a), all(), None, 100)
        .await
        .unwrap();
    assert_eq!(ids(page), vec![mine.clone()]);
    let page = mandates::list(&node, &user("carol", &[]), all(), None, 100)
        .await
        .unwrap();
    assert_eq!(
        ids(page),
        vec![mine],
        "same subject at another issuer is not carol"
    );
    let page = mandates::list(&node, &admin(Role::Auditor), all(), None, 100)
        .await
        .unwrap();
    assert_eq!(page.mandates.len(), 2);
}

/// Only approvers decide; nobody decides a request made for them; a request is decided
/// once; one past its deadline has expired, whether or not the sweeper wrote it.
#[tokio::test(flavor = "multi_thread")]
async fn approvers_decide_once_and_never_for_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir);
    let a = agent(0);
    node.store().insert_agent(&a).unwrap();
    let dave = user_ref("dave", &[APPROVERS]);
    let id = stored(&node, 1, &a, MandateStatus::PendingApproval, Some(dave));

    let not = Approver::check(&node, user("erin", &[]));
    assert!(matches!(not, Err(ApprovalError::NotAnApprover)), "{not:?}");
    assert!(matches!(
        Approver::check(&node, admin(Role::Auditor)),
        Err(ApprovalError::NotAnApprover)
    ));

    let dave = Approver::check(&node, user("dave", &[APPROVERS])).unwrap();
    let own = dave
        .decide(&node, id.clone(), Decision::Approve, None)
        .await;
    assert!(matches!(own, Err(ApprovalError::SelfApproval)), "{own:?}");
    let owner = Approver::check(&node, user("alice@example.com", &[APPROVERS])).unwrap();
    let own_agent = owner
        .decide(&node, id.clone(), Decision::Approve, None)
        .await;
    assert!(
        matches!(own_agent, Err(ApprovalError::SelfApproval)),
        "{own_agent:?}"
    );

    let approver = || Approver::check(&node, admin(Role::Approver)).unwrap();
    let waiting = approver().waiting(&node, None, 100).await.unwrap();
    assert_eq!(waiting.items.len(), 1);
    assert_eq!(waiting.items[0].agent["name"], "agent-0");

    let approved = approver()
        .decide(&node, id.clone(), Decision::Approve, Some("ok".into()))
        .await
        .unwrap();
    let now = approved.now;
    assert_eq!(approved.mandate.status, MandateStatus::Active);
    assert_eq!(approved.mandate.expires_at, Some(now.plus_secs(600)));
    assert_eq!(approved.mandate.decision_comment.as_deref(), Some("ok"));
    let again = approver().decide(&node, id, Decision::Deny, None).await;
    assert!(
        matches!(
            again,
            Err(ApprovalError::NotPending {
                status: MandateStatus::Active,
                ..
            })
        ),
        "{again:?}"
    );
    assert!(
        approver()
            .waiting(&node, None, 100)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Past its deadline (T0 + 300) but still stored as pending: expired.
    let late = stored(&node, 2, &a, MandateStatus::PendingApproval, None);
    lapse(&node, &late);
    let expired = approver()
        .decide(&node, late.clone(), Decision::Approve, None)
        .await;
    assert!(
        matches!(expired, Err(ApprovalError::Expired(ref m)) if *m == late),
        "{expired:?}"
    );
}

/// Moves `id`'s approval deadline into the past (the node's clock stays at T0).
fn lapse(node: &Node, id: &MandateId) {
    node.store()
        .modify_mandate(id, |m| {
            m.approval_deadline = Some(Timestamp::from_secs(T0 - 1));
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

/// A long-polling read of a pending request answers as soon as it is decided, not when
/// its wait runs out; a party that may not see it is told it does not exist.
#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_read_wakes_when_the_request_is_decided() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir);
    let (a, b) = (agent(0), agent(1));
    node.store().insert_agent(&a).unwrap();
    let id = stored(&node, 1, &a, MandateStatus::PendingApproval, None);

    let hidden = mandates::show(&node, &as_agent(&b), &id, Duration::ZERO).await;
    assert!(
        matches!(hidden, Err(MandateError::Unknown(_))),
        "{hidden:?}"
    );

    let reader = {
        let (node, id, party) = (Arc::clone(&node), id.clone(), as_agent(&a));
        tokio::spawn(
            async move { mandates::show(&node, &party, &id, Duration::from_secs(30)).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    Approver::check(&node, admin(Role::Admin))
        .unwrap()
        .decide(&node, id, Decision::Deny, None)
        .await
        .unwrap();
    // Well before its 30 seconds are up.
    let m = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the read woke when the request was decided")
        .unwrap();
    assert_eq!(m.unwrap().mandate.status, MandateStatus::Denied);
}

/// The development issuer answers only when the operator enabled it, for 1..=86400
/// seconds and at most 64 groups; what it issues verifies as a user token.
#[tokio::test(flavor = "multi_thread")]
async fn the_dev_issuer_is_off_unless_enabled_and_checks_its_claims() {
    let req = |lifetime_secs, groups: usize| UserTokenRequest {
        sub: "alice".into(),
        email: None,
        groups: (0..groups).map(|g| format!("g{g}")).collect(),
        lifetime_secs,
    };
    let actor = admin(Role::Admin).actor();
    let dir = tempfile::tempdir().unwrap();
    let off = dev_users::issue_user_token(&node(&dir), &actor, req(None, 0)).await;
    assert!(matches!(off, Err(DevTokenError::Disabled)), "{off:?}");

    let issuer = DevUserIssuer::new(
        SigningKey::generate(&OsRandom).unwrap(),
        "http://mandate.test/dev-users".into(),
        "http://mandate.test".into(),
    );
    let trusted = TrustedIssuers::new(vec![issuer.trusted().unwrap()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(&dir, |c| c.dev_users = Some(Arc::new(issuer)));
    for (lifetime, groups) in [(Some(0), 0), (Some(86_401), 0)] {
        let r = dev_users::issue_user_token(&node, &actor, req(lifetime, groups)).await;
        assert!(matches!(r, Err(DevTokenError::Lifetime)), "{r:?}");
    }
    let r = dev_users::issue_user_token(&node, &actor, req(None, 65)).await;
    assert!(matches!(r, Err(DevTokenError::TooManyGroups)), "{r:?}");

    let issued = dev_users::issue_user_token(&node, &actor, req(Some(60), 2))
        .await
        .unwrap();
    assert_eq!(issued.issuer, "http://mandate.test/dev-users");
    assert_eq!(issued.expires_in, 60);
    let user = trusted.verify(&issued.token, node.clock.now()).unwrap();
    assert_eq!(
        (user.user.sub.as_str(), user.user.groups.len()),
        ("alice", 2)
    );
}

/// Regression: `MandateRequest` and `IssuedUserToken` got a derived `Debug` when they
/// moved here from mandate-server, where they had none, so one `{:?}` printed a user's
/// bearer token in clear. Their `Debug` names the token field, never its value.
#[tokio::test(flavor = "multi_thread")]
async fn no_user_token_reaches_a_debug_line() {
    let issuer = DevUserIssuer::new(
        SigningKey::generate(&OsRandom).unwrap(),
        "http://mandate.test/dev-users".into(),
        "http://mandate.test".into(),
    );
    let dir = tempfile::tempdir().unwrap();
    let node = node_with(&dir, |c| c.dev_users = Some(Arc::new(issuer)));
    let req = UserTokenRequest {
        sub: "alice".into(),
        email: None,
        groups: Vec::new(),
        lifetime_secs: Some(60),
    };
    let issued = dev_users::issue_user_token(&node, &admin(Role::Admin).actor(), req)
        .await
        .unwrap();
    let mandate_request = MandateRequest {
        user_token: Some(issued.token.clone()),
        ..request(vec![grant("crm:read")], None)
    };
    for (what, text) in [
        ("IssuedUserToken", format!("{issued:?}")),
        ("MandateRequest", format!("{mandate_request:?}")),
    ] {
        assert!(
            !text.contains(&issued.token),
            "{what}'s Debug shows the user token"
        );
    }
}
