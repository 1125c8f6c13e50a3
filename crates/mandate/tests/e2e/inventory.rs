//! `mandate inventory` against a real server: an agent that acted shows its last
//! activity and its credential's last use — written at shutdown and read back after a
//! restart, so they survive one — and a registered agent that never acted shows as
//! dead; JSON, table and CSV, with a formula in a purpose neutralised in the CSV.

use reqwest::Method;
use serde_json::{Value, json};

use crate::decide::{authorize, crm_setup, read_contact};
use crate::harness::{Server, cli, data_dir};

#[tokio::test]
async fn the_inventory_shows_last_activity_across_a_restart_and_findings() {
    let (_t, dir) = data_dir();
    let mut s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let (agent, token) = crm_setup(&s, &admin).await;
    let (_, d) = authorize(&s, &token, read_contact("sales", "internal")).await;
    assert_eq!(d["decision"], "allow", "{d}");
    let (st, idle) = s
        .admin(
            &admin,
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "idle-bot", "owner": "bob@example.com",
                        "purpose": "=HYPERLINK(\"http://x\")", "boundary": {"grants": []}})),
        )
        .await;
    assert_eq!(st, 201, "{idle}");
    let idle = idle["id"].as_str().unwrap().to_owned();
    // Stopping flushes what the node noted; a restart reads it from the store.
    assert!(s.stop().success());
    let s = Server::start(&dir, &[], &[]);

    let (code, out, err) = cli(&s.addr, &admin, &["inventory", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let inv: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(inv["agents"], 2, "{inv}");
    let row = |id: &str| {
        inv["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap()
    };
    let a = row(&agent);
    assert!(a["last_activity"].is_string(), "{a}");
    assert!(a["credentials"][0]["last_used_at"].is_string(), "{a}");
    assert_eq!(a["labels"]["team"], "sales");
    let i = row(&idle);
    assert_eq!(i["last_activity"], Value::Null);
    assert_eq!(i["findings"][0]["code"], "dead", "{i}");
    assert_eq!(inv["findings"]["dead"], 1, "{inv}");

    let (code, out, err) = cli(&s.addr, &admin, &["inventory", "--finding", "dead"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("idle-bot") && !out.contains("sales-bot"),
        "{out}"
    );
    assert!(out.contains("2 agents; findings: dead 1"), "{out}");

    let (code, out, err) = cli(&s.addr, &admin, &["inventory", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("id,name,owner,purpose,status"),
        "{out}"
    );
    assert!(
        out.contains("\"'=HYPERLINK(\"\"http://x\"\")\""),
        "the formula is neutralised: {out}"
    );

    let (code, _, err) = cli(&s.addr, &admin, &["inventory", "--finding", "nope"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("finding"), "{err}");
}
