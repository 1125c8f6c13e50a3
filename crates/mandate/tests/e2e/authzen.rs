//! The AuthZEN Authorization API 1.0 against the real binary on a loopback port: the
//! certification scenario's decision vectors (mandate-http's
//! `tests/data/authzen/cases.json`, with the fixture's policies) through a `service`
//! token, the discovery document against the server's own issuer, the request id, and
//! the kill switch on the next request.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, data_dir};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../mandate-http/tests/data/authzen"
);

fn data(name: &str) -> String {
    std::fs::read_to_string(format!("{DATA}/{name}")).unwrap()
}

async fn post(s: &Server, bearer: &str, path: &str, body: &Value) -> (u16, Value, Option<String>) {
    let res = s
        .http
        .post(s.url(path))
        .bearer_auth(bearer)
        .header("x-request-id", "e2e-rid")
        .json(body)
        .send()
        .await
        .unwrap();
    let rid = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
        rid,
    )
}

#[tokio::test]
async fn authzen_over_http_holds_the_certification_vectors_and_the_kill_switch() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    s.activate_policies(&admin, &data("policies.cedar"), &data("schema.cedarschema"))
        .await;
    let boundary = json!({"grants": [{"actions": ["read", "write", "delete"],
                                      "resources": ["record/record-1", "record/record-2"]}]});
    let mut ids = Vec::new();
    for (name, labels) in [("alice", json!({})), ("bob", json!({"role": "admin"}))] {
        let (st, a) = s
            .admin(
                &admin,
                Method::POST,
                "/v1/agents",
                Some(json!({"name": name, "owner": "alice@example.com",
                            "labels": labels, "boundary": boundary})),
            )
            .await;
        assert_eq!(st, 201, "{a}");
        ids.push(a["id"].as_str().unwrap().to_owned());
    }
    let (_, svc) = s
        .admin(
            &admin,
            Method::POST,
            "/v1/admin-tokens",
            Some(json!({"name": "pep", "role": "service"})),
        )
        .await;
    let svc = svc["token"].as_str().unwrap().to_owned();

    // Every vector, as an enforcement point sends it; the request id comes back.
    let cases: Value = serde_json::from_str(&data("cases.json")).unwrap();
    let mut failures = Vec::new();
    for case in cases["cases"].as_array().unwrap() {
        let (st, v, rid) = post(&s, &svc, case["path"].as_str().unwrap(), &case["body"]).await;
        let want = &case["expect"];
        let mut ok =
            u64::from(st) == want["status"].as_u64().unwrap() && rid.as_deref() == Some("e2e-rid");
        if let Some(d) = want.get("decision") {
            ok &= v["decision"] == *d;
        }
        if let Some(code) = want.get("code") {
            ok &= v["code"] == *code;
        }
        if let Some(list) = want["evaluations"].as_array() {
            let got = v["evaluations"].as_array().cloned().unwrap_or_default();
            ok &= got.len() == list.len()
                && got.iter().zip(list).all(|(g, w)| {
                    g["decision"].is_boolean() && (w.is_null() || g["decision"] == *w)
                });
        }
        if let Some(inc) = want["results_include"].as_array() {
            let names: Vec<Value> = v["results"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    let n = &e["properties"]["name"];
                    if n.is_string() {
                        n.clone()
                    } else if e["id"].is_string() {
                        e["id"].clone()
                    } else {
                        e["name"].clone()
                    }
                })
                .collect();
            ok &= inc.iter().all(|n| names.contains(n));
        }
        if !ok {
            failures.push(format!("{} {}: {st} {v}", case["id"], case["about"]));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Discovery: absolute URLs under the server's own issuer.
    let meta: Value = s
        .http
        .get(s.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let iss = meta["issuer"].as_str().unwrap();
    let az: Value = s
        .http
        .get(s.url("/.well-known/authzen-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(az["policy_decision_point"], iss);
    assert_eq!(
        az["access_evaluation_endpoint"],
        format!("{iss}/access/v1/evaluation")
    );
    assert_eq!(
        az["search_action_endpoint"],
        format!("{iss}/access/v1/search/action")
    );

    // The agent asks for itself with its own token; suspended, the next answer is
    // false.
    let alice = &ids[0];
    let secret = s.add_secret(&admin, alice).await;
    let (st, t) = s.token_basic(alice, &secret, &[]).await;
    assert_eq!(st, 200, "{t}");
    let token = t["access_token"].as_str().unwrap().to_owned();
    let read = json!({"subject": {"type": "agent", "id": alice}, "action": {"name": "read"},
                      "resource": {"type": "record", "id": "record-1"}});
    let (st, v, _) = post(&s, &token, "/access/v1/evaluation", &read).await;
    assert_eq!((st, v["decision"].clone()), (200, json!(true)), "{v}");
    let (st, _) = s
        .admin(
            &admin,
            Method::POST,
            &format!("/v1/agents/{alice}/suspend"),
            Some(json!({"reason": "e2e"})),
        )
        .await;
    assert_eq!(st, 200);
    for bearer in [&token, &svc] {
        let (st, v, _) = post(&s, bearer, "/access/v1/evaluation", &read).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(
            (v["decision"].clone(), v["context"]["reason"].clone()),
            (json!(false), json!("agent_suspended")),
            "{v}"
        );
    }
    // Both refusals are in the log, with the request id.
    let events = s.audit_events(&admin, "decision", Some(alice)).await;
    let refused: Vec<&Value> = events
        .iter()
        .filter(|e| e["reasons"][0] == "agent_suspended")
        .collect();
    assert_eq!(refused.len(), 2, "{events:?}");
    assert!(refused.iter().all(|e| e["request_id"] == "e2e-rid"));
}
