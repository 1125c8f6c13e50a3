//! Mandates, their approval, and development user tokens (`/v1/mandates…`,
//! `/v1/approvals…`, `/v1/dev/user-tokens`).
//!
//! The server reads its request bodies with the request types here: each refuses unknown
//! members (`unknown_field`), and where the handler read a struct of another name before,
//! `serde(expecting)` keeps serde's message for a body that is not an object (`… expected
//! struct DecisionBody`) as the server always answered it. That text is in no JSON and not
//! in the document. A [`Mandate`] is built from the stored record by [`Mandate::as_of`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::formats::{
    self, AgentId, AgentName, GroupName, MandateId, MandateText, Owner, Timestamp,
};
use crate::{Grant, MandateStatus};

/// The human a mandate acts for, as a trusted issuer's token named them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UserRef {
    /// The token's issuer.
    pub issuer: String,
    /// The user's subject at that issuer.
    pub sub: String,
    /// Their email, when the token carried a verified one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub email: Option<String>,
    /// Their groups.
    pub groups: Vec<String>,
}

/// A task-scoped, time-bound grant and its history. `status` is as of the answer:
/// a request past its deadline shows `denied` and a mandate past its expiry
/// `expired`, even before the sweeper (about once a second) has stored that.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Mandate {
    /// `mdt_…`.
    #[schema(value_type = MandateId)]
    pub id: String,
    /// The agent (`agt_…`) it is for.
    #[schema(value_type = AgentId)]
    pub agent: String,
    /// The human it acts for, if any.
    #[schema(required)]
    pub user: Option<UserRef>,
    /// What the agent said it will do.
    pub intent: String,
    /// Why, for the approver.
    #[schema(required)]
    pub justification: Option<String>,
    /// What it may do; always within the agent's boundary.
    pub scope: Vec<Grant>,
    /// The lifetime asked for, counted from activation.
    #[schema(minimum = 1, maximum = 86400)]
    pub lifetime_secs: u32,
    /// As of the answer.
    #[schema(value_type = formats::MandateStatus)]
    pub status: MandateStatus,
    /// RFC 3339.
    #[schema(value_type = Timestamp)]
    pub created_at: String,
    /// For a request held for approval: when it is denied if nobody decides.
    #[schema(value_type = Option<Timestamp>, required)]
    pub approval_deadline: Option<String>,
    /// When it became active.
    #[schema(value_type = Option<Timestamp>, required)]
    pub activated_at: Option<String>,
    /// Activation plus `lifetime_secs`.
    #[schema(value_type = Option<Timestamp>, required)]
    pub expires_at: Option<String>,
    /// `policy`, an admin token id (`adm_…`), `user:<sub>`, or `timeout`.
    #[schema(required)]
    pub decided_by: Option<String>,
    /// The approver's comment.
    #[schema(required)]
    pub decision_comment: Option<String>,
    /// When it was decided.
    #[schema(value_type = Option<Timestamp>, required)]
    pub decided_at: Option<String>,
    /// The policies that decided the request.
    pub policy_ids: Vec<String>,
    /// When it was revoked, completed or expired.
    #[schema(value_type = Option<Timestamp>, required)]
    pub ended_at: Option<String>,
    /// An admin token id, `user:<sub>`, the agent id, or `expiry`.
    #[schema(required)]
    pub ended_by: Option<String>,
}

/// `POST /v1/mandates` (as the agent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMandate {
    /// What the agent will do.
    #[schema(value_type = MandateText)]
    pub intent: String,
    /// 1–64 grants, each within one grant of the agent's boundary.
    #[schema(min_items = 1, max_items = 64)]
    pub scope: Vec<Grant>,
    /// Counted from activation; at most `mandates.max_lifetime_secs` (default 3600).
    /// Default the smaller of 600 and that maximum.
    #[serde(
        default,
        deserialize_with = "mandate_core::integer::optional",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 86400)]
    pub lifetime_secs: Option<u32>,
    /// Why, for the approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = MandateText)]
    pub justification: Option<String>,
    /// A trusted issuer's token naming the human the agent acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub user_token: Option<String>,
}

/// A page of mandates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MandatePage {
    /// The mandates of this page.
    pub items: Vec<Mandate>,
    /// Pass as `cursor` for the next page; `null` when this page is not full.
    #[schema(value_type = Option<MandateId>, required)]
    pub next_cursor: Option<String>,
}

/// The agent behind a request (`None` name and owner if it is unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentSummary {
    /// `agt_…`.
    #[schema(value_type = AgentId)]
    pub id: String,
    /// Its name.
    #[schema(value_type = Option<AgentName>, required)]
    pub name: Option<String>,
    /// Its owner.
    #[schema(value_type = Option<Owner>, required)]
    pub owner: Option<String>,
}

/// A request waiting for an approver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    /// The pending mandate.
    pub mandate: Mandate,
    /// Who asked.
    pub agent: AgentSummary,
}

/// A page of requests waiting for an approver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalPage {
    /// The requests of this page.
    pub items: Vec<Approval>,
    /// The `cursor` of the next page.
    #[schema(value_type = Option<MandateId>, required)]
    pub next_cursor: Option<String>,
}

/// The body of approve and deny.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "struct DecisionBody")]
pub struct ApprovalDecision {
    /// At most 2000 characters; no control characters but newlines and tabs. Recorded with
    /// the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, max_length = 2000, pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$")]
    pub comment: Option<String>,
}

/// `POST /v1/mandates/{id}/revoke`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "struct Revoke")]
pub struct RevokeMandate {
    /// At most 2000 characters; no control characters but newlines and tabs. Recorded in
    /// the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, max_length = 2000, pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$")]
    pub reason: Option<String>,
}

/// `POST /v1/dev/user-tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "struct NewUserToken")]
pub struct NewDevUserToken {
    /// The user; 1–256 characters, no control characters.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub sub: String,
    /// Their email (absent or `null`: none); 1–256 characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    pub email: Option<String>,
    /// Their groups (default none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<GroupName>, inline, max_items = 64, default = json!([]))]
    pub groups: Vec<String>,
    /// Lifetime in seconds (default 3600).
    #[serde(
        default,
        deserialize_with = "mandate_core::integer::optional",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 86400, default = 3600)]
    pub lifetime_secs: Option<u32>,
}

/// A development user token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DevUserToken {
    /// The user token (a JWT).
    pub token: String,
    /// The development issuer's `iss`.
    pub issuer: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl Mandate {
    /// The stored record `m` as readers see it at `now`: every member as stored, but
    /// `status` as of `now` ([`mandate_core::mandate::Mandate::status_at`]), so a request
    /// past its deadline shows `denied` and a mandate past its expiry `expired`.
    pub fn as_of(m: &mandate_core::mandate::Mandate, now: mandate_core::time::Timestamp) -> Self {
        let time = |t: &Option<mandate_core::time::Timestamp>| t.map(|t| t.to_string());
        Self {
            id: m.id.to_string(),
            agent: m.agent.to_string(),
            user: m.user.as_ref().map(UserRef::from),
            intent: m.intent.clone(),
            justification: m.justification.clone(),
            scope: m.scope.iter().map(grant).collect(),
            lifetime_secs: m.lifetime_secs,
            status: m.status_at(now),
            created_at: m.created_at.to_string(),
            approval_deadline: time(&m.approval_deadline),
            activated_at: time(&m.activated_at),
            expires_at: time(&m.expires_at),
            decided_by: m.decided_by.clone(),
            decision_comment: m.decision_comment.clone(),
            decided_at: time(&m.decided_at),
            policy_ids: m.policy_ids.clone(),
            ended_at: time(&m.ended_at),
            ended_by: m.ended_by.clone(),
        }
    }
}

impl From<&mandate_core::mandate::UserRef> for UserRef {
    fn from(u: &mandate_core::mandate::UserRef) -> Self {
        Self {
            issuer: u.issuer.clone(),
            sub: u.sub.clone(),
            email: u.email.clone(),
            groups: u.groups.clone(),
        }
    }
}

/// A grant as the wire writes it (the same members).
fn grant(g: &mandate_core::agent::Grant) -> Grant {
    Grant {
        actions: g.actions.clone(),
        resources: g.resources.clone(),
        data_classes: g.data_classes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// serde's message for a body that is not an object, as the server answers it.
    fn refusal<T: serde::de::DeserializeOwned + std::fmt::Debug>(body: &str) -> String {
        serde_json::from_str::<T>(body).unwrap_err().to_string()
    }

    /// The request types refuse unknown members, and their messages name the structs the
    /// handlers read before.
    #[test]
    fn request_bodies_are_read_as_before() {
        assert_eq!(
            refusal::<ApprovalDecision>("5"),
            "invalid type: integer `5`, expected struct DecisionBody at line 1 column 1"
        );
        assert_eq!(
            refusal::<RevokeMandate>("true"),
            "invalid type: boolean `true`, expected struct Revoke at line 1 column 4"
        );
        assert_eq!(
            refusal::<NewDevUserToken>("\"x\""),
            "invalid type: string \"x\", expected struct NewUserToken at line 1 column 3"
        );
        assert_eq!(
            refusal::<NewMandate>("5"),
            "invalid type: integer `5`, expected struct NewMandate at line 1 column 1"
        );
        assert!(
            refusal::<NewMandate>(r#"{"intent": "x", "x": 1}"#).starts_with("unknown field `x`")
        );
        assert!(refusal::<ApprovalDecision>(r#"{"x": 1}"#).starts_with("unknown field `x`"));
        assert!(refusal::<RevokeMandate>(r#"{"x": 1}"#).starts_with("unknown field `x`"));
        assert!(refusal::<NewDevUserToken>(r#"{"x": 1}"#).starts_with("unknown field `x`"));
    }
}
