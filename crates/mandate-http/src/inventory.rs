//! `GET /v1/inventory`: every agent with its facts and findings (issue 24). Parses the
//! query, calls `mandate_service::inventory` and renders a page of its rows.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};
use mandate_api as api;
use mandate_core::agent::AgentStatus;
use mandate_core::id::AgentId;
use mandate_govern::discover::Selector;
use mandate_govern::findings::{Code, OwnerCheck, Thresholds};
use mandate_service::inventory::{self as service, InventoryQuery, Row};

use crate::Node;
use crate::audit_api::query;
use crate::error::ApiError;
use crate::extract::Admin;

/// Rows per page when the caller does not say.
pub(crate) const DEFAULT_ROWS: usize = 10_000;
/// The most rows one page may hold.
pub(crate) const MAX_ROWS: usize = 100_000;
/// The largest threshold, in days (ten years).
const MAX_DAYS: u32 = 3650;

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_query", m)
}

fn days(k: &str, v: &str) -> Result<u32, ApiError> {
    v.parse()
        .ok()
        .filter(|d| (1..=MAX_DAYS).contains(d))
        .ok_or_else(|| {
            bad(format!(
                "`{k}` must be a whole number of days, 1..={MAX_DAYS}"
            ))
        })
}

/// `GET /v1/inventory?owner=&status=&finding=&selector=&dormant_days=&credential_unused_days=&credential_rotation_days=&after=&limit=`.
pub(crate) async fn list(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    RawQuery(q): RawQuery,
) -> Result<Json<api::Inventory>, ApiError> {
    let mut iq = InventoryQuery {
        owner: None,
        status: None,
        finding: None,
        labels: None,
        thresholds: Thresholds::RECOMMENDED,
    };
    let mut after = None;
    let mut limit = DEFAULT_ROWS;
    for (k, v) in query(
        q,
        &[
            "owner",
            "status",
            "finding",
            "selector",
            "dormant_days",
            "credential_unused_days",
            "credential_rotation_days",
            "after",
            "limit",
        ],
    )? {
        match k.as_str() {
            "owner" => iq.owner = Some(v),
            "status" => {
                iq.status = Some(AgentStatus::parse(&v).ok_or_else(|| {
                    bad("`status` must be one of active, suspended, decommissioned")
                })?);
            }
            "finding" => {
                iq.finding = Some(Code::parse(&v).ok_or_else(|| {
                    let all: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
                    bad(format!("`finding` must be one of {}", all.join(", ")))
                })?);
            }
            "selector" => {
                iq.labels = Some(Selector::parse(&v).map_err(|e| bad(format!("`selector`: {e}")))?);
            }
            "dormant_days" => iq.thresholds.dormant_days = days(&k, &v)?,
            "credential_unused_days" => iq.thresholds.credential_unused_days = days(&k, &v)?,
            "credential_rotation_days" => iq.thresholds.credential_rotation_days = days(&k, &v)?,
            "after" => {
                after = Some(AgentId::parse(&v).map_err(|_| bad("`after` is not an agent id"))?);
            }
            _ => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_ROWS).contains(l))
                    .ok_or_else(|| bad(format!("`limit` must be 1..={MAX_ROWS}")))?;
            }
        }
    }
    let inv = service::inventory(&state, iq).await?;
    let start = after.map_or(0, |a| inv.rows.partition_point(|r| r.agent.id <= a));
    let end = (start + limit).min(inv.rows.len());
    let next = (end < inv.rows.len())
        .then(|| inv.rows.get(end - 1).map(|r| r.agent.id.to_string()))
        .flatten();
    let now = inv.generated_at;
    let rows = inv
        .rows
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|r| row(r, now))
        .collect();
    Ok(Json(api::Inventory {
        generated_at: inv.generated_at.to_string(),
        policy_version: inv.policy_version,
        thresholds: api::InventoryThresholds {
            dormant_days: inv.thresholds.dormant_days,
            credential_unused_days: inv.thresholds.credential_unused_days,
            credential_rotation_days: inv.thresholds.credential_rotation_days,
        },
        agents: inv.agents,
        findings: inv
            .findings
            .iter()
            .map(|(c, n)| (c.as_str().to_owned(), *n))
            .collect(),
        rows,
        next,
    }))
}

/// One row in the API's words.
fn row(r: &Row, now: mandate_core::time::Timestamp) -> api::InventoryRow {
    let a = &r.agent;
    api::InventoryRow {
        id: a.id.to_string(),
        name: a.name.as_str().to_owned(),
        owner: a.owner.as_str().to_owned(),
        purpose: a.purpose.as_str().to_owned(),
        labels: a
            .labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        status: a.status,
        created_at: a.created_at.to_string(),
        boundary_grants: u32::try_from(a.boundary.grants.len()).unwrap_or(u32::MAX),
        credentials: r
            .credentials
            .iter()
            .map(|c| api::InventoryCredential {
                id: c.credential.id.to_string(),
                kind: c.credential.kind,
                created_at: c.credential.created_at.to_string(),
                age_days: now.secs().saturating_sub(c.credential.created_at.secs()) / 86_400,
                usable: c.usable,
                last_used_at: c.last_used_at.map(|t| t.to_string()),
            })
            .collect(),
        live_mandates: r.live_mandates,
        last_activity: r.last_activity.map(|t| t.to_string()),
        open_anomalies: r.open_anomalies,
        risk: r.risk,
        risk_level: r.risk_level.map(|s| s.as_str().to_owned()),
        owner_check: match r.owner_check {
            OwnerCheck::Unchecked => "unchecked",
            OwnerCheck::Active => "active",
            OwnerCheck::Unknown => "unknown",
        }
        .to_owned(),
        findings: r
            .findings
            .iter()
            .map(|f| api::InventoryFinding {
                code: f.code.as_str().to_owned(),
                subject: f.subject.clone(),
                detail: f.detail.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use mandate_govern::discover::Source;
    use mandate_govern::findings::Code;

    /// The values `docs/openapi.json` lists for the named schema `name`.
    fn documented(name: &str) -> BTreeSet<String> {
        let doc = serde_json::to_value(mandate_api::openapi::document()).unwrap();
        doc["components"]["schemas"][name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("`{name}` lists no values"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    /// The document's closed sets of the inventory's `finding` and a discovery run's
    /// `source` are mandate-govern's, which mandate-api cannot see (its own test checks
    /// the enums of mandate-core).
    #[test]
    fn the_documented_codes_and_sources_are_the_governors() {
        let codes: BTreeSet<String> = Code::ALL.iter().map(|c| c.as_str().to_owned()).collect();
        assert_eq!(documented("FindingCode"), codes);
        let sources: BTreeSet<String> = Source::ALL.iter().map(|s| s.as_str().to_owned()).collect();
        assert_eq!(documented("DiscoverySource"), sources);
    }
}
