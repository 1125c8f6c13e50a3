//! Abuse limits end to end (issue 25, part 4), real HTTP through the real listener: a
//! bounded script of wrong client secrets from 127.0.0.1 is slowed as configured (429
//! `slow_down`, `Retry-After` 1, 2, 4, then capped) while the right client from
//! 127.0.0.2 keeps getting tokens — and the right secret from the guessing address is
//! refused unchecked meanwhile; admin-token guessing likewise (429 `too_many_failures`);
//! a trickling body is cut with 408 at `limits.body_read_timeout_secs`, a half-sent head
//! at `limits.header_read_timeout_secs`; every refusal counted. Behind a trusted proxy
//! (`limits.trusted_proxies`), each forwarded client is its own source.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{Server, data_dir};

/// An HTTP client whose connections come from `ip` (127.0.0.1 and 127.0.0.2 both route
/// to the loopback interface on Linux).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    mandate_egress::default_builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
        .build()
        .unwrap()
}

/// `POST /oauth/token` (client credentials, Basic) from `http`: status, `Retry-After`,
/// body.
async fn token(
    s: &Server,
    http: &reqwest::Client,
    client: &str,
    secret: &str,
) -> (u16, Option<u64>, Value) {
    let res = http
        .post(s.url("/oauth/token"))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let retry = retry_after(&res);
    (res.status().as_u16(), retry, res.json().await.unwrap())
}

fn retry_after(res: &reqwest::Response) -> Option<u64> {
    res.headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap())
}

/// `GET /v1/agents` with `bearer` from `http`: status, `Retry-After`, body.
async fn list_agents(
    http: &reqwest::Client,
    s: &Server,
    bearer: &str,
) -> (u16, Option<u64>, Value) {
    let res = http
        .get(s.url("/v1/agents"))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    let retry = retry_after(&res);
    (
        res.status().as_u16(),
        retry,
        res.json().await.unwrap_or(Value::Null),
    )
}

/// The value of the sample `series` (name and labels as exposed) on `GET /metrics`.
async fn metric(s: &Server, http: &reqwest::Client, admin: &str, series: &str) -> f64 {
    let text = http
        .get(s.url("/metrics"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn guessed_client_secrets_are_slowed_while_the_right_client_elsewhere_gets_tokens() {
    let (_t, dir) = data_dir();
    let s = Server::start(
        &dir,
        &[],
        &[
            ("MANDATE_LIMITS_AUTH_FAILURES_FREE", "2"),
            ("MANDATE_LIMITS_AUTH_SOURCE_FAILURES_FREE", "100"),
            ("MANDATE_LIMITS_AUTH_BACKOFF_BASE_MS", "1000"),
            ("MANDATE_LIMITS_AUTH_BACKOFF_MAX_SECS", "4"),
        ],
    );
    let admin = s.token.clone().unwrap();
    let (agent, secret) = s.agent_with_secret(&admin, "guessed").await;
    let attacker = client_from([127, 0, 0, 1]);
    let owner = client_from([127, 0, 0, 2]);

    // Two free failures, then each further one blocks for 1, 2, 4, 4 s.
    for _ in 0..2 {
        let (st, _, b) = token(&s, &attacker, &agent, "wrong").await;
        assert_eq!((st, b["error"].as_str()), (401, Some("invalid_client")));
    }
    let mut waits = Vec::new();
    for _ in 0..4 {
        let (st, _, b) = token(&s, &attacker, &agent, "wrong").await;
        assert_eq!(
            (st, b["error"].as_str()),
            (401, Some("invalid_client")),
            "{b}"
        );
        let (st, retry, b) = token(&s, &attacker, &agent, "wrong").await;
        assert_eq!((st, b["error"].as_str()), (429, Some("slow_down")), "{b}");
        let retry = retry.expect("Retry-After");
        waits.push(retry);
        // Refused before the secret is checked: the right one too, from this address.
        let (st, _, _) = token(&s, &attacker, &agent, &secret).await;
        assert_eq!(st, 429);
        // The right client from another address is not slowed at all.
        let (st, _, b) = token(&s, &owner, &agent, &secret).await;
        assert_eq!(st, 200, "{b}");
        assert!(b["access_token"].is_string());
        tokio::time::sleep(Duration::from_millis(retry * 1000 + 150)).await;
    }
    assert_eq!(waits, [1, 2, 4, 4]);
    // Once the wait is over, the right secret from the guessing address works, and resets
    // its count: the next wrong guess is free again.
    let (st, _, b) = token(&s, &attacker, &agent, &secret).await;
    assert_eq!(st, 200, "{b}");
    let (st, _, _) = token(&s, &attacker, &agent, "wrong").await;
    assert_eq!(st, 401);
    let (st, _, _) = token(&s, &attacker, &agent, "wrong").await;
    assert_eq!(st, 401);
    assert!(
        metric(
            &s,
            &owner,
            &admin,
            "mandate_throttled_total{reason=\"client_auth\"}"
        )
        .await
            >= 8.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn guessed_admin_tokens_are_slowed_per_source() {
    let (_t, dir) = data_dir();
    let s = Server::start(
        &dir,
        &[],
        &[
            ("MANDATE_LIMITS_AUTH_SOURCE_FAILURES_FREE", "3"),
            ("MANDATE_LIMITS_AUTH_BACKOFF_BASE_MS", "1000"),
        ],
    );
    let admin = s.token.clone().unwrap();
    let attacker = client_from([127, 0, 0, 1]);
    let operator = client_from([127, 0, 0, 2]);
    let guess = "mat_0000000000000000000000000000000000000000000";
    for _ in 0..4 {
        let (st, _, b) = list_agents(&attacker, &s, guess).await;
        assert_eq!(
            (st, b["code"].as_str()),
            (401, Some("unauthenticated")),
            "{b}"
        );
    }
    let (st, retry, b) = list_agents(&attacker, &s, guess).await;
    assert_eq!(
        (st, b["code"].as_str()),
        (429, Some("too_many_failures")),
        "{b}"
    );
    assert_eq!(retry, Some(1));
    // Refused unlooked-up from that address, even the real token …
    assert_eq!(list_agents(&attacker, &s, &admin).await.0, 429);
    // … and the operator elsewhere is not slowed.
    assert_eq!(list_agents(&operator, &s, &admin).await.0, 200);
    // The same back-off at the decision endpoint and introspection (one count per source).
    let res = attacker
        .post(s.url("/oauth/introspect"))
        .bearer_auth(guess)
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"], "slow_down");
    tokio::time::sleep(Duration::from_millis(1150)).await;
    assert_eq!(list_agents(&attacker, &s, guess).await.0, 401);
    let (st, retry, _) = list_agents(&attacker, &s, guess).await;
    assert_eq!((st, retry), (429, Some(2)));
    assert!(
        metric(
            &s,
            &operator,
            &admin,
            "mandate_throttled_total{reason=\"admin_token\"}"
        )
        .await
            >= 4.0
    );
}

/// Reads what the server sends on `conn` until it closes or `limit` passes.
async fn read_until_closed(conn: &mut tokio::net::TcpStream, limit: Duration) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(limit, conn.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickling_body_gets_408_and_a_half_sent_head_is_closed_in_time() {
    let (_t, dir) = data_dir();
    let s = Server::start(
        &dir,
        &[],
        &[
            ("MANDATE_LIMITS_BODY_READ_TIMEOUT_SECS", "1"),
            ("MANDATE_LIMITS_HEADER_READ_TIMEOUT_SECS", "1"),
        ],
    );
    let admin = s.token.clone().unwrap();
    let send = |head: String, part: &'static str| {
        let addr = s.addr.trim_start_matches("http://").to_owned();
        async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(head.as_bytes()).await.unwrap();
            c.write_all(part.as_bytes()).await.unwrap();
            let started = Instant::now();
            let text = read_until_closed(&mut c, Duration::from_secs(10)).await;
            (text, started.elapsed())
        }
    };
    // An admin API body and a token request body, each 10 bytes of a promised 100.
    let api = format!(
        "POST /v1/agents HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {admin}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n"
    );
    let (text, took) = send(api, "{\"name\": \"").await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let oauth = "POST /oauth/token HTTP/1.1\r\nhost: x\r\n\
                 content-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\n"
        .to_owned();
    let (text, took) = send(oauth, "grant_type").await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("invalid_request"), "{text}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // Half a head: closed without an answer at the head deadline.
    let (text, took) = send("GET /healthz HTTP/1.1\r\n".to_owned(), "host: x\r\n").await;
    assert!(!text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let http = mandate_egress::default_builder().build().unwrap();
    assert!(metric(&s, &http, &admin, "mandate_body_timeouts_total").await >= 2.0);
    assert!(
        metric(
            &s,
            &http,
            &admin,
            "mandate_header_timeouts_total{listener=\"api\"}"
        )
        .await
            >= 1.0
    );
}

/// `POST /oauth/token` from `http` with `X-Forwarded-For: xff`: the status.
async fn token_forwarded(
    s: &Server,
    http: &reqwest::Client,
    client: &str,
    secret: &str,
    xff: &str,
) -> u16 {
    http.post(s.url("/oauth/token"))
        .basic_auth(client, Some(secret))
        .header("x-forwarded-for", xff)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Behind a trusted proxy (`limits.trusted_proxies`; here 127.0.0.1 plays the proxy),
/// the back-off counts each client's forwarded address: the guessing client is slowed,
/// another client through the same proxy is not; a client that is not a trusted proxy
/// cannot pick its source by writing the header.
#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_each_forwarded_client_is_its_own_source() {
    let (_t, dir) = data_dir();
    let s = Server::start(
        &dir,
        &[],
        &[
            ("MANDATE_LIMITS_AUTH_FAILURES_FREE", "2"),
            ("MANDATE_LIMITS_AUTH_SOURCE_FAILURES_FREE", "100"),
            ("MANDATE_LIMITS_AUTH_BACKOFF_BASE_MS", "5000"),
            ("MANDATE_LIMITS_TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    );
    let admin = s.token.clone().unwrap();
    let (agent, secret) = s.agent_with_secret(&admin, "proxied").await;
    let proxy = client_from([127, 0, 0, 1]);
    let direct = client_from([127, 0, 0, 2]);
    // Through the proxy: 198.51.100.1 guesses (a forged entry on its left changes
    // nothing) and is slowed after its free failures.
    let forged = "203.0.113.77, 198.51.100.1";
    for _ in 0..3 {
        assert_eq!(
            token_forwarded(&s, &proxy, &agent, "wrong", forged).await,
            401
        );
    }
    assert_eq!(
        token_forwarded(&s, &proxy, &agent, &secret, "198.51.100.1").await,
        429
    );
    assert_eq!(
        token_forwarded(&s, &proxy, &agent, &secret, "198.51.100.1, 127.0.0.1").await,
        429
    );
    // Another client through the same proxy is not slowed.
    assert_eq!(
        token_forwarded(&s, &proxy, &agent, &secret, "198.51.100.2").await,
        200
    );
    // Not a trusted proxy: its header is not believed, its socket address is its source.
    for _ in 0..3 {
        assert_eq!(
            token_forwarded(&s, &direct, &agent, "wrong", "198.51.100.9").await,
            401
        );
    }
    assert_eq!(
        token_forwarded(&s, &direct, &agent, &secret, "198.51.100.10").await,
        429
    );
    assert_eq!(
        token_forwarded(&s, &proxy, &agent, &secret, "198.51.100.9").await,
        200
    );
}
