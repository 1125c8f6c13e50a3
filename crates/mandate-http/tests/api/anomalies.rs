//! Anomaly detection through the router, on simulated time: agents behave normally for
//! three simulated days (learning one), then (a) read a customer table they never
//! touched, (b) burst to 20× their rate, (c) probe with denied requests. With
//! suspension as the response each is caught within the stated number of requests and
//! nothing more is allowed; a step-up holds the agent's matching requests for
//! approval until a human acknowledges; resume is explicit; dismissal teaches; every
//! anomaly and response is in the audit log.

use axum::http::Method;
use mandate_detect::{DetectConfig, Response, Responses};
use mandate_http::ServerConfig;
use serde_json::{Value, json};

use super::Env;

const SCHEMA: &str = r#"
namespace Crm { entity Contact { vip?: Bool }; entity Account; }
namespace Db { entity Customer; }
namespace Mandate {
  action "crm:read", "crm:list" in ["all"] appliesTo {
    principal: [Agent], resource: [Crm::Contact, Crm::Account],
  };
  action "db:read" in ["all"] appliesTo { principal: [Agent], resource: [Db::Customer] };
}
"#;

/// Everything is allowed but VIP contacts.
const POLICIES: &str = r#"
@id("work")
permit (principal, action in Mandate::Action::"all", resource);

@id("no-vips")
forbid (principal, action, resource) when { resource has vip && resource.vip };
"#;

const DAY: i64 = 86_400;

fn detect(high: Response) -> impl FnOnce(&mut ServerConfig) {
    move |c| {
        c.detect.config = DetectConfig {
            learning_secs: DAY,
            learning_min_events: 100,
            responses: Responses {
                high,
                ..Responses::default()
            },
            ..DetectConfig::default()
        };
    }
}

impl Env {
    async fn detect_setup(&self, names: &[&str]) -> Vec<String> {
        self.activate(POLICIES, &[SCHEMA]).await;
        let boundary = json!({"grants": [{"actions": ["crm:*", "db:*"], "resources": ["*"]}]});
        let mut ids = Vec::new();
        for n in names {
            ids.push(self.register(n, boundary.clone()).await);
        }
        ids
    }

    /// One batch of `requests` (each `(agent, action, type, id, attributes)`), as the
    /// bootstrap admin naming the agents; the decisions in order.
    async fn batch(&self, requests: &[(&str, &str, &str, &str, Value)]) -> Vec<Value> {
        let body: Vec<Value> = requests
            .iter()
            .map(|(agent, action, ty, id, attrs)| {
                json!({"principal": agent, "action": action,
                       "resource": {"type": ty, "id": id, "attributes": attrs}})
            })
            .collect();
        let r = self
            .admin(
                Method::POST,
                "/v1/authorize/batch",
                Some(json!({"requests": body})),
            )
            .await;
        r.expect(200);
        r.json()["results"].as_array().expect("results").clone()
    }

    /// Three days of office hours: every ten minutes, eight requests per agent.
    async fn normal_days(&self, agents: &[String], days: i64) {
        let start = self.now() - self.now().rem_euclid(DAY);
        for day in 0..days {
            for slot in 0..(8 * 6) {
                let t = start + day * DAY + 9 * 3600 + slot * 600;
                self.advance(t - self.now());
                let mut reqs = Vec::new();
                for a in agents {
                    for i in 0..8 {
                        let (action, ty) = if i % 4 == 0 {
                            ("crm:list", "Crm::Account")
                        } else {
                            ("crm:read", "Crm::Contact")
                        };
                        reqs.push((a.as_str(), action, ty, "c1", json!({})));
                    }
                }
                for d in self.batch(&reqs).await {
                    assert_eq!(d["decision"], "allow", "normal traffic: {d}");
                }
            }
        }
        // The next morning.
        let t = start + days * DAY + 10 * 3600;
        self.advance(t - self.now());
    }

    async fn anomalies(&self, agent: &str) -> Vec<Value> {
        let r = self
            .admin(Method::GET, &format!("/v1/anomalies?agent={agent}"), None)
            .await;
        r.expect(200);
        r.json()["items"].as_array().expect("items").clone()
    }

    /// The agent's audit events of `kind`.
    async fn audit(&self, agent: &str, kind: &str) -> Vec<Value> {
        let r = self
            .admin(
                Method::GET,
                &format!("/v1/audit/events?agent={agent}&kind={kind}&limit=1000"),
                None,
            )
            .await;
        r.expect(200);
        r.json()["items"].as_array().expect("items").clone()
    }
}

/// Counts answers until the first refusal; returns (index of the first refused
/// request, allows after it).
fn first_refusal(answers: &[Value]) -> (Option<usize>, usize) {
    let first = answers.iter().position(|d| d["decision"] != "allow");
    let after = first.map_or(0, |i| {
        answers
            .iter()
            .skip(i)
            .filter(|d| d["decision"] == "allow")
            .count()
    });
    (first, after)
}

#[tokio::test]
async fn attacks_after_normal_days_are_caught_and_stopped() {
    let env = Env::with_config(detect(Response::Suspend));
    let agents = env.detect_setup(&["reader", "burster", "prober"]).await;
    env.normal_days(&agents, 3).await;
    for a in &agents {
        assert!(
            env.anomalies(a).await.is_empty(),
            "no anomaly from normal traffic"
        );
        let b = env
            .admin(Method::GET, &format!("/v1/agents/{a}/baseline"), None)
            .await;
        b.expect(200);
        let b = b.json();
        assert_eq!(b["learning"], false);
        assert_eq!(b["requests"], 3 * 48 * 8);
        assert_eq!(b["rate"]["mean"], 8.0);
    }

    // (a) A customer table it never touched: caught on the first request.
    let reader = agents[0].as_str();
    let reqs: Vec<_> = (0..5)
        .map(|i| (reader, "db:read", "Db::Customer", "cust", json!({"n": i})))
        .collect();
    let answers = env.batch(&reqs[..1]).await;
    let (first, _) = first_refusal(&answers);
    assert_eq!(first, Some(0));
    assert_eq!(answers[0]["reasons"][0], "agent_suspended");
    let more = env.batch(&reqs[1..]).await;
    assert!(more.iter().all(|d| d["decision"] == "deny"), "{more:?}");
    let normal = env
        .batch(&[(reader, "crm:read", "Crm::Contact", "c1", json!({}))])
        .await;
    assert_eq!(normal[0]["decision"], "deny", "suspended for everything");
    let found = env.anomalies(reader).await;
    let kinds: Vec<&str> = found.iter().filter_map(|a| a["kind"].as_str()).collect();
    assert!(kinds.contains(&"new_resource_type"), "{kinds:?}");
    let a = found
        .iter()
        .find(|a| a["kind"] == "new_resource_type")
        .expect("found");
    assert_eq!(
        a["explanation"],
        "first access to resource type `Db::Customer` in 3 days of history"
    );
    assert_eq!(a["response"], "suspend");
    let agent = env
        .admin(Method::GET, &format!("/v1/agents/{reader}"), None)
        .await;
    assert_eq!(agent.json()["status"], "suspended");
    let detected = env.audit(reader, "anomaly.detected").await;
    assert!(
        detected
            .iter()
            .any(|e| e["details"]["kind"] == "new_resource_type"
                && e["details"]["response"] == "suspend")
    );
    // Issue 23: the finding is in the trace of the request that raised it.
    let raised = detected
        .iter()
        .find(|e| e["details"]["kind"] == "new_resource_type")
        .expect("raised");
    // Its denials (the normal days' allows are more than a page).
    let r = env
        .admin(
            Method::GET,
            &format!("/v1/audit/events?agent={reader}&kind=decision&decision=deny&limit=1000"),
            None,
        )
        .await;
    r.expect(200);
    let decisions = r.json()["items"].as_array().expect("items").clone();
    assert!(raised["trace_id"].is_string(), "{raised}");
    let same: Vec<&Value> = decisions
        .iter()
        .filter(|e| e["trace_id"] == raised["trace_id"])
        .collect();
    assert_eq!(same.len(), 1, "one request, one decision: {same:?}");
    assert_eq!(same[0]["action"], "db:read");
    let suspended = env.audit(reader, "agent.suspended").await;
    assert_eq!(suspended.len(), 1, "the suspension is audited once");
    assert_eq!(suspended[0]["actor"], "detector");

    // (b) 20× its rate (8 a minute usually): caught once the minute holds more than
    // max(5 × 8, 8 + 4σ, 10) = 40 requests, i.e. by the 41st.
    let burster = agents[1].as_str();
    let burst: Vec<_> = (0..160)
        .map(|_| (burster, "crm:read", "Crm::Contact", "c1", json!({})))
        .collect();
    let mut answers = Vec::new();
    for chunk in burst.chunks(20) {
        answers.extend(env.batch(chunk).await);
    }
    let (first, allowed_after) = first_refusal(&answers);
    assert_eq!(first, Some(40), "the 41st request trips the spike");
    assert_eq!(allowed_after, 0, "nothing allowed after detection");
    let spike = env.anomalies(burster).await;
    assert_eq!(spike[0]["kind"], "rate_spike");

    // (c) Probing: reads of contacts it may not read. Caught at the fifth deny.
    let prober = agents[2].as_str();
    let probe: Vec<_> = (0..20)
        .map(|i| {
            (
                prober,
                "crm:read",
                "Crm::Contact",
                if i % 2 == 0 { "vip1" } else { "vip2" },
                json!({"vip": true}),
            )
        })
        .collect();
    let mut answers = Vec::new();
    for p in &probe {
        answers.extend(env.batch(std::slice::from_ref(p)).await);
    }
    assert!(answers.iter().all(|d| d["decision"] == "deny"));
    let reasons: Vec<&str> = answers
        .iter()
        .filter_map(|d| d["reasons"][0].as_str())
        .collect();
    let caught = reasons
        .iter()
        .position(|r| *r == "agent_suspended")
        .expect("probing is caught");
    assert_eq!(
        caught, 5,
        "the burst of five denies suspends; the sixth is refused"
    );
    let ok = env
        .batch(&[(prober, "crm:read", "Crm::Contact", "c1", json!({}))])
        .await;
    assert_eq!(ok[0]["decision"], "deny");
    assert_eq!(env.anomalies(prober).await[0]["kind"], "deny_burst");

    // Resume is explicit; the anomaly's hold remains until a human answers it.
    env.admin(Method::POST, &format!("/v1/agents/{prober}/resume"), None)
        .await
        .expect(200);
    let held = env
        .batch(&[(prober, "crm:read", "Crm::Contact", "c1", json!({}))])
        .await;
    assert_eq!(held[0]["decision"], "approval_required");
    assert_eq!(held[0]["reasons"][0], "step_up_required");
    let id = env.anomalies(prober).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = env
        .admin(
            Method::POST,
            &format!("/v1/anomalies/{id}/dismiss"),
            Some(json!({"comment": "pen test"})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json()["status"], "dismissed");
    let free = env
        .batch(&[(prober, "crm:read", "Crm::Contact", "c1", json!({}))])
        .await;
    assert_eq!(free[0]["decision"], "allow");
    // Twice is a conflict.
    env.admin(Method::POST, &format!("/v1/anomalies/{id}/dismiss"), None)
        .await
        .expect(409);
    for k in [
        "anomaly.detected",
        "agent.suspended",
        "agent.resumed",
        "anomaly.dismissed",
    ] {
        assert_eq!(env.audit(prober, k).await.len(), 1, "one {k}");
    }
}

#[tokio::test]
async fn a_step_up_holds_matching_requests_until_acknowledged() {
    let env = Env::with_config(|c| {
        c.detect.config = DetectConfig {
            learning_secs: 0,
            learning_min_events: 10,
            usual_hour_share: 0.0,
            ..DetectConfig::default()
        };
    });
    let agents = env.detect_setup(&["stepper"]).await;
    let a = agents[0].as_str();
    for _ in 0..10 {
        env.advance(30);
        env.batch(&[(a, "crm:read", "Crm::Contact", "c1", json!({}))])
            .await;
    }
    env.advance(30);
    let d = env
        .batch(&[(a, "db:read", "Db::Customer", "x", json!({}))])
        .await;
    assert_eq!(d[0]["decision"], "approval_required");
    assert_eq!(d[0]["reasons"][0], "step_up_required");
    // Only matching requests are held.
    let other = env
        .batch(&[(a, "crm:read", "Crm::Contact", "c1", json!({}))])
        .await;
    assert_eq!(other[0]["decision"], "allow");
    let found = env.anomalies(a).await;
    let held = found
        .iter()
        .find(|x| x["response"] == "step_up")
        .expect("a step-up");
    assert_eq!(held["kind"], "new_resource_type");
    assert_eq!(held["severity"], "high");
    // Listing filters.
    let r = env
        .admin(Method::GET, "/v1/anomalies?severity=high&status=open", None)
        .await;
    r.expect(200);
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(1));
    env.admin(Method::GET, "/v1/anomalies?severity=severe", None)
        .await
        .expect(400);
    env.admin(Method::GET, "/v1/anomalies?colour=red", None)
        .await
        .expect(400);
    // An auditor reads but may not answer.
    let auditor = env.admin_token("auditor").await;
    let id = held["id"].as_str().expect("id");
    env.bearer(&auditor, Method::GET, &format!("/v1/anomalies/{id}"), None)
        .await
        .expect(200);
    env.bearer(
        &auditor,
        Method::POST,
        &format!("/v1/anomalies/{id}/acknowledge"),
        None,
    )
    .await
    .expect(403);
    env.admin(
        Method::POST,
        &format!("/v1/anomalies/{id}/acknowledge"),
        Some(json!({"colour": "red"})),
    )
    .await
    .expect(400);
    env.admin(
        Method::POST,
        &format!("/v1/anomalies/{id}/acknowledge"),
        Some(json!({"comment": "new reporting job"})),
    )
    .await
    .expect(200);
    let d = env
        .batch(&[(a, "db:read", "Db::Customer", "x", json!({}))])
        .await;
    assert_eq!(
        d[0]["decision"], "allow",
        "acknowledged: released and learned"
    );
    env.admin(
        Method::GET,
        "/v1/anomalies/anm_00000000000000000000000000",
        None,
    )
    .await
    .expect(404);
    // Policies see the risk: the held decision's audit event carries it.
    let r = env
        .admin(
            Method::GET,
            &format!("/v1/audit/events?agent={a}&decision=approval_required"),
            None,
        )
        .await;
    let e = &r.json()["items"][0];
    assert_eq!(e["details"]["risk"]["step_up"], true);
    assert!(e["details"]["risk"]["score"].as_u64() >= Some(70));
}

#[tokio::test]
async fn an_alert_is_delivered_signed_to_the_alert_webhook() {
    use mandate_http::webhook::{WebhookConfig, signature};

    let (url, mut rx) = super::webhook_receiver().await;
    let secret = b"alert-secret-at-least-24-chars".to_vec();
    let hook = WebhookConfig {
        url,
        secret: secret.clone(),
        tls: mandate_tls::Settings::default(),
    };
    let env = Env::with_config(|c| {
        c.detect.config = DetectConfig {
            learning_secs: 0,
            learning_min_events: 10,
            usual_hour_share: 0.0,
            ..DetectConfig::default()
        };
        c.detect.alerts = Some(hook);
    });
    let a = env.detect_setup(&["alerter"]).await;
    let a = a[0].as_str();
    for _ in 0..10 {
        env.advance(30);
        env.batch(&[(a, "crm:read", "Crm::Contact", "c1", json!({}))])
            .await;
    }
    // A new action on a known resource type: medium, so an alert and nothing more.
    env.advance(30);
    let d = env
        .batch(&[(a, "crm:list", "Crm::Contact", "c1", json!({}))])
        .await;
    assert_eq!(
        d[0]["decision"], "allow",
        "an alert does not hold the request"
    );
    let (sig, body) = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("the alert webhook is called")
        .expect("a delivery");
    let v: Value = serde_json::from_slice(&body).expect("JSON body");
    assert_eq!(v["type"], "anomaly");
    assert_eq!(v["anomaly"]["kind"], "new_action");
    assert_eq!(v["anomaly"]["response"], "alert");
    assert_eq!(v["anomaly"]["agent"], a);
    assert_eq!(
        v["anomaly"]["explanation"],
        "first use of action `crm:list` in 0 days of history"
    );
    let t: i64 = sig
        .strip_prefix("t=")
        .and_then(|r| r.split(',').next())
        .and_then(|t| t.parse().ok())
        .expect("t= in the signature");
    assert_eq!(sig, signature(&secret, t, &body));
}

/// Finding (attack review): the detector's suspension was written outside the acts'
/// order and recorded after it, so an admin's decommission made just after it could be
/// logged first, and the log said `agent.decommissioned` then `agent.suspended` while the
/// agent was decommissioned. The detector's responses now record under the act order
/// (`INVARIANT (act order)`, mandate-service write_path.rs): the last status act in the
/// log is the status the agent ends with.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_detector_suspension_racing_a_decommission_is_recorded_in_order() {
    let env = Env::with_config(|c| {
        detect(Response::Suspend)(c);
        // Judging from the first request, so the fifth deny trips the burst at once.
        c.detect.config.learning_secs = 0;
        c.detect.config.learning_min_events = 0;
    });
    let names: Vec<String> = (0..30).map(|i| format!("raced-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let agents = env.detect_setup(&refs).await;
    let mut suspended_rounds = 0;
    for (i, agent) in agents.iter().enumerate() {
        let vip = (
            agent.as_str(),
            "crm:read",
            "Crm::Contact",
            "vip",
            json!({"vip": true}),
        );
        let usual = (agent.as_str(), "crm:read", "Crm::Contact", "c1", json!({}));
        for d in env.batch(&vec![usual; 20]).await {
            assert_eq!(d["decision"], "allow");
        }
        // Out of the deny window: the denies that follow are the whole window.
        env.advance(3600);
        for _ in 0..4 {
            let d = env.batch(std::slice::from_ref(&vip)).await;
            assert_eq!(d[0]["decision"], "deny");
        }
        let decommission = format!("/v1/agents/{agent}/decommission");
        // The decommission leaves a little later each round (0 to 3 ms), so some rounds
        // land it between the detector's suspension and that suspension's record.
        let lag = std::time::Duration::from_micros(100 * u64::try_from(i).unwrap_or(0));
        let (fifth, d) = tokio::join!(env.batch(std::slice::from_ref(&vip)), async {
            tokio::time::sleep(lag).await;
            env.admin(Method::POST, &decommission, None).await
        });
        assert_eq!(fifth[0]["decision"], "deny");
        d.expect(200);
        let r = env
            .admin(
                Method::GET,
                &format!("/v1/audit/events?agent={agent}&limit=1000"),
                None,
            )
            .await;
        r.expect(200);
        let kinds: Vec<String> = r.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|e| e["kind"].as_str())
            .filter(|k| *k == "agent.suspended" || *k == "agent.decommissioned")
            .map(str::to_owned)
            .collect();
        suspended_rounds += usize::from(kinds.iter().any(|k| k == "agent.suspended"));
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("agent.decommissioned"),
            "round {i}: the log's last status act is not the agent's status: {kinds:?}"
        );
    }
    assert!(
        suspended_rounds > 0,
        "the detector never suspended first: the race was not exercised"
    );
}
