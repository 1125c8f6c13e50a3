//! The kill switch end to end against a real `mandate serve`: agent A holds a mandate for
//! a user and delegated part of it to agent B; `mandate incident contain A` makes A's own
//! token, A's mandate token and B's delegated token fail on the very next
//! `/v1/authorize`, and writes an incident bundle (0600, never over an existing file)
//! that `mandate audit verify FILE --key` accepts and rejects after a one-byte edit.
//! Then `mandate token revoke`, and an explicit, recorded resume that brings no old token
//! back.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{BIN, Server, cli, data_dir};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

const SCHEMA: &str = r#"namespace Billing {
  entity Invoice;
}
namespace Mandate {
  action "billing:read" in ["all"] appliesTo { principal: [Agent], resource: [Billing::Invoice] };
}
"#;

const POLICIES: &str = r#"@id("agents-request-mandates")
permit (principal, action == Mandate::Action::"mandate:request", resource);

@id("billing-reads")
permit (principal, action == Mandate::Action::"billing:read", resource);
"#;

/// Registers an agent with `boundary` and a client secret; returns (id, access token).
async fn agent(s: &Server, admin: &str, name: &str, boundary: Value) -> (String, String) {
    let (st, a) = s
        .admin(
            admin,
            Method::POST,
            "/v1/agents",
            Some(json!({"name": name, "owner": "ops@example.com", "boundary": boundary})),
        )
        .await;
    assert_eq!(st, 201, "{a}");
    let id = a["id"].as_str().unwrap().to_owned();
    let (st, c) = s
        .admin(
            admin,
            Method::POST,
            &format!("/v1/agents/{id}/credentials"),
            Some(json!({"type": "client_secret"})),
        )
        .await;
    assert_eq!(st, 201, "{c}");
    let (st, t) = s
        .token_basic(&id, c["client_secret"].as_str().unwrap(), &[])
        .await;
    assert_eq!(st, 200, "{t}");
    let token = t["access_token"].as_str().unwrap().to_owned();
    let secret = c["client_secret"].as_str().unwrap().to_owned();
    crate::harness::remember_client(&token, &id, &secret);
    (id, token)
}

async fn exchange(s: &Server, form: &[(&str, &str)]) -> String {
    let mut f = vec![("grant_type", TOKEN_EXCHANGE)];
    f.extend_from_slice(form);
    let mut req = s.http.post(s.url("/oauth/token"));
    if let Some((id, secret)) = crate::harness::client_of(form) {
        req = req.basic_auth(id, Some(secret));
    }
    let res = req.form(&f).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

/// (decision, first reason) of reading an invoice with `bearer`.
async fn read(s: &Server, bearer: &str) -> (String, String) {
    let res = s
        .http
        .post(s.url("/v1/authorize"))
        .bearer_auth(bearer)
        .json(&json!({"action": "billing:read",
                      "resource": {"type": "Billing::Invoice", "id": "inv-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let d: Value = res.json().await.unwrap();
    (
        d["decision"].as_str().unwrap().to_owned(),
        d["reasons"][0].as_str().unwrap_or("").to_owned(),
    )
}

fn claims(jwt: &str) -> Value {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwt.split('.').nth(1).unwrap())
        .unwrap();
    serde_json::from_slice(&b).unwrap()
}

/// Runs the CLI in `dir` (where a default bundle file lands).
fn cli_in(dir: &std::path::Path, addr: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("MANDATE_ADDR", addr)
        .env("MANDATE_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn contain_kills_own_mandate_and_delegated_tokens_and_the_bundle_verifies() {
    let (t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[("MANDATE_DEV_USER_TOKENS", "true")]);
    let admin = s.token.clone().unwrap();

    let reader =
        json!({"grants": [{"actions": ["billing:read"], "resources": ["Billing::Invoice/*"]}]});
    let (b, b_token) = agent(&s, &admin, "invoice-reader", reader.clone()).await;
    let (c, c_token) = agent(&s, &admin, "bystander", reader).await;
    let (a, a_token) = agent(
        &s,
        &admin,
        "billing-agent",
        json!({"grants": [{"actions": ["billing:*"], "resources": ["Billing::Invoice/*"]}],
               "delegates": [b]}),
    )
    .await;
    let policies = t.path().join("billing.cedar");
    let schema = t.path().join("billing.cedarschema");
    std::fs::write(&policies, POLICIES).unwrap();
    std::fs::write(&schema, SCHEMA).unwrap();
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &[
            "policy",
            "add",
            policies.to_str().unwrap(),
            "--schema",
            schema.to_str().unwrap(),
            "--activate",
        ],
    );
    assert_eq!(code, 0, "{err}");

    // A gets a mandate for alice, exchanges her token for a mandate token, and B gets a
    // token delegated from it.
    let (code, alice, err) = cli(
        &s.addr,
        &admin,
        &["dev", "issue-user-token", "--sub", "alice"],
    );
    assert_eq!(code, 0, "{err}");
    let alice = alice.trim().to_owned();
    let (st, m) = s
        .admin(
            &a_token,
            Method::POST,
            "/v1/mandates",
            Some(
                json!({"intent": "read alice's invoices", "user_token": alice,
                "scope": [{"actions": ["billing:read"], "resources": ["Billing::Invoice/*"]}]}),
            ),
        )
        .await;
    assert_eq!((st, m["status"].as_str()), (201, Some("active")), "{m}");
    let mandate = m["id"].as_str().unwrap().to_owned();
    let a_mandate = exchange(
        &s,
        &[
            ("subject_token", &alice),
            ("subject_token_type", JWT),
            ("actor_token", &a_token),
            ("actor_token_type", ACCESS_TOKEN),
            ("mandate", &mandate),
        ],
    )
    .await;
    let b_delegated = exchange(
        &s,
        &[
            ("subject_token", &a_mandate),
            ("subject_token_type", ACCESS_TOKEN),
            ("actor_token", &b_token),
            ("actor_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    assert_eq!(
        claims(&b_delegated)["act"],
        json!({"sub": b, "act": {"sub": a}})
    );
    let allowed = ("allow".to_owned(), "allowed_by_policy".to_owned());
    for token in [&a_token, &a_mandate, &b_delegated, &b_token, &c_token] {
        assert_eq!(read(&s, token).await, allowed);
    }

    // An existing --out file is refused before anything happens.
    let taken = t.path().join("taken.json");
    std::fs::write(&taken, "keep me").unwrap();
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["incident", "contain", &c, "--out", taken.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "keep me");
    assert_eq!(read(&s, &c_token).await, allowed, "C was not contained");

    // Contain A; the bundle lands in the working directory under its default name.
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let (code, out, err) = cli_in(
        &work,
        &s.addr,
        &admin,
        &[
            "incident",
            "contain",
            &a,
            "--reason",
            "exfiltration suspected",
        ],
    );
    assert_eq!(code, 0, "{err}");
    // The very next request of each of A's tokens, and of B's token delegated by A, fails.
    assert_eq!(read(&s, &a_token).await.0, "deny");
    assert_eq!(read(&s, &a_mandate).await.0, "deny");
    assert_eq!(read(&s, &b_delegated).await.0, "deny");
    assert_eq!(read(&s, &a_token).await.1, "token_revoked");
    assert_eq!(read(&s, &b_delegated).await.1, "token_revoked");
    for token in [&b_token, &c_token] {
        assert_eq!(read(&s, token).await, allowed);
    }
    assert!(out.contains(&format!("contained {a}")), "{out}");
    assert!(out.contains(&mandate), "{out}");

    let files: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let bundle_file = files[0].clone();
    let name = bundle_file
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        name.starts_with(&format!("incident-{a}-inc_")) && name.ends_with(".json"),
        "{name}"
    );
    assert!(out.contains(&name), "{out}");
    let mode = std::fs::metadata(&bundle_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let bytes = std::fs::read(&bundle_file).unwrap();
    let bundle: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(bundle["agent"], a.as_str());
    assert_eq!(bundle["evidence"]["mandates"][0]["id"], mandate.as_str());
    assert_eq!(bundle["evidence"]["mandates"][0]["user"]["sub"], "alice");

    // It verifies offline with only the node's public key...
    let (st, cp) = s
        .admin(&admin, Method::GET, "/v1/audit/checkpoints/latest", None)
        .await;
    assert_eq!(st, 200);
    let key = cp["public_key"].as_str().unwrap().to_owned();
    let verify = |file: &std::path::Path| {
        Command::new(BIN)
            .args(["audit", "verify", file.to_str().unwrap(), "--key", &key])
            .output()
            .unwrap()
    };
    let ok = verify(&bundle_file);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.starts_with("ok: incident bundle inc_"), "{stdout}");
    assert!(stdout.contains(&a), "{stdout}");
    // ...and a one-byte edit anywhere in it fails, with exit code 1.
    for at in [bytes.len() / 4, bytes.len() / 2, bytes.len() - 10] {
        let mut edited = bytes.clone();
        edited[at] = if edited[at] == b'1' { b'2' } else { b'1' };
        let tampered = t.path().join(format!("tampered-{at}.json"));
        std::fs::write(&tampered, &edited).unwrap();
        let bad = verify(&tampered);
        assert_eq!(bad.status.code(), Some(1), "byte {at}");
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("verification failed"),
            "{}",
            String::from_utf8_lossy(&bad.stderr)
        );
    }
    // The same command still verifies an exported log.
    let export = t.path().join("export.jsonl");
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["audit", "export", "--out", export.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let ok = verify(&export);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("events from node"));

    // One token by its id: B's own, as the audit log names it.
    let b_jti = claims(&b_token)["jti"].as_str().unwrap().to_owned();
    let (code, out, err) = cli(
        &s.addr,
        &admin,
        &["token", "revoke", &b_jti, "--reason", "leak"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&b_jti), "{out}");
    assert_eq!(
        read(&s, &b_token).await,
        ("deny".into(), "token_revoked".into())
    );
    let (code, _, err) = cli(&s.addr, &admin, &["token", "revoke", "not-a-jti"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid_field"), "{err}");

    // Resume is explicit and recorded; nothing from before comes back.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["agent", "resume", &a, "--reason", "false alarm"],
    );
    assert_eq!(code, 0, "{err}");
    for token in [&a_token, &a_mandate, &b_delegated] {
        assert_eq!(read(&s, token).await.0, "deny");
    }
    let (st, ev) = s
        .admin(
            &admin,
            Method::GET,
            &format!("/v1/audit/events?kind=agent.resumed&agent={a}"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(ev["items"][0]["details"]["reason"], "false alarm");
    let (st, ev) = s
        .admin(
            &admin,
            Method::GET,
            "/v1/audit/events?kind=incident.contained",
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(ev["items"][0]["details"]["incident"], bundle["incident"]);
}
