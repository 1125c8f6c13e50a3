//! Access review campaigns through the router, over a window of real decisions made
//! through `/v1/authorize`: the suggestion keeps exactly what was used — replaying the
//! active version with the suggested boundaries as edits turns none of the window's
//! allows into a deny (and a boundary cut one step further does) —; each item is
//! decided once (narrow, certify, decommission), by an approver or the agent's owner
//! only; the campaign completes; overdue items escalate once and, if configured,
//! suspend; the HTML report escapes what agents' registrants wrote; every step is in
//! the audit log.

use std::sync::Arc;

use axum::http::{Method, header};
use mandate_core::random::OsRandom;
use mandate_http::ServerConfig;
use mandate_token::keys::SigningKey;
use mandate_token::user::{DevUserIssuer, TrustedIssuers};
use serde_json::{Value, json};

use super::{Env, ISSUER};

const SCHEMA: &str = r#"
namespace Crm { entity Contact; entity Account; }
namespace Billing { entity Invoice; }
namespace Mandate {
  action "crm:read", "crm:list", "crm:write", "billing:refund" in ["all"] appliesTo {
    principal: [Agent], resource: [Crm::Contact, Crm::Account, Billing::Invoice],
  };
}
"#;

const ALLOW_ALL: &str = r#"
@id("work")
permit (principal, action in Mandate::Action::"all", resource);
"#;

const APPROVERS: &str = "approvers";

fn env_with(adjust: impl FnOnce(&mut ServerConfig)) -> Env {
    let issuer = DevUserIssuer::new(
        SigningKey::generate(&OsRandom).expect("key"),
        "http://mandate.test/dev-users".into(),
        ISSUER.into(),
    );
    let trusted = issuer.trusted().expect("trusted issuer");
    Env::with_config(|c| {
        c.users = Arc::new(TrustedIssuers::new(vec![trusted]).expect("issuers"));
        c.dev_users = Some(Arc::new(issuer));
        c.mandates.approver_group = Some(APPROVERS.into());
        adjust(c);
    })
}

impl Env {
    async fn user(&self, sub: &str, email: Option<&str>, groups: &[&str]) -> String {
        let r = self
            .admin(
                Method::POST,
                "/v1/dev/user-tokens",
                Some(json!({"sub": sub, "email": email, "groups": groups})),
            )
            .await;
        r.expect(201);
        r.json()["token"].as_str().expect("token").to_owned()
    }

    async fn allow(&self, token: &str, action: &str, ty: &str, id: &str) -> String {
        let r = self
            .bearer(
                token,
                Method::POST,
                "/v1/authorize",
                Some(json!({"action": action, "resource": {"type": ty, "id": id}})),
            )
            .await;
        r.expect(200);
        r.json()["decision"].as_str().expect("decision").to_owned()
    }

    async fn start_review(&self, body: Value) -> Value {
        let r = self.admin(Method::POST, "/v1/reviews", Some(body)).await;
        r.expect(201);
        r.json()
    }

    async fn decide_item(
        &self,
        bearer: &str,
        review: &str,
        agent: &str,
        what: &str,
        body: Option<Value>,
    ) -> super::Reply {
        self.bearer(
            bearer,
            Method::POST,
            &format!("/v1/reviews/{review}/items/{agent}/{what}"),
            body,
        )
        .await
    }

    async fn kinds(&self) -> Vec<(String, Value)> {
        let r = self
            .admin(Method::GET, "/v1/audit/events?limit=1000", None)
            .await;
        r.expect(200);
        r.json()["items"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| (e["kind"].as_str().unwrap_or("").to_owned(), e.clone()))
            .collect()
    }
}

fn item<'a>(review: &'a Value, agent: &str) -> &'a Value {
    review["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["agent"] == agent)
        .expect("the agent's item")
}

#[tokio::test]
async fn a_campaign_suggests_what_was_used_and_applying_it_changes_none_of_the_windows_allows() {
    let env = env_with(|_| {});
    env.activate(ALLOW_ALL, &[SCHEMA]).await;
    let version = env.admin(Method::GET, "/v1/policies", None).await.json()["active_version"]
        .as_i64()
        .expect("active version");
    let wide = json!({"grants": [
        {"actions": ["crm:*"], "resources": ["Crm::Contact/*", "Crm::Account/*"]},
        {"actions": ["billing:*"], "resources": ["Billing::Invoice/*"]},
    ]});
    let a = env.client_with("reader", wide.clone()).await;
    let b = env.client_with("idle", wide.clone()).await;
    let c = env.client_with("retired", wide).await;
    let ta = env.token(&a).await;
    // A generated window: reads of 40 contacts (past the literal limit: a prefix), lists
    // of two accounts, and a deny outside the boundary that must not count.
    let start = env.now();
    for i in 0..40 {
        assert_eq!(
            env.allow(&ta, "crm:read", "Crm::Contact", &format!("c-{i}"))
                .await,
            "allow"
        );
    }
    for id in ["acc-1", "acc-2", "acc-1"] {
        assert_eq!(
            env.allow(&ta, "crm:list", "Crm::Account", id).await,
            "allow"
        );
    }
    assert_eq!(
        env.allow(&ta, "crm:read", "Other::Thing", "x").await,
        "deny"
    );
    env.advance(1);

    let review = env
        .start_review(json!({"owner": "alice@example.com", "name": "Q4 <access>",
            "due": format_time(env.now() + 86_400), "since": format_time(start - 10)}))
        .await;
    let id = review["review"]["id"].as_str().expect("id").to_owned();
    assert_eq!(review["review"]["counts"]["items"], 3);
    assert_eq!(review["review"]["counts"]["pending"], 3);
    assert_eq!(review["review"]["status"], "open");
    assert_eq!(review["review"]["decisions_read"], 43);
    let ia = item(&review, &a.id);
    assert_eq!(ia["used"]["allows"], 43);
    assert_eq!(
        ia["used"]["actions"],
        json!({"crm:list": 3, "crm:read": 40})
    );
    assert_eq!(ia["grants"][0]["fate"], "narrowed");
    assert_eq!(ia["grants"][0]["allows"], 43);
    assert_eq!(ia["grants"][1]["fate"], "unused");
    assert_eq!(
        ia["suggested"]["grants"],
        json!([{"actions": ["crm:list", "crm:read"],
            "resources": ["Crm::Account/acc-1", "Crm::Account/acc-2", "Crm::Contact/c-*"],
            "data_classes": []}])
    );
    let ib = item(&review, &b.id);
    assert_eq!(ib["used"]["allows"], 0);
    assert_eq!(ib["suggested"]["grants"], json!([]));

    // The issue's check, with the real replay: the suggestion as a boundary edit turns
    // none of the window's allows into a deny.
    let suggested = ia["suggested"].clone();
    let r = env
        .admin(
            Method::POST,
            &format!("/v1/policies/{version}/replay"),
            Some(json!({"since": format_time(start - 10),
                "boundaries": {a.id.clone(): suggested.clone(), b.id.clone(): ib["suggested"].clone()}})),
        )
        .await;
    r.expect(200);
    let counts = &r.json()["counts"];
    assert_eq!(counts["allow_to_deny"], 0, "{counts}");
    assert_eq!(counts["same"], 44, "{counts}");
    // And the check can fail: a boundary one resource narrower denies that resource.
    let mut cut = suggested.clone();
    cut["grants"][0]["resources"] = json!(["Crm::Account/acc-1", "Crm::Contact/c-*"]);
    let r = env
        .admin(
            Method::POST,
            &format!("/v1/policies/{version}/replay"),
            Some(json!({"since": format_time(start - 10), "boundaries": {a.id.clone(): cut}})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json()["counts"]["allow_to_deny"], 1);

    // Narrow to the suggestion: the agent's boundary is the suggestion from now on.
    let r = env
        .decide_item(
            &env.admin.clone(),
            &id,
            &a.id,
            "narrow",
            Some(json!({"comment": "least privilege"})),
        )
        .await;
    r.expect(200);
    let d = r.json();
    assert_eq!(d["item"]["state"], "narrowed");
    assert_eq!(d["item"]["decided_as"], "approver");
    assert_eq!(d["item"]["applied_boundary"], suggested);
    assert_eq!(d["review_completed"], false);
    let agent = env
        .admin(Method::GET, &format!("/v1/agents/{}", a.id), None)
        .await
        .json();
    assert_eq!(agent["boundary"], suggested);
    // What was used is still allowed; what was granted but unused is not.
    assert_eq!(
        env.allow(&ta, "crm:read", "Crm::Contact", "c-7").await,
        "allow"
    );
    assert_eq!(
        env.allow(&ta, "billing:refund", "Billing::Invoice", "i-1")
            .await,
        "deny"
    );

    // Decided once: a second decision of any kind is refused and changes nothing.
    for what in ["narrow", "certify", "decommission"] {
        let r = env
            .decide_item(&env.admin.clone(), &id, &a.id, what, None)
            .await;
        r.expect(409);
        assert_eq!(r.json()["code"], "already_decided");
    }
    // A boundary wider than the current one is refused, and the item stays pending.
    let r = env
        .decide_item(
            &env.admin.clone(),
            &id,
            &b.id,
            "narrow",
            Some(json!({"boundary": {"grants": [{"actions": ["*"], "resources": ["*"]}]}})),
        )
        .await;
    r.expect(409);
    assert_eq!(r.json()["code"], "boundary_not_within");

    // Who may decide: not another user, not an auditor; the owner may.
    let mallory = env.user("mallory", Some("mallory@example.com"), &[]).await;
    let r = env.decide_item(&mallory, &id, &b.id, "certify", None).await;
    r.expect(403);
    assert_eq!(r.json()["code"], "not_a_reviewer");
    let alice = env.user("alice", Some("alice@example.com"), &[]).await;
    let r = env
        .decide_item(
            &alice,
            &id,
            &b.id,
            "certify",
            Some(json!({"comment": "still needed"})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json()["item"]["decided_as"], "owner");

    // The last item: decommissioned, and the campaign completes.
    let r = env
        .decide_item(&env.admin.clone(), &id, &c.id, "decommission", None)
        .await;
    r.expect(200);
    assert_eq!(r.json()["review_completed"], true);
    let agent = env
        .admin(Method::GET, &format!("/v1/agents/{}", c.id), None)
        .await
        .json();
    assert_eq!(agent["status"], "decommissioned");
    let shown = env
        .admin(Method::GET, &format!("/v1/reviews/{id}"), None)
        .await
        .json();
    assert_eq!(shown["review"]["status"], "completed");
    assert_eq!(
        shown["review"]["counts"],
        json!({"items": 3, "pending": 0, "certified": 1, "narrowed": 1, "decommissioned": 1, "escalated": 0})
    );
    let listed = env.admin(Method::GET, "/v1/reviews", None).await.json();
    assert_eq!(listed["items"][0]["id"], id.as_str());

    // Every step is in the log, in order.
    let kinds: Vec<String> = env
        .kinds()
        .await
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("review.") || k == "agent.updated" || k == "agent.decommissioned")
        .collect();
    assert_eq!(
        kinds,
        [
            "review.started",
            "agent.updated",
            "review.narrowed",
            "review.certified",
            "agent.decommissioned",
            "review.decommissioned",
            "review.completed"
        ]
    );

    // Reports.
    let r = env
        .admin(
            Method::GET,
            &format!("/v1/reviews/{id}/report?format=csv"),
            None,
        )
        .await;
    r.expect(200);
    assert_eq!(
        r.header(header::CONTENT_TYPE),
        Some("text/csv; charset=utf-8")
    );
    let csv = String::from_utf8(r.body.to_vec()).expect("utf-8");
    assert!(csv.starts_with("review,agent,name,owner,state,"));
    assert_eq!(csv.lines().count(), 1 + 2 + 2 + 2, "{csv}");
    let r = env
        .admin(
            Method::GET,
            &format!("/v1/reviews/{id}/report?format=json"),
            None,
        )
        .await;
    r.expect(200);
    assert_eq!(r.json(), shown);
}

/// The HTML report escapes everything an agent's registrant wrote (labels, names) and
/// the campaign's name; the CSV defuses formulas.
#[tokio::test]
async fn reports_escape_what_registrants_wrote() {
    let env = env_with(|_| {});
    let r = env
        .admin(
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "labelled", "owner": "alice@example.com",
                "labels": {"team": "<script>alert(1)</script>", "note": "=HYPERLINK(\"x\")"}})),
        )
        .await;
    r.expect(201);
    let review = env
        .start_review(json!({"name": "<img src=x onerror=alert(2)>",
            "due": format_time(env.now() + 60)}))
        .await;
    let id = review["review"]["id"].as_str().expect("id");
    let r = env
        .admin(
            Method::GET,
            &format!("/v1/reviews/{id}/report?format=html"),
            None,
        )
        .await;
    r.expect(200);
    assert_eq!(
        r.header(header::CONTENT_TYPE),
        Some("text/html; charset=utf-8")
    );
    assert!(
        r.header(header::CONTENT_SECURITY_POLICY)
            .is_some_and(|c| c.starts_with("default-src 'none'"))
    );
    let html = String::from_utf8(r.body.to_vec()).expect("utf-8");
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "{html}"
    );
    let r = env
        .admin(
            Method::GET,
            &format!("/v1/reviews/{id}/report?format=csv"),
            None,
        )
        .await;
    let csv = String::from_utf8(r.body.to_vec()).expect("utf-8");
    assert!(!csv.contains(",=") && !csv.contains(",\"="), "{csv}");
}

/// Overdue items escalate once, on the manual clock; with `reviews.suspend_overdue` the
/// agent is suspended too; a decided item never escalates.
#[tokio::test]
async fn overdue_items_escalate_once_and_suspend_when_configured() {
    let env = env_with(|c| c.reviews.suspend_overdue = true);
    let late = env.register("late", json!({})).await;
    let done = env.register("done", json!({})).await;
    let review = env
        .start_review(
            json!({"agents": [late.clone(), done.clone()], "due": format_time(env.now() + 60)}),
        )
        .await;
    let id = review["review"]["id"].as_str().expect("id").to_owned();
    env.decide_item(&env.admin.clone(), &id, &done, "certify", None)
        .await
        .expect(200);
    assert_eq!(
        mandate_http::escalate_reviews(&env.state)
            .await
            .expect("escalate"),
        0,
        "not due yet"
    );
    env.advance(61);
    assert_eq!(
        mandate_http::escalate_reviews(&env.state)
            .await
            .expect("escalate"),
        1
    );
    assert_eq!(
        mandate_http::escalate_reviews(&env.state)
            .await
            .expect("escalate"),
        0,
        "once"
    );
    let agent = env
        .admin(Method::GET, &format!("/v1/agents/{late}"), None)
        .await
        .json();
    assert_eq!(agent["status"], "suspended");
    let agent = env
        .admin(Method::GET, &format!("/v1/agents/{done}"), None)
        .await
        .json();
    assert_eq!(agent["status"], "active");
    let shown = env
        .admin(Method::GET, &format!("/v1/reviews/{id}"), None)
        .await
        .json();
    assert_eq!(shown["review"]["counts"]["escalated"], 1);
    assert!(item(&shown, &late)["escalated_at"].is_string());
    let events = env.kinds().await;
    let escalated: Vec<&Value> = events
        .iter()
        .filter(|(k, _)| k == "review.escalated")
        .map(|(_, e)| e)
        .collect();
    assert_eq!(escalated.len(), 1);
    assert_eq!(escalated[0]["agent"], late.as_str());
    assert_eq!(escalated[0]["actor"], "review");
    assert_eq!(escalated[0]["details"]["suspended"], true);
    assert!(
        events
            .iter()
            .any(|(k, e)| k == "agent.suspended" && e["actor"] == "review")
    );
    // Still decidable after escalation.
    env.decide_item(&env.admin.clone(), &id, &late, "decommission", None)
        .await
        .expect(200);
}

/// Without `reviews.suspend_overdue`, an overdue item only escalates.
#[tokio::test]
async fn without_the_setting_an_overdue_agent_stays_active() {
    let env = env_with(|_| {});
    let late = env.register("late", json!({})).await;
    env.start_review(json!({"agents": [late.clone()], "due": format_time(env.now() + 60)}))
        .await;
    env.advance(61);
    assert_eq!(
        mandate_http::escalate_reviews(&env.state)
            .await
            .expect("escalate"),
        1
    );
    let agent = env
        .admin(Method::GET, &format!("/v1/agents/{late}"), None)
        .await
        .json();
    assert_eq!(agent["status"], "active");
}

fn format_time(secs: i64) -> String {
    mandate_core::time::Timestamp::from_secs(secs).to_string()
}

/// Two reviewers deciding one item at once: exactly one decision stands, and the agent
/// is as the winner left it (`INVARIANT (decided once)`).
#[tokio::test]
async fn two_reviewers_racing_decide_an_item_once() {
    let env = env_with(|_| {});
    let raced = env.register("raced", json!({})).await;
    let review = env
        .start_review(json!({"agents": [raced.clone()], "due": format_time(env.now() + 60)}))
        .await;
    let id = review["review"]["id"].as_str().expect("id").to_owned();
    let approver = env.user("dave", None, &[APPROVERS]).await;
    let admin = env.admin.clone();
    let (a, b) = tokio::join!(
        env.decide_item(&admin, &id, &raced, "certify", None),
        env.decide_item(&approver, &id, &raced, "decommission", None),
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    let loser = if a.status.as_u16() == 409 { &a } else { &b };
    assert_eq!(loser.json()["code"], "already_decided");
    let agent = env
        .admin(Method::GET, &format!("/v1/agents/{raced}"), None)
        .await
        .json();
    let shown = env
        .admin(Method::GET, &format!("/v1/reviews/{id}"), None)
        .await
        .json();
    let state = item(&shown, &raced)["state"]
        .as_str()
        .expect("state")
        .to_owned();
    let expected = if state == "decommissioned" {
        "decommissioned"
    } else {
        "active"
    };
    assert_eq!(agent["status"], expected);
    let kinds: Vec<String> = env
        .kinds()
        .await
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("review.") && k != "review.started" && k != "review.completed")
        .collect();
    assert_eq!(kinds.len(), 1, "{kinds:?}");
}
