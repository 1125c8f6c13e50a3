//! Policy impact replay through the router: a window of real decisions, made through
//! `/v1/authorize`, re-decided with a candidate version (and boundary edits). The
//! candidate's changes are reported exactly — counts, groups and example events — and
//! replaying the active version changes nothing.

use axum::http::Method;
use serde_json::{Value, json};

use super::Env;

const SCHEMA: &str = r#"
namespace Crm { entity Contact { vip?: Bool }; entity Account; }
namespace Mandate {
  action "crm:read", "crm:list" in ["all"] appliesTo {
    principal: [Agent], resource: [Crm::Contact, Crm::Account],
  };
}
"#;

/// What is active while the decisions are made: everything is allowed.
const ACTIVE: &str = r#"
@id("work")
permit (principal, action in Mandate::Action::"all", resource);
"#;

/// The candidate: no VIP contacts, no listing.
const CANDIDATE: &str = r#"
@id("work")
permit (principal, action in Mandate::Action::"all", resource);

@id("no-vips")
forbid (principal, action, resource) when { resource has vip && resource.vip };

@id("no-list")
forbid (principal, action == Mandate::Action::"crm:list", resource);
"#;

impl Env {
    async fn add_version(&self, policies: &str) -> i64 {
        let r = self
            .admin(
                Method::POST,
                "/v1/policies",
                Some(json!({"policies": policies, "schema_fragments": [SCHEMA]})),
            )
            .await;
        r.expect(201);
        r.json()["version"].as_i64().expect("version")
    }

    /// Asks `/v1/authorize` as `token`: (decision, event id).
    async fn ask(&self, token: &str, action: &str, resource: Value) -> (String, String) {
        let r = self
            .bearer(
                token,
                Method::POST,
                "/v1/authorize",
                Some(json!({"action": action, "resource": resource})),
            )
            .await;
        r.expect(200);
        let v = r.json();
        (
            v["decision"].as_str().expect("decision").to_owned(),
            v["decision_id"].as_str().expect("decision_id").to_owned(),
        )
    }

    async fn replay(&self, version: i64, body: Value) -> Value {
        let r = self
            .admin(
                Method::POST,
                &format!("/v1/policies/{version}/replay"),
                Some(body),
            )
            .await;
        r.expect(200);
        r.json()
    }
}

#[tokio::test]
async fn a_replay_reports_exactly_what_a_candidate_changes_and_the_active_version_nothing() {
    let env = Env::new();
    let active = env.add_version(ACTIVE).await;
    env.admin(
        Method::POST,
        &format!("/v1/policies/{active}/activate"),
        None,
    )
    .await
    .expect(200);
    let candidate = env.add_version(CANDIDATE).await;
    let wide = json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}]});
    let a = env.client_with("reader", wide.clone()).await;
    let b = env.client_with("lister", wide.clone()).await;
    let c = env
        .client_with(
            "narrow",
            json!({"grants": [{"actions": ["crm:read"], "resources": ["*"]}]}),
        )
        .await;
    let s = env.client_with("stopped", wide).await;
    let (ta, tb, tc, ts) = (
        env.token(&a).await,
        env.token(&b).await,
        env.token(&c).await,
        env.token(&s).await,
    );
    let plain = json!({"type": "Crm::Contact", "id": "c-1"});
    let vip = json!({"type": "Crm::Contact", "id": "c-2", "attributes": {"vip": true}});
    let account = json!({"type": "Crm::Account", "id": "acc-1"});

    let mut vip_ids = Vec::new();
    let mut list_ids = Vec::new();
    for _ in 0..3 {
        assert_eq!(env.ask(&ta, "crm:read", plain.clone()).await.0, "allow");
    }
    for _ in 0..2 {
        let (d, id) = env.ask(&ta, "crm:read", vip.clone()).await;
        assert_eq!(d, "allow");
        vip_ids.push(id);
    }
    for _ in 0..2 {
        let (d, id) = env.ask(&tb, "crm:list", account.clone()).await;
        assert_eq!(d, "allow");
        list_ids.push(id);
    }
    // Outside its boundary: denied now, and under the candidate too.
    let (d, narrow_list) = env.ask(&tc, "crm:list", account.clone()).await;
    assert_eq!(d, "deny");
    // A suspended agent's refusal is not about policy: not re-decided.
    env.admin(
        Method::POST,
        &format!("/v1/agents/{}/suspend", s.id),
        Some(json!({"reason": "test"})),
    )
    .await
    .expect(200);
    assert_eq!(env.ask(&ts, "crm:read", plain.clone()).await.0, "deny");

    let report = env.replay(candidate, json!({})).await;
    assert_eq!(report["version"], candidate, "{report}");
    assert_eq!(report["active_version"], active, "{report}");
    assert_eq!(report["truncated"], false, "{report}");
    assert_eq!(
        report["counts"],
        json!({"decisions": 9, "same": 4, "allow_to_deny": 4, "deny_to_allow": 0,
               "other_changes": 0, "not_replayed": 1, "skipped": 0, "errors": 0,
               "changed_with_redacted_context": 0}),
        "{report}"
    );
    let changes = report["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 2, "{report}");
    // Equal counts: ordered by agent id.
    let mut expected = vec![
        json!({"agent": a.id, "action": "crm:read", "from": "allow", "to": "deny",
               "reason": "forbidden_by_policy", "policies": ["no-vips"], "count": 2,
               "example_events": vip_ids}),
        json!({"agent": b.id, "action": "crm:list", "from": "allow", "to": "deny",
               "reason": "forbidden_by_policy", "policies": ["no-list"], "count": 2,
               "example_events": list_ids}),
    ];
    expected.sort_by(|x, y| x["agent"].as_str().cmp(&y["agent"].as_str()));
    assert_eq!(changes, &expected, "{report}");
    assert_eq!(report["skipped"], json!([]), "{report}");

    // The identity: the active version re-decides every recorded decision as it was.
    let same = env.replay(active, json!({})).await;
    assert_eq!(same["counts"]["same"], 8, "{same}");
    assert_eq!(same["counts"]["not_replayed"], 1, "{same}");
    assert_eq!(same["changes"], json!([]), "{same}");

    // A boundary edit: the narrow agent given `crm:*` would have been allowed.
    let edited = env
        .replay(
            active,
            json!({"boundaries": {c.id.clone(): {"grants": [{"actions": ["crm:*"], "resources": ["*"]}]}}}),
        )
        .await;
    assert_eq!(edited["counts"]["deny_to_allow"], 1, "{edited}");
    assert_eq!(edited["counts"]["same"], 7, "{edited}");
    assert_eq!(
        edited["changes"],
        json!([{"agent": c.id, "action": "crm:list", "from": "deny", "to": "allow",
                "reason": "allowed_by_policy", "policies": ["work"], "count": 1,
                "example_events": [narrow_list]}]),
        "{edited}"
    );

    // A bounded read says it was bounded.
    let first = env.replay(candidate, json!({"limit": 3})).await;
    assert_eq!(first["truncated"], true, "{first}");
    assert_eq!(first["counts"]["decisions"], 3, "{first}");
    assert_eq!(first["counts"]["same"], 3, "{first}");

    // A window after everything holds nothing.
    let later = env
        .replay(candidate, json!({"since": "2999-01-01T00:00:00Z"}))
        .await;
    assert_eq!(later["counts"]["decisions"], 0, "{later}");
    assert_eq!(later["truncated"], false, "{later}");

    // Nothing was recorded or changed by replaying.
    let r = env.admin(Method::GET, "/v1/policies", None).await;
    assert_eq!(r.json()["active_version"], active);
}

#[tokio::test]
async fn replay_refuses_a_boundary_edit_of_an_unknown_agent_and_an_unknown_version() {
    let env = Env::new();
    let v = env.add_version(ACTIVE).await;
    let r = env
        .admin(
            Method::POST,
            &format!("/v1/policies/{v}/replay"),
            Some(json!({"boundaries": {"agt_00000000000000000000000000": {}}})),
        )
        .await;
    r.expect(400);
    assert_eq!(r.json()["code"], "invalid_field", "{}", r.json());
    let r = env
        .admin(Method::POST, "/v1/policies/99/replay", Some(json!({})))
        .await;
    r.expect(404);
}

const GEN_SCHEMA: &str = r#"
namespace Crm { entity Contact { vip?: Bool }; }
namespace Mandate {
  action "crm:read", "crm:list" in ["all"] appliesTo {
    principal: [Agent], resource: [Crm::Contact], context: { n?: Long },
  };
}
"#;

/// One decision of the generated log, as the test knows it.
struct Asked {
    id: String,
    agent: usize,
    action: &'static str,
    n: Option<i64>,
    decision: String,
}

/// The issue's replay check on a generated log: replaying the active version changes
/// nothing; a version with one added forbid changes exactly the allows it matches; a
/// version whose forbid fails to evaluate denies (counted as errors), never allows; an
/// event naming an unknown agent is skipped with its reason, not dropped.
#[tokio::test]
async fn on_a_generated_log_the_active_version_is_the_identity_and_a_forbid_changes_exactly_its_matches()
 {
    let env = Env::new();
    let add = |policies: String| {
        let env = &env;
        async move {
            let r = env
                .admin(
                    Method::POST,
                    "/v1/policies",
                    Some(json!({"policies": policies, "schema_fragments": [GEN_SCHEMA]})),
                )
                .await;
            r.expect(201);
            r.json()["version"].as_i64().expect("version")
        }
    };
    let base = r#"
@id("work") permit (principal, action in Mandate::Action::"all", resource);
@id("no-vips") forbid (principal, action, resource) when { resource has vip && resource.vip };
"#;
    let active = add(base.to_owned()).await;
    env.admin(
        Method::POST,
        &format!("/v1/policies/{active}/activate"),
        None,
    )
    .await
    .expect(200);
    let forbid = add(format!(
        "{base}\n@id(\"big-n\") forbid (principal, action, resource) when {{ context has n && context.n > 3 }};"
    ))
    .await;
    let failing = add(format!(
        "{base}\n@id(\"overflow\") forbid (principal, action, resource) when {{ context has n && context.n + 9223372036854775807 > 0 }};"
    ))
    .await;

    let boundaries = [
        json!({"grants": [{"actions": ["crm:*"], "resources": ["*"]}]}),
        json!({"grants": [{"actions": ["crm:read"], "resources": ["*"]}]}),
        json!({"grants": [{"actions": ["crm:*"], "resources": ["Crm::Contact/c-1*"]}]}),
    ];
    let mut clients = Vec::new();
    for (i, b) in boundaries.iter().enumerate() {
        let c = env.client_with(&format!("gen-{i}"), b.clone()).await;
        let t = env.token(&c).await;
        clients.push((c, t));
    }
    // A small linear congruential generator: the same log on every run.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) % m
    };
    let mut log = Vec::new();
    for _ in 0..150 {
        let agent = usize::try_from(next(3)).unwrap();
        let action = if next(2) == 0 { "crm:read" } else { "crm:list" };
        let id = format!("c-{}", next(30));
        let mut resource = json!({"type": "Crm::Contact", "id": id});
        match next(3) {
            0 => resource["attributes"] = json!({"vip": true}),
            1 => resource["attributes"] = json!({"vip": false}),
            _ => {}
        }
        let n = match next(3) {
            0 => None,
            k => Some(i64::try_from(k).unwrap() * 2),
        };
        let context = n.map_or_else(|| json!({}), |n| json!({"n": n}));
        let r = env
            .bearer(
                &clients[agent].1,
                Method::POST,
                "/v1/authorize",
                Some(json!({"action": action, "resource": resource, "context": context})),
            )
            .await;
        r.expect(200);
        let v = r.json();
        log.push(Asked {
            id: v["decision_id"].as_str().unwrap().to_owned(),
            agent,
            action,
            n,
            decision: v["decision"].as_str().unwrap().to_owned(),
        });
    }
    // An event naming an agent the registry never had.
    let mut ghost = mandate_audit::event::AuditEvent::new(
        0,
        mandate_core::clock::Clock::now(env.state.clock.as_ref()),
        env.state.audit.node().clone(),
        "decision",
    );
    ghost.agent = Some("agt_00000000000000000000000000".to_owned());
    ghost.action = Some("crm:read".to_owned());
    ghost.resource = Some(json!({"type": "Crm::Contact", "id": "c-1"}));
    ghost.decision = Some("allow".to_owned());
    ghost.reasons = vec!["allowed_by_policy".to_owned()];
    let ghost_id = env.state.audit.record(ghost).await.unwrap();

    let total = log.len() + 1;
    let allows = log.iter().filter(|a| a.decision == "allow").count();
    assert!(
        allows > 20 && allows < total - 20,
        "a mixed log: {allows} allows"
    );

    // The identity.
    let same = env.replay(active, json!({})).await;
    assert_eq!(same["counts"]["decisions"], total, "{same}");
    assert_eq!(same["counts"]["same"], total - 1, "{same}");
    assert_eq!(same["changes"], json!([]), "{same}");
    assert_eq!(
        same["skipped"],
        json!([{"reason": "unknown_agent", "count": 1, "example_events": [ghost_id]}]),
        "{same}"
    );

    // One added forbid: exactly the allows whose `n` is over 3 change, by agent and action.
    let r = env.replay(forbid, json!({})).await;
    let mut expected = std::collections::BTreeMap::new();
    for a in log
        .iter()
        .filter(|a| a.decision == "allow" && a.n > Some(3))
    {
        *expected
            .entry((clients[a.agent].0.id.clone(), a.action.to_owned()))
            .or_insert(0_u64) += 1;
    }
    let mut got = std::collections::BTreeMap::new();
    for g in r["changes"].as_array().unwrap() {
        assert_eq!(
            (&g["from"], &g["to"], &g["policies"]),
            (&json!("allow"), &json!("deny"), &json!(["big-n"])),
            "{g}"
        );
        for e in g["example_events"].as_array().unwrap() {
            let asked = log.iter().find(|a| a.id == *e).expect("a logged decision");
            assert!(asked.decision == "allow" && asked.n > Some(3), "{e}");
        }
        got.insert(
            (
                g["agent"].as_str().unwrap().to_owned(),
                g["action"].as_str().unwrap().to_owned(),
            ),
            g["count"].as_u64().unwrap(),
        );
    }
    assert_eq!(got, expected, "{r}");
    let changed: u64 = expected.values().sum();
    assert!(changed > 0);
    assert_eq!(r["counts"]["allow_to_deny"], changed, "{r}");
    assert_eq!(r["counts"]["same"], total as u64 - 1 - changed, "{r}");

    // A forbid that cannot be evaluated (overflow) denies, counted as an error: no
    // decision becomes an allow.
    let r = env.replay(failing, json!({})).await;
    assert_eq!(r["counts"]["deny_to_allow"], 0, "{r}");
    let errors = r["counts"]["errors"].as_u64().unwrap();
    assert!(errors > 0, "{r}");
    let errored: u64 = r["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["reason"] == "policy_error")
        .map(|g| {
            assert_eq!(g["to"], "deny", "{g}");
            g["count"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(errored, errors, "every error is listed: {r}");
}
