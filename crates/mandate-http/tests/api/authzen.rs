//! The AuthZEN Authorization API 1.0 (`/access/v1/*`, discovery) through the router:
//! the certification scenario's decision vectors (`tests/data/authzen/cases.json`,
//! against the fixture's policies in the same directory), the batch semantics, who may
//! ask, the kill switch, search paging, request ids and the errors.

use serde_json::Map;

use super::*;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/authzen");

fn data(name: &str) -> String {
    std::fs::read_to_string(format!("{DATA}/{name}")).expect("fixture file")
}

/// A boundary that names both fixture records for every fixture action.
fn records() -> Value {
    json!({"grants": [{"actions": ["read", "write", "delete"],
                       "resources": ["record/record-1", "record/record-2"]}]})
}

/// A server with the certification fixture: the policies, and agents `alice` and
/// `bob` (labelled `role=admin`). Returns (alice's id, bob's id).
async fn fixture(env: &Env) -> (String, String) {
    env.activate(&data("policies.cedar"), &[&data("schema.cedarschema")])
        .await;
    let alice = env.register("alice", records()).await;
    let r = env
        .admin(
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "bob", "owner": "alice@example.com",
                        "labels": {"role": "admin"}, "boundary": records()})),
        )
        .await;
    r.expect(201);
    (alice, r.json()["id"].as_str().expect("id").to_owned())
}

/// A POST with a JSON body, the given bearer and extra headers.
async fn post(env: &Env, bearer: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
        .header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    env.send(req.body(Body::from(body.to_owned())).expect("request"))
        .await
}

/// Checks one case of `cases.json`; `Err` says what differs.
fn check_case(case: &Value, r: &Reply) -> Result<(), String> {
    let want = &case["expect"];
    if r.status.as_u16() != want["status"].as_u64().unwrap_or(0) as u16 {
        return Err(format!("status {}", r.status));
    }
    if r.header(header::CONTENT_TYPE)
        .is_none_or(|t| !t.contains("json"))
    {
        return Err("not JSON".into());
    }
    let v = r.json();
    if let Some(code) = want["code"].as_str()
        && v["code"] != code
    {
        return Err(format!("code {}", v["code"]));
    }
    if let Some(d) = want.get("decision")
        && (v["decision"] != *d || v.get("evaluations").is_some())
    {
        return Err("decision".into());
    }
    if let Some(list) = want["evaluations"].as_array() {
        let got = v["evaluations"].as_array().ok_or("no evaluations")?;
        if got.len() != list.len() || v.get("decision").is_some() {
            return Err("evaluations length".into());
        }
        for (g, w) in got.iter().zip(list) {
            if !g["decision"].is_boolean() || (!w.is_null() && g["decision"] != *w) {
                return Err("an evaluation's decision".into());
            }
        }
    }
    // Subject search results are named by `properties.name`, the others by `id` or
    // `name`.
    let names: Vec<&str> = v["results"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    e["properties"]["name"]
                        .as_str()
                        .or(e["id"].as_str())
                        .or(e["name"].as_str())
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(inc) = want["results_include"].as_array() {
        for n in inc {
            if !names.contains(&n.as_str().unwrap_or_default()) {
                return Err(format!("results lack {n}"));
            }
        }
        if !v["page"]["next_token"].is_string() {
            return Err("no page.next_token".into());
        }
    }
    if let Some(exact) = want["results_exact"].as_array()
        && v["results"].as_array() != Some(exact)
    {
        return Err("results".into());
    }
    if let Some(n) = want["results_count"].as_u64()
        && v["results"].as_array().map(Vec::len) != Some(n as usize)
    {
        return Err("results count".into());
    }
    Ok(())
}

#[tokio::test]
async fn the_certification_vectors_hold() {
    let env = Env::new();
    fixture(&env).await;
    let service = env.admin_token("service").await;
    let cases: Value = serde_json::from_str(&data("cases.json")).expect("cases.json");
    let cases = cases["cases"].as_array().expect("cases");
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let r = post(
            &env,
            &service,
            case["path"].as_str().expect("path"),
            &case["body"].to_string(),
            &[],
        )
        .await;
        if let Err(e) = check_case(case, &r) {
            failures.push(format!(
                "{} {}: {e} -- {}",
                case["id"],
                case["about"],
                String::from_utf8_lossy(&r.body)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The same request gives the same decision (c-2-6, idempotency).
    let body = cases[0]["body"].to_string();
    for _ in 0..3 {
        let r = post(&env, &service, "/access/v1/evaluation", &body, &[]).await;
        assert_eq!(r.expect(200).json()["decision"], true);
    }
}

/// alice reads records 1 and 2 but writes only record 1: (write 2, write 1, write 1)
/// is (false, true, true).
fn three_writes(semantic: &str) -> String {
    json!({"subject": {"type": "agent", "id": "alice"}, "action": {"name": "write"},
           "options": {"evaluations_semantic": semantic},
           "evaluations": [{"resource": {"type": "record", "id": "record-2"}},
                           {"resource": {"type": "record", "id": "record-1"}},
                           {"resource": {"type": "record", "id": "record-1"}}]})
    .to_string()
}

async fn decisions_of(env: &Env, agent: &str) -> usize {
    let r = env
        .admin(
            Method::GET,
            &format!("/v1/audit/events?agent={agent}&kind=decision&limit=1000"),
            None,
        )
        .await;
    r.expect(200).json()["items"]
        .as_array()
        .expect("items")
        .len()
}

#[tokio::test]
async fn each_semantic_short_circuits_as_the_spec_says_and_every_decision_is_recorded() {
    let env = Env::new();
    let (alice, _) = fixture(&env).await;
    let decisions = |r: &Reply| -> Vec<Value> {
        r.json()["evaluations"]
            .as_array()
            .expect("evaluations")
            .iter()
            .map(|e| e["decision"].clone())
            .collect()
    };
    let admin = env.admin.clone();
    let r = post(
        &env,
        &admin,
        "/access/v1/evaluations",
        &three_writes("execute_all"),
        &[],
    )
    .await;
    assert_eq!(decisions(r.expect(200)), [false, true, true]);
    assert_eq!(decisions_of(&env, &alice).await, 3);
    // deny_on_first_deny: the first item denies, so it is the only answer.
    let r = post(
        &env,
        &admin,
        "/access/v1/evaluations",
        &three_writes("deny_on_first_deny"),
        &[],
    )
    .await;
    assert_eq!(decisions(r.expect(200)), [false]);
    assert_eq!(r.json()["evaluations"][0]["context"]["reason"], "no_permit");
    assert_eq!(decisions_of(&env, &alice).await, 4);
    // permit_on_first_permit: the second item permits; the third is not evaluated.
    let r = post(
        &env,
        &admin,
        "/access/v1/evaluations",
        &three_writes("permit_on_first_permit"),
        &[],
    )
    .await;
    assert_eq!(decisions(r.expect(200)), [false, true]);
    assert_eq!(decisions_of(&env, &alice).await, 6);
    // An invalid item counts as a deny and is not decided (so not recorded).
    let body = json!({"subject": {"type": "agent", "id": "alice"}, "action": {"name": "read"},
        "options": {"evaluations_semantic": "deny_on_first_deny"},
        "evaluations": [{"resource": {"type": "record", "id": "record-1"}}, {},
                        {"resource": {"type": "record", "id": "record-1"}}]});
    let r = post(
        &env,
        &admin,
        "/access/v1/evaluations",
        &body.to_string(),
        &[],
    )
    .await;
    let v = r.expect(200).json();
    assert_eq!(v["evaluations"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["evaluations"][1]["context"]["reason"], "invalid_request");
    assert_eq!(
        v["evaluations"][1]["context"]["error"]["code"],
        "missing_field"
    );
    assert_eq!(decisions_of(&env, &alice).await, 7);
    // Each allowed answer names its audit event.
    let id = v["evaluations"][0]["context"]["decision_id"]
        .as_str()
        .expect("id");
    assert!(id.contains(':'), "{id}");
}

#[tokio::test]
async fn an_agent_asks_only_about_itself_and_the_kill_switch_holds() {
    let env = Env::new();
    let (alice, _) = fixture(&env).await;
    let (_, secret) = env.add_secret(&alice).await;
    let token = env
        .token(&Client {
            id: alice.clone(),
            secret,
        })
        .await;
    let read = |who: &str| {
        json!({"subject": {"type": "agent", "id": who}, "action": {"name": "read"},
               "resource": {"type": "record", "id": "record-1"}})
        .to_string()
    };
    // By id or by name, the agent's own question is decided.
    for who in [alice.as_str(), "alice"] {
        let r = post(&env, &token, "/access/v1/evaluation", &read(who), &[]).await;
        assert_eq!(r.expect(200).json()["decision"], true);
    }
    // About another agent: 403, nothing decided.
    let before = decisions_of(&env, &alice).await;
    let r = post(&env, &token, "/access/v1/evaluation", &read("bob"), &[]).await;
    assert_eq!(r.expect(403).json()["code"], "forbidden");
    // Passing a token in the body is for enforcement points.
    let mut body: Value = serde_json::from_str(&read("alice")).expect("json");
    body["subject"]["properties"] = json!({"token": token});
    let r = post(
        &env,
        &token,
        "/access/v1/evaluation",
        &body.to_string(),
        &[],
    )
    .await;
    assert_eq!(r.expect(400).json()["code"], "invalid_field");
    // Subject search lists other agents: enforcement points only.
    let search = json!({"subject": {"type": "agent"}, "action": {"name": "read"},
                        "resource": {"type": "record", "id": "record-1"}});
    let r = post(
        &env,
        &token,
        "/access/v1/search/subject",
        &search.to_string(),
        &[],
    )
    .await;
    assert_eq!(r.expect(403).json()["code"], "forbidden");
    assert_eq!(decisions_of(&env, &alice).await, before);

    // An enforcement point passing the agent's token: decided as the token's agent; a
    // token of another agent than the subject is refused.
    let service = env.admin_token("service").await;
    let r = post(
        &env,
        &service,
        "/access/v1/evaluation",
        &body.to_string(),
        &[],
    )
    .await;
    assert_eq!(r.expect(200).json()["decision"], true);
    body["subject"]["id"] = json!("bob");
    let r = post(
        &env,
        &service,
        "/access/v1/evaluation",
        &body.to_string(),
        &[],
    )
    .await;
    assert_eq!(r.expect(400).json()["code"], "invalid_field");

    // The kill switch: suspended, the very next answer is false, for every caller.
    env.admin(
        Method::POST,
        &format!("/v1/agents/{alice}/suspend"),
        Some(json!({"reason": "incident"})),
    )
    .await
    .expect(200);
    let r = post(&env, &service, "/access/v1/evaluation", &read("alice"), &[]).await;
    let v = r.expect(200).json();
    assert_eq!(v["decision"], false);
    assert_eq!(v["context"]["reason"], "agent_suspended", "{v}");
    let r = post(&env, &token, "/access/v1/evaluation", &read("alice"), &[]).await;
    let v = r.expect(200).json();
    assert_eq!(
        (v["decision"].clone(), v["context"]["reason"].clone()),
        (json!(false), json!("agent_suspended"))
    );
    // Decommissioned: false too, on the next request.
    let r = post(&env, &service, "/access/v1/evaluation", &read("bob"), &[]).await;
    assert_eq!(r.expect(200).json()["decision"], true);
    let bob = env
        .admin(Method::GET, "/v1/agents?limit=10", None)
        .await
        .json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|a| a["name"] == "bob")
        .expect("bob")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    env.admin(
        Method::POST,
        &format!("/v1/agents/{bob}/decommission"),
        None,
    )
    .await
    .expect(200);
    let r = post(&env, &service, "/access/v1/evaluation", &read("bob"), &[]).await;
    let v = r.expect(200).json();
    assert_eq!(v["decision"], false, "{v}");
    assert_eq!(v["context"]["reason"], "agent_decommissioned", "{v}");
    // Suspended agents are no search result either.
    let r = post(
        &env,
        &service,
        "/access/v1/search/subject",
        &search.to_string(),
        &[],
    )
    .await;
    let names: Vec<Value> = r.expect(200).json()["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|e| e["properties"]["name"].clone())
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

#[tokio::test]
async fn unknown_and_foreign_subjects_are_false_never_allowed() {
    let env = Env::new();
    fixture(&env).await;
    let ask = |ty: &str, id: &str| {
        json!({"subject": {"type": ty, "id": id}, "action": {"name": "read"},
               "resource": {"type": "record", "id": "record-1"}})
        .to_string()
    };
    let admin = env.admin.clone();
    for (ty, id) in [
        ("agent", "nobody"),
        ("agent", "agt_01J00000000000000000000000"),
        ("user", "alice"),
    ] {
        let r = post(&env, &admin, "/access/v1/evaluation", &ask(ty, id), &[]).await;
        let v = r.expect(200).json();
        assert_eq!(v["decision"], false, "{v}");
        assert_eq!(v["context"]["reason"], "unknown_agent", "{v}");
        assert!(
            v["context"]["detail"].is_string() || id.starts_with("agt_"),
            "{v}"
        );
    }
    // The unknown id is named in its event, so the log says who was asked about.
    assert_eq!(
        decisions_of(&env, "agt_01J00000000000000000000000").await,
        1
    );
    // A subject of another type is never resolved, even with an agent's id.
    let alice = env.register("carol", records()).await;
    let r = post(
        &env,
        &admin,
        "/access/v1/evaluation",
        &ask("user", &alice),
        &[],
    )
    .await;
    assert_eq!(r.expect(200).json()["decision"], false);
}

#[tokio::test]
async fn approval_required_is_false_and_says_how_to_ask() {
    let env = Env::new();
    let policies = r#"
@id("delete-records") permit (principal, action == Mandate::Action::"delete", resource is record);
@id("hard-delete-needs-a-human") @approval
forbid (principal, action == Mandate::Action::"delete", resource is record)
when { !(context has action_soft && context.action_soft) };
"#;
    env.activate(policies, &[&data("schema.cedarschema")]).await;
    env.register("alice", records()).await;
    let body = json!({"subject": {"type": "agent", "id": "alice"},
                      "action": {"name": "delete", "properties": {"soft": false}},
                      "resource": {"type": "record", "id": "record-1"}});
    let r = post(
        &env,
        &env.admin.clone(),
        "/access/v1/evaluation",
        &body.to_string(),
        &[],
    )
    .await;
    let v = r.expect(200).json();
    assert_eq!(v["decision"], false, "{v}");
    assert_eq!(v["context"]["reason"], "approval_required");
    assert_eq!(
        v["context"]["approval"]["endpoint"],
        format!("{ISSUER}/v1/mandates")
    );
}

#[tokio::test]
async fn search_pages_with_tokens_bound_to_their_request() {
    let env = Env::new();
    fixture(&env).await;
    for i in 0..5 {
        env.register(&format!("reader-{i}"), records()).await;
    }
    let admin = env.admin.clone();
    let search = |page: Value| {
        json!({"subject": {"type": "agent"}, "action": {"name": "read"},
               "resource": {"type": "record", "id": "record-1"}, "page": page})
        .to_string()
    };
    let mut seen = Vec::new();
    let mut page = json!({"limit": 3});
    let mut rounds = 0;
    loop {
        rounds += 1;
        let r = post(
            &env,
            &admin,
            "/access/v1/search/subject",
            &search(page.clone()),
            &[],
        )
        .await;
        let v = r.expect(200).json();
        assert_eq!(v["page"]["total"], 7, "{v}");
        let results = v["results"].as_array().expect("results");
        assert_eq!(v["page"]["count"], results.len());
        seen.extend(
            results
                .iter()
                .map(|e| e["id"].as_str().expect("id").to_owned()),
        );
        let next = v["page"]["next_token"].as_str().expect("next_token");
        if next.is_empty() {
            break;
        }
        // A token is good only for the request that gave it.
        let other = json!({"subject": {"type": "agent"}, "action": {"name": "write"},
            "resource": {"type": "record", "id": "record-1"}, "page": {"limit": 3, "token": next}});
        let r = post(
            &env,
            &admin,
            "/access/v1/search/subject",
            &other.to_string(),
            &[],
        )
        .await;
        assert_eq!(r.expect(400).json()["code"], "invalid_field");
        page = json!({"limit": 3, "token": next});
    }
    assert_eq!(rounds, 3);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "every agent once, in id order");
    assert_eq!(seen.len(), 7);
    // Each page answered is one `authzen.search` event with the whole result; a
    // refused token decided nothing.
    let r = env
        .admin(
            Method::GET,
            "/v1/audit/events?kind=authzen.search&limit=100",
            None,
        )
        .await;
    let events = r.expect(200).json()["items"]
        .as_array()
        .expect("items")
        .clone();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0]["details"]["count"], 7);
}

#[tokio::test]
async fn resource_search_lists_named_resources_and_says_what_it_cannot() {
    let env = Env::new();
    env.activate(&data("policies.cedar"), &[&data("schema.cedarschema")])
        .await;
    env.register(
        "alice",
        json!({"grants": [
            {"actions": ["read"], "resources": ["record/record-1", "record/*"]},
            {"actions": ["write"], "resources": ["record/record-9"]}]}),
    )
    .await;
    let body = json!({"subject": {"type": "agent", "id": "alice"}, "action": {"name": "read"},
                      "resource": {"type": "record"}});
    let r = post(
        &env,
        &env.admin.clone(),
        "/access/v1/search/resource",
        &body.to_string(),
        &[],
    )
    .await;
    let v = r.expect(200).json();
    assert_eq!(
        v["results"],
        json!([{"type": "record", "id": "record-1"}]),
        "{v}"
    );
    assert_eq!(v["context"]["incomplete"], true);
    assert_eq!(v["context"]["skipped_patterns"], json!(["record/*"]));
}

#[tokio::test]
async fn the_request_id_is_echoed_on_every_answer() {
    let env = Env::new();
    fixture(&env).await;
    let rid = [("x-request-id", "bfe9eb29-ab87-4ca3-be83-a1d5d8305716")];
    let ok = json!({"subject": {"type": "agent", "id": "alice"}, "action": {"name": "read"},
                    "resource": {"type": "record", "id": "record-1"}})
    .to_string();
    let admin = env.admin.clone();
    for (path, body, status) in [
        ("/access/v1/evaluation", ok.as_str(), 200),
        ("/access/v1/evaluations", ok.as_str(), 200),
        ("/access/v1/evaluation", "{", 400),
        ("/access/v1/search/action", "{}", 400),
    ] {
        let r = post(&env, &admin, path, body, &rid).await;
        r.expect(status);
        assert_eq!(
            r.headers.get("x-request-id").and_then(|v| v.to_str().ok()),
            Some(rid[0].1)
        );
    }
    // Unauthenticated, too.
    let r = post(&env, "nope", "/access/v1/evaluation", &ok, &rid).await;
    r.expect(401);
    assert!(r.headers.contains_key("x-request-id"));
    // And recorded with the decision.
    let r = env
        .admin(Method::GET, "/v1/audit/events?kind=decision&limit=10", None)
        .await;
    let items = r.expect(200).json()["items"].clone();
    assert_eq!(items[0]["request_id"], rid[0].1, "{items}");
    // Discovery.
    let r = env
        .send(
            Request::get("/.well-known/authzen-configuration")
                .header("x-request-id", "r-1")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    r.expect(200);
    assert_eq!(
        r.headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some("r-1")
    );
    assert_eq!(
        r.json(),
        json!({
            "policy_decision_point": ISSUER,
            "access_evaluation_endpoint": format!("{ISSUER}/access/v1/evaluation"),
            "access_evaluations_endpoint": format!("{ISSUER}/access/v1/evaluations"),
            "search_subject_endpoint": format!("{ISSUER}/access/v1/search/subject"),
            "search_resource_endpoint": format!("{ISSUER}/access/v1/search/resource"),
            "search_action_endpoint": format!("{ISSUER}/access/v1/search/action"),
        })
    );
}

#[tokio::test]
async fn bad_requests_are_400_with_a_stable_code_never_5xx() {
    let env = Env::new();
    fixture(&env).await;
    let admin = env.admin.clone();
    let item = json!({"resource": {"type": "record", "id": "record-1"}});
    let too_many = json!({"subject": {"type": "agent", "id": "alice"}, "action": {"name": "read"},
                          "evaluations": vec![item; 101]})
    .to_string();
    let cases: &[(&str, &str, &str)] = &[
        ("/access/v1/evaluation", "", "invalid_json"),
        ("/access/v1/evaluation", "{\"subject\": ", "invalid_json"),
        ("/access/v1/evaluation", "[]", "invalid_field"),
        ("/access/v1/evaluation", "\"x\"", "invalid_field"),
        (
            "/access/v1/evaluation",
            r#"{"subject": {"type": "agent", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "r"}, "context": []}"#,
            "invalid_field",
        ),
        (
            "/access/v1/evaluation",
            r#"{"subject": {"type": "agent", "id": "alice", "properties": 1}, "action": {"name": "read"}, "resource": {"type": "record", "id": "r"}}"#,
            "invalid_field",
        ),
        ("/access/v1/evaluations", &too_many, "invalid_field"),
        (
            "/access/v1/evaluations",
            r#"{"evaluations": {}}"#,
            "invalid_field",
        ),
        (
            "/access/v1/evaluations",
            r#"{"options": {"evaluations_semantic": "all"}, "evaluations": [{}]}"#,
            "invalid_field",
        ),
        (
            "/access/v1/evaluations",
            r#"{"subject": 5, "evaluations": [{}]}"#,
            "invalid_field",
        ),
        (
            "/access/v1/search/subject",
            r#"{"subject": {"type": "agent"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "r"}, "page": {"limit": 0}}"#,
            "invalid_field",
        ),
        (
            "/access/v1/search/subject",
            r#"{"subject": {"type": "agent"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "r"}, "page": {"token": "???"}}"#,
            "invalid_field",
        ),
    ];
    for (path, body, code) in cases {
        let r = post(&env, &admin, path, body, &[]).await;
        assert_eq!(
            (r.status.as_u16(), r.json()["code"].as_str()),
            (400, Some(*code)),
            "{path} {body}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // Not declared as JSON: 400 here (AuthZEN), not 415.
    let r = env
        .send(
            Request::post("/access/v1/evaluation")
                .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("{}"))
                .expect("request"),
        )
        .await;
    assert_eq!(r.expect(400).json()["code"], "unsupported_media_type");
    // An auditor may not ask.
    let auditor = env.admin_token("auditor").await;
    let r = post(&env, &auditor, "/access/v1/evaluation", "{}", &[]).await;
    assert_eq!(r.expect(403).json()["code"], "forbidden");
}

/// As a property: whatever JSON object is posted — members of the right names with
/// values of any shape, nested — every AuthZEN endpoint answers 200 or 400 with a JSON
/// body, never a 5xx or a panic; a 200 evaluation's decisions are booleans, no more of
/// them than items, and a 400 carries a stable code.
#[test]
fn no_body_makes_a_server_error() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let env = Env::new();
    rt.block_on(fixture(&env));
    let word = prop::sample::select(vec![
        "agent",
        "user",
        "alice",
        "bob",
        "record",
        "record-1",
        "read",
        "write",
        "delete",
        "",
        "agt_01J00000000000000000000000",
        "execute_all",
        "deny_on_first_deny",
        "permit_on_first_permit",
        "eyJhbGciOiJFZERTQSJ9.e30.c2ln",
    ]);
    let key = prop::sample::select(vec![
        "subject",
        "action",
        "resource",
        "context",
        "evaluations",
        "options",
        "page",
        "type",
        "id",
        "name",
        "properties",
        "token",
        "evaluations_semantic",
        "limit",
        "status",
        "role",
        "soft",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-2i64..2000).prop_map(Value::from),
        word.prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    });
    // Members that are mostly well-formed, sometimes anything, sometimes absent: so
    // that many bodies get past the door and reach decisions and searches.
    let member = |good: BoxedStrategy<Value>, any: BoxedStrategy<Value>| prop_oneof![4 => good.prop_map(Some), 1 => any.prop_map(Some), 1 => Just(None)];
    let subject = (
        prop::sample::select(vec!["agent", "agent", "user"]),
        prop::sample::select(vec![
            "alice",
            "bob",
            "nobody",
            "agt_01J00000000000000000000000",
        ]),
        prop::option::of(prop::sample::select(vec!["admin", "viewer"])),
    )
        .prop_map(|(t, id, role)| match role {
            Some(r) => json!({"type": t, "id": id, "properties": {"role": r}}),
            None => json!({"type": t, "id": id}),
        })
        .boxed();
    let action = (
        prop::sample::select(vec!["read", "write", "delete", "fly"]),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(n, soft)| match soft {
            Some(b) => json!({"name": n, "properties": {"soft": b}}),
            None => json!({"name": n}),
        })
        .boxed();
    let resource = prop::sample::select(vec!["record-1", "record-2", "record-9"])
        .prop_map(|id| json!({"type": "record", "id": id}))
        .boxed();
    let anything = value.boxed();
    let item = (
        member(subject.clone(), anything.clone()),
        member(action.clone(), anything.clone()),
        member(resource.clone(), anything.clone()),
    )
        .prop_map(|(s, a, r)| {
            let mut o = Map::new();
            for (k, v) in [("subject", s), ("action", a), ("resource", r)] {
                if let Some(v) = v {
                    o.insert(k.to_owned(), v);
                }
            }
            Value::Object(o)
        });
    let semantic = prop::sample::select(vec![
        "execute_all",
        "deny_on_first_deny",
        "permit_on_first_permit",
    ])
    .prop_map(|s| json!({"evaluations_semantic": s}))
    .boxed();
    let body = (
        member(subject, anything.clone()),
        member(action, anything.clone()),
        member(resource, anything.clone()),
        member(
            prop::collection::vec(item, 0..4)
                .prop_map(Value::Array)
                .boxed(),
            anything.clone(),
        ),
        member(semantic, anything.clone()),
        member(Just(json!({"limit": 1})).boxed(), anything),
    )
        .prop_map(|(s, a, r, e, o, p)| {
            let mut m = Map::new();
            for (k, v) in [
                ("subject", s),
                ("action", a),
                ("resource", r),
                ("evaluations", e),
                ("options", o),
                ("page", p),
            ] {
                if let Some(v) = v {
                    m.insert(k.to_owned(), v);
                }
            }
            Value::Object(m)
        });
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let admin = env.admin.clone();
    let answered = std::cell::Cell::new(0u32);
    let result = runner.run(&body, |body| {
        for path in [
            "/access/v1/evaluation",
            "/access/v1/evaluations",
            "/access/v1/search/subject",
            "/access/v1/search/resource",
            "/access/v1/search/action",
        ] {
            let r = rt.block_on(post(&env, &admin, path, &body.to_string(), &[]));
            let v: Value = serde_json::from_slice(&r.body)
                .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{path}: {e}")))?;
            if r.status == StatusCode::OK {
                answered.set(answered.get() + 1);
            }
            match r.status.as_u16() {
                200 if path.ends_with("evaluation") || !v["evaluations"].is_array() => {
                    prop_assert!(
                        v["decision"].is_boolean() || v["results"].is_array(),
                        "{path} {body}: {v}"
                    );
                }
                200 => {
                    let got = v["evaluations"].as_array().map(Vec::len).unwrap_or(0);
                    let items = body["evaluations"].as_array().map(Vec::len).unwrap_or(0);
                    prop_assert!(got <= items, "{path} {body}: {v}");
                    prop_assert!(
                        v["evaluations"]
                            .as_array()
                            .is_some_and(|a| a.iter().all(|e| e["decision"].is_boolean())),
                        "{path} {body}: {v}"
                    );
                }
                400 => prop_assert!(v["code"].is_string(), "{path} {body}: {v}"),
                s => prop_assert!(false, "{path} {body}: {s} {v}"),
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The bodies are not all refused at the door: some reach a decision or a search.
    assert!(answered.get() >= cases / 8, "{} answered", answered.get());
}

/// INVARIANT (audience), decide.rs: an agent token issued for another API decides
/// nothing on Mandate, searches included. A token for `https://api.example.com/v1`
/// (one a resource server received) is denied by an evaluation; a resource or action
/// search with it, as the bearer or passed on by a service, must list nothing either.
#[tokio::test]
async fn a_token_for_another_audience_searches_nothing() {
    let env = Env::new();
    env.activate(&data("policies.cedar"), &[&data("schema.cedarschema")])
        .await;
    let mut boundary = records();
    boundary["audiences"] = json!(["https://api.example.com/*"]);
    let c = env.client_with("alice", boundary).await;
    let r = env
        .token_request(&c, &[("resource", "https://api.example.com/v1")])
        .await;
    let foreign = r.expect(200).json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let own = env.token(&c).await;
    let subject = json!({"type": "agent", "id": c.id});
    let with_token = json!({"type": "agent", "id": c.id, "properties": {"token": foreign}});
    let search = |s: &Value| {
        json!({"subject": s, "action": {"name": "read"}, "resource": {"type": "record"}})
            .to_string()
    };
    // The agent's own token for Mandate finds record-1: the fixture is not empty.
    let v = post(
        &env,
        &own,
        "/access/v1/search/resource",
        &search(&subject),
        &[],
    )
    .await
    .expect(200)
    .json();
    assert_ne!(v["results"], json!([]), "{v}");
    // The same agent's token for another API finds nothing, however it is presented.
    for (bearer, s) in [
        (foreign.clone(), &subject),
        (env.admin.clone(), &with_token),
    ] {
        let r = post(&env, &bearer, "/access/v1/search/resource", &search(s), &[]).await;
        if r.status == StatusCode::OK {
            assert_eq!(r.json()["results"], json!([]), "{}", r.json());
        }
        let body = json!({"subject": s, "resource": {"type": "record", "id": "record-1"}});
        let r = post(
            &env,
            &bearer,
            "/access/v1/search/action",
            &body.to_string(),
            &[],
        )
        .await;
        if r.status == StatusCode::OK {
            assert_eq!(r.json()["results"], json!([]), "{}", r.json());
        }
    }
}

/// Issue 23: a decision asked with a valid W3C `traceparent` is recorded with its trace
/// id; one asked with an invalid one (upper-case hex) or none gets a new trace id of its
/// own, never the invalid header's.
#[tokio::test]
async fn issue23_the_audit_event_carries_the_requests_trace_id() {
    let env = Env::new();
    fixture(&env).await;
    let ok = json!({"subject": {"type": "agent", "id": "alice"}, "action": {"name": "read"},
                    "resource": {"type": "record", "id": "record-1"}})
    .to_string();
    let admin = env.admin.clone();
    let tp = [(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )];
    post(&env, &admin, "/access/v1/evaluation", &ok, &tp)
        .await
        .expect(200);
    let all = env
        .admin(
            Method::GET,
            "/v1/audit/events?kind=decision&limit=100",
            None,
        )
        .await
        .expect(200)
        .json()["items"]
        .clone();
    let traced: Vec<&Value> = all
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736")
        .collect();
    assert_eq!(traced.len(), 1, "{all}");

    let bad = [(
        "traceparent",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
    )];
    post(&env, &admin, "/access/v1/evaluation", &ok, &bad)
        .await
        .expect(200);
    post(&env, &admin, "/access/v1/evaluation", &ok, &[])
        .await
        .expect(200);
    let all = env
        .admin(
            Method::GET,
            "/v1/audit/events?kind=decision&limit=100",
            None,
        )
        .await
        .expect(200)
        .json()["items"]
        .clone();
    let ids: Vec<String> = all
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            e["trace_id"]
                .as_str()
                .expect("every decision has a trace id")
                .to_owned()
        })
        .collect();
    assert!(ids.len() >= 3, "{all}");
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ids.len(),
        "each request its own trace: {ids:?}"
    );
    for id in &ids {
        assert!(mandate_core::trace::TraceId::parse(id).is_ok(), "{id}");
    }
}
