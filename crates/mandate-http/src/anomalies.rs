//! `/v1/anomalies`: what the detector raised, and a human's answer to it —
//! acknowledge (it was real and is handled: the hold is lifted, what it found is
//! accepted) or dismiss (a false positive: the hold is lifted and the baseline learns
//! that this is normal). `GET /v1/agents/{id}/baseline` shows what an agent's baseline
//! has learned. Each handler parses the request, calls one use case of
//! `mandate_service::anomalies` and renders its answer; [`AnomalyError`] becomes the
//! API's answer here.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use mandate_core::id::AnomalyId;
use mandate_detect::Kind;
use mandate_service::anomalies::{self as service, AgentBaseline, AnomalyError, Answer};
use mandate_store::{AnomalyFilter, AnomalyRow};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Node;
use crate::agents::agent_id;
use crate::audit_api::query;
use crate::error::ApiError;
use crate::extract::{Admin, ApiPath, OptionalJson};
use crate::mandates::{DEFAULT_PAGE, check_text, page_limit};

impl From<AnomalyError> for ApiError {
    /// The anomaly use cases' refusals as the API has always answered them.
    ///
    /// The constructors are spelled `ApiError::…`: routes_test reads the codes answered
    /// from the sources.
    fn from(e: AnomalyError) -> Self {
        match e {
            AnomalyError::Unknown(_) => ApiError::not_found("unknown anomaly"),
            AnomalyError::UnknownAgent(_) => ApiError::not_found("unknown agent"),
            AnomalyError::NotOpen(m) => ApiError::conflict("not_open", m),
            AnomalyError::Store(e) => e.into(),
            AnomalyError::Service(e) => e.into(),
        }
    }
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", m)
}

fn anomaly_id(v: &str) -> Result<AnomalyId, ApiError> {
    AnomalyId::parse(v).map_err(|_| ApiError::not_found("unknown anomaly"))
}

fn one_of(field: &str, v: String, allowed: &[&str]) -> Result<String, ApiError> {
    if allowed.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(bad(format!(
            "`{field}` must be one of {}",
            allowed.join(", ")
        )))
    }
}

/// `GET /v1/anomalies?agent=&status=&severity=&kind=&cursor=&limit=`: newest first.
pub(crate) async fn list(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let mut f = AnomalyFilter::default();
    let mut cursor = None;
    let mut limit = DEFAULT_PAGE;
    for (k, v) in query(
        q,
        &["agent", "status", "severity", "kind", "cursor", "limit"],
    )? {
        match k.as_str() {
            "agent" => f.agent = Some(agent_id(&v).map_err(|_| bad("`agent` is not an agent id"))?),
            "status" => f.status = Some(one_of(&k, v, &["open", "acknowledged", "dismissed"])?),
            "severity" => {
                f.severity = Some(one_of(&k, v, &["low", "medium", "high", "critical"])?);
            }
            "kind" => {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                f.kind = Some(one_of(&k, v, &names)?);
            }
            "cursor" => {
                cursor =
                    Some(AnomalyId::parse(&v).map_err(|_| bad("`cursor` is not an anomaly id"))?);
            }
            _ => limit = page_limit(&v)?,
        }
    }
    let page = service::list(&state, f, cursor, limit).await?;
    let next = page.next_cursor.map(|id| id.to_string());
    Ok(Json(json!({"items": page.items, "next_cursor": next})))
}

/// `GET /v1/anomalies/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AnomalyRow>, ApiError> {
    let id = anomaly_id(&id)?;
    Ok(Json(service::show(&state, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resolution {
    comment: Option<String>,
}

/// Admins and approvers may answer an anomaly; auditors only read.
fn require_resolver(admin: &Admin) -> Result<(), ApiError> {
    use mandate_core::admin::Role;
    if matches!(admin.0.role, Role::Admin | Role::Approver) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "an admin or approver token is required",
        ))
    }
}

async fn resolve(
    state: Arc<Node>,
    admin: Admin,
    id: String,
    body: Option<Resolution>,
    answer: Answer,
) -> Result<Json<AnomalyRow>, ApiError> {
    require_resolver(&admin)?;
    let id = anomaly_id(&id)?;
    let comment = body.and_then(|b| b.comment);
    check_text("comment", comment.as_deref())?;
    let row = service::resolve(&state, &admin.actor(), id, answer, comment).await?;
    Ok(Json(row))
}

/// `POST /v1/anomalies/{id}/acknowledge`: real, and handled.
pub(crate) async fn acknowledge(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<Resolution>,
) -> Result<Json<AnomalyRow>, ApiError> {
    resolve(state, admin, id, body, Answer::Acknowledge).await
}

/// `POST /v1/anomalies/{id}/dismiss`: a false positive; the baseline learns from it.
pub(crate) async fn dismiss(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<Resolution>,
) -> Result<Json<AnomalyRow>, ApiError> {
    resolve(state, admin, id, body, Answer::Dismiss).await
}

/// `GET /v1/agents/{id}/baseline`: what the detector learned of the agent.
pub(crate) async fn baseline(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id = agent_id(&id)?;
    match service::baseline(&state, id.clone()).await? {
        AgentBaseline::Disabled => Ok(Json(json!({"agent": id, "enabled": false}))),
        AgentBaseline::Enabled {
            mut summary,
            suspended_by_detector,
        } => {
            if let Some(o) = summary.as_object_mut() {
                o.insert("agent".into(), json!(id));
                o.insert("enabled".into(), json!(true));
                o.insert("suspended_by_detector".into(), json!(suspended_by_detector));
            }
            Ok(Json(summary))
        }
    }
}
