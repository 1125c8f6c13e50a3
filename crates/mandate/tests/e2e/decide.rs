//! The decision path end to end: policies through the CLI, `/v1/authorize` with the
//! agent's token and with a service token, changes visible to the very next decision,
//! the audit log exported and verified offline, and a `kill -9` mid-load.

use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{BIN, Server, cli, data_dir};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/crm");

/// Adds and activates the CRM example policies; registers a sales agent inside a CRM
/// boundary; returns (agent id, its access token).
pub(crate) async fn crm_setup(s: &Server, admin: &str) -> (String, String) {
    let (code, _, err) = cli(
        &s.addr,
        admin,
        &[
            "policy",
            "add",
            &format!("{EXAMPLES}/policies.cedar"),
            "--schema",
            &format!("{EXAMPLES}/schema.cedarschema"),
            "--note",
            "crm example",
            "--activate",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let boundary = json!({
        "grants": [{"actions": ["crm:read", "crm:write"], "resources": ["Crm::Contact/*"],
                    "data_classes": ["internal", "secret"]}],
    });
    let (st, a) = s
        .admin(
            admin,
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "sales-bot", "owner": "alice@example.com",
                        "labels": {"team": "sales"}, "boundary": boundary})),
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
    assert_eq!(st, 201);
    let (st, t) = s
        .token_basic(&id, c["client_secret"].as_str().unwrap(), &[])
        .await;
    assert_eq!(st, 200, "{t}");
    (id, t["access_token"].as_str().unwrap().to_owned())
}

pub(crate) async fn authorize(s: &Server, bearer: &str, body: Value) -> (u16, Value) {
    let res = s
        .http
        .post(s.url("/v1/authorize"))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

pub(crate) fn read_contact(team: &str, data_class: &str) -> Value {
    json!({"action": "crm:read",
           "resource": {"type": "Crm::Contact", "id": "c-1", "attributes": {"team": team}},
           "context": {"data_class": data_class, "prompt": "find the customer's phone number"}})
}

#[tokio::test]
async fn authorize_follows_policies_boundaries_and_the_kill_switch() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();

    // No active policy: everything is denied.
    let (agent, token) = {
        let (st, _) = authorize(
            &s,
            &admin,
            json!({"action": "crm:read", "principal": "agt_00000000000000000000000000",
            "resource": {"type": "Crm::Contact", "id": "x"}}),
        )
        .await;
        assert_eq!(st, 200);
        crm_setup(&s, &admin).await
    };

    let (st, d) = authorize(&s, &token, read_contact("sales", "internal")).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["decision"], "allow", "{d}");
    assert_eq!(d["policy_ids"], json!(["team-reads-contacts"]));
    let decision_id = d["decision_id"].as_str().unwrap().to_owned();

    // Default deny: another team's contact.
    let (_, d) = authorize(&s, &token, read_contact("support", "internal")).await;
    assert_eq!(
        (d["decision"].as_str(), d["reasons"][0].as_str()),
        (Some("deny"), Some("no_permit"))
    );
    // Forbid beats permit.
    let (_, d) = authorize(&s, &token, read_contact("sales", "secret")).await;
    assert_eq!(d["reasons"][0], "forbidden_by_policy");
    assert_eq!(d["policy_ids"], json!(["secret-needs-clearance"]));
    // Outside the boundary, whatever the policies say (billing is not in its grants).
    let (_, d) = authorize(&s, &token, json!({"action": "crm:read",
        "resource": {"type": "Crm::Invoice", "id": "i-1", "attributes": {"team": "sales", "amount": 100}},
        "context": {"data_class": "internal"}})).await;
    assert_eq!(d["reasons"][0], "outside_boundary");
    // The refusal names the part of the boundary that failed, in the answer and the log.
    let detail = "resource: no grant of the agent's boundary for action \"crm:read\" \
                  covers resource \"Crm::Invoice/i-1\"";
    assert_eq!(d["reasons"][1], detail, "{d}");
    let recorded = s
        .audit_events(&admin, "decision", Some(&agent))
        .await
        .into_iter()
        .find(|e| format!("{}:{}", e["node"].as_str().unwrap(), e["seq"]) == d["decision_id"])
        .expect("the refusal's event");
    assert_eq!(recorded["reasons"][1], detail, "{recorded}");

    // A service token names the principal; an auditor token may not authorize.
    let (_, svc) = s
        .admin(
            &admin,
            Method::POST,
            "/v1/admin-tokens",
            Some(json!({"name": "gw", "role": "service"})),
        )
        .await;
    let svc = svc["token"].as_str().unwrap().to_owned();
    let mut named = read_contact("sales", "internal");
    named["principal"] = json!(agent);
    let (st, d) = authorize(&s, &svc, named.clone()).await;
    assert_eq!((st, d["decision"].as_str()), (200, Some("allow")), "{d}");
    let (st, d) = s.admin(&svc, Method::GET, "/v1/agents", None).await;
    assert_eq!(
        (st, d["code"].as_str()),
        (403, Some("forbidden")),
        "service tokens do nothing else"
    );

    // A boundary change governs the very next decision.
    let narrower = json!({"boundary": {"grants": [{"actions": ["crm:write"], "resources": ["Crm::Contact/*"]}]}});
    let (st, _) = s
        .admin(
            &admin,
            Method::PATCH,
            &format!("/v1/agents/{agent}"),
            Some(narrower),
        )
        .await;
    assert_eq!(st, 200);
    let (_, d) = authorize(&s, &svc, named.clone()).await;
    assert_eq!(d["reasons"][0], "outside_boundary", "no cache window");
    let wide = json!({"boundary": {"grants": [{"actions": ["crm:*"], "resources": ["Crm::Contact/*"], "data_classes": ["*"]}]}});
    s.admin(
        &admin,
        Method::PATCH,
        &format!("/v1/agents/{agent}"),
        Some(wide),
    )
    .await;
    assert_eq!(
        authorize(&s, &svc, named.clone()).await.1["decision"],
        "allow"
    );

    // Suspension is the kill switch for the very next decision, token or named.
    s.admin(
        &admin,
        Method::POST,
        &format!("/v1/agents/{agent}/suspend"),
        None,
    )
    .await;
    assert_eq!(
        authorize(&s, &token, read_contact("sales", "internal"))
            .await
            .1["reasons"][0],
        "agent_suspended"
    );
    assert_eq!(
        authorize(&s, &svc, named.clone()).await.1["reasons"][0],
        "agent_suspended"
    );
    s.admin(
        &admin,
        Method::POST,
        &format!("/v1/agents/{agent}/resume"),
        None,
    )
    .await;
    assert_eq!(
        authorize(&s, &token, read_contact("sales", "internal"))
            .await
            .1["decision"],
        "allow"
    );

    // A policy change governs the very next decision; rollback restores the old one.
    let deny_all = dir.parent().unwrap().join("deny.cedar");
    std::fs::write(
        &deny_all,
        "@id(\"lockdown\")\nforbid (principal, action, resource);\n",
    )
    .unwrap();
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &[
            "policy",
            "add",
            deny_all.to_str().unwrap(),
            "--schema",
            &format!("{EXAMPLES}/schema.cedarschema"),
            "--activate",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (_, d) = authorize(&s, &token, read_contact("sales", "internal")).await;
    assert_eq!(
        (d["reasons"][0].as_str(), d["policy_ids"][0].as_str()),
        (Some("forbidden_by_policy"), Some("lockdown"))
    );
    let (code, _, err) = cli(&s.addr, &admin, &["policy", "rollback"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        authorize(&s, &token, read_contact("sales", "internal"))
            .await
            .1["decision"],
        "allow"
    );

    // An invalid policy is refused with line and column, and nothing changes.
    let bad = dir.parent().unwrap().join("bad.cedar");
    std::fs::write(
        &bad,
        "permit (principal, action, resource)\nwhen { principal.nosuch == 1 };\n",
    )
    .unwrap();
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &[
            "policy",
            "add",
            bad.to_str().unwrap(),
            "--schema",
            &format!("{EXAMPLES}/schema.cedarschema"),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("invalid_policy") && err.contains("policies:2:"),
        "{err}"
    );
    let (code, out, _) = cli(&s.addr, &admin, &["policy", "list", "--json"]);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        2,
        "the refused version was not stored"
    );
    assert_eq!(listed["active_version"], 1);

    // The decision is in the log, with the prompt stored as a keyed hash.
    let (_, events) = s
        .admin(
            &admin,
            Method::GET,
            &format!("/v1/audit/events?agent={agent}&kind=decision&limit=1"),
            None,
        )
        .await;
    let first = &events["items"][0];
    assert_eq!(
        format!("{}:{}", first["node"].as_str().unwrap(), first["seq"]),
        decision_id
    );
    assert!(
        first["context"]["prompt"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:"),
        "{first}"
    );
    assert_eq!(first["context"]["data_class"], "internal");
}

#[tokio::test]
async fn the_exported_log_verifies_offline_and_tampering_is_caught() {
    let (t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let (_, token) = crm_setup(&s, &admin).await;
    for team in ["sales", "support", "sales"] {
        authorize(&s, &token, read_contact(team, "internal")).await;
    }
    let export = t.path().join("audit.jsonl");
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["audit", "export", "--out", export.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&s.addr, &admin, &["audit", "checkpoint", "--json"]);
    assert_eq!(code, 0, "{err}");
    let key = serde_json::from_str::<Value>(&out).unwrap()["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let verify = |file: &std::path::Path| {
        std::process::Command::new(BIN)
            .args([
                "audit",
                "verify",
                file.to_str().unwrap(),
                "--public-key",
                &key,
            ])
            .output()
            .unwrap()
    };
    let ok = verify(&export);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("ok: "));

    // Proofs from the API check out against the latest checkpoint.
    let (_, cp) = s
        .admin(&admin, Method::GET, "/v1/audit/checkpoints/latest", None)
        .await;
    let (st, proof) = s
        .admin(&admin, Method::GET, "/v1/audit/events/1/proof", None)
        .await;
    assert_eq!(st, 200, "{proof}");
    assert_eq!(proof["root"], cp["root"]);

    let text = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let event_lines: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].starts_with("{\"event\""))
        .collect();
    assert!(event_lines.len() >= 5);
    let mutations: Vec<(&str, String)> = vec![
        (
            "changed decision",
            text.replacen("\"decision\":\"allow\"", "\"decision\":\"deny\"", 1),
        ),
        (
            "dropped event",
            lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != event_lines[2])
                .map(|(_, l)| format!("{l}\n"))
                .collect(),
        ),
        ("swapped events", {
            let mut v = lines.clone();
            v.swap(event_lines[1], event_lines[2]);
            v.iter().map(|l| format!("{l}\n")).collect()
        }),
        ("inserted event", {
            let mut v: Vec<String> = lines.iter().map(|l| format!("{l}\n")).collect();
            v.insert(event_lines[1], format!("{}\n", lines[event_lines[1]]));
            v.concat()
        }),
        (
            "truncated tail",
            lines[..lines.len() - 1]
                .iter()
                .map(|l| format!("{l}\n"))
                .collect(),
        ),
    ];
    for (what, tampered) in mutations {
        assert_ne!(tampered, text, "{what} changed nothing");
        let f = t.path().join("tampered.jsonl");
        std::fs::write(&f, tampered).unwrap();
        let out = verify(&f);
        assert!(!out.status.success(), "{what} was not detected");
    }
}

/// The crash test: clients load /v1/authorize, the server is SIGKILLed mid-load, and
/// after a restart every decision id a client received is in the log, which verifies.
#[tokio::test]
async fn every_answered_decision_survives_kill_9() {
    let (t, dir) = data_dir();
    let mut s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let (_, token) = crm_setup(&s, &admin).await;
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let http = s.http.clone();
        let url = s.url("/v1/authorize");
        let token = token.clone();
        let received = Arc::clone(&received);
        tasks.push(tokio::spawn(async move {
            let team = if i % 2 == 0 { "sales" } else { "support" };
            for _ in 0..100_000 {
                let Ok(res) = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&read_contact(team, "internal"))
                    .send()
                    .await
                else {
                    return;
                };
                let Ok(v) = res.json::<Value>().await else {
                    return;
                };
                if let Some(id) = v["decision_id"].as_str() {
                    received.lock().unwrap().push(id.to_owned());
                }
            }
        }));
    }
    // Let a few hundred decisions through, then pull the plug.
    for _ in 0..600 {
        if received.lock().unwrap().len() >= 300 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    s.kill9();
    for task in tasks {
        let _ = task.await;
    }
    let received = received.lock().unwrap().clone();
    assert!(
        received.len() >= 50,
        "only {} decisions before the kill",
        received.len()
    );

    let s = Server::start(&dir, &[], &[]);
    let export = t.path().join("after-crash.jsonl");
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["audit", "export", "--out", export.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let logged: std::collections::HashSet<String> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let e = v.get("event")?;
            Some(format!("{}:{}", e["node"].as_str()?, e["seq"]))
        })
        .collect();
    let missing: Vec<&String> = received.iter().filter(|id| !logged.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} answered decisions missing from the log, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let (_, cp) = s
        .admin(&admin, Method::GET, "/v1/audit/checkpoints/latest", None)
        .await;
    let out = std::process::Command::new(BIN)
        .args([
            "audit",
            "verify",
            export.to_str().unwrap(),
            "--public-key",
            cp["public_key"].as_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `mandate policy test` runs a data-driven test file offline and exits non-zero on a
/// mismatch, like `opa test`.
#[test]
fn policy_test_files_pass_and_mismatches_fail() {
    let run = |tests: &str| {
        std::process::Command::new(BIN)
            .args([
                "policy",
                "test",
                tests,
                "--policies",
                &format!("{EXAMPLES}/policies.cedar"),
                "--schema",
                &format!("{EXAMPLES}/schema.cedarschema"),
            ])
            .output()
            .unwrap()
    };
    let ok = run(&format!("{EXAMPLES}/tests.json"));
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    // The same file with one expectation flipped must fail.
    let text = std::fs::read_to_string(format!("{EXAMPLES}/tests.json")).unwrap();
    let flipped = text.replacen("\"expect\": \"allow\"", "\"expect\": \"deny\"", 1);
    assert_ne!(flipped, text);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("flipped.json");
    std::fs::write(&f, flipped).unwrap();
    let bad = run(f.to_str().unwrap());
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("FAIL"));
    // Invalid policies are refused offline with line and column.
    let p = dir.path().join("bad.cedar");
    std::fs::write(&p, "permit (principal, action, resource) when { 1 + };\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["policy", "validate", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("policies:1:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `stmt` on the server's database as a second SQLite client (the `sqlite3` CLI),
/// waiting up to 5 s for the server's locks: how these tests inject store faults.
fn sqlite(db: &std::path::Path, stmt: &str) {
    let out = std::process::Command::new("sqlite3")
        .args(["-cmd", ".timeout 5000"])
        .arg(db)
        .arg(stmt)
        .output()
        .expect("sqlite3 CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A suspension the snapshot cannot show is never overlooked: when the refresh after
/// the write fails, every decision — the agent's own token, a service naming the agent
/// — answers 503 `snapshot_stale` (not the old "allow"), the token endpoint 503 and
/// `/readyz` not ready, until a refresh succeeds; then the suspension decides. The
/// suspension itself stands, is answered 200 and is audited. The fault is injected from
/// outside (the `sqlite3` CLI renames a table the refresh reads and the suspension does
/// not write); the sweeper's retry brings decisions back once it is put back, with no
/// admin action.
#[tokio::test]
async fn a_suspension_the_snapshot_cannot_show_holds_every_decision() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let (agent, token) = crm_setup(&s, &admin).await;
    let db = dir.join("mandate.db");
    let sql = |stmt: &str| sqlite(&db, stmt);
    let (_, svc) = s
        .admin(
            &admin,
            Method::POST,
            "/v1/admin-tokens",
            Some(json!({"name": "pep", "role": "service"})),
        )
        .await;
    let svc = svc["token"].as_str().unwrap().to_owned();
    let secret = s.add_secret(&admin, &agent).await;
    let mut named = read_contact("sales", "internal");
    named["principal"] = json!(agent);
    let (st, d) = authorize(&s, &token, read_contact("sales", "internal")).await;
    assert_eq!((st, d["decision"].as_str()), (200, Some("allow")), "{d}");
    let (st, d) = authorize(&s, &svc, named.clone()).await;
    assert_eq!((st, d["decision"].as_str()), (200, Some("allow")), "{d}");
    let ready = || {
        let (url, http) = (s.url("/readyz"), s.http.clone());
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(ready().await, 200);

    sql("ALTER TABLE revoked_tokens RENAME TO revoked_tokens_away;");
    let (st, v) = s
        .admin(
            &admin,
            Method::POST,
            &format!("/v1/agents/{agent}/suspend"),
            None,
        )
        .await;
    assert_eq!(
        (st, v["status"].as_str()),
        (200, Some("suspended")),
        "the suspension stands and is answered: {v}"
    );
    let held = |who: &str, st: u16, d: &Value| {
        assert_eq!(
            (st, d["code"].as_str()),
            (503, Some("snapshot_stale")),
            "{who}: no decision on the snapshot from before the suspension: {d}"
        );
        assert!(d.get("decision").is_none(), "{d}");
    };
    for _ in 0..2 {
        let (st, d) = authorize(&s, &token, read_contact("sales", "internal")).await;
        held("the agent's token", st, &d);
        let (st, d) = authorize(&s, &svc, named.clone()).await;
        held("a service naming the agent", st, &d);
    }
    let (st, t) = s.token_basic(&agent, &secret, &[]).await;
    assert_eq!(
        (st, t["error"].as_str()),
        (503, Some("temporarily_unavailable")),
        "no token while decisions are held: {t}"
    );
    // The sweeper keeps trying (every second) and still fails: still held, and the
    // node says it is not ready.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (st, d) = authorize(&s, &svc, named.clone()).await;
    held("after the sweeper's retries", st, &d);
    assert_eq!(ready().await, 503);

    sql("ALTER TABLE revoked_tokens_away RENAME TO revoked_tokens;");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let d = loop {
        let (st, d) = authorize(&s, &svc, named.clone()).await;
        if st != 503 {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "decisions did not resume: {}",
            s.stderr_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        (d["decision"].as_str(), d["reasons"][0].as_str()),
        (Some("deny"), Some("agent_suspended")),
        "the suspension written before the failed refresh decides: {d}"
    );
    let (_, d) = authorize(&s, &token, read_contact("sales", "internal")).await;
    assert_eq!(d["reasons"][0], "agent_suspended", "{d}");
    assert_eq!(ready().await, 200);
    let (st, v) = s
        .admin(
            &admin,
            Method::GET,
            &format!("/v1/audit/events?kind=agent.suspended&agent={agent}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1), "audited: {v}");
    // The log lines say what happened (the access log thread may lag a moment).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let stderr = s.stderr_text();
        if stderr.contains("snapshot refresh failed") && stderr.contains("decisions resume") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{stderr}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// When the audit log cannot be written, `/v1/authorize` answers 503 and no decision,
/// and recovers once it can. The fault is injected from outside, as a second SQLite
/// client adding a trigger that aborts every audit insert (the `sqlite3` CLI).
#[tokio::test]
async fn no_decision_without_a_durable_record() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let (_, token) = crm_setup(&s, &admin).await;
    let db = dir.join("mandate.db");
    let sql = |stmt: &str| sqlite(&db, stmt);
    sql(
        "CREATE TRIGGER audit_fault BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
    );
    let (st, d) = authorize(&s, &token, read_contact("sales", "internal")).await;
    assert_eq!(
        (st, d["code"].as_str()),
        (503, Some("audit_unavailable")),
        "{d}"
    );
    assert!(d.get("decision").is_none(), "no decision without a record");
    sql("DROP TRIGGER audit_fault;");
    let (st, d) = authorize(&s, &token, read_contact("sales", "internal")).await;
    assert_eq!((st, d["decision"].as_str()), (200, Some("allow")), "{d}");
}

/// Issue 19: the base schema policies are validated against can be printed, offline, and
/// it is exactly the one the server compiles (`mandate_policy::BASE_SCHEMA`).
#[test]
fn policy_schema_prints_the_base_schema() {
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["policy", "schema"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        mandate_policy::BASE_SCHEMA
    );
}
