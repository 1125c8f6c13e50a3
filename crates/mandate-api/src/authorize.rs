//! The decision path's wire types (`/v1/authorize`, `/v1/authorize/batch`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::formats::{AuditEventId, DecisionOutcome};

/// One authorization question. An agent calling with its own token sends neither
/// `principal` nor `token`; an enforcement point (`service` or `admin` token) sends
/// exactly one of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthorizeRequest {
    /// The action id, 1–256 bytes; matched against boundary action patterns and token
    /// scopes, and looked up as `Mandate::Action::"<action>"` in the policy schema.
    #[schema(min_length = 1, max_length = 256)]
    pub action: String,
    /// The resource acted on.
    pub resource: DecisionResource,
    /// The request context (`null` or absent: `{}`). A string `data_class` is
    /// checked against the boundary's grants; the fields the action's schema
    /// `context` declares are passed to Cedar (others are dropped). Recorded in the
    /// audit event after redaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// Enforcement points only (or `token`); the agent's id. A string that is not a known
    /// agent id is decided `deny` with `unknown_agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Enforcement points only (or `principal`); the agent's access token, checked
    /// like a bearer token from the agent. It must be issued for `audience` when
    /// given, else for Mandate itself (the issuer or `token.default_audience`); a
    /// token for another audience is decided `deny` with `invalid_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// With `token` only: the resource the enforcement point serves (1–1024
    /// bytes). The token must name it in `aud` (RFC 8707): an enforcement point
    /// decides on tokens issued for itself, never on tokens meant for someone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 1024)]
    pub audience: Option<String>,
    /// The caller's request id, recorded with the decision; at most 128 bytes.
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

/// The resource acted on: a Cedar entity `<type>::"<id>"`. The boundary gate matches
/// grant `resources` patterns against `{type}/{id}` (e.g. `Crm::Contact/c1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecisionResource {
    /// The fully qualified entity type, declared in a schema fragment.
    #[serde(rename = "type")]
    #[schema(min_length = 1)]
    pub type_name: String,
    /// The entity id.
    #[schema(min_length = 1)]
    pub id: String,
    /// Attributes for policies, in Cedar's JSON entity format (`{"__entity": …}` /
    /// `{"__extn": …}` escapes, or plain values where the schema gives the type).
    /// Fields the entity type does not declare are dropped; declared ones must have
    /// their declared types and required ones must be present (else `policy_error`).
    /// Recorded in the decision's audit event (redacted by the same rules as the
    /// context), so a policy replay re-decides the request as the policies saw it.
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
    /// First the deciding reason code (`DecisionReason`), then details for humans:
    /// the token verifier's message after `invalid_token`, Cedar's errors after
    /// `policy_error`.
    #[schema(min_items = 1)]
    pub reasons: Vec<String>,
    /// The policies that decided, in source order: the matching permits on an allow,
    /// the matching forbids on `forbidden_by_policy`, the forbids or the policies
    /// that failed to evaluate on `policy_error`; empty otherwise. Each is the
    /// policy's `@id` exactly as written (no escaping), as the policy listing shows it.
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
