//! The decision path's wire types (`/v1/authorize`, `/v1/authorize/batch`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::openapi::formats::{AuditEventId, DecisionOutcome};

/// One authorization question. An agent calling with its own token sends neither
/// `principal` nor `token`; an enforcement point sends exactly one of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthorizeRequest {
    /// The action asked for.
    #[schema(min_length = 1, max_length = 256)]
    pub action: String,
    /// The resource acted on.
    pub resource: DecisionResource,
    /// The request context (free JSON; `data_class` is checked against the boundary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// The agent id, for enforcement points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The agent's access token, for enforcement points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// With `token`: the resource the enforcement point serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1024)]
    pub audience: Option<String>,
    /// The caller's request id, recorded with the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 128)]
    pub request_id: Option<String>,
}

/// Up to 100 questions answered in one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthorizeBatchRequest {
    /// The questions, answered in order.
    #[schema(min_items = 1, max_items = 100)]
    pub requests: Vec<AuthorizeRequest>,
}

/// The resource acted on: a Cedar entity `<type>::"<id>"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecisionResource {
    /// The entity type (`Crm::Contact`).
    #[serde(rename = "type")]
    #[schema(min_length = 1)]
    pub type_name: String,
    /// The entity id.
    #[schema(min_length = 1)]
    pub id: String,
    /// Attributes for policies, in Cedar's JSON entity format (free JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Decision {
    /// `allow`, `deny` or `approval_required`.
    #[schema(value_type = DecisionOutcome, inline)]
    pub decision: String,
    /// First the deciding reason code, then details for humans.
    #[schema(min_items = 1)]
    pub reasons: Vec<String>,
    /// The policies that decided.
    pub policy_ids: Vec<String>,
    /// The audit event (`node:seq`) that records it.
    #[schema(value_type = AuditEventId)]
    pub decision_id: String,
}

/// The answer to a batch, one decision per question in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchDecisions {
    /// The decisions.
    pub results: Vec<Decision>,
}
