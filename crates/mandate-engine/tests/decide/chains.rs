//! Properties of mandate tokens and delegation chains at the decision function: a
//! chain of tokens built the way the token exchange builds them (each holding the
//! mandate, a narrower scope, its parent in `parents` and the chain in `act`), then one
//! link broken — a parent token revoked, an agent's tokens cut off, an agent suspended,
//! the mandate revoked — and every token at or below that link must be denied, every
//! token above it still allowed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Grant, Labels, Owner, Purpose};
use mandate_core::id::{AgentId, MandateId};
use mandate_core::mandate::{Mandate, MandateStatus, UserRef, narrow_scope};
use mandate_core::random::OsRandom;
use mandate_core::time::Timestamp;
use mandate_engine::decide::{DecisionRequest, Principal, Resource, Snapshot, decide};
use mandate_token::access::{AccessClaims, Actor, Audience, ParentToken};
use mandate_token::keys::{KeyRing, SigningKey};
use proptest::prelude::*;
use serde_json::json;

use super::{ISSUER, NOW, open_policies};

const MANDATE: &str = "mdt_01JA0000000000000000000000";

fn agent_id(i: usize) -> AgentId {
    AgentId::parse(&format!("agt_01JC{i:022}")).expect("agent id")
}

fn chain_agent(i: usize, n: usize) -> Agent {
    let grant = Grant {
        actions: vec!["crm:*".into()],
        resources: vec!["Crm::Invoice/*".into()],
        data_classes: vec![],
    };
    Agent {
        id: agent_id(i),
        name: AgentName::try_from(format!("agent-{i}")).expect("name"),
        owner: Owner::try_from("ops@example.com".to_owned()).expect("owner"),
        purpose: Purpose::default(),
        labels: Labels::default(),
        boundary: Boundary {
            grants: vec![grant],
            max_token_lifetime_secs: None,
            delegates: if i + 1 < n {
                vec![agent_id(i + 1)]
            } else {
                vec![]
            },
            audiences: vec![],
            require_dpop: false,
        },
        status: AgentStatus::Active,
        status_reason: None,
        created_at: Timestamp::from_secs(NOW - 86_400),
        updated_at: Timestamp::from_secs(NOW - 86_400),
    }
}

fn mandate() -> Mandate {
    Mandate {
        user: Some(UserRef {
            issuer: "https://idp.example".into(),
            sub: "alice".into(),
            email: None,
            groups: vec!["finance".into()],
        }),
        activated_at: Some(Timestamp::from_secs(NOW - 100)),
        expires_at: Some(Timestamp::from_secs(NOW + 3500)),
        decided_by: Some("policy".into()),
        decided_at: Some(Timestamp::from_secs(NOW - 100)),
        ..Mandate::requested(
            MandateId::parse(MANDATE).expect("mandate id"),
            agent_id(0),
            "refund invoice 42".into(),
            vec![Grant {
                actions: vec!["crm:read".into(), "crm:refund".into(), "crm:write".into()],
                resources: vec!["Crm::Invoice/*".into()],
                data_classes: vec![],
            }],
            3600,
            MandateStatus::Active,
            Timestamp::from_secs(NOW - 100),
        )
    }
}

/// Tokens `0..n`: token 0 is agent 0's mandate token; token k was exchanged from token
/// k-1 by agent k, asking for `asks[k]` (None: everything the parent had).
fn chain(n: usize, asks: &[Option<String>]) -> Vec<AccessClaims> {
    let mut out: Vec<AccessClaims> = Vec::with_capacity(n);
    for k in 0..n {
        let (act, scope, parents) = match out.last() {
            None => (
                Actor {
                    sub: agent_id(0).to_string(),
                    act: None,
                },
                "crm:read crm:refund crm:write".to_owned(),
                vec![],
            ),
            Some(p) => {
                let scope = narrow_scope(
                    p.scope.as_deref().unwrap_or(""),
                    asks.get(k).cloned().flatten().as_deref(),
                    |_| true,
                )
                .unwrap_or_else(|_| p.scope.clone().unwrap_or_default());
                let mut parents = vec![ParentToken {
                    jti: p.jti.clone(),
                    iat: p.iat,
                }];
                parents.extend(p.parents.iter().cloned());
                (
                    Actor {
                        sub: agent_id(k).to_string(),
                        act: p.act.clone().map(Box::new),
                    },
                    scope,
                    parents,
                )
            }
        };
        out.push(AccessClaims {
            iss: ISSUER.into(),
            sub: "alice".into(),
            aud: Audience::One(ISSUER.into()),
            exp: NOW + 300,
            iat: NOW - 10 + i64::try_from(k).expect("small"),
            nbf: NOW - 10,
            jti: format!("tok_01JD{k:022}"),
            client_id: agent_id(k).to_string(),
            scope: Some(scope),
            act: Some(act),
            mandate: Some(MANDATE.into()),
            parents,
            cnf: None,
        });
    }
    out
}

fn snapshot(n: usize) -> Snapshot {
    let key = SigningKey::generate(&OsRandom).expect("signing key");
    let m = mandate();
    Snapshot {
        agents: (0..n).map(|i| chain_agent(i, n)).collect(),
        policies: Some(open_policies()),
        policy_version: Some(1),
        ring: Arc::new(KeyRing::new(key, vec![]).expect("key ring")),
        issuer: ISSUER.to_owned(),
        audiences: vec![ISSUER.to_owned()],
        max_token_lifetime_secs: 3600,
        cutoffs: HashMap::new(),
        user_cutoffs: HashMap::new(),
        revoked: HashSet::new(),
        mandates: HashMap::from([(m.id.clone(), Arc::new(m))]),
    }
}

fn ask(s: &Snapshot, c: &AccessClaims, action: &str) -> mandate_engine::decide::Decision {
    let resource = Resource {
        type_name: "Crm::Invoice".into(),
        id: "inv-1".into(),
        attributes: json!({}),
    };
    decide(
        s,
        &DecisionRequest {
            principal: Principal::Verified(c),
            action,
            resource: &resource,
            context: &json!({}),
        },
        Timestamp::from_secs(NOW),
    )
}

/// How a link is broken.
#[derive(Debug, Clone, Copy)]
enum Break {
    RevokeToken,
    CutOffAgent,
    SuspendAgent,
}

fn scope_ask() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(proptest::sample::select(vec![
        "crm:read".to_owned(),
        "crm:read crm:write".to_owned(),
        "crm:refund".to_owned(),
    ]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Unbroken, every token of the chain is allowed exactly what its scope names; a
    /// child never holds an action its parent does not.
    #[test]
    fn scope_never_grows_down_a_chain(n in 1usize..6, asks in proptest::collection::vec(scope_ask(), 6)) {
        let s = snapshot(n);
        let tokens = chain(n, &asks);
        for (k, t) in tokens.iter().enumerate() {
            for action in ["crm:read", "crm:write", "crm:refund"] {
                let d = ask(&s, t, action);
                let in_scope = t.scope.as_deref().unwrap_or("").split(' ').any(|x| x == action);
                prop_assert_eq!(d.is_allowed(), in_scope, "token {} {}: {:?}", k, action, d.reasons());
                if d.is_allowed() && k > 0 {
                    prop_assert!(ask(&s, &tokens[k - 1], action).is_allowed(), "child {} exceeds its parent", k);
                }
                if d.is_allowed() {
                    prop_assert_eq!(d.mandate.as_deref(), Some(MANDATE));
                    prop_assert_eq!(d.user.as_deref(), Some("alice"));
                    prop_assert_eq!(d.chain.len(), k);
                }
            }
        }
    }

    /// Breaking link `at` denies every token at or below it and no token above it.
    #[test]
    fn breaking_a_link_kills_everything_below(n in 1usize..6, at in 0usize..6, how in prop_oneof![
        Just(Break::RevokeToken), Just(Break::CutOffAgent), Just(Break::SuspendAgent)
    ]) {
        let at = at % n;
        let mut s = snapshot(n);
        let tokens = chain(n, &[]);
        match how {
            Break::RevokeToken => { s.revoked.insert(tokens[at].jti.clone()); }
            Break::CutOffAgent => { s.cutoffs.insert(agent_id(at), Timestamp::from_secs(tokens[at].iat)); }
            Break::SuspendAgent => {
                if let Some(a) = s.agents.get(&agent_id(at)) { let mut a = a.clone(); a.status = AgentStatus::Suspended; s.agents.insert(a); }
            }
        }
        for (k, t) in tokens.iter().enumerate() {
            let d = ask(&s, t, "crm:read");
            prop_assert_eq!(d.is_allowed(), k < at, "{:?} at {}: token {}: {:?}", how, at, k, d.reasons());
        }
    }

    /// Revoking (or expiring) the mandate kills every token of the chain.
    #[test]
    fn ending_the_mandate_kills_the_whole_chain(n in 1usize..6, expire in any::<bool>()) {
        let mut s = snapshot(n);
        if expire {
            let mut m = mandate();
            m.expires_at = Some(Timestamp::from_secs(NOW));
            s.mandates.insert(m.id.clone(), Arc::new(m));
        } else {
            s.mandates.clear();
        }
        for t in chain(n, &[]) {
            let d = ask(&s, &t, "crm:read");
            prop_assert!(!d.is_allowed());
            prop_assert_eq!(Some(d.reason().code()), Some("mandate_inactive"));
        }
    }
}

/// A token claiming a chain it was not given (a parent list that does not line up, an
/// actor that is not the client, a mandate of another agent) is refused.
#[test]
fn forged_chains_are_refused() {
    let s = snapshot(3);
    let tokens = chain(3, &[]);
    let mut dropped_parent = tokens[2].clone();
    dropped_parent.parents.pop();
    let mut wrong_actor = tokens[1].clone();
    wrong_actor.client_id = agent_id(2).to_string();
    let mut other_subject = tokens[0].clone();
    other_subject.sub = "mallory".into();
    let mut wrong_root = tokens[1].clone();
    if let Some(a) = wrong_root.act.as_mut() {
        a.act = Some(Box::new(Actor {
            sub: agent_id(2).to_string(),
            act: None,
        }));
    }
    let mut no_mandate = tokens[1].clone();
    no_mandate.mandate = None;
    for (name, t) in [
        ("dropped parent", dropped_parent),
        ("actor is not the client", wrong_actor),
        ("another subject", other_subject),
        ("wrong first agent", wrong_root),
        ("act without mandate", no_mandate),
    ] {
        let d = ask(&s, &t, "crm:read");
        assert!(!d.is_allowed(), "{name}: {:?}", d.reasons());
        assert_eq!(Some(d.reason().code()), Some("invalid_token"), "{name}");
    }
}

/// A delegating agent's boundary still binds the tokens below it.
#[test]
fn every_boundary_of_the_chain_binds() {
    let mut s = snapshot(3);
    if let Some(a) = s.agents.get(&agent_id(1)) {
        let mut a = a.clone();
        a.boundary.grants[0].actions = vec!["crm:write".into()];
        s.agents.insert(a);
    }
    let tokens = chain(3, &[]);
    let d = ask(&s, &tokens[2], "crm:read");
    assert!(!d.is_allowed());
    assert_eq!(Some(d.reason().code()), Some("outside_boundary"));
    let detail = format!(
        "action: no grant of the boundary of delegating agent {} names action \"crm:read\"",
        agent_id(1)
    );
    assert_eq!(d.reasons().get(1), Some(&detail), "{:?}", d.reasons());
    assert!(ask(&s, &tokens[0], "crm:read").is_allowed());
}
