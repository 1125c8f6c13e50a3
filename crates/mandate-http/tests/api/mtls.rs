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

        /// A server whose API listener asks for client certificates, `ca` its client CA.
        pub(in crate::mtls) fn with_client_ca(ca: &Ca) -> Self {
            let anchors = mandate_tls::client_cert::ClientCa::from_certificates(
                std::slice::from_ref(&ca.der),
            )
            .expect("ca");
            Self::with_config(|c| {
                c.client_certs = mandate_http::ClientCertAuth {
                    asked: true,
                    ca: Some(Arc::new(anchors)),
                }
            })
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
        let env = Env::with_client_ca(&ca);
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

    /// An admin bearer at introspection over a connection with a client certificate,
    /// with a `client_id` in the form: the bearer is the one method (the certificate is
    /// not a second one), as it was before certificate authentication existed.
    #[tokio::test]
    async fn an_admin_bearer_over_a_certificate_connection_is_one_method() {
        let env = Env::with_config(|c| c.client_certs.asked = true);
        let c = env.client("introspected").await;
        let token = env.token(&c).await;
        let (cert, _) = self_signed();
        let form = [("token", token.as_str()), ("client_id", c.id.as_str())];
        let mut req = Request::post("/oauth/introspect")
            .header(header::CONTENT_TYPE, FORM)
            .header(header::AUTHORIZATION, format!("Bearer {}", env.admin))
            .body(Body::from(encode(&form)))
            .expect("request");
        req.extensions_mut().insert(peer(Some(&cert)));
        let r = env.send(req).await;
        r.expect(200);
        assert_eq!(r.json()["active"], true, "{}", r.json());
    }

    /// `INVARIANT (one certificate, one agent)`: a name or a self-signed certificate
    /// another agent has in a usable credential is refused (409), until that one is
    /// revoked; the same agent may hold it twice (a rotation's overlap).
    /// atk15: a certificate pinned as one agent's `x5c` that carries the name of another
    /// agent's `tls_client_auth` credential would authenticate as both — refused whichever
    /// comes first.
    #[tokio::test]
    async fn a_pinned_certificate_carrying_anothers_name_is_refused_either_way() {
        let (_, jwk) = self_signed(); // subjectAltName dNSName agent.example
        let key = json!({"type": "public_key", "jwk": jwk});
        let name = json!({"type": "tls_client_auth", "tls_client_auth_san_dns": "AGENT.example"});
        for (first, second) in [(&key, &name), (&name, &key)] {
            let env = Env::new();
            let (a, b) = (
                env.register("first", json!({})).await,
                env.register("second", json!({})).await,
            );
            env.add_credential(&a, first.clone()).await.expect(201);
            let r = env.add_credential(&b, second.clone()).await;
            r.expect(409);
            assert_eq!(r.json()["code"], "certificate_taken", "{}", r.json());
        }
    }

    #[tokio::test]
    async fn one_certificate_names_one_agent() {
        let env = Env::new();
        let (a, b) = (
            env.register("holder", json!({})).await,
            env.register("claimant", json!({})).await,
        );
        let name = json!({"type": "tls_client_auth",
                          "tls_client_auth_san_uri": "spiffe://example.org/one"});
        let (_, jwk) = self_signed();
        let key = json!({"type": "public_key", "jwk": jwk});
        let first = env.add_credential(&a, name.clone()).await;
        first.expect(201);
        env.add_credential(&a, key.clone()).await.expect(201);
        for body in [&name, &key] {
            let r = env.add_credential(&b, body.clone()).await;
            r.expect(409);
            assert_eq!(r.json()["code"], "certificate_taken", "{}", r.json());
            assert!(r.json()["detail"].as_str().unwrap_or_default().contains(&a));
        }
        // The same agent may hold the name twice.
        env.add_credential(&a, name.clone()).await.expect(201);
        // Revoked on the holder (both of its name credentials): free for another.
        let list = env
            .admin(Method::GET, &format!("/v1/agents/{a}/credentials"), None)
            .await
            .json();
        for c in list["items"].as_array().expect("items") {
            if c["type"] == "tls_client_auth" {
                let cid = c["id"].as_str().expect("id");
                env.admin(
                    Method::DELETE,
                    &format!("/v1/agents/{a}/credentials/{cid}"),
                    None,
                )
                .await
                .expect(204);
            }
        }
        env.add_credential(&b, name).await.expect(201);
        let list = env
            .admin(Method::GET, &format!("/v1/agents/{b}/credentials"), None)
            .await
            .json();
        assert_eq!(list["items"].as_array().expect("items").len(), 1);
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

/// Adversarial cases for client authentication by certificate (RFC 8705 §2; pass atk14):
/// certificates of another agent's name, names in the wrong place or spelt otherwise,
/// chains of the wrong shape, credentials and agents out of service, mixed methods,
/// the other endpoints, the throttle, the audit record, and `x5c` registration.
mod client_auth_attacks {
    use std::net::IpAddr;
    use std::time::Duration;

    use mandate_http::throttle::{Abuse, Settings, Throttle};
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, SanType,
    };

    use super::*;

    /// A name a test certificate carries.
    #[derive(Clone)]
    enum N<'a> {
        Dns(&'a str),
        Uri(&'a str),
        Ip(&'a str),
    }

    fn sans(names: &[N<'_>]) -> Vec<SanType> {
        names
            .iter()
            .map(|n| match n {
                N::Dns(d) => SanType::DnsName((*d).try_into().expect("ia5")),
                N::Uri(u) => SanType::URI((*u).try_into().expect("ia5")),
                N::Ip(ip) => SanType::IpAddress(ip.parse::<IpAddr>().expect("ip")),
            })
            .collect()
    }

    /// A CA (root or intermediate) that issues certificates.
    struct Authority {
        der: CertificateDer<'static>,
        issuer: Issuer<'static, KeyPair>,
    }

    impl Authority {
        fn root() -> Self {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let key = KeyPair::generate().expect("key");
            let der = p.self_signed(&key).expect("ca").der().clone();
            Self {
                der,
                issuer: Issuer::new(p, key),
            }
        }

        /// A certificate issued by this authority, `adjust`ed first; as an authority
        /// itself (whatever its basic constraints say).
        fn issue(&self, adjust: impl FnOnce(&mut CertificateParams)) -> Authority {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            adjust(&mut p);
            let key = KeyPair::generate().expect("key");
            let der = p.signed_by(&key, &self.issuer).expect("cert").der().clone();
            Authority {
                der,
                issuer: Issuer::new(p, key),
            }
        }

        /// A client certificate carrying `names`.
        fn client(&self, names: &[N<'_>]) -> CertificateDer<'static> {
            self.issue(|p| p.subject_alt_names = sans(names)).der
        }

        /// An intermediate CA carrying `names`.
        fn intermediate(&self, names: &[N<'_>]) -> Authority {
            self.issue(|p| {
                p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                p.extended_key_usages = vec![];
                p.subject_alt_names = sans(names);
            })
        }
    }

    fn env_with_ca(ca: &Authority) -> Env {
        let anchors =
            mandate_tls::client_cert::ClientCa::from_certificates(std::slice::from_ref(&ca.der))
                .expect("ca");
        Env::with_config(|c| {
            c.client_certs = mandate_http::ClientCertAuth {
                asked: true,
                ca: Some(Arc::new(anchors)),
            }
        })
    }

    /// A POST of `form` to `path` over a connection presenting `chain`, with Basic
    /// credentials if given, through the throttle if given.
    async fn post(
        env: &Env,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        chain: &[CertificateDer<'static>],
        abuse: Option<&Arc<Abuse>>,
    ) -> Reply {
        let mut req = Request::post(path).header(header::CONTENT_TYPE, FORM);
        if let Some((id, secret)) = basic {
            req = req.header(
                header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        format!("{id}:{secret}")
                    )
                ),
            );
        }
        let mut req = req.body(Body::from(encode(form))).expect("request");
        req.extensions_mut().insert(Peer {
            addr: "127.0.0.1:40000".parse().expect("addr"),
            certificates: (!chain.is_empty()).then(|| Arc::from(chain.to_vec())),
        });
        if let Some(a) = abuse {
            req.extensions_mut().insert(Arc::clone(a));
        }
        env.send(req).await
    }

    async fn by_cert(env: &Env, id: &str, chain: &[CertificateDer<'static>]) -> Reply {
        post(
            env,
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("client_id", id)],
            None,
            chain,
            None,
        )
        .await
    }

    async fn add_name(env: &Env, agent: &str, key: &str, value: &str) -> String {
        let r = env
            .admin(
                Method::POST,
                &format!("/v1/agents/{agent}/credentials"),
                Some(json!({"type": "tls_client_auth", key: value})),
            )
            .await;
        r.expect(201);
        r.json()["credential"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    #[track_caller]
    fn refused(r: &Reply, description: &str) {
        r.expect(401);
        let v = r.json();
        assert_eq!(v["error"], "invalid_client", "{v}");
        let d = v["error_description"].as_str().expect("description");
        assert!(d.contains(description), "{d}");
    }

    #[tokio::test]
    async fn a_certificate_of_another_agents_name_authenticates_only_that_agent() {
        let ca = Authority::root();
        let env = env_with_ca(&ca);
        let a = env.register("a", json!({})).await;
        let b = env.register("b", json!({})).await;
        add_name(
            &env,
            &a,
            "tls_client_auth_san_uri",
            "spiffe://example.org/a",
        )
        .await;
        add_name(&env, &b, "tls_client_auth_san_dns", "b.example.org").await;
        let cert_a = ca.client(&[N::Uri("spiffe://example.org/a")]);
        let cert_b = ca.client(&[N::Dns("b.example.org")]);
        by_cert(&env, &a, std::slice::from_ref(&cert_a))
            .await
            .expect(200);
        by_cert(&env, &b, std::slice::from_ref(&cert_b))
            .await
            .expect(200);
        refused(
            &by_cert(&env, &a, std::slice::from_ref(&cert_b)).await,
            "client authentication failed",
        );
        refused(
            &by_cert(&env, &b, std::slice::from_ref(&cert_a)).await,
            "client authentication failed",
        );
        // B's certificate first, A's behind it as if an intermediate: the leaf is B's.
        let r = by_cert(&env, &a, &[cert_b.clone(), cert_a.clone()]).await;
        r.expect(401);
    }

    #[tokio::test]
    async fn names_match_only_in_the_leafs_subject_alt_name_and_as_documented() {
        let ca = Authority::root();
        let env = env_with_ca(&ca);
        let dns = env.register("dns", json!({})).await;
        let uri = env.register("uri", json!({})).await;
        let ip = env.register("ip", json!({})).await;
        add_name(&env, &dns, "tls_client_auth_san_dns", "agent.example.org").await;
        add_name(
            &env,
            &uri,
            "tls_client_auth_san_uri",
            "spiffe://example.org/agent",
        )
        .await;
        add_name(&env, &ip, "tls_client_auth_san_ip", "10.0.0.7").await;

        // The name in the subject CN only.
        let cn_only = ca
            .issue(|p| {
                p.distinguished_name
                    .push(DnType::CommonName, "agent.example.org");
                p.subject_alt_names = sans(&[N::Dns("other.example.org")]);
            })
            .der;
        refused(
            &by_cert(&env, &dns, &[cn_only]).await,
            "client authentication failed",
        );
        let cn_no_san = ca
            .issue(|p| {
                p.distinguished_name
                    .push(DnType::CommonName, "agent.example.org");
            })
            .der;
        refused(
            &by_cert(&env, &dns, &[cn_no_san]).await,
            "client authentication failed",
        );
        for wrong in [
            "*.example.org",
            "agent.example.org.evil.example",
            "evilagent.example.org",
            "agent.example.or",
        ] {
            refused(
                &by_cert(&env, &dns, &[ca.client(&[N::Dns(wrong)])]).await,
                "client authentication failed",
            );
        }
        // A DNS name compares ASCII-case-insensitively (docs/tokens.md).
        by_cert(&env, &dns, &[ca.client(&[N::Dns("AGENT.Example.ORG")])])
            .await
            .expect(200);
        for wrong in [
            "spiffe://example.org/agent/",
            "spiffe://example.org/Agent",
            "SPIFFE://example.org/agent",
            "spiffe://example.org/agent/x",
            "spiffe://example.org/agen",
            "spiffe://example.org/agent?x",
            "spiffe://example.org/agent#x",
        ] {
            refused(
                &by_cert(&env, &uri, &[ca.client(&[N::Uri(wrong)])]).await,
                "client authentication failed",
            );
        }
        // Not as another type of name.
        refused(
            &by_cert(&env, &uri, &[ca.client(&[N::Dns("spiffe.example.org")])]).await,
            "client authentication failed",
        );
        for wrong in [
            N::Ip("10.0.0.8"),
            N::Ip("::ffff:10.0.0.7"),
            N::Dns("10.0.0.7"),
        ] {
            refused(
                &by_cert(&env, &ip, &[ca.client(&[wrong])]).await,
                "client authentication failed",
            );
        }
        by_cert(&env, &ip, &[ca.client(&[N::Ip("10.0.0.7")])])
            .await
            .expect(200);
        // Several names, one of them the registered one: the CA vouched for each.
        by_cert(
            &env,
            &uri,
            &[ca.client(&[
                N::Dns("x.example.org"),
                N::Uri("spiffe://example.org/agent"),
            ])],
        )
        .await
        .expect(200);
    }

    #[tokio::test]
    async fn chains_of_the_wrong_shape_are_refused() {
        let ca = Authority::root();
        let env = env_with_ca(&ca);
        let id = env.register("shapes", json!({})).await;
        let name = "spiffe://example.org/shapes";
        add_name(&env, &id, "tls_client_auth_san_uri", name).await;

        // Through an intermediate, the name on the leaf: accepted.
        let inter = ca.intermediate(&[]);
        let leaf = inter.client(&[N::Uri(name)]);
        by_cert(&env, &id, &[leaf.clone(), inter.der.clone()])
            .await
            .expect(200);
        // The intermediate missing: untrusted.
        refused(
            &by_cert(&env, &id, std::slice::from_ref(&leaf)).await,
            "client_certificate_untrusted",
        );
        // The name on the intermediate, not on the leaf.
        let named = ca.intermediate(&[N::Uri(name)]);
        refused(
            &by_cert(
                &env,
                &id,
                &[
                    named.client(&[N::Uri("spiffe://example.org/x")]),
                    named.der.clone(),
                ],
            )
            .await,
            "client authentication failed",
        );
        // The named intermediate (a CA) presented as the leaf.
        refused(
            &by_cert(&env, &id, std::slice::from_ref(&named.der)).await,
            "client_certificate",
        );
        // A leaf of the CA (not a CA: no basic constraints, or CA:FALSE) used as an
        // intermediate for a leaf of the name.
        for is_ca in [IsCa::NoCa, IsCa::ExplicitNoCa] {
            let not_a_ca = ca.issue(|p| {
                p.is_ca = is_ca;
                p.subject_alt_names = sans(&[N::Uri("spiffe://example.org/x")]);
            });
            refused(
                &by_cert(
                    &env,
                    &id,
                    &[not_a_ca.client(&[N::Uri(name)]), not_a_ca.der.clone()],
                )
                .await,
                "client_certificate",
            );
        }
        // Not for client authentication; not valid yet; expired intermediate.
        let server_only = ca
            .issue(|p| {
                p.subject_alt_names = sans(&[N::Uri(name)]);
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            })
            .der;
        refused(
            &by_cert(&env, &id, &[server_only]).await,
            "client_certificate_wrong_usage",
        );
        let future = ca
            .issue(|p| {
                p.subject_alt_names = sans(&[N::Uri(name)]);
                p.not_before = rcgen::date_time_ymd(2030, 1, 1);
                p.not_after = rcgen::date_time_ymd(2031, 1, 1);
            })
            .der;
        refused(
            &by_cert(&env, &id, &[future]).await,
            "client_certificate_not_yet_valid",
        );
        let old_inter = ca.issue(|p| {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        });
        refused(
            &by_cert(
                &env,
                &id,
                &[old_inter.client(&[N::Uri(name)]), old_inter.der.clone()],
            )
            .await,
            "client_certificate",
        );
        // A self-signed certificate of the name.
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.subject_alt_names = sans(&[N::Uri(name)]);
        let selfie = p.self_signed(&key).expect("cert").der().clone();
        refused(
            &by_cert(&env, &id, &[selfie]).await,
            "client_certificate_untrusted",
        );
        // Bytes that are no certificate: refused, no panic.
        for junk in [
            vec![],
            vec![0x30],
            vec![0x30, 0x82, 0xff, 0xff],
            vec![0u8; 64],
        ] {
            refused(
                &by_cert(&env, &id, &[CertificateDer::from(junk)]).await,
                "client_certificate_malformed",
            );
        }
        // A good leaf followed by junk "intermediates": no panic, whatever the answer.
        let good = ca.client(&[N::Uri(name)]);
        let r = by_cert(
            &env,
            &id,
            &[
                good,
                CertificateDer::from(vec![]),
                CertificateDer::from(vec![0x30, 0x00]),
            ],
        )
        .await;
        assert!(matches!(r.status.as_u16(), 200 | 401), "{}", r.status);
    }

    #[tokio::test]
    async fn credentials_and_agents_out_of_service_do_not_authenticate() {
        let ca = Authority::root();
        let env = env_with_ca(&ca);
        let id = env.register("lifecycle", json!({})).await;
        let name = "spiffe://example.org/lifecycle";
        let cert = ca.client(&[N::Uri(name)]);
        let cid = add_name(&env, &id, "tls_client_auth_san_uri", name).await;
        by_cert(&env, &id, std::slice::from_ref(&cert))
            .await
            .expect(200);

        // Suspended, then resumed.
        env.admin(
            Method::POST,
            &format!("/v1/agents/{id}/suspend"),
            Some(json!({"reason": "incident"})),
        )
        .await
        .expect(200);
        refused(&by_cert(&env, &id, std::slice::from_ref(&cert)).await, "");
        env.admin(Method::POST, &format!("/v1/agents/{id}/resume"), None)
            .await
            .expect(200);
        by_cert(&env, &id, std::slice::from_ref(&cert))
            .await
            .expect(200);

        // Rotated to another name: the old name works for the overlap, then not.
        let r = env
            .admin(
                Method::POST,
                &format!("/v1/agents/{id}/credentials/{cid}/rotate"),
                Some(json!({"overlap_secs": 60,
                            "tls_client_auth_san_uri": "spiffe://example.org/lifecycle2"})),
            )
            .await;
        r.expect(201);
        let new_cid = r.json()["credential"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let cert2 = ca.client(&[N::Uri("spiffe://example.org/lifecycle2")]);
        by_cert(&env, &id, std::slice::from_ref(&cert))
            .await
            .expect(200);
        by_cert(&env, &id, std::slice::from_ref(&cert2))
            .await
            .expect(200);
        env.advance(61);
        refused(
            &by_cert(&env, &id, std::slice::from_ref(&cert)).await,
            "client authentication failed",
        );
        by_cert(&env, &id, std::slice::from_ref(&cert2))
            .await
            .expect(200);

        // Revoked.
        env.admin(
            Method::DELETE,
            &format!("/v1/agents/{id}/credentials/{new_cid}"),
            None,
        )
        .await
        .expect(204);
        refused(
            &by_cert(&env, &id, std::slice::from_ref(&cert2)).await,
            "client authentication failed",
        );

        // Expired by its own expiry.
        let exp = mandate_core::time::Timestamp::from_secs(env.now() + 30).to_string();
        let r = env
            .admin(
                Method::POST,
                &format!("/v1/agents/{id}/credentials"),
                Some(
                    json!({"type": "tls_client_auth", "tls_client_auth_san_uri": name,
                            "expires_at": exp}),
                ),
            )
            .await;
        r.expect(201);
        by_cert(&env, &id, std::slice::from_ref(&cert))
            .await
            .expect(200);
        env.advance(31);
        refused(
            &by_cert(&env, &id, std::slice::from_ref(&cert)).await,
            "client authentication failed",
        );

        // Decommissioned.
        add_name(&env, &id, "tls_client_auth_san_uri", name).await;
        by_cert(&env, &id, std::slice::from_ref(&cert))
            .await
            .expect(200);
        env.admin(Method::POST, &format!("/v1/agents/{id}/decommission"), None)
            .await
            .expect(200);
        refused(&by_cert(&env, &id, std::slice::from_ref(&cert)).await, "");
    }

    #[tokio::test]
    async fn a_secret_or_assertion_sent_with_a_certificate_is_checked_not_skipped() {
        let ca = Authority::root();
        let env = env_with_ca(&ca);
        let id = env.register("mixed", json!({})).await;
        let other = env.register("other", json!({})).await;
        let name = "spiffe://example.org/mixed";
        add_name(&env, &id, "tls_client_auth_san_uri", name).await;
        let (_, secret) = env.add_secret(&id).await;
        let (_, other_secret) = env.add_secret(&other).await;
        let cert = ca.client(&[N::Uri(name)]);
        let chain = std::slice::from_ref(&cert);
        let cc = ("grant_type", "client_credentials");

        // A wrong secret beside a good certificate: the secret is the method, and fails.
        refused(
            &post(
                &env,
                "/oauth/token",
                &[cc, ("client_id", &id), ("client_secret", "wrong")],
                None,
                chain,
                None,
            )
            .await,
            "client authentication failed",
        );
        refused(
            &post(
                &env,
                "/oauth/token",
                &[cc],
                Some((&id, "wrong")),
                chain,
                None,
            )
            .await,
            "client authentication failed",
        );
        // Basic for another client, client_id of this one: refused.
        post(
            &env,
            "/oauth/token",
            &[cc, ("client_id", &id)],
            Some((&other, &other_secret)),
            chain,
            None,
        )
        .await
        .expect_oauth_error(400, "invalid_request");
        // A garbage assertion beside the certificate.
        let r = post(
            &env,
            "/oauth/token",
            &[
                cc,
                ("client_id", &id),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", "a.b.c"),
            ],
            None,
            chain,
            None,
        )
        .await;
        assert_eq!(
            r.status.as_u16(),
            401,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        // Two methods at once.
        post(
            &env,
            "/oauth/token",
            &[cc, ("client_id", &id), ("client_secret", &secret)],
            Some((&id, &secret)),
            chain,
            None,
        )
        .await
        .expect_oauth_error(400, "invalid_request");
        // The right secret with the certificate: fine (and bound, tested above).
        post(
            &env,
            "/oauth/token",
            &[cc],
            Some((&id, &secret)),
            chain,
            None,
        )
        .await
        .expect(200);
        // Other's secret, with this client's certificate, authenticates other only.
        let r = post(
            &env,
            "/oauth/token",
            &[cc],
            Some((&other, &other_secret)),
            chain,
            None,
        )
        .await;
        r.expect(200);
        let token = r.json()["access_token"].as_str().expect("t").to_owned();
        assert_eq!(jwt_parts(&token).1["sub"], json!(other));
    }

    #[tokio::test]
    async fn introspection_and_revocation_authenticate_by_certificate_too() {
        let ca = Authority::root();
        let env = env_with_ca(&ca);
        let id = env.register("endpoints", json!({})).await;
        let other = env.register("endpoints-other", json!({})).await;
        let name = "spiffe://example.org/endpoints";
        add_name(&env, &id, "tls_client_auth_san_uri", name).await;
        let cert = ca.client(&[N::Uri(name)]);
        let chain = std::slice::from_ref(&cert);
        let r = by_cert(&env, &id, chain).await;
        r.expect(200);
        let token = r.json()["access_token"].as_str().expect("t").to_owned();

        let r = post(
            &env,
            "/oauth/introspect",
            &[("client_id", &id), ("token", &token)],
            None,
            chain,
            None,
        )
        .await;
        r.expect(200);
        assert_eq!(r.json()["active"], true);
        // Another client id, or a certificate of another name: refused.
        refused(
            &post(
                &env,
                "/oauth/introspect",
                &[("client_id", &other), ("token", &token)],
                None,
                chain,
                None,
            )
            .await,
            "client authentication failed",
        );
        refused(
            &post(
                &env,
                "/oauth/revoke",
                &[("client_id", &id), ("token", &token)],
                None,
                &[ca.client(&[N::Uri("spiffe://example.org/x")])],
                None,
            )
            .await,
            "client authentication failed",
        );
        assert_eq!(env.introspect(&token).await["active"], true);
        post(
            &env,
            "/oauth/revoke",
            &[("client_id", &id), ("token", &token)],
            None,
            chain,
            None,
        )
        .await
        .expect(200);
        assert_eq!(env.introspect(&token).await["active"], false);
    }

    #[tokio::test]
    async fn certificate_failures_slow_the_client_down_and_are_recorded() {
        let ca = Authority::root();
        let env = env_with_ca(&ca);
        let id = env.register("throttled", json!({})).await;
        let name = "spiffe://example.org/throttled";
        add_name(&env, &id, "tls_client_auth_san_uri", name).await;
        let abuse = Arc::new(Abuse {
            throttle: Throttle::new(Settings {
                free_per_client: 2,
                free_per_source: 100,
                base: Duration::from_secs(30),
                max: Duration::from_secs(60),
                forget: Duration::from_secs(900),
                capacity: 64,
            }),
            body_read_timeout: Duration::from_secs(5),
            trusted_proxies: Vec::new(),
        });
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
        ];
        let wrong = [ca.client(&[N::Uri("spiffe://example.org/x")])];
        let untrusted = [Authority::root().client(&[N::Uri(name)])];
        refused(
            &post(&env, "/oauth/token", &form, None, &wrong, Some(&abuse)).await,
            "client authentication failed",
        );
        refused(
            &post(&env, "/oauth/token", &form, None, &untrusted, Some(&abuse)).await,
            "client_certificate_untrusted",
        );
        refused(
            &post(&env, "/oauth/token", &form, None, &wrong, Some(&abuse)).await,
            "client authentication failed",
        );
        // Backed off now, even with the right certificate.
        let good = [ca.client(&[N::Uri(name)])];
        let r = post(&env, "/oauth/token", &form, None, &good, Some(&abuse)).await;
        r.expect_oauth_error(429, "slow_down");

        // Each refusal is a token.refused event naming the client claimed.
        let mut events = Vec::new();
        for _ in 0..50 {
            let r = env
                .admin(Method::GET, "/v1/audit/events?kind=token.refused", None)
                .await;
            r.expect(200);
            events = r.json()["items"].as_array().expect("items").clone();
            if events.len() >= 3 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(events.len() >= 3, "{events:?}");
        for e in &events {
            assert_eq!(e["details"]["client_id"], json!(id), "{e}");
            assert_eq!(e["details"]["error"], "invalid_client", "{e}");
        }
    }

    #[tokio::test]
    async fn an_unknown_client_reads_like_a_known_one() {
        let ca = Authority::root();
        let env = env_with_ca(&ca);
        let known = env.register("known", json!({})).await;
        add_name(
            &env,
            &known,
            "tls_client_auth_san_uri",
            "spiffe://example.org/k",
        )
        .await;
        let bare = env.register("bare", json!({})).await;
        let key = KeyPair::generate().expect("key");
        let selfie = CertificateParams::new(vec!["x.example".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert")
            .der()
            .clone();
        for chain in [
            vec![ca.client(&[N::Uri("spiffe://example.org/x")])],
            vec![selfie],
            vec![
                ca.issue(|p| {
                    p.subject_alt_names = sans(&[N::Uri("spiffe://example.org/k")]);
                    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
                    p.not_after = rcgen::date_time_ymd(2021, 1, 1);
                })
                .der,
            ],
        ] {
            let answers: Vec<(u16, Value)> = futures_like(
                &env,
                &chain,
                &[
                    &known,
                    &bare,
                    "agt_01JA0000000000000000000000",
                    "not-an-agent-id",
                ],
            )
            .await;
            for a in &answers[1..] {
                assert_eq!(a, &answers[0], "{answers:?}");
            }
        }
    }

    async fn futures_like(
        env: &Env,
        chain: &[CertificateDer<'static>],
        ids: &[&str],
    ) -> Vec<(u16, Value)> {
        let mut out = Vec::new();
        for id in ids {
            let r = by_cert(env, id, chain).await;
            out.push((r.status.as_u16(), r.json()));
        }
        out
    }

    /// The key of `key` as a JWK (Ed25519 or P-256).
    fn jwk_of(key: &KeyPair) -> Value {
        let url =
            |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
        let raw = key.public_key_raw();
        if raw.len() == 32 {
            json!({"kty": "OKP", "crv": "Ed25519", "x": url(raw)})
        } else {
            json!({"kty": "EC", "crv": "P-256", "x": url(&raw[1..33]), "y": url(&raw[33..65])})
        }
    }

    fn b64(b: &[u8]) -> String {
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b)
    }

    #[tokio::test]
    async fn x5c_registration_edge_cases() {
        let env = Env::with_config(|c| c.client_certs.asked = true);
        let id = env.register("x5c-edges", json!({})).await;
        let add = |jwk: Value| {
            let env = &env;
            let id = id.clone();
            async move {
                env.admin(
                    Method::POST,
                    &format!("/v1/agents/{id}/credentials"),
                    Some(json!({"type": "public_key", "jwk": jwk})),
                )
                .await
            }
        };
        let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        let p256 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
        let cert_of = |k: &KeyPair| {
            CertificateParams::new(vec!["agent.example".to_owned()])
                .expect("params")
                .self_signed(k)
                .expect("cert")
                .der()
                .clone()
        };
        let (ed_cert, p256_cert, p384_cert) = (cert_of(&ed), cert_of(&p256), cert_of(&p384));
        let with = |k: &KeyPair, x5c: Value| {
            let mut j = jwk_of(k);
            j["x5c"] = x5c;
            j
        };
        // Refused: another curve's certificate, a certificate not a string, a private
        // member, a huge string, an x5c of a CA-issued certificate of another key.
        let mut private = with(&ed, json!([b64(&ed_cert)]));
        private["d"] = json!("AAAA");
        for (jwk, status) in [
            (with(&ed, json!([b64(&p256_cert)])), 400),
            (with(&p256, json!([b64(&ed_cert)])), 400),
            (with(&p256, json!([b64(&p384_cert)])), 400),
            (with(&ed, json!([1])), 400),
            (with(&ed, json!([null])), 400),
            (with(&ed, json!([[b64(&ed_cert)]])), 400),
            (with(&ed, json!({"0": b64(&ed_cert)})), 400),
            (with(&ed, Value::Null), 400),
            (private, 400),
            (with(&ed, json!([format!("{} ", b64(&ed_cert))])), 400),
        ] {
            let r = add(jwk.clone()).await;
            assert_eq!(
                r.status.as_u16(),
                status,
                "{jwk}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
        // Huge: refused one way or another, no panic.
        let r = add(with(&ed, json!([b64(&vec![0x30; 600_000])]))).await;
        assert!(r.status.is_client_error(), "{}", r.status);
        // Accepted: a P-256 key with its own certificate; it authenticates.
        let r = add(with(&p256, json!([b64(&p256_cert)]))).await;
        r.expect(201);
        by_cert(&env, &id, std::slice::from_ref(&p256_cert))
            .await
            .expect(200);
        // The certificate of the same key but other bytes (re-issued): refused.
        let reissued = CertificateParams::new(vec!["other.example".to_owned()])
            .expect("params")
            .self_signed(&p256)
            .expect("cert")
            .der()
            .clone();
        refused(
            &by_cert(&env, &id, &[reissued]).await,
            "client authentication failed",
        );
    }
}

/// Finding (atk14): a certificate authentication that failed logged the `client_id`
/// sent, unverified and whole: a newline in it wrote a forged line into the server's
/// log (plain text, as the binary formats it), and its length was the form's. Only a
/// known agent's id is logged now, as with a refused secret or assertion.
mod client_auth_logs {
    use std::io::Write;
    use std::sync::Mutex;

    use super::*;

    /// Every line logged in this process (one test per process under nextest).
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_unverified_client_id_writes_no_line_of_its_own_into_the_log() {
        let lines = Lines::default();
        let sink = lines.clone();
        // As the binary's subscriber (main.rs): plain text, no ANSI.
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .finish();
        if tracing::subscriber::set_global_default(subscriber).is_err() {
            // Another test of this process set one first (cargo test, not nextest):
            // nothing to read here.
            return;
        }
        let ca = super::client_auth::Ca::new();
        let env = Env::with_client_ca(&ca);
        let forged = "agt_x\n2026-12-07T00:00:00.000000Z  INFO FORGED: access token issued";
        let long = "y".repeat(20_000);
        for id in [forged, long.as_str()] {
            for chain in [
                vec![ca.client("spiffe://example.org/x", false)],
                vec![ca.client("spiffe://example.org/x", true)],
            ] {
                env.token_by_certificate(id, &chain).await.expect(401);
            }
        }
        let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
        assert!(
            text.contains("client certificate"),
            "nothing logged: {text}"
        );
        for line in text.lines() {
            assert!(!line.contains("FORGED"), "a forged line: {line}");
            assert!(line.len() < 2_000, "a line of {} bytes", line.len());
        }
    }
}

/// Finding (atk14): a client that authenticated by its certificate alone got, by token
/// exchange, a token bound to nothing (a bearer token usable without the certificate's
/// key), while the client credentials grant binds its token to the certificate.
mod client_auth_exchange {
    use super::*;

    const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

    #[tokio::test]
    async fn a_token_exchanged_by_certificate_is_bound_to_it() {
        let ca = super::client_auth::Ca::new();
        let env = Env::with_client_ca(&ca);
        env.activate(POLICIES, &[SCHEMA]).await;
        let name = "spiffe://example.org/agent/exchange";
        let c = env
            .client_with(
                "exchanger",
                json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}]}),
            )
            .await;
        env.admin(
            Method::POST,
            &format!("/v1/agents/{}/credentials", c.id),
            Some(json!({"type": "tls_client_auth", "tls_client_auth_san_uri": name})),
        )
        .await
        .expect(201);
        let cert = ca.client(name, false);
        // A plain token (by secret, no certificate) and a mandate with no user.
        let own = env.token(&c).await;
        let r = env
            .bearer(
                &own,
                Method::POST,
                "/v1/mandates",
                Some(json!({"intent": "read contacts", "scope":
                    [{"actions": ["crm:read"], "resources": ["Crm::Contact/*"]}]})),
            )
            .await;
        r.expect(201);
        let mandate = r.json()["id"].as_str().expect("id").to_owned();
        let exchange = |basic: bool| {
            let form = [
                ("grant_type", TOKEN_EXCHANGE),
                ("client_id", c.id.as_str()),
                ("subject_token", own.as_str()),
                ("subject_token_type", ACCESS_TOKEN),
                ("mandate", mandate.as_str()),
            ];
            let mut req = Request::post("/oauth/token").header(header::CONTENT_TYPE, FORM);
            if basic {
                req = req.header(header::AUTHORIZATION, basic_of(&c));
            }
            let mut req = req.body(Body::from(encode(&form))).expect("request");
            req.extensions_mut().insert(peer(Some(&cert)));
            env.send(req)
        };

        // By the certificate: bound to it, and held to it.
        let r = exchange(false).await;
        r.expect(200);
        let token = r.json()["access_token"].as_str().expect("token").to_owned();
        let x5t = mandate_token::access::certificate_thumbprint(&cert);
        assert_eq!(jwt_parts(&token).1["cnf"], json!({"x5t#S256": x5t}));
        assert_eq!(r.json()["token_type"], "Bearer");
        env.authorize_over(&token, Some(&cert), true)
            .await
            .expect(200);
        super::refused(
            &env.authorize_over(&token, None, true).await,
            "certificate_bound_token_without_certificate",
        );

        // By the secret over the same connection: as before (unbound; docs/tokens.md).
        let r = exchange(true).await;
        r.expect(200);
        let token = r.json()["access_token"].as_str().expect("token").to_owned();
        assert!(jwt_parts(&token).1.get("cnf").is_none());
    }

    fn basic_of(c: &Client) -> String {
        super::basic(c)
    }
}

/// Finding (atk14): the client CA bundle took any certificate as a trust anchor, a
/// client's own (not a CA: basicConstraints absent or `cA` FALSE) too, though its loader
/// says it refuses what is not a usable CA certificate. A bundle holding one client's
/// certificate (an operator listing "the allowed client") let the holder of that
/// certificate's key issue certificates of any name and authenticate as any agent with a
/// `tls_client_auth` credential.
mod client_ca_bundle {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};

    #[tokio::test]
    async fn a_certificate_that_is_not_a_cas_is_no_client_ca() {
        // A real CA issues a client certificate for agent A's name; the operator puts
        // that certificate in the bundle.
        let ca = super::client_auth::Ca::new();
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.subject_alt_names = vec![SanType::URI(
            "spiffe://example.org/a".try_into().expect("ia5"),
        )];
        let key = KeyPair::generate().expect("key");
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let real_ca = Issuer::new(ca_params, ca_key);
        let mut leaf_params = p.clone();
        leaf_params.is_ca = IsCa::ExplicitNoCa;
        let leaf = leaf_params
            .signed_by(&key, &real_ca)
            .expect("leaf")
            .der()
            .clone();
        for not_a_ca in [leaf, ca.client("spiffe://example.org/a", false)] {
            let refused = mandate_tls::client_cert::ClientCa::from_certificates(
                std::slice::from_ref(&not_a_ca),
            );
            assert!(
                refused.as_ref().is_err_and(|e| e.contains("certificate 1")),
                "{refused:?}"
            );
            // Beside a CA, refused all the same (none is silently left out).
            assert!(
                mandate_tls::client_cert::ClientCa::from_certificates(&[ca.der.clone(), not_a_ca])
                    .is_err_and(|e| e.contains("certificate 2"))
            );
        }
        // A CA's certificate is one.
        mandate_tls::client_cert::ClientCa::from_certificates(std::slice::from_ref(&ca.der))
            .expect("a CA");
    }
}
