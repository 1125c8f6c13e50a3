//! `mandate policy replay` against a real server: decisions made through
//! `/v1/authorize` with the CRM example (whose policies read the resource's `team`
//! attribute), replayed with the active version (nothing changes: the log kept what the
//! policies read) and with a candidate that forbids `internal` data (exactly the allows
//! that named it change), as JSON and as a table.

use serde_json::{Value, json};

use crate::decide::{authorize, crm_setup, read_contact};
use crate::harness::{Server, cli, data_dir};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/crm");

#[tokio::test]
async fn policy_replay_reports_a_candidates_changes_and_none_for_the_active_version() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let (agent, token) = crm_setup(&s, &admin).await;

    let mut changed = Vec::new();
    for _ in 0..2 {
        let (_, d) = authorize(&s, &token, read_contact("sales", "internal")).await;
        assert_eq!(d["decision"], "allow", "{d}");
        changed.push(d["decision_id"].as_str().unwrap().to_owned());
    }
    let (_, d) = authorize(&s, &token, read_contact("support", "internal")).await;
    assert_eq!(d["reasons"][0], "no_permit", "{d}");
    let (_, d) = authorize(&s, &token, read_contact("sales", "secret")).await;
    assert_eq!(d["reasons"][0], "forbidden_by_policy", "{d}");

    let policies = std::fs::read_to_string(format!("{EXAMPLES}/policies.cedar")).unwrap();
    let schema = std::fs::read_to_string(format!("{EXAMPLES}/schema.cedarschema")).unwrap();
    let candidate = format!(
        "{policies}\n@id(\"no-internal\")\nforbid (principal, action == Mandate::Action::\"crm:read\", resource) \
         when {{ context.data_class == \"internal\" }};\n"
    );
    let (st, added) = s
        .admin(
            &admin,
            reqwest::Method::POST,
            "/v1/policies",
            Some(json!({"policies": candidate, "schema_fragments": [schema]})),
        )
        .await;
    assert_eq!(st, 201, "{added}");
    let v = added["version"].as_i64().unwrap().to_string();

    let (code, out, err) = cli(
        &s.addr,
        &admin,
        &[
            "policy",
            "replay",
            "--version",
            &v,
            "--since",
            "1h",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(report["counts"]["decisions"], 4, "{report}");
    assert_eq!(report["counts"]["allow_to_deny"], 2, "{report}");
    assert_eq!(report["counts"]["same"], 2, "{report}");
    assert_eq!(
        report["changes"],
        json!([{"agent": agent, "action": "crm:read", "from": "allow", "to": "deny",
                "reason": "forbidden_by_policy", "policies": ["no-internal"], "count": 2,
                "example_events": changed}]),
        "{report}"
    );

    // The active version (1) changes nothing: the recorded `team` attribute is read again.
    let (code, out, err) = cli(&s.addr, &admin, &["policy", "replay", "--version", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("same 4"), "{out}");
    assert!(out.contains("no decision changes"), "{out}");

    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["policy", "replay", "--version", "1", "--since", "last week"],
    );
    assert_eq!(code, 2, "{err}");
}
