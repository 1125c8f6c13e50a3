//! Mandates and approvals through the router: policy grants a mandate at once, holds it
//! for an approver or refuses it; approvers approve or deny (never for themselves);
//! requests time out and mandates expire (the sweeper); agents see only their own;
//! the agent completes and an admin or the owner revokes; the agent's long poll wakes on
//! a decision; a held request is announced to the webhook, signed; bad input changes
//! nothing; and every step is in the audit log.
//!
//! Two tests need real time: the long poll (it waits about a second for nothing, then
//! for an approval sent 200 ms later) and the webhook (a receiver on a loopback port).

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use mandate_core::random::OsRandom;
use mandate_http::ServerConfig;
use mandate_http::webhook::{WebhookConfig, signature};
use mandate_token::keys::SigningKey;
use mandate_token::user::{DevUserIssuer, TrustedIssuers};
use serde_json::{Value, json};

use super::{Client, Env, ISSUER, Reply};

/// Users in this group may approve.
const APPROVERS: &str = "approvers";
/// The owner `Env::register` gives every agent.
const OWNER: &str = "alice@example.com";
/// The configured defaults (`MandateConfig::default()`).
const APPROVAL_TIMEOUT: i64 = 300;
const MAX_MANDATE_LIFETIME: u32 = 3600;
/// A mandate's lifetime when the request names none: min(600, the maximum).
const DEFAULT_MANDATE_LIFETIME: i64 = 600;

/// Mandates may be asked for; refunds need a human; deletes never.
const POLICIES: &str = r#"
@id("mandates-allowed")
permit (principal, action == Mandate::Action::"mandate:request", resource);

@id("refunds-need-approval")
@approval
forbid (principal, action == Mandate::Action::"mandate:request", resource)
when { resource.actions.contains("billing:refund") };

@id("no-deletes")
forbid (principal, action == Mandate::Action::"mandate:request", resource)
when { resource.actions.contains("crm:delete") };
"#;

/// A server with the development user issuer and an approver group.
fn env() -> Env {
    env_with(|_| {})
}

/// As [`env`], with `adjust` applied to the configuration too.
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

fn read_scope() -> Value {
    json!([{"actions": ["crm:read"], "resources": ["Crm::Contact/*"]}])
}

fn refund_scope() -> Value {
    json!([{"actions": ["billing:refund"], "resources": ["Billing::Invoice/*"]}])
}

impl Env {
    /// An agent whose boundary covers CRM and billing, and an access token for it.
    async fn agent(&self, name: &str) -> (Client, String) {
        let boundary = json!({"grants": [
            {"actions": ["crm:*", "billing:*"], "resources": ["*"]},
        ]});
        let c = self.client_with(name, boundary).await;
        let t = self.token(&c).await;
        (c, t)
    }

    /// A development user token.
    async fn user_token(&self, sub: &str, email: Option<&str>, groups: &[&str]) -> String {
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

    async fn request_mandate(&self, agent_token: &str, body: Value) -> Reply {
        self.bearer(agent_token, Method::POST, "/v1/mandates", Some(body))
            .await
    }

    /// Requests a mandate (asserting 201) and returns it.
    async fn mandate(&self, agent_token: &str, body: Value) -> Value {
        let r = self.request_mandate(agent_token, body).await;
        r.expect(201);
        r.json()
    }

    /// Each of `approvers` is refused (403 `self_approval`) both ways, and mandate `id`
    /// stays pending, as `token`'s agent sees it.
    async fn refused_as_self(&self, token: &str, id: &str, approvers: &[&String]) {
        for who in approvers {
            for verb in ["approve", "deny"] {
                problem(
                    &self.approval(who, id, verb, None).await,
                    403,
                    "self_approval",
                );
            }
        }
        let shown = self.show_mandate(token, id).await;
        assert_eq!(shown.json()["status"], "pending_approval");
    }

    async fn show_mandate(&self, bearer: &str, id: &str) -> Reply {
        self.bearer(bearer, Method::GET, &format!("/v1/mandates/{id}"), None)
            .await
    }

    async fn approval(&self, bearer: &str, id: &str, verb: &str, body: Option<Value>) -> Reply {
        self.bearer(
            bearer,
            Method::POST,
            &format!("/v1/approvals/{id}/{verb}"),
            body,
        )
        .await
    }

    /// Every audit event of `kind`, oldest first.
    async fn events(&self, kind: &str) -> Vec<Value> {
        let r = self
            .admin(Method::GET, &format!("/v1/audit/events?kind={kind}"), None)
            .await;
        r.expect(200);
        r.json()["items"].as_array().expect("items").clone()
    }

    /// The one audit event of `kind` about mandate `id`.
    async fn event_for(&self, kind: &str, id: &str) -> Value {
        let mut found: Vec<Value> = self
            .events(kind)
            .await
            .into_iter()
            .filter(|e| e["details"]["mandate"] == id)
            .collect();
        assert_eq!(found.len(), 1, "{kind} events of {id}: {found:?}");
        found.remove(0)
    }

    /// The agents of the mandates `bearer` lists with `query`.
    async fn agents_listed(&self, bearer: &str, query: &str) -> Vec<String> {
        let r = self
            .bearer(bearer, Method::GET, &format!("/v1/mandates{query}"), None)
            .await;
        r.expect(200);
        r.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|m| m["agent"].as_str().expect("agent").to_owned())
            .collect()
    }

    /// Every mandate, as an admin sees them.
    async fn all_mandates(&self) -> Vec<Value> {
        let r = self.admin(Method::GET, "/v1/mandates", None).await;
        r.expect(200);
        r.json()["items"].as_array().expect("items").clone()
    }
}

/// Asserts a problem with `status` and `code`.
#[track_caller]
fn problem(r: &Reply, status: u16, code: &str) {
    r.expect(status);
    assert_eq!(
        r.json()["code"],
        code,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

/// The wire form of `secs`.
fn at(secs: i64) -> String {
    mandate_core::time::Timestamp::from_secs(secs).to_string()
}

fn id_of(m: &Value) -> String {
    m["id"].as_str().expect("mandate id").to_owned()
}

#[tokio::test]
async fn policy_grants_a_mandate_at_once() {
    let env = env();
    env.activate(POLICIES, &[]).await;
    let (bot, token) = env.agent("crm-bot").await;
    let now = env.now();
    let m = env
        .mandate(
            &token,
            json!({"intent": "look up the customer's address", "scope": read_scope(),
                "justification": "ticket 42"}),
        )
        .await;
    assert_eq!(m["status"], "active");
    assert_eq!(m["agent"], bot.id.as_str());
    assert_eq!(m["user"], Value::Null);
    assert_eq!(m["decided_by"], "policy");
    assert_eq!(m["policy_ids"], json!(["mandates-allowed"]));
    assert_eq!(m["lifetime_secs"], DEFAULT_MANDATE_LIFETIME);
    assert_eq!(m["activated_at"], at(now));
    assert_eq!(m["expires_at"], at(now + DEFAULT_MANDATE_LIFETIME));
    assert_eq!(m["approval_deadline"], Value::Null);

    let id = id_of(&m);
    let shown = env.show_mandate(&token, &id).await;
    shown.expect(200);
    assert_eq!(shown.json(), m);

    let e = env.event_for("mandate.requested", &id).await;
    assert_eq!(e["agent"], bot.id.as_str());
    assert_eq!(e["actor"], bot.id.as_str());
    assert_eq!(e["details"]["status"], "active");
    assert_eq!(e["details"]["intent"], "look up the customer's address");
    assert_eq!(e["details"]["scope"], m["scope"]);
    assert_eq!(m["scope"][0]["actions"], json!(["crm:read"]));
    assert_eq!(e["details"]["reasons"], json!(["allowed_by_policy"]));
    assert_eq!(e["policy_ids"], json!(["mandates-allowed"]));
}

#[tokio::test]
async fn policy_refusals_are_stored_denied() {
    let env = env();
    let (_, token) = env.agent("crm-bot").await;
    // No active policy: denied, and said why.
    let m = env
        .mandate(&token, json!({"intent": "read", "scope": read_scope()}))
        .await;
    assert_eq!(m["status"], "denied");
    let e = env.event_for("mandate.requested", &id_of(&m)).await;
    assert_eq!(e["details"]["reasons"], json!(["no_active_policy"]));

    env.activate(POLICIES, &[]).await;
    let scope = json!([{"actions": ["crm:delete"], "resources": ["Crm::Contact/*"]}]);
    let m = env
        .mandate(&token, json!({"intent": "clean up", "scope": scope}))
        .await;
    assert_eq!(m["status"], "denied");
    assert_eq!(m["decided_by"], "policy");
    assert_eq!(m["policy_ids"], json!(["no-deletes"]));
    let e = env.event_for("mandate.requested", &id_of(&m)).await;
    assert_eq!(e["details"]["reasons"], json!(["forbidden_by_policy"]));
}

#[tokio::test]
async fn an_approver_approves_a_held_request() {
    let env = env();
    env.activate(POLICIES, &[]).await;
    let (bot, token) = env.agent("billing-bot").await;
    let carol = env
        .user_token("carol", Some("carol@example.com"), &[])
        .await;
    let dave = env.user_token("dave", None, &[APPROVERS]).await;
    let now = env.now();
    let m = env
        .mandate(
            &token,
            json!({"intent": "refund invoice 7", "scope": refund_scope(),
                "justification": "double charge", "user_token": carol, "lifetime_secs": 120}),
        )
        .await;
    let id = id_of(&m);
    assert_eq!(m["status"], "pending_approval");
    assert_eq!(m["user"]["sub"], "carol");
    assert_eq!(m["user"]["email"], "carol@example.com");
    assert_eq!(m["policy_ids"], json!(["refunds-need-approval"]));
    assert_eq!(m["decided_by"], Value::Null);
    assert_eq!(m["approval_deadline"], at(now + APPROVAL_TIMEOUT));
    let e = env.event_for("mandate.requested", &id).await;
    assert_eq!(e["user"], "carol");
    assert_eq!(e["details"]["status"], "pending_approval");
    assert_eq!(e["details"]["reasons"], json!(["approval_required"]));

    // The user it acts for may read it; the approver sees it in the queue.
    env.show_mandate(&carol, &id).await.expect(200);
    let r = env.bearer(&dave, Method::GET, "/v1/approvals", None).await;
    r.expect(200);
    let items = r.json()["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["mandate"]["id"], id.as_str());
    assert_eq!(items[0]["mandate"]["justification"], "double charge");
    assert_eq!(items[0]["agent"]["id"], bot.id.as_str());
    assert_eq!(items[0]["agent"]["name"], "billing-bot");
    assert_eq!(items[0]["agent"]["owner"], OWNER);

    // Neither the agent nor a plain user may decide or see the queue.
    for who in [&token, &carol] {
        problem(
            &env.approval(who, &id, "approve", None).await,
            403,
            "not_an_approver",
        );
        problem(
            &env.bearer(who, Method::GET, "/v1/approvals", None).await,
            403,
            "not_an_approver",
        );
    }

    env.advance(10);
    let r = env
        .approval(
            &dave,
            &id,
            "approve",
            Some(json!({"comment": "checked the invoice"})),
        )
        .await;
    r.expect(200);
    let a = r.json();
    assert_eq!(a["status"], "active");
    assert_eq!(a["decided_by"], "user:dave");
    assert_eq!(a["decision_comment"], "checked the invoice");
    assert_eq!(a["activated_at"], at(now + 10));
    assert_eq!(a["expires_at"], at(now + 130));
    let e = env.event_for("mandate.approved", &id).await;
    assert_eq!(e["actor"], "user:dave");
    assert_eq!(e["user"], "carol");
    assert_eq!(e["agent"], bot.id.as_str());
    assert_eq!(e["details"]["comment"], "checked the invoice");
    assert_eq!(e["details"]["status"], "active");

    // Deciding twice is a conflict, and the queue is empty.
    problem(
        &env.approval(&dave, &id, "approve", None).await,
        409,
        "not_pending",
    );
    problem(
        &env.approval(&dave, &id, "deny", None).await,
        409,
        "not_pending",
    );
    let r = env.bearer(&dave, Method::GET, "/v1/approvals", None).await;
    assert_eq!(r.json()["items"], json!([]));
    assert_eq!(env.events("mandate.approved").await.len(), 1);
}

#[tokio::test]
async fn an_approver_token_denies_with_a_comment() {
    let env = env();
    env.activate(POLICIES, &[]).await;
    let (_, token) = env.agent("billing-bot").await;
    let approver = env.admin_token("approver").await;
    let auditor = env.admin_token("auditor").await;
    let m = env
        .mandate(&token, json!({"intent": "refund", "scope": refund_scope()}))
        .await;
    let id = id_of(&m);
    // An auditor reads but does not approve.
    env.show_mandate(&auditor, &id).await.expect(200);
    problem(
        &env.approval(&auditor, &id, "deny", None).await,
        403,
        "not_an_approver",
    );
    let r = env
        .approval(
            &approver,
            &id,
            "deny",
            Some(json!({"comment": "not this month"})),
        )
        .await;
    r.expect(200);
    let d = r.json();
    assert_eq!(d["status"], "denied");
    assert_eq!(d["decision_comment"], "not this month");
    let by = d["decided_by"].as_str().expect("decided_by");
    assert!(by.starts_with("adm_"), "{by}");
    let e = env.event_for("mandate.denied", &id).await;
    assert_eq!(e["actor"], by);
    assert_eq!(e["details"]["comment"], "not this month");
    assert_eq!(e["details"]["status"], "denied");
    problem(
        &env.approval(&approver, &id, "approve", None).await,
        409,
        "not_pending",
    );
    assert_eq!(
        env.show_mandate(&token, &id).await.json()["status"],
        "denied"
    );
}

#[tokio::test]
async fn nobody_approves_for_themselves() {
    let env = env();
    env.activate(POLICIES, &[]).await;
    let (_, token) = env.agent("billing-bot").await;
    // Erin is an approver, and the mandate acts for her.
    let erin = env.user_token("erin", None, &[APPROVERS]).await;
    // Alice is an approver, and owns the agent.
    let alice = env.user_token("alice", Some(OWNER), &[APPROVERS]).await;
    let m = env
        .mandate(
            &token,
            json!({"intent": "refund", "scope": refund_scope(), "user_token": erin}),
        )
        .await;
    let id = id_of(&m);
    env.refused_as_self(&token, &id, &[&erin, &alice]).await;
    assert!(env.events("mandate.approved").await.is_empty());
    assert!(env.events("mandate.denied").await.is_empty());
}

/// Issue 18 finding 4: the same person with another letter case in their e-mail is
/// still the same person (the owner `alice@example.com` as `Alice@EXAMPLE.com`; the
/// mandate's user `erin@example.com` as `ERIN@example.com` under another subject).
#[tokio::test]
async fn finding_4_self_approval_compares_emails_in_canonical_form() {
    let env = env();
    env.activate(POLICIES, &[]).await;
    let (_, token) = env.agent("billing-bot").await;
    let erin = env
        .user_token("erin", Some("erin@example.com"), &[APPROVERS])
        .await;
    let erin_again = env
        .user_token("erin-other-idp", Some("ERIN@example.com"), &[APPROVERS])
        .await;
    let alice = env
        .user_token("alice-sso", Some("Alice@EXAMPLE.com"), &[APPROVERS])
        .await;
    // Adversarial pass: an IdP whose user claim is the address and that sends no
    // `email` claim — the subject is the address.
    let alice_upn = env
        .user_token("Alice@Example.com", None, &[APPROVERS])
        .await;
    let erin_upn = env
        .user_token("ERIN@example.com.", None, &[APPROVERS])
        .await;
    let m = env
        .mandate(
            &token,
            json!({"intent": "refund", "scope": refund_scope(), "user_token": erin}),
        )
        .await;
    let id = id_of(&m);
    env.refused_as_self(&token, &id, &[&erin_again, &alice, &alice_upn, &erin_upn])
        .await;
    // Someone else approves.
    let bob = env
        .user_token("bob", Some("bob@example.com"), &[APPROVERS])
        .await;
    env.approval(&bob, &id, "approve", None).await.expect(200);
}

#[tokio::test]
async fn requests_time_out_and_mandates_expire() {
    let env = env();
    env.activate(POLICIES, &[]).await;
    let (_, token) = env.agent("billing-bot").await;
    let approver = env.admin_token("approver").await;
    let pending = id_of(
        &env.mandate(&token, json!({"intent": "refund", "scope": refund_scope()}))
            .await,
    );
    let active = id_of(
        &env.mandate(
            &token,
            json!({"intent": "read", "scope": read_scope(), "lifetime_secs": 60}),
        )
        .await,
    );
    let start = env.now();

    env.advance(APPROVAL_TIMEOUT);
    // Lapsed states show before the sweeper writes them, and cannot be decided.
    assert_eq!(
        env.show_mandate(&env.admin, &pending).await.json()["status"],
        "denied"
    );
    assert_eq!(
        env.show_mandate(&env.admin, &active).await.json()["status"],
        "expired"
    );
    problem(
        &env.approval(&approver, &pending, "approve", None).await,
        409,
        "approval_expired",
    );
    let r = env
        .bearer(&approver, Method::GET, "/v1/approvals", None)
        .await;
    assert_eq!(r.json()["items"], json!([]));

    assert_eq!(mandate_http::sweep(&env.state).await.expect("sweep"), 2);
    assert_eq!(mandate_http::sweep(&env.state).await.expect("sweep"), 0);
    let p = env.show_mandate(&env.admin, &pending).await.json();
    assert_eq!(p["status"], "denied");
    assert_eq!(p["decided_by"], "timeout");
    assert_eq!(p["decided_at"], at(start + APPROVAL_TIMEOUT));
    let a = env.show_mandate(&env.admin, &active).await.json();
    assert_eq!(a["status"], "expired");
    assert_eq!(a["ended_by"], "expiry");
    assert_eq!(a["ended_at"], at(start + 60));
    // The stored status is now what the filter sees.
    let r = env
        .admin(Method::GET, "/v1/mandates?status=expired", None)
        .await;
    assert_eq!(r.json()["items"][0]["id"], active.as_str());

    problem(
        &env.approval(&approver, &pending, "approve", None).await,
        409,
        "approval_expired",
    );
    let e = env.event_for("mandate.approval_timed_out", &pending).await;
    assert_eq!(e["actor"], "timeout");
    assert_eq!(e["details"]["status"], "denied");
    let e = env.event_for("mandate.expired", &active).await;
    assert_eq!(e["actor"], "expiry");
    assert_eq!(e["details"]["status"], "expired");
}

#[tokio::test]
async fn a_scope_outside_the_boundary_is_refused_and_not_stored() {
    let env = env();
    env.activate(POLICIES, &[]).await;
    let (bot, token) = env.agent("crm-bot").await;
    let scope = json!([{"actions": ["payments:send"], "resources": ["*"]}]);
    let r = env
        .request_mandate(&token, json!({"intent": "pay", "scope": scope}))
        .await;
    problem(&r, 403, "outside_boundary");
    // Wider resources than the boundary's are outside too.
    let narrow = env
        .client_with(
            "narrow-bot",
            json!({"grants": [{"actions": ["crm:read"], "resources": ["Crm::Contact/*"]}]}),
        )
        .await;
    let narrow_token = env.token(&narrow).await;
    let wide = json!([{"actions": ["crm:read"], "resources": ["*"]}]);
    let r = env
        .request_mandate(&narrow_token, json!({"intent": "read all", "scope": wide}))
        .await;
    problem(&r, 403, "outside_boundary");

    assert!(env.all_mandates().await.is_empty());
    let refused = env.events("mandate.refused").await;
    assert_eq!(refused.len(), 2);
    assert_eq!(refused[0]["agent"], bot.id.as_str());
    assert_eq!(
        refused[0]["details"]["reasons"],
        json!([
            "outside_boundary",
            "action: scope[0] is not within the agent's boundary: no grant names all its actions"
        ])
    );
    assert_eq!(
        refused[1]["details"]["reasons"][1],
        "resource: scope[0] is not within the agent's boundary: no grant naming its actions \
         covers all its resources"
    );
    assert!(env.events("mandate.requested").await.is_empty());
}

#[tokio::test]
async fn agents_and_users_see_only_their_own() {
    let env = env();
    env.activate(POLICIES, &[]).await;
    let (a, a_token) = env.agent("bot-a").await;
    let (b, b_token) = env.agent("bot-b").await;
    let carol = env.user_token("carol", None, &[]).await;
    let mallory = env.user_token("mallory", None, &[]).await;
    let approver = env.user_token("dave", None, &[APPROVERS]).await;
    let m = env
        .mandate(
            &a_token,
            json!({"intent": "read", "scope": read_scope(), "user_token": carol}),
        )
        .await;
    let id = id_of(&m);
    env.mandate(&b_token, json!({"intent": "read", "scope": read_scope()}))
        .await;

    // Another agent and an unrelated user do not learn it exists.
    problem(&env.show_mandate(&b_token, &id).await, 404, "not_found");
    problem(&env.show_mandate(&mallory, &id).await, 404, "not_found");
    for who in [&a_token, &carol, &approver] {
        env.show_mandate(who, &id).await.expect(200);
    }

    assert_eq!(env.agents_listed(&a_token, "").await, vec![a.id.clone()]);
    assert_eq!(env.agents_listed(&b_token, "").await, vec![b.id.clone()]);
    // Naming another agent finds nothing rather than widening.
    let other = format!("?agent={}", a.id);
    assert!(env.agents_listed(&b_token, &other).await.is_empty());
    assert_eq!(env.agents_listed(&carol, "").await, vec![a.id.clone()]);
    assert!(env.agents_listed(&mallory, "").await.is_empty());
    assert!(env.agents_listed(&mallory, "?user=carol").await.is_empty());
    assert_eq!(env.agents_listed(&approver, "").await.len(), 2);
    assert_eq!(env.agents_listed(&env.admin, "").await.len(), 2);
    assert_eq!(
        env.agents_listed(&env.admin, &other).await,
        vec![a.id.clone()]
    );
    assert_eq!(
        env.agents_listed(&env.admin, "?user=carol").await,
        vec![a.id.clone()]
    );
    assert_eq!(
        env.agents_listed(&env.admin, "?status=active").await.len(),
        2
    );
    assert!(
        env.agents_listed(&env.admin, "?status=revoked")
            .await
            .is_empty()
    );

    // Paging: a full page carries the cursor, and the next page holds the rest.
    let r = env.admin(Method::GET, "/v1/mandates?limit=1", None).await;
    let page = r.json();
    assert_eq!(page["items"].as_array().expect("items").len(), 1);
    let cursor = page["next_cursor"].as_str().expect("next_cursor");
    let r = env
        .admin(
            Method::GET,
            &format!("/v1/mandates?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    let mut seen = vec![
        page["items"][0]["agent"].clone(),
        r.json()["items"][0]["agent"].clone(),
    ];
    seen.sort_by_key(ToString::to_string);
    let mut want = vec![json!(a.id), json!(b.id)];
    want.sort_by_key(ToString::to_string);
    assert_eq!(seen, want);
}

#[tokio::test]
async fn the_agent_completes_its_mandate() {
    let env = env();
    env.activate(POLICIES, &[]).await;
    let (bot, token) = env.agent("crm-bot").await;
    let (_, other) = env.agent("other-bot").await;
    let id = id_of(
        &env.mandate(&token, json!({"intent": "read", "scope": read_scope()}))
            .await,
    );
    let path = format!("/v1/mandates/{id}/complete");
    // Others: the admin may see it (403), another agent may not (404).
    problem(
        &env.admin(Method::POST, &path, None).await,
        403,
        "forbidden",
    );
    problem(
        &env.bearer(&other, Method::POST, &path, None).await,
        404,
        "not_found",
    );
    env.advance(5);
    let r = env.bearer(&token, Method::POST, &path, None).await;
    r.expect(200);
    let c = r.json();
    assert_eq!(c["status"], "completed");
    assert_eq!(c["ended_by"], bot.id.as_str());
    problem(
        &env.bearer(&token, Method::POST, &path, None).await,
        409,
        "mandate_not_active",
    );
    let e = env.event_for("mandate.completed", &id).await;
    assert_eq!(e["actor"], bot.id.as_str());
    assert_eq!(e["details"]["status"], "completed");
}

#[tokio::test]
async fn admins_and_owners_revoke() {
    let env = env();
    env.activate(POLICIES, &[]).await;
    let (_, token) = env.agent("crm-bot").await;
    let auditor = env.admin_token("auditor").await;
    let owner = env.user_token("alice", Some(OWNER), &[]).await;
    let stranger = env.user_token("mallory", None, &[]).await;
    let first = id_of(
        &env.mandate(&token, json!({"intent": "read", "scope": read_scope()}))
            .await,
    );
    let second = id_of(
        &env.mandate(&token, json!({"intent": "refund", "scope": refund_scope()}))
            .await,
    );
    let revoke = |id: &str| format!("/v1/mandates/{id}/revoke");

    problem(
        &env.bearer(&auditor, Method::POST, &revoke(&first), None)
            .await,
        403,
        "forbidden",
    );
    problem(
        &env.bearer(&token, Method::POST, &revoke(&first), None)
            .await,
        403,
        "forbidden",
    );
    problem(
        &env.bearer(&stranger, Method::POST, &revoke(&first), None)
            .await,
        404,
        "not_found",
    );
    let r = env
        .admin(
            Method::POST,
            &revoke(&first),
            Some(json!({"reason": "task cancelled"})),
        )
        .await;
    r.expect(200);
    let v = r.json();
    assert_eq!(v["status"], "revoked");
    assert!(
        v["ended_by"]
            .as_str()
            .expect("ended_by")
            .starts_with("adm_")
    );
    problem(
        &env.admin(Method::POST, &revoke(&first), None).await,
        409,
        "mandate_not_active",
    );
    let e = env.event_for("mandate.revoked", &first).await;
    assert_eq!(e["details"]["reason"], "task cancelled");
    assert_eq!(e["details"]["previous_status"], "active");

    // The owner revokes a pending one, with no body.
    let r = env
        .bearer(&owner, Method::POST, &revoke(&second), None)
        .await;
    r.expect(200);
    assert_eq!(r.json()["status"], "revoked");
    assert_eq!(r.json()["ended_by"], "user:alice");
    let e = env.event_for("mandate.revoked", &second).await;
    assert_eq!(e["actor"], "user:alice");
    assert_eq!(e["details"]["previous_status"], "pending_approval");
}

#[tokio::test]
async fn the_long_poll_wakes_when_the_request_is_decided() {
    let env = env();
    env.activate(POLICIES, &[]).await;
    let (_, token) = env.agent("billing-bot").await;
    let approver = env.admin_token("approver").await;
    let id = id_of(
        &env.mandate(&token, json!({"intent": "refund", "scope": refund_scope()}))
            .await,
    );

    // `wait` runs out while nobody decides: still pending.
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        env.bearer(
            &token,
            Method::GET,
            &format!("/v1/mandates/{id}?wait=1"),
            None,
        ),
    )
    .await
    .expect("a one-second wait ends");
    r.expect(200);
    assert_eq!(r.json()["status"], "pending_approval");

    let app = env.app.clone();
    let approve = {
        let id = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let req = axum::http::Request::post(format!("/v1/approvals/{id}/approve"))
                .header("authorization", format!("Bearer {approver}"))
                .body(axum::body::Body::empty())
                .expect("request");
            tower::ServiceExt::oneshot(app, req)
                .await
                .expect("router")
                .status()
        })
    };
    // Far shorter than `wait`: only the approval can end it in time.
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        env.bearer(
            &token,
            Method::GET,
            &format!("/v1/mandates/{id}?wait=30"),
            None,
        ),
    )
    .await
    .expect("the long poll returns when the request is approved");
    r.expect(200);
    assert_eq!(r.json()["status"], "active");
    assert_eq!(approve.await.expect("approve task").as_u16(), 200);
}

#[tokio::test]
async fn bad_input_changes_nothing() {
    let env = env();
    env.activate(POLICIES, &[]).await;
    let (_, token) = env.agent("crm-bot").await;
    let cases = [
        (
            json!({"intent": "x", "scope": read_scope(), "extra": 1}),
            "unknown_field",
        ),
        (json!({"scope": read_scope()}), "missing_field"),
        (
            json!({"intent": "  ", "scope": read_scope()}),
            "invalid_field",
        ),
        (
            json!({"intent": "x\u{7}", "scope": read_scope()}),
            "invalid_field",
        ),
        (json!({"intent": "x", "scope": []}), "invalid_field"),
        (
            json!({"intent": "x", "scope": read_scope(), "lifetime_secs": 0}),
            "invalid_field",
        ),
        (
            json!({"intent": "x", "scope": read_scope(),
                "lifetime_secs": MAX_MANDATE_LIFETIME + 1}),
            "invalid_field",
        ),
        (
            json!({"intent": "x", "scope": read_scope(), "user_token": "not.a.token"}),
            "invalid_user_token",
        ),
        (
            json!({"intent": "x", "scope": read_scope(), "user_token": token}),
            "invalid_user_token",
        ),
    ];
    for (body, code) in cases {
        let r = env.request_mandate(&token, body.clone()).await;
        problem(&r, 400, code);
        // The refusal never echoes a token.
        assert!(!String::from_utf8_lossy(&r.body).contains(&token), "{body}");
    }
    // Only agents ask for mandates.
    let user = env.user_token("carol", None, &[]).await;
    for who in [&env.admin, &user] {
        problem(
            &env.request_mandate(who, json!({"intent": "x", "scope": read_scope()}))
                .await,
            403,
            "agents_only",
        );
    }
    problem(
        &env.request_mandate("", json!({"intent": "x", "scope": read_scope()}))
            .await,
        401,
        "unauthenticated",
    );
    assert!(env.all_mandates().await.is_empty());
    assert!(env.events("mandate.requested").await.is_empty());

    // Reads and decisions refuse bad input too.
    let id = id_of(
        &env.mandate(&token, json!({"intent": "refund", "scope": refund_scope()}))
            .await,
    );
    for q in [
        "?wait=61",
        "?wait=-1",
        "?wait=x",
        "?other=1",
        "?wait=1&wait=2",
    ] {
        problem(
            &env.show_mandate(&token, &format!("{id}{q}")).await,
            400,
            "invalid_query",
        );
    }
    for q in [
        "?limit=0",
        "?limit=501",
        "?status=nope",
        "?agent=x",
        "?cursor=x",
    ] {
        problem(
            &env.admin(Method::GET, &format!("/v1/mandates{q}"), None)
                .await,
            400,
            "invalid_query",
        );
    }
    problem(
        &env.show_mandate(&token, "mdt_nope").await,
        404,
        "not_found",
    );
    let long = "x".repeat(2001);
    problem(
        &env.approval(&env.admin, &id, "approve", Some(json!({"comment": long})))
            .await,
        400,
        "invalid_field",
    );
    problem(
        &env.approval(&env.admin, &id, "approve", Some(json!({"note": "x"})))
            .await,
        400,
        "unknown_field",
    );
    let shown = env.show_mandate(&token, &id).await;
    assert_eq!(shown.json()["status"], "pending_approval");
    assert!(env.events("mandate.approved").await.is_empty());
}

#[tokio::test]
async fn dev_user_tokens() {
    // Disabled unless configured.
    let plain = Env::new();
    problem(
        &plain
            .admin(
                Method::POST,
                "/v1/dev/user-tokens",
                Some(json!({"sub": "carol"})),
            )
            .await,
        404,
        "dev_issuer_disabled",
    );

    let env = env();
    let auditor = env.admin_token("auditor").await;
    problem(
        &env.bearer(
            &auditor,
            Method::POST,
            "/v1/dev/user-tokens",
            Some(json!({"sub": "carol"})),
        )
        .await,
        403,
        "forbidden",
    );
    for (body, code) in [
        (json!({"sub": ""}), "invalid_field"),
        (
            json!({"sub": "c", "lifetime_secs": 86_401}),
            "invalid_field",
        ),
        (json!({"sub": "c", "lifetime_secs": 0}), "invalid_field"),
        (
            json!({"sub": "c", "groups": vec!["g"; 65]}),
            "invalid_field",
        ),
        (json!({"sub": "c", "admin": true}), "unknown_field"),
    ] {
        problem(
            &env.admin(Method::POST, "/v1/dev/user-tokens", Some(body))
                .await,
            400,
            code,
        );
    }
    let r = env
        .admin(
            Method::POST,
            "/v1/dev/user-tokens",
            Some(json!({"sub": "carol", "groups": ["finance"], "lifetime_secs": 60})),
        )
        .await;
    r.expect(201);
    let v = r.json();
    assert_eq!(v["issuer"], "http://mandate.test/dev-users");
    assert_eq!(v["expires_in"], 60);
    let token = v["token"].as_str().expect("token").to_owned();
    // It authenticates a user, until it expires.
    env.bearer(&token, Method::GET, "/v1/mandates", None)
        .await
        .expect(200);
    env.advance(60);
    problem(
        &env.bearer(&token, Method::GET, "/v1/mandates", None).await,
        401,
        "unauthenticated",
    );
    let events = env.events("dev.user_token_issued").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["details"]["sub"], "carol");
    assert_eq!(events[0]["details"]["groups"], json!(["finance"]));
    assert!(!events[0].to_string().contains(&token));
}

#[tokio::test]
async fn a_held_request_is_announced_to_the_webhook() {
    let (url, mut rx) = super::webhook_receiver().await;

    let secret = b"webhook-secret".to_vec();
    let env = env_with(|c| {
        c.mandates.webhook = Some(WebhookConfig {
            url,
            secret: secret.clone(),
            tls: mandate_tls::Settings::default(),
        });
    });
    env.activate(POLICIES, &[]).await;
    let (bot, token) = env.agent("billing-bot").await;
    let id = id_of(
        &env.mandate(&token, json!({"intent": "refund", "scope": refund_scope()}))
            .await,
    );
    let (sig, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the webhook is called")
        .expect("a delivery");
    let v: Value = serde_json::from_slice(&body).expect("JSON body");
    assert_eq!(v["type"], "mandate.pending_approval");
    assert_eq!(v["mandate"]["id"], id.as_str());
    assert_eq!(v["mandate"]["status"], "pending_approval");
    assert_eq!(v["agent"]["id"], bot.id.as_str());
    assert_eq!(v["agent"]["name"], "billing-bot");
    assert_eq!(v["agent"]["owner"], OWNER);
    let t: i64 = sig
        .strip_prefix("t=")
        .and_then(|r| r.split(',').next())
        .and_then(|t| t.parse().ok())
        .expect("t= in the signature");
    assert_eq!(t, env.now());
    assert_eq!(sig, signature(&secret, t, &body));
}

#[tokio::test]
async fn a_mandate_token_cannot_ask_for_a_mandate_but_completes_its_own() {
    let env = env();
    env.activate(POLICIES, &[]).await;
    let (bot, token) = env.agent("crm-bot").await;
    let id = id_of(
        &env.mandate(&token, json!({"intent": "read", "scope": read_scope()}))
            .await,
    );
    // RFC 8693 exchange of the agent's own token for one bound to the mandate.
    let r = env
        .form(
            "/oauth/token",
            Some((&bot.id, &bot.secret)),
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", &token),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
                ("mandate", &id),
            ],
        )
        .await;
    r.expect(200);
    let bound = r.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    problem(
        &env.request_mandate(&bound, json!({"intent": "more", "scope": read_scope()}))
            .await,
        403,
        "mandate_token_forbidden",
    );
    env.show_mandate(&bound, &id).await.expect(200);
    let r = env
        .bearer(
            &bound,
            Method::POST,
            &format!("/v1/mandates/{id}/complete"),
            None,
        )
        .await;
    r.expect(200);
    assert_eq!(r.json()["status"], "completed");
    assert_eq!(env.all_mandates().await.len(), 1);
}

/// Finding (review of the service move, true before it too): completing a mandate that
/// does not exist answered 404 "unknown mandate", one that exists but the caller may
/// not see 404 "unknown mandate `mdt_…`": the message told an agent the other mandate
/// exists. Both answers are now the same but for the id the caller sent.
#[tokio::test]
async fn completing_a_hidden_mandate_answers_as_a_missing_one() {
    let env = env();
    env.activate(POLICIES, &[]).await;
    let (_, token) = env.agent("crm-bot").await;
    let (_, other) = env.agent("other-bot").await;
    let hidden = id_of(
        &env.mandate(&token, json!({"intent": "read", "scope": read_scope()}))
            .await,
    );
    let missing = "mdt_01JA0000000000000000000000";
    let detail = |id: &str| {
        let env = &env;
        let other = other.clone();
        let id = id.to_owned();
        async move {
            let r = env
                .bearer(
                    &other,
                    Method::POST,
                    &format!("/v1/mandates/{id}/complete"),
                    None,
                )
                .await;
            assert_eq!(r.status, axum::http::StatusCode::NOT_FOUND, "{}", r.json());
            r.json()["detail"]
                .as_str()
                .expect("detail")
                .replace(id.as_str(), "<id>")
        }
    };
    assert_eq!(detail(&hidden).await, detail(missing).await);
}
