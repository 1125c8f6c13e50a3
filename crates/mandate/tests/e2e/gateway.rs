//! The HTTP gateway end to end: `mandate serve` with `[gateway]` routes in front of an
//! upstream test server on a loopback port. The upstream checks it received the
//! injected secret and never the agent's token; a denied request never reaches it;
//! responses stream through; the decision and the upstream's answer are in the audit
//! log; the secret is in no API answer, no database file and no log line.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Uri};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, data_dir};

pub(crate) const SECRET: &str = "crm-api-key-7f3a9c1e5b2d4068a1c3e5f7";

pub(crate) const SCHEMA: &str = r#"
namespace Crm { entity Contact; }
namespace Mandate {
  action "crm:read", "crm:write" in ["all"] appliesTo {
    principal: [Agent], resource: [Crm::Contact], context: { data_class: String },
  };
}
"#;

/// Reads are allowed; writes are not.
pub(crate) const POLICIES: &str =
    r#"@id("reads") permit (principal, action == Mandate::Action::"crm:read", resource);"#;

#[derive(Default, Clone)]
pub(crate) struct Seen {
    pub(crate) requests: Arc<Mutex<Vec<(String, HeaderMap)>>>,
}

/// An upstream API that records what reached it and streams its answer in chunks.
pub(crate) async fn upstream(seen: Seen) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let seen = seen.clone();
        async move {
            seen.requests
                .lock()
                .unwrap()
                .push((uri.to_string(), headers));
            let chunks =
                (0..5).map(|i| Ok::<_, std::io::Error>(Bytes::from(format!("chunk {i}\n"))));
            let stream = futures_util::stream::iter(chunks);
            Body::from_stream(stream)
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_gateway_injects_the_secret_strips_the_token_and_forwards_only_allows() {
    let seen = Seen::default();
    let up = upstream(seen.clone()).await;
    let (_t, dir) = data_dir();
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("mandate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[gateway]
listen = "127.0.0.1:0"

[[gateway.routes]]
prefix = "/crm"
upstream = "{up}/api"
actions = {{ GET = "crm:read", POST = "crm:write" }}
resource_type = "Crm::Contact"
resource_id = "{{path.1}}"
context = {{ data_class = "internal" }}
credential_secret = "crm-key"
credential_header = "X-Api-Key"
"#
        ),
    )
    .unwrap();
    let s = Server::start(&dir, &["--config", config.to_str().unwrap()], &[]);
    let admin = s.token.clone().expect("bootstrap token");
    let gw = s.gateway_base();

    // The secret goes in through the CLI, from a file (never on the command line).
    let value_file = files.path().join("crm-key");
    std::fs::write(&value_file, format!("{SECRET}\n")).unwrap();
    let (code, out, err) = crate::harness::cli(
        &s.addr,
        &admin,
        &[
            "gateway",
            "secret",
            "set",
            "crm-key",
            "--value-file",
            value_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(SECRET));
    let (code, out, _) = crate::harness::cli(&s.addr, &admin, &["gateway", "secret", "list"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("crm-key"), "{out}");
    let (st, list) = s
        .admin(&admin, Method::GET, "/v1/gateway/secrets", None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(list["items"][0]["name"], "crm-key");
    assert!(!list.to_string().contains(SECRET), "never returned");
    s.activate_policies(&admin, POLICIES, SCHEMA).await;
    let resource = format!("{gw}/crm");
    let (st, a) = s
        .admin(
            &admin,
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "crm-bot", "owner": "alice@example.com",
                        "boundary": {"grants": [{"actions": ["crm:*"], "resources": ["Crm::Contact/*"], "data_classes": ["internal"]}],
                                     "audiences": [resource]}})),
        )
        .await;
    assert_eq!(st, 201, "{a}");
    let agent = a["id"].as_str().unwrap().to_owned();
    let secret = s.add_secret(&admin, &agent).await;
    let (st, t) = s
        .token_basic(&agent, &secret, &[("resource", &resource)])
        .await;
    assert_eq!(st, 200, "{t}");
    let token = t["access_token"].as_str().unwrap().to_owned();
    let http = mandate_egress::default_builder().build().unwrap();

    // Allowed: forwarded with the secret, without the token, streamed back.
    let r = http
        .get(format!("{gw}/crm/contacts/c42?fields=name"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let decision = r
        .headers()
        .get("mandate-decision-id")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        decision.is_none(),
        "the decision id goes upstream, not back"
    );
    let body = r.text().await.unwrap();
    assert_eq!(body, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    {
        let got = seen.requests.lock().unwrap();
        assert_eq!(got.len(), 1);
        let (uri, headers) = &got[0];
        assert_eq!(uri, "/api/contacts/c42?fields=name");
        assert_eq!(headers.get("x-api-key").unwrap(), SECRET);
        assert!(
            headers.get("authorization").is_none(),
            "the agent's token is stripped"
        );
        assert!(
            !format!("{headers:?}").contains(&token),
            "the token is nowhere upstream"
        );
        assert!(headers.get("mandate-decision-id").is_some());
    }

    // Denied by policy: 403 problem+json, the upstream never sees it.
    let r = http
        .post(format!("{gw}/crm/contacts/c42"))
        .bearer_auth(&token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "denied");
    assert_eq!(p["reasons"][0], "no_permit");
    assert_eq!(seen.requests.lock().unwrap().len(), 1, "never reached");

    // No token, or a token for another audience: 401 with the metadata pointer.
    let r = http
        .get(format!("{gw}/crm/contacts/c42"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{gw}/.well-known/oauth-protected-resource/crm\""
        )),
        "{challenge}"
    );
    let meta: Value = http
        .get(format!("{gw}/.well-known/oauth-protected-resource/crm"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], resource);
    assert_eq!(
        meta["authorization_servers"][0],
        format!("http://{}", s.addr.trim_start_matches("http://"))
    );
    let (_, other) = s.token_basic(&agent, &secret, &[]).await;
    let r = http
        .get(format!("{gw}/crm/contacts/c42"))
        .bearer_auth(other["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a token for another audience");
    assert_eq!(seen.requests.lock().unwrap().len(), 1);

    // Suspended: the very next request is refused before the upstream.
    let (st, _) = s
        .admin(
            &admin,
            Method::POST,
            &format!("/v1/agents/{agent}/suspend"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let r = http
        .get(format!("{gw}/crm/contacts/c42"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(seen.requests.lock().unwrap().len(), 1);

    // The record: the decisions (with the gateway's view) and the upstream's answer.
    let (_, ev) = s
        .admin(
            &admin,
            Method::GET,
            &format!("/v1/audit/events?agent={agent}&kind=decision"),
            None,
        )
        .await;
    let items = ev["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .all(|e| e["details"]["via"]["gateway"] == "http"),
        "{ev}"
    );
    assert_eq!(items[0]["decision"], "allow");
    assert_eq!(items[0]["resource"]["id"], "c42");
    // Counted as the HTTP gateway's, by verdict and reason (issue 23, docs/metrics.md).
    assert_eq!(
        crate::metrics::decisions_counted(&s, &admin, "gateway_http").await,
        crate::metrics::decisions_recorded(items),
    );
    let (_, res) = s
        .admin(
            &admin,
            Method::GET,
            "/v1/audit/events?kind=gateway.result",
            None,
        )
        .await;
    assert_eq!(res["items"][0]["details"]["upstream_status"], 200, "{res}");

    // The secret is nowhere on disk in clear, nor in the log.
    for f in ["mandate.db", "mandate.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.join(f)) {
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "{f} holds the secret in clear"
            );
        }
    }
    assert!(!s.stderr.lock().unwrap().contains(SECRET));
    assert!(!s.stdout_text().contains(SECRET));
}

/// `GET {path}` with `token`, sent as raw bytes (an HTTP client would normalise the
/// path) on a connection closed after it: (status, problem JSON or Null).
async fn raw_get(gw: &str, path: &str, token: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut conn = tokio::net::TcpStream::connect(gw.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Issue 18, finding 1, against a real `mandate serve`: a CRM-only agent with a token
/// for `{gateway}/crm` cannot reach the billing route's upstream (with the CRM
/// credential) through dot segments in any spelling, nor walk around a forbid on
/// `Crm::Contact::"secret"` with `x/../secret` or `%73ecret`; nothing reaches the
/// upstream, and the record names the resource as decided, in canonical form.
#[tokio::test]
async fn issue18_f1_paths_that_leave_their_route_or_hide_a_forbidden_resource_are_refused() {
    let seen = Seen::default();
    let up = upstream(seen.clone()).await;
    let (_t, dir) = data_dir();
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("mandate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[gateway]
listen = "127.0.0.1:0"

[[gateway.routes]]
prefix = "/crm"
upstream = "{up}/api/crm"
actions = {{ GET = "crm:read" }}
resource_type = "Crm::Contact"
resource_id = "{{path.1}}"
context = {{ data_class = "internal" }}
credential_secret = "crm-key"
credential_header = "X-Api-Key"

[[gateway.routes]]
prefix = "/billing"
upstream = "{up}/api/billing"
actions = {{ GET = "billing:read" }}
resource_type = "Billing::Invoice"
resource_id = "{{path.1}}"
credential_secret = "billing-key"
"#
        ),
    )
    .unwrap();
    let s = Server::start(&dir, &["--config", config.to_str().unwrap()], &[]);
    let admin = s.token.clone().expect("bootstrap token");
    let gw = s.gateway_base();
    for name in ["crm-key", "billing-key"] {
        let (st, v) = s
            .admin(
                &admin,
                Method::PUT,
                &format!("/v1/gateway/secrets/{name}"),
                Some(json!({"value": format!("{name}-{SECRET}")})),
            )
            .await;
        assert!(st == 200 || st == 201 || st == 204, "{st} {v}");
    }
    let policies = r#"
@id("reads") permit (principal, action == Mandate::Action::"crm:read", resource);
@id("no-secret") forbid (principal, action, resource == Crm::Contact::"secret");
"#;
    s.activate_policies(&admin, policies, SCHEMA).await;
    let resource = format!("{gw}/crm");
    let (st, a) = s
        .admin(
            &admin,
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "crm-reader", "owner": "alice@example.com",
                        "boundary": {"grants": [{"actions": ["crm:read"], "resources": ["Crm::Contact/*"], "data_classes": ["internal"]}],
                                     "audiences": [resource]}})),
        )
        .await;
    assert_eq!(st, 201, "{a}");
    let agent = a["id"].as_str().unwrap().to_owned();
    let secret = s.add_secret(&admin, &agent).await;
    let (st, t) = s
        .token_basic(&agent, &secret, &[("resource", &resource)])
        .await;
    assert_eq!(st, 200, "{t}");
    let token = t["access_token"].as_str().unwrap().to_owned();

    // Out of /crm into /billing, in every spelling of `..`: ambiguous, nothing decided.
    for path in [
        "/crm/contacts/%2e%2e/%2e%2e/billing/invoices/i1",
        "/crm/contacts/../../billing/invoices/i1",
        "/crm/contacts/.%2e/.%2e/billing/invoices/i1",
        "/crm/contacts/%2E%2E/%2E%2E/billing/invoices/i1",
    ] {
        let (st, p) = raw_get(&gw, path, &token).await;
        assert_eq!(st, 400, "{path}: {p}");
        assert_eq!(p["code"], "ambiguous_path", "{path}");
    }
    // Around the forbid: decided on the canonical resource, and denied.
    for path in ["/crm/contacts/x/../secret", "/crm/contacts/%73ecret"] {
        let (st, p) = raw_get(&gw, path, &token).await;
        assert_eq!(st, 403, "{path}: {p}");
        assert_eq!(p["code"], "denied", "{path}");
        assert_eq!(p["reasons"][0], "forbidden_by_policy", "{path}: {p}");
    }
    // The billing route itself: the token is not for it.
    let (st, _) = raw_get(&gw, "/billing/invoices/i1", &token).await;
    assert_eq!(st, 401);
    assert!(
        seen.requests.lock().unwrap().is_empty(),
        "nothing reached the upstream: {:?}",
        seen.requests.lock().unwrap()
    );

    // What is allowed still goes through, to the path that was decided.
    let (st, _) = raw_get(&gw, "/crm/contacts/c42", &token).await;
    assert_eq!(st, 200);
    {
        let got = seen.requests.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "/api/crm/contacts/c42");
        assert_eq!(
            got[0].1.get("x-api-key").unwrap(),
            format!("crm-key-{SECRET}").as_str()
        );
    }

    // The record: three decisions (the ambiguous paths and the wrong audience decided
    // nothing), each on the canonical resource, with the path as sent beside it.
    let (_, ev) = s
        .admin(
            &admin,
            Method::GET,
            &format!("/v1/audit/events?agent={agent}&kind=decision"),
            None,
        )
        .await;
    let items = ev["items"].as_array().unwrap();
    let seen_in_log: Vec<(String, String, String, String)> = items
        .iter()
        .map(|e| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (
                text(&e["decision"]),
                text(&e["resource"]["id"]),
                text(&e["details"]["via"]["path"]),
                text(&e["details"]["via"]["raw_path"]),
            )
        })
        .collect();
    let want = |d: &str, id: &str, path: &str, raw: &str| {
        (d.to_owned(), id.to_owned(), path.to_owned(), raw.to_owned())
    };
    assert_eq!(
        seen_in_log,
        [
            want(
                "deny",
                "secret",
                "/crm/contacts/secret",
                "/crm/contacts/x/../secret"
            ),
            want(
                "deny",
                "secret",
                "/crm/contacts/secret",
                "/crm/contacts/%73ecret"
            ),
            want("allow", "c42", "/crm/contacts/c42", ""),
        ],
        "{ev}"
    );
}

/// Activates "reads are allowed" and registers an agent allowed `crm:read` on
/// `{gw}/crm`; returns a token for it.
pub(crate) async fn crm_reader(s: &Server, admin: &str, gw: &str) -> String {
    s.activate_policies(admin, POLICIES, SCHEMA).await;
    let resource = format!("{gw}/crm");
    let (st, a) = s
        .admin(
            admin,
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "crm-reader", "owner": "alice@example.com",
                        "boundary": {"grants": [{"actions": ["crm:read"], "resources": ["Crm::Contact/*"], "data_classes": ["internal"]}],
                                     "audiences": [resource]}})),
        )
        .await;
    assert_eq!(st, 201, "{a}");
    let agent = a["id"].as_str().unwrap().to_owned();
    let secret = s.add_secret(admin, &agent).await;
    let (st, t) = s
        .token_basic(&agent, &secret, &[("resource", &resource)])
        .await;
    assert_eq!(st, 200, "{t}");
    t["access_token"].as_str().unwrap().to_owned()
}

/// A `[gateway]` configuration with one `/crm` route to `{up}/api` that reads contacts
/// and injects the `crm-key` secret as `X-Api-Key`, followed by `extra`.
pub(crate) fn crm_config(up: &str, extra: &str) -> String {
    format!(
        r#"
[gateway]
listen = "127.0.0.1:0"

[[gateway.routes]]
prefix = "/crm"
upstream = "{up}/api"
actions = {{ GET = "crm:read" }}
resource_type = "Crm::Contact"
resource_id = "{{path.1}}"
context = {{ data_class = "internal" }}
credential_secret = "crm-key"
credential_header = "X-Api-Key"
{extra}"#
    )
}

/// Issue 18 follow-up 3: with `HTTP_PROXY`/`ALL_PROXY` set in `mandate serve`'s
/// environment (and no `NO_PROXY`), the gateway still goes straight to the upstream —
/// the proxy never sees a request carrying the injected credential.
#[tokio::test]
async fn issue18_followup3_an_environment_proxy_never_sees_the_injected_credential() {
    let seen = Seen::default();
    let up = upstream(seen.clone()).await;
    // A "proxy" that notes every connection and what came on it.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let proxied = Arc::new(Mutex::new(Vec::<String>::new()));
    let noted = Arc::clone(&proxied);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut conn, _)) = proxy.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            noted
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = conn
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let (_t, dir) = data_dir();
    let files = tempfile::tempdir().unwrap();
    let config = files.path().join("mandate.toml");
    std::fs::write(&config, crm_config(&up, "")).unwrap();
    let env = [
        ("HTTP_PROXY", proxy_url.as_str()),
        ("http_proxy", proxy_url.as_str()),
        ("ALL_PROXY", proxy_url.as_str()),
        ("all_proxy", proxy_url.as_str()),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ];
    let s = Server::start(&dir, &["--config", config.to_str().unwrap()], &env);
    let admin = s.token.clone().expect("bootstrap token");
    let gw = s.gateway_base();
    let (st, v) = s
        .admin(
            &admin,
            Method::PUT,
            "/v1/gateway/secrets/crm-key",
            Some(json!({"value": SECRET})),
        )
        .await;
    assert!(st == 200 || st == 201 || st == 204, "{st} {v}");
    let token = crm_reader(&s, &admin, &gw).await;
    let r = mandate_egress::default_builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{gw}/crm/contacts/c42"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(seen.requests.lock().unwrap().len(), 1, "reached directly");
    let proxied = proxied.lock().unwrap();
    assert!(
        proxied.is_empty(),
        "the proxy saw the gateway's request: {proxied:?}"
    );
}

/// Issue 18 follow-up 4: two routes with one prefix (the second would never be
/// matched) stop `mandate serve` at start, naming the prefix.
#[test]
fn issue18_followup4_a_repeated_route_prefix_stops_the_start() {
    let (t, dir) = data_dir();
    let config = t.path().join("mandate.toml");
    let second = r#"
[[gateway.routes]]
prefix = "/crm"
upstream = "http://127.0.0.1:9/other"
actions = { GET = "crm:write" }
resource_type = "Crm::Contact"
resource_id = "{path.1}"
"#;
    std::fs::write(&config, crm_config("http://127.0.0.1:9", second)).unwrap();
    // A server that starts anyway runs past the deadline and fails the test.
    let (status, _, err) = crate::interop_env::run_until(
        std::process::Command::new(crate::harness::BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .arg("--config")
            .arg(&config),
        "serve with two routes of one prefix",
        Duration::from_secs(30),
    );
    assert!(!status.success(), "started: {err}");
    assert!(
        err.contains("`/crm`") && err.contains("more than once"),
        "{err}"
    );
}
