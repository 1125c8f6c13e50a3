//! Policy sets through the admin API: add a version (validated against the schema; an
//! invalid one is refused with line, column and Cedar's message, and nothing changes),
//! validate without saving, list, show, activate, roll back. Versions are immutable.

use mandate_store::prelude::*;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_store::PolicyVersionRow;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Node;
use crate::act::Acts as _;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, ApiPath};
use mandate_service::Recorded;
use mandate_service::VersionError;

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

/// Compiles or answers 400 `invalid_policy` with every error located.
fn compile(req: &NewPolicies) -> Result<mandate_policy::CompiledPolicies, ApiError> {
    if req.note.chars().count() > 500 || req.schema_fragments.len() > 32 {
        return Err(ApiError::bad_request(
            "invalid_field",
            "note is at most 500 characters; at most 32 schema fragments",
        ));
    }
    mandate_policy::compile(&req.schema_fragments, &req.policies).map_err(|errs| {
        let first = errs.first().map(ToString::to_string).unwrap_or_default();
        let list: Vec<Value> = errs
            .iter()
            .map(|e| json!({"source": e.source, "line": e.line, "column": e.column, "message": e.message}))
            .collect();
        ApiError::bad_request("invalid_policy", format!("{} problem(s); first: {first}", errs.len())).with("errors", json!(list))
    })
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
    let c = tokio::task::spawn_blocking(move || compile(&req))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(json!({"valid": true, "policy_ids": c.policy_ids()})))
}

/// `POST /v1/policies`: a new immutable version (not yet active).
pub(crate) async fn add(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<NewPolicies>,
) -> Result<Response, ApiError> {
    admin.require_write()?;
    let by = admin.0.id.to_string();
    let (version, ids) = state
        .act("policy.added", &admin.actor(), move |s| {
            let c = compile(&req)?;
            let v = s.store().insert_policy_version(
                &req.policies,
                &req.schema_fragments,
                &req.note,
                s.clock.now(),
                &by,
            )?;
            let ids = c.policy_ids();
            let details = json!({"version": v, "policy_ids": ids});
            Ok(((v, ids), Recorded::details(details)))
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"version": version, "active": false, "policy_ids": ids})),
    )
        .into_response())
}

/// `GET /v1/policies`.
pub(crate) async fn list(
    State(state): State<Arc<Node>>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    let (rows, active) = crate::blocking(&state, |s| -> Result<_, ApiError> {
        Ok((
            s.store().policy_versions()?,
            s.store().policy_activation_state()?.0,
        ))
    })
    .await??;
    let items: Vec<Value> = rows
        .iter()
        .map(|v| version_json(v, active, false))
        .collect();
    Ok(Json(json!({"active_version": active, "items": items})))
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
    let (row, active) = crate::blocking(&state, move |s| -> Result<_, ApiError> {
        Ok((
            s.store().policy_version(v)?,
            s.store().policy_activation_state()?.0,
        ))
    })
    .await??;
    let row = row.ok_or_else(|| ApiError::not_found(format!("unknown policy version `{v}`")))?;
    Ok(Json(version_json(&row, active, true)))
}

async fn activate_version(
    state: Arc<Node>,
    admin: Admin,
    v: Option<i64>,
    kind: &'static str,
) -> Result<Json<Value>, ApiError> {
    admin.require_write()?;
    let by = admin.0.id.to_string();
    let (version, previous) = state
        .act(kind, &admin.actor(), move |s| {
            let (active, previous) = s.store().policy_activation_state()?;
            let target = match v {
                Some(v) => v,
                None => previous.ok_or_else(|| {
                    ApiError::conflict("nothing_to_roll_back", "no earlier active version")
                })?,
            };
            // Versions were validated when written, but one may no longer compile (a
            // newer base schema): refuse it before it becomes active (409), so the
            // refresh below can only fail on the store, never on the version.
            s.compiled_version(target).map_err(|e| match e {
                VersionError::Store(e) => ApiError::from(e),
                VersionError::Missing => {
                    ApiError::not_found(format!("unknown policy version `{target}`"))
                }
                VersionError::DoesNotCompile(why) => ApiError::conflict(
                    "does_not_compile",
                    format!("policy version {target} no longer compiles: {why}"),
                ),
            })?;
            s.store()
                .activate_policy_version(target, s.clock.now(), &by)?;
            let details = json!({"version": target, "previous": active});
            Ok(((target, active), Recorded::details(details)))
        })
        .await?;
    Ok(Json(
        json!({"active_version": version, "previous_version": previous}),
    ))
}

/// `POST /v1/policies/{version}/activate`.
pub(crate) async fn activate(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(v): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let v = version_number(&v)?;
    activate_version(state, admin, Some(v), "policy.activated").await
}

/// `POST /v1/policies/rollback`: activate the version that was active before this one.
pub(crate) async fn rollback(
    State(state): State<Arc<Node>>,
    admin: Admin,
) -> Result<Json<Value>, ApiError> {
    activate_version(state, admin, None, "policy.rolled_back").await
}
