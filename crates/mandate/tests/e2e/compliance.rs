//! `mandate report compliance` against a real server on a seeded history (policy
//! changes, allowed and denied decisions, a suspension by an admin, a containment), and
//! every number of the report recomputed independently from `mandate audit export`: the
//! test counts the exported events itself. The report names a checkpoint that the export
//! verifies against, and renders as Markdown and HTML with every value escaped.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::decide::{authorize, crm_setup, read_contact};
use crate::harness::{BIN, Server, cli, data_dir};

#[tokio::test]
async fn a_compliance_report_is_recomputed_from_the_export() {
    let (t, dir) = data_dir();
    let mut s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let (agent, token) = crm_setup(&s, &admin).await;
    for (team, class) in [
        ("sales", "internal"),
        ("support", "internal"),
        ("sales", "secret"),
        ("sales", "internal"),
    ] {
        authorize(&s, &token, read_contact(team, class)).await;
    }
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["agent", "suspend", &agent, "--reason", "review"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&s.addr, &admin, &["agent", "resume", &agent]);
    assert_eq!(code, 0, "{err}");
    let bundle = t.path().join("bundle.json");
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &[
            "incident",
            "contain",
            &agent,
            "--out",
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    // A stop seals a checkpoint over everything so far.
    assert!(s.stop().success());
    let s = Server::start(&dir, &[], &[]);

    let (code, out, err) = cli(
        &s.addr,
        &admin,
        &[
            "report",
            "compliance",
            "--framework",
            "eu-ai-act",
            "--since",
            "1h",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).expect("JSON");
    let export = t.path().join("audit.jsonl");
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["audit", "export", "--out", export.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");

    // The independent recount: every event of the export, by kind and field.
    let text = std::fs::read_to_string(&export).unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v.get("event").cloned())
        .collect();
    let since = report["since"].as_str().unwrap();
    let until = report["until"].as_str().unwrap();
    // RFC 3339 UTC times of one layout compare as text.
    let in_window: Vec<&Value> = events
        .iter()
        .filter(|e| {
            let t = e["time"].as_str().unwrap();
            t >= since && t <= until
        })
        .collect();
    let kind = |k: &str| in_window.iter().filter(|e| e["kind"] == k).count() as u64;
    let verdict = |v: &str| {
        in_window
            .iter()
            .filter(|e| e["kind"] == "decision" && e["decision"] == v)
            .count() as u64
    };
    let by_people = in_window
        .iter()
        .filter(|e| {
            e["kind"] == "agent.suspended"
                && e["actor"].as_str().is_some_and(|a| a.starts_with("adm_"))
        })
        .count() as u64;
    let policy_changes = in_window
        .iter()
        .filter(|e| e["kind"].as_str().is_some_and(|k| k.starts_with("policy.")))
        .count() as u64;
    let mut want: BTreeMap<&str, Value> = BTreeMap::new();
    want.insert("decisions", kind("decision").into());
    want.insert("decisions_allowed", verdict("allow").into());
    want.insert("decisions_denied", verdict("deny").into());
    want.insert(
        "decisions_held_for_approval",
        verdict("approval_required").into(),
    );
    want.insert("suspensions_by_people", by_people.into());
    want.insert("containments", kind("incident.contained").into());
    want.insert("tokens_revoked", kind("token.revoked").into());
    want.insert("mandates_revoked", kind("mandate.revoked").into());
    want.insert("anomalies_detected", kind("anomaly.detected").into());
    want.insert("approvals_approved", kind("mandate.approved").into());
    want.insert("reviews_completed", kind("review.completed").into());
    want.insert("policy_changes", policy_changes.into());
    want.insert("log_events_in_window", (in_window.len() as u64).into());
    want.insert("agents_registered", 1.into());
    want.insert("agents_with_owner", 1.into());
    let got = |n: &str| report["evidence"][n]["value"].clone();
    for (name, v) in &want {
        assert_eq!(&got(name), v, "evidence `{name}`: {report}");
    }
    // The events the report saw are a prefix of the export (the export may hold the
    // report's own later reads: none are recorded, so it holds exactly as many).
    assert_eq!(
        got("log_events"),
        Value::from(events.len() as u64),
        "{report}"
    );
    assert_eq!(got("log_first_event_at"), events[0]["time"]);
    assert!(got("decisions").as_u64().unwrap() >= 4);
    assert!(got("containments").as_u64().unwrap() == 1);
    assert!(got("suspensions_by_people").as_u64().unwrap() >= 1);

    // The checkpoint it names verifies the export.
    assert_eq!(report["log_verified"], true, "{report}");
    let cp_size = report["checkpoint"]["size"].as_u64().unwrap();
    assert!(cp_size > 0 && cp_size <= events.len() as u64);
    let (code, out, err) = cli(&s.addr, &admin, &["audit", "checkpoint", "--json"]);
    assert_eq!(code, 0, "{err}");
    let key = serde_json::from_str::<Value>(&out).unwrap()["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = std::process::Command::new(BIN)
        .args([
            "audit",
            "verify",
            export.to_str().unwrap(),
            "--public-key",
            &key,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            &serde_json::to_string(report["checkpoint"]["text"].as_str().unwrap()).unwrap()
        ),
        "the report's checkpoint is in the export"
    );

    // Controls: the log and the owners evidenced; oversight used in the window.
    let status = |id: &str| {
        report["controls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(status("Art. 12(1)"), "evidenced");
    assert_eq!(status("Art. 26(2)"), "evidenced");
    assert_eq!(status("Art. 14(4)(e)"), "evidenced");
    assert_eq!(status("Art. 14(4)(d)"), "no_activity");
    assert!(!report["not_evidenced"].as_array().unwrap().is_empty());

    // Markdown and HTML.
    let md = t.path().join("report.md");
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &[
            "report",
            "compliance",
            "--framework",
            "nist-ai-rmf",
            "--format",
            "markdown",
            "--out",
            md.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(md).unwrap();
    assert!(md.contains("| GOVERN 1.6 |"), "{md}");
    let (code, html, err) = cli(
        &s.addr,
        &admin,
        &[
            "report",
            "compliance",
            "--framework",
            "eu-ai-act",
            "--format",
            "html",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        html.starts_with("<!doctype html>") && html.contains("Art. 26(6)"),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");

    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["report", "compliance", "--framework", "iso"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("framework"), "{err}");
}
