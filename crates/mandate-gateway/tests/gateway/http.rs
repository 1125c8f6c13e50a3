//! The HTTP gateway at its boundary: a scripted `Authorizer` (the server's real one is
//! tested end to end in `crates/mandate/tests/e2e/gateway.rs`), a real upstream on a
//! loopback port that counts what reaches it, and the gateway on another. Nothing is
//! forwarded unless the answer is an allow; failures upstream are 502/504; templates
//! read the body when asked; oversized bodies are 413.

#![expect(clippy::expect_used, reason = "tests fail loudly")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use mandate_gateway::authz::{Answer, Ask, Authorizer, AuthzError, BoxFuture, Principal, Verdict};
use mandate_gateway::http::{Credential, HttpConfig, Route, Template};
use serde_json::{Value, json};

/// Answers by action: `*:deny` denies, `*:hold` needs approval, `*:down` is unavailable.
#[derive(Default)]
struct Scripted {
    asked: Mutex<Vec<Ask>>,
    changes: tokio::sync::watch::Sender<u64>,
}

impl Authorizer for Scripted {
    fn authorize(&self, ask: Ask) -> BoxFuture<'_, Result<Answer, AuthzError>> {
        Box::pin(async move {
            self.asked.lock().expect("lock").push(ask.clone());
            if ask.token != "good" {
                return Err(AuthzError::Unauthenticated("bad token".into()));
            }
            let verdict = match ask.action.rsplit(':').next() {
                Some("deny") => Verdict::Deny,
                Some("hold") => Verdict::ApprovalRequired,
                Some("down") => return Err(AuthzError::Unavailable("audit".into())),
                _ => Verdict::Allow,
            };
            Ok(Answer {
                verdict,
                reasons: vec!["scripted".into()],
                decision_id: "node:1".into(),
                agent: Some("agt_x".into()),
            })
        })
    }
    fn authenticate(&self, token: &str, _audience: &str) -> Result<Principal, AuthzError> {
        if token != "good" {
            return Err(AuthzError::Unauthenticated("bad token".into()));
        }
        Ok(Principal {
            agent: "agt_x".into(),
            token_id: "tok_x".into(),
            expires_at: i64::MAX,
        })
    }
    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
    fn check(&self, _ask: &Ask) -> Result<Verdict, AuthzError> {
        Ok(Verdict::Allow)
    }
    fn record_result(&self, _id: String, _result: Value) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
    fn issuer(&self) -> String {
        "http://mandate.test".into()
    }
    fn secret(&self, name: &str) -> Result<Option<String>, AuthzError> {
        Ok((name == "k").then(|| "s3cret".to_owned()))
    }
}

struct Upstream {
    url: String,
    hits: Arc<AtomicUsize>,
    last: Arc<Mutex<Option<(HeaderMap, Bytes)>>>,
}

async fn upstream() -> Upstream {
    let hits = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new(None));
    let (h, l) = (Arc::clone(&hits), Arc::clone(&last));
    let app = axum::Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .fallback(move |headers: HeaderMap, body: Bytes| {
            let (h, l) = (Arc::clone(&h), Arc::clone(&l));
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                *l.lock().expect("lock") = Some((headers, body));
                "ok"
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Upstream { url, hits, last }
}

fn route(prefix: &str, upstream: &str, action: &str) -> Route {
    Route {
        prefix: prefix.into(),
        upstream: upstream.into(),
        actions: [("*".to_owned(), Template::parse(action).expect("template"))].into(),
        resource_type: "T::R".into(),
        resource_id: Template::parse("{path.0}").expect("template"),
        context: BTreeMap::new(),
        credential: Some(Credential::Bearer { secret: "k".into() }),
    }
}

async fn gateway(routes: Vec<Route>, authz: Arc<Scripted>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = mandate_gateway::http::router(
        HttpConfig {
            public_url: url.clone(),
            routes,
            timeout: Duration::from_millis(500),
            max_body_bytes: 1024,
        },
        authz,
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn only_an_allow_is_forwarded_and_every_failure_is_named() {
    let up = upstream().await;
    let authz = Arc::new(Scripted::default());
    let routes = vec![
        route("/ok", &up.url, "x:read"),
        route("/no", &up.url, "x:deny"),
        route("/hold", &up.url, "x:hold"),
        route("/down", &up.url, "x:down"),
        route("/dead", "http://127.0.0.1:9", "x:read"),
        Route {
            resource_id: Template::parse("{body.id}").expect("template"),
            ..route("/body", &up.url, "x:{method}")
        },
    ];
    let gw = gateway(routes, Arc::clone(&authz)).await;
    let c = reqwest::Client::new();
    let get = |p: &str| c.get(format!("{gw}{p}")).bearer_auth("good").send();

    let r = get("/ok/r1").await.expect("send");
    assert_eq!(r.status(), 200);
    let (headers, _) = up.last.lock().expect("lock").clone().expect("reached");
    assert_eq!(
        headers.get("authorization").expect("injected"),
        "Bearer s3cret"
    );
    assert_eq!(up.hits.load(Ordering::SeqCst), 1);

    for (path, status, code) in [
        ("/no/r1", 403, "denied"),
        ("/hold/r1", 403, "approval_required"),
        ("/down/r1", 503, "decision_unavailable"),
        ("/nowhere", 404, "not_found"),
    ] {
        let r = get(path).await.expect("send");
        assert_eq!(r.status(), status, "{path}");
        let p: Value = r.json().await.expect("problem");
        assert_eq!(p["code"], code, "{path}");
    }
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        1,
        "none of those reached it"
    );

    let r = c.get(format!("{gw}/ok/r1")).send().await.expect("send");
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{gw}/ok/r1"))
        .bearer_auth("bad")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("error=\"invalid_token\""))
    );

    let r = get("/dead/r1").await.expect("send");
    assert_eq!(r.status(), 502);
    let r = get("/ok/slow").await.expect("send");
    assert_eq!(r.status(), 504, "the upstream answered too late");

    // A body field fills the resource id; the body is forwarded unchanged.
    let r = c
        .post(format!("{gw}/body"))
        .bearer_auth("good")
        .json(&json!({"id": "r9", "n": 1}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let ask = authz
        .asked
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("asked");
    assert_eq!(ask.resource_id, "r9");
    assert_eq!(ask.action, "x:post");
    let (_, body) = up.last.lock().expect("lock").clone().expect("reached");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json"),
        json!({"id": "r9", "n": 1})
    );
    let r = c
        .post(format!("{gw}/body"))
        .bearer_auth("good")
        .json(&json!({"other": 1}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400, "unmapped");
    let big = "x".repeat(4096);
    let r = c
        .post(format!("{gw}/ok/r1"))
        .bearer_auth("good")
        .body(big)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
}
