//! Access review campaigns and their items (`ReviewRepo`, `INVARIANT (decided once)`).

use super::at;
use crate::prelude::*;
use crate::{ReviewItemRow, ReviewRow, Topic};

fn review(id: &str, due: i64) -> ReviewRow {
    ReviewRow {
        id: id.into(),
        name: format!("campaign {id}"),
        spec: "{\"owner\":\"alice@example.com\"}".into(),
        due: at(due),
        created_by: "admin:root".into(),
        created_at: at(1),
        completed_at: None,
    }
}

fn item(review: &str, agent: &str) -> ReviewItemRow {
    ReviewItemRow {
        review: review.into(),
        agent: agent.into(),
        owner: "alice@example.com".into(),
        state: "pending".into(),
        findings: format!("{{\"agent\":\"{agent}\"}}"),
        decided_by: None,
        decided_at: None,
        decision: None,
        escalated_at: None,
    }
}

/// Campaigns round-trip with their items (in agent order) and page by id; a taken id is
/// a `Conflict` that writes nothing; every write publishes [`Topic::Reviews`].
pub fn reviews_and_items_round_trip(store: &dyn Store) {
    let before = store.topic_seq(Topic::Reviews);
    let items = [item("rev_b", "agt_2"), item("rev_b", "agt_1")];
    store.insert_review(&review("rev_b", 100), &items).unwrap();
    assert_ne!(store.topic_seq(Topic::Reviews), before);
    store.insert_review(&review("rev_a", 50), &[]).unwrap();
    let taken = store.insert_review(&review("rev_b", 7), &[item("rev_b", "agt_9")]);
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    assert_eq!(store.review("rev_b").unwrap(), Some(review("rev_b", 100)));
    assert_eq!(store.review("nope").unwrap(), None);
    let got = store.review_items("rev_b").unwrap();
    assert_eq!(got, [item("rev_b", "agt_1"), item("rev_b", "agt_2")]);
    assert!(store.review_items("nope").unwrap().is_empty());
    let ids = |after: Option<&str>, limit| -> Vec<String> {
        store
            .reviews(after, limit)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(ids(None, 10), ["rev_a", "rev_b"]);
    assert_eq!(ids(None, 1), ["rev_a"]);
    assert_eq!(ids(Some("rev_a"), 10), ["rev_b"]);
}

/// An item is decided once (`INVARIANT (decided once)`): a second decision is a
/// `Conflict` that changes nothing, an unknown item `NotFound`; a campaign completes
/// only when no item is pending, and only once.
pub fn an_item_is_decided_once_and_a_campaign_completes_once(store: &dyn Store) {
    let items = [item("rev_1", "agt_1"), item("rev_1", "agt_2")];
    store.insert_review(&review("rev_1", 100), &items).unwrap();
    let d = store
        .decide_review_item("rev_1", "agt_1", "certified", "user:bob", at(5), "{}")
        .unwrap();
    assert_eq!(
        (d.state.as_str(), d.decided_by.as_deref(), d.decided_at),
        ("certified", Some("user:bob"), Some(at(5)))
    );
    assert_eq!(d.decision.as_deref(), Some("{}"));
    let again = store.decide_review_item("rev_1", "agt_1", "narrowed", "user:eve", at(6), "[]");
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let pending = store.decide_review_item("rev_1", "agt_2", "pending", "user:eve", at(6), "");
    assert!(
        matches!(pending, Err(StoreError::Conflict(_))),
        "{pending:?}"
    );
    let unknown = store.decide_review_item("rev_1", "agt_9", "certified", "u", at(6), "{}");
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    let unknown = store.decide_review_item("nope", "agt_1", "certified", "u", at(6), "{}");
    assert!(
        matches!(unknown, Err(StoreError::NotFound(_))),
        "{unknown:?}"
    );
    assert_eq!(
        store.review_items("rev_1").unwrap().first(),
        Some(&d),
        "a refused decision changed the item"
    );
    assert!(
        !store.complete_review("rev_1", at(7)).unwrap(),
        "agt_2 pending"
    );
    assert_eq!(store.review("rev_1").unwrap().unwrap().completed_at, None);
    store
        .decide_review_item("rev_1", "agt_2", "decommissioned", "admin:x", at(8), "{}")
        .unwrap();
    // A decision and the completion in one unit: both or neither.
    assert!(store.complete_review("rev_1", at(9)).unwrap());
    assert!(
        !store.complete_review("rev_1", at(10)).unwrap(),
        "completes once"
    );
    assert_eq!(
        store.review("rev_1").unwrap().unwrap().completed_at,
        Some(at(9))
    );
    assert!(!store.complete_review("nope", at(10)).unwrap());
    // An empty campaign completes at once.
    store.insert_review(&review("rev_0", 100), &[]).unwrap();
    assert!(store.complete_review("rev_0", at(11)).unwrap());
}

/// Overdue items are the pending, never escalated items of open campaigns due by `now`;
/// an item is escalated once, and never after it was decided.
pub fn overdue_items_escalate_once(store: &dyn Store) {
    store
        .insert_review(
            &review("rev_1", 100),
            &[
                item("rev_1", "agt_1"),
                item("rev_1", "agt_2"),
                item("rev_1", "agt_3"),
            ],
        )
        .unwrap();
    store
        .insert_review(&review("rev_2", 200), &[item("rev_2", "agt_1")])
        .unwrap();
    assert!(store.overdue_review_items(at(99), 10).unwrap().is_empty());
    store
        .decide_review_item("rev_1", "agt_3", "certified", "u", at(50), "{}")
        .unwrap();
    let agents = |now, limit| -> Vec<(String, String)> {
        store
            .overdue_review_items(at(now), limit)
            .unwrap()
            .into_iter()
            .map(|i| (i.review, i.agent))
            .collect()
    };
    let pair = |r: &str, a: &str| (r.to_owned(), a.to_owned());
    assert_eq!(
        agents(100, 10),
        [pair("rev_1", "agt_1"), pair("rev_1", "agt_2")]
    );
    assert_eq!(agents(100, 1), [pair("rev_1", "agt_1")]);
    assert!(
        store
            .escalate_review_item("rev_1", "agt_1", at(101))
            .unwrap()
    );
    assert!(
        !store
            .escalate_review_item("rev_1", "agt_1", at(102))
            .unwrap()
    );
    assert!(
        !store
            .escalate_review_item("rev_1", "agt_3", at(102))
            .unwrap(),
        "decided"
    );
    assert!(
        !store
            .escalate_review_item("nope", "agt_1", at(102))
            .unwrap()
    );
    assert_eq!(
        agents(300, 10),
        [pair("rev_1", "agt_2"), pair("rev_2", "agt_1")]
    );
    let items = store.review_items("rev_1").unwrap();
    let escalated = items.first().unwrap();
    assert_eq!(escalated.escalated_at, Some(at(101)));
    assert_eq!(escalated.state, "pending", "escalation does not decide");
}
