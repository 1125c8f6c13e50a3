//! Access review campaigns through the API (issue 24): start (admin), list, show and
//! report (any admin role but `service`), and decide an item (an approver or the
//! agent's owner: `mandate_service::reviews::decide` settles who). Each handler parses,
//! calls the use case and answers its result or its [`ReviewError`].

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use mandate_api as api;
use mandate_core::agent::{Boundary, Owner};
use mandate_core::id::{AgentId, ReviewId};
use mandate_core::time::Timestamp;
use mandate_service::reviews::{
    self as service, Campaign, Item, NewReview, Review, ReviewError, Scope, Tally, Verdict,
};

use crate::Node;
use crate::audit_api::query;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, ApiPath, OptionalJson};
use crate::mandates::page_limit;

impl From<ReviewError> for ApiError {
    /// 403 `not_a_reviewer`, 400 `invalid_field`, 404 for what is unknown, 409 for an
    /// item decided already (`already_decided`), a boundary not within the current one
    /// (`boundary_not_within`) or an agent whose lifecycle refuses the change, and the
    /// acts', node's and store's own mappings.
    fn from(e: ReviewError) -> Self {
        let detail = e.to_string();
        match e {
            ReviewError::NotAReviewer => {
                ApiError::new(StatusCode::FORBIDDEN, "not_a_reviewer", detail)
            }
            ReviewError::Invalid { .. } => ApiError::bad_request("invalid_field", detail),
            ReviewError::UnknownReview(_)
            | ReviewError::UnknownItem { .. }
            | ReviewError::UnknownAgent(_) => ApiError::not_found(detail),
            ReviewError::AlreadyDecided(_) => ApiError::conflict("already_decided", detail),
            ReviewError::NotWithin(_) => ApiError::conflict("boundary_not_within", detail),
            ReviewError::Decommissioned(_) => ApiError::conflict("agent_decommissioned", detail),
            ReviewError::Act(e) => e.into(),
            ReviewError::Random(e) => ApiError::internal(e),
            ReviewError::Service(e) => e.into(),
            ReviewError::Store(e) => e.into(),
        }
    }
}

fn review_id(s: &str) -> Result<ReviewId, ApiError> {
    ReviewId::parse(s)
        .map_err(|_| ApiError::not_found(format!("unknown review `{}`", s.escape_debug())))
}

fn bad_field(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_field", format!("invalid `{field}`: {why}"))
}

fn time(field: &str, v: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse(v).map_err(|_| bad_field(field, "must be an RFC 3339 time"))
}

/// `POST /v1/reviews`.
pub(crate) async fn start(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<api::NewReview>,
) -> Result<Response, ApiError> {
    admin.require_write()?;
    let owner = req
        .owner
        .map(Owner::try_from)
        .transpose()
        .map_err(|e| bad_field("owner", e))?;
    let agents = req
        .agents
        .iter()
        .map(|a| AgentId::parse(a).map_err(|e| bad_field("agents", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let selector = req
        .selector
        .as_deref()
        .map(service::parse_selector)
        .transpose()?;
    let since = req.since.as_deref().map(|s| time("since", s)).transpose()?;
    let due = time("due", &req.due)?;
    let new = NewReview {
        name: req.name,
        scope: Scope {
            owner,
            agents,
            selector,
        },
        since,
        due,
    };
    let c = service::start(&state, &admin.actor(), new).await?;
    Ok((StatusCode::CREATED, Json(campaign(&c))).into_response())
}

const DEFAULT_PAGE: u32 = 50;

/// `GET /v1/reviews?cursor=&limit=`.
pub(crate) async fn list(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(q): RawQuery,
) -> Result<Json<api::ReviewPage>, ApiError> {
    let mut limit = DEFAULT_PAGE;
    let mut cursor = None;
    for (k, v) in query(q, &["cursor", "limit"])? {
        if k == "cursor" {
            cursor = Some(
                ReviewId::parse(&v)
                    .map_err(|e| ApiError::bad_request("invalid_query", format!("cursor: {e}")))?,
            );
        } else {
            limit = page_limit(&v)?;
        }
    }
    let page = service::list(&state, cursor, limit).await?;
    let next_cursor = (page.len() == limit as usize)
        .then(|| page.last().map(|(r, _)| r.id.to_string()))
        .flatten();
    Ok(Json(api::ReviewPage {
        items: page.iter().map(|(r, t)| summary(r, t)).collect(),
        next_cursor,
    }))
}

/// `GET /v1/reviews/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<api::Review>, ApiError> {
    let c = service::show(&state, review_id(&id)?).await?;
    Ok(Json(campaign(&c)))
}

/// `GET /v1/reviews/{id}/report?format=json|csv|html`.
pub(crate) async fn report(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let mut format = "json".to_owned();
    for (_, v) in query(q, &["format"])? {
        format = v;
    }
    if !matches!(format.as_str(), "json" | "csv" | "html") {
        return Err(ApiError::bad_request(
            "invalid_query",
            "format is json, csv or html",
        ));
    }
    let c = service::show(&state, review_id(&id)?).await?;
    Ok(match format.as_str() {
        "csv" => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            service::report_csv(&c),
        )
            .into_response(),
        "html" => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                // The page needs nothing from anywhere, and runs nothing.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'",
                ),
            ],
            service::report_html(&c),
        )
            .into_response(),
        _ => Json(campaign(&c)).into_response(),
    })
}

/// A decision's body, read with the core's checked boundary (a bad one is refused while
/// the body is parsed, with serde's message).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    boundary: Option<Boundary>,
}

async fn decide(
    state: Arc<Node>,
    caller: Caller,
    id: String,
    agent: String,
    body: Option<DecisionBody>,
    verdict: fn(Option<Boundary>) -> Result<Verdict, ApiError>,
) -> Result<Json<api::ReviewDecided>, ApiError> {
    let (comment, boundary) = body.map_or((None, None), |b| (b.comment, b.boundary));
    let verdict = verdict(boundary)?;
    let id = review_id(&id)?;
    let agent = AgentId::parse(&agent)
        .map_err(|_| ApiError::not_found(format!("unknown agent `{}`", agent.escape_debug())))?;
    let d = service::decide(&state, caller.into(), id, agent, verdict, comment).await?;
    Ok(Json(api::ReviewDecided {
        item: item(&d.item),
        review_completed: d.completed,
    }))
}

fn no_boundary(b: Option<Boundary>, v: Verdict) -> Result<Verdict, ApiError> {
    match b {
        Some(_) => Err(bad_field("boundary", "only a narrow takes a boundary")),
        None => Ok(v),
    }
}

/// `POST /v1/reviews/{id}/items/{agent}/certify`.
pub(crate) async fn certify(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath((id, agent)): ApiPath<(String, String)>,
    OptionalJson(body): OptionalJson<DecisionBody>,
) -> Result<Json<api::ReviewDecided>, ApiError> {
    decide(state, caller, id, agent, body, |b| {
        no_boundary(b, Verdict::Certify)
    })
    .await
}

/// `POST /v1/reviews/{id}/items/{agent}/narrow`.
pub(crate) async fn narrow(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath((id, agent)): ApiPath<(String, String)>,
    OptionalJson(body): OptionalJson<DecisionBody>,
) -> Result<Json<api::ReviewDecided>, ApiError> {
    decide(state, caller, id, agent, body, |b| Ok(Verdict::Narrow(b))).await
}

/// `POST /v1/reviews/{id}/items/{agent}/decommission`.
pub(crate) async fn decommission(
    State(state): State<Arc<Node>>,
    caller: Caller,
    ApiPath((id, agent)): ApiPath<(String, String)>,
    OptionalJson(body): OptionalJson<DecisionBody>,
) -> Result<Json<api::ReviewDecided>, ApiError> {
    decide(state, caller, id, agent, body, |b| {
        no_boundary(b, Verdict::Decommission)
    })
    .await
}

fn summary(r: &Review, t: &Tally) -> api::ReviewSummary {
    api::ReviewSummary {
        id: r.id.to_string(),
        name: r.name.clone(),
        status: if r.completed_at.is_some() {
            "completed"
        } else {
            "open"
        }
        .to_owned(),
        owner: r.spec.owner.clone(),
        agents: r.spec.agents.clone(),
        selector: r.spec.selector.clone(),
        since: r.spec.since.to_string(),
        until: r.spec.until.to_string(),
        decisions_read: r.spec.decisions_read,
        due: r.due.to_string(),
        created_by: r.created_by.clone(),
        created_at: r.created_at.to_string(),
        completed_at: r.completed_at.map(|t| t.to_string()),
        counts: api::ReviewCounts {
            items: t.items,
            pending: t.pending,
            certified: t.certified,
            narrowed: t.narrowed,
            decommissioned: t.decommissioned,
            escalated: t.escalated,
        },
    }
}

fn item(i: &Item) -> api::ReviewItem {
    let f = &i.findings;
    let decision = i.decision.as_ref();
    let text = |k: &str| {
        decision
            .and_then(|d| d.get(k))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    api::ReviewItem {
        agent: i.agent.clone(),
        name: f.name.clone(),
        owner: i.owner.clone(),
        labels: f.labels.clone(),
        state: i.state.code().to_owned(),
        boundary: api::Boundary::from(&f.boundary),
        grants: f
            .grants
            .iter()
            .map(|g| api::ReviewGrant {
                index: g.index as u64,
                grant: api::Grant::from(&g.grant),
                allows: g.allows,
                fate: g.fate.code().to_owned(),
                narrowed: g.narrowed.as_ref().map(api::Grant::from),
            })
            .collect(),
        used: api::ReviewUse {
            allows: f.used.allows,
            actions: f.used.actions.clone(),
            resources: f.used.resources.clone(),
            data_classes: f.used.data_classes.clone(),
            delegated_to: f.used.delegated_to.iter().cloned().collect(),
            acted_for: f.used.acted_for.iter().cloned().collect(),
            truncated: f.used.truncated,
        },
        uncovered: f.uncovered,
        unused_delegates: f.unused_delegates.clone(),
        suggested: api::Boundary::from(&f.suggested),
        unchanged: f.unchanged,
        decided_by: i.decided_by.clone(),
        decided_as: text("as"),
        decided_at: i.decided_at.map(|t| t.to_string()),
        comment: text("comment"),
        applied_boundary: decision
            .and_then(|d| d.get("boundary"))
            .and_then(|b| serde_json::from_value::<Boundary>(b.clone()).ok())
            .map(|b| api::Boundary::from(&b)),
        escalated_at: i.escalated_at.map(|t| t.to_string()),
    }
}

fn campaign(c: &Campaign) -> api::Review {
    api::Review {
        review: summary(&c.review, &c.tally),
        items: c.items.iter().map(item).collect(),
    }
}
