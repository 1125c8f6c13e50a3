//! Inventory findings: each code at its threshold and not a day before.

use mandate_core::agent::{AgentStatus, Boundary};
use mandate_core::id::CredentialId;
use mandate_core::time::Timestamp;
use mandate_govern::findings::{
    Code, CredentialFacts, Facts, OwnerCheck, PolicyFacts, Thresholds, findings,
};
use serde_json::json;

const DAY: i64 = 86_400;
const T0: i64 = 1_790_000_000;

fn at(days: i64) -> Timestamp {
    Timestamp::from_secs(T0 + days * DAY)
}

fn boundary(v: serde_json::Value) -> Boundary {
    serde_json::from_value(v).unwrap()
}

fn codes(f: &Facts<'_>, now_days: i64) -> Vec<(&'static str, Option<String>)> {
    findings(f, &Thresholds::RECOMMENDED, at(now_days))
        .into_iter()
        .map(|x| (x.code.as_str(), x.subject))
        .collect()
}

#[test]
fn a_healthy_agent_has_no_findings() {
    let b =
        boundary(json!({"grants": [{"actions": ["crm:read"], "resources": ["Crm::Contact/*"]}]}));
    let creds = [CredentialFacts {
        id: CredentialId::parse("crd_01J00000000000000000000001").unwrap(),
        created_at: at(0),
        last_used_at: Some(at(29)),
        usable: true,
    }];
    let f = Facts {
        status: AgentStatus::Active,
        created_at: at(0),
        owner: Some("alice@example.com"),
        owner_check: OwnerCheck::Active,
        boundary: &b,
        last_activity: Some(at(10)),
        credentials: &creds,
        review: None,
        policies: None,
    };
    assert_eq!(codes(&f, 39), []);
    // Day 40: 30 days without a decision; credential unused for 11 only.
    assert_eq!(codes(&f, 40), [("dormant", None)]);
    // Day 59: unused 30 days.
    assert_eq!(
        codes(&f, 59),
        [
            ("dormant", None),
            (
                "credential_stale",
                Some("crd_01J00000000000000000000001".into())
            )
        ]
    );
    // Day 90: 90 days old.
    assert_eq!(codes(&f, 90).len(), 3);
    assert!(codes(&f, 90).contains(&(
        "credential_never_rotated",
        Some("crd_01J00000000000000000000001".into())
    )));
}

#[test]
fn each_code_is_found() {
    let b = boundary(json!({"grants": [
        {"actions": ["crm:read"], "resources": ["Crm::Contact/*"]},
        {"actions": ["*"], "resources": ["Crm::Note/*"]},
        {"actions": ["crm:write"], "resources": ["**"]}
    ]}));
    let creds = [
        CredentialFacts {
            id: CredentialId::parse("crd_01J00000000000000000000002").unwrap(),
            created_at: at(0),
            last_used_at: None,
            usable: true,
        },
        // Revoked or expired: nothing to say about it.
        CredentialFacts {
            id: CredentialId::parse("crd_01J00000000000000000000003").unwrap(),
            created_at: at(0),
            last_used_at: None,
            usable: false,
        },
    ];
    let mut f = Facts {
        status: AgentStatus::Active,
        created_at: at(0),
        owner: Some(" "),
        owner_check: OwnerCheck::Unchecked,
        boundary: &b,
        last_activity: None,
        credentials: &creds,
        review: None,
        policies: None,
    };
    let got = findings(&f, &Thresholds::RECOMMENDED, at(100));
    let got: Vec<_> = got.iter().map(|x| x.code).collect();
    assert_eq!(
        got,
        [
            Code::OwnerMissing,
            Code::Dormant,
            Code::CredentialStale,
            Code::CredentialNeverRotated,
            Code::BoundaryWildcard,
            Code::BoundaryWildcard,
        ]
    );
    f.owner = Some("gone@example.com");
    f.owner_check = OwnerCheck::Unknown;
    assert_eq!(codes(&f, 1)[0], ("owner_unknown", None));
    // A suspended agent is not dormant; a decommissioned one has no findings.
    f.status = AgentStatus::Suspended;
    assert!(!codes(&f, 100).iter().any(|(c, _)| *c == "dormant"));
    f.status = AgentStatus::Decommissioned;
    assert_eq!(codes(&f, 100), []);
}

#[test]
fn a_boundary_wider_than_its_use_is_found_from_the_review() {
    use mandate_govern::suggest::{Usage, Use, UsedClass, suggest};
    let b = boundary(json!({"grants": [
        {"actions": ["crm:*"], "resources": ["Crm::Contact/*"]},
        {"actions": ["mail:send"], "resources": ["Mail::Box/*"]}
    ]}));
    let usage: Usage = [Use {
        action: "crm:read".into(),
        resource: "Crm::Contact/c1".into(),
        data_class: UsedClass::None,
    }]
    .into_iter()
    .collect();
    let review = suggest(&b.grants, &usage);
    let mut f = Facts {
        status: AgentStatus::Active,
        created_at: at(0),
        owner: Some("alice@example.com"),
        owner_check: OwnerCheck::Active,
        boundary: &b,
        last_activity: Some(at(1)),
        credentials: &[],
        review: Some(&review),
        policies: None,
    };
    let got = findings(&f, &Thresholds::RECOMMENDED, at(2));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].code.as_str(), "boundary_wider_than_use");
    assert_eq!(
        got[0].detail,
        "1 of 2 grants unused, 0 redundant, 1 narrower in use"
    );
    // Used exactly as granted: nothing to say.
    let exact =
        boundary(json!({"grants": [{"actions": ["crm:read"], "resources": ["Crm::Contact/c1"]}]}));
    let review = suggest(&exact.grants, &usage);
    assert!(review.is_unchanged());
    f.boundary = &exact;
    f.review = Some(&review);
    assert_eq!(codes(&f, 2), []);
}

/// `dead`: a boundary with no grant, or no permit that can match; `unconditional_permit`
/// once per matching permit with neither condition nor constraint; neither when no
/// version is active (nothing is known) or the agent is decommissioned.
#[test]
fn dead_agents_and_unconditional_permits() {
    let b =
        boundary(json!({"grants": [{"actions": ["crm:read"], "resources": ["Crm::Contact/*"]}]}));
    let empty = boundary(json!({"grants": []}));
    let mut f = Facts {
        status: AgentStatus::Active,
        created_at: at(0),
        owner: Some("alice@example.com"),
        owner_check: OwnerCheck::Active,
        boundary: &b,
        last_activity: Some(at(1)),
        credentials: &[],
        review: None,
        policies: None,
    };
    assert_eq!(codes(&f, 2), []);
    f.policies = Some(PolicyFacts {
        may_allow: false,
        unconditional: &[],
    });
    assert_eq!(codes(&f, 2), [("dead", None)]);
    let all = ["all", "typed"];
    f.policies = Some(PolicyFacts {
        may_allow: true,
        unconditional: &all,
    });
    assert_eq!(
        codes(&f, 2),
        [
            ("unconditional_permit", Some("all".into())),
            ("unconditional_permit", Some("typed".into()))
        ]
    );
    // No grant: dead whatever the policies say (the boundary gate denies first).
    f.boundary = &empty;
    assert_eq!(codes(&f, 2), [("dead", None)]);
    f.policies = None;
    assert_eq!(codes(&f, 2), [("dead", None)]);
    f.status = AgentStatus::Decommissioned;
    assert_eq!(codes(&f, 2), []);
}
