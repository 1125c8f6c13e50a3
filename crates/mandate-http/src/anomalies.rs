//! `/v1/anomalies`: what the detector raised, and a human's answer to it —
//! acknowledge (it was real and is handled: the hold is lifted, what it found is
//! accepted) or dismiss (a false positive: the hold is lifted and the baseline learns
//! that this is normal). `GET /v1/agents/{id}/baseline` shows what an agent's baseline
//! has learned.

use mandate_store::prelude::*;
use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use mandate_core::id::AnomalyId;
use mandate_detect::{Baseline, Kind};
use mandate_store::{AnomalyFilter, AnomalyRow};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Node;
use crate::act::Acts as _;
use crate::agents::agent_id;
use crate::audit_api::query;
use crate::error::ApiError;
use crate::extract::{Admin, ApiPath, OptionalJson};
use crate::mandates::{DEFAULT_PAGE, check_text, page_limit};
use mandate_service::Recorded;

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
    let page = crate::blocking(&state, move |s| {
        s.store().list_anomalies(&f, cursor.as_ref(), limit)
    })
    .await??;
    let next = (page.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| page.last().map(|a| a.id.to_string()))
        .flatten();
    Ok(Json(json!({"items": page, "next_cursor": next})))
}

/// `GET /v1/anomalies/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AnomalyRow>, ApiError> {
    let id = anomaly_id(&id)?;
    crate::blocking(&state, move |s| s.store().get_anomaly(&id))
        .await??
        .map(Json)
        .ok_or_else(|| ApiError::not_found("unknown anomaly"))
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
    dismiss: bool,
) -> Result<Json<AnomalyRow>, ApiError> {
    require_resolver(&admin)?;
    let id = anomaly_id(&id)?;
    let comment = body.and_then(|b| b.comment);
    check_text("comment", comment.as_deref())?;
    let status = if dismiss { "dismissed" } else { "acknowledged" };
    let by = admin.actor().name();
    let kind = if dismiss {
        "anomaly.dismissed"
    } else {
        "anomaly.acknowledged"
    };
    let row = state
        .act(kind, &admin.actor(), move |s| {
            let now = s.clock.now();
            let a = s
                .store()
                .resolve_anomaly(&id, status, &by, comment.as_deref(), now)
                .map_err(|e| match e {
                    mandate_store::StoreError::Conflict(m) => ApiError::conflict("not_open", m),
                    e => e.into(),
                })?;
            // INVARIANT (hold): the hold is lifted in the detector before the answer, so
            // the agent's next matching request is judged without it.
            if let (Some(d), Ok(kind)) = (s.detector(), a.kind.parse::<Kind>()) {
                let observed = a
                    .details
                    .get("observed")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                d.resolve(
                    a.agent.as_str(),
                    &a.key,
                    kind,
                    observed,
                    dismiss,
                    now.secs(),
                );
            }
            let details = json!({
                "anomaly": a.id,
                "kind": a.kind,
                "key": a.key,
                "comment": a.comment,
            });
            let rec = Recorded::agent(&a.agent, details);
            Ok((a, rec))
        })
        .await?;
    Ok(Json(row))
}

/// `POST /v1/anomalies/{id}/acknowledge`: real, and handled.
pub(crate) async fn acknowledge(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<Resolution>,
) -> Result<Json<AnomalyRow>, ApiError> {
    resolve(state, admin, id, body, false).await
}

/// `POST /v1/anomalies/{id}/dismiss`: a false positive; the baseline learns from it.
pub(crate) async fn dismiss(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<Resolution>,
) -> Result<Json<AnomalyRow>, ApiError> {
    resolve(state, admin, id, body, true).await
}

/// `GET /v1/agents/{id}/baseline`: what the detector learned of the agent.
pub(crate) async fn baseline(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id = agent_id(&id)?;
    // The store, not the snapshot: an admin read that works while decisions are held.
    let known = {
        let id = id.clone();
        crate::blocking(&state, move |s| s.store().get_agent(&id)).await??
    };
    if known.is_none() {
        return Err(ApiError::not_found("unknown agent"));
    }
    let Some(d) = state.detector() else {
        return Ok(Json(json!({"agent": id, "enabled": false})));
    };
    let now = state.clock.now().secs();
    let b = d.baseline(id.as_str()).unwrap_or_else(Baseline::new);
    let mut v = b.summary(d.config(), now);
    if let Some(o) = v.as_object_mut() {
        o.insert("agent".into(), json!(id));
        o.insert("enabled".into(), json!(true));
        o.insert(
            "suspended_by_detector".into(),
            json!(d.is_suspended(id.as_str())),
        );
    }
    Ok(Json(v))
}
