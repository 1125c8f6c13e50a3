//! Mandates end to end against a real `mandate serve` (development user tokens on,
//! `approvers` the approver group): an agent asks for a mandate for a user, policy holds
//! it for a human, the user cannot approve it for herself, an approver approves it with
//! the CLI, the agent exchanges the user's token for a mandate token (RFC 8693), a second
//! agent gets a delegated token from it, decisions follow the mandate and the chain, a
//! revocation stops both tokens, and the audit log names the user, the mandate and the
//! chain. Then bad input through the token endpoint and the approval API.

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
  entity Account;
}
namespace Mandate {
  action "billing:read" in ["all"] appliesTo { principal: [Agent], resource: [Billing::Invoice] };
  action "billing:refund" in ["all"] appliesTo { principal: [Agent], resource: [Billing::Invoice] };
  action "billing:delete" in ["all"] appliesTo { principal: [Agent], resource: [Billing::Invoice] };
}
"#;

const POLICIES: &str = r#"// Any agent may ask; a mandate that can refund needs a human's approval.
@id("agents-request-mandates")
permit (principal, action == Mandate::Action::"mandate:request", resource);

@id("refunds-need-approval")
@approval
forbid (principal, action == Mandate::Action::"mandate:request", resource)
when { resource.actions.contains("billing:refund") };

// Billing only on behalf of someone in finance.
@id("billing-for-finance")
permit (
  principal,
  action in [Mandate::Action::"billing:read", Mandate::Action::"billing:refund",
             Mandate::Action::"billing:delete"],
  resource
)
when { context has user && context.user in Mandate::Group::"finance" };
"#;

/// The JWT's claims, unverified.
fn claims(jwt: &str) -> Value {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jwt.split('.').nth(1).unwrap())
        .unwrap();
    serde_json::from_slice(&b).unwrap()
}

/// The CLI with `--json`; (exit code, JSON or Null, stderr).
fn cli_json(addr: &str, token: &str, args: &[&str]) -> (i32, Value, String) {
    let mut a = args.to_vec();
    a.push("--json");
    let (code, out, err) = cli(addr, token, &a);
    let v = serde_json::from_str(&out).unwrap_or(Value::Null);
    (code, v, err)
}

/// Registers an agent owned by ops with `boundary` and a client secret; returns (id,
/// its client-credentials access token).
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

/// `mandate dev issue-user-token`, as a script would use it: stdout is the token.
fn user_token(s: &Server, admin: &str, args: &[&str]) -> String {
    let mut a = vec!["dev", "issue-user-token"];
    a.extend_from_slice(args);
    let (code, out, err) = cli(&s.addr, admin, &a);
    assert_eq!(code, 0, "{err}");
    let token = out.trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{out}");
    token
}

/// A token exchange at `/oauth/token` with `form` (grant_type added).
async fn exchange(s: &Server, form: &[(&str, &str)]) -> (u16, Value) {
    let mut f = vec![("grant_type", TOKEN_EXCHANGE)];
    f.extend_from_slice(form);
    let mut req = s.http.post(s.url("/oauth/token"));
    if let Some((id, secret)) = crate::harness::client_of(form) {
        req = req.basic_auth(id, Some(secret));
    }
    let res = req.form(&f).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn authorize(s: &Server, bearer: &str, action: &str, resource: &str, ctx: Value) -> Value {
    let (ty, id) = resource.rsplit_once('/').unwrap();
    let res = s
        .http
        .post(s.url("/v1/authorize"))
        .bearer_auth(bearer)
        .json(&json!({"action": action, "resource": {"type": ty, "id": id}, "context": ctx}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// (decision, first reason).
fn verdict(d: &Value) -> (&str, &str) {
    (
        d["decision"].as_str().unwrap(),
        d["reasons"][0].as_str().unwrap_or(""),
    )
}

/// Flips one character in the middle of a JWT's signature.
fn forge(jwt: &str) -> String {
    let (head, sig) = jwt.rsplit_once('.').unwrap();
    let mut sig: Vec<char> = sig.chars().collect();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == 'A' { 'B' } else { 'A' };
    format!("{head}.{}", sig.into_iter().collect::<String>())
}

#[tokio::test]
async fn a_mandate_from_request_to_revocation() {
    let (t, dir) = data_dir();
    let s = Server::start(
        &dir,
        &[],
        &[
            ("MANDATE_DEV_USER_TOKENS", "true"),
            ("MANDATE_APPROVALS_APPROVER_GROUP", "approvers"),
        ],
    );
    let admin = s.token.clone().unwrap();

    // Agents: B reads invoices; A does anything to invoices and may delegate to B; C
    // is like B but A does not delegate to it.
    let reader =
        json!({"grants": [{"actions": ["billing:read"], "resources": ["Billing::Invoice/*"]}]});
    let (b, b_token) = agent(&s, &admin, "invoice-reader", reader.clone()).await;
    let (c, c_token) = agent(&s, &admin, "stranger", reader).await;
    let (a, a_token) = agent(
        &s,
        &admin,
        "billing-agent",
        json!({"grants": [{"actions": ["billing:*"], "resources": ["Billing::Invoice/*"],
                           "data_classes": ["*"]}],
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

    // Users from the development issuer.
    let alice = user_token(
        &s,
        &admin,
        &[
            "--sub",
            "alice",
            "--email",
            "alice@example.com",
            "--group",
            "finance",
        ],
    );
    let bob = user_token(&s, &admin, &["--sub", "bob", "--group", "approvers"]);
    let alice_approver = user_token(
        &s,
        &admin,
        &[
            "--sub",
            "alice",
            "--group",
            "finance",
            "--group",
            "approvers",
        ],
    );
    let (code, issued, err) = cli_json(
        &s.addr,
        &admin,
        &[
            "dev",
            "issue-user-token",
            "--sub",
            "carol",
            "--lifetime",
            "60",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(issued["expires_in"], 60);
    assert_eq!(issued["issuer"], format!("{}/dev-users", s.addr));
    let c_user = claims(&alice);
    assert_eq!(
        (c_user["sub"].as_str(), c_user["groups"].clone()),
        (Some("alice"), json!(["finance"]))
    );

    // A asks for a refund mandate for alice (her token from a file): held for a human.
    let alice_file = t.path().join("alice.jwt");
    std::fs::write(&alice_file, format!("{alice}\n")).unwrap();
    let (code, m, err) = cli_json(
        &s.addr,
        &a_token,
        &[
            "mandate",
            "request",
            "--intent",
            "refund invoice inv-1 for alice",
            "--grant",
            "billing:read,billing:refund;Billing::Invoice/*",
            "--justification",
            "the customer was charged twice",
            "--lifetime",
            "600",
            "--user-token",
            &format!("@{}", alice_file.display()),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(m["status"], "pending_approval", "{m}");
    assert_eq!(m["agent"], a.as_str());
    assert_eq!(m["user"]["sub"], "alice");
    assert_eq!(m["policy_ids"], json!(["refunds-need-approval"]));
    let id = m["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("mdt_"), "{id}");

    // The agent long-polls while a human decides (the CLI's --wait).
    let waiter = Command::new(BIN)
        .args(["mandate", "show", &id, "--wait", "30", "--json"])
        .env("MANDATE_ADDR", &s.addr)
        .env("MANDATE_TOKEN", &a_token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Who may decide: not an agent, not a user outside the approver group, and not
    // alice for herself even when she is an approver.
    let approve = format!("/v1/approvals/{id}/approve");
    let (st, e) = s.admin(&a_token, Method::POST, &approve, None).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (403, Some("not_an_approver")),
        "{e}"
    );
    let (st, e) = s.admin(&alice, Method::POST, &approve, None).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (403, Some("not_an_approver")),
        "{e}"
    );
    let (st, e) = s.admin(&alice_approver, Method::POST, &approve, None).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (403, Some("self_approval")),
        "{e}"
    );
    let (code, _, err) = cli(&s.addr, &alice_approver, &["approvals", "approve", &id]);
    assert_eq!(code, 1);
    assert!(err.contains("self_approval"), "{err}");

    // Bob sees it waiting and approves it with the CLI.
    let (code, out, err) = cli(&s.addr, &bob, &["approvals", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id) && out.contains("billing-agent"), "{out}");
    let (code, listed, err) = cli_json(&s.addr, &bob, &["approvals", "list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(listed["items"][0]["mandate"]["id"], id.as_str());
    assert_eq!(listed["items"][0]["agent"]["name"], "billing-agent");
    let (code, approved, err) = cli_json(
        &s.addr,
        &bob,
        &["approvals", "approve", &id, "--comment", "refund confirmed"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(approved["status"], "active");
    assert_eq!(approved["decided_by"], "user:bob");
    assert_eq!(approved["decision_comment"], "refund confirmed");

    let waited = waiter.wait_with_output().unwrap();
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    let waited: Value = serde_json::from_slice(&waited.stdout).unwrap();
    assert_eq!(waited["status"], "active", "the long poll ends on approval");
    let (st, shown) = s
        .admin(&admin, Method::GET, &format!("/v1/mandates/{id}"), None)
        .await;
    assert_eq!((st, shown["status"].as_str()), (200, Some("active")));
    let (code, out, err) = cli(&s.addr, &admin, &["mandate", "show", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("active") && out.contains("billing:read,billing:refund;Billing::Invoice/*"),
        "{out}"
    );
    for (args, want) in [
        (vec!["mandate", "list", "--user", "alice"], 1),
        (
            vec![
                "mandate",
                "list",
                "--agent",
                a.as_str(),
                "--status",
                "active",
            ],
            1,
        ),
        (vec!["mandate", "list", "--status", "pending_approval"], 0),
    ] {
        let (code, v, err) = cli_json(&s.addr, &admin, &args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_eq!(v["items"].as_array().unwrap().len(), want, "{args:?}: {v}");
    }
    // Approving it again is a conflict.
    let (st, e) = s.admin(&bob, Method::POST, &approve, None).await;
    assert_eq!((st, e["code"].as_str()), (409, Some("not_pending")), "{e}");

    // A exchanges alice's token for a mandate token (actor_token = A's own token).
    let (st, ex) = exchange(
        &s,
        &[
            ("subject_token", &alice),
            ("subject_token_type", JWT),
            ("actor_token", &a_token),
            ("actor_token_type", ACCESS_TOKEN),
            ("mandate", &id),
        ],
    )
    .await;
    assert_eq!(st, 200, "{ex}");
    assert_eq!(ex["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(ex["token_type"], "Bearer");
    assert_eq!(ex["scope"], "billing:read billing:refund");
    assert!(ex["expires_in"].as_i64().unwrap() > 0);
    let a_mandate = ex["access_token"].as_str().unwrap().to_owned();
    let ca = claims(&a_mandate);
    assert_eq!(ca["sub"], "alice");
    assert_eq!(ca["act"], json!({"sub": a}));
    assert_eq!(ca["mandate"], id.as_str());
    assert_eq!(ca["client_id"], a.as_str());

    // Decisions with it: inside the mandate, allowed; outside, denied at the right gate.
    let inv = "Billing::Invoice/inv-1";
    let d = authorize(&s, &a_mandate, "billing:refund", inv, json!({})).await;
    assert_eq!(verdict(&d), ("allow", "allowed_by_policy"), "{d}");
    assert_eq!(d["policy_ids"], json!(["billing-for-finance"]));
    let d = authorize(
        &s,
        &a_mandate,
        "billing:read",
        inv,
        json!({"data_class": "pii"}),
    )
    .await;
    assert_eq!(verdict(&d), ("deny", "outside_mandate"), "{d}");
    let d = authorize(
        &s,
        &a_mandate,
        "billing:refund",
        "Billing::Account/acc-1",
        json!({}),
    )
    .await;
    assert_eq!(verdict(&d), ("deny", "outside_boundary"), "{d}");
    let d = authorize(&s, &a_mandate, "billing:delete", inv, json!({})).await;
    assert_eq!(verdict(&d), ("deny", "outside_token_scope"), "{d}");
    // A's own token acts for nobody: the policy wants a finance user.
    let d = authorize(&s, &a_token, "billing:refund", inv, json!({})).await;
    assert_eq!(verdict(&d), ("deny", "no_permit"), "{d}");

    // B gets a delegated token from A's mandate token, narrowed to billing:read.
    let (st, ex) = exchange(
        &s,
        &[
            ("subject_token", &a_mandate),
            ("subject_token_type", ACCESS_TOKEN),
            ("actor_token", &b_token),
            ("actor_token_type", ACCESS_TOKEN),
            ("scope", "billing:read"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{ex}");
    assert_eq!(ex["scope"], "billing:read");
    let b_mandate = ex["access_token"].as_str().unwrap().to_owned();
    let cb = claims(&b_mandate);
    assert_eq!(cb["sub"], "alice");
    assert_eq!(cb["act"], json!({"sub": b, "act": {"sub": a}}));
    assert_eq!(cb["mandate"], id.as_str());
    assert_eq!(cb["parents"][0]["jti"], ca["jti"]);
    let d = authorize(&s, &b_mandate, "billing:read", inv, json!({})).await;
    assert_eq!(verdict(&d), ("allow", "allowed_by_policy"), "{d}");
    let d = authorize(&s, &b_mandate, "billing:refund", inv, json!({})).await;
    assert_eq!(verdict(&d), ("deny", "outside_token_scope"), "{d}");
    // A delegated scope never grows.
    let (st, e) = exchange(
        &s,
        &[
            ("subject_token", &a_mandate),
            ("subject_token_type", ACCESS_TOKEN),
            ("actor_token", &b_token),
            ("actor_token_type", ACCESS_TOKEN),
            ("scope", "billing:refund"),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_scope")),
        "{e}"
    );

    // Bad input through the running server.
    // A forged user token (one signature character flipped).
    let (st, e) = exchange(
        &s,
        &[
            ("subject_token", &forge(&alice)),
            ("subject_token_type", JWT),
            ("actor_token", &a_token),
            ("actor_token_type", ACCESS_TOKEN),
            ("mandate", &id),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    // A forged mandate token as the subject of a delegation.
    let (st, e) = exchange(
        &s,
        &[
            ("subject_token", &forge(&a_mandate)),
            ("subject_token_type", ACCESS_TOKEN),
            ("actor_token", &b_token),
            ("actor_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    // An expired user token: no leeway on `exp`.
    let brief = user_token(
        &s,
        &admin,
        &["--sub", "alice", "--group", "finance", "--lifetime", "1"],
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (st, e) = exchange(
        &s,
        &[
            ("subject_token", &brief),
            ("subject_token_type", JWT),
            ("actor_token", &a_token),
            ("actor_token_type", ACCESS_TOKEN),
            ("mandate", &id),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    assert!(
        e["error_description"].as_str().unwrap().contains("expired"),
        "{e}"
    );
    // Delegation to an agent that is not among A's delegates.
    let (st, e) = exchange(
        &s,
        &[
            ("subject_token", &a_mandate),
            ("subject_token_type", ACCESS_TOKEN),
            ("actor_token", &c_token),
            ("actor_token_type", ACCESS_TOKEN),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{e}"
    );
    assert!(e["error_description"].as_str().unwrap().contains(&c), "{e}");

    // Revoking the mandate stops A's token and B's delegated one at the next decision.
    let (code, revoked, err) = cli_json(
        &s.addr,
        &admin,
        &[
            "mandate",
            "revoke",
            &id,
            "--reason",
            "refund done elsewhere",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(revoked["status"], "revoked");
    let d = authorize(&s, &a_mandate, "billing:refund", inv, json!({})).await;
    assert_eq!(verdict(&d), ("deny", "mandate_inactive"), "{d}");
    let d = authorize(&s, &b_mandate, "billing:read", inv, json!({})).await;
    assert_eq!(verdict(&d), ("deny", "mandate_inactive"), "{d}");
    // And no new token comes from it.
    let (st, e) = exchange(
        &s,
        &[
            ("subject_token", &alice),
            ("subject_token_type", JWT),
            ("actor_token", &a_token),
            ("actor_token_type", ACCESS_TOKEN),
            ("mandate", &id),
        ],
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    // Revoking it twice is a conflict; exit 1.
    let (code, _, err) = cli(&s.addr, &admin, &["mandate", "revoke", &id]);
    assert_eq!(code, 1);
    assert!(err.contains("mandate_not_active"), "{err}");

    // The audit log names alice, the mandate and, for B, the chain.
    let export = t.path().join("audit.jsonl");
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["audit", "export", "--out", export.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let events: Vec<Value> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .filter_map(|l| {
            serde_json::from_str::<Value>(l)
                .unwrap()
                .get("event")
                .cloned()
        })
        .collect();
    let about = |kind: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["kind"] == kind && e["details"]["mandate"] == id.as_str())
            .collect()
    };
    for kind in ["mandate.requested", "mandate.approved", "mandate.revoked"] {
        let found = about(kind);
        assert_eq!(found.len(), 1, "{kind}: {found:?}");
        assert_eq!(found[0]["user"], "alice", "{kind}: {}", found[0]);
        assert_eq!(found[0]["agent"], a.as_str(), "{kind}: {}", found[0]);
    }
    assert_eq!(about("mandate.requested")[0]["actor"], a.as_str());
    assert_eq!(about("mandate.approved")[0]["actor"], "user:bob");
    assert_eq!(
        about("mandate.revoked")[0]["details"]["reason"],
        "refund done elsewhere"
    );
    let issued = about("token.issued");
    assert_eq!(issued.len(), 2, "{issued:?}");
    assert!(issued.iter().all(|e| e["user"] == "alice"), "{issued:?}");
    let delegated = issued.iter().find(|e| e["agent"] == b.as_str()).unwrap();
    assert_eq!(delegated["details"]["grant"], "delegation");
    assert_eq!(delegated["details"]["parent_token_id"], ca["jti"]);
    // Decisions made with the mandate's tokens: A's four and B's two, then the two
    // refusals after the revocation, which still name the mandate, user and chain.
    let decisions = about("decision");
    assert_eq!(decisions.len(), 8, "{decisions:?}");
    assert!(
        decisions.iter().all(|e| e["user"] == "alice"),
        "{decisions:?}"
    );
    let of_b: Vec<&&Value> = decisions
        .iter()
        .filter(|e| e["agent"] == b.as_str())
        .collect();
    assert_eq!(of_b.len(), 3, "{of_b:?}");
    assert!(
        of_b.iter().all(|e| e["details"]["chain"] == json!([a])),
        "{of_b:?}"
    );
    // After the revocation the tokens no longer act; each refusal names its token.
    let refused: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["kind"] == "decision" && e["reasons"][0] == "mandate_inactive")
        .map(|e| {
            (
                e["agent"].as_str().unwrap(),
                e["details"]["token_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            (a.as_str(), ca["jti"].as_str().unwrap()),
            (b.as_str(), cb["jti"].as_str().unwrap())
        ]
    );
    // The refusals were recorded too (best effort, but nothing stops them here).
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "token.refused" && e["agent"] == c.as_str()),
        "the refused delegation to C is in the log"
    );
}

#[tokio::test]
async fn mandate_cli_usage_and_refusals() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let (_, token) = agent(
        &s,
        &admin,
        "bot",
        json!({"grants": [{"actions": ["billing:read"], "resources": ["Billing::Invoice/*"]}]}),
    )
    .await;
    // A malformed --grant is a usage error, before any request.
    for grant in ["billing:read", "a;b;c;d", ";Billing::Invoice/*"] {
        let (code, _, err) = cli(
            &s.addr,
            &token,
            &["mandate", "request", "--intent", "x", "--grant", grant],
        );
        assert_eq!(code, 2, "{grant}: {err}");
        assert!(err.contains("ACTIONS;RESOURCES"), "{err}");
    }
    // No active policy: the mandate is stored, denied, and the request exits 1.
    let (code, m, err) = cli_json(
        &s.addr,
        &token,
        &[
            "mandate",
            "request",
            "--intent",
            "read invoices",
            "--grant",
            "billing:read;Billing::Invoice/*",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(m["status"], "denied", "{m}");
    assert!(err.contains("denied"), "{err}");
    // Denied requests are kept; the list pages through them.
    let request = [
        "mandate",
        "request",
        "--intent",
        "read invoices again",
        "--grant",
        "billing:read;Billing::Invoice/*",
    ];
    assert_eq!(cli(&s.addr, &token, &request).0, 1);
    let (code, page, err) = cli_json(&s.addr, &admin, &["mandate", "list", "--limit", "1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(page["items"][0]["id"], m["id"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, out, _) = cli(&s.addr, &admin, &["mandate", "list", "--limit", "1"]);
    assert!(out.contains(&format!("(more: --cursor {cursor})")), "{out}");
    let (code, page, err) = cli_json(
        &s.addr,
        &token,
        &["mandate", "list", "--limit", "1", "--cursor", cursor],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(page["items"][0]["intent"], "read invoices again");
    // A scope outside the boundary is refused outright.
    let (code, _, err) = cli(
        &s.addr,
        &token,
        &[
            "mandate",
            "request",
            "--intent",
            "refund",
            "--grant",
            "billing:refund;Billing::Invoice/*",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("outside_boundary"), "{err}");
    // The dev issuer is off unless configured.
    let (code, _, err) = cli(&s.addr, &admin, &["dev", "issue-user-token", "--sub", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("dev_issuer_disabled"), "{err}");
    // Unknown ids; an agent may not approve.
    let (code, _, err) = cli(&s.addr, &admin, &["mandate", "show", "mdt_nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
    let (code, _, err) = cli(&s.addr, &token, &["approvals", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("not_an_approver"), "{err}");
}
