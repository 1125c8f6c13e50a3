//! Who acted: the one accountable party of every act, as audit events (`actor`), mandate
//! decisions (`decided_by`) and endings (`ended_by`) name it. Every edge turns its own
//! authenticated caller into an [`Actor`]; the acts and the audit take only this.

use mandate_core::id::{AdminTokenId, AgentId};

/// The accountable party of an act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An admin token (any role).
    Admin(AdminTokenId),
    /// An agent, with its own access token.
    Agent(AgentId),
    /// A human, by a trusted issuer's user token: their `sub`.
    User(String),
    /// Mandate itself.
    System(System),
}

/// The parts of Mandate that act on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    /// The active policies, deciding a mandate request.
    Policy,
    /// The sweeper, denying a request whose approval deadline passed.
    Timeout,
    /// The sweeper, ending a mandate whose lifetime ran out.
    Expiry,
    /// The anomaly detector.
    Detector,
    /// A shared signal from a trusted transmitter (SSF), ending a person's mandates.
    SharedSignals,
    /// The scheduled discovery job (`discovery.rs`).
    Discovery,
    /// The sweeper, escalating an access review item past its campaign's due time.
    Review,
}

impl Actor {
    /// As the audit log and the mandate records name it: the token's or agent's id,
    /// `user:<sub>`, or the system part's name (`policy`, `timeout`, `expiry`,
    /// `detector`). Stable: audit readers match on it.
    pub fn name(&self) -> String {
        match self {
            Self::Admin(id) => id.to_string(),
            Self::Agent(id) => id.to_string(),
            Self::User(sub) => format!("user:{sub}"),
            Self::System(s) => s.as_str().to_owned(),
        }
    }
}

impl System {
    /// Its name (see [`Actor::name`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Policy => "policy",
            Self::Timeout => "timeout",
            Self::Expiry => "expiry",
            Self::Detector => "detector",
            Self::SharedSignals => "ssf",
            Self::Discovery => "discovery",
            Self::Review => "review",
        }
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are what audit events have always carried.
    #[test]
    fn names_are_stable() {
        let adm = AdminTokenId::parse("adm_01JA0000000000000000000000").unwrap();
        let agt = AgentId::parse("agt_01JA0000000000000000000000").unwrap();
        assert_eq!(Actor::Admin(adm).name(), "adm_01JA0000000000000000000000");
        assert_eq!(Actor::Agent(agt).name(), "agt_01JA0000000000000000000000");
        assert_eq!(Actor::User("alice".into()).name(), "user:alice");
        let systems = [
            (System::Policy, "policy"),
            (System::Timeout, "timeout"),
            (System::Expiry, "expiry"),
            (System::Detector, "detector"),
            (System::Review, "review"),
        ];
        for (s, name) in systems {
            assert_eq!(Actor::System(s).to_string(), name);
        }
    }
}
