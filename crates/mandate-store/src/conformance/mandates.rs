//! Mandates: every field round-trips, listing filters and pages, changes are one unit
//! that refuses to move a mandate, and the active/lapsed queries agree with
//! `Mandate::status_at` at the boundary seconds.

#![expect(clippy::unwrap_used, reason = "checks are tests: a failure panics")]
#![expect(
    clippy::indexing_slicing,
    reason = "checks are tests: lengths asserted first"
)]

use mandate_core::agent::{Agent, Grant};
use mandate_core::clock::ManualClock;
use mandate_core::id::{AgentId, MandateId};
use mandate_core::mandate::{Mandate, MandateStatus, UserRef};
use mandate_core::random::OsRandom;

use super::{T0, agent, agent_id, assert_conflict, at};
use crate::MandateFilter;
use crate::prelude::*;

/// A mandate id created at `T0 + ms` milliseconds.
pub fn mandate_id(ms: i64) -> MandateId {
    MandateId::generate(&ManualClock::at_millis(T0 * 1000 + ms), &OsRandom).unwrap()
}

/// A user of a fixed issuer, by `sub`.
pub fn user(sub: &str) -> UserRef {
    UserRef {
        issuer: "https://idp.example.com".into(),
        sub: sub.into(),
        email: None,
        groups: vec![],
    }
}

/// A pending mandate with only the required fields set; `intent` names it in lists.
pub fn mandate(ms: i64, agent: &AgentId, intent: &str) -> Mandate {
    Mandate::requested(
        mandate_id(ms),
        agent.clone(),
        intent.into(),
        vec![Grant {
            actions: vec!["crm:read".into()],
            resources: vec!["crm:contact/*".into()],
            data_classes: vec![],
        }],
        600,
        MandateStatus::PendingApproval,
        at(0),
    )
}

/// An active mandate that expires at `T0 + expires`.
pub fn active(ms: i64, agent: &AgentId, intent: &str, expires: i64) -> Mandate {
    Mandate {
        status: MandateStatus::Active,
        activated_at: Some(at(expires - 600)),
        expires_at: Some(at(expires)),
        decided_by: Some("policy".into()),
        decided_at: Some(at(expires - 600)),
        ..mandate(ms, agent, intent)
    }
}

/// Stores the agent every mandate check starts with.
fn with_agent(store: &dyn Store) -> Agent {
    let a = agent(1, "worker", "alice@example.com", &[]);
    store.insert_agent(&a).unwrap();
    a
}

fn intents(ms: &[Mandate]) -> String {
    ms.iter()
        .map(|m| m.intent.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The caller's own error type, as the server's handlers have.
#[derive(Debug)]
enum TestError {
    Store(StoreError),
    Refused,
}

impl From<StoreError> for TestError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Every mandate field reads back as written, including optional and empty ones.
pub fn every_field_round_trips(store: &dyn Store) {
    let a = with_agent(store);
    let full = Mandate {
        id: mandate_id(10),
        agent: a.id.clone(),
        user: Some(UserRef {
            issuer: "https://idp.example.com".into(),
            sub: "u-123".into(),
            email: Some("carol@example.com".into()),
            groups: vec!["sales".into(), "emea".into()],
        }),
        intent: "export the Q3 pipeline\nfor the board deck".into(),
        justification: Some("carol asked in ticket #42".into()),
        scope: vec![
            Grant {
                actions: vec!["crm:read*".into(), "crm:export".into()],
                resources: vec!["crm:deal/*".into()],
                data_classes: vec!["pii".into()],
            },
            Grant {
                actions: vec!["drive:write".into()],
                resources: vec!["drive:folder/board".into()],
                data_classes: vec![],
            },
        ],
        lifetime_secs: 86_400,
        status: MandateStatus::Completed,
        created_at: at(1),
        approval_deadline: Some(at(301)),
        activated_at: Some(at(60)),
        expires_at: Some(at(86_460)),
        decided_by: Some("user:approver-7".into()),
        decision_comment: Some("ok for this week only".into()),
        decided_at: Some(at(60)),
        policy_ids: vec!["approve-exports".into(), "base".into()],
        ended_at: Some(at(3_600)),
        ended_by: Some(a.id.as_str().to_owned()),
    };
    let bare = mandate(11, &a.id, "bare");
    store.insert_mandate(&full).unwrap();
    store.insert_mandate(&bare).unwrap();
    assert_eq!(store.get_mandate(&full.id).unwrap(), Some(full.clone()));
    assert_eq!(store.get_mandate(&bare.id).unwrap(), Some(bare.clone()));
    assert_eq!(store.get_mandate(&mandate_id(12)).unwrap(), None);

    // A user with no email and no groups stays that way (not `Some("")`, not dropped).
    let plain_user = Mandate {
        user: Some(user("u-9")),
        justification: Some("j".into()),
        ..mandate(13, &a.id, "plain user")
    };
    store.insert_mandate(&plain_user).unwrap();
    assert_eq!(store.get_mandate(&plain_user.id).unwrap(), Some(plain_user));
}

/// A mandate of an unknown agent is `NotFound("agent")`; a taken id is a `Conflict`; neither writes.
pub fn an_unknown_agent_or_a_taken_id_is_refused(store: &dyn Store) {
    let a = with_agent(store);
    let orphan = mandate(10, &agent_id(2), "orphan");
    let r = store.insert_mandate(&orphan);
    assert!(
        matches!(r, Err(StoreError::NotFound("agent"))),
        "expected NotFound(agent), got {r:?}"
    );
    assert_eq!(store.get_mandate(&orphan.id).unwrap(), None);

    let m = mandate(11, &a.id, "first");
    store.insert_mandate(&m).unwrap();
    assert_conflict(store.insert_mandate(&Mandate {
        intent: "second".into(),
        ..m.clone()
    }));
    assert_eq!(store.get_mandate(&m.id).unwrap(), Some(m));
}

/// `list_mandates` filters by agent, stored status and user subject, in id order.
pub fn list_filters_by_agent_status_and_user_sub(store: &dyn Store) {
    let a = with_agent(store);
    let b = agent(2, "other", "bob@example.com", &[]);
    store.insert_agent(&b).unwrap();
    let ms = [
        Mandate {
            user: Some(user("alice")),
            ..mandate(10, &a.id, "a-pending-alice")
        },
        Mandate {
            user: Some(user("bob")),
            ..active(11, &a.id, "a-active-bob", 600)
        },
        mandate(12, &a.id, "a-pending-nobody"),
        Mandate {
            user: Some(user("alice")),
            ..active(13, &b.id, "b-active-alice", 600)
        },
        Mandate {
            status: MandateStatus::Revoked,
            // Same subject at another issuer: the filter is on the subject alone.
            user: Some(UserRef {
                issuer: "https://other-idp.example.com".into(),
                ..user("alice")
            }),
            ..mandate(14, &b.id, "b-revoked-alice")
        },
    ];
    // Insert out of order: lists follow id (creation) order.
    for m in ms.iter().rev() {
        store.insert_mandate(m).unwrap();
    }

    let list = |f: MandateFilter| intents(&store.list_mandates(&f, None, 100).unwrap());
    assert_eq!(
        list(MandateFilter::default()),
        "a-pending-alice,a-active-bob,a-pending-nobody,b-active-alice,b-revoked-alice"
    );
    assert_eq!(
        list(MandateFilter {
            agent: Some(a.id.clone()),
            ..Default::default()
        }),
        "a-pending-alice,a-active-bob,a-pending-nobody"
    );
    assert_eq!(
        list(MandateFilter {
            agent: Some(agent_id(3)),
            ..Default::default()
        }),
        ""
    );
    assert_eq!(
        list(MandateFilter {
            status: Some(MandateStatus::Active),
            ..Default::default()
        }),
        "a-active-bob,b-active-alice"
    );
    assert_eq!(
        list(MandateFilter {
            status: Some(MandateStatus::Expired),
            ..Default::default()
        }),
        ""
    );
    assert_eq!(
        list(MandateFilter {
            user_sub: Some("alice".into()),
            ..Default::default()
        }),
        "a-pending-alice,b-active-alice,b-revoked-alice"
    );
    assert_eq!(
        list(MandateFilter {
            user_sub: Some("nobody".into()),
            ..Default::default()
        }),
        "",
        "a mandate with no user matches no subject"
    );
    assert_eq!(
        list(MandateFilter {
            agent: Some(b.id.clone()),
            status: Some(MandateStatus::Active),
            user_sub: Some("alice".into()),
        }),
        "b-active-alice"
    );
    assert_eq!(
        list(MandateFilter {
            agent: Some(a.id.clone()),
            status: Some(MandateStatus::PendingApproval),
            user_sub: Some("alice".into()),
        }),
        "a-pending-alice"
    );
}

/// `list_mandates` pages in id order after a cursor, combined with a filter.
pub fn list_pages_with_a_cursor(store: &dyn Store) {
    let a = with_agent(store);
    let all: Vec<Mandate> = (0..7)
        .map(|i| mandate(10 + i, &a.id, &format!("m{i}")))
        .collect();
    for m in all.iter().rev() {
        store.insert_mandate(m).unwrap();
    }
    let f = MandateFilter::default();
    let mut seen = Vec::new();
    let mut cursor: Option<MandateId> = None;
    let mut pages = 0;
    loop {
        let page = store.list_mandates(&f, cursor.as_ref(), 3).unwrap();
        assert!(page.len() <= 3);
        pages += 1;
        let Some(last) = page.last() else { break };
        cursor = Some(last.id.clone());
        seen.extend(page);
    }
    assert_eq!(pages, 4, "3 + 3 + 1, then an empty page");
    assert_eq!(seen, all);
    assert!(store.list_mandates(&f, None, 0).unwrap().is_empty());

    // The cursor combines with a filter.
    let f = MandateFilter {
        agent: Some(a.id.clone()),
        status: Some(MandateStatus::PendingApproval),
        ..Default::default()
    };
    let page = store.list_mandates(&f, Some(&all[4].id), 10).unwrap();
    assert_eq!(intents(&page), "m5,m6");
}

/// `modify_mandate` writes every changed field back.
pub fn modify_writes_the_change_back(store: &dyn Store) {
    let a = with_agent(store);
    let m = Mandate {
        approval_deadline: Some(at(300)),
        ..mandate(10, &a.id, "pending")
    };
    store.insert_mandate(&m).unwrap();

    let changed = store
        .modify_mandate(&m.id, |x| -> Result<(), TestError> {
            x.status = MandateStatus::Active;
            x.activated_at = Some(at(100));
            x.expires_at = Some(at(700));
            x.decided_by = Some("user:approver".into());
            x.decision_comment = Some("fine".into());
            x.decided_at = Some(at(100));
            x.policy_ids = vec!["needs-approval".into()];
            x.user = Some(user("carol"));
            Ok(())
        })
        .unwrap();
    assert_eq!(changed.status, MandateStatus::Active);
    assert_eq!(store.get_mandate(&m.id).unwrap(), Some(changed));
}

/// `modify_mandate_with_owner` hands the change the agent's current owner; a refusal writes nothing.
pub fn a_change_with_the_owner_sees_the_owner_at_the_time_of_the_write(store: &dyn Store) {
    let a = with_agent(store);
    let m = mandate(10, &a.id, "pending");
    store.insert_mandate(&m).unwrap();
    let seen = |store: &dyn Store| {
        let mut owner = None;
        store
            .modify_mandate_with_owner(&m.id, |_, o| -> Result<(), TestError> {
                owner = o.map(str::to_owned);
                Ok(())
            })
            .unwrap();
        owner
    };
    assert_eq!(seen(store).as_deref(), Some(a.owner.as_str()));
    store
        .modify_agent(&a.id, at(5), |x| -> Result<(), StoreError> {
            x.owner = "bob@example.com".to_owned().try_into().unwrap();
            Ok(())
        })
        .unwrap();
    assert_eq!(seen(store).as_deref(), Some("bob@example.com"));
    // A refusal still writes nothing.
    let r = store.modify_mandate_with_owner(&m.id, |x, _| {
        x.intent = "changed".into();
        Err(TestError::Refused)
    });
    assert!(matches!(r, Err(TestError::Refused)));
    assert_eq!(store.get_mandate(&m.id).unwrap().unwrap().intent, m.intent);
}

/// A mandate change that refuses writes nothing; an unknown id is `NotFound("mandate")` without calling the change.
pub fn a_refusing_change_writes_nothing(store: &dyn Store) {
    let a = with_agent(store);
    let m = mandate(10, &a.id, "steady");
    store.insert_mandate(&m).unwrap();

    let r = store.modify_mandate(&m.id, |x| {
        // Change everything first, then refuse: none of it may reach the database.
        x.status = MandateStatus::Active;
        x.intent = "something else".into();
        x.expires_at = Some(at(10));
        Err(TestError::Refused)
    });
    assert!(matches!(r, Err(TestError::Refused)), "{r:?}");
    assert_eq!(store.get_mandate(&m.id).unwrap(), Some(m.clone()));

    // Unknown ids are NotFound, and the closure is never called.
    let r = store.modify_mandate(&mandate_id(11), |_| -> Result<(), TestError> {
        unreachable!("no mandate to change")
    });
    assert!(
        matches!(r, Err(TestError::Store(StoreError::NotFound("mandate")))),
        "{r:?}"
    );
    // The connection is still usable after the rollbacks.
    store.insert_mandate(&mandate(12, &a.id, "next")).unwrap();
}

/// INVARIANT (mandate identity): a change of id or agent is a `Conflict` and writes nothing.
pub fn a_change_may_not_move_a_mandate(store: &dyn Store) {
    let a = with_agent(store);
    let b = agent(2, "other", "bob@example.com", &[]);
    store.insert_agent(&b).unwrap();
    let m = mandate(10, &a.id, "mine");
    let other = mandate(11, &a.id, "neighbour");
    store.insert_mandate(&m).unwrap();
    store.insert_mandate(&other).unwrap();

    let fresh = mandate_id(12);
    assert_conflict(store.modify_mandate(&m.id, |x| {
        x.id = fresh.clone();
        x.intent = "renamed".into();
        Ok(())
    }));
    assert_conflict(store.modify_mandate(&m.id, |x| {
        // Onto an existing row: must not overwrite the neighbour either.
        x.id = other.id.clone();
        Ok(())
    }));
    assert_conflict(store.modify_mandate(&m.id, |x| {
        x.agent = b.id.clone();
        Ok(())
    }));
    assert_eq!(store.get_mandate(&m.id).unwrap(), Some(m));
    assert_eq!(store.get_mandate(&other.id).unwrap(), Some(other));
    assert_eq!(store.get_mandate(&fresh).unwrap(), None);
    assert!(store.mandates_of_agent(&b.id).unwrap().is_empty());
}

/// INVARIANT (mandate gate): `active_mandates` and `lapsed_mandates` agree with `Mandate::status_at` on the boundary seconds.
pub fn active_and_lapsed_agree_with_status_at_on_the_boundary_second(store: &dyn Store) {
    let a = with_agent(store);
    let pending = Mandate {
        approval_deadline: Some(at(300)),
        ..mandate(10, &a.id, "pending")
    };
    let live = active(11, &a.id, "active", 600);
    let no_deadline = mandate(12, &a.id, "pending-forever");
    // An active row without an expiry is already expired (`status_at` says so too).
    let no_expiry = Mandate {
        expires_at: None,
        ..active(13, &a.id, "active-no-expiry", 600)
    };
    let finals: Vec<Mandate> = [
        MandateStatus::Denied,
        MandateStatus::Expired,
        MandateStatus::Revoked,
        MandateStatus::Completed,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, status)| Mandate {
        status,
        approval_deadline: Some(at(0)),
        ..active(20 + i as i64, &a.id, status.as_str(), 0)
    })
    .collect();
    let all: Vec<&Mandate> = [&pending, &live, &no_deadline, &no_expiry]
        .into_iter()
        .chain(&finals)
        .collect();
    for m in &all {
        store.insert_mandate(m).unwrap();
    }

    let cases = [
        (299, "active", "active-no-expiry"),
        (300, "active", "pending,active-no-expiry"),
        (599, "active", "pending,active-no-expiry"),
        (600, "", "pending,active,active-no-expiry"),
        (10_000, "", "pending,active,active-no-expiry"),
    ];
    for (now, want_active, want_lapsed) in cases {
        let now = at(now);
        assert_eq!(
            intents(&store.active_mandates(now).unwrap()),
            want_active,
            "active at {now}"
        );
        assert_eq!(
            intents(&store.lapsed_mandates(now, 100).unwrap()),
            want_lapsed,
            "lapsed at {now}"
        );
        // The store and the domain type agree on every row.
        for m in &all {
            let in_active = store.active_mandates(now).unwrap().contains(m);
            assert_eq!(in_active, m.is_active_at(now), "{} at {now}", m.intent);
            let in_lapsed = store.lapsed_mandates(now, 100).unwrap().contains(m);
            assert_eq!(
                in_lapsed,
                m.status_at(now) != m.status,
                "{} at {now}",
                m.intent
            );
        }
    }
    assert_eq!(
        intents(&store.lapsed_mandates(at(600), 2).unwrap()),
        "pending,active",
        "limit, in id order"
    );
}

/// `mandates_of_agent` returns the agent's pending and active mandates, lapsed or not, in id order.
pub fn mandates_of_agent_are_its_unfinished_ones(store: &dyn Store) {
    let a = with_agent(store);
    let b = agent(2, "other", "bob@example.com", &[]);
    store.insert_agent(&b).unwrap();
    let ms = [
        mandate(10, &a.id, "a-pending"),
        active(11, &a.id, "a-active", 600),
        // Lapsed but not yet swept: still live in the store, so the kill switch ends it.
        active(12, &a.id, "a-active-lapsed", -100),
        Mandate {
            status: MandateStatus::Revoked,
            ..active(13, &a.id, "a-revoked", 600)
        },
        Mandate {
            status: MandateStatus::Denied,
            ..mandate(14, &a.id, "a-denied")
        },
        active(15, &b.id, "b-active", 600),
    ];
    for m in &ms {
        store.insert_mandate(m).unwrap();
    }
    assert_eq!(
        intents(&store.mandates_of_agent(&a.id).unwrap()),
        "a-pending,a-active,a-active-lapsed"
    );
    assert_eq!(
        intents(&store.mandates_of_agent(&b.id).unwrap()),
        "b-active"
    );
    assert!(store.mandates_of_agent(&agent_id(3)).unwrap().is_empty());
}
