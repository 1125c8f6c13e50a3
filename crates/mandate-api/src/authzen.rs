//! The OpenID AuthZEN Authorization API 1.0 wire types (`/access/v1/*` and
//! `/.well-known/authzen-configuration`), as the specification names them.
//!
//! Unlike the admin API's bodies, AuthZEN requests are open: the specification requires
//! a PDP to ignore members it does not know, so none of the request types is closed.
//! The server reads these bodies field by field (mandate-http `authzen.rs`) so that a
//! bad item of a batch is a `false` decision for that item, not a 400 for the whole
//! batch; the types here are the contract it keeps.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Who acts. Mandate decides for registered agents: `type` is `agent`, `id` the agent's
/// id (`agt_…`) or its name. Any other type, or an id that names no agent, is decided
/// `false` with `context.reason` `unknown_agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthzenSubject {
    /// `agent`.
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 256)]
    pub type_name: String,
    /// The agent id or name. Required in an evaluation; ignored by subject search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Attributes the caller asserts about the subject. `token`, if present, is the
    /// agent's access token (an enforcement point passing it on, as `token` of
    /// `/v1/authorize`); every other member `k` reaches the policies as the context
    /// field `subject_<k>` (never as an attribute of the principal, which Mandate
    /// builds from its registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Map<String, Value>>,
}

/// What is acted on: the Cedar entity `<type>::"<id>"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthzenResource {
    /// The fully qualified entity type, declared in a schema fragment.
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 256)]
    pub type_name: String,
    /// The entity id. Required in an evaluation; ignored by resource search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The resource's attributes, as `attributes` of `/v1/authorize` (top-level fields
    /// the entity type does not declare are dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Map<String, Value>>,
}

/// The action asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthzenAction {
    /// The action id (`Mandate::Action::"<name>"`), 1–256 bytes.
    #[schema(min_length = 1, max_length = 256)]
    pub name: String,
    /// Parameters of the action: each member `k` reaches the policies as the context
    /// field `action_<k>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Map<String, Value>>,
}

/// An Access Evaluation request (`POST /access/v1/evaluation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthzenEvaluationRequest {
    /// Who acts, with its `id`.
    #[schema(schema_with = subject_with_id)]
    pub subject: AuthzenSubject,
    /// What they would do.
    pub action: AuthzenAction,
    /// On what, with its `id`.
    #[schema(schema_with = resource_with_id)]
    pub resource: AuthzenResource,
    /// The environment: the context of `/v1/authorize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
}

/// One item of an Access Evaluations request: any member it leaves out is taken whole
/// from the request's top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthzenEvaluationItem {
    /// Overrides the top-level subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<AuthzenSubject>,
    /// Overrides the top-level action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<AuthzenAction>,
    /// Overrides the top-level resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<AuthzenResource>,
    /// Overrides the top-level context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
}

/// How a batch is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationsSemantic {
    /// Every item, every answer (the default).
    ExecuteAll,
    /// In order, stopping after the first `false` (which is the last answer).
    DenyOnFirstDeny,
    /// In order, stopping after the first `true` (which is the last answer).
    PermitOnFirstPermit,
}

/// Options of an Access Evaluations request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthzenEvaluationsOptions {
    /// `execute_all` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluations_semantic: Option<EvaluationsSemantic>,
}

/// An Access Evaluations request (`POST /access/v1/evaluations`). Without
/// `evaluations` (or with an empty array) it is an Access Evaluation request and is
/// answered as one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthzenEvaluationsRequest {
    /// The default subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<AuthzenSubject>,
    /// The default action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<AuthzenAction>,
    /// The default resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<AuthzenResource>,
    /// The default context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// At most 100 items, answered in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 100)]
    pub evaluations: Option<Vec<AuthzenEvaluationItem>>,
    /// How the items are evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<AuthzenEvaluationsOptions>,
}

/// A decision: `true` only for Mandate's `allow`. `approval_required` and every deny
/// are `false`, with the reason in `context`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthzenDecision {
    /// Whether the action may go ahead.
    pub decision: bool,
    /// `decision_id` (the audit event's id), `reason` (the `DecisionReason` code, or
    /// `invalid_request`, `deny_on_first_deny`… for an item that was not decided),
    /// `reasons` (the code and details, as `/v1/authorize` lists them), `policy_ids`;
    /// for `approval_required`, `approval` says how to ask for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
}

/// The answer to an Access Evaluations request with items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthzenEvaluations {
    /// One decision per item evaluated, in request order (fewer than the items when a
    /// short-circuit semantic stopped early).
    pub evaluations: Vec<AuthzenDecision>,
}

/// Paging of a search request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthzenPageRequest {
    /// The `next_token` of the previous answer; the rest of the request must be the
    /// same as the one that answered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Results per page, 1–1000 (100 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// A search request (`POST /access/v1/search/{subject,resource,action}`): the searched
/// entity gives only its `type` (`subject` and `resource` search; an `id` is ignored)
/// or is left out (`action` search).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthzenSearchRequest {
    /// Who acts (its `id` ignored by subject search).
    pub subject: AuthzenSubject,
    /// What they would do (not in an action search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<AuthzenAction>,
    /// On what (its `id` ignored by resource search).
    pub resource: AuthzenResource,
    /// The environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// Which page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<AuthzenPageRequest>,
}

/// Where a search's page is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthzenPage {
    /// The token of the next page; empty on the last page.
    pub next_token: String,
    /// Results on this page.
    pub count: u64,
    /// Results in all pages.
    pub total: u64,
}

/// A search's answer: subjects (`{type, id, properties}`), resources (`{type, id}`) or
/// actions (`{name}`) the decision path permits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthzenSearchResponse {
    /// Always present.
    pub page: AuthzenPage,
    /// `decision_id` (the search's `authzen.search` audit event); with resource search,
    /// `incomplete` and `skipped_patterns` when boundary patterns could not be
    /// enumerated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// The entities of this page.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<Value>,
}

/// Policy Decision Point metadata (AuthZEN 1.0 §PDP metadata); URLs are built from the
/// configured issuer, which is the `policy_decision_point`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuthzenConfiguration {
    /// The issuer.
    #[schema(format = "uri")]
    pub policy_decision_point: String,
    /// `{issuer}/access/v1/evaluation`.
    #[schema(format = "uri")]
    pub access_evaluation_endpoint: String,
    /// `{issuer}/access/v1/evaluations`.
    #[schema(format = "uri")]
    pub access_evaluations_endpoint: String,
    /// `{issuer}/access/v1/search/subject`.
    #[schema(format = "uri")]
    pub search_subject_endpoint: String,
    /// `{issuer}/access/v1/search/resource`.
    #[schema(format = "uri")]
    pub search_resource_endpoint: String,
    /// `{issuer}/access/v1/search/action`.
    #[schema(format = "uri")]
    pub search_action_endpoint: String,
}

/// `entity` (`AuthzenSubject` or `AuthzenResource`) as an evaluation needs it: with an
/// `id` of 1–1024 bytes (the types leave it optional for search, which ignores it).
fn entity_with_id(entity: &str) -> utoipa::openapi::Schema {
    use utoipa::openapi::Ref;
    use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Type};
    AllOfBuilder::new()
        .item(Ref::from_schema_name(entity))
        .item(
            ObjectBuilder::new().required("id").property(
                "id",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(1024)),
            ),
        )
        .into()
}

fn subject_with_id() -> utoipa::openapi::Schema {
    entity_with_id("AuthzenSubject")
}

fn resource_with_id() -> utoipa::openapi::Schema {
    entity_with_id("AuthzenResource")
}
