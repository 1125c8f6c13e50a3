//! Certificate-bound tokens (RFC 8705 §3) through the router: a token requested over a
//! connection with a client certificate (the listener's `Peer` extension, as
//! `mandate::listen` inserts it) carries `cnf.x5t#S256`, and `/v1/authorize` and the
//! gateways' authorizer accept it only with that certificate on the connection; a
//! certificate-bound token is not exchanged. The listener's side (the chain taken from
//! the handshake) is tested in mandate-tls and the binary's e2e tests.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, header};
use mandate_http::conn::Peer;
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};

use super::incidents::{POLICIES, SCHEMA};
use super::{Client, Env, FORM, Reply, encode, jwt_parts};

/// A self-signed certificate (DER) for `name`.
fn certificate(name: &str) -> CertificateDer<'static> {
    let key = rcgen::KeyPair::generate().expect("key");
    let p = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
    p.self_signed(&key).expect("cert").der().clone()
}

fn peer(cert: Option<&CertificateDer<'static>>) -> Peer {
    Peer {
        addr: "127.0.0.1:40000".parse().expect("addr"),
        certificates: cert.map(|c| Arc::from(vec![c.clone()])),
    }
}

fn basic(c: &Client) -> String {
    format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", c.id, c.secret)
        )
    )
}

impl Env {
    /// `client_credentials` for `c` over a connection presenting `cert` (if any).
    async fn token_over(
        &self,
        c: &Client,
        cert: Option<&CertificateDer<'static>>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        let mut req = Request::post("/oauth/token")
            .header(header::CONTENT_TYPE, FORM)
            .header(header::AUTHORIZATION, basic(c))
            .body(Body::from(encode(&form)))
            .expect("request");
        req.extensions_mut().insert(peer(cert));
        self.send(req).await
    }

    /// `POST /v1/authorize` with `token` as `Bearer` over a connection with `cert`
    /// (`None`: a connection without one; no `Peer` at all when `known` is false).
    async fn authorize_over(
        &self,
        token: &str,
        cert: Option<&CertificateDer<'static>>,
        known: bool,
    ) -> Reply {
        let mut req = Request::post("/v1/authorize")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                r#"{"action": "crm:read", "resource": {"type": "Crm::Contact", "id": "c-1"}}"#,
            ))
            .expect("request");
        if known {
            req.extensions_mut().insert(peer(cert));
        }
        self.send(req).await
    }
}

/// Asserts a 401 `invalid_token` with the stable `reason` and a `Bearer` challenge.
fn refused(r: &Reply, reason: &str) {
    r.expect(401);
    let v = r.json();
    assert_eq!(v["code"], "invalid_token", "{v}");
    assert_eq!(v["reason"], reason, "{v}");
    let challenge = r.headers[header::WWW_AUTHENTICATE].to_str().expect("ascii");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(reason), "{challenge}");
}

#[tokio::test]
async fn a_token_requested_with_a_certificate_is_bound_to_it() {
    let env = Env::new();
    env.activate(POLICIES, &[SCHEMA]).await;
    let c = env
        .client_with(
            "mtls-agent",
            json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}]}),
        )
        .await;
    let mine = certificate("agent.example");
    let other = certificate("agent.example");
    let x5t = mandate_token::access::certificate_thumbprint(&mine);

    // Over a connection with a certificate: bound to it, still of type Bearer.
    let r = env.token_over(&c, Some(&mine), &[]).await;
    r.expect(200);
    assert_eq!(r.json()["token_type"], "Bearer");
    let token = r.json()["access_token"].as_str().expect("token").to_owned();
    let (_, claims) = jwt_parts(&token);
    assert_eq!(claims["cnf"], json!({"x5t#S256": x5t}));
    // Introspection shows the binding.
    let i = env.introspect(&token).await;
    assert_eq!(i["cnf"], json!({"x5t#S256": x5t}));
    assert_eq!(i["token_type"], "Bearer");

    // With the certificate: decided. Without one, with another, over no known
    // connection: refused, each with its reason.
    env.authorize_over(&token, Some(&mine), true)
        .await
        .expect(200);
    refused(
        &env.authorize_over(&token, None, true).await,
        "certificate_bound_token_without_certificate",
    );
    refused(
        &env.authorize_over(&token, None, false).await,
        "certificate_bound_token_without_certificate",
    );
    refused(
        &env.authorize_over(&token, Some(&other), true).await,
        "certificate_bound_token_wrong_certificate",
    );
    // Each refusal is recorded as a token.refused event (best effort, after the answer).
    let mut reasons: Vec<Value> = Vec::new();
    for _ in 0..50 {
        let r = env
            .admin(Method::GET, "/v1/audit/events?kind=token.refused", None)
            .await;
        r.expect(200);
        reasons = r.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["details"]["reason"].clone())
            .collect();
        if reasons.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons.contains(&json!("certificate_bound_token_wrong_certificate")),
        "{reasons:?}"
    );

    // A token requested without a certificate is not bound; it works either way.
    let r = env.token_over(&c, None, &[]).await;
    r.expect(200);
    let plain = r.json()["access_token"].as_str().expect("token").to_owned();
    assert!(jwt_parts(&plain).1.get("cnf").is_none());
    env.authorize_over(&plain, None, true).await.expect(200);
    env.authorize_over(&plain, Some(&other), true)
        .await
        .expect(200);

    // The metadata says tokens are bound.
    let m = env.get("/.well-known/oauth-authorization-server").await;
    m.expect(200);
    assert_eq!(m.json()["tls_client_certificate_bound_access_tokens"], true);
}

/// The gateways' authorizer: the certificate compared is the one the agent presented
/// to the gateway (which terminates TLS).
#[tokio::test]
async fn the_gateway_authorizer_holds_a_bound_token_to_its_certificate() {
    use mandate_gateway::authz::{Authorizer as _, AuthzError, Presented};
    let env = Env::new();
    let route = "http://gateway.test/crm";
    let c = env
        .client_with(
            "gw-mtls-agent",
            json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}],
                   "audiences": ["http://gateway.test/*"]}),
        )
        .await;
    let mine = certificate("agent.example");
    let other = certificate("agent.example");
    let r = env
        .token_over(&c, Some(&mine), &[("resource", route)])
        .await;
    r.expect(200);
    let token = r.json()["access_token"].as_str().expect("token").to_owned();
    let authz = mandate_http::gateway::GatewayAuthorizer::new(Arc::clone(&env.state));
    let url = format!("{route}/contacts/c-1");
    let at = |certificate: Option<&CertificateDer<'static>>| -> String {
        let p = Presented {
            token: &token,
            dpop: false,
            proofs: vec![],
            method: "GET",
            url: url.clone(),
            certificate: certificate.map(AsRef::as_ref),
        };
        match authz.authenticate_presented(&p, route) {
            Ok(who) => format!("agent {}", who.agent),
            Err(AuthzError::Dpop(d)) => d.reason.to_owned(),
            Err(other) => format!("{other:?}"),
        }
    };
    assert_eq!(at(None), "certificate_bound_token_without_certificate");
    assert_eq!(
        at(Some(&other)),
        "certificate_bound_token_wrong_certificate"
    );
    assert_eq!(at(Some(&mine)), format!("agent {}", c.id));
}
