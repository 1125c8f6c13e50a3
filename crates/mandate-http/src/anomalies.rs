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
use mandate_api as api;
use mandate_core::id::{AgentId, AnomalyId};
use mandate_detect::Kind;
use mandate_service::anomalies::{self as service, AgentBaseline, AnomalyError, Answer};
use mandate_store::{AnomalyFilter, AnomalyRow};
use serde_json::json;

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

/// An anomaly as the API shows it.
fn anomaly(r: AnomalyRow) -> api::Anomaly {
    api::Anomaly {
        id: r.id.to_string(),
        agent: r.agent.to_string(),
        at: r.at.to_string(),
        kind: r.kind,
        key: r.key,
        score: r.score,
        severity: r.severity,
        response: r.response,
        explanation: r.explanation,
        details: r.details,
        status: r.status,
        resolved_at: r.resolved_at.map(|t| t.to_string()),
        resolved_by: r.resolved_by,
        comment: r.comment,
    }
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
) -> Result<Json<api::AnomalyPage>, ApiError> {
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
    Ok(Json(api::AnomalyPage {
        items: page.items.into_iter().map(anomaly).collect(),
        next_cursor: page.next_cursor.map(|id| id.to_string()),
    }))
}

/// `GET /v1/anomalies/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<api::Anomaly>, ApiError> {
    let id = anomaly_id(&id)?;
    Ok(Json(anomaly(service::show(&state, id).await?)))
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
    body: Option<api::AnomalyResolution>,
    answer: Answer,
) -> Result<Json<api::Anomaly>, ApiError> {
    require_resolver(&admin)?;
    let id = anomaly_id(&id)?;
    let comment = body.and_then(|b| b.comment);
    check_text("comment", comment.as_deref())?;
    let row = service::resolve(&state, &admin.actor(), id, answer, comment).await?;
    Ok(Json(anomaly(row)))
}

/// `POST /v1/anomalies/{id}/acknowledge`: real, and handled.
pub(crate) async fn acknowledge(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<api::AnomalyResolution>,
) -> Result<Json<api::Anomaly>, ApiError> {
    resolve(state, admin, id, body, Answer::Acknowledge).await
}

/// `POST /v1/anomalies/{id}/dismiss`: a false positive; the baseline learns from it.
pub(crate) async fn dismiss(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<api::AnomalyResolution>,
) -> Result<Json<api::Anomaly>, ApiError> {
    resolve(state, admin, id, body, Answer::Dismiss).await
}

/// `GET /v1/agents/{id}/baseline`: what the detector learned of the agent.
pub(crate) async fn baseline(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<api::Baseline>, ApiError> {
    let id = agent_id(&id)?;
    let b = service::baseline(&state, id.clone()).await?;
    Ok(Json(baseline_answer(&id, b)?))
}

/// The baseline as the API shows it: `{"agent", "enabled": false}`, or the detector's
/// summary with `agent`, `enabled` and `suspended_by_detector` beside its members.
fn baseline_answer(id: &AgentId, b: AgentBaseline) -> Result<api::Baseline, ApiError> {
    let summary = match b {
        AgentBaseline::Disabled => None,
        AgentBaseline::Enabled {
            mut summary,
            suspended_by_detector,
        } => {
            if let Some(o) = summary.as_object_mut() {
                o.insert("suspended_by_detector".into(), json!(suspended_by_detector));
            }
            // The detector's summary is open JSON; the contract types the members
            // clients rely on and keeps the rest as it is. A summary without them is
            // the detector breaking the contract: a 500, not a different answer.
            Some(
                serde_json::from_value::<api::BaselineSummary>(summary).map_err(|e| {
                    ApiError::internal(format!("the detector's baseline summary: {e}"))
                })?,
            )
        }
    };
    Ok(api::Baseline {
        agent: id.to_string(),
        enabled: summary.is_some(),
        summary,
    })
}

#[cfg(test)]
mod tests {
    use mandate_core::time::Timestamp;
    use mandate_detect::{Baseline, DetectConfig, Kind, Request};
    use serde_json::{Value, json};

    use super::*;

    /// The answer as the handler wrote it before it spoke `mandate_api::Baseline`: the
    /// summary object with the three members set on it.
    fn as_before(id: &AgentId, b: AgentBaseline) -> Value {
        match b {
            AgentBaseline::Disabled => json!({"agent": id, "enabled": false}),
            AgentBaseline::Enabled {
                mut summary,
                suspended_by_detector,
            } => {
                let o = summary.as_object_mut().expect("an object");
                o.insert("agent".into(), json!(id));
                o.insert("enabled".into(), json!(true));
                o.insert("suspended_by_detector".into(), json!(suspended_by_detector));
                summary
            }
        }
    }

    fn answer(id: &AgentId, b: AgentBaseline) -> Value {
        serde_json::to_value(baseline_answer(id, b).expect("reads as the wire type"))
            .expect("writes")
    }

    /// A detector baseline with something in every member: actions, resource types,
    /// data classes, delegators, rate buckets, a deny ratio, a held finding.
    fn learned() -> Value {
        let cfg = DetectConfig::default();
        let mut b = Baseline::new();
        let start = 1_767_225_600;
        for i in 0..500_i64 {
            let at = Timestamp::from_secs(start + i * 37);
            b.assess(
                &cfg,
                &Request {
                    action: if i % 3 == 0 { "crm:read" } else { "crm:write" },
                    resource_type: "Crm::Contact",
                    data_class: (i % 5 == 0).then_some("pii"),
                    chain: if i % 7 == 0 { &["agt_parent"] } else { &[] },
                    at,
                },
            );
            b.outcome(&cfg, at, i % 11 == 0);
        }
        b.ensure_hold("rate", Kind::RateSpike, 61, 42.5, start + 500 * 37);
        let summary = b.summary(&cfg, start + 600 * 37);
        for member in ["actions", "data_classes", "delegated_by", "pending"] {
            assert!(
                summary[member].as_object().is_some_and(|m| !m.is_empty()),
                "{member} is empty: {summary}"
            );
        }
        summary
    }

    #[test]
    fn the_typed_baseline_is_the_answer_it_replaced() {
        let id = AgentId::parse("agt_01J00000000000000000000000").expect("an id");
        for (summary, suspended) in [
            (learned(), true),
            (Baseline::new().summary(&DetectConfig::default(), 0), false),
        ] {
            let enabled = || AgentBaseline::Enabled {
                summary: summary.clone(),
                suspended_by_detector: suspended,
            };
            assert_eq!(answer(&id, enabled()), as_before(&id, enabled()));
        }
        assert_eq!(
            answer(&id, AgentBaseline::Disabled),
            as_before(&id, AgentBaseline::Disabled)
        );
        assert_eq!(
            answer(&id, AgentBaseline::Disabled),
            json!({"agent": id, "enabled": false})
        );
    }

    #[test]
    fn a_summary_without_the_typed_members_is_a_500() {
        let id = AgentId::parse("agt_01J00000000000000000000000").expect("an id");
        let b = AgentBaseline::Enabled {
            summary: json!({"requests": "many"}),
            suspended_by_detector: false,
        };
        let e = baseline_answer(&id, b).expect_err("refused");
        assert_eq!(e.code(), "internal");
    }
}
