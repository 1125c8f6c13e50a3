//! The wire types (`mandate-api`) against a real `mandate serve`: each answer the server
//! gives reads as its type and writes back as the same JSON (so the CLI's `--json`,
//! which prints the typed answer, shows what the server sent), and the typed client
//! (`mandate-client`) makes the calls and reads the failures.

use std::any::type_name;

use base64::Engine as _;
use mandate_api as api;
use mandate_client::{AgentQuery, AuditQuery, Client, Error, MandateQuery, PageQuery};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::harness::{Server, data_dir};

/// `raw` read as a `T`, which must write back as `raw` (object member order aside).
fn same<T: DeserializeOwned + Serialize>(raw: &Value) -> T {
    let typed: T = serde_json::from_value(raw.clone())
        .unwrap_or_else(|e| panic!("{} does not read {raw}: {e}", type_name::<T>()));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back,
        raw,
        "{} does not write back what it read",
        type_name::<T>()
    );
    typed
}

/// An admin call's answer, checked as a `T`.
async fn get<T: DeserializeOwned + Serialize>(
    s: &Server,
    admin: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> T {
    let (st, v) = s.admin(admin, method, path, body).await;
    assert!((200..300).contains(&st), "{path}: {st} {v}");
    same(&v)
}

const SCHEMA: &str = r#"namespace Crm { entity Contact; }
namespace Mandate {
  action "crm:read" in ["all"] appliesTo { principal: [Agent], resource: [Crm::Contact] };
}
"#;

const POLICIES: &str = r#"@id("read")
permit (principal, action == Mandate::Action::"crm:read", resource);
@id("ask")
permit (principal, action == Mandate::Action::"mandate:request", resource);
"#;

#[tokio::test]
async fn every_answer_reads_as_its_type_and_writes_back_unchanged() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[("MANDATE_DEV_USER_TOKENS", "true")]);
    let admin = s.token.clone().unwrap();
    let client = Client::new(&s.addr, &admin);

    // Agents: register (typed request), show, update, list, suspend, resume.
    let boundary = api::Boundary {
        grants: vec![api::Grant {
            actions: vec!["crm:*".into(), "mandate:request".into()],
            resources: vec!["Crm::Contact/*".into()],
            data_classes: vec![],
        }],
        max_token_lifetime_secs: Some(600),
        delegates: vec![],
        audiences: vec!["https://crm.example.com".into()],
        require_dpop: false,
    };
    let registered = client
        .register_agent(&api::RegisterAgent {
            name: "wire-bot".into(),
            owner: "ops@example.com".into(),
            purpose: Some("checks the wire".into()),
            labels: Some([("team".to_owned(), "ops".to_owned())].into()),
            boundary: Some(boundary.clone()),
        })
        .await
        .unwrap();
    assert_eq!(registered.boundary, boundary);
    let id = registered.id.clone();
    let a: api::Agent = get(&s, &admin, Method::GET, &format!("/v1/agents/{id}"), None).await;
    assert_eq!(a, registered);
    let _: api::Agent = get(
        &s,
        &admin,
        Method::POST,
        &format!("/v1/agents/{id}/suspend"),
        Some(json!({"reason": "a test"})),
    )
    .await;
    let resumed = client
        .resume_agent(&id, &api::StatusChange::default())
        .await
        .unwrap();
    assert_eq!(resumed.status, api::AgentStatus::Active);
    let page: api::AgentPage = get(&s, &admin, Method::GET, "/v1/agents?limit=1", None).await;
    assert_eq!(page.next_cursor.as_deref(), Some(id.as_str()));
    let q = AgentQuery {
        owner: Some("ops@example.com".into()),
        ..AgentQuery::default()
    };
    assert_eq!(client.list_agents(&q).await.unwrap().items.len(), 1);
    let updated = client
        .update_agent(
            &id,
            &api::UpdateAgent {
                purpose: Some("still checks the wire".into()),
                ..api::UpdateAgent::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.purpose, "still checks the wire");

    // Credentials: a secret, a public key, the list, a rotation.
    let created: api::CredentialCreated = get(
        &s,
        &admin,
        Method::POST,
        &format!("/v1/agents/{id}/credentials"),
        Some(json!({"type": "client_secret"})),
    )
    .await;
    let secret = created.client_secret.clone().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
    let _: api::CredentialCreated = get(
        &s,
        &admin,
        Method::POST,
        &format!("/v1/agents/{id}/credentials"),
        Some(json!({"type": "public_key", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}})),
    )
    .await;
    let rotated: api::CredentialRotated = get(
        &s,
        &admin,
        Method::POST,
        &format!(
            "/v1/agents/{id}/credentials/{}/rotate",
            created.credential.id
        ),
        Some(json!({"overlap_secs": 60})),
    )
    .await;
    assert_eq!(rotated.previous.id, created.credential.id);
    let creds: api::Items<api::Credential> = get(
        &s,
        &admin,
        Method::GET,
        &format!("/v1/agents/{id}/credentials"),
        None,
    )
    .await;
    assert_eq!(creds.items.len(), 3);
    let secret = rotated.client_secret.unwrap_or(secret);

    // Admin tokens and keys.
    let _: api::AdminTokenCreated = get(
        &s,
        &admin,
        Method::POST,
        "/v1/admin-tokens",
        Some(json!({"name": "reader", "role": "auditor"})),
    )
    .await;
    let _: api::Items<api::AdminToken> =
        get(&s, &admin, Method::GET, "/v1/admin-tokens", None).await;
    let _: api::KeyRotated = get(&s, &admin, Method::POST, "/v1/keys/rotate", None).await;
    let keys: api::Items<api::SigningKey> = get(&s, &admin, Method::GET, "/v1/keys", None).await;
    assert_eq!(keys.items.len(), 2);

    // Policies: a refused set is a problem with located errors; add, show, activate,
    // list, roll back.
    let (st, v) = s
        .admin(
            &admin,
            Method::POST,
            "/v1/policies",
            Some(json!({"policies": "permit(", "schema_fragments": [SCHEMA]})),
        )
        .await;
    assert_eq!(st, 400);
    let p: api::Problem = same(&v);
    assert_eq!(p.error_code(), Some(api::ErrorCode::InvalidPolicy));
    assert!(!p.errors.unwrap_or_default().is_empty());
    for _ in 0..2 {
        let added = client
            .add_policies(&api::NewPolicies {
                policies: POLICIES.into(),
                schema_fragments: vec![SCHEMA.into()],
                note: None,
                rego_modules: Vec::new(),
                data: None,
            })
            .await
            .unwrap();
        let path = format!("/v1/policies/{}/activate", added.version);
        let _: api::PolicyActivated = get(&s, &admin, Method::POST, &path, None).await;
    }
    let _: api::PolicyVersion = get(&s, &admin, Method::GET, "/v1/policies/1", None).await;
    let _: api::PolicyList = get(&s, &admin, Method::GET, "/v1/policies", None).await;
    let back: api::PolicyActivated =
        get(&s, &admin, Method::POST, "/v1/policies/rollback", None).await;
    assert_eq!(back.previous_version, Some(2));

    // Decisions, with the agent's own token.
    let (st, t) = s.token_basic(&id, &secret, &[]).await;
    assert_eq!(st, 200, "{t}");
    let agent_token = t["access_token"].as_str().unwrap().to_owned();
    let as_agent = Client::new(&s.addr, &agent_token);
    let d = as_agent
        .authorize(&api::AuthorizeRequest {
            action: "crm:read".into(),
            resource: api::DecisionResource {
                type_name: "Crm::Contact".into(),
                id: "c1".into(),
                attributes: None,
            },
            context: None,
            principal: None,
            token: None,
            audience: None,
            request_id: Some("r1".into()),
        })
        .await
        .unwrap();
    assert_eq!(d.decision, "allow", "{d:?}");
    let (st, v) = s
        .admin(
            &agent_token,
            Method::POST,
            "/v1/authorize/batch",
            Some(json!({"requests": [{"action": "crm:read",
                "resource": {"type": "Crm::Contact", "id": "c2"}}]})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let _: api::BatchDecisions = same(&v);

    // Mandates: a request, the lists, a user token, a revocation.
    let m = as_agent
        .request_mandate(&api::NewMandate {
            intent: "read a contact".into(),
            scope: vec![api::Grant {
                actions: vec!["crm:read".into()],
                resources: vec!["Crm::Contact/c1".into()],
                data_classes: vec![],
            }],
            lifetime_secs: Some(60),
            justification: None,
            user_token: None,
        })
        .await
        .unwrap();
    assert_eq!(m.status, api::MandateStatus::Active, "{m:?}");
    let _: api::Mandate = get(
        &s,
        &admin,
        Method::GET,
        &format!("/v1/mandates/{}", m.id),
        None,
    )
    .await;
    let _: api::MandatePage = get(&s, &admin, Method::GET, "/v1/mandates", None).await;
    let q = MandateQuery {
        agent: Some(id.clone()),
        page: PageQuery {
            limit: Some(10),
            cursor: None,
        },
        ..MandateQuery::default()
    };
    assert_eq!(client.list_mandates(&q).await.unwrap().items.len(), 1);
    let _: api::ApprovalPage = get(&s, &admin, Method::GET, "/v1/approvals", None).await;
    let _: api::DevUserToken = get(
        &s,
        &admin,
        Method::POST,
        "/v1/dev/user-tokens",
        Some(json!({"sub": "alice", "groups": ["finance"]})),
    )
    .await;
    let revoked = client
        .revoke_mandate(
            &m.id,
            &api::RevokeMandate {
                reason: Some("done".into()),
            },
        )
        .await
        .unwrap();
    same::<api::Mandate>(&serde_json::to_value(&revoked).unwrap());
    assert_eq!(revoked.status, api::MandateStatus::Revoked);

    // Gateway secrets.
    client
        .put_gateway_secret(
            "crm-key",
            &api::PutGatewaySecret {
                value: "s3cret".into(),
            },
        )
        .await
        .unwrap();
    let _: api::Items<api::GatewaySecret> =
        get(&s, &admin, Method::GET, "/v1/gateway/secrets", None).await;
    client.delete_gateway_secret("crm-key").await.unwrap();

    // Anomalies and the baseline (detection is on by default).
    let _: api::AnomalyPage = get(&s, &admin, Method::GET, "/v1/anomalies", None).await;
    let b: api::Baseline = get(
        &s,
        &admin,
        Method::GET,
        &format!("/v1/agents/{id}/baseline"),
        None,
    )
    .await;
    assert!(b.enabled && b.summary.is_some(), "{b:?}");

    // Tokens and containment.
    let jti = {
        let b64 = agent_token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64)
                .unwrap(),
        )
        .unwrap();
        claims["jti"].as_str().unwrap().to_owned()
    };
    let _: api::TokenRevoked = get(
        &s,
        &admin,
        Method::POST,
        &format!("/v1/tokens/{jti}/revoke"),
        None,
    )
    .await;
    let contained = client
        .contain_agent(
            &id,
            &api::ContainAgent {
                reason: Some("a drill".into()),
                events: None,
            },
        )
        .await
        .unwrap();
    let raw: Value = serde_json::from_str(&contained.bytes).unwrap();
    let bundle: api::IncidentBundle = same(&raw);
    assert_eq!(bundle.agent, id);
    assert_eq!(bundle.evidence.agent.status, api::AgentStatus::Suspended);

    // The audit log.
    let page: api::AuditPage =
        get(&s, &admin, Method::GET, "/v1/audit/events?limit=1000", None).await;
    assert!(page.items.iter().any(|e| e.kind == "decision"));
    let q = AuditQuery {
        kind: Some("decision".into()),
        limit: Some(1),
        ..AuditQuery::default()
    };
    assert!(client.audit_events(&q).await.unwrap().next_cursor.is_some());
    let _: api::LatestCheckpoint = get(
        &s,
        &admin,
        Method::GET,
        "/v1/audit/checkpoints/latest",
        None,
    )
    .await;

    // Failures are typed: the problem with its status, or a transport error.
    match client.get_agent("agt_00000000000000000000000000").await {
        Err(Error::Problem { status, problem }) => {
            assert_eq!(status, 404);
            assert_eq!(problem.error_code(), Some(api::ErrorCode::NotFound));
            same::<api::Problem>(&serde_json::to_value(&problem).unwrap());
        }
        other => panic!("not a problem: {other:?}"),
    }
    let nobody = Client::new("http://127.0.0.1:9", &admin);
    assert!(matches!(
        nobody.list_keys().await,
        Err(Error::Transport { .. })
    ));
}
