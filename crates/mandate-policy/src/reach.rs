//! Who a policy set could allow, read off its `permit` policies' scopes without
//! evaluating anything: the inventory's "dead" agents (no `permit` whose principal scope
//! can match them) and its "permits everything" finding (a `permit` with no condition
//! and no action or resource constraint whose principal scope matches the agent).
//!
//! Sound in the direction that matters for a finding: an agent is called unreachable
//! only when no `permit` could ever match it whatever the request (a condition is taken
//! as possibly true), and a policy is called unconditional only when Cedar would permit
//! every request of a matching principal (no `when`/`unless`, action and resource
//! `Any`). Agents have no parents (mandate-policy direct.rs), so `principal in X`
//! matches an agent only when `X` is that agent.

use cedar_policy::{ActionConstraint, Effect, EntityUid, PrincipalConstraint, ResourceConstraint};

use crate::CompiledPolicies;

/// Which principals one `permit` can match.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Principals {
    /// Every agent.
    AnyAgent,
    /// Only the agent with this id.
    Agent(String),
    /// No agent (another entity type).
    NoAgent,
}

/// One `permit`'s scope.
#[derive(Debug, Clone)]
struct Permit {
    id: String,
    principals: Principals,
    /// No condition, and action and resource unconstrained.
    unconditional: bool,
}

/// The `permit` scopes of a policy set (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Reach {
    permits: Vec<Permit>,
}

impl Reach {
    /// Whether some `permit` could match agent `agent_id` (an `agt_…` id) on some
    /// request: `false` means the policies deny it everything.
    pub fn may_allow(&self, agent_id: &str) -> bool {
        self.permits.iter().any(|p| p.principals.matches(agent_id))
    }

    /// The ids of the unconditional `permit`s (no condition, any action, any resource)
    /// that match agent `agent_id`: each allows it everything its boundary admits.
    pub fn permits_everything(&self, agent_id: &str) -> Vec<&str> {
        self.permits
            .iter()
            .filter(|p| p.unconditional && p.principals.matches(agent_id))
            .map(|p| p.id.as_str())
            .collect()
    }
}

impl Principals {
    fn matches(&self, agent_id: &str) -> bool {
        match self {
            Self::AnyAgent => true,
            Self::Agent(id) => id == agent_id,
            Self::NoAgent => false,
        }
    }
}

impl CompiledPolicies {
    /// The `permit` scopes of this set, for [`Reach`]'s questions.
    pub fn reach(&self) -> Reach {
        let agent = |uid: &EntityUid| {
            if uid.type_name() == &self.agent_type {
                Principals::Agent(uid.id().unescaped().to_owned())
            } else {
                Principals::NoAgent
            }
        };
        let permits = self
            .policies
            .policies()
            .filter(|p| p.effect() == Effect::Permit)
            .map(|p| {
                let principals = match p.principal_constraint() {
                    PrincipalConstraint::Any => Principals::AnyAgent,
                    PrincipalConstraint::Eq(uid) | PrincipalConstraint::In(uid) => agent(&uid),
                    PrincipalConstraint::Is(t) if t == self.agent_type => Principals::AnyAgent,
                    PrincipalConstraint::Is(_) => Principals::NoAgent,
                    PrincipalConstraint::IsIn(t, uid) if t == self.agent_type => agent(&uid),
                    PrincipalConstraint::IsIn(..) => Principals::NoAgent,
                };
                let unconditional = !p.has_non_scope_constraint()
                    && matches!(p.action_constraint(), ActionConstraint::Any)
                    && matches!(p.resource_constraint(), ResourceConstraint::Any);
                Permit {
                    id: p.id().to_string(),
                    principals,
                    unconditional,
                }
            })
            .collect();
        Reach { permits }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "agt_01JA0000000000000000000001";
    const B: &str = "agt_01JA0000000000000000000002";

    fn reach(policies: &str) -> Reach {
        crate::compile(&[], policies).unwrap().reach()
    }

    #[test]
    fn no_permit_reaches_nobody() {
        let r = reach("@id(\"f\") forbid (principal, action, resource);");
        assert!(!r.may_allow(A));
        assert!(reach("").permits_everything(A).is_empty());
        assert!(!reach("").may_allow(A));
    }

    #[test]
    fn a_permit_for_one_agent_reaches_only_it() {
        let text = format!(
            "@id(\"one\") permit (principal == Mandate::Agent::\"{A}\", action, resource);"
        );
        let r = reach(&text);
        assert!(r.may_allow(A));
        assert!(!r.may_allow(B));
        assert_eq!(r.permits_everything(A), ["one"]);
        assert!(r.permits_everything(B).is_empty());
        let text = format!(
            "@id(\"in\") permit (principal in Mandate::Agent::\"{B}\", action, resource) when {{ context.risk.score < 10 }};"
        );
        let r = reach(&text);
        assert!(r.may_allow(B) && !r.may_allow(A));
        assert!(r.permits_everything(B).is_empty(), "it has a condition");
    }

    #[test]
    fn conditions_and_constraints_are_not_unconditional() {
        let r = reach(
            "@id(\"all\") permit (principal, action, resource);
             @id(\"cond\") permit (principal, action, resource) when { context.risk.score < 50 };
             @id(\"typed\") permit (principal is Mandate::Agent, action, resource);
             @id(\"act\") permit (principal, action == Mandate::Action::\"all\", resource);",
        );
        assert!(r.may_allow(A));
        assert_eq!(r.permits_everything(A), ["all", "typed"]);
    }
}
