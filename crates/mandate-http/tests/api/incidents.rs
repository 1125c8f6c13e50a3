//! The kill switch's incident levers through the router: `contain` suspends the agent,
//! ends its mandates and kills its own, its mandate and its delegated tokens for the very
//! next decision, and answers with an incident bundle that verifies offline (and fails
//! once tampered with); a resume afterwards is explicit and recorded, and old tokens stay
//! dead; bad input and unknown agents change nothing; only write-role admin tokens may
//! call it. Revoking one token by its `jti` likewise.

use axum::http::{Method, header};
use mandate_audit::bundle::{BundleError, verify_bundle};
use serde_json::{Value, json};

use super::{Client, Env, Reply, jwt_parts};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

pub(crate) const SCHEMA: &str = r#"namespace Crm {
  entity Contact;
}
namespace Mandate {
  action "crm:read" in ["all"] appliesTo { principal: [Agent], resource: [Crm::Contact] };
}
"#;

/// Any mandate is granted at once; reading contacts is allowed.
pub(crate) const POLICIES: &str = r#"
@id("mandates-allowed")
permit (principal, action == Mandate::Action::"mandate:request", resource);

@id("reads")
permit (principal, action == Mandate::Action::"crm:read", resource);
"#;

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

fn read_scope() -> Value {
    json!([{"actions": ["crm:read"], "resources": ["Crm::Contact/*"]}])
}

/// Agent A (who may delegate to B), agent B, an unrelated agent C, their tokens, A's
/// mandate, A's mandate token and B's token delegated from it.
struct World {
    a: Client,
    b: Client,
    a_token: String,
    b_token: String,
    c_token: String,
    mandate: String,
    a_mandate: String,
    b_delegated: String,
}

impl Env {
    /// A token exchange; returns the issued access token.
    async fn exchange(&self, basic: Option<(&str, &str)>, pairs: &[(&str, &str)]) -> String {
        let mut form = vec![("grant_type", TOKEN_EXCHANGE)];
        form.extend_from_slice(pairs);
        let r = self.form("/oauth/token", basic, &form).await;
        r.expect(200);
        r.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    async fn world(&self) -> World {
        self.activate(POLICIES, &[SCHEMA]).await;
        let reads = json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}]});
        let b = self.client_with("reader-b", reads.clone()).await;
        let c = self.client_with("bystander-c", reads).await;
        let a = self
            .client_with(
                "billing-a",
                json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}],
                       "delegates": [b.id]}),
            )
            .await;
        let (a_token, b_token, c_token) = (
            self.token(&a).await,
            self.token(&b).await,
            self.token(&c).await,
        );
        let r = self
            .bearer(
                &a_token,
                Method::POST,
                "/v1/mandates",
                Some(json!({"intent": "read contacts", "scope": read_scope()})),
            )
            .await;
        r.expect(201);
        assert_eq!(r.json()["status"], "active");
        let mandate = r.json()["id"].as_str().expect("id").to_owned();
        let a_mandate = self
            .exchange(
                Some((&a.id, &a.secret)),
                &[
                    ("subject_token", &a_token),
                    ("subject_token_type", ACCESS_TOKEN),
                    ("mandate", &mandate),
                ],
            )
            .await;
        let b_delegated = self
            .exchange(
                Some((&b.id, &b.secret)),
                &[
                    ("subject_token", &a_mandate),
                    ("subject_token_type", ACCESS_TOKEN),
                    ("actor_token", &b_token),
                    ("actor_token_type", ACCESS_TOKEN),
                ],
            )
            .await;
        World {
            a,
            b,
            a_token,
            b_token,
            c_token,
            mandate,
            a_mandate,
            b_delegated,
        }
    }

    /// `(decision, first reason)` of reading a contact with `token`.
    async fn contain(&self, agent: &str, body: Option<Value>) -> Reply {
        self.admin(Method::POST, &format!("/v1/agents/{agent}/contain"), body)
            .await
    }

    /// Every audit event of `kind`, oldest first.
    async fn events_of(&self, kind: &str) -> Vec<Value> {
        let r = self
            .admin(Method::GET, &format!("/v1/audit/events?kind={kind}"), None)
            .await;
        r.expect(200);
        r.json()["items"].as_array().expect("items").clone()
    }

    async fn agent_json(&self, id: &str) -> Value {
        let r = self
            .admin(Method::GET, &format!("/v1/agents/{id}"), None)
            .await;
        r.expect(200);
        r.json()
    }

    async fn mandate_status(&self, id: &str) -> Value {
        let r = self
            .admin(Method::GET, &format!("/v1/mandates/{id}"), None)
            .await;
        r.expect(200);
        r.json()["status"].clone()
    }
}

fn allowed() -> (String, String) {
    ("allow".into(), "allowed_by_policy".into())
}

#[tokio::test]
async fn contain_cuts_every_token_ends_mandates_and_hands_back_a_verifying_bundle() {
    let env = Env::new();
    let w = env.world().await;
    for t in [
        &w.a_token,
        &w.a_mandate,
        &w.b_delegated,
        &w.b_token,
        &w.c_token,
    ] {
        assert_eq!(env.read_contact(t).await, allowed());
    }
    assert_eq!(
        jwt_parts(&w.b_delegated).1["act"],
        json!({"sub": w.b.id, "act": {"sub": w.a.id}})
    );

    // No time passes: the very next request after the answer is refused.
    let r = env
        .contain(
            &w.a.id,
            Some(json!({"reason": "exfiltration suspected", "events": 50})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.header(header::CONTENT_TYPE), Some("application/json"));
    for t in [&w.a_token, &w.a_mandate, &w.b_delegated] {
        assert_eq!(env.read_contact(t).await.0, "deny", "{}", jwt_parts(t).1);
        assert_eq!(env.introspect(t).await["active"], false);
    }
    assert_eq!(env.read_contact(&w.a_token).await.1, "token_revoked");
    assert_eq!(env.read_contact(&w.b_delegated).await.1, "token_revoked");
    // B itself and the bystander are not contained.
    assert_eq!(env.read_contact(&w.b_token).await, allowed());
    assert_eq!(env.read_contact(&w.c_token).await, allowed());
    // A cannot get a new token or use its mandate while suspended.
    let t = env.token_request(&w.a, &[]).await;
    t.expect_oauth_error(401, "invalid_client");

    let agent = env.agent_json(&w.a.id).await;
    assert_eq!(agent["status"], "suspended");
    assert_eq!(agent["status_reason"], "exfiltration suspected");
    assert_eq!(env.mandate_status(&w.mandate).await, "revoked");

    // The bundle verifies with the node's key, and names what happened.
    let key = env.state.audit.public_key();
    let report = verify_bundle(&r.body, &key).expect("the bundle verifies");
    let bundle = r.json();
    assert_eq!(report.agent.as_str(), w.a.id);
    assert!(report.incident.as_str().starts_with("inc_"));
    assert_eq!(bundle["incident"], report.incident.as_str());
    assert_eq!(bundle["bundle"], "mandate-incident/v1");
    assert_eq!(bundle["node"], env.state.audit.node().as_str());
    let evidence = &bundle["evidence"];
    assert_eq!(evidence["agent"]["id"], w.a.id.as_str());
    assert_eq!(evidence["agent"]["status"], "suspended");
    assert_eq!(evidence["previous_status"], "active");
    assert_eq!(evidence["reason"], "exfiltration suspected");
    assert_eq!(evidence["mandates"][0]["id"], w.mandate.as_str());
    assert_eq!(evidence["mandates"][0]["status"], "revoked");
    assert_eq!(evidence["policies"]["version"], 1);
    assert!(
        evidence["policies"]["policies"]
            .as_str()
            .expect("policy text")
            .contains("mandates-allowed")
    );
    assert_eq!(evidence["policies"]["schema_fragments"], json!([SCHEMA]));
    let kinds: Vec<&str> = bundle["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event"]["kind"].as_str().expect("kind"))
        .collect();
    for kind in [
        "agent.registered",
        "token.issued",
        "mandate.requested",
        "decision",
        "mandate.revoked",
        "incident.contained",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert_eq!(kinds.last(), Some(&"incident.contained"));
    // Only A's events: B's delegated-token decisions are B's.
    assert!(
        bundle["events"]
            .as_array()
            .expect("events")
            .iter()
            .all(|e| e["event"]["agent"] == w.a.id.as_str())
    );

    // On the record, with the evidence's hash.
    let contained = env.events_of("incident.contained").await;
    assert_eq!(contained.len(), 1);
    let d = &contained[0]["details"];
    assert_eq!(d["incident"], report.incident.as_str());
    assert_eq!(d["evidence_sha256"], report.evidence_sha256.as_str());
    assert_eq!(d["mandates_revoked"], json!([w.mandate]));
    assert_eq!(d["previous_status"], "active");
    assert_eq!(d["status"], "suspended");
    assert_eq!(d["events"], 50);
    assert!(
        contained[0]["actor"]
            .as_str()
            .expect("actor")
            .starts_with("adm_")
    );
    let revoked = env.events_of("mandate.revoked").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["details"]["incident"], report.incident.as_str());
    assert_eq!(revoked[0]["details"]["previous_status"], "active");
    // Sealed: the latest checkpoint covers the containment.
    let cp = env
        .admin(Method::GET, "/v1/audit/checkpoints/latest", None)
        .await;
    assert!(cp.json()["size"].as_u64().expect("size") > report.contained_seq);

    // Tampering with one byte of it, anywhere, fails.
    for i in [10, r.body.len() / 3, r.body.len() / 2, r.body.len() - 3] {
        let mut b = r.body.to_vec();
        b[i] ^= 0x01;
        assert!(verify_bundle(&b, &key).is_err(), "byte {i}");
    }
    let mut v = bundle.clone();
    v["evidence"]["agent"]["owner"] = json!("someone-else@example.com");
    assert!(matches!(
        verify_bundle(&mandate_audit::canonical::canonical_json(&v), &key),
        Err(BundleError::Evidence { .. })
    ));
}

#[tokio::test]
async fn resume_is_explicit_and_recorded_and_old_tokens_stay_dead() {
    let env = Env::new();
    let w = env.world().await;
    env.contain(&w.a.id, None).await.expect(200);
    // Containing an agent that is already suspended just moves the cutoff.
    env.advance(1);
    let r = env.contain(&w.a.id, Some(json!({"events": 1}))).await;
    r.expect(200);
    let report = verify_bundle(&r.body, &env.state.audit.public_key()).expect("verifies");
    assert_eq!(report.events, 1, "only the containment event was asked for");
    let bundle = r.json();
    assert_eq!(bundle["evidence"]["previous_status"], "suspended");
    assert_eq!(bundle["evidence"]["mandates"], json!([]));
    assert_eq!(bundle["evidence"]["reason"], Value::Null);
    assert_eq!(env.events_of("incident.contained").await.len(), 2);
    let agent = env.agent_json(&w.a.id).await;
    assert_eq!(agent["status"], "suspended");
    assert!(
        agent["status_reason"]
            .as_str()
            .expect("reason")
            .starts_with("contained (inc_")
    );

    env.advance(1);
    let r = env
        .admin(
            Method::POST,
            &format!("/v1/agents/{}/resume", w.a.id),
            Some(json!({"reason": "investigated, false alarm"})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json()["status"], "active");
    let resumed = env.events_of("agent.resumed").await;
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0]["agent"], w.a.id.as_str());
    assert_eq!(resumed[0]["details"]["reason"], "investigated, false alarm");
    // Nothing from before comes back.
    for t in [&w.a_token, &w.a_mandate, &w.b_delegated] {
        assert_eq!(env.read_contact(t).await.0, "deny");
        assert_eq!(env.introspect(t).await["active"], false);
    }
    assert_eq!(env.mandate_status(&w.mandate).await, "revoked");
    // A fresh token works again.
    env.advance(1);
    let fresh = env.token(&w.a).await;
    assert_eq!(env.read_contact(&fresh).await, allowed());
}

#[tokio::test]
async fn a_decommissioned_agent_still_gets_a_bundle() {
    let env = Env::new();
    env.activate(POLICIES, &[SCHEMA]).await;
    let a = env.client("retired").await;
    let token = env.token(&a).await;
    env.admin(
        Method::POST,
        &format!("/v1/agents/{}/decommission", a.id),
        None,
    )
    .await
    .expect(200);
    let before = env.agent_json(&a.id).await;
    let r = env.contain(&a.id, Some(json!({"reason": "audit"}))).await;
    r.expect(200);
    verify_bundle(&r.body, &env.state.audit.public_key()).expect("verifies");
    assert_eq!(r.json()["evidence"]["previous_status"], "decommissioned");
    assert_eq!(
        env.agent_json(&a.id).await,
        before,
        "the record stays frozen"
    );
    assert_eq!(env.introspect(&token).await["active"], false);
}

#[tokio::test]
async fn bad_input_and_unknown_agents_change_nothing() {
    let env = Env::new();
    let w = env.world().await;
    let path = format!("/v1/agents/{}/contain", w.a.id);
    for (body, code) in [
        (r#"{"reason": "x", "extra": 1}"#.to_owned(), "unknown_field"),
        (r#"{"events": 0}"#.to_owned(), "invalid_field"),
        (r#"{"events": 10001}"#.to_owned(), "invalid_field"),
        (r#"{"events": -1}"#.to_owned(), "invalid_field"),
        (r#"{"events": "10"}"#.to_owned(), "invalid_field"),
        (r#"{"events": 1.5}"#.to_owned(), "invalid_field"),
        (
            format!(r#"{{"reason": "{}"}}"#, "x".repeat(501)),
            "invalid_field",
        ),
        (r#"{"reason": "bell\u0007"}"#.to_owned(), "invalid_field"),
        (r#"{"reason": 7}"#.to_owned(), "invalid_field"),
        (r#"["reason"]"#.to_owned(), "invalid_field"),
        (r#"{"reason": "#.to_owned(), "invalid_json"),
    ] {
        let req = axum::http::Request::post(&path)
            .header(header::AUTHORIZATION, format!("Bearer {}", env.admin))
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(body.clone()))
            .expect("request");
        problem(&env.send(req).await, 400, code);
    }
    let req = axum::http::Request::post(&path)
        .header(header::AUTHORIZATION, format!("Bearer {}", env.admin))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(axum::body::Body::from("contain"))
        .expect("request");
    problem(&env.send(req).await, 415, "unsupported_media_type");
    for unknown in ["agt_01J00000000000000000000000", "agt_nope", "nope"] {
        problem(&env.contain(unknown, None).await, 404, "not_found");
    }
    // Neither agents nor read-only or service tokens may contain.
    for bearer in [
        w.a_token.clone(),
        w.a_mandate.clone(),
        w.b_delegated.clone(),
    ] {
        problem(
            &env.bearer(&bearer, Method::POST, &path, None).await,
            403,
            "agent_token_forbidden",
        );
    }
    for role in ["auditor", "approver", "service"] {
        let t = env.admin_token(role).await;
        problem(
            &env.bearer(&t, Method::POST, &path, None).await,
            403,
            "forbidden",
        );
    }
    problem(
        &env.bearer("", Method::POST, &path, None).await,
        401,
        "unauthenticated",
    );

    // Nothing changed.
    assert_eq!(env.agent_json(&w.a.id).await["status"], "active");
    assert_eq!(env.mandate_status(&w.mandate).await, "active");
    for t in [&w.a_token, &w.a_mandate, &w.b_delegated] {
        assert_eq!(env.read_contact(t).await, allowed());
    }
    assert!(env.events_of("incident.contained").await.is_empty());
    assert!(env.events_of("mandate.revoked").await.is_empty());
}

#[tokio::test]
async fn one_token_is_revoked_by_its_id() {
    let env = Env::new();
    let w = env.world().await;
    let jti = jwt_parts(&w.a_mandate).1["jti"]
        .as_str()
        .expect("jti")
        .to_owned();
    let path = format!("/v1/tokens/{jti}/revoke");

    // Bad ids, roles and agents first: nothing changes.
    for bad in [
        "nope",
        "tok_",
        "tok_01J0000000000000000000000I",
        &"x".repeat(300),
    ] {
        problem(
            &env.admin(Method::POST, &format!("/v1/tokens/{bad}/revoke"), None)
                .await,
            400,
            "invalid_field",
        );
    }
    problem(
        &env.admin(Method::POST, &path, Some(json!({"why": "x"})))
            .await,
        400,
        "unknown_field",
    );
    problem(
        &env.bearer(&w.a_token, Method::POST, &path, None).await,
        403,
        "agent_token_forbidden",
    );
    let auditor = env.admin_token("auditor").await;
    problem(
        &env.bearer(&auditor, Method::POST, &path, None).await,
        403,
        "forbidden",
    );
    assert_eq!(env.read_contact(&w.a_mandate).await, allowed());
    assert!(env.events_of("token.revoked").await.is_empty());

    let r = env
        .admin(
            Method::POST,
            &path,
            Some(json!({"reason": "leaked in a log"})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json()["jti"], jti.as_str());
    assert_eq!(r.json()["revoked"], true);
    // The token and the one delegated from it die; A's own token does not.
    assert_eq!(env.read_contact(&w.a_mandate).await.1, "token_revoked");
    assert_eq!(env.read_contact(&w.b_delegated).await.1, "token_revoked");
    assert_eq!(env.read_contact(&w.a_token).await, allowed());
    let e = env.events_of("token.revoked").await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["details"]["token_id"], jti.as_str());
    assert_eq!(e[0]["details"]["reason"], "leaked in a log");
    assert!(e[0]["actor"].as_str().expect("actor").starts_with("adm_"));

    // An id no token has is recorded all the same.
    env.admin(
        Method::POST,
        "/v1/tokens/tok_01J00000000000000000000000/revoke",
        None,
    )
    .await
    .expect(200);
    assert_eq!(env.events_of("token.revoked").await.len(), 2);
}

/// Taking B off A's boundary `delegates` stops the token B was delegated while it was
/// listed, on the very next decision, as narrowing a chain agent's grants does: the
/// boundary holds for every link of the chain at every decision, not only at exchange.
/// (Found by attacking a live server: the delegated token kept its allow.)
#[tokio::test]
async fn a_delegate_taken_off_the_list_loses_its_delegated_token() {
    let env = Env::new();
    let w = env.world().await;
    assert_eq!(env.read_contact(&w.b_delegated).await, allowed());

    // The same grants, B no longer among A's delegates.
    let r = env
        .admin(
            Method::PATCH,
            &format!("/v1/agents/{}", w.a.id),
            Some(
                json!({"boundary": {"grants": [{"actions": ["crm:*"], "resources": ["*"]}],
                                      "delegates": []}}),
            ),
        )
        .await;
    r.expect(200);
    assert_eq!(
        env.read_contact(&w.b_delegated).await,
        ("deny".to_owned(), "outside_boundary".to_owned())
    );
    assert_eq!(env.introspect(&w.b_delegated).await["active"], false);
    // A's own tokens and B's own token are untouched.
    assert_eq!(env.read_contact(&w.a_mandate).await, allowed());
    assert_eq!(env.read_contact(&w.b_token).await, allowed());
    // Nor can B exchange A's mandate token again.
    let r = env
        .form(
            "/oauth/token",
            Some((&w.b.id, &w.b.secret)),
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", &w.a_mandate),
                ("subject_token_type", ACCESS_TOKEN),
            ],
        )
        .await;
    r.expect_oauth_error(400, "unauthorized_client");
}

/// A request body that arrives in the chunks the test sends, when it sends them.
struct Chunks(tokio::sync::mpsc::Receiver<axum::body::Bytes>);

impl http_body::Body for Chunks {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// Regression (issue 21 review, atk3): `POST /v1/authorize` took the decision snapshot
/// before it read the request body, and decided on that snapshot once the body was in.
/// A caller that sends its body slowly (up to the 30 s body deadline) was then decided
/// on a snapshot from before a suspension, revocation or containment made meanwhile, on
/// this node or any other: an allow for a killed agent, long after the kill switch's
/// bound and past `cluster.max_staleness` (`INVARIANT (fresh or refused)`). The
/// decision must read the snapshot of the moment it is made.
#[tokio::test]
async fn a_suspension_made_while_an_authorize_body_arrives_governs_the_decision() {
    use axum::body::{Body, Bytes};
    use axum::http::Request;
    use tower::ServiceExt as _;

    let env = Env::new();
    env.activate(POLICIES, &[SCHEMA]).await;
    let c = env
        .client_with(
            "slow-body",
            json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}]}),
        )
        .await;
    let token = env.token(&c).await;
    assert_eq!(env.read_contact(&token).await, allowed());
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let req = Request::post("/v1/authorize")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::new(Chunks(rx)))
        .expect("request");
    let app = env.app.clone();
    let pending = tokio::spawn(async move { app.oneshot(req).await });
    let body = serde_json::to_vec(
        &json!({"action": "crm:read", "resource": {"type": "Crm::Contact", "id": "c-1"}}),
    )
    .expect("json");
    let (head, tail) = body.split_at(5);
    tx.send(Bytes::copy_from_slice(head)).await.expect("sent");
    // The handler is waiting for the rest of the body now.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    env.admin(
        Method::POST,
        &format!("/v1/agents/{}/suspend", c.id),
        Some(json!({"reason": "compromised"})),
    )
    .await
    .expect(200);
    tx.send(Bytes::copy_from_slice(tail)).await.expect("sent");
    drop(tx);
    let res = pending.await.expect("joined").expect("infallible");
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    let v: Value = serde_json::from_slice(&bytes).expect("json answer");
    assert_eq!(
        v["decision"], "deny",
        "decided on the snapshot from before the suspension: {v}"
    );
}

/// The same for `POST /v1/mandates`: the agent was authenticated (from the snapshot)
/// before the body was read, and the mandate was granted on the agent as it was then. An
/// agent suspended while its request's body arrived was granted an active mandate, which
/// would outlive a containment made in that window (containment ends every mandate of the
/// agent, then this one is stored) and serve again after the agent is resumed.
#[tokio::test]
async fn a_suspension_made_while_a_mandate_request_body_arrives_refuses_the_mandate() {
    use axum::body::{Body, Bytes};
    use axum::http::Request;
    use tower::ServiceExt as _;

    let env = Env::new();
    env.activate(POLICIES, &[SCHEMA]).await;
    let c = env
        .client_with(
            "slow-mandate",
            json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}]}),
        )
        .await;
    let token = env.token(&c).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let req = Request::post("/v1/mandates")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::new(Chunks(rx)))
        .expect("request");
    let app = env.app.clone();
    let pending = tokio::spawn(async move { app.oneshot(req).await });
    let body = serde_json::to_vec(&json!({"intent": "read contacts", "scope": read_scope()}))
        .expect("json");
    let (head, tail) = body.split_at(5);
    tx.send(Bytes::copy_from_slice(head)).await.expect("sent");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    env.admin(
        Method::POST,
        &format!("/v1/agents/{}/suspend", c.id),
        Some(json!({"reason": "compromised"})),
    )
    .await
    .expect(200);
    tx.send(Bytes::copy_from_slice(tail)).await.expect("sent");
    drop(tx);
    let res = pending.await.expect("joined").expect("infallible");
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    let v: Value = serde_json::from_slice(&bytes).expect("json answer");
    assert!(
        status.is_client_error(),
        "a suspended agent was granted a mandate: {status} {v}"
    );
}
