//! Policy sets through the admin API: add a version (validated against the schema; an
//! invalid one is refused with line, column and Cedar's message, and nothing changes),
//! validate without saving, list, show, activate, roll back. Versions are immutable.
//! Each handler parses the request, calls one use case of `mandate_service::policies`
//! and renders its answer; [`PolicyError`] becomes the API's answer here. A replay
//! (`POST /v1/policies/{version}/replay`) calls `mandate_service::replay`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mandate_api as api;
use mandate_core::agent::Boundary;
use mandate_core::id::AgentId;
use mandate_core::time::Timestamp;
use mandate_service::policies::{self as service, PolicyError, PolicySource, Target};
use mandate_service::replay::{self, ReplayRequest};
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
            PolicyError::ReplayRunning => ApiError::new(
                StatusCode::CONFLICT,
                "replay_running",
                "a policy replay is already running on this node; retry when it ends",
            ),
            PolicyError::Abandoned => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "replay_abandoned",
                "the replay stopped because its caller hung up",
            ),
            PolicyError::Store(e) => e.into(),
            PolicyError::Service(e) => e.into(),
        }
    }
}

/// The policy set to compile; an absent note is an empty one.
fn source(req: api::NewPolicies) -> PolicySource {
    PolicySource {
        policies: req.policies,
        schema_fragments: req.schema_fragments,
        note: req.note.unwrap_or_default(),
        rego: mandate_policy::RegoSource {
            modules: req
                .rego_modules
                .into_iter()
                .map(|m| mandate_policy::RegoModule {
                    id: m.id,
                    source: m.source,
                    rego_v0: m.rego_v0,
                })
                .collect(),
            data: req.data.unwrap_or_default(),
        },
    }
}

/// A version in the listing.
fn summary(v: &PolicyVersionRow, active: Option<i64>) -> api::PolicyVersionSummary {
    api::PolicyVersionSummary {
        version: v.version,
        active: Some(v.version) == active,
        note: v.note.clone(),
        created_at: v.created_at.to_string(),
        created_by: v.created_by.clone(),
    }
}

/// `POST /v1/policies/validate`: compile only.
pub(crate) async fn validate(
    _admin: Admin,
    ApiJson(req): ApiJson<api::NewPolicies>,
) -> Result<Json<api::PolicyValidated>, ApiError> {
    let policy_ids = service::validate(source(req)).await?;
    Ok(Json(api::PolicyValidated {
        valid: true,
        policy_ids,
    }))
}

/// `POST /v1/policies`: a new immutable version (not yet active).
pub(crate) async fn add(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiJson(req): ApiJson<api::NewPolicies>,
) -> Result<Response, ApiError> {
    admin.require_write()?;
    let added = service::add(&state, &admin.actor(), source(req)).await?;
    let out = api::PolicyAdded {
        version: added.version,
        active: false,
        policy_ids: added.policy_ids,
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `GET /v1/policies`.
pub(crate) async fn list(
    State(state): State<Arc<Node>>,
    _admin: Admin,
) -> Result<Json<api::PolicyList>, ApiError> {
    let all = service::list(&state).await?;
    Ok(Json(api::PolicyList {
        active_version: all.active,
        items: all
            .versions
            .iter()
            .map(|v| summary(v, all.active))
            .collect(),
    }))
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
) -> Result<Json<api::PolicyVersion>, ApiError> {
    let v = version_number(&v)?;
    let (row, active) = service::show(&state, v).await?;
    let rego = service::rego_of(&row).map_err(|e| {
        ApiError::from(PolicyError::NoLongerCompiles {
            version: row.version,
            why: e
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        })
    })?;
    Ok(Json(api::PolicyVersion {
        active: Some(row.version) == active,
        version: row.version,
        note: row.note,
        created_at: row.created_at.to_string(),
        created_by: row.created_by,
        policies: row.policies,
        schema_fragments: row.fragments,
        rego_modules: rego
            .modules
            .into_iter()
            .map(|m| api::RegoModuleSource {
                id: m.id,
                source: m.source,
                rego_v0: m.rego_v0,
            })
            .collect(),
        data: rego.data,
    }))
}

async fn activate_version(
    state: Arc<Node>,
    admin: Admin,
    target: Target,
) -> Result<Json<api::PolicyActivated>, ApiError> {
    admin.require_write()?;
    let a = service::activate(&state, &admin.actor(), target).await?;
    Ok(Json(api::PolicyActivated {
        active_version: a.version,
        previous_version: a.previous,
    }))
}

/// `POST /v1/policies/{version}/activate`.
pub(crate) async fn activate(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(v): ApiPath<String>,
) -> Result<Json<api::PolicyActivated>, ApiError> {
    let v = version_number(&v)?;
    activate_version(state, admin, Target::Version(v)).await
}

/// `POST /v1/policies/rollback`: activate the version that was active before this one.
pub(crate) async fn rollback(
    State(state): State<Arc<Node>>,
    admin: Admin,
) -> Result<Json<api::PolicyActivated>, ApiError> {
    activate_version(state, admin, Target::Previous).await
}

/// The body of a replay, read here rather than as `mandate_api::PolicyReplayRequest`:
/// each boundary edit is core's validated `Boundary` and each key a checked `AgentId`,
/// so a bad one is refused while the body is parsed, with serde's message and position.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayBody {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default, deserialize_with = "mandate_core::integer::optional")]
    limit: Option<u32>,
    #[serde(default)]
    boundaries: BTreeMap<AgentId, Boundary>,
    #[serde(default)]
    all_nodes: bool,
}

fn time_field(name: &'static str, v: Option<&String>) -> Result<Option<Timestamp>, ApiError> {
    v.map(|t| {
        Timestamp::parse(t).map_err(|_| {
            ApiError::bad_request(
                "invalid_field",
                format!("`{name}` must be an RFC 3339 time"),
            )
        })
    })
    .transpose()
}

/// `POST /v1/policies/{version}/replay`: what the version would change on the recorded
/// decisions of a window. A read: nothing changes, nothing is recorded.
pub(crate) async fn replay(
    State(state): State<Arc<Node>>,
    _admin: Admin,
    ApiPath(v): ApiPath<String>,
    ApiJson(req): ApiJson<ReplayBody>,
) -> Result<Json<api::PolicyReplayReport>, ApiError> {
    let version = version_number(&v)?;
    let since = time_field("since", req.since.as_ref())?;
    let until = time_field("until", req.until.as_ref())?;
    let r = replay::replay(
        &state,
        ReplayRequest {
            version,
            since,
            until,
            limit: req.limit.unwrap_or(replay::DEFAULT_LIMIT),
            boundaries: req.boundaries,
            all_nodes: req.all_nodes,
        },
    )
    .await?;
    Ok(Json(report(r)))
}

/// A replay's report in the API's words.
fn report(r: replay::ReplayReport) -> api::PolicyReplayReport {
    let c = r.counts;
    api::PolicyReplayReport {
        version: r.version,
        active_version: r.active_version,
        since: r.since.map(|t| t.to_string()),
        until: r.until.map(|t| t.to_string()),
        truncated: r.truncated,
        counts: api::PolicyReplayCounts {
            decisions: c.decisions,
            same: c.same,
            allow_to_deny: c.allow_to_deny,
            deny_to_allow: c.deny_to_allow,
            other_changes: c.other_changes,
            not_replayed: c.not_replayed,
            skipped: c.skipped,
            errors: c.errors,
            changed_with_redacted_context: c.changed_with_redacted_context,
        },
        changes: r
            .changes
            .into_iter()
            .map(|g| api::PolicyReplayChange {
                agent: g.agent,
                action: g.action,
                from: g.from.code().to_owned(),
                to: g.to.code().to_owned(),
                reason: g.reason.to_owned(),
                policies: g.policies,
                count: g.count,
                example_events: g.examples,
            })
            .collect(),
        groups_truncated: r.groups_truncated,
        skipped: r
            .skipped
            .into_iter()
            .map(|g| api::PolicyReplaySkip {
                reason: g.reason.code().to_owned(),
                count: g.count,
                example_events: g.examples,
            })
            .collect(),
        nodes: r.nodes,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::extract::parse_json;

    /// Regression (issue 25): a replay's `limit` written `5.0` (an integer to RFC 8259
    /// and JSON Schema) was refused with "invalid type: floating point `5.0`".
    #[test]
    fn a_replay_limit_written_with_a_fraction_is_read() {
        let b: ReplayBody = serde_json::from_str(r#"{"limit": 5.0}"#).unwrap();
        assert_eq!(b.limit, Some(5));
        let b: ReplayBody = serde_json::from_str("{}").unwrap();
        assert_eq!(b.limit, None);
        assert!(serde_json::from_str::<ReplayBody>(r#"{"limit": 5.5}"#).is_err());
    }

    /// The body as the handler read it before it read `mandate_api::NewPolicies`, with
    /// what issue 22 added: `policies` may be absent (a version of Rego only), and the
    /// Rego members are known fields.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(
        dead_code,
        reason = "the Rego members are read only to be known fields"
    )]
    struct Before {
        #[serde(default)]
        policies: String,
        #[serde(default)]
        schema_fragments: Vec<String>,
        #[serde(default)]
        note: String,
        #[serde(default)]
        rego_modules: Vec<serde_json::Value>,
        #[serde(default)]
        data: Option<serde_json::Map<String, serde_json::Value>>,
    }

    /// The wire type reads every body as the handler's own struct did: the same
    /// source, or the same code and message.
    #[test]
    fn new_policies_read_as_before() {
        let bodies = [
            r#"{"policies": "permit (principal, action, resource);"}"#,
            r#"{"policies": "p", "schema_fragments": ["a", "b"], "note": "n"}"#,
            r#"{"policies": "p", "note": ""}"#,
            r#"{"policies": "p", "note": null}"#,
            r#"{"policies": "p", "note": 5}"#,
            r#"{"policies": "p", "schema_fragments": null}"#,
            r#"{"policies": null}"#,
            r#"{"note": "n"}"#,
            r#"{"policies": "p", "notes": "n"}"#,
            r#"{"policies": "p", "note": "a", "note": "b"}"#,
            r#"["p"]"#,
            r#"{"policies": "p""#,
        ];
        for body in bodies {
            let before = parse_json::<Before>(body.as_bytes())
                .map(|b| (b.policies, b.schema_fragments, b.note));
            let now = parse_json::<api::NewPolicies>(body.as_bytes()).map(|r| {
                let s = source(r);
                (s.policies, s.schema_fragments, s.note)
            });
            match (before, now) {
                (Ok(b), Ok(n)) => assert_eq!(b, n, "{body}"),
                (Err(b), Err(n)) => {
                    assert_eq!((b.code(), b.detail()), (n.code(), n.detail()), "{body}");
                }
                (b, n) => panic!("{body}: before {:?}, now {:?}", b.err(), n.err()),
            }
        }
    }
}
