//! `POST /v1/discovery/runs` through the router: a `kubectl get pods -o json` document
//! (mandate-govern's fixture) reconciled with the registry, drafts registered suspended
//! and matched by the next run, the route's own 64 MiB body limit, and the refusals.

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::{Value, json};

use super::{Env, Reply};

/// `kubectl get pods -l app=ai-agent -A -o json` as mandate-govern's tests hold it: a
/// pod linked to `agt_01J00000000000000000000001` (not registered here) and `scraper`,
/// owned by `bob`, with no link.
const KUBECTL_PODS: &str =
    include_str!("../../../mandate-govern/tests/data/discover/kubectl_pods/input.json");

impl Env {
    async fn discover(&self, bearer: &str, query: &str, body: impl Into<Body>) -> Reply {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/discovery/runs?{query}"))
            .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .expect("request");
        self.send(req).await
    }
}

fn names(list: &Value, at: &str) -> Vec<String> {
    list.as_array()
        .expect("list")
        .iter()
        .map(|x| {
            x.pointer(at)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_run_reconciles_and_register_drafts_what_the_next_run_matches() {
    let env = Env::new();
    let admin = env.admin.clone();
    let r = env
        .discover(&admin, "source=kubernetes", KUBECTL_PODS)
        .await;
    r.expect(200);
    let run = r.json();
    assert_eq!(run["source"], "kubernetes", "{run}");
    assert_eq!(run["selector"], "app=ai-agent", "{run}");
    assert_eq!(run["register"], false, "{run}");
    assert_eq!(
        run["counts"],
        json!({"found": 2, "matched": 0, "shadows": 2, "ghosts": 0, "registered": 0,
               "not_registered": 0}),
        "{run}"
    );
    // By item: scope `agents` before `research`.
    assert_eq!(
        names(&run["shadows"], "/item/name"),
        ["support-agent-7d9f8b6c5-x2k4q", "scraper"]
    );
    assert_eq!(
        names(&run["shadows"], "/reason"),
        ["unknown_agent", "unregistered"]
    );
    assert_eq!(run["shadows"][1]["item"]["owner"], "bob", "{run}");
    assert_eq!(run["shadows"][1]["item"]["labels"]["owner"], "bob", "{run}");

    let r = env
        .discover(&admin, "source=kubernetes&register=true", KUBECTL_PODS)
        .await;
    r.expect(200);
    let run = r.json();
    assert_eq!(run["counts"]["registered"], 1, "{run}");
    let draft = run["registered"][0]["agent"]
        .as_str()
        .expect("agent")
        .to_owned();
    assert_eq!(run["registered"][0]["name"], "scraper", "{run}");
    let agent = env
        .admin(Method::GET, &format!("/v1/agents/{draft}"), None)
        .await;
    agent.expect(200);
    let agent = agent.json();
    assert_eq!(agent["status"], "suspended", "{agent}");
    assert_eq!(agent["owner"], "bob", "{agent}");
    assert_eq!(agent["boundary"]["grants"], json!([]), "{agent}");
    assert_eq!(
        agent["labels"]["mandate.dev/source"], "kubernetes",
        "{agent}"
    );
    assert_eq!(agent["labels"]["mandate.dev/name"], "scraper", "{agent}");
    assert_eq!(agent["labels"]["mandate.dev/scope"], "research", "{agent}");

    let r = env
        .discover(&admin, "source=kubernetes&register=true", KUBECTL_PODS)
        .await;
    r.expect(200);
    let run = r.json();
    assert_eq!(run["counts"]["registered"], 0, "{run}");
    assert_eq!(run["matched"][0]["agent"], draft.as_str(), "{run}");
    assert_eq!(run["matched"][0]["rule"], "labels", "{run}");
    assert_eq!(run["matched"][0]["status"], "suspended", "{run}");

    // Each run is one audit event.
    let r = env
        .admin(Method::GET, "/v1/audit/events?kind=discovery.run", None)
        .await;
    r.expect(200);
    assert_eq!(
        r.json()["items"].as_array().map(Vec::len),
        Some(3),
        "{}",
        r.json()
    );
}

#[tokio::test]
async fn the_route_takes_bodies_past_the_api_limit_up_to_64_mib() {
    let env = Env::new();
    let admin = env.admin.clone();
    // About 300 KiB: over the 64 KiB of every other route.
    let pods: Vec<Value> = (0..3000)
        .map(|i| {
            json!({"kind": "Pod", "metadata": {"name": format!("p{i}"), "namespace": "ns",
                   "uid": format!("u{i}"), "labels": {"app": "ai-agent"}}})
        })
        .collect();
    let doc = json!({"kind": "List", "items": pods}).to_string();
    assert!(doc.len() > 2 * super::MAX_BODY);
    let r = env.discover(&admin, "source=kubernetes", doc.clone()).await;
    r.expect(200);
    assert_eq!(r.json()["counts"]["shadows"], 3000);
    // Other routes keep theirs.
    let r = env
        .admin(
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "x", "owner": "y", "purpose": doc})),
        )
        .await;
    r.expect(413);
    // Past 64 MiB: refused before it is read whole.
    let big = vec![b' '; (64 << 20) + 1];
    let r = env.discover(&admin, "source=kubernetes", big).await;
    r.expect(413);
    assert_eq!(r.json()["code"], "body_too_large");
}

#[tokio::test]
async fn clouds_have_no_default_selector_and_refusals_have_stable_codes() {
    let env = Env::new();
    let admin = env.admin.clone();
    let aws = include_str!("../../../mandate-govern/tests/data/discover/aws/input.json");
    let r = env.discover(&admin, "source=aws", aws).await;
    r.expect(200);
    assert_eq!(r.json()["selector"], "");
    assert!(
        r.json()["counts"]["found"].as_u64() > Some(0),
        "{}",
        r.json()
    );
    for (query, body, code) in [
        ("source=kubernetes", "{", "not_json"),
        ("source=kubernetes", r#"{"items": {}}"#, "bad_shape"),
        ("source=azure", r#"{"value": [{"name": 3}]}"#, "bad_shape"),
        ("source=k8s", "{}", "invalid_query"),
        ("source=aws&selector=a%3Db%3Dc", "{}", "invalid_query"),
        ("source=aws&register=yes", "{}", "invalid_query"),
        ("source=aws&source=gcp", "{}", "invalid_query"),
    ] {
        let r = env.discover(&admin, query, body).await;
        r.expect(400);
        assert_eq!(r.json()["code"], code, "{query} {body}: {}", r.json());
    }
    let r = env
        .admin(Method::GET, "/v1/audit/events?kind=discovery.run", None)
        .await;
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(1));
}

/// A request body that never sends a byte: a slow client.
struct Stalled;

impl http_body::Body for Stalled {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

/// Regression (atk11): the run permit was taken after the body was read, so every
/// request past the two that read at once buffered its up to 64 MiB and then waited:
/// four parallel 64 MiB runs held 7.2 GB. Now the permit comes first, and a third
/// request is refused (409 `discovery_running`) without its body being read.
#[tokio::test]
async fn a_third_run_is_refused_before_its_body_is_read() {
    use tower::ServiceExt as _;
    let env = Env::new();
    let admin = env.admin.clone();
    let stalled: Vec<_> = (0..2)
        .map(|_| {
            let req = Request::builder()
                .method(Method::POST)
                .uri("/v1/discovery/runs?source=kubernetes")
                .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::new(Stalled))
                .expect("request");
            tokio::spawn(env.app.clone().oneshot(req))
        })
        .collect();
    // Let both reach their body reads.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = env
        .discover(&admin, "source=kubernetes", KUBECTL_PODS)
        .await;
    r.expect(409);
    assert_eq!(r.json()["code"], "discovery_running", "{}", r.json());
    // A refused request takes no permit, and a bad one none either.
    let r = env.discover(&admin, "source=k8s", "{}").await;
    assert_eq!(r.json()["code"], "invalid_query", "{}", r.json());
    // A client that goes away gives its permit back.
    for s in stalled {
        s.abort();
        assert!(s.await.is_err(), "a stalled run ended on its own");
    }
    env.discover(&admin, "source=kubernetes", KUBECTL_PODS)
        .await
        .expect(200);
}
