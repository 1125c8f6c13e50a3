//! DPoP (RFC 9449) through the router: a token request with a proof gets a bound token
//! (`token_type` `DPoP`, `cnf.jkt`), and every surface that takes the agent's own token
//! holds it to its key — `/v1/authorize` (as the agent and passed on by an enforcement
//! point), `/v1/mandates` — refusing a replayed proof, a wrong method, URL, age or key,
//! and the bound token presented as `Bearer`. Plus the boundary's `require_dpop`, server
//! nonces and the metadata.

use axum::body::Body;
use axum::http::{Method, Request, header};
use mandate_core::random::OsRandom;
use mandate_token::dpop::{self, ProofClaims};
use mandate_token::keys::SigningKey;
use serde_json::{Value, json};

use super::incidents::{POLICIES, SCHEMA};
use super::{Client, Env, FORM, ISSUER, Reply, encode, jwt_parts};

const QUESTION: &str =
    r#"{"action": "crm:read", "resource": {"type": "Crm::Contact", "id": "c-1"}}"#;

fn proof(key: &SigningKey, htm: &str, url: &str, iat: i64, token: Option<&str>) -> String {
    proof_with(key, htm, url, iat, token, None)
}

fn proof_with(
    key: &SigningKey,
    htm: &str,
    url: &str,
    iat: i64,
    token: Option<&str>,
    nonce: Option<&str>,
) -> String {
    let jti = mandate_core::id::TokenId::generate(
        &mandate_core::clock::ManualClock::at_millis(1_700_000_000_000),
        &OsRandom,
    )
    .expect("jti")
    .to_string();
    dpop::sign(
        key,
        &ProofClaims {
            jti,
            htm: htm.into(),
            htu: url.into(),
            iat,
            ath: token.map(dpop::ath),
            nonce: nonce.map(str::to_owned),
        },
    )
    .expect("proof")
}

impl Env {
    /// `client_credentials` for `c` with these `DPoP` headers.
    async fn dpop_token_request(&self, c: &Client, proofs: &[&str]) -> Reply {
        let mut req = Request::post("/oauth/token")
            .header(header::CONTENT_TYPE, FORM)
            .header(
                header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        format!("{}:{}", c.id, c.secret)
                    )
                ),
            );
        for p in proofs {
            req = req.header("dpop", *p);
        }
        let body = encode(&[("grant_type", "client_credentials")]);
        self.send(req.body(Body::from(body)).expect("request"))
            .await
    }

    /// A request with `Authorization: <scheme> <token>` and these `DPoP` headers.
    async fn presented(
        &self,
        scheme: &str,
        token: &str,
        proofs: &[&str],
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("{scheme} {token}"));
        for p in proofs {
            req = req.header("dpop", *p);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.send(req.expect("request")).await
    }
}

fn question() -> Value {
    serde_json::from_str(QUESTION).expect("question")
}

/// Asserts a 401 DPoP refusal with `error` and the stable `reason`.
fn refused(r: &Reply, error: &str, reason: &str) {
    r.expect(401);
    let v = r.json();
    assert_eq!(v["code"], error, "{v}");
    assert_eq!(v["reason"], reason, "{v}");
    let challenge = r.headers[header::WWW_AUTHENTICATE].to_str().expect("ascii");
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(
        challenge.contains(&format!("error=\"{error}\"")),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_bound_token_is_held_to_its_key_everywhere() {
    let env = Env::new();
    env.activate(POLICIES, &[SCHEMA]).await;
    let c = env
        .client_with(
            "dpop-agent",
            json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}]}),
        )
        .await;
    let key = SigningKey::generate(&OsRandom).expect("key");
    let other = SigningKey::generate(&OsRandom).expect("key");
    let now = env.now();
    let token_url = format!("{ISSUER}/oauth/token");
    let authorize = format!("{ISSUER}/v1/authorize");

    // Issued bound: token_type DPoP, cnf.jkt the key's thumbprint.
    let p = proof(&key, "POST", &token_url, now, None);
    let r = env.dpop_token_request(&c, &[&p]).await;
    r.expect(200);
    assert_eq!(r.json()["token_type"], "DPoP");
    let token = r.json()["access_token"].as_str().expect("token").to_owned();
    let (_, claims) = jwt_parts(&token);
    assert_eq!(claims["cnf"]["jkt"], dpop::thumbprint(&key));
    // The same proof again at the token endpoint: replayed.
    let r = env.dpop_token_request(&c, &[&p]).await;
    r.expect_oauth_error(400, "invalid_dpop_proof");
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("dpop_replayed")
    );
    // Recorded with its stable reason, not only the RFC 6749 code.
    let e = env.refusal_recorded("dpop_replayed").await;
    assert_eq!(e["details"]["error"], "invalid_dpop_proof", "{e}");
    // Two proofs: malformed.
    let (p1, p2) = (
        proof(&key, "POST", &token_url, now, None),
        proof(&key, "POST", &token_url, now, None),
    );
    env.dpop_token_request(&c, &[&p1, &p2])
        .await
        .expect_oauth_error(400, "invalid_dpop_proof");
    // A proof for another URL.
    let bad = proof(&key, "POST", &authorize, now, None);
    env.dpop_token_request(&c, &[&bad])
        .await
        .expect_oauth_error(400, "invalid_dpop_proof");

    // Introspection says so.
    let i = env.introspect(&token).await;
    assert_eq!(i["cnf"]["jkt"], dpop::thumbprint(&key));
    assert_eq!(i["token_type"], "DPoP");

    // /v1/authorize under DPoP with a good proof: decided.
    let good = proof(&key, "POST", &authorize, now, Some(&token));
    let r = env
        .presented(
            "DPoP",
            &token,
            &[&good],
            Method::POST,
            "/v1/authorize",
            Some(question()),
        )
        .await;
    r.expect(200);
    assert!(r.json()["decision"].is_string());
    // The same proof again: replayed.
    let r = env
        .presented(
            "DPoP",
            &token,
            &[&good],
            Method::POST,
            "/v1/authorize",
            Some(question()),
        )
        .await;
    refused(&r, "invalid_dpop_proof", "dpop_replayed");
    // Every other fault, each with its own reason.
    let cases = [
        (
            proof(&key, "GET", &authorize, now, Some(&token)),
            "dpop_htm",
        ),
        (
            proof(
                &key,
                "POST",
                &format!("{ISSUER}/v1/authorize/batch"),
                now,
                Some(&token),
            ),
            "dpop_htu",
        ),
        (
            proof(
                &key,
                "POST",
                "http://evil.test/v1/authorize",
                now,
                Some(&token),
            ),
            "dpop_htu",
        ),
        (
            proof(&key, "POST", &authorize, now - 61, Some(&token)),
            "dpop_iat_stale",
        ),
        (
            proof(&key, "POST", &authorize, now + 6, Some(&token)),
            "dpop_iat_future",
        ),
        (
            proof(&key, "POST", &authorize, now, Some("another")),
            "dpop_ath",
        ),
        (proof(&key, "POST", &authorize, now, None), "dpop_ath"),
        (
            proof(&other, "POST", &authorize, now, Some(&token)),
            "dpop_wrong_key",
        ),
        ("not-a-proof".to_owned(), "dpop_malformed"),
    ];
    for (p, reason) in &cases {
        let r = env
            .presented(
                "DPoP",
                &token,
                &[p],
                Method::POST,
                "/v1/authorize",
                Some(question()),
            )
            .await;
        refused(&r, "invalid_dpop_proof", reason);
    }
    // No proof at all.
    let r = env
        .presented(
            "DPoP",
            &token,
            &[],
            Method::POST,
            "/v1/authorize",
            Some(question()),
        )
        .await;
    refused(&r, "invalid_dpop_proof", "dpop_proof_missing");
    // The bound token as a Bearer token (an unbound copy): refused, even with a proof.
    let p = proof(&key, "POST", &authorize, now, Some(&token));
    for proofs in [vec![], vec![p.as_str()]] {
        let r = env
            .presented(
                "Bearer",
                &token,
                &proofs,
                Method::POST,
                "/v1/authorize",
                Some(question()),
            )
            .await;
        refused(&r, "invalid_token", "dpop_bound_token_as_bearer");
    }
    // …at the endpoints agents share with admins too, and under DPoP there it works.
    let r = env
        .presented("Bearer", &token, &[], Method::GET, "/v1/mandates", None)
        .await;
    refused(&r, "invalid_token", "dpop_bound_token_as_bearer");
    let p = proof(
        &key,
        "GET",
        &format!("{ISSUER}/v1/mandates"),
        now,
        Some(&token),
    );
    env.presented("DPoP", &token, &[&p], Method::GET, "/v1/mandates", None)
        .await
        .expect(200);

    // An enforcement point passing the bound token on: without the agent's proof the
    // token is refused; with it (made for the enforcement point's URL), decided.
    let service = env.admin_token("service").await;
    let mut body = question();
    body["token"] = json!(token);
    let r = env
        .presented(
            "Bearer",
            &service,
            &[],
            Method::POST,
            "/v1/authorize",
            Some(body.clone()),
        )
        .await;
    refused(&r, "invalid_token", "dpop_bound_token_as_bearer");
    let at_gateway = "https://pep.test/crm/contacts/c-1";
    let p = proof(&key, "GET", at_gateway, now, Some(&token));
    body["dpop"] = json!({"proof": p, "htm": "GET", "htu": at_gateway});
    let r = env
        .presented(
            "Bearer",
            &service,
            &[],
            Method::POST,
            "/v1/authorize",
            Some(body.clone()),
        )
        .await;
    r.expect(200);
    // Replayed through the enforcement point: refused.
    let r = env
        .presented(
            "Bearer",
            &service,
            &[],
            Method::POST,
            "/v1/authorize",
            Some(body),
        )
        .await;
    refused(&r, "invalid_dpop_proof", "dpop_replayed");

    // The same through AuthZEN (`subject.properties.token`): a bound token passed on
    // without the agent's proof was decided `true` before the adversarial review's
    // finding; now it is refused, and with `subject.properties.dpop` it is decided.
    let agent_id = claims["client_id"].as_str().expect("client_id").to_owned();
    let evaluation = |dpop: Option<Value>| {
        let mut properties = json!({"token": token});
        if let Some(d) = dpop {
            properties["dpop"] = d;
        }
        json!({
            "subject": {"type": "agent", "id": agent_id, "properties": properties},
            "action": {"name": "crm:read"},
            "resource": {"type": "Crm::Contact", "id": "c-1"}
        })
    };
    for path in ["/access/v1/evaluation", "/access/v1/search/action"] {
        let mut ev = evaluation(None);
        if path.ends_with("action") {
            ev.as_object_mut().expect("object").remove("action");
        }
        let r = env
            .presented("Bearer", &service, &[], Method::POST, path, Some(ev))
            .await;
        refused(&r, "invalid_token", "dpop_bound_token_as_bearer");
    }
    let p = proof(&key, "GET", at_gateway, now, Some(&token));
    let r = env
        .presented(
            "Bearer",
            &service,
            &[],
            Method::POST,
            "/access/v1/evaluation",
            Some(evaluation(Some(
                json!({"proof": p, "htm": "GET", "htu": at_gateway}),
            ))),
        )
        .await;
    r.expect(200);
    assert!(r.json()["decision"].is_boolean(), "{}", r.json());
    let r = env
        .presented(
            "Bearer",
            &service,
            &[],
            Method::POST,
            "/access/v1/evaluation",
            Some(evaluation(Some(json!({"proof": 1})))),
        )
        .await;
    r.expect(400);

    // An unbound token under the DPoP scheme is refused too.
    let plain = env.token(&c).await;
    let p = proof(&key, "POST", &authorize, now, Some(&plain));
    let r = env
        .presented(
            "DPoP",
            &plain,
            &[&p],
            Method::POST,
            "/v1/authorize",
            Some(question()),
        )
        .await;
    refused(&r, "invalid_token", "dpop_token_not_bound");
    // …and works as a Bearer token, as before.
    let (decision, _) = env.read_contact(&plain).await;
    assert!(!decision.is_empty());
}

#[tokio::test]
async fn a_boundary_can_require_dpop() {
    let env = Env::new();
    let c = env
        .client_with(
            "must-bind",
            json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}], "require_dpop": true}),
        )
        .await;
    let r = env.dpop_token_request(&c, &[]).await;
    r.expect_oauth_error(400, "invalid_dpop_proof");
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("dpop_required")
    );
    let key = SigningKey::generate(&OsRandom).expect("key");
    let p = proof(
        &key,
        "POST",
        &format!("{ISSUER}/oauth/token"),
        env.now(),
        None,
    );
    let r = env.dpop_token_request(&c, &[&p]).await;
    r.expect(200);
    assert_eq!(r.json()["token_type"], "DPoP");
    // The boundary shows it.
    let a = env
        .admin(Method::GET, &format!("/v1/agents/{}", c.id), None)
        .await;
    assert_eq!(a.json()["boundary"]["require_dpop"], true, "{}", a.json());
}

#[tokio::test]
async fn a_required_nonce_is_handed_out_and_checked() {
    let env = Env::with_config(|c| c.dpop.require_nonce = true);
    let c = env.client("nonce-agent").await;
    let key = SigningKey::generate(&OsRandom).expect("key");
    let url = format!("{ISSUER}/oauth/token");
    let r = env
        .dpop_token_request(&c, &[&proof(&key, "POST", &url, env.now(), None)])
        .await;
    r.expect_oauth_error(400, "use_dpop_nonce");
    let nonce = r.headers["dpop-nonce"].to_str().expect("nonce").to_owned();
    let p = proof_with(&key, "POST", &url, env.now(), None, Some(&nonce));
    env.dpop_token_request(&c, &[&p]).await.expect(200);
    // A nonce two slots old is stale.
    env.advance(601);
    let p = proof_with(&key, "POST", &url, env.now(), None, Some(&nonce));
    env.dpop_token_request(&c, &[&p])
        .await
        .expect_oauth_error(400, "use_dpop_nonce");
}

#[tokio::test]
async fn metadata_lists_dpop_algorithms() {
    let env = Env::new();
    let r = env.get("/.well-known/oauth-authorization-server").await;
    r.expect(200);
    assert_eq!(
        r.json()["dpop_signing_alg_values_supported"],
        json!(["EdDSA", "Ed25519", "ES256"])
    );
}

/// The gateways' authorizer (what both gateways call before reading a body): a bound
/// token only under `DPoP`, with a proof for the gateway's own URL, once.
#[tokio::test]
async fn the_gateway_authorizer_holds_a_bound_token_to_its_key() {
    use mandate_gateway::authz::{Authorizer as _, AuthzError, Presented};
    let env = Env::new();
    let route = "http://gateway.test/crm";
    let c = env
        .client_with(
            "gw-agent",
            json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}],
                   "audiences": ["http://gateway.test/*"]}),
        )
        .await;
    let key = SigningKey::generate(&OsRandom).expect("key");
    let now = env.now();
    let p = proof(&key, "POST", &format!("{ISSUER}/oauth/token"), now, None);
    let mut req = Request::post("/oauth/token")
        .header(header::CONTENT_TYPE, FORM)
        .header("dpop", p);
    req = req.header(
        header::AUTHORIZATION,
        format!(
            "Basic {}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("{}:{}", c.id, c.secret)
            )
        ),
    );
    let body = encode(&[("grant_type", "client_credentials"), ("resource", route)]);
    let r = env.send(req.body(Body::from(body)).expect("request")).await;
    r.expect(200);
    let token = r.json()["access_token"].as_str().expect("token").to_owned();
    let authz = mandate_http::gateway::GatewayAuthorizer::new(std::sync::Arc::clone(&env.state));
    let url = format!("{route}/contacts/c-1");
    let reason = |r: Result<_, AuthzError>| match r {
        Err(AuthzError::Dpop(d)) => d.reason.to_owned(),
        other => format!("{other:?}"),
    };
    // As Bearer: refused.
    let bearer = Presented {
        token: &token,
        dpop: false,
        proofs: vec![],
        method: "GET",
        url: url.clone(),
        certificate: None,
    };
    assert_eq!(
        reason(authz.authenticate_presented(&bearer, route)),
        "dpop_bound_token_as_bearer"
    );
    // A proof for Mandate's URL, not the gateway's: refused.
    let wrong = proof(
        &key,
        "GET",
        &format!("{ISSUER}/crm/contacts/c-1"),
        now,
        Some(&token),
    );
    let p = Presented {
        token: &token,
        dpop: true,
        proofs: vec![&wrong],
        method: "GET",
        url: url.clone(),
        certificate: None,
    };
    assert_eq!(reason(authz.authenticate_presented(&p, route)), "dpop_htu");
    // The right proof: the agent; the same again: replayed.
    let good = proof(&key, "GET", &url, now, Some(&token));
    let p = Presented {
        token: &token,
        dpop: true,
        proofs: vec![&good],
        method: "GET",
        url: url.clone(),
        certificate: None,
    };
    let who = authz
        .authenticate_presented(&p, route)
        .expect("authenticated");
    assert_eq!(who.agent, c.id);
    assert_eq!(
        reason(authz.authenticate_presented(&p, route)),
        "dpop_replayed"
    );
}

/// A request body whose chunks the test sends when it chooses.
struct Trickle(tokio::sync::mpsc::Receiver<axum::body::Bytes>);

impl http_body::Body for Trickle {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<axum::body::Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|c| c.map(|b| Ok(http_body::Frame::data(b))))
    }
}

/// INVARIANT (bound stays bound) at the OPA listener: a DPoP-bound token that does not
/// verify yet when the query's head arrives (its `nbf` a few seconds ahead: issued by a
/// node whose clock runs ahead) and verifies by the time its body is in is refused, not
/// decided as the agent's bearer token. Regression: the edge checked the binding only
/// of a token that verified there, and the query was decided with the claims verified
/// after the body, unchecked — a stolen bound token worked without its key.
#[tokio::test]
async fn atk13_a_bound_token_that_verifies_only_after_the_body_is_refused_at_opa() {
    use std::sync::Arc;
    use tower::ServiceExt as _;
    let env = Env::new();
    let c = env
        .client_with(
            "dpop-agent",
            json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}]}),
        )
        .await;
    let key = SigningKey::generate(&OsRandom).expect("key");
    // Issued 5 s ahead of this node's clock.
    env.advance(5);
    let p = proof(
        &key,
        "POST",
        &format!("{ISSUER}/oauth/token"),
        env.now(),
        None,
    );
    let r = env.dpop_token_request(&c, &[&p]).await;
    r.expect(200);
    let token = r.json()["access_token"].as_str().expect("token").to_owned();
    env.advance(-5);

    let router = mandate_http::opa::opa_router(
        Arc::clone(&env.state),
        mandate_http::opa::OpaAuthentication::Token,
    );
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/data/x")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::new(Trickle(rx)))
        .expect("request");
    let call = tokio::spawn(router.oneshot(req));
    tx.send(axum::body::Bytes::from_static(b"{\"input\": "))
        .await
        .expect("send");
    // The head is handled (the token does not verify yet) and the body awaited.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    env.advance(6);
    tx.send(axum::body::Bytes::from_static(b"{}}"))
        .await
        .expect("send");
    drop(tx);
    let res = call.await.expect("task").expect("infallible");
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("dpop_bound_token_as_bearer"), "{body}");
}
