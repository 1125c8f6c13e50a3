//! Outbound TLS and plain HTTP through the real binary (issue 25): a configured
//! `http://` target off the machine stops `mandate serve` with the key named; a trusted
//! issuer whose `jwks_uri` cannot be reached does not stop the node (its fetches are
//! counted as failed); the CLI's `--ca-file` is checked before any call.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{BIN, Server, cli, data_dir};

/// Each target's plain-HTTP URL to another host is a start error naming the key.
#[test]
fn plain_http_off_the_machine_stops_the_start() {
    let (t, dir) = data_dir();
    let secret = t.path().join("secret");
    std::fs::write(&secret, "a-webhook-secret-of-24-chars\n").unwrap();
    let cases = [
        (
            format!(
                "[approvals]\nwebhook_url = \"http://hooks.example.com/m\"\nwebhook_secret_file = \"{}\"\n",
                secret.display()
            ),
            "`approvals.webhook_url`: plain `http://` to `hooks.example.com` is refused",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:0\"\n[[gateway.routes]]\nprefix = \"/crm\"\n\
             upstream = \"http://crm.example.com\"\naction = \"crm:read\"\n\
             resource_type = \"Crm::Contact\"\nresource_id = \"{path.1}\"\n"
                .to_owned(),
            "gateway route `/crm`: `upstream`: plain `http://` to `crm.example.com` is refused",
        ),
        (
            "[[trusted_issuers]]\nissuer = \"https://idp.example.com\"\naudience = \"m\"\n\
             jwks_uri = \"http://idp.example.com/jwks\"\n"
                .to_owned(),
            "`jwks_uri`: plain `http://` to `idp.example.com` is refused",
        ),
    ];
    for (text, want) in cases {
        let conf = t.path().join("m.toml");
        std::fs::write(&conf, text).unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .env("MANDATE_CONFIG", &conf)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{want}: {err}");
        assert!(err.contains(want), "{want}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// An IdP that cannot be reached at start leaves the node serving; the failed fetches
/// show in `/metrics`.
#[tokio::test]
async fn an_unreachable_idp_does_not_stop_the_node() {
    let (t, dir) = data_dir();
    let conf = t.path().join("m.toml");
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    std::fs::write(
        &conf,
        "[[trusted_issuers]]\nissuer = \"https://idp.example.com\"\naudience = \"m\"\n\
         jwks_uri = \"https://127.0.0.1:9/jwks\"\njwks_refetch_min_secs = 1\n",
    )
    .unwrap();
    let conf = conf.display().to_string();
    let s = Server::start(&dir, &[], &[("MANDATE_CONFIG", conf.as_str())]);
    let admin = s.token.clone().unwrap();
    let want =
        "mandate_jwks_fetches_total{issuer=\"https://idp.example.com\",outcome=\"unreachable\"}";
    let start = Instant::now();
    loop {
        let (_, text) = metrics(&s, &admin).await;
        if text
            .lines()
            .any(|l| l.starts_with(want) && !l.ends_with(" 0"))
        {
            assert!(
                text.contains("mandate_jwks_usable_seconds{issuer=\"https://idp.example.com\"} 0"),
                "{text}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = s
        .admin(&admin, reqwest::Method::GET, "/v1/agents", None)
        .await;
    assert_eq!(status, 200, "the node serves");
}

async fn metrics(s: &Server, admin: &str) -> (u16, String) {
    let r = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `--ca-file` that is missing or not PEM is a usage error (2) before any call.
#[test]
fn the_clis_ca_file_is_checked_before_any_call() {
    let (t, _dir) = data_dir();
    let junk = t.path().join("junk.pem");
    std::fs::write(&junk, "not PEM\n").unwrap();
    for (file, want) in [
        (t.path().join("missing.pem"), "reading `ca_file`"),
        (junk, "`ca_file`"),
    ] {
        let f = file.display().to_string();
        let (code, _, err) = cli(
            "https://127.0.0.1:9",
            "mdt_admin_x",
            &["agent", "list", "--ca-file", &f],
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(want), "{err}");
    }
}
