//! Reconciliation: matched by link or labels, shadows with their reason, ghosts only for
//! sources read, and an order that does not depend on the input's.

use std::collections::BTreeMap;

use mandate_core::agent::AgentStatus;
use mandate_core::id::AgentId;
use mandate_govern::discover::{Discovered, Source};
use mandate_govern::reconcile::{
    MatchRule, NAME_LABEL, Registered, SCOPE_LABEL, SOURCE_LABEL, ShadowReason, parse_link,
    reconcile,
};

fn id(n: u8) -> AgentId {
    AgentId::parse(&format!("agt_01J000000000000000000000{n:02}")).unwrap()
}

fn agent(n: u8, labels: &[(&str, &str)], status: AgentStatus) -> Registered {
    Registered {
        id: id(n),
        name: format!("agent-{n}"),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        status,
    }
}

fn item(source: Source, scope: &str, name: &str, link: Option<&str>) -> Discovered {
    Discovered {
        source,
        kind: "Pod".into(),
        scope: scope.into(),
        location: None,
        name: name.into(),
        uid: format!("{scope}/{name}"),
        labels: BTreeMap::new(),
        owner: None,
        agent_id: link.map(str::to_owned),
    }
}

#[test]
fn matched_shadow_and_ghost() {
    use AgentStatus::*;
    let registered = vec![
        agent(1, &[], Active),
        agent(
            2,
            &[(SOURCE_LABEL, "kubernetes"), (NAME_LABEL, "triage")],
            Active,
        ),
        // Says it runs in Kubernetes; nothing found: a ghost.
        agent(3, &[(SOURCE_LABEL, "kubernetes")], Suspended),
        // Decommissioned: never a ghost.
        agent(4, &[(SOURCE_LABEL, "kubernetes")], Decommissioned),
        // Says AWS, which this run did not read: not a ghost.
        agent(5, &[(SOURCE_LABEL, "aws")], Active),
        // Two agents name the same item: ambiguous.
        agent(
            6,
            &[(SOURCE_LABEL, "kubernetes"), (NAME_LABEL, "twin")],
            Active,
        ),
        agent(
            7,
            &[
                (SOURCE_LABEL, "kubernetes"),
                (NAME_LABEL, "twin"),
                (SCOPE_LABEL, "ns"),
            ],
            Active,
        ),
        // Scope label set and different: does not name the item.
        agent(
            8,
            &[
                (SOURCE_LABEL, "kubernetes"),
                (NAME_LABEL, "scoped"),
                (SCOPE_LABEL, "other"),
            ],
            Active,
        ),
    ];
    let found = vec![
        item(
            Source::Kubernetes,
            "ns",
            "linked",
            Some("agt_01J00000000000000000000001"),
        ),
        item(
            Source::Kubernetes,
            "ns",
            "linked-lower",
            Some("agt_01j00000000000000000000001"),
        ),
        item(Source::Kubernetes, "ns", "triage", None),
        item(Source::Kubernetes, "ns", "stranger", None),
        item(
            Source::Kubernetes,
            "ns",
            "unknown",
            Some("agt_01J00000000000000000000099"),
        ),
        item(Source::Kubernetes, "ns", "bad-link", Some("not-an-id")),
        item(Source::Kubernetes, "ns", "twin", None),
        item(Source::Kubernetes, "ns", "scoped", None),
    ];
    let r = reconcile(&registered, &found, &[Source::Kubernetes]);
    let matched: Vec<_> = r
        .matched
        .iter()
        .map(|m| (m.agent.as_str(), m.item.name.as_str(), m.rule))
        .collect();
    assert_eq!(
        matched,
        [
            (id(1).as_str(), "linked", MatchRule::Link),
            (id(1).as_str(), "linked-lower", MatchRule::Link),
            (id(2).as_str(), "triage", MatchRule::Labels),
        ]
    );
    let shadows: Vec<_> = r
        .shadows
        .iter()
        .map(|s| (s.item.name.as_str(), s.reason.code()))
        .collect();
    assert_eq!(
        shadows,
        [
            ("bad-link", "invalid_link"),
            ("scoped", "unregistered"),
            ("stranger", "unregistered"),
            ("twin", "ambiguous"),
            ("unknown", "unknown_agent"),
        ]
    );
    let ghosts: Vec<_> = r
        .ghosts
        .iter()
        .map(|g| (g.agent.as_str(), g.source))
        .collect();
    // 3 is a ghost; 6, 7 and 8 matched nothing either (ambiguous, other scope).
    assert_eq!(
        ghosts,
        [
            (id(3).as_str(), Source::Kubernetes),
            (id(6).as_str(), Source::Kubernetes),
            (id(7).as_str(), Source::Kubernetes),
            (id(8).as_str(), Source::Kubernetes),
        ]
    );
    assert_eq!(r.shadows[0].reason, ShadowReason::InvalidLink);

    // Reading AWS too makes agent 5 a ghost.
    let r2 = reconcile(&registered, &found, &[Source::Kubernetes, Source::Aws]);
    assert!(
        r2.ghosts
            .iter()
            .any(|g| g.agent == id(5) && g.source == Source::Aws)
    );
}

#[test]
fn the_answer_does_not_depend_on_input_order() {
    use AgentStatus::*;
    let registered = vec![
        agent(1, &[(SOURCE_LABEL, "gcp")], Active),
        agent(
            2,
            &[(SOURCE_LABEL, "kubernetes"), (NAME_LABEL, "b")],
            Active,
        ),
        agent(3, &[(SOURCE_LABEL, "kubernetes")], Active),
    ];
    let found = vec![
        item(Source::Kubernetes, "x", "b", None),
        item(
            Source::Gcp,
            "p",
            "a",
            Some("agt_01J00000000000000000000001"),
        ),
        item(Source::Kubernetes, "a", "z", None),
        item(Source::Kubernetes, "a", "c", None),
        item(
            Source::Gcp,
            "p",
            "b",
            Some("agt_01J00000000000000000000001"),
        ),
    ];
    let scanned = [Source::Gcp, Source::Kubernetes];
    let want = reconcile(&registered, &found, &scanned);
    let (mut reg, mut fnd) = (registered.clone(), found.clone());
    for _ in 0..4 {
        reg.rotate_left(1);
        fnd.reverse();
        fnd.rotate_left(2);
        assert_eq!(reconcile(&reg, &fnd, &scanned), want);
    }
    assert_eq!(want.ghosts.len(), 1);
    assert_eq!(want.matched.len(), 3);
}

#[test]
fn links_read_without_regard_to_case() {
    assert_eq!(parse_link(" agt_01j00000000000000000000001 "), Some(id(1)));
    assert_eq!(parse_link("AGT_01J00000000000000000000001"), Some(id(1)));
    for bad in [
        "",
        "agt_",
        "agt_01J0",
        "crd_01J00000000000000000000001",
        "agt_01J0000000000000000000000é",
    ] {
        assert_eq!(parse_link(bad), None, "{bad}");
    }
}

#[test]
fn kubectl_output_reconciles_into_matched_shadow_and_ghost() {
    use mandate_govern::discover::{Selector, discover};
    let input = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/discover/kubectl_pods/input.json"
    ))
    .unwrap();
    let found = discover(Source::Kubernetes, &input, &Selector::kubernetes_default()).unwrap();
    let registered = vec![
        // The support agent's pod carries its id in `mandate.dev/agent-id`.
        agent(1, &[(SOURCE_LABEL, "kubernetes")], AgentStatus::Active),
        // Registered as running in Kubernetes, but no pod is it.
        agent(
            2,
            &[(SOURCE_LABEL, "kubernetes"), (NAME_LABEL, "triage")],
            AgentStatus::Active,
        ),
    ];
    let r = reconcile(&registered, &found, &[Source::Kubernetes]);
    assert_eq!(r.matched.len(), 1);
    assert_eq!(r.matched[0].agent, id(1));
    assert_eq!(r.matched[0].item.name, "support-agent-7d9f8b6c5-x2k4q");
    // The scraper pod nobody registered.
    assert_eq!(r.shadows.len(), 1);
    assert_eq!(r.shadows[0].item.name, "scraper");
    assert_eq!(r.shadows[0].item.owner.as_deref(), Some("bob"));
    assert_eq!(r.shadows[0].reason, ShadowReason::Unregistered);
    assert_eq!(r.ghosts.len(), 1);
    assert_eq!(r.ghosts[0].agent, id(2));
}
