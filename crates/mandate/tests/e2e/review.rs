//! `mandate review` against a real server: decisions made through `/v1/authorize` with
//! the CRM example, then a campaign started, shown, the agent narrowed to the
//! suggestion and the report written, all through the CLI.

use serde_json::{Value, json};

use crate::decide::{authorize, crm_setup, read_contact};
use crate::harness::{Server, cli, data_dir};

#[tokio::test]
async fn review_start_show_narrow_and_report_through_the_cli() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let (agent, token) = crm_setup(&s, &admin).await;
    for _ in 0..3 {
        let (_, d) = authorize(&s, &token, read_contact("sales", "internal")).await;
        assert_eq!(d["decision"], "allow", "{d}");
    }
    // The window ends when the campaign starts, to the second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let (code, out, err) = cli(
        &s.addr,
        &admin,
        &[
            "review",
            "start",
            "--owner",
            "alice@example.com",
            "--due",
            "14d",
            "--since",
            "1h",
            "--name",
            "quarterly",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let started: Value = serde_json::from_str(&out).expect("JSON");
    let id = started["review"]["id"].as_str().unwrap().to_owned();
    let item = &started["items"][0];
    assert_eq!(item["agent"], agent.as_str());
    assert_eq!(item["used"]["allows"], 3, "{item}");
    assert_eq!(item["grants"][0]["fate"], "narrowed", "{item}");
    let suggested = item["suggested"].clone();
    assert_eq!(
        suggested["grants"],
        json!([{"actions": ["crm:read"], "resources": ["Crm::Contact/c-1"],
                "data_classes": ["internal"]}])
    );

    let (code, out, err) = cli(&s.addr, &admin, &["review", "show", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("quarterly") && out.contains("narrowed"),
        "{out}"
    );
    let (code, out, err) = cli(&s.addr, &admin, &["review", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id) && out.contains("1 pending"), "{out}");

    let (code, out, err) = cli(
        &s.addr,
        &admin,
        &[
            "review",
            "narrow",
            &id,
            &agent,
            "--comment",
            "least privilege",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("narrowed") && out.contains("complete"),
        "{out}"
    );
    let (st, a) = s
        .admin(
            &admin,
            reqwest::Method::GET,
            &format!("/v1/agents/{agent}"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(a["boundary"], suggested);
    // What was used is still allowed.
    let (_, d) = authorize(&s, &token, read_contact("sales", "internal")).await;
    assert_eq!(d["decision"], "allow", "{d}");
    // Decided once.
    let (code, _, err) = cli(&s.addr, &admin, &["review", "certify", &id, &agent]);
    assert_eq!(code, 1);
    assert!(err.contains("already"), "{err}");

    let html = dir.join("report.html");
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &[
            "review",
            "report",
            &id,
            "--format",
            "html",
            "--out",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.starts_with("<!DOCTYPE html>") && page.contains("sales-bot"),
        "{page}"
    );
    let (code, out, err) = cli(
        &s.addr,
        &admin,
        &["review", "report", &id, "--format", "csv"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.contains(",\"narrowed\",")),
        "{out}"
    );
    let (code, _, _) = cli(&s.addr, &admin, &["review", "start", "--due", "someday"]);
    assert_eq!(code, 2);
}
