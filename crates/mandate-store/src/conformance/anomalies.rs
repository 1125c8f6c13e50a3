//! Anomalies and baselines: stored, listed newest first with filters, resolved once,
//! and open holds found again; baselines replaced in place, never for unknown agents.

#![expect(clippy::unwrap_used, reason = "checks are tests: a failure panics")]
#![expect(
    clippy::indexing_slicing,
    reason = "checks are tests: lengths asserted first"
)]

use mandate_core::clock::ManualClock;
use mandate_core::id::AnomalyId;
use mandate_core::random::OsRandom;
use serde_json::json;

use super::{agent, at};
use crate::prelude::*;
use crate::{AnomalyFilter, AnomalyRow};

fn anomaly(
    ms: i64,
    agent: &mandate_core::id::AgentId,
    severity: &str,
    response: &str,
) -> AnomalyRow {
    AnomalyRow {
        id: AnomalyId::generate(&ManualClock::at_millis(ms), &OsRandom).unwrap(),
        agent: agent.clone(),
        at: at(ms / 1000),
        kind: "new_resource_type".into(),
        key: format!("resource_type:T{ms}"),
        score: 70,
        severity: severity.into(),
        response: response.into(),
        explanation: "first access to resource type `T` in 3 days of history".into(),
        details: json!({"observed": 0.0}),
        status: "open".into(),
        resolved_at: None,
        resolved_by: None,
        comment: None,
    }
}

/// Anomalies list newest first with filters and a cursor, resolve once, and open holds are found.
pub fn anomalies_are_listed_resolved_once_and_holds_found(store: &dyn Store) {
    let a = agent(1, "watched", "alice@example.com", &[]);
    let b = agent(2, "other", "bob@example.com", &[]);
    store.insert_agent(&a).unwrap();
    store.insert_agent(&b).unwrap();
    let rows = vec![
        anomaly(10, &a.id, "high", "step_up"),
        anomaly(20, &a.id, "medium", "alert"),
        anomaly(30, &b.id, "critical", "suspend"),
    ];
    store.insert_anomalies(&rows).unwrap();
    let all = store
        .list_anomalies(&AnomalyFilter::default(), None, 10)
        .unwrap();
    let ids: Vec<_> = all.iter().map(|r| r.id.clone()).collect();
    assert_eq!(
        ids,
        vec![rows[2].id.clone(), rows[1].id.clone(), rows[0].id.clone()]
    );
    let of_a = AnomalyFilter {
        agent: Some(a.id.clone()),
        ..AnomalyFilter::default()
    };
    assert_eq!(store.list_anomalies(&of_a, None, 10).unwrap().len(), 2);
    let page = store.list_anomalies(&of_a, Some(&rows[1].id), 10).unwrap();
    assert_eq!(page, vec![rows[0].clone()]);
    let high = AnomalyFilter {
        severity: Some("high".into()),
        ..AnomalyFilter::default()
    };
    assert_eq!(
        store.list_anomalies(&high, None, 10).unwrap(),
        vec![rows[0].clone()]
    );
    assert_eq!(store.open_holds().unwrap().len(), 2);

    let done = store
        .resolve_anomaly(&rows[0].id, "acknowledged", "adm_x", Some("ok"), at(100))
        .unwrap();
    assert_eq!(done.status, "acknowledged");
    assert_eq!(done.comment.as_deref(), Some("ok"));
    assert!(matches!(
        store.resolve_anomaly(&rows[0].id, "dismissed", "adm_y", None, at(101)),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_anomaly(&rows[0].id).unwrap(), Some(done));
    let unknown = AnomalyId::generate(&ManualClock::at_millis(99), &OsRandom).unwrap();
    assert!(matches!(
        store.resolve_anomaly(&unknown, "dismissed", "adm_y", None, at(101)),
        Err(StoreError::NotFound("anomaly"))
    ));
    assert_eq!(store.open_holds().unwrap(), vec![rows[2].clone()]);
}

/// Baselines are replaced in place and skipped for unknown agents.
pub fn baselines_are_replaced_and_only_for_known_agents(store: &dyn Store) {
    let a = agent(1, "learner", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    let id = a.id.to_string();
    store
        .save_baselines(
            &[
                (id.clone(), "{\"v\":1}".into()),
                ("agt_gone".into(), "{}".into()),
            ],
            at(1),
        )
        .unwrap();
    store
        .save_baselines(&[(id.clone(), "{\"v\":2}".into())], at(2))
        .unwrap();
    assert_eq!(
        store.baselines().unwrap(),
        vec![(id, "{\"v\":2}".to_owned())]
    );
}
