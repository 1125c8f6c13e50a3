//! `GET /v1/reports/compliance`: a framework's controls mapped to the evidence this node
//! holds (issue 24). Parses the query, calls `mandate_service::compliance` and renders
//! its report.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use mandate_api as api;
use mandate_core::time::Timestamp;
use mandate_service::compliance::{self as service, ComplianceError, Framework};

use crate::Node;
use crate::audit_api::query;
use crate::error::ApiError;
use crate::extract::Admin;

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", m)
}

impl From<ComplianceError> for ApiError {
    fn from(e: ComplianceError) -> Self {
        match e {
            ComplianceError::SinceInFuture => ApiError::bad_request("invalid_query", e.to_string()),
            ComplianceError::ReportRunning => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "report_running",
                e.to_string(),
            ),
            ComplianceError::Service(e) => e.into(),
            ComplianceError::Store(e) => e.into(),
        }
    }
}

/// `GET /v1/reports/compliance?framework=&since=`.
pub(crate) async fn compliance(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(q): RawQuery,
) -> Result<Json<api::ComplianceReport>, ApiError> {
    let mut framework = None;
    let mut since = None;
    for (k, v) in query(q, &["framework", "since"])? {
        if k == "framework" {
            framework = Some(
                Framework::parse(&v)
                    .ok_or_else(|| bad("`framework` must be nist-ai-rmf or eu-ai-act"))?,
            );
        } else {
            since =
                Some(Timestamp::parse(&v).map_err(|_| bad("`since` must be an RFC 3339 time"))?);
        }
    }
    let framework = framework.ok_or_else(|| bad("`framework` is required"))?;
    let r = service::report(&state, framework, since).await?;
    Ok(Json(api::ComplianceReport {
        framework: r.framework.as_str().to_owned(),
        title: r.title.to_owned(),
        generated_at: r.generated_at.to_string(),
        node: r.node,
        since: r.since.to_string(),
        until: r.until.to_string(),
        checkpoint: r.checkpoint.map(|c| api::ComplianceCheckpoint {
            size: c.size,
            time: c.time.to_string(),
            text: c.text,
        }),
        log_verified: r.log_verified,
        log_problem: r.log_problem,
        controls: r
            .controls
            .into_iter()
            .map(|c| api::ComplianceControl {
                id: c.id.to_owned(),
                requirement: c.requirement.to_owned(),
                status: match c.status {
                    service::Status::Evidenced => "evidenced",
                    service::Status::Attention => "attention",
                    service::Status::NoActivity => "no_activity",
                }
                .to_owned(),
                note: c.note,
                evidence: c.evidence.into_iter().map(str::to_owned).collect(),
            })
            .collect(),
        evidence: r
            .evidence
            .into_iter()
            .map(|(k, i)| {
                (
                    k.to_owned(),
                    api::ComplianceEvidence {
                        value: i.value,
                        source: i.source.to_owned(),
                    },
                )
            })
            .collect(),
        not_evidenced: r.not_evidenced.into_iter().map(str::to_owned).collect(),
    }))
}
