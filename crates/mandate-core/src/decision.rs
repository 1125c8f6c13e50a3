//! What a decision comes to and why, as types: a [`Verdict`] and a [`Reason`] with one
//! variant per stable reason code. The decision engine (`mandate_engine::decide`) sets
//! them; enforcement points (the gateways) match them. Here, below both, so the
//! gateway crate can name a reason without depending on the engine.

/// What a decision came to. It follows from the [`Reason`] (see [`Reason::verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// No.
    Deny,
    /// Not without a human (`@approval` forbids alone denied it, or a step-up hold).
    ApprovalRequired,
}

impl Verdict {
    /// The wire word: `allow`, `deny` or `approval_required`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::ApprovalRequired => "approval_required",
        }
    }
}

/// Why a decision came out as it did: one variant per stable reason code, by gate in
/// the order they run (docs/openapi.json, `DecisionReason`). Serialised as its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The token's signature, type, issuer or window does not check out.
    InvalidToken,
    /// The token (or one it was exchanged from) was revoked or cut off.
    TokenRevoked,
    /// No such agent.
    UnknownAgent,
    /// The agent (or a delegating agent) is suspended.
    AgentSuspended,
    /// The agent (or a delegating agent) is decommissioned.
    AgentDecommissioned,
    /// The token's scope does not name the action.
    OutsideTokenScope,
    /// No grant of a boundary of the chain covers the request.
    OutsideBoundary,
    /// The token's mandate is not active.
    MandateInactive,
    /// The request is outside the mandate's scope.
    OutsideMandate,
    /// No policy version is active.
    NoActivePolicy,
    /// No permit matched (default deny).
    NoPermit,
    /// A forbid matched.
    ForbiddenByPolicy,
    /// Only `@approval` forbids denied it.
    ApprovalRequired,
    /// The policies allowed it, but an open step-up hold stops it.
    StepUpRequired,
    /// Policy evaluation failed.
    PolicyError,
    /// A permit matched, no forbid did, nothing failed.
    AllowedByPolicy,
}

impl Reason {
    /// Every reason, in gate order.
    pub const ALL: [Self; 16] = [
        Self::InvalidToken,
        Self::TokenRevoked,
        Self::UnknownAgent,
        Self::AgentSuspended,
        Self::AgentDecommissioned,
        Self::OutsideTokenScope,
        Self::OutsideBoundary,
        Self::MandateInactive,
        Self::OutsideMandate,
        Self::NoActivePolicy,
        Self::NoPermit,
        Self::ForbiddenByPolicy,
        Self::PolicyError,
        Self::ApprovalRequired,
        Self::StepUpRequired,
        Self::AllowedByPolicy,
    ];

    /// The stable code, as on the wire and in the audit log.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid_token",
            Self::TokenRevoked => "token_revoked",
            Self::UnknownAgent => "unknown_agent",
            Self::AgentSuspended => "agent_suspended",
            Self::AgentDecommissioned => "agent_decommissioned",
            Self::OutsideTokenScope => "outside_token_scope",
            Self::OutsideBoundary => "outside_boundary",
            Self::MandateInactive => "mandate_inactive",
            Self::OutsideMandate => "outside_mandate",
            Self::NoActivePolicy => "no_active_policy",
            Self::NoPermit => "no_permit",
            Self::ForbiddenByPolicy => "forbidden_by_policy",
            Self::ApprovalRequired => "approval_required",
            Self::StepUpRequired => "step_up_required",
            Self::PolicyError => "policy_error",
            Self::AllowedByPolicy => "allowed_by_policy",
        }
    }

    /// The reason for `code`, if it is one.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The verdict this reason decides: only `allowed_by_policy` allows, only
    /// `approval_required` and `step_up_required` ask for a human, the rest deny.
    pub fn verdict(self) -> Verdict {
        match self {
            Self::AllowedByPolicy => Verdict::Allow,
            Self::ApprovalRequired | Self::StepUpRequired => Verdict::ApprovalRequired,
            _ => Verdict::Deny,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}
