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

/// RFC 8705 §2 client authentication: a `client_id` alone over a connection with a
/// client certificate.
mod client_auth {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        SanType,
    };

    use super::*;

    /// A CA for one test, issuing client certificates.
    pub(super) struct Ca {
        pub(super) der: CertificateDer<'static>,
        issuer: Issuer<'static, KeyPair>,
    }

    impl Ca {
        pub(super) fn new() -> Self {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let key = KeyPair::generate().expect("key");
            let der = p.self_signed(&key).expect("ca").der().clone();
            Self {
                der,
                issuer: Issuer::new(p, key),
            }
        }

        /// A client certificate with the URI SAN `uri`, for client authentication
        /// (`expired`: valid in 2020–2021 only, before the tests' clock).
        pub(super) fn client(&self, uri: &str, expired: bool) -> CertificateDer<'static> {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.subject_alt_names = vec![SanType::URI(uri.try_into().expect("ia5"))];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            if expired {
                p.not_before = rcgen::date_time_ymd(2020, 1, 1);
                p.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            let key = KeyPair::generate().expect("key");
            p.signed_by(&key, &self.issuer).expect("leaf").der().clone()
        }
    }

    /// A self-signed Ed25519 certificate and its key as a JWK with `x5c`.
    fn self_signed() -> (CertificateDer<'static>, Value) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        let p = CertificateParams::new(vec!["agent.example".to_owned()]).expect("params");
        let der = p.self_signed(&key).expect("cert").der().clone();
        let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
        let x = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            key.public_key_raw(),
        );
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "x5c": [b64(&der)]});
        (der, jwk)
    }

    impl Env {
        /// `client_credentials` naming `client_id` alone, over a connection presenting
        /// `chain` (none: a connection without a certificate).
        pub(super) async fn token_by_certificate(
            &self,
            client_id: &str,
            chain: &[CertificateDer<'static>],
        ) -> Reply {
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
            ];
            let mut req = Request::post("/oauth/token")
                .header(header::CONTENT_TYPE, FORM)
                .body(Body::from(encode(&form)))
                .expect("request");
            req.extensions_mut().insert(Peer {
                addr: "127.0.0.1:40000".parse().expect("addr"),
                certificates: (!chain.is_empty()).then(|| Arc::from(chain.to_vec())),
            });
            self.send(req).await
        }

        /// Waits (a second at most) for a `token.refused` event with `reason`; recording
        /// a refusal is best effort after the answer.
        pub(crate) async fn refusal_recorded(&self, reason: &str) -> Value {
            for _ in 0..50 {
                let r = self
                    .admin(Method::GET, "/v1/audit/events?kind=token.refused", None)
                    .await;
                r.expect(200);
                if let Some(e) = r.json()["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .find(|e| e["details"]["reason"] == reason)
                {
                    return e.clone();
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("no token.refused event with reason {reason}");
        }

        async fn add_credential(&self, agent: &str, body: Value) -> Reply {
            self.admin(
                Method::POST,
                &format!("/v1/agents/{agent}/credentials"),
                Some(body),
            )
            .await
        }
    }

    fn refused_client(r: &Reply, description: &str) {
        r.expect(401);
        let v = r.json();
        assert_eq!(v["error"], "invalid_client", "{v}");
        let d = v["error_description"].as_str().expect("description");
        assert!(d.contains(description), "{d}");
    }

    fn bound_to(r: &Reply, cert: &CertificateDer<'_>) {
        r.expect(200);
        let token = r.json()["access_token"].as_str().expect("token").to_owned();
        let x5t = mandate_token::access::certificate_thumbprint(cert);
        assert_eq!(jwt_parts(&token).1["cnf"], json!({"x5t#S256": x5t}));
    }

    #[tokio::test]
    async fn a_registered_self_signed_certificate_authenticates_its_client() {
        let env = Env::with_config(|c| c.client_certs.asked = true);
        let id = env.register("self-signed", json!({})).await;
        let (cert, jwk) = self_signed();
        let r = env
            .add_credential(&id, json!({"type": "public_key", "jwk": jwk}))
            .await;
        r.expect(201);
        assert_eq!(r.json()["credential"]["public_jwk"]["x5c"], jwk["x5c"]);

        // The registered certificate: a token, bound to it.
        bound_to(
            &env.token_by_certificate(&id, std::slice::from_ref(&cert))
                .await,
            &cert,
        );
        // Another certificate (even one of the same name), none, another client: refused.
        let (other, _) = self_signed();
        refused_client(
            &env.token_by_certificate(&id, &[other]).await,
            "client authentication failed",
        );
        refused_client(
            &env.token_by_certificate(&id, &[]).await,
            "client authentication required",
        );
        let stranger = env.register("stranger", json!({})).await;
        refused_client(
            &env.token_by_certificate(&stranger, std::slice::from_ref(&cert))
                .await,
            "client authentication failed",
        );
        // Revoked: refused from then on.
        let cid = r.json()["credential"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        env.admin(
            Method::DELETE,
            &format!("/v1/agents/{id}/credentials/{cid}"),
            None,
        )
        .await
        .expect(204);
        refused_client(
            &env.token_by_certificate(&id, &[cert]).await,
            "client authentication failed",
        );

        // The metadata offers the method (no client CA: not tls_client_auth).
        let m = env
            .get("/.well-known/oauth-authorization-server")
            .await
            .json();
        let methods = &m["token_endpoint_auth_methods_supported"];
        assert!(
            methods
                .as_array()
                .expect("list")
                .contains(&json!("self_signed_tls_client_auth")),
            "{methods}"
        );
        assert!(
            !methods
                .as_array()
                .expect("list")
                .contains(&json!("tls_client_auth")),
            "{methods}"
        );
    }

    #[tokio::test]
    async fn an_x5c_that_is_not_the_keys_self_signed_certificate_is_refused() {
        let env = Env::new();
        let id = env.register("bad-x5c", json!({})).await;
        let (cert, jwk) = self_signed();
        let (_, other_jwk) = self_signed();
        let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
        let url =
            |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
        let with = |x5c: Value| {
            let mut j = jwk.clone();
            j["x5c"] = x5c;
            j
        };
        for (jwk, why) in [
            (with(other_jwk["x5c"].clone()), "is not the JWK's key"),
            (
                with(json!([b64(&cert), b64(&cert)])),
                "exactly one certificate",
            ),
            (with(json!([])), "exactly one certificate"),
            (with(json!(b64(&cert))), "exactly one certificate"),
            (
                with(json!([b64(b"not a certificate")])),
                "not a certificate",
            ),
            (with(json!([url(&[0xfb; 300])])), "base64 (not base64url)"),
        ] {
            let r = env
                .add_credential(&id, json!({"type": "public_key", "jwk": jwk}))
                .await;
            r.expect(400);
            let d = r.json()["detail"].as_str().unwrap_or_default().to_owned();
            assert!(d.contains(why), "{why}: {}", r.json());
        }
        // Nothing was added.
        let list = env
            .admin(Method::GET, &format!("/v1/agents/{id}/credentials"), None)
            .await;
        assert_eq!(list.json()["items"], json!([]));
    }

    #[tokio::test]
    async fn a_certificate_of_the_client_ca_carrying_the_registered_name_authenticates() {
        let ca = Ca::new();
        let anchors =
            mandate_tls::client_cert::ClientCa::from_certificates(std::slice::from_ref(&ca.der))
                .expect("ca");
        let env = Env::with_config(|c| {
            c.client_certs = mandate_http::ClientCertAuth {
                asked: true,
                ca: Some(Arc::new(anchors)),
            }
        });
        env.activate(POLICIES, &[SCHEMA]).await;
        let spiffe = "spiffe://example.org/agent/crm";
        let id = env
            .register(
                "pki-agent",
                json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}]}),
            )
            .await;
        let r = env
            .add_credential(
                &id,
                json!({"type": "tls_client_auth", "tls_client_auth_san_uri": spiffe}),
            )
            .await;
        r.expect(201);
        let credential = r.json()["credential"].clone();
        assert_eq!(credential["type"], "tls_client_auth");
        assert_eq!(credential["tls_client_auth_san_uri"], spiffe);

        let mine = ca.client(spiffe, false);
        let r = env
            .token_by_certificate(&id, std::slice::from_ref(&mine))
            .await;
        bound_to(&r, &mine);
        // The token decides, over the same certificate.
        let token = r.json()["access_token"].as_str().expect("token").to_owned();
        env.authorize_over(&token, Some(&mine), true)
            .await
            .expect(200);

        // The CA's certificate for another name: no credential of this client names it.
        refused_client(
            &env.token_by_certificate(&id, &[ca.client("spiffe://example.org/agent/other", false)])
                .await,
            "client authentication failed",
        );
        // Another CA's certificate of the same name, an expired one: refused, and why.
        refused_client(
            &env.token_by_certificate(&id, &[Ca::new().client(spiffe, false)])
                .await,
            "client_certificate_untrusted",
        );
        refused_client(
            &env.token_by_certificate(&id, &[ca.client(spiffe, true)])
                .await,
            "client_certificate_expired",
        );
        let e = env.refusal_recorded("client_certificate_expired").await;
        assert_eq!(e["details"]["error"], "invalid_client", "{e}");
        assert_eq!(e["details"]["client_id"], id.as_str(), "{e}");
        // The CA itself is not a client certificate.
        refused_client(
            &env.token_by_certificate(&id, std::slice::from_ref(&ca.der))
                .await,
            "client_certificate",
        );
        // Secret authentication on the same connection still works (and binds).
        let (_, secret) = env.add_secret(&id).await;
        let c = Client {
            id: id.clone(),
            secret,
        };
        bound_to(&env.token_over(&c, Some(&mine), &[]).await, &mine);

        let m = env
            .get("/.well-known/oauth-authorization-server")
            .await
            .json();
        let methods = m["token_endpoint_auth_methods_supported"]
            .as_array()
            .expect("list")
            .clone();
        assert!(methods.contains(&json!("tls_client_auth")), "{methods:?}");
        assert!(
            methods.contains(&json!("self_signed_tls_client_auth")),
            "{methods:?}"
        );
    }

    #[tokio::test]
    async fn a_tls_client_auth_credential_names_exactly_one_valid_name() {
        let env = Env::new();
        let id = env.register("names", json!({})).await;
        for (body, field) in [
            (
                json!({"type": "tls_client_auth"}),
                "tls_client_auth_san_uri",
            ),
            (
                json!({"type": "tls_client_auth", "tls_client_auth_san_dns": "a.example",
                       "tls_client_auth_san_uri": "spiffe://x/y"}),
                "tls_client_auth_san_uri",
            ),
            (
                json!({"type": "tls_client_auth", "tls_client_auth_san_ip": "10.0.0.300"}),
                "tls_client_auth_san_ip",
            ),
            (
                json!({"type": "tls_client_auth", "tls_client_auth_san_uri": "not a uri"}),
                "tls_client_auth_san_uri",
            ),
            (
                json!({"type": "client_secret", "tls_client_auth_san_dns": "a.example"}),
                "tls_client_auth_san_dns",
            ),
            (
                json!({"type": "tls_client_auth", "tls_client_auth_san_dns": "a.example",
                       "jwk": {"kty": "OKP"}}),
                "jwk",
            ),
        ] {
            let r = env.add_credential(&id, body.clone()).await;
            r.expect(400);
            let v = r.json();
            assert_eq!(v["code"], "invalid_field", "{body}: {v}");
            assert!(
                v["detail"].as_str().unwrap_or_default().contains(field),
                "{body}: {v}"
            );
        }
        let list = env
            .admin(Method::GET, &format!("/v1/agents/{id}/credentials"), None)
            .await;
        assert_eq!(list.json()["items"], json!([]));

        // A good one, then rotated to another name.
        let r = env
            .add_credential(
                &id,
                json!({"type": "tls_client_auth", "tls_client_auth_san_ip": "10.0.0.7"}),
            )
            .await;
        r.expect(201);
        let cid = r.json()["credential"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let r = env
            .admin(
                Method::POST,
                &format!("/v1/agents/{id}/credentials/{cid}/rotate"),
                Some(json!({"tls_client_auth_san_dns": "agent.example"})),
            )
            .await;
        r.expect(201);
        assert_eq!(
            r.json()["credential"]["tls_client_auth_san_dns"],
            "agent.example"
        );
        assert!(
            r.json()["credential"]
                .get("tls_client_auth_san_ip")
                .is_none()
        );
    }
}
