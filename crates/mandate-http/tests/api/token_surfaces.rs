//! Issue 18's token findings, pinned at every surface that accepts an agent token
//! (`/v1/authorize` as the agent and through a service caller, `/v1/mandates`,
//! `/v1/approvals`, introspection, token exchange):
//!
//! - finding 2: a retired signing key verifies nothing once its publication ends, with
//!   no write in between (the snapshot's ring and the verified-token cache included),
//!   and no token living longer than `token.max_lifetime_secs` is accepted;
//! - finding 3: a token issued for another audience (a gateway route) is refused at
//!   Mandate's own endpoints, and a token exchange needs client authentication;
//! - finding 5: a JWS with a `crit` header is refused.
//!
//! Tokens are forged with the server's own key files, read from the data directory: what
//! someone who stole a key (current or retired) could sign.

use axum::http::Method;
use base64::Engine as _;
use mandate_token::access::{self, AccessClaims, Audience};
use mandate_token::keys::SigningKey;
use serde_json::{Value, json};

use super::incidents::{POLICIES, SCHEMA};
use super::{Client, Env, ISSUER, Reply, jwt_parts};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// A gateway route: a resource the agent may get tokens for, which is not Mandate.
const ROUTE: &str = "http://gateway.test/crm";

/// The current signing key (its private half lives sealed in the store; the node holds
/// it open in its ring).
fn current_key(env: &Env) -> SigningKey {
    let pem = env.state.keys.ring().current().to_pkcs8_pem().expect("pem");
    SigningKey::from_pkcs8_pem(&pem).expect("key")
}

/// A token for `agent` signed with `key`, living from `iat` to `exp`, for Mandate.
fn forge(key: &SigningKey, agent: &str, jti: &str, iat: i64, exp: i64) -> String {
    access::issue(
        key,
        &AccessClaims {
            iss: ISSUER.into(),
            sub: agent.into(),
            aud: Audience::One(ISSUER.into()),
            exp,
            iat,
            nbf: iat,
            jti: jti.into(),
            client_id: agent.into(),
            scope: None,
            act: None,
            mandate: None,
            parents: Vec::new(),
            cnf: None,
        },
    )
    .expect("sign")
}

impl Env {
    async fn token_world(&self) -> (Client, String) {
        self.activate(POLICIES, &[SCHEMA]).await;
        let c = self
            .client_with(
                "reader",
                json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}],
                       "audiences": ["http://gateway.test/*"]}),
            )
            .await;
        let service = self.admin_token("service").await;
        (c, service)
    }

    /// `/v1/authorize` with a bearer that does not verify: 401 `invalid_token`, before
    /// anything is decided or recorded of the request (batch too).
    async fn refused_as_agent(&self, token: &str) {
        let question = json!({"action": "crm:read",
                              "resource": {"type": "Crm::Contact", "id": "c-1"}});
        for (path, body) in [
            ("/v1/authorize", question.clone()),
            ("/v1/authorize/batch", json!({"requests": [question]})),
        ] {
            let r = self.bearer(token, Method::POST, path, Some(body)).await;
            r.expect(401);
            assert_eq!(r.json()["code"], "invalid_token", "{path}");
            // Answered before the body was read: the connection is not reusable
            // (RFC 9112 §9.6; adversarial pass after issue 18).
            assert_eq!(r.headers["connection"], "close", "{path}");
            assert_eq!(
                r.headers["www-authenticate"],
                "Bearer realm=\"mandate\", error=\"invalid_token\""
            );
        }
    }

    /// `/v1/authorize` by an enforcement point passing `token` (and maybe its audience).
    async fn decide_for_service(
        &self,
        service: &str,
        token: &str,
        audience: Option<&str>,
    ) -> (String, String) {
        let mut body = json!({"action": "crm:read", "token": token,
                              "resource": {"type": "Crm::Contact", "id": "c-1"}});
        if let Some(a) = audience {
            body["audience"] = json!(a);
        }
        let r = self
            .bearer(service, Method::POST, "/v1/authorize", Some(body))
            .await;
        r.expect(200);
        verdict(&r.json())
    }

    /// Every surface but `/v1/authorize`: asserts each refuses `token`.
    async fn refused_elsewhere(&self, c: &Client, token: &str) {
        let r = self
            .bearer(
                token,
                Method::POST,
                "/v1/mandates",
                Some(json!({"intent": "read", "scope": [{"actions": ["crm:read"], "resources": ["Crm::Contact/*"]}]})),
            )
            .await;
        unauthenticated(&r);
        unauthenticated(&self.bearer(token, Method::GET, "/v1/mandates", None).await);
        unauthenticated(&self.bearer(token, Method::GET, "/v1/approvals", None).await);
        assert_eq!(self.introspect(token).await, json!({"active": false}));
        let r = self
            .form(
                "/oauth/token",
                Some((&c.id, &c.secret)),
                &[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("subject_token", token),
                    ("subject_token_type", ACCESS_TOKEN),
                    ("actor_token", token),
                    ("actor_token_type", ACCESS_TOKEN),
                ],
            )
            .await;
        r.expect(400);
        assert_eq!(r.json()["error"], "invalid_request");
    }
}

fn verdict(v: &Value) -> (String, String) {
    (
        v["decision"].as_str().expect("decision").to_owned(),
        v["reasons"][0].as_str().unwrap_or_default().to_owned(),
    )
}

#[track_caller]
fn unauthenticated(r: &Reply) {
    r.expect(401);
    assert_eq!(r.json()["code"], "unauthenticated");
}

fn denied_invalid() -> (String, String) {
    ("deny".into(), "invalid_token".into())
}

fn allowed() -> (String, String) {
    ("allow".into(), "allowed_by_policy".into())
}

/// Finding 2: after `keys rotate` and the end of the old key's publication, the JWKS
/// drops it — and so does every verifier, at once, with no write to make anything
/// rebuild; a token verified (and cached) while the key was published stops working
/// the same instant.
#[tokio::test]
async fn finding_2_a_retired_key_verifies_nothing_once_its_publication_ends() {
    let env = Env::new();
    let (c, service) = env.token_world().await;
    let old = current_key(&env);
    let r = env.admin(Method::POST, "/v1/keys/rotate", None).await;
    r.expect(200);
    let until = r.json()["retired_published_until"]
        .as_str()
        .map(|t| {
            mandate_core::time::Timestamp::parse(t)
                .expect("time")
                .secs()
        })
        .expect("until");
    // Shortly before the end: a token the old key signed (within every lifetime rule)
    // verifies, and is cached.
    env.advance(until - env.now() - 50);
    let cached = forge(&old, &c.id, "tok_cached", env.now() - 10, env.now() + 200);
    assert_eq!(env.read_contact(&cached).await, allowed());
    assert!(env.published_kids().await.contains(&old.kid().to_owned()));

    // The publication ends. Nothing is written.
    env.advance(until - env.now());
    assert!(!env.published_kids().await.contains(&old.kid().to_owned()));
    env.refused_as_agent(&cached).await;
    let fresh = forge(&old, &c.id, "tok_fresh", env.now() - 10, env.now() + 200);
    env.refused_as_agent(&fresh).await;
    assert_eq!(
        env.decide_for_service(&service, &fresh, None).await,
        denied_invalid()
    );
    env.refused_elsewhere(&c, &fresh).await;
    // The new key works.
    let token = env.token(&c).await;
    assert_eq!(env.read_contact(&token).await, allowed());
}

/// Finding 2: a token whose `exp - iat` exceeds `token.max_lifetime_secs` — which this
/// server never signs, so only a stolen key or an older configuration made it — is
/// refused everywhere.
#[tokio::test]
async fn finding_2_a_token_living_longer_than_the_maximum_is_refused() {
    let env = Env::new();
    let (c, service) = env.token_world().await;
    let key = current_key(&env);
    let now = env.now();
    let ok = forge(&key, &c.id, "tok_ok", now, now + super::MAX_LIFETIME);
    assert_eq!(env.read_contact(&ok).await, allowed());
    let long = forge(&key, &c.id, "tok_long", now, now + super::MAX_LIFETIME + 1);
    env.refused_as_agent(&long).await;
    assert_eq!(
        env.decide_for_service(&service, &long, None).await,
        denied_invalid()
    );
    env.refused_elsewhere(&c, &long).await;
}

/// Finding 5 (RFC 7515 §4.1.11): a header naming a critical extension is refused,
/// even when the signature is Mandate's own.
#[tokio::test]
async fn finding_5_a_critical_header_extension_is_refused() {
    let env = Env::new();
    let (c, _) = env.token_world().await;
    let key = current_key(&env);
    let token = forge(&key, &c.id, "tok_crit", env.now(), env.now() + 60);
    // Re-sign the same claims under a header with `crit`.
    let (mut header, claims) = jwt_parts(&token);
    header["crit"] = json!(["b64"]);
    header["b64"] = json!(true);
    let pem = key.to_pkcs8_pem().expect("pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PKCS#8 DER");
    let h: jsonwebtoken::Header = serde_json::from_value(header).expect("header");
    let crit = jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&der))
        .expect("sign");
    env.refused_as_agent(&crit).await;
    env.refused_elsewhere(&c, &crit).await;
}

/// Finding 3: a token the agent got for a gateway route is not a token for Mandate:
/// whoever received it (the API behind the route) cannot act as the agent at Mandate.
#[tokio::test]
async fn finding_3_a_token_for_another_audience_is_refused_at_every_mandate_endpoint() {
    let env = Env::new();
    let (c, service) = env.token_world().await;
    let r = env.token_request(&c, &[("resource", ROUTE)]).await;
    r.expect(200);
    let routed = r.json()["access_token"].as_str().expect("token").to_owned();
    assert_eq!(jwt_parts(&routed).1["aud"], ROUTE);
    assert_eq!(env.read_contact(&routed).await, denied_invalid());
    let r = env
        .bearer(
            &routed,
            Method::POST,
            "/v1/authorize/batch",
            Some(json!({"requests": [{"action": "crm:read",
                        "resource": {"type": "Crm::Contact", "id": "c-1"}}]})),
        )
        .await;
    r.expect(200);
    assert_eq!(verdict(&r.json()["results"][0]), denied_invalid());
    // An enforcement point decides on the tokens issued for it: it names its audience.
    assert_eq!(
        env.decide_for_service(&service, &routed, None).await,
        denied_invalid()
    );
    assert_eq!(
        env.decide_for_service(&service, &routed, Some(ROUTE)).await,
        allowed()
    );
    assert_eq!(
        env.decide_for_service(&service, &routed, Some("http://gateway.test/billing"))
            .await,
        denied_invalid()
    );
    // Mandate's own endpoints refuse it; introspection (for any resource server) does
    // not judge audiences, so it is checked apart.
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/mandates",
            Some(
                json!({"intent": "read", "scope": [{"actions": ["crm:read"], "resources": ["Crm::Contact/*"]}]}),
            ),
        ),
        (Method::GET, "/v1/mandates", None),
        (Method::GET, "/v1/approvals", None),
    ] {
        unauthenticated(&env.bearer(&routed, method, path, body).await);
    }
    assert_eq!(env.introspect(&routed).await["active"], true);
    let r = env
        .form(
            "/oauth/token",
            Some((&c.id, &c.secret)),
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", &routed),
                ("subject_token_type", ACCESS_TOKEN),
                ("actor_token", &routed),
                ("actor_token_type", ACCESS_TOKEN),
            ],
        )
        .await;
    r.expect(400);
    assert_eq!(r.json()["error"], "invalid_request");
    // The same agent's token for Mandate works everywhere.
    let own = env.token(&c).await;
    assert_eq!(env.read_contact(&own).await, allowed());
    env.bearer(&own, Method::GET, "/v1/mandates", None)
        .await
        .expect(200);
}

/// Finding 3, review follow-up: a token naming Mandate *and* an API would be in that
/// API's hands as well; it is not issued, and one forged with Mandate's key is refused
/// at Mandate's endpoints (every audience must be Mandate's), though accepted by an
/// enforcement point that names its own audience.
#[tokio::test]
async fn finding_3_a_token_for_mandate_and_an_api_is_neither_issued_nor_accepted() {
    let env = Env::new();
    let (c, service) = env.token_world().await;
    for targets in [[ROUTE, ISSUER], [ISSUER, ROUTE]] {
        let r = env
            .token_request(&c, &[("resource", targets[0]), ("resource", targets[1])])
            .await;
        r.expect(400);
        assert_eq!(r.json()["error"], "invalid_target");
    }
    let key = current_key(&env);
    let now = env.now();
    let mut claims = super::jwt_parts(&forge(&key, &c.id, "tok_both", now, now + 60)).1;
    claims["aud"] = json!([ROUTE, ISSUER]);
    let both: AccessClaims = serde_json::from_value(claims).expect("claims");
    let both = access::issue(&key, &both).expect("sign");
    assert_eq!(env.read_contact(&both).await, denied_invalid());
    assert_eq!(
        env.decide_for_service(&service, &both, None).await,
        denied_invalid()
    );
    unauthenticated(&env.bearer(&both, Method::GET, "/v1/mandates", None).await);
    assert_eq!(
        env.decide_for_service(&service, &both, Some(ROUTE)).await,
        allowed()
    );
}

/// Finding 3 (RFC 8693 §2.1): a token exchange is answered only to an authenticated
/// client; an `actor_token` alone — a bearer token some resource server has seen —
/// mints nothing, and another agent's `actor_token` is refused.
#[tokio::test]
async fn finding_3_a_token_exchange_needs_client_authentication() {
    let env = Env::new();
    let (c, _) = env.token_world().await;
    let token = env.token(&c).await;
    let r = env
        .bearer(
            &token,
            Method::POST,
            "/v1/mandates",
            Some(json!({"intent": "read", "scope": [{"actions": ["crm:read"], "resources": ["Crm::Contact/*"]}]})),
        )
        .await;
    r.expect(201);
    let mandate = r.json()["id"].as_str().expect("id").to_owned();
    let form = [
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", token.as_str()),
        ("subject_token_type", ACCESS_TOKEN),
        ("actor_token", token.as_str()),
        ("actor_token_type", ACCESS_TOKEN),
        ("mandate", mandate.as_str()),
    ];
    let before = env.count_events("token.issued").await;
    let r = env.form("/oauth/token", None, &form).await;
    r.expect(401);
    assert_eq!(r.json()["error"], "invalid_client");
    assert_eq!(env.count_events("token.issued").await, before);
    // Another client's token as actor: refused even with authentication.
    let other = env.client_with("other", json!({})).await;
    let r = env
        .form("/oauth/token", Some((&other.id, &other.secret)), &form)
        .await;
    r.expect(400);
    assert_eq!(r.json()["error"], "invalid_request");
    // Authenticated as itself: the mandate token.
    env.form("/oauth/token", Some((&c.id, &c.secret)), &form)
        .await
        .expect(200);
}

impl Env {
    async fn count_events(&self, kind: &str) -> usize {
        let r = self
            .admin(Method::GET, &format!("/v1/audit/events?kind={kind}"), None)
            .await;
        r.expect(200);
        r.json()["items"].as_array().expect("items").len()
    }
}

/// Adversarial pass after issue 18: `/v1/authorize` took any JWT-shaped bearer for an
/// agent's and recorded a `deny` with the caller's context as sent — an unauthenticated
/// caller could grow the audit log at will (60 kB per request, 100 per batch). A bearer
/// that does not verify is now 401 before the body is read, and only a compact
/// `token.refused` event is recorded, with nothing of the request in it.
#[tokio::test]
async fn an_unverified_bearer_records_nothing_of_its_request() {
    let env = Env::new();
    env.token_world().await;
    let junk = "x".repeat(30_000);
    let before = env.count_events("decision").await;
    for bearer in [
        "eyJhbGciOiJub25lIn0.eyJ4IjoxfQ.",
        "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFZERTQSJ9.e30.AAAA",
    ] {
        env.refused_as_agent(bearer).await;
        let r = env
            .bearer(
                bearer,
                Method::POST,
                "/v1/authorize",
                Some(json!({"action": "crm:read", "context": {"junk": junk},
                            "resource": {"type": "Crm::Contact", "id": "c-1"}})),
            )
            .await;
        r.expect(401);
    }
    assert_eq!(env.count_events("decision").await, before);
    // The refusals are on the record (best effort, after the answer), without the junk.
    let mut refused = Vec::new();
    for _ in 0..50 {
        let r = env
            .admin(Method::GET, "/v1/audit/events?kind=token.refused", None)
            .await;
        r.expect(200);
        refused = r.json()["items"].as_array().expect("items").clone();
        if refused.len() >= 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(refused.len(), 6, "{refused:?}");
    for e in &refused {
        assert!(!e.to_string().contains("xxxxxxxx"), "{e}");
        assert_eq!(e["details"]["surface"], "/v1/authorize");
    }
}
