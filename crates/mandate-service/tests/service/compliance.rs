//! A compliance report verifies the log it reports on: a stored event changed after the
//! fact, or a checkpoint not signed by this node's key, turns `log_verified` off and
//! names the problem, and every control resting on the log asks for attention.

use std::sync::Arc;

use mandate_service::compliance::{Framework, Status, report};

#[tokio::test]
async fn a_report_verifies_the_log_and_notices_a_changed_event() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _clock) = super::common::node_in(dir.path(), |c| c.checkpoint.every_events = 4);
    let node = Arc::new(node);
    for i in 0..8 {
        let mut e = node.event("test.event");
        e.details = Some(serde_json::json!({"n": i}));
        node.audit.record(e).await.unwrap();
    }
    let r = report(&node, Framework::EuAiAct, None).await.unwrap();
    assert!(r.log_verified, "{:?}", r.log_problem);
    let size = r.checkpoint.as_ref().unwrap().size;
    assert!(size >= 4, "{size}");
    let art12 = r.controls.iter().find(|c| c.id == "Art. 12(1)").unwrap();
    assert_eq!(art12.status, Status::Evidenced);

    // Someone with the database file changes event 1.
    let raw = rusqlite::Connection::open(dir.path().join("mandate.db")).unwrap();
    let changed = raw
        .execute(
            "UPDATE audit_events SET body = replace(body, '\"n\":1', '\"n\":7') WHERE seq = 1",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let r = report(&node, Framework::EuAiAct, None).await.unwrap();
    assert!(!r.log_verified);
    assert!(
        r.log_problem
            .as_deref()
            .unwrap()
            .contains("do not hash to the signed root"),
        "{:?}",
        r.log_problem
    );
    for id in ["Art. 12(1)", "Art. 12(2)", "Art. 26(6)"] {
        let c = r.controls.iter().find(|c| c.id == id).unwrap();
        assert_eq!(c.status, Status::Attention, "{id}");
    }
    let nist = report(&node, Framework::NistAiRmf, None).await.unwrap();
    let m43 = nist.controls.iter().find(|c| c.id == "MANAGE 4.3").unwrap();
    assert_eq!(m43.status, Status::Attention);

    // A checkpoint whose signature does not verify is named as such.
    raw.execute(
        "UPDATE audit_events SET body = replace(body, '\"n\":7', '\"n\":1') WHERE seq = 1",
        [],
    )
    .unwrap();
    assert!(
        report(&node, Framework::EuAiAct, None)
            .await
            .unwrap()
            .log_verified
    );
    raw.execute(
        "UPDATE audit_checkpoints SET text = replace(text, substr(text, -10, 4), 'AAAA')",
        [],
    )
    .unwrap();
    let r = report(&node, Framework::EuAiAct, None).await.unwrap();
    assert!(!r.log_verified);
    assert!(r.log_problem.unwrap().contains("checkpoint of size"));
}
