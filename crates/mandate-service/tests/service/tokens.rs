//! The token service's rules without HTTP, over a real SQLite store: client
//! authentication and an agent's status, the boundary as the ceiling of what is issued,
//! who may revoke, and token exchange (the client always authenticates; delegation only
//! to a named delegate, never widening the scope).

use std::sync::Arc;

use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
use mandate_core::credential::{Credential, CredentialKind};
use mandate_core::id::{AgentId, CredentialId, MandateId};
use mandate_core::mandate::{Mandate, MandateStatus, NarrowError};
use mandate_core::random::OsRandom;
use mandate_core::time::Timestamp;
use mandate_store::StoreError;
use mandate_store::prelude::*;
use serde_json::json;

use super::common::T0;
use mandate_service::Node;
use mandate_service::exchange::{self, Ask, ExchangeError};
use mandate_service::tokens::{self, ClientAuth, Requester, TokenError};

const SECRET: &str = "mcs_the-right-secret";

fn node(dir: &tempfile::TempDir) -> Arc<Node> {
    Arc::new(super::common::node_in(dir.path(), |_| {}).0)
}

/// Registers agent `i` with `boundary` and the client secret [`SECRET`].
fn register(node: &Node, i: usize, boundary: serde_json::Value) -> AgentId {
    let id = AgentId::parse(&format!("agt_01JA{i:022}")).unwrap();
    let at = Timestamp::from_secs(T0);
    let agent = Agent {
        id: id.clone(),
        name: AgentName::try_from(format!("agent-{i}")).unwrap(),
        owner: Owner::try_from("alice@example.com".to_owned()).unwrap(),
        purpose: Purpose::try_from("token test".to_owned()).unwrap(),
        labels: Labels::default(),
        boundary: serde_json::from_value::<Boundary>(boundary).unwrap(),
        status: AgentStatus::Active,
        status_reason: None,
        created_at: at,
        updated_at: at,
    };
    node.store().insert_agent(&agent).unwrap();
    let credential = Credential {
        id: CredentialId::parse(&format!("crd_01JA{i:022}")).unwrap(),
        agent_id: id.clone(),
        kind: CredentialKind::ClientSecret,
        public_jwk: None,
        key_id: None,
        cert_name: None,
        created_at: at,
        expires_at: None,
        revoked_at: None,
        replaced_by: None,
    };
    let hash = mandate_token::secret::hash_client_secret(
        &mandate_token::secret::supplied(SECRET.to_owned()),
        &OsRandom,
    )
    .unwrap();
    node.store()
        .insert_credential(&credential, Some(&hash))
        .unwrap();
    id
}

fn secret(id: &AgentId, secret: &str) -> ClientAuth {
    ClientAuth::Secret {
        client_id: id.to_string(),
        secret: secret.to_owned(),
    }
}

fn crm_reader() -> serde_json::Value {
    json!({
        "grants": [{"actions": ["crm:read", "crm:list"], "resources": ["crm:contact/*"]}],
        "audiences": ["https://crm.example/*"],
        "max_token_lifetime_secs": 120,
    })
}

/// Client authentication: an unknown client and a wrong secret fail alike; the right
/// secret authenticates an active agent, and once it is suspended the same (remembered)
/// secret no longer does (`INVARIANT (caches only spare work)`).
#[tokio::test]
async fn only_an_active_client_with_its_secret_authenticates() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir);
    let a = register(&node, 0, crm_reader());
    let endpoint = node.config.token_endpoint();
    let unknown = AgentId::parse("agt_01JA9999999999999999999999").unwrap();

    let e = tokens::authenticate(&node, secret(&unknown, SECRET), endpoint.clone()).await;
    assert!(matches!(e, Err(TokenError::AuthenticationFailed)), "{e:?}");
    let e = tokens::authenticate(&node, secret(&a, "mcs_wrong"), endpoint.clone()).await;
    assert!(matches!(e, Err(TokenError::AuthenticationFailed)), "{e:?}");
    let agent = tokens::authenticate(&node, secret(&a, SECRET), endpoint.clone())
        .await
        .unwrap();
    assert_eq!(agent.id, a);

    node.store()
        .modify_agent(&a, Timestamp::from_secs(T0), |x| {
            x.status = AgentStatus::Suspended;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let e = tokens::authenticate(&node, secret(&a, SECRET), endpoint).await;
    assert!(
        matches!(e, Err(TokenError::Inactive(AgentStatus::Suspended))),
        "{e:?}"
    );
    assert_eq!(e.unwrap_err().code(), "invalid_client");
}

/// INVARIANT (ceiling), (audience, at issuance) and (lifetime): a scope or resource
/// outside the boundary is refused, Mandate and another service never share a token,
/// and the lifetime is the shorter of the default and the boundary's.
#[tokio::test]
async fn client_credentials_stay_within_the_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir);
    let a = register(&node, 0, crm_reader());

    let e = tokens::issue_client_credentials(
        &node,
        secret(&a, SECRET),
        Some("crm:read crm:write".into()),
        &[],
        &[],
    )
    .await;
    assert!(
        matches!(&e, Err(TokenError::ScopeOutsideBoundary(s)) if s == "crm:write"),
        "{e:?}"
    );
    let e = tokens::issue_client_credentials(
        &node,
        secret(&a, SECRET),
        None,
        &["https://mail.example/inbox"],
        &[],
    )
    .await;
    assert!(
        matches!(&e, Err(TokenError::TargetOutsideBoundary { what: "resource", target })
            if target == "https://mail.example/inbox"),
        "{e:?}"
    );
    let e = tokens::issue_client_credentials(
        &node,
        secret(&a, SECRET),
        None,
        &["https://crm.example/v1", "https://api.test"],
        &[],
    )
    .await;
    assert!(
        matches!(e, Err(TokenError::MixedAudience { what: "resource" })),
        "{e:?}"
    );

    let issued = tokens::issue_client_credentials(
        &node,
        secret(&a, SECRET),
        Some("crm:read".into()),
        &["https://crm.example/v1"],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(issued.expires_in, 120);
    assert_eq!(issued.scope.as_deref(), Some("crm:read"));
}

/// Revocation: a read-only admin may not revoke, an agent only its own tokens; a
/// revoked token is no longer active at introspection.
#[tokio::test]
async fn only_the_holder_or_a_writing_admin_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir);
    let a = register(&node, 0, crm_reader());
    let b = register(&node, 1, crm_reader());
    let token = tokens::issue_client_credentials(&node, secret(&a, SECRET), None, &[], &[])
        .await
        .unwrap()
        .token;

    let reader = Requester::Admin {
        can_write: false,
        id: "adm_reader".into(),
    };
    let e = tokens::revoke(&node, reader, token.clone()).await;
    assert!(matches!(e, Err(TokenError::ReadOnly)), "{e:?}");
    let e = tokens::revoke(&node, Requester::Agent(b.clone()), token.clone()).await;
    assert!(matches!(e, Err(TokenError::AnotherClientsToken)), "{e:?}");
    let seen_by_b = tokens::introspect(&node, &Requester::Agent(b), token.clone()).await;
    assert!(
        seen_by_b.unwrap().is_none(),
        "another agent's token is not shown"
    );
    let seen = tokens::introspect(&node, &Requester::Agent(a.clone()), token.clone()).await;
    assert!(seen.unwrap().is_some(), "active before the revocation");

    tokens::revoke(&node, Requester::Agent(a.clone()), token.clone())
        .await
        .unwrap();
    let seen = tokens::introspect(&node, &Requester::Agent(a), token).await;
    assert!(seen.unwrap().is_none(), "revoked");
}

fn ask<'a>(subject: &'a str, scope: Option<&str>) -> Ask<'a> {
    Ask {
        subject,
        actor: None,
        scope: scope.map(str::to_owned),
        targets: Vec::new(),
        mandate: None,
        proofs: Vec::new(),
    }
}

/// INVARIANT (exchange needs the client), (delegation) and (narrowing): no exchange
/// without client authentication; an agent's own token gets a mandate token only when
/// it holds an active mandate; a mandate token is delegated only to an agent its
/// holder's boundary names, and never to a wider scope.
#[tokio::test]
async fn exchange_needs_the_client_a_mandate_and_a_named_delegate() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir);
    let a = register(&node, 0, crm_reader());
    let b = register(&node, 1, crm_reader());
    let own = tokens::issue_client_credentials(&node, secret(&a, SECRET), None, &[], &[])
        .await
        .unwrap()
        .token;

    let e = exchange::exchange(&node, None, None, &ask(&own, None)).await;
    assert!(matches!(e, Err(ExchangeError::ClientRequired)), "{e:?}");
    let e = exchange::exchange(&node, Some(secret(&a, SECRET)), None, &ask(&own, None)).await;
    assert!(matches!(e, Err(ExchangeError::NoMandate)), "{e:?}");
    assert_eq!(e.unwrap_err().code(), "invalid_grant");

    let at = Timestamp::from_secs(T0);
    let grant = serde_json::from_value(
        json!({"actions": ["crm:read", "crm:list"], "resources": ["crm:contact/*"]}),
    )
    .unwrap();
    let mandate = Mandate {
        activated_at: Some(at),
        expires_at: Some(at.plus_secs(600)),
        ..Mandate::requested(
            MandateId::parse("mdt_01JA0000000000000000000000").unwrap(),
            a.clone(),
            "read the contacts".into(),
            vec![grant],
            600,
            MandateStatus::Active,
            at,
        )
    };
    node.store().insert_mandate(&mandate).unwrap();
    let mandated = exchange::exchange(
        &node,
        Some(secret(&a, SECRET)),
        None,
        &ask(&own, Some("crm:read")),
    )
    .await
    .unwrap();
    assert_eq!(mandated.scope, "crm:read");

    let e = exchange::exchange(
        &node,
        Some(secret(&b, SECRET)),
        None,
        &ask(&mandated.token, None),
    )
    .await;
    assert!(
        matches!(&e, Err(ExchangeError::NotADelegate { from, to }) if *from == a && *to == b),
        "{e:?}"
    );

    node.store()
        .modify_agent(&a, at, |x| {
            x.boundary.delegates.push(b.clone());
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let e = exchange::exchange(
        &node,
        Some(secret(&b, SECRET)),
        None,
        &ask(&mandated.token, Some("crm:list")),
    )
    .await;
    assert!(
        matches!(&e, Err(ExchangeError::Scope(NarrowError::Wider(s))) if s == "crm:list"),
        "{e:?}"
    );
    let delegated = exchange::exchange(
        &node,
        Some(secret(&b, SECRET)),
        None,
        &ask(&mandated.token, None),
    )
    .await
    .unwrap();
    assert_eq!(delegated.scope, "crm:read");
}

/// Regression: `ClientAuth`, `Issued`, `Ask` and `Exchanged` got a derived `Debug` when
/// they moved here from mandate-server, where they had none, so one `{:?}` (a log
/// field, a failed assertion) printed the client secret, the client assertion or the
/// access token in clear. `mandate_token::secret::Secret`'s rule holds for them too:
/// their `Debug` names the field, never its value.
#[tokio::test]
async fn no_secret_or_token_reaches_a_debug_line() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir);
    let a = register(&node, 0, crm_reader());
    let issued = tokens::issue_client_credentials(&node, secret(&a, SECRET), None, &[], &[])
        .await
        .unwrap();
    let token = issued.token.clone();
    let jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZ3QifQ.c2lnbmF0dXJl";
    let assertion = ClientAuth::Assertion {
        client_id: Some(a.to_string()),
        assertion: jwt.to_owned(),
    };
    let exchanged = exchange::Exchanged {
        token: token.clone(),
        expires_in: 60,
        scope: "crm:read".into(),
        bound: false,
    };
    let shown = [
        ("ClientAuth::Secret", format!("{:?}", secret(&a, SECRET))),
        ("ClientAuth::Assertion", format!("{assertion:?}")),
        ("Issued", format!("{issued:?}")),
        (
            "Ask",
            format!(
                "{:?}",
                Ask {
                    actor: Some(jwt),
                    ..ask(&token, None)
                }
            ),
        ),
        ("Exchanged", format!("{exchanged:?}")),
    ];
    for (what, text) in &shown {
        for (name, value) in [("secret", SECRET), ("assertion", jwt), ("token", &*token)] {
            assert!(!text.contains(value), "{what}'s Debug shows the {name}");
        }
    }
    assert!(
        shown[0].1.contains(a.as_str()),
        "the client id is no secret: {}",
        shown[0].1
    );
}
