//! Anomaly detection on the real binary: configured from the environment, an agent
//! learns, then touches a resource type it never used and is suspended on that very
//! request; the anomaly is listed and its baseline shown by the CLI; both survive a
//! restart; resume is explicit, the hold stays until a human acknowledges.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, cli, data_dir};

const SCHEMA: &str = r#"
namespace Crm { entity Contact; }
namespace Db { entity Customer; }
namespace Mandate {
  action "crm:read" in ["all"] appliesTo { principal: [Agent], resource: [Crm::Contact] };
  action "db:read" in ["all"] appliesTo { principal: [Agent], resource: [Db::Customer] };
}
"#;

const ENV: &[(&str, &str)] = &[
    ("MANDATE_DETECT_LEARNING_DAYS", "0"),
    ("MANDATE_DETECT_LEARNING_MIN_REQUESTS", "20"),
    ("MANDATE_DETECT_RESPONSES_HIGH", "suspend"),
];

async fn ask(s: &Server, admin: &str, agent: &str, action: &str, ty: &str) -> Value {
    let (st, d) = s
        .admin(
            admin,
            Method::POST,
            "/v1/authorize",
            Some(json!({"principal": agent, "action": action,
                        "resource": {"type": ty, "id": "x"}})),
        )
        .await;
    assert_eq!(st, 200, "{d}");
    d
}

fn cli_json(s: &Server, admin: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = cli(&s.addr, admin, &all);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).expect("JSON output")
}

#[tokio::test]
async fn a_new_resource_type_suspends_and_everything_survives_a_restart() {
    let (_t, dir) = data_dir();
    let mut s = Server::start(&dir, &[], ENV);
    let admin = s.token.clone().expect("bootstrap token");
    let files = tempfile::tempdir().unwrap();
    let pol = files.path().join("p.cedar");
    let sch = files.path().join("s.cedarschema");
    std::fs::write(&pol, "permit (principal, action, resource);").unwrap();
    std::fs::write(&sch, SCHEMA).unwrap();
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &[
            "policy",
            "add",
            pol.to_str().unwrap(),
            "--schema",
            sch.to_str().unwrap(),
            "--activate",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (st, a) = s
        .admin(
            &admin,
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "reporter", "owner": "alice@example.com",
                        "boundary": {"grants": [{"actions": ["*"], "resources": ["*"]}]}})),
        )
        .await;
    assert_eq!(st, 201, "{a}");
    let agent = a["id"].as_str().unwrap().to_owned();
    for _ in 0..25 {
        let d = ask(&s, &admin, &agent, "crm:read", "Crm::Contact").await;
        assert_eq!(d["decision"], "allow");
    }
    let d = ask(&s, &admin, &agent, "db:read", "Db::Customer").await;
    assert_eq!(d["decision"], "deny");
    assert_eq!(d["reasons"][0], "agent_suspended");
    let d = ask(&s, &admin, &agent, "crm:read", "Crm::Contact").await;
    assert_eq!(d["decision"], "deny", "nothing after detection");

    let list = cli_json(&s, &admin, &["anomalies", "list", "--agent", &agent]);
    let items = list["items"].as_array().unwrap();
    let held = items
        .iter()
        .find(|a| a["kind"] == "new_resource_type")
        .expect("listed");
    assert_eq!(held["response"], "suspend");
    let id = held["id"].as_str().unwrap().to_owned();
    let (code, out, _) = cli(&s.addr, &admin, &["anomalies", "list", "--agent", &agent]);
    assert_eq!(code, 0);
    assert!(
        out.contains("first access to resource type `Db::Customer`"),
        "{out}"
    );
    let before = cli_json(&s, &admin, &["anomalies", "baseline", &agent]);
    assert_eq!(before["requests"], 26);
    assert_eq!(before["suspended_by_detector"], true);

    // Restart: the baseline, the anomaly, the suspension and its hold are all kept.
    assert!(s.stop().success());
    let s = Server::start(&dir, &[], ENV);
    let after = cli_json(&s, &admin, &["anomalies", "baseline", &agent]);
    assert_eq!(after["requests"], before["requests"]);
    assert_eq!(after["actions"], before["actions"]);
    assert!(after["pending"]["resource_type:Db::Customer"]["hold"] == true);
    let d = ask(&s, &admin, &agent, "crm:read", "Crm::Contact").await;
    assert_eq!(d["reasons"][0], "agent_suspended");

    let (code, _, err) = cli(&s.addr, &admin, &["agent", "resume", &agent]);
    assert_eq!(code, 0, "{err}");
    let d = ask(&s, &admin, &agent, "crm:read", "Crm::Contact").await;
    assert_eq!(d["decision"], "allow", "the hold is only on Db::Customer");
    let d = ask(&s, &admin, &agent, "db:read", "Db::Customer").await;
    assert_eq!(d["decision"], "approval_required");
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["anomalies", "ack", &id, "--comment", "new report, approved"],
    );
    assert_eq!(code, 0, "{err}");
    let d = ask(&s, &admin, &agent, "db:read", "Db::Customer").await;
    assert_eq!(d["decision"], "allow");
    let (code, _, err) = cli(&s.addr, &admin, &["anomalies", "ack", &id]);
    assert_eq!(code, 1, "twice: {err}");
}
