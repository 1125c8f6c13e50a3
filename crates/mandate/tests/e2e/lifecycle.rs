//! The walkthrough over real HTTP, the lifecycle's effect on tokens, and the CLI.

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, cli, data_dir};

fn claims(jwt: &str) -> (Value, Value) {
    let part = |i: usize| -> Value {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(i).unwrap())
            .unwrap();
        serde_json::from_slice(&b).unwrap()
    };
    (part(0), part(1))
}

#[tokio::test]
async fn walkthrough_register_token_introspect_suspend() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let (agent, secret) = s.agent_with_secret(&admin, "billing-bot").await;
    assert!(agent.starts_with("agt_") && agent.len() == 30);

    let (st, tok) = s
        .token_basic(
            &agent,
            &secret,
            &[
                ("scope", "crm:read"),
                ("resource", "https://crm.example.com"),
            ],
        )
        .await;
    assert_eq!(st, 200, "{tok}");
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["expires_in"], 300);
    let at = tok["access_token"].as_str().unwrap();
    let (header, c) = claims(at);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].is_string());
    assert_eq!(c["sub"], agent.as_str());
    assert_eq!(c["client_id"], agent.as_str());
    assert_eq!(c["aud"], "https://crm.example.com");
    assert_eq!(c["iss"], s.addr.as_str());
    assert_eq!(c["scope"], "crm:read");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    assert!(c["jti"].as_str().unwrap().starts_with("tok_"));

    assert_eq!(s.introspect(&admin, at).await["active"], true);
    let (st, _) = s
        .admin(
            &admin,
            Method::POST,
            &format!("/v1/agents/{agent}/suspend"),
            Some(json!({"reason": "drill"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        s.introspect(&admin, at).await,
        json!({"active": false}),
        "inactive on the very next call"
    );
    let (st, err) = s.token_basic(&agent, &secret, &[]).await;
    assert_eq!((st, err["error"].as_str()), (401, Some("invalid_client")));

    let (st, _) = s
        .admin(
            &admin,
            Method::POST,
            &format!("/v1/agents/{agent}/resume"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.introspect(&admin, at).await["active"], true);

    let (st, _) = s
        .admin(
            &admin,
            Method::POST,
            &format!("/v1/agents/{agent}/decommission"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.introspect(&admin, at).await["active"], false);
    let (st, e) = s
        .admin(
            &admin,
            Method::POST,
            &format!("/v1/agents/{agent}/resume"),
            None,
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (409, Some("invalid_transition")),
        "decommissioning is final"
    );
    let (st, _) = s.token_basic(&agent, &secret, &[]).await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn signing_key_rotation_keeps_old_tokens_valid() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let (agent, secret) = s.agent_with_secret(&admin, "rotating-bot").await;
    let (_, old) = s.token_basic(&agent, &secret, &[]).await;
    let old = old["access_token"].as_str().unwrap().to_owned();
    let (code, out, err) = cli(&s.addr, &admin, &["keys", "rotate", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rotated: Value = serde_json::from_str(&out).unwrap();
    let kids = s.published_kids().await;
    assert_eq!(kids.len(), 2);
    assert!(
        kids.iter().any(|k| rotated["kid"] == k.as_str())
            && kids.iter().any(|k| rotated["retired_kid"] == k.as_str())
    );
    assert_eq!(
        s.introspect(&admin, &old).await["active"],
        true,
        "old key still verifies its tokens"
    );
    let (_, new) = s.token_basic(&agent, &secret, &[]).await;
    let (h, _) = claims(new["access_token"].as_str().unwrap());
    assert_eq!(
        h["kid"], rotated["kid"],
        "new tokens are signed by the new key"
    );
    // No private key is on disk: the new one is sealed in the store, the retired one's
    // sealed half was erased by the rotation.
    assert!(!dir.join("keys").exists());
}

/// Issue 18 finding 2, end to end with short lifetimes: once a rotated-out key's
/// publication ends, every surface refuses what it signs — with no write in between to
/// rebuild anything. The test forges tokens with the retired key (planted before the
/// server starts, as a key file it imports: what a thief of that key could sign), each
/// within every lifetime rule, so the only reason left to refuse them is the key.
#[tokio::test]
async fn finding_2_a_retired_key_is_refused_everywhere_after_its_window_with_no_write() {
    use mandate_core::clock::{Clock as _, SystemClock};
    use mandate_token::access::{AccessClaims, Audience, issue};
    use mandate_token::keys::SigningKey;
    let (_t, dir) = data_dir();
    let env = [
        ("MANDATE_TOKEN_MAX_LIFETIME_SECS", "2"),
        ("MANDATE_TOKEN_DEFAULT_LIFETIME_SECS", "2"),
    ];
    let mut s = Server::start(&dir, &[], &env);
    let admin = s.token.clone().unwrap();
    let (agent, _secret) = s.agent_with_secret(&admin, "rotating-bot").await;
    // The current key's private half lives sealed in the store; to hold it, as a thief
    // of it would, the test plants a key the server imports from a key file at start.
    assert!(s.stop().success());
    let old: SigningKey = crate::harness::wind_back_to_a_key_file(&dir);
    let s = Server::start(&dir, &[], &env);
    let (code, out, err) = cli(&s.addr, &admin, &["keys", "rotate", "--json"]);
    assert_eq!(code, 0, "{err}");
    let rotated: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rotated["retired_kid"], old.kid());
    let issuer = s.url("");
    let issuer = issuer.trim_end_matches('/');
    let forge = |n: u32| {
        let now = SystemClock.now().secs();
        issue(
            &old,
            &AccessClaims {
                iss: issuer.to_owned(),
                sub: agent.clone(),
                aud: Audience::One(issuer.to_owned()),
                exp: now + 2,
                iat: now,
                nbf: now,
                jti: format!("tok_forged{n}"),
                client_id: agent.clone(),
                scope: None,
                act: None,
                mandate: None,
                parents: Vec::new(),
                cnf: None,
            },
        )
        .unwrap()
    };
    let until =
        mandate_core::time::Timestamp::parse(rotated["retired_published_until"].as_str().unwrap())
            .unwrap()
            .secs();
    // Inside the window the old key still verifies (the rotation keeps its tokens).
    assert_eq!(s.introspect(&admin, &forge(0)).await["active"], true);
    // Whole seconds: waking up to a second late only shortens what is left of nothing.
    let wait = (until - SystemClock.now().secs() + 1).max(0);
    tokio::time::sleep(std::time::Duration::from_secs(wait.unsigned_abs())).await;
    // The window is over; nothing was written since the rotation.
    let kids = s.published_kids().await;
    assert!(kids.iter().all(|k| k != old.kid()), "{kids:?}");
    let r = s
        .http
        .post(s.url("/v1/authorize"))
        .bearer_auth(forge(1))
        .json(&json!({"action": "crm:read", "resource": {"type": "Crm::Contact", "id": "c1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["code"], "invalid_token", "{d}");
    assert!(
        d["detail"]
            .as_str()
            .unwrap()
            .contains("unknown signing key"),
        "{d}"
    );
    let r = s
        .http
        .get(s.url("/v1/mandates"))
        .bearer_auth(forge(2))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(s.introspect(&admin, &forge(3)).await["active"], false);
}

#[tokio::test]
async fn cli_covers_the_registry() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let run = |args: &[&str]| -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let (code, out, err) = cli(&s.addr, &admin, &a);
        assert_eq!(code, 0, "{args:?}: {err}");
        if out.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&out).unwrap()
        }
    };
    let a = run(&[
        "agent",
        "register",
        "--name",
        "cli-bot",
        "--owner",
        "bob@example.com",
        "--purpose",
        "tests",
        "--label",
        "team=qa",
        "--boundary",
        r#"{"max_token_lifetime_secs": 60}"#,
    ]);
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(a["boundary"]["max_token_lifetime_secs"], 60);
    run(&[
        "agent",
        "register",
        "--name",
        "other-bot",
        "--owner",
        "carol@example.com",
    ]);
    let listed = run(&["agent", "list", "--label", "team=qa"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let listed = run(&["agent", "list", "--owner", "carol@example.com"]);
    assert_eq!(listed["items"][0]["name"], "other-bot");
    let page = run(&["agent", "list", "--limit", "1"]);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let page2 = run(&["agent", "list", "--limit", "1", "--cursor", &cursor]);
    assert_eq!(page2["items"][0]["name"], "other-bot");
    assert_eq!(run(&["agent", "show", &id])["owner"], "bob@example.com");
    assert_eq!(
        run(&["agent", "update", &id, "--purpose", "more tests"])["purpose"],
        "more tests"
    );

    let c = run(&["agent", "credential", "add", &id, "--type", "client-secret"]);
    let cred = c["credential"]["id"].as_str().unwrap().to_owned();
    let secret = c["client_secret"].as_str().unwrap().to_owned();
    let (st, tok) = s.token_basic(&id, &secret, &[]).await;
    assert_eq!(
        (st, tok["expires_in"].as_i64()),
        (200, Some(60)),
        "boundary caps the lifetime"
    );
    let r = run(&[
        "agent",
        "credential",
        "rotate",
        &id,
        &cred,
        "--overlap-secs",
        "0",
    ]);
    let new_secret = r["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        s.token_basic(&id, &secret, &[]).await.0,
        401,
        "zero overlap: the old secret is done"
    );
    assert_eq!(s.token_basic(&id, &new_secret, &[]).await.0, 200);
    let listed = run(&["agent", "credential", "list", &id]);
    let states: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["expired", "active"]);
    assert!(
        !listed.to_string().contains("mcs_"),
        "secrets are never listed"
    );
    let new_cred = r["credential"]["id"].as_str().unwrap().to_owned();
    run(&["agent", "credential", "revoke", &id, &new_cred]);
    assert_eq!(s.token_basic(&id, &new_secret, &[]).await.0, 401);

    assert_eq!(
        run(&[
            "agent",
            "suspend",
            &id,
            "--reason",
            "cli",
            "--revoke-tokens"
        ])["status"],
        "suspended"
    );
    assert_eq!(run(&["agent", "resume", &id])["status"], "active");
    assert_eq!(
        run(&["agent", "decommission", &id])["status"],
        "decommissioned"
    );

    let t = run(&[
        "admin-token",
        "create",
        "--name",
        "soc",
        "--role",
        "auditor",
    ]);
    let auditor = t["token"].as_str().unwrap().to_owned();
    let (code, _, err) = cli(
        &s.addr,
        &auditor,
        &["agent", "register", "--name", "x", "--owner", "y@z"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("forbidden"), "{err}");
    let (code, out, _) = cli(&s.addr, &auditor, &["agent", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("cli-bot"));
    run(&[
        "admin-token",
        "revoke",
        t["admin_token"]["id"].as_str().unwrap(),
    ]);
    let (code, _, err) = cli(&s.addr, &auditor, &["agent", "list"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        run(&["admin-token", "list"])["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Usage errors exit 2; an unreachable server exits 1.
    assert_eq!(
        cli(
            &s.addr,
            &admin,
            &[
                "agent", "register", "--name", "n", "--owner", "o", "--label", "nolabel"
            ]
        )
        .0,
        2
    );
    assert_eq!(cli("http://127.0.0.1:9", &admin, &["agent", "list"]).0, 1);
}

/// `mandate agent key`: a key file that is never replaced, a public JWK the server
/// takes, and assertions that get a token once, name the agent and end when asked.
#[tokio::test]
async fn agent_key_makes_a_registrable_key_and_single_use_assertions() {
    let (t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let key = t.path().join("k.pem");
    let key_arg = key.to_str().unwrap();
    let (code, jwk, err) = cli(
        &s.addr,
        &admin,
        &["agent", "key", "generate", "--out", key_arg],
    );
    assert_eq!(code, 0, "{err}");
    let jwk: Value = serde_json::from_str(&jwk).unwrap();
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert!(
        jwk.get("d").is_none(),
        "only the public key is printed: {jwk}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let before = std::fs::read(&key).unwrap();
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["agent", "key", "generate", "--out", key_arg],
    );
    assert_eq!(code, 2, "an existing key file is never replaced: {err}");
    assert_eq!(std::fs::read(&key).unwrap(), before);

    let (_, agent) = s
        .admin(
            &admin,
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "keyed", "owner": "a@example.com"})),
        )
        .await;
    let id = agent["id"].as_str().unwrap();
    let (st, _) = s
        .admin(
            &admin,
            Method::POST,
            &format!("/v1/agents/{id}/credentials"),
            Some(json!({"type": "public_key", "jwk": jwk})),
        )
        .await;
    assert_eq!(st, 201);
    let sign_as = |agent: &str, extra: &[&str]| {
        let mut args = vec![
            "agent",
            "key",
            "assertion",
            "--key",
            key_arg,
            "--agent",
            agent,
        ];
        args.extend_from_slice(extra);
        cli(&s.addr, &admin, &args)
    };
    let sign = |extra: &[&str]| sign_as(id, extra);
    let (code, assertion, err) = sign(&[]);
    assert_eq!(code, 0, "{err}");
    let (_, c) = claims(assertion.trim());
    assert_eq!((c["iss"].as_str(), c["sub"].as_str()), (Some(id), Some(id)));
    assert_eq!(c["aud"], format!("{}/oauth/token", s.addr));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 60);
    let token = |a: &str| {
        let form = [
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", a),
        ];
        let http = s.http.clone();
        let url = s.url("/oauth/token");
        let form: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        async move {
            let r = http.post(url).form(&form).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (st, body) = token(assertion.trim()).await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = token(assertion.trim()).await;
    assert_eq!(
        (st, body["error"].as_str()),
        (401, Some("invalid_client")),
        "a replay: {body}"
    );
    // Another agent's id in the assertion does not verify with this agent's key.
    let (code, other, _) = sign_as("agt_01J00000000000000000000000", &[]);
    assert_eq!(code, 0);
    let (st, _) = token(other.trim()).await;
    assert_eq!(st, 401);
    for bad in [&["--lifetime-secs", "0"][..], &["--lifetime-secs", "601"]] {
        assert_eq!(sign(bad).0, 2, "{bad:?}");
    }
    std::fs::write(t.path().join("not-a-key.pem"), "hello").unwrap();
    let bad_key = t.path().join("not-a-key.pem");
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &[
            "agent",
            "key",
            "assertion",
            "--key",
            bad_key.to_str().unwrap(),
            "--agent",
            id,
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("not an Ed25519 PKCS#8 PEM key"), "{err}");
}
