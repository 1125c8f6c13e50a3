//! Inventory findings: what an inventory row's facts say needs a human, as stable codes.
//!
//! A pure function of the facts it is given ([`Facts`], read by the service from the
//! store, the decision log and, for owners, the trusted IdP) and of `now`: no clock, no
//! IO, so a finding can be recomputed from an export. Codes ([`Code`]) are part of the
//! API: they are only ever added, never renamed.
//!
//! A decommissioned agent has no findings: nothing it holds works any more.
//!
//! What the active policies allow an agent comes in as [`PolicyFacts`], read by the
//! service off the compiled policies' scopes (mandate-policy `Reach`).

use mandate_core::agent::{AgentStatus, Boundary};
use mandate_core::id::CredentialId;
use mandate_core::time::Timestamp;
use serde::Serialize;

use crate::suggest::{GrantFate, Suggestion};

/// Seconds in a day.
const DAY: i64 = 86_400;

/// The thresholds, in days. No `Default`: each deployment states its own, and
/// [`Thresholds::RECOMMENDED`] is a starting point to state them from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Thresholds {
    /// An active agent with no decision for this many days is `dormant`.
    pub dormant_days: u32,
    /// A usable credential not used for this many days (counting from its creation when
    /// never used) is `credential_stale`.
    pub credential_unused_days: u32,
    /// A usable credential older than this many days is `credential_never_rotated`.
    pub credential_rotation_days: u32,
}

impl Thresholds {
    /// 30 days dormant, 30 days unused, 90 days between rotations (the common
    /// "rotate every 90 days" rule of thumb).
    pub const RECOMMENDED: Self = Self {
        dormant_days: 30,
        credential_unused_days: 30,
        credential_rotation_days: 90,
    };
}

/// What is known of one credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialFacts {
    /// Its id.
    pub id: CredentialId,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last authenticated, if it ever did.
    pub last_used_at: Option<Timestamp>,
    /// Whether it authenticates at `now` (`Credential::usable_at`).
    pub usable: bool,
}

/// Whether the accountable owner is known to be a person who can act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerCheck {
    /// Not checked (no trusted IdP that can answer).
    Unchecked,
    /// The IdP knows the owner and they are active.
    Active,
    /// The IdP does not know the owner, or they are deactivated.
    Unknown,
}

/// The facts of one inventory row.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// Its status.
    pub status: AgentStatus,
    /// When it was registered.
    pub created_at: Timestamp,
    /// The owner as registered; `None` or blank when there is none.
    pub owner: Option<&'a str>,
    /// What the IdP says of the owner.
    pub owner_check: OwnerCheck,
    /// Its boundary.
    pub boundary: &'a Boundary,
    /// Its latest decision, if any.
    pub last_activity: Option<Timestamp>,
    /// Its credentials.
    pub credentials: &'a [CredentialFacts],
    /// The least-privilege suggestion of its latest access review window, if one was
    /// computed ([`crate::suggest::suggest`]).
    pub review: Option<&'a Suggestion>,
    /// What the active policies could allow it; `None` when no version is active (then
    /// nothing is said of policies).
    pub policies: Option<PolicyFacts<'a>>,
}

/// What the active policies could allow one agent, read off their scopes.
#[derive(Debug, Clone, Copy)]
pub struct PolicyFacts<'a> {
    /// Whether some `permit` could match it on some request (a condition counts as
    /// possibly true).
    pub may_allow: bool,
    /// The ids of the `permit`s with no condition and no action or resource constraint
    /// that match it.
    pub unconditional: &'a [&'a str],
}

/// A finding's stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// No owner.
    OwnerMissing,
    /// The IdP does not know the owner, or they are deactivated.
    OwnerUnknown,
    /// An active agent without a decision for `dormant_days`.
    Dormant,
    /// A usable credential unused for `credential_unused_days`.
    CredentialStale,
    /// A usable credential older than `credential_rotation_days`.
    CredentialNeverRotated,
    /// A grant whose actions or resources hold a pattern of only `*`: it matches
    /// everything.
    BoundaryWildcard,
    /// The review's suggestion drops or narrows grants: the boundary is wider than what
    /// the agent used in the window.
    BoundaryWiderThanUse,
    /// Nothing can allow it anything: its boundary has no grant, or no `permit` of the
    /// active policies can match it. It holds an identity it cannot use.
    Dead,
    /// A `permit` with no condition and no action or resource constraint matches it: it
    /// is allowed everything its boundary admits, whatever the request; subject: the
    /// policy id.
    UnconditionalPermit,
}

impl Code {
    /// Every code, in order.
    pub const ALL: [Self; 9] = [
        Self::OwnerMissing,
        Self::OwnerUnknown,
        Self::Dormant,
        Self::CredentialStale,
        Self::CredentialNeverRotated,
        Self::BoundaryWildcard,
        Self::BoundaryWiderThanUse,
        Self::Dead,
        Self::UnconditionalPermit,
    ];

    /// The code named `s` on the wire.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The code as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OwnerMissing => "owner_missing",
            Self::OwnerUnknown => "owner_unknown",
            Self::Dormant => "dormant",
            Self::CredentialStale => "credential_stale",
            Self::CredentialNeverRotated => "credential_never_rotated",
            Self::BoundaryWildcard => "boundary_wildcard",
            Self::BoundaryWiderThanUse => "boundary_wider_than_use",
            Self::Dead => "dead",
            Self::UnconditionalPermit => "unconditional_permit",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What.
    pub code: Code,
    /// What it is about, when not the agent itself: a credential id, `grants[i]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// For humans: the numbers behind it.
    pub detail: String,
}

/// The findings of one row at `now`, sorted by code, then subject.
pub fn findings(f: &Facts<'_>, t: &Thresholds, now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    if f.status == AgentStatus::Decommissioned {
        return out;
    }
    let days_since = |then: Timestamp| now.secs().saturating_sub(then.secs()) / DAY;
    let mut push = |code, subject: Option<String>, detail: String| {
        out.push(Finding {
            code,
            subject,
            detail,
        });
    };
    match f.owner.map(str::trim) {
        None | Some("") => push(Code::OwnerMissing, None, "no accountable owner".into()),
        Some(o) if f.owner_check == OwnerCheck::Unknown => push(
            Code::OwnerUnknown,
            None,
            format!("owner `{o}` is unknown to the identity provider or deactivated"),
        ),
        Some(_) => {}
    }
    if f.status == AgentStatus::Active {
        let idle = days_since(f.last_activity.unwrap_or(f.created_at));
        if idle >= i64::from(t.dormant_days) {
            let detail = match f.last_activity {
                Some(_) => format!("no decision for {idle} days"),
                None => format!("no decision since it was registered {idle} days ago"),
            };
            push(Code::Dormant, None, detail);
        }
    }
    for c in f.credentials.iter().filter(|c| c.usable) {
        let unused = days_since(c.last_used_at.unwrap_or(c.created_at));
        if unused >= i64::from(t.credential_unused_days) {
            let detail = match c.last_used_at {
                Some(_) => format!("not used for {unused} days"),
                None => format!("never used in the {unused} days since it was created"),
            };
            push(Code::CredentialStale, Some(c.id.to_string()), detail);
        }
        let age = days_since(c.created_at);
        if age >= i64::from(t.credential_rotation_days) {
            push(
                Code::CredentialNeverRotated,
                Some(c.id.to_string()),
                format!(
                    "{age} days old; rotate every {} days",
                    t.credential_rotation_days
                ),
            );
        }
    }
    for (i, g) in f.boundary.grants.iter().enumerate() {
        let everything = |ps: &[String]| ps.iter().any(|p| p.chars().all(|c| c == '*'));
        let parts: Vec<&str> = [("actions", &g.actions), ("resources", &g.resources)]
            .into_iter()
            .filter(|(_, ps)| everything(ps))
            .map(|(n, _)| n)
            .collect();
        if !parts.is_empty() {
            push(
                Code::BoundaryWildcard,
                Some(format!("grants[{i}]")),
                format!("matches every value of its {}", parts.join(" and ")),
            );
        }
    }
    if let Some(r) = f.review.filter(|r| !r.is_unchanged()) {
        let count = |fate| r.grants.iter().filter(|g| g.fate == fate).count();
        let narrowed = r
            .grants
            .iter()
            .filter(|g| g.narrowed.as_ref().is_some_and(|n| *n != g.grant))
            .count();
        push(
            Code::BoundaryWiderThanUse,
            None,
            format!(
                "{} of {} grants unused, {} redundant, {narrowed} narrower in use",
                count(GrantFate::Unused),
                r.grants.len(),
                count(GrantFate::Redundant),
            ),
        );
    }
    if f.boundary.grants.is_empty() {
        push(
            Code::Dead,
            None,
            "its boundary grants nothing, so every request is denied".into(),
        );
    } else if let Some(p) = f.policies {
        if p.may_allow {
            for id in p.unconditional {
                push(
                    Code::UnconditionalPermit,
                    Some((*id).to_owned()),
                    "permits every action on every resource, without a condition".into(),
                );
            }
        } else {
            push(
                Code::Dead,
                None,
                "no permit of the active policies can match it, so every request is denied".into(),
            );
        }
    }
    out.sort_by(|a, b| (a.code, &a.subject).cmp(&(b.code, &b.subject)));
    out
}
