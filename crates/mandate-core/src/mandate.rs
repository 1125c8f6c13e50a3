//! Mandates: task-scoped, time-bound grants ("agent A, for user U, to do task T, within
//! scope S, until E"), their lifecycle, and the scope arithmetic that keeps a mandate
//! inside its agent's boundary and a delegated token inside its parent.
//!
//! Patterns are the boundary's `*` globs. One pattern lies *within* another when the
//! outer one matches the inner one read as plain text (its `*` taken literally): every
//! string the inner pattern matches is then matched by the outer one. The test is sound
//! (it never says "within" wrongly) and conservative (`a*b*` within `a*` is found, but
//! an unusual pair such as `a*` within `a` + `*` alternatives split over two grants is
//! refused), which is the safe direction for a ceiling.

use serde::{Deserialize, Serialize};

use crate::agent::{Grant, ValidationError, check_grants, glob_match, invalid, printable};
use crate::id::{AgentId, MandateId};
use crate::time::Timestamp;

/// The longest intent or justification, in characters.
pub const MAX_TEXT_CHARS: usize = 2_000;
/// The most grants a mandate may hold.
pub const MAX_GRANTS: usize = 64;
/// The longest lifetime any mandate may have: one day.
pub const MAX_MANDATE_LIFETIME_SECS: u32 = 86_400;

/// Where a mandate is in its life.
///
/// `pending_approval` → `active` | `denied` (by an approver, or when the approval times
/// out); `active` → `expired` | `revoked` | `completed`. `denied`, `expired`, `revoked`
/// and `completed` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MandateStatus {
    /// Policy held it for a human's decision.
    PendingApproval,
    /// In force until `expires_at`.
    Active,
    /// Refused by policy or an approver, or not approved in time.
    Denied,
    /// Its lifetime ran out.
    Expired,
    /// Ended by an admin or the agent's owner.
    Revoked,
    /// Ended early by the agent: the task is done.
    Completed,
}

impl MandateStatus {
    /// The wire form (`pending_approval`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingApproval => "pending_approval",
            Self::Active => "active",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Completed => "completed",
        }
    }

    /// Parses the wire form.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::PendingApproval,
            Self::Active,
            Self::Denied,
            Self::Expired,
            Self::Revoked,
            Self::Completed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }

    /// Whether nothing can change it any more.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::PendingApproval | Self::Active)
    }
}

/// The human a mandate is for, as a trusted issuer's token named them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    /// The token's issuer.
    pub issuer: String,
    /// The user's subject at that issuer.
    pub sub: String,
    /// Their email, when the token carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Their groups, as the token listed them.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// A task-scoped grant and its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mandate {
    /// `mdt_…`.
    pub id: MandateId,
    /// The agent that asked for it and holds it.
    pub agent: AgentId,
    /// The human it acts for, if any.
    pub user: Option<UserRef>,
    /// What the agent says it will do (free text, recorded).
    pub intent: String,
    /// Why, in the agent's words.
    pub justification: Option<String>,
    /// What it may do: always within the agent's boundary.
    pub scope: Vec<Grant>,
    /// The lifetime asked for, counted from activation.
    pub lifetime_secs: u32,
    /// Where it is now, as last written; see [`Mandate::status_at`].
    pub status: MandateStatus,
    /// When it was asked for.
    pub created_at: Timestamp,
    /// While pending: when the request is denied if nobody decides.
    pub approval_deadline: Option<Timestamp>,
    /// When it became active.
    pub activated_at: Option<Timestamp>,
    /// When it stops being active (activation + lifetime).
    pub expires_at: Option<Timestamp>,
    /// Who decided: `policy`, an admin token id (`adm_…`), `user:<sub>` or `timeout`.
    pub decided_by: Option<String>,
    /// The approver's comment.
    pub decision_comment: Option<String>,
    /// When the grant/deny decision was made.
    pub decided_at: Option<Timestamp>,
    /// The policies that decided the request.
    pub policy_ids: Vec<String>,
    /// When it was revoked, completed or expired.
    pub ended_at: Option<Timestamp>,
    /// Who ended it (an admin token id, `user:<sub>`, the agent id, or `expiry`).
    pub ended_by: Option<String>,
}

impl Mandate {
    /// A mandate as requested, in `status`: no user or justification, and nothing of its
    /// lifecycle recorded yet (no deadline, activation, expiry, decision or end). Set
    /// the rest with struct update syntax.
    pub fn requested(
        id: MandateId,
        agent: AgentId,
        intent: String,
        scope: Vec<Grant>,
        lifetime_secs: u32,
        status: MandateStatus,
        created_at: Timestamp,
    ) -> Self {
        Self {
            id,
            agent,
            user: None,
            intent,
            justification: None,
            scope,
            lifetime_secs,
            status,
            created_at,
            approval_deadline: None,
            activated_at: None,
            expires_at: None,
            decided_by: None,
            decision_comment: None,
            decided_at: None,
            policy_ids: Vec::new(),
            ended_at: None,
            ended_by: None,
        }
    }

    /// The status at `now`: a pending request past its deadline is denied, an active
    /// mandate past its expiry has expired, whatever the store has caught up with.
    pub fn status_at(&self, now: Timestamp) -> MandateStatus {
        match self.status {
            MandateStatus::PendingApproval if self.approval_deadline.is_some_and(|d| now >= d) => {
                MandateStatus::Denied
            }
            MandateStatus::Active if self.expires_at.is_none_or(|e| now >= e) => {
                MandateStatus::Expired
            }
            s => s,
        }
    }

    /// Whether tokens bound to it may act at `now`.
    ///
    /// INVARIANT (mandate gate): only a mandate whose status is `active` and whose
    /// expiry lies in the future grants anything.
    pub fn is_active_at(&self, now: Timestamp) -> bool {
        self.status_at(now) == MandateStatus::Active
    }
}

/// Checks a mandate request's free text and scope (not yet against a boundary).
pub fn check_request(
    intent: &str,
    justification: Option<&str>,
    scope: &[Grant],
    lifetime_secs: u32,
) -> Result<(), ValidationError> {
    let text_ok =
        |s: &str| !s.trim().is_empty() && s.chars().count() <= MAX_TEXT_CHARS && printable_text(s);
    if !text_ok(intent) {
        return Err(invalid(
            "intent",
            format!("1-{MAX_TEXT_CHARS} characters, no control characters but newlines"),
        ));
    }
    if justification.is_some_and(|j| !text_ok(j)) {
        return Err(invalid(
            "justification",
            format!("1-{MAX_TEXT_CHARS} characters, no control characters but newlines"),
        ));
    }
    if scope.is_empty() || scope.len() > MAX_GRANTS {
        return Err(invalid("scope", format!("1-{MAX_GRANTS} grants")));
    }
    check_grants("scope", scope)?;
    if !(1..=MAX_MANDATE_LIFETIME_SECS).contains(&lifetime_secs) {
        return Err(invalid(
            "lifetime_secs",
            format!("1..={MAX_MANDATE_LIFETIME_SECS}"),
        ));
    }
    Ok(())
}

fn printable_text(s: &str) -> bool {
    s.split(['\n', '\t']).all(printable)
}

/// Whether every string `inner` matches is matched by `outer` (see the module notes).
pub fn pattern_within(inner: &str, outer: &str) -> bool {
    glob_match(outer, inner)
}

/// Whether `inner` lies within `outer`: each of its action and resource patterns within
/// one of `outer`'s, and each data class it names within one `outer` names. (A grant
/// naming no data classes covers only requests that name none, which `outer` covers.)
pub fn grant_within(inner: &Grant, outer: &Grant) -> bool {
    let all_within =
        |xs: &[String], ys: &[String]| xs.iter().all(|x| ys.iter().any(|y| pattern_within(x, y)));
    all_within(&inner.actions, &outer.actions)
        && all_within(&inner.resources, &outer.resources)
        && all_within(&inner.data_classes, &outer.data_classes)
}

/// Whether every grant of `inner` lies within some single grant of `outer`.
///
/// INVARIANT (narrowing): a mandate's scope is accepted only when this holds against the
/// agent's boundary, so a mandate never reaches beyond its agent's ceiling.
pub fn scope_within(inner: &[Grant], outer: &[Grant]) -> bool {
    inner
        .iter()
        .all(|g| outer.iter().any(|o| grant_within(g, o)))
}

/// Whether some grant admits `action` on `resource` (and, when the request names one,
/// the data class).
///
/// INVARIANT (ceiling): a request is inside a set of grants only if one grant matches
/// its action, its resource and — when it names one — its data class; a grant without
/// data classes covers only requests that name none.
pub fn grants_allow(
    grants: &[Grant],
    action: &str,
    resource: &str,
    data_class: Option<&str>,
) -> bool {
    grants.iter().any(|g| {
        g.actions.iter().any(|p| glob_match(p, action))
            && g.resources.iter().any(|p| glob_match(p, resource))
            && data_class.is_none_or(|dc| g.data_classes.iter().any(|p| glob_match(p, dc)))
    })
}

/// The part of a request, or of a requested grant, that no grant of a set covers: what a
/// refusal names so its reader knows what to widen (or what the agent overreached).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// No grant names the action.
    Action,
    /// Grants name the action, but none of them the resource.
    Resource,
    /// Grants name the action and the resource, but none of them the data class (a grant
    /// without data classes covers only requests that name none).
    DataClass,
}

impl Miss {
    /// The stable name of the part: `action`, `resource`, `data_class`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Action => "action",
            Self::Resource => "resource",
            Self::DataClass => "data_class",
        }
    }
}

/// Which part of the request no grant covers, or `None` when `grants_allow` holds. Parts
/// are checked in order (action, then resource among the grants with the action, then
/// data class among those with both), so the answer names the first part that rules out
/// every grant.
pub fn grants_miss(
    grants: &[Grant],
    action: &str,
    resource: &str,
    data_class: Option<&str>,
) -> Option<Miss> {
    let with_action = || {
        grants
            .iter()
            .filter(|g| g.actions.iter().any(|p| glob_match(p, action)))
    };
    if with_action().next().is_none() {
        return Some(Miss::Action);
    }
    let with_resource =
        || with_action().filter(|g| g.resources.iter().any(|p| glob_match(p, resource)));
    if with_resource().next().is_none() {
        return Some(Miss::Resource);
    }
    let dc = data_class?;
    if with_resource().any(|g| g.data_classes.iter().any(|p| glob_match(p, dc))) {
        None
    } else {
        Some(Miss::DataClass)
    }
}

/// Which part of `inner` no single grant of `outer` covers, or `None` when `grant_within`
/// holds for some grant of `outer`; checked in the same order as `grants_miss`.
pub fn grant_miss(inner: &Grant, outer: &[Grant]) -> Option<Miss> {
    let all_within =
        |xs: &[String], ys: &[String]| xs.iter().all(|x| ys.iter().any(|y| pattern_within(x, y)));
    let with_actions = || {
        outer
            .iter()
            .filter(|o| all_within(&inner.actions, &o.actions))
    };
    if with_actions().next().is_none() {
        return Some(Miss::Action);
    }
    let with_resources = || with_actions().filter(|o| all_within(&inner.resources, &o.resources));
    if with_resources().next().is_none() {
        return Some(Miss::Resource);
    }
    if with_resources().any(|o| all_within(&inner.data_classes, &o.data_classes)) {
        None
    } else {
        Some(Miss::DataClass)
    }
}

/// Why a delegated scope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NarrowError {
    /// A requested scope token is not within the parent's scope.
    #[error("scope `{0}` is not within the parent token's scope")]
    Wider(String),
    /// Nothing would be left.
    #[error("no scope would remain")]
    Empty,
}

/// The scope of a token derived from one whose scope is `parent` (space-separated action
/// patterns), when `requested` is asked for (`None`: as much as allowed) and the new
/// holder may only hold what `holder_allows` accepts.
///
/// INVARIANT (narrowing): every token of the result lies within a token of `parent`, so a
/// delegated token never holds more than its parent; asking for more is an error, not a
/// silent trim, so the caller learns it.
pub fn narrow_scope(
    parent: &str,
    requested: Option<&str>,
    holder_allows: impl Fn(&str) -> bool,
) -> Result<String, NarrowError> {
    let parent: Vec<&str> = parent.split_ascii_whitespace().collect();
    let within_parent = |t: &str| parent.iter().any(|p| pattern_within(t, p));
    let mut out: Vec<&str> = Vec::new();
    match requested {
        Some(req) => {
            for t in req.split_ascii_whitespace() {
                if !within_parent(t) || !holder_allows(t) {
                    return Err(NarrowError::Wider(t.to_owned()));
                }
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        None => {
            for t in &parent {
                if holder_allows(t) && !out.contains(t) {
                    out.push(t);
                }
            }
        }
    }
    if out.is_empty() {
        return Err(NarrowError::Empty);
    }
    Ok(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grant(a: &[&str], r: &[&str], d: &[&str]) -> Grant {
        let v = |xs: &[&str]| xs.iter().map(|x| (*x).to_owned()).collect();
        Grant {
            actions: v(a),
            resources: v(r),
            data_classes: v(d),
        }
    }

    #[test]
    fn within_cases() {
        assert!(pattern_within("crm:read", "crm:*"));
        assert!(pattern_within("crm:read*", "crm:*"));
        assert!(pattern_within("crm:*", "*"));
        assert!(!pattern_within("crm:*", "crm:read*"));
        assert!(!pattern_within("*", "crm:*"));
        let outer = grant(&["crm:*"], &["Crm::Contact/*"], &["pii"]);
        assert!(grant_within(
            &grant(&["crm:read"], &["Crm::Contact/c1"], &[]),
            &outer
        ));
        assert!(grant_within(
            &grant(&["crm:read"], &["Crm::Contact/c1"], &["pii"]),
            &outer
        ));
        assert!(!grant_within(
            &grant(&["crm:read"], &["Crm::Contact/c1"], &["phi"]),
            &outer
        ));
        assert!(!grant_within(
            &grant(&["crm:read"], &["Crm::Deal/*"], &[]),
            &outer
        ));
    }

    #[test]
    fn a_miss_names_the_first_part_no_grant_covers() {
        let gs = [
            grant(&["crm:read"], &["Crm::Contact/*"], &["internal"]),
            grant(&["crm:*"], &["Crm::Invoice/inv-*"], &[]),
        ];
        let miss = |a, r, d| grants_miss(&gs, a, r, d);
        assert_eq!(miss("crm:read", "Crm::Contact/c1", Some("internal")), None);
        assert_eq!(
            miss("billing:read", "Crm::Contact/c1", None),
            Some(Miss::Action)
        );
        assert_eq!(miss("crm:read", "Crm::Deal/d1", None), Some(Miss::Resource));
        assert_eq!(
            miss("crm:write", "Crm::Contact/c1", None),
            Some(Miss::Resource),
            "crm:* names the action; only its grant counts for the resource"
        );
        assert_eq!(
            miss("crm:read", "Crm::Contact/c1", Some("pii")),
            Some(Miss::DataClass)
        );
        assert_eq!(
            miss("crm:read", "Crm::Invoice/inv-1", Some("internal")),
            Some(Miss::DataClass),
            "a grant without data classes covers only requests that name none"
        );
        let mis = |g: Grant| grant_miss(&g, &gs);
        assert_eq!(mis(grant(&["crm:read"], &["Crm::Contact/c1"], &[])), None);
        assert_eq!(
            mis(grant(&["db:read"], &["Crm::Contact/c1"], &[])),
            Some(Miss::Action)
        );
        assert_eq!(
            mis(grant(&["crm:read"], &["Db::*"], &[])),
            Some(Miss::Resource)
        );
        assert_eq!(
            mis(grant(&["crm:read"], &["Crm::Contact/c1"], &["pii"])),
            Some(Miss::DataClass)
        );
    }

    #[test]
    fn narrowing() {
        let all = |_: &str| true;
        assert_eq!(
            narrow_scope("crm:read crm:write", Some("crm:read"), all),
            Ok("crm:read".into())
        );
        assert_eq!(
            narrow_scope("crm:*", None, |t| t != "crm:*"),
            Err(NarrowError::Empty)
        );
        assert_eq!(
            narrow_scope("crm:read", Some("crm:*"), all),
            Err(NarrowError::Wider("crm:*".into()))
        );
        assert_eq!(
            narrow_scope("crm:read crm:write", None, |t| t == "crm:write"),
            Ok("crm:write".into())
        );
    }

    #[test]
    fn lapsed_states() {
        let m = Mandate {
            approval_deadline: Some(Timestamp::from_secs(300)),
            ..Mandate::requested(
                MandateId::parse("mdt_01J00000000000000000000000")
                    .unwrap_or_else(|_| unreachable!()),
                AgentId::parse("agt_01J00000000000000000000000").unwrap_or_else(|_| unreachable!()),
                "x".into(),
                vec![],
                10,
                MandateStatus::PendingApproval,
                Timestamp::from_secs(0),
            )
        };
        assert_eq!(
            m.status_at(Timestamp::from_secs(299)),
            MandateStatus::PendingApproval
        );
        assert_eq!(
            m.status_at(Timestamp::from_secs(300)),
            MandateStatus::Denied
        );
        let a = Mandate {
            status: MandateStatus::Active,
            expires_at: Some(Timestamp::from_secs(10)),
            ..m
        };
        assert!(a.is_active_at(Timestamp::from_secs(9)));
        assert!(!a.is_active_at(Timestamp::from_secs(10)));
    }

    fn pattern() -> impl Strategy<Value = String> {
        "[ab:*]{1,6}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Soundness of `within`: whatever the inner pattern matches, the outer matches.
        #[test]
        fn within_is_sound(inner in pattern(), outer in pattern(), text in "[ab:]{0,8}") {
            if pattern_within(&inner, &outer) && glob_match(&inner, &text) {
                prop_assert!(glob_match(&outer, &text));
            }
        }

        /// A miss is reported exactly when the grants do not allow, for every request.
        #[test]
        fn a_miss_is_exactly_a_refusal(
            grants in proptest::collection::vec(
                (proptest::collection::vec(pattern(), 1..3),
                 proptest::collection::vec(pattern(), 1..3),
                 proptest::collection::vec(pattern(), 0..3)),
                0..4,
            ),
            inner in (proptest::collection::vec(pattern(), 1..3),
                      proptest::collection::vec(pattern(), 1..3),
                      proptest::collection::vec(pattern(), 0..3)),
            action in "[ab:]{0,6}",
            resource in "[ab:]{0,6}",
            data_class in proptest::option::of("[ab:]{0,6}"),
        ) {
            let mk = |(a, r, d): (Vec<String>, Vec<String>, Vec<String>)| Grant {
                actions: a, resources: r, data_classes: d,
            };
            let grants: Vec<Grant> = grants.into_iter().map(mk).collect();
            let dc = data_class.as_deref();
            prop_assert_eq!(
                grants_miss(&grants, &action, &resource, dc).is_none(),
                grants_allow(&grants, &action, &resource, dc)
            );
            let inner = mk(inner);
            prop_assert_eq!(
                grant_miss(&inner, &grants).is_none(),
                grants.iter().any(|o| grant_within(&inner, o))
            );
        }

        /// A narrowed scope never admits an action its parent does not.
        #[test]
        fn narrowing_never_grows(
            parent in proptest::collection::vec(pattern(), 1..4),
            req in proptest::option::of(proptest::collection::vec(pattern(), 1..4)),
            action in "[ab:]{0,8}",
        ) {
            let parent = parent.join(" ");
            let req = req.map(|r| r.join(" "));
            if let Ok(child) = narrow_scope(&parent, req.as_deref(), |_| true) {
                let admits = |s: &str| s.split(' ').any(|t| glob_match(t, &action));
                if admits(&child) {
                    prop_assert!(admits(&parent));
                }
            }
        }
    }
}
