//! `GET /v1/inventory` through the router: real agents, credentials, decisions and an
//! active policy version give each finding at its threshold; the filters, the page
//! cursor, the roles and bad queries.

use std::collections::BTreeMap;

use axum::http::Method;
use serde_json::{Value, json};

use super::Env;

const SCHEMA: &str = r#"
namespace Crm { entity Contact; }
namespace Mandate {
  action "crm:read" in ["all"] appliesTo { principal: [Agent], resource: [Crm::Contact] };
}
"#;

const DAY: i64 = 86_400;

impl Env {
    async fn inventory(&self, query: &str) -> Value {
        let r = self
            .admin(Method::GET, &format!("/v1/inventory{query}"), None)
            .await;
        r.expect(200);
        r.json()
    }

    async fn register_labelled(&self, name: &str, boundary: Value, labels: Value) -> String {
        let r = self
            .admin(
                Method::POST,
                "/v1/agents",
                Some(json!({"name": name, "owner": format!("{name}@example.com"),
                            "purpose": "test", "boundary": boundary, "labels": labels})),
            )
            .await;
        r.expect(201);
        r.json()["id"].as_str().expect("id").to_owned()
    }
}

/// Each row's finding codes, by agent name.
fn codes(inv: &Value) -> Vec<(String, Vec<String>)> {
    inv["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let c = r["findings"]
                .as_array()
                .expect("findings")
                .iter()
                .map(|f| {
                    let code = f["code"].as_str().expect("code");
                    match f["subject"].as_str() {
                        Some(s) if !s.starts_with("crd_") => format!("{code}:{s}"),
                        _ => code.to_owned(),
                    }
                })
                .collect();
            (r["name"].as_str().expect("name").to_owned(), c)
        })
        .collect()
}

#[tokio::test]
async fn the_inventory_shows_every_agent_with_its_facts_and_findings() {
    let env = Env::new();
    let read = json!({"grants": [{"actions": ["crm:read"], "resources": ["Crm::Contact/*"]}]});
    let busy = env
        .register_labelled("busy", read.clone(), json!({"team": "sales"}))
        .await;
    let idle = env
        .register_labelled("idle", read.clone(), json!({"team": "ops"}))
        .await;
    let wild = env
        .register_labelled(
            "wild",
            json!({"grants": [{"actions": ["*"], "resources": ["Crm::Contact/*"]}]}),
            json!({}),
        )
        .await;
    let empty = env
        .register_labelled("empty", json!({"grants": []}), json!({}))
        .await;
    let policies = format!(
        r#"@id("busy-all") permit (principal == Mandate::Agent::"{busy}", action, resource);
           @id("idle-read") permit (principal == Mandate::Agent::"{idle}", action in Mandate::Action::"all", resource);"#
    );
    let r = env
        .admin(
            Method::POST,
            "/v1/policies",
            Some(json!({"policies": policies, "schema_fragments": [SCHEMA]})),
        )
        .await;
    r.expect(201);
    let v = r.json()["version"].as_i64().expect("version");
    env.admin(Method::POST, &format!("/v1/policies/{v}/activate"), None)
        .await
        .expect(200);
    let (busy_cred, busy_secret) = env.add_secret(&busy).await;
    let (idle_cred, _) = env.add_secret(&idle).await;

    // Day 0: busy asks for a token and a decision.
    let busy_client = super::Client {
        id: busy.clone(),
        secret: busy_secret,
    };
    let token = env.token(&busy_client).await;
    let d = env
        .bearer(
            &token,
            Method::POST,
            "/v1/authorize",
            Some(json!({"action": "crm:read", "resource": {"type": "Crm::Contact", "id": "c1"}})),
        )
        .await;
    d.expect(200);
    assert_eq!(d.json()["decision"], "allow");
    mandate_http::flush_activity(&env.state).await.unwrap();

    let inv = env.inventory("").await;
    assert_eq!(inv["agents"], 4);
    assert_eq!(inv["policy_version"], v);
    assert_eq!(inv["next"], Value::Null);
    let got: BTreeMap<String, Vec<String>> = codes(&inv).into_iter().collect();
    let want: BTreeMap<String, Vec<String>> = [
        ("busy", vec!["unconditional_permit:busy-all"]),
        ("idle", vec![]),
        ("wild", vec!["boundary_wildcard:grants[0]", "dead"]),
        ("empty", vec!["dead"]),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_owned(), c.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(got, want);
    let row = |inv: &Value, id: &str| {
        inv["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .expect("row")
    };
    let b = row(&inv, &busy);
    assert_eq!(b["labels"], json!({"team": "sales"}));
    assert_eq!(b["boundary_grants"], 1);
    assert_eq!(b["status"], "active");
    assert_eq!(b["risk"], 0);
    assert_eq!(b["risk_level"], Value::Null);
    assert_eq!(b["owner_check"], "unchecked");
    assert!(b["last_activity"].is_string(), "{b}");
    assert_eq!(b["credentials"][0]["id"], busy_cred);
    assert_eq!(b["credentials"][0]["type"], "client_secret");
    assert!(b["credentials"][0]["last_used_at"].is_string(), "{b}");
    let i = row(&inv, &idle);
    assert_eq!(i["last_activity"], Value::Null);
    assert_eq!(i["credentials"][0]["last_used_at"], Value::Null);

    // An access review of busy's owner: busy used one contact of `Crm::Contact/*`, so
    // its boundary is wider than its use — while the boundary is the one reviewed.
    let due = mandate_core::time::Timestamp::from_secs(env.now() + 86_400).to_string();
    let r = env
        .admin(
            Method::POST,
            "/v1/reviews",
            Some(json!({"owner": "busy@example.com", "due": due})),
        )
        .await;
    r.expect(201);
    let inv = env.inventory("").await;
    let wider = |inv: &Value, id: &str| {
        row(inv, id)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "boundary_wider_than_use")
    };
    assert!(wider(&inv, &busy), "{}", row(&inv, &busy));
    assert!(!wider(&inv, &idle), "idle was not reviewed");
    assert_eq!(inv["findings"]["boundary_wider_than_use"], 1);

    // Day 31: idle never acted and its credential was never used; busy's credential
    // went unused for 31 days too, and busy is dormant.
    env.clock.advance_secs(31 * DAY);
    let inv = env.inventory("").await;
    let codes_of = |id: &str| -> Vec<String> {
        row(&inv, id)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                format!(
                    "{}{}",
                    f["code"].as_str().unwrap(),
                    f["subject"]
                        .as_str()
                        .map(|s| format!(":{s}"))
                        .unwrap_or_default()
                )
            })
            .collect()
    };
    assert_eq!(
        codes_of(&busy),
        [
            "dormant".to_owned(),
            format!("credential_stale:{busy_cred}"),
            "boundary_wider_than_use".to_owned(),
            "unconditional_permit:busy-all".to_owned()
        ]
    );
    assert_eq!(
        codes_of(&idle),
        [
            "dormant".to_owned(),
            format!("credential_stale:{idle_cred}")
        ]
    );
    assert_eq!(inv["findings"]["dormant"], 4);
    assert_eq!(inv["findings"]["dead"], 2);
    assert_eq!(inv["findings"]["credential_stale"], 2);
    // Thresholds are the caller's: 40 days dormant means none is yet.
    let later = env.inventory("?dormant_days=40").await;
    assert!(
        later["findings"].get("dormant").is_none(),
        "{}",
        later["findings"]
    );
    assert_eq!(later["thresholds"]["dormant_days"], 40);

    // Filters.
    let only = |inv: &Value| -> Vec<String> {
        inv["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(only(&env.inventory("?finding=dead").await).len(), 2);
    assert_eq!(
        only(&env.inventory("?selector=team%3Dsales").await),
        ["busy"]
    );
    assert_eq!(only(&env.inventory("?selector=team").await).len(), 2);
    assert_eq!(
        only(&env.inventory("?owner=idle%40example.com").await),
        ["idle"]
    );
    env.admin(
        Method::POST,
        &format!("/v1/agents/{wild}/suspend"),
        Some(json!({"reason": "test"})),
    )
    .await
    .expect(200);
    assert_eq!(only(&env.inventory("?status=suspended").await), ["wild"]);
    // The filters do not change the totals.
    assert_eq!(env.inventory("?status=suspended").await["agents"], 4);

    // Pages, in id order.
    let mut ids = [busy.clone(), idle.clone(), wild.clone(), empty.clone()];
    ids.sort();
    let first = env.inventory("?limit=3").await;
    assert_eq!(first["rows"].as_array().unwrap().len(), 3);
    assert_eq!(first["next"], ids[2]);
    let rest = env.inventory(&format!("?limit=3&after={}", ids[2])).await;
    assert_eq!(rest["rows"][0]["id"], ids[3]);
    assert_eq!(rest["next"], Value::Null);
}

/// Bad queries are 400 `invalid_query`; auditors read it; service tokens may not.
#[tokio::test]
async fn bad_queries_and_roles() {
    let env = Env::new();
    for q in [
        "?finding=nope",
        "?status=gone",
        "?dormant_days=0",
        "?dormant_days=9999",
        "?credential_unused_days=x",
        "?selector=a%3D%3D%3Db",
        "?after=nope",
        "?limit=0",
        "?limit=100001",
        "?what=1",
        "?owner=a&owner=b",
    ] {
        let r = env
            .admin(Method::GET, &format!("/v1/inventory{q}"), None)
            .await;
        r.expect(400);
        assert_eq!(r.json()["code"], "invalid_query", "{q}");
    }
    let auditor = env.admin_token("auditor").await;
    env.bearer(&auditor, Method::GET, "/v1/inventory", None)
        .await
        .expect(200);
    let service = env.admin_token("service").await;
    env.bearer(&service, Method::GET, "/v1/inventory", None)
        .await
        .expect(403);
}

/// A refusal at the token or status gate is not the agent's activity: a service token
/// naming a suspended agent, or that agent's revoked token, must not keep it looking
/// alive in the inventory; its allowed request once resumed is.
#[tokio::test]
async fn refusals_before_the_agent_is_resolved_are_not_its_activity() {
    let env = Env::new();
    let read = json!({"grants": [{"actions": ["crm:read"], "resources": ["Crm::Contact/*"]}]});
    let id = env.register_labelled("stopped", read, json!({})).await;
    let service = env.admin_token("service").await;
    env.admin(
        Method::POST,
        &format!("/v1/agents/{id}/suspend"),
        Some(json!({"reason": "test"})),
    )
    .await
    .expect(200);
    let ask = json!({"principal": id, "action": "crm:read",
                     "resource": {"type": "Crm::Contact", "id": "c1"}});
    let r = env
        .bearer(&service, Method::POST, "/v1/authorize", Some(ask.clone()))
        .await;
    r.expect(200);
    assert_eq!(r.json()["reasons"][0], "agent_suspended");
    mandate_http::flush_activity(&env.state).await.unwrap();
    let inv = env.inventory("").await;
    assert_eq!(inv["rows"][0]["last_activity"], Value::Null, "{inv}");

    env.admin(Method::POST, &format!("/v1/agents/{id}/resume"), None)
        .await
        .expect(200);
    env.bearer(&service, Method::POST, "/v1/authorize", Some(ask))
        .await
        .expect(200);
    mandate_http::flush_activity(&env.state).await.unwrap();
    let inv = env.inventory("").await;
    assert!(inv["rows"][0]["last_activity"].is_string(), "{inv}");
}
