//! Policy sets through the admin API: add a version (validated against the schema; an
//! invalid one is refused with line, column and Cedar's message, and nothing changes),
//! validate without saving, list, show, activate, roll back. Versions are immutable.
//! Each handler parses the request, calls one use case of `mandate_service::policies`
//! and renders its answer; [`PolicyError`] becomes the API's answer here.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_service::policies::{self as service, PolicyError, PolicySource, Target};
use mandate_store::PolicyVersionRow;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Node;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, ApiPath};

impl From<PolicyError> for ApiError {
    /// The policy use cases' refusals as the API has always answered them: an invalid
    /// policy set is 400 `invalid_policy` with every error located.
    ///
    /// The constructors are spelled `ApiError::…`: routes_test reads the codes answered
    /// from the sources.
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Invalid { why, .. } => ApiError::bad_request("invalid_field", why),
            PolicyError::Rejected(errs) => {
                let first = errs.first().map(ToString::to_string).unwrap_or_default();
                let list: Vec<Value> = errs
                    .iter()
                    .map(|e| json!({"source": e.source, "line": e.line, "column": e.column, "message": e.message}))
                    .collect();
                ApiError::bad_request(
                    "invalid_policy",
                    format!("{} problem(s); first: {first}", errs.len()),
                )
                .with("errors", json!(list))
            }
            PolicyError::UnknownVersion(v) => {
                ApiError::not_found(format!("unknown policy version `{v}`"))
            }
            PolicyError::NothingToRollBack => {
                ApiError::conflict("nothing_to_roll_back", "no earlier active version")
            }
            e @ PolicyError::NoLongerCompiles { .. } => {
                ApiError::conflict("does_not_compile", e.to_string())
            }
            PolicyError::Store(e) => e.into(),
            PolicyError::Service(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPolicies {
    /// Cedar policies.
    policies: String,
    /// Operator schema fragments (Cedar schema syntax).
    #[serde(default)]
    schema_fragments: Vec<String>,
    #[serde(default)]
    note: String,
}

impl From<NewPolicies> for PolicySource {
    fn from(req: NewPolicies) -> Self {
        Self {
            policies: req.policies,
            schema_fragments: req.schema_fragments,
            note: req.note,
        }
    }
}

fn version_json(v: &PolicyVersionRow, active: Option<i64>, full: bool) -> Value {
    let mut out = json!({
        "version": v.version,
        "active": Some(v.version) == active,
        "note": v.note,
        "created_at": v.created_at,
        "created_by": v.created_by,
    });
    if full && let Some(m) = out.as_object_mut() {
        m.insert("policies".into(), json!(v.policies));
        m.insert("schema_fragments".into(), json!(v.fragments));
    }
    out
}

/// `POST /v1/policies/validate`: compile only.
pub(crate) async fn validate(
    _admin: Admin,
    ApiJson(req): ApiJson<NewPolicies>,
) -> Result<Json<Value>, ApiError> {
    let ids = service::validate(req.into()).await?;
    Ok(Json(json!({"valid": true, "policy_ids": ids})))
}

/// `POST /v1/policies`: a new immutable version (not yet active).
pub(crate) async fn add(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<NewPolicies>,
) -> Result<Response, ApiError> {
    admin.require_write()?;
    let added = service::add(&state, &admin.actor(), req.into()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"version": added.version, "active": false, "policy_ids": added.policy_ids})),
    )
        .into_response())
}

/// `GET /v1/policies`.
pub(crate) async fn list(
    State(state): State<Arc<Node>>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    let all = service::list(&state).await?;
    let items: Vec<Value> = all
        .versions
        .iter()
        .map(|v| version_json(v, all.active, false))
        .collect();
    Ok(Json(json!({"active_version": all.active, "items": items})))
}

fn version_number(v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::not_found(format!("unknown policy version `{}`", v.escape_debug()))
    })
}

/// `GET /v1/policies/{version}`.
pub(crate) async fn show(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(v): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let v = version_number(&v)?;
    let (row, active) = service::show(&state, v).await?;
    Ok(Json(version_json(&row, active, true)))
}

async fn activate_version(
    state: Arc<Node>,
    admin: Admin,
    target: Target,
) -> Result<Json<Value>, ApiError> {
    admin.require_write()?;
    let a = service::activate(&state, &admin.actor(), target).await?;
    Ok(Json(
        json!({"active_version": a.version, "previous_version": a.previous}),
    ))
}

/// `POST /v1/policies/{version}/activate`.
pub(crate) async fn activate(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(v): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let v = version_number(&v)?;
    activate_version(state, admin, Target::Version(v)).await
}

/// `POST /v1/policies/rollback`: activate the version that was active before this one.
pub(crate) async fn rollback(
    State(state): State<Arc<Node>>,
    admin: Admin,
) -> Result<Json<Value>, ApiError> {
    activate_version(state, admin, Target::Previous).await
}
