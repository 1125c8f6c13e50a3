//! The OPA-compatible listener end to end (issue 22): the guidance's own `curl` call
//! (host and port changed) against its Rego, made valid, both answers in a verified
//! export; the subject filled from an agent's verified token; the kill switch on the
//! next query; the Policy API and its refusals; OPA's error shape.

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{BIN, Server, cli, data_dir};

/// The guidance's `http.authz` policy, made valid: its conditions joined with `&&`
/// become one condition per line of the rule body.
const AUTHZ: &str = r#"package http.authz

default allow := false

allow if {
    input.user_role == "data_analyst"
    input.action == "read"
    input.resource == "customer_data"
    input.request_source == "internal_network"
}
"#;

/// As the guidance wrote it: not Rego.
const AUTHZ_WITH_AMPERSANDS: &str = r#"package http.authz

default allow := false

allow if {
    input.user_role == "data_analyst" && input.action == "read"
}
"#;

/// What the agent's own query reads back: who Mandate says it is.
const WHOAMI: &str = r#"package agents

whoami := input.subject

allow if input.subject.labels.team == "sales"
"#;

/// The OPA listener's base URL, from the banner.
fn opa_base(s: &Server) -> String {
    let out = s.stdout_text();
    out.lines()
        .find_map(|l| {
            l.split("OPA-compatible API (Data, Policy, Health) on ")
                .nth(1)
        })
        .unwrap_or_else(|| panic!("no OPA line in: {out}"))
        .trim()
        .to_owned()
}

/// `curl` with `args`, its status code and body.
fn curl(args: &[&str]) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    )
}

fn guidance_input(source: &str) -> String {
    json!({"input": {"user_role": "data_analyst", "action": "read",
                     "resource": "customer_data", "request_source": source}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guidance_curl_call_answers_as_opa_and_both_decisions_verify() {
    let (t, dir) = data_dir();
    let s = Server::start(
        &dir,
        &[],
        &[
            ("MANDATE_OPA_LISTEN", "127.0.0.1:0"),
            ("MANDATE_OPA_AUTHENTICATION", "off"),
        ],
    );
    let admin = s.token.clone().unwrap();
    let opa = opa_base(&s);
    let rego = t.path().join("authz.rego");
    std::fs::write(&rego, AUTHZ).unwrap();
    let (code, out, err) = cli(
        &s.addr,
        &admin,
        &["policy", "add", rego.to_str().unwrap(), "--activate"],
    );
    assert_eq!(code, 0, "{out}{err}");

    // The guidance's command, host and port changed.
    let url = format!("{opa}/v1/data/http/authz");
    let (st, allow) = curl(&[
        "-X",
        "POST",
        "-d",
        &guidance_input("internal_network"),
        &url,
    ]);
    assert_eq!(st, 200, "{allow}");
    assert_eq!(allow["result"], json!({"allow": true}), "{allow}");
    let (st, deny) = curl(&["-X", "POST", "-d", &guidance_input("public_internet"), &url]);
    assert_eq!(st, 200, "{deny}");
    assert_eq!(deny["result"], json!({"allow": false}), "{deny}");
    let ids = [&allow, &deny].map(|a| a["decision_id"].as_str().unwrap().to_owned());

    // Both are in the log, with their input and result, and the export verifies.
    let (_, events) = s
        .admin(
            &admin,
            Method::GET,
            "/v1/audit/events?kind=opa.decision",
            None,
        )
        .await;
    let events = events["items"].as_array().unwrap().clone();
    for (id, verdict, source) in [
        (&ids[0], "allow", "internal_network"),
        (&ids[1], "deny", "public_internet"),
    ] {
        let e = events
            .iter()
            .find(|e| format!("{}:{}", e["node"].as_str().unwrap(), e["seq"]) == **id)
            .unwrap_or_else(|| panic!("{id} not in {events:?}"));
        assert_eq!(e["decision"], verdict);
        assert_eq!(e["context"]["request_source"], source);
        assert_eq!(e["details"]["path"], "http/authz");
        assert_eq!(e["details"]["caller"], "anonymous");
    }
    let export = t.path().join("audit.jsonl");
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["audit", "export", "--out", export.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&export).unwrap();
    let exported = text
        .lines()
        .filter(|l| l.contains("\"kind\":\"opa.decision\""))
        .count();
    assert!(exported >= 2, "{text}");
    let (code, out, err) = cli(&s.addr, &admin, &["audit", "checkpoint", "--json"]);
    assert_eq!(code, 0, "{err}");
    let key = serde_json::from_str::<Value>(&out).unwrap()["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let v = Command::new(BIN)
        .args([
            "audit",
            "verify",
            export.to_str().unwrap(),
            "--public-key",
            &key,
        ])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));

    // OPA's shapes: no `result` when undefined, `?pretty`, GET with `?input=`, health.
    let (st, undefined) = curl(&[
        "-X",
        "POST",
        "-d",
        "{}",
        &format!("{opa}/v1/data/http/nothing"),
    ]);
    assert_eq!(st, 200);
    assert!(undefined.get("result").is_none() && undefined["decision_id"].is_string());
    let (st, got) = curl(&[&format!(
        "{opa}/v1/data/http/authz/allow?input=%7B%22user_role%22%3A%22x%22%7D"
    )]);
    assert_eq!((st, &got["result"]), (200, &json!(false)), "{got}");
    let pretty = Command::new("curl")
        .args(["-s", &format!("{opa}/v1/data/http/authz?pretty=true")])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&pretty.stdout).contains("\n  "));
    assert_eq!(curl(&[&format!("{opa}/health")]), (200, json!({})));
    // Bad input: OPA's error shape, 400, nothing answered.
    let (st, bad) = curl(&["-X", "POST", "-d", "{\"input\": ", &url]);
    assert_eq!(
        (st, bad["code"].as_str()),
        (400, Some("invalid_parameter")),
        "{bad}"
    );
    let (st, bad) = curl(&["-X", "PUT", "-d", "{}", &url]);
    assert_eq!(st, 405, "{bad}");
    // The Policy API never goes without an admin token, even with authentication off.
    let (st, bad) = curl(&[
        "-X",
        "PUT",
        "--data-binary",
        AUTHZ,
        &format!("{opa}/v1/policies/x.rego"),
    ]);
    assert_eq!(
        (st, bad["code"].as_str()),
        (401, Some("unauthorized")),
        "{bad}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agents_subject_is_the_verified_one_and_the_kill_switch_holds() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[("MANDATE_OPA_LISTEN", "127.0.0.1:0")]);
    let admin = s.token.clone().unwrap();
    let opa = opa_base(&s);
    let put = |id: &str, body: &str, token: &str| {
        curl(&[
            "-X",
            "PUT",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "--data-binary",
            body,
            &format!("{opa}/v1/policies/{id}"),
        ])
    };
    // The Policy API: a module put makes and activates a version.
    assert_eq!(put("agents.rego", WHOAMI, &admin), (200, json!({})));
    let (st, bad) = put("authz.rego", AUTHZ_WITH_AMPERSANDS, &admin);
    assert_eq!(st, 400, "{bad}");
    let e = &bad["errors"][0];
    assert_eq!(e["location"]["file"], "authz.rego", "{bad}");
    assert_eq!(e["location"]["row"], 6, "{bad}");
    assert!(e["message"].as_str().unwrap().contains("&&"), "{bad}");
    let (st, list) = curl(&[
        "-H",
        &format!("Authorization: Bearer {admin}"),
        &format!("{opa}/v1/policies"),
    ]);
    assert_eq!(st, 200);
    assert_eq!(list["result"][0]["id"], "agents.rego", "{list}");
    assert_eq!(
        list["result"].as_array().unwrap().len(),
        1,
        "the bad module changed nothing"
    );
    let (_, versions) = s.admin(&admin, Method::GET, "/v1/policies", None).await;
    assert_eq!(versions["active_version"], 1, "{versions}");

    let (agent, secret) = s.agent_with_secret(&admin, "sales-bot").await;
    let (st, _) = s
        .admin(
            &admin,
            Method::PATCH,
            &format!("/v1/agents/{agent}"),
            Some(json!({"labels": {"team": "sales"}})),
        )
        .await;
    assert_eq!(st, 200);
    let (_, tok) = s.token_basic(&agent, &secret, &[]).await;
    let token = tok["access_token"].as_str().unwrap().to_owned();
    let ask = |token: &str, input: Value| {
        curl(&[
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            &json!({ "input": input }).to_string(),
            &format!("{opa}/v1/data/agents"),
        ])
    };
    // What the agent claims about itself is replaced by what Mandate verified.
    let forged = json!({"subject": {"id": "agt_someone_else", "labels": {"team": "finance"}}});
    let (st, a) = ask(&token, forged.clone());
    assert_eq!(st, 200, "{a}");
    let who = &a["result"]["whoami"];
    assert_eq!(who["id"], agent.as_str(), "{a}");
    assert_eq!(who["kind"], "ai-agent");
    assert_eq!(who["name"], "sales-bot");
    assert_eq!(who["labels"]["team"], "sales");
    assert_eq!(a["result"]["allow"], true);
    // A service token's input is taken as given (the enforcement point vouches for it).
    let (st, svc) = s
        .admin(
            &admin,
            Method::POST,
            "/v1/admin-tokens",
            Some(json!({"name": "pep", "role": "service"})),
        )
        .await;
    assert_eq!(st, 201, "{svc}");
    let svc = svc["token"].as_str().unwrap().to_owned();
    let (st, a) = ask(&svc, forged);
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["result"]["whoami"]["id"], "agt_someone_else");
    // No token: 401 in OPA's shape.
    let (st, a) = curl(&["-X", "POST", "-d", "{}", &format!("{opa}/v1/data/agents")]);
    assert_eq!((st, a["code"].as_str()), (401, Some("unauthorized")), "{a}");

    // The kill switch: refused on the very next query, and recorded.
    let (st, _) = s
        .admin(
            &admin,
            Method::POST,
            &format!("/v1/agents/{agent}/suspend"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let (st, a) = ask(&token, json!({}));
    assert_eq!(
        (st, a["code"].as_str()),
        (403, Some("agent_suspended")),
        "{a}"
    );
    let events = s.audit_events(&admin, "opa.decision", Some(&agent)).await;
    assert!(
        events
            .iter()
            .any(|e| e["decision"] == "deny" && e["reasons"][0] == "agent_suspended"),
        "{events:?}"
    );
    // DELETE takes the module out (a new version), then the document is undefined.
    let (st, _) = curl(&[
        "-X",
        "DELETE",
        "-H",
        &format!("Authorization: Bearer {admin}"),
        &format!("{opa}/v1/policies/agents.rego"),
    ]);
    assert_eq!(st, 200);
    let (st, a) = ask(&svc, json!({}));
    assert_eq!(st, 200);
    assert!(a.get("result").is_none(), "{a}");
    let (st, a) = curl(&[
        "-X",
        "DELETE",
        "-H",
        &format!("Authorization: Bearer {admin}"),
        &format!("{opa}/v1/policies/agents.rego"),
    ]);
    assert_eq!(
        (st, a["code"].as_str()),
        (404, Some("resource_not_found")),
        "{a}"
    );
}

#[test]
fn authentication_off_is_refused_on_a_public_listener() {
    let (_t, dir) = data_dir();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("MANDATE_OPA_LISTEN", "0.0.0.0:0")
        .env("MANDATE_OPA_AUTHENTICATION", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("opa.authentication"), "{err}");
}

/// `mandate policy add authz.rego` on a server whose active version is Cedar keeps the
/// Cedar in the new version (so activating it leaves Cedar in force) and says so; `policy show` prints the module;
/// a later Cedar-only add keeps the Rego module.
#[tokio::test(flavor = "multi_thread")]
async fn adding_one_language_keeps_the_other_in_force() {
    let (t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[("MANDATE_OPA_LISTEN", "127.0.0.1:0")]);
    let admin = s.token.clone().unwrap();
    let cedar = t.path().join("all.cedar");
    std::fs::write(&cedar, "@id(\"all\") permit (principal, action, resource);").unwrap();
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["policy", "add", cedar.to_str().unwrap(), "--activate"],
    );
    assert_eq!(code, 0, "{err}");
    let rego = t.path().join("authz.rego");
    std::fs::write(&rego, AUTHZ).unwrap();
    let (code, out, err) = cli(
        &s.addr,
        &admin,
        &["policy", "add", rego.to_str().unwrap(), "--activate"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("Cedar policies and schema of active version 1 are kept"),
        "{err}"
    );
    let (_, v2) = s.admin(&admin, Method::GET, "/v1/policies/2", None).await;
    assert!(
        v2["policies"].as_str().unwrap().contains("@id(\"all\")"),
        "{v2}"
    );
    assert_eq!(v2["rego_modules"][0]["source"], AUTHZ, "{v2}");
    let (code, out, _) = cli(&s.addr, &admin, &["policy", "show", "2"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("--- Rego module ") && out.contains("package http.authz"),
        "{out}"
    );
    // And a Cedar-only add keeps the module.
    let (code, _, err) = cli(&s.addr, &admin, &["policy", "add", cedar.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("Rego modules and data of active version 2 are kept"),
        "{err}"
    );
    let (_, v3) = s.admin(&admin, Method::GET, "/v1/policies/3", None).await;
    assert_eq!(
        v3["rego_modules"][0]["id"], v2["rego_modules"][0]["id"],
        "{v3}"
    );
}

/// Regression (adversarial pass, issue 22): Rego ran on the async workers, and the
/// evaluation time limit is checked only between interpreter steps, so a builtin whose
/// work the input sizes (`bits.lsh(1, input.n)` here: seconds for its one step) held a
/// worker past the limit; a few such queries at once stalled every request of the node,
/// the main API and the kill switch included. Queries now run on blocking threads.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_builtin_does_not_stall_the_main_api() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[("MANDATE_OPA_LISTEN", "127.0.0.1:0")]);
    let admin = s.token.clone().unwrap();
    let opa = opa_base(&s);
    let (st, put) = curl(&[
        "-X",
        "PUT",
        "-H",
        &format!("Authorization: Bearer {admin}"),
        "--data-binary",
        "package slow\n\nshifted := bits.lsh(1, input.n)\n",
        &format!("{opa}/v1/policies/slow.rego"),
    ]);
    assert_eq!(st, 200, "{put}");
    // One more slow query than the server has async workers (tokio's default: one per
    // core).
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let slow: Vec<_> = (0..=workers)
        .map(|_| {
            let (admin, url) = (admin.clone(), format!("{opa}/v1/data/slow/shifted"));
            std::thread::spawn(move || {
                curl(&[
                    "-m",
                    "120",
                    "-X",
                    "POST",
                    "-H",
                    &format!("Authorization: Bearer {admin}"),
                    "-d",
                    r#"{"input": {"n": 4000000}}"#,
                    &url,
                ])
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let started = std::time::Instant::now();
    let (st, _) = s.admin(&admin, Method::GET, "/v1/agents", None).await;
    let took = started.elapsed();
    assert_eq!(st, 200);
    assert!(
        took < std::time::Duration::from_millis(1500),
        "the main API waited {took:?} for Rego queries"
    );
    for q in slow {
        let (st, _) = q.join().unwrap();
        // Whatever the builtin comes to, the answer is an answer or OPA's 500.
        assert!(st == 200 || st == 500, "{st}");
    }
}

/// A query tried on the async worker that outruns the inline budget is run again off it
/// and answered in full: the budget decides where a query runs, never what it answers.
#[test]
fn a_query_past_the_inline_budget_is_answered_off_the_worker() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[("MANDATE_OPA_LISTEN", "127.0.0.1:0")]);
    let admin = s.token.clone().unwrap();
    let opa = opa_base(&s);
    // 150 × 149 steps: far past the 2 ms inline budget, far inside the 500 ms limit even on
    // a loaded machine (300 × 299 once took past it under a parallel build).
    let xs: Vec<String> = (0..150).map(|i| i.to_string()).collect();
    let module = format!(
        "package loop\n\nxs := [\n{}\n]\n\nn := count([1 | some a in xs; some b in xs; a != b])\n",
        xs.join(",\n")
    );
    let (st, put) = curl(&[
        "-X",
        "PUT",
        "-H",
        &format!("Authorization: Bearer {admin}"),
        "--data-binary",
        &module,
        &format!("{opa}/v1/policies/loop.rego"),
    ]);
    assert_eq!(st, 200, "{put}");
    let (st, got) = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("Authorization: Bearer {admin}"),
        "-d",
        r#"{"input": {}}"#,
        &format!("{opa}/v1/data/loop/n"),
    ]);
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["result"], 150 * 149, "{got}");
}

/// Regression (adversarial pass, issue 22): the Policy API took any module id, control
/// characters included (`a%0Ab`, NUL, an ANSI escape), and `mandate policy list` printed
/// the version note `put module a` and a forged line `b`. Such ids are refused, 400.
#[test]
fn a_module_id_with_control_characters_is_refused() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[("MANDATE_OPA_LISTEN", "127.0.0.1:0")]);
    let admin = s.token.clone().unwrap();
    let opa = opa_base(&s);
    for id in ["a%0Ab", "a%00b", "a%1B%5B31mb", "ok.rego"] {
        let (st, body) = curl(&[
            "-X",
            "PUT",
            "-H",
            &format!("Authorization: Bearer {admin}"),
            "--data-binary",
            "package a\n\nx := 1\n",
            &format!("{opa}/v1/policies/{id}"),
        ]);
        if id == "ok.rego" {
            assert_eq!(st, 200, "{body}");
        } else {
            assert_eq!(
                (st, body["code"].as_str()),
                (400, Some("invalid_parameter")),
                "{id}: {body}"
            );
        }
    }
}
