//! Versioned policy sets (`/v1/policies…`): Cedar policies and schema fragments, and
//! Rego modules with their base `data` document (OPA's language, answered by the
//! OPA-compatible Data API).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::agents::Boundary;
use crate::formats::{
    AdminTokenId, AgentId, DecisionOutcome, DecisionReason, PolicyIds, PolicyVersionNumber,
    Timestamp,
};

/// `POST /v1/policies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
// The server reads this type: an unknown member is a 400 `unknown_field`.
#[serde(deny_unknown_fields)]
pub struct NewPolicies {
    /// Cedar policies (no templates; ids unique). May be absent (`""`) in a version of
    /// Rego modules only: then every `/v1/authorize` decision is a deny.
    #[serde(default)]
    pub policies: String,
    /// Operator schema fragments in Cedar schema syntax, combined with Mandate's base
    /// schema.
    #[serde(default)]
    #[schema(max_items = 32, default = json!([]))]
    pub schema_fragments: Vec<String>,
    /// Free text for humans, at most 500 characters. May be absent, not `null`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_string"
    )]
    #[schema(value_type = String, max_length = 500, default = json!(""))]
    pub note: Option<String>,
    /// Rego modules, answered by the OPA-compatible Data API (`opa.listen`). Ids unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 256, default = json!([]))]
    pub rego_modules: Vec<RegoModuleSource>,
    /// The base document Rego reads as `data` (an object; an OPA bundle's `data.json`
    /// merged by directory). Absent: `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Map<String, Value>>,
}

/// One Rego module as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegoModuleSource {
    /// Its id: the file name or bundle path it came from (`authz.rego`,
    /// `policies/http/authz.rego`), or the id given to OPA's Policy API. 1–256 bytes.
    #[schema(min_length = 1, max_length = 256)]
    pub id: String,
    /// The module's text.
    pub source: String,
    /// Parse it as Rego v0 (OPA 0.x syntax, OPA's `--v0-compatible`) instead of v1.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rego_v0: bool,
}

/// A member that may be absent (`None`, through `#[serde(default)]`) but, when present,
/// is a string: `null` is refused with serde's own message, as the server refuses it.
fn present_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// The answer to adding a policy version (never active yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyAdded {
    /// The new version number.
    pub version: i64,
    /// Always `false`.
    pub active: bool,
    /// Its policies' ids in source order.
    pub policy_ids: Vec<String>,
}

/// A policy version in the listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyVersionSummary {
    /// Its number.
    #[schema(value_type = PolicyVersionNumber)]
    pub version: i64,
    /// Whether decisions use this version now.
    pub active: bool,
    /// For humans.
    pub note: String,
    /// RFC 3339.
    #[schema(value_type = Timestamp)]
    pub created_at: String,
    /// The admin token (`adm_…`) that added it.
    #[schema(value_type = AdminTokenId)]
    pub created_by: String,
}

/// `GET /v1/policies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyList {
    /// The active version, if any.
    #[schema(required)]
    pub active_version: Option<i64>,
    /// Every version.
    pub items: Vec<PolicyVersionSummary>,
}

/// An immutable policy version, with its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyVersion {
    /// Its number.
    #[schema(value_type = PolicyVersionNumber)]
    pub version: i64,
    /// Whether decisions use this version now.
    pub active: bool,
    /// For humans.
    pub note: String,
    /// RFC 3339.
    #[schema(value_type = Timestamp)]
    pub created_at: String,
    /// The admin token (`adm_…`) that added it.
    #[schema(value_type = AdminTokenId)]
    pub created_by: String,
    /// The Cedar policies as added.
    pub policies: String,
    /// The schema fragments it was compiled with.
    pub schema_fragments: Vec<String>,
    /// Its Rego modules.
    #[serde(default)]
    pub rego_modules: Vec<RegoModuleSource>,
    /// Its base `data` document.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
}

/// The answer to activate and rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyActivated {
    /// The version now active.
    pub active_version: i64,
    /// The one active before; `None` if none was.
    #[schema(required)]
    pub previous_version: Option<i64>,
}

/// The answer to validating a policy set that compiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyValidated {
    /// Always `true`.
    pub valid: bool,
    /// Its policies' ids in source order.
    #[schema(value_type = PolicyIds)]
    pub policy_ids: Vec<String>,
}

/// `POST /v1/policies/{version}/replay`: which recorded decisions to re-decide with the
/// version, and the boundary edits to replay them with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
// The server reads this type: an unknown member is a 400 `unknown_field`.
#[serde(deny_unknown_fields)]
pub struct PolicyReplayRequest {
    /// Decisions recorded at or after this time (default: the log's start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Timestamp>)]
    pub since: Option<String>,
    /// Decisions recorded before this time (default: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Timestamp>)]
    pub until: Option<String>,
    /// The most decision events to read, oldest first (default 100000, at most
    /// 1000000); the report says when the window held more (`truncated`).
    #[serde(
        default,
        deserialize_with = "mandate_core::integer::optional",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 1000000)]
    pub limit: Option<u32>,
    /// Boundary edits: an agent id (`agt_…`, a registered agent) → the boundary that
    /// replaces its current one for the replay (nothing is changed), at most 1000.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schema(schema_with = replay_boundaries_schema)]
    pub boundaries: std::collections::BTreeMap<String, Boundary>,
    /// Read every node's log of a cluster's shared store, not only this node's
    /// (default false); `limit` counts over all of them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_nodes: bool,
}

/// What a replay counted. Every decision read is in exactly one of `same`,
/// `allow_to_deny`, `deny_to_allow`, `other_changes`, `not_replayed` and `skipped`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyReplayCounts {
    /// Decision events read.
    pub decisions: u64,
    /// Re-decided with the verdict recorded.
    pub same: u64,
    /// Allowed then, denied by the candidate.
    pub allow_to_deny: u64,
    /// Denied then, allowed by the candidate.
    pub deny_to_allow: u64,
    /// Any other change of verdict (to or from `approval_required`).
    pub other_changes: u64,
    /// Refused before the boundary gate (token, agent status, mandate inactive, token
    /// scope): not about policy, so not re-decided; their verdict is kept.
    pub not_replayed: u64,
    /// Could not be re-decided (see `skipped` in the report).
    pub skipped: u64,
    /// Re-decided as `policy_error` by the candidate: denies, also counted above and
    /// listed in `changes`.
    pub errors: u64,
    /// Changed decisions whose logged context held a redacted field (the candidate saw
    /// its marker, not the value).
    pub changed_with_redacted_context: u64,
}

/// Changed (or errored) decisions of one agent, action, change and deciding policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyReplayChange {
    /// The agent.
    #[schema(value_type = AgentId)]
    pub agent: String,
    /// The action.
    pub action: String,
    /// The verdict recorded.
    #[schema(value_type = DecisionOutcome, inline)]
    pub from: String,
    /// The candidate's verdict.
    #[schema(value_type = DecisionOutcome, inline)]
    pub to: String,
    /// The candidate's deciding reason.
    #[schema(value_type = DecisionReason)]
    pub reason: String,
    /// The candidate's deciding policies (empty for a default deny or a gate).
    pub policies: Vec<String>,
    /// How many decisions.
    pub count: u64,
    /// Up to five of their audit events (`node:seq`), oldest first.
    pub example_events: Vec<String>,
}

/// Decisions that could not be re-decided, for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyReplaySkip {
    /// `unknown_agent` (the agent or a delegating agent is no longer registered),
    /// `unknown_mandate` (its mandate is no longer stored) or `unreadable` (the event
    /// lacks what a replay needs).
    pub reason: String,
    /// How many.
    pub count: u64,
    /// Up to five of their audit events (`node:seq`), oldest first.
    pub example_events: Vec<String>,
}

/// What re-deciding the recorded decisions with a candidate version would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyReplayReport {
    /// The candidate version.
    pub version: i64,
    /// The version active when the replay ran.
    #[schema(required)]
    pub active_version: Option<i64>,
    /// The window's start, as asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Timestamp>)]
    pub since: Option<String>,
    /// The window's end, as asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Timestamp>)]
    pub until: Option<String>,
    /// Whether the window held more decisions than `limit` (only the oldest were read).
    pub truncated: bool,
    /// The counts.
    pub counts: PolicyReplayCounts,
    /// Changed or errored decisions grouped, largest group first.
    pub changes: Vec<PolicyReplayChange>,
    /// Whether some were left out of `changes` (more than 1000 groups; still counted).
    pub groups_truncated: bool,
    /// Skipped decisions by reason.
    pub skipped: Vec<PolicyReplaySkip>,
    /// The nodes whose logs were read.
    pub nodes: Vec<String>,
}

/// `boundaries` of a replay: member names are agent ids, at most 1000 of them.
fn replay_boundaries_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder};
    use utoipa::openapi::{Ref, schema::Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^agt_[0-7][0-9A-HJKMNP-TV-Z]{25}$")),
        ))
        .max_properties(Some(1000))
        .additional_properties(Some(AdditionalProperties::RefOr(
            Ref::from_schema_name("Boundary").into(),
        )))
        .into()
}
