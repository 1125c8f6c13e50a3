//! The kill switch's incident levers: `contain` an agent (suspend it, kill every token it
//! holds or handed on, end its mandates, seal the audit log and answer with an incident
//! bundle for forensics), and revoke one token by its `jti` when nobody holds the token
//! string.
//!
//! Containment is in force for every decision made after the call returns: the store
//! changes and the snapshot refresh happen before anything else, and a failure after
//! them (audit, seal, bundle) is reported without undoing them.

use mandate_store::prelude::*;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mandate_audit::bundle::{self, BundleEvent, CONTAINED_KIND, NewBundle};
use mandate_audit::checkpoint::SignedCheckpoint;
use mandate_audit::merkle;
use mandate_core::agent::{Agent, AgentStatus};
use mandate_core::id::{AdminTokenId, AgentId, IncidentId, TokenId};
use mandate_core::mandate::{Mandate, MandateStatus};
use mandate_core::time::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::Node;
use crate::act::Acts as _;
use crate::actor::Actor;
use crate::acts;
use crate::error::ApiError;
use crate::extract::{Admin, ApiPath, OptionalJson};
use mandate_service::Recorded;

/// How many of the agent's events a bundle holds when the request names no number.
const DEFAULT_EVENTS: u32 = 1000;
/// The most events a bundle may hold.
const MAX_EVENTS: u32 = 10_000;
/// The longest reason, in characters (as for a suspension).
const MAX_REASON_CHARS: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Contain {
    /// Why; stored as the agent's status reason and recorded.
    reason: Option<String>,
    /// How many of the agent's most recent events the bundle holds (1..=10000).
    events: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeToken {
    reason: Option<String>,
}

fn check_reason(reason: Option<&str>) -> Result<(), ApiError> {
    if reason
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS || r.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("reason must be at most {MAX_REASON_CHARS} printable characters"),
        ));
    }
    Ok(())
}

fn audit_unavailable(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        format!("the agent is contained, but {what}"),
    )
}

fn bundle_unavailable(cause: impl std::fmt::Display) -> ApiError {
    tracing::error!(%cause, "incident bundle not built");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "bundle_unavailable",
        "the agent is contained and the containment recorded, but the incident bundle could \
         not be built; see the server log",
    )
}

/// What one containment changed.
struct Contained {
    agent: Agent,
    previous: AgentStatus,
    cutoff: Timestamp,
    /// The mandates ended, after the change, with the status each had before.
    mandates: Vec<(Mandate, MandateStatus)>,
    /// What the bundle's `evidence` holds (see `mandate_audit::bundle`).
    evidence: Map<String, Value>,
}

/// The store side of `contain`, on a blocking thread: cut off the agent's tokens,
/// suspend it, end its live mandates, refresh the snapshot, gather the evidence.
fn contain_now(
    s: &Node,
    id: &AgentId,
    incident: &IncidentId,
    reason: Option<&str>,
    actor: &AdminTokenId,
) -> Result<Contained, ApiError> {
    let now = s.clock.now();
    let changed = change(s, id, incident, reason, actor, now);
    let (agent, previous, mandates) = changed?;

    let (active, _) = s.store().policy_activation_state()?;
    let policies = match active {
        None => Value::Null,
        Some(v) => match s.store().policy_version(v)? {
            None => Value::Null,
            Some(p) => json!({
                "version": p.version,
                "policies": p.policies,
                "schema_fragments": p.fragments,
                "note": p.note,
                "created_at": p.created_at,
                "created_by": p.created_by,
            }),
        },
    };
    let mut evidence = Map::new();
    evidence.insert("agent".into(), to_value(&agent)?);
    evidence.insert("previous_status".into(), json!(previous));
    evidence.insert("cutoff".into(), json!(now));
    evidence.insert(
        "mandates".into(),
        Value::Array(
            mandates
                .iter()
                .map(|(m, _)| to_value(m))
                .collect::<Result<_, _>>()?,
        ),
    );
    evidence.insert("policies".into(), policies);
    evidence.insert("reason".into(), json!(reason));
    Ok(Contained {
        agent,
        previous,
        cutoff: now,
        mandates,
        evidence,
    })
}

/// The agent after the change, its status before, and the mandates ended (after, with
/// their status before).
type Changed = (Agent, AgentStatus, Vec<(Mandate, MandateStatus)>);

/// The writes of `contain`. Every live mandate is tried even if one fails; the first
/// failure is returned after the rest.
fn change(
    s: &Node,
    id: &AgentId,
    incident: &IncidentId,
    reason: Option<&str>,
    actor: &AdminTokenId,
    now: Timestamp,
) -> Result<Changed, ApiError> {
    let reason = reason.map_or_else(|| format!("contained ({incident})"), str::to_owned);
    let (agent, previous) = acts::contain(&s.store(), id, reason, now)?;
    let mut mandates = Vec::new();
    let mut failed = None;
    for m in s.store().mandates_of_agent(id)? {
        let changed = acts::revoke_mandate(
            &s.store(),
            &m.id,
            &Actor::Admin(actor.clone()),
            now,
            |_, _| Ok(()),
        );
        match changed {
            Ok(ended) => mandates.push(ended),
            // Lapsed or ended by someone else first.
            Err(acts::ActError::NotLive { .. } | acts::ActError::UnknownMandate(_)) => {}
            // The others are still ended, and this one's tokens are dead by the cutoff.
            Err(e) => {
                tracing::error!(error = ?e, mandate = %m.id, "contained agent's mandate not revoked");
                failed = failed.or(Some(e));
            }
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok((agent, previous, mandates)),
    }
}

fn to_value(v: &impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

/// The seq of an event id `{node}:{seq}`.
fn seq_of(event_id: &str) -> Option<u64> {
    event_id.rsplit_once(':')?.1.parse().ok()
}

/// Builds the bundle from the sealed log, on a blocking thread, and checks it verifies.
fn build_bundle(
    s: &Node,
    incident: &IncidentId,
    agent: &AgentId,
    evidence: &Map<String, Value>,
    contained_seq: u64,
    sealed: u64,
    events: u32,
) -> Result<Vec<u8>, ApiError> {
    if contained_seq >= sealed {
        return Err(bundle_unavailable(format!(
            "event {contained_seq} is not in the sealed tree of {sealed}"
        )));
    }
    // The agent's last `events` events up to and including the containment, so the
    // `incident.contained` event is always among them.
    let rows = s
        .store()
        .recent_audit_of_agent(agent.as_str(), contained_seq + 1, events)
        .map_err(bundle_unavailable)?;
    let checkpoint = s
        .store()
        .checkpoint_of_size(sealed)
        .map_err(bundle_unavailable)?
        .ok_or_else(|| bundle_unavailable(format!("no stored checkpoint of size {sealed}")))?;
    let leaves = s.store().audit_leaves(sealed).map_err(bundle_unavailable)?;
    let seqs: Vec<u64> = rows.iter().map(|(seq, _)| *seq).collect();
    let proofs = merkle::inclusion_proofs(&leaves, &seqs).map_err(bundle_unavailable)?;
    let events: Vec<BundleEvent> = rows
        .into_iter()
        .zip(proofs)
        .map(|((seq, body), proof)| BundleEvent { seq, body, proof })
        .collect();
    let bytes = bundle::write_bundle(&NewBundle {
        incident,
        node: s.audit.node(),
        agent,
        evidence,
        checkpoint: &SignedCheckpoint {
            text: checkpoint.text,
        },
        events: &events,
    })
    .map_err(bundle_unavailable)?;
    // What is handed out for forensics must be what `mandate audit verify` accepts.
    bundle::verify_bundle(&bytes, &s.audit.public_key()).map_err(bundle_unavailable)?;
    Ok(bytes)
}

/// `POST /v1/agents/{id}/contain`: suspends the agent and kills every token issued to it
/// so far (and so every token delegated from one of them), revokes its pending and
/// active mandates, records `incident.contained`, seals the audit log, and answers with
/// the incident bundle (`mandate_audit::bundle`). An agent already suspended gets the
/// cutoff; a decommissioned one gets a bundle.
pub(crate) async fn contain(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    OptionalJson(body): OptionalJson<Contain>,
) -> Result<Response, ApiError> {
    admin.require_write()?;
    let id = AgentId::parse(&id)
        .map_err(|_| ApiError::not_found(format!("unknown agent `{}`", id.escape_debug())))?;
    let (reason, events) = body.map_or((None, None), |b| (b.reason, b.events));
    check_reason(reason.as_deref())?;
    let events = events.unwrap_or(DEFAULT_EVENTS);
    if !(1..=MAX_EVENTS).contains(&events) {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("events must be 1..={MAX_EVENTS}"),
        ));
    }
    let incident = IncidentId::generate(state.clock.as_ref(), state.random.as_ref())
        .map_err(ApiError::internal)?;
    let actor = admin.0.id.clone();
    // INVARIANT (act order): the containment's change and its records (the mandates it
    // ended, then `incident.contained`) are under the acts' order lock, so no other
    // act's record lands between them out of order (a decommission racing a containment
    // was recorded on the wrong side of it without it).
    let (c, ids) = {
        let (agent_id, incident_id) = (id.clone(), incident.clone());
        let (id, incident, reason, actor) =
            (id.clone(), incident.clone(), reason.clone(), actor.clone());
        state
            .act_batch("containment", move |s| {
                let c = contain_now(s, &id, &incident, reason.as_deref(), &actor)?;
                if !c.mandates.is_empty() {
                    s.mandates_changed();
                }
                // On the record: each ended mandate, then the containment with the
                // evidence's hash.
                let by = Actor::Admin(actor.clone()).name();
                let reason_text = reason.as_deref().unwrap_or("contained");
                let mut drafts = Vec::with_capacity(c.mandates.len() + 1);
                for (m, was) in &c.mandates {
                    let mut e = s.event("mandate.revoked");
                    e.actor = Some(by.clone());
                    e.agent = Some(m.agent.to_string());
                    e.user = m.user.as_ref().map(|u| u.sub.clone());
                    e.details = Some(json!({"mandate": m.id, "status": m.status,
                        "previous_status": was, "intent": m.intent, "reason": reason_text,
                        "incident": incident}));
                    drafts.push(e);
                }
                let evidence_sha256 = bundle::evidence_sha256(&c.evidence);
                let mut e = s.event(CONTAINED_KIND);
                e.actor = Some(actor.to_string());
                e.agent = Some(id.to_string());
                e.details = Some(json!({
                    "incident": incident,
                    "reason": reason,
                    "previous_status": c.previous,
                    "status": c.agent.status,
                    "cutoff": c.cutoff,
                    "mandates_revoked": c.mandates.iter().map(|(m, _)| m.id.as_str()).collect::<Vec<_>>(),
                    "evidence_sha256": evidence_sha256,
                    "events": events,
                }));
                drafts.push(e);
                Ok::<_, ApiError>((c, drafts))
            })
            .await
            .map_err(|e| {
                if e.code() == "audit_unavailable" {
                    tracing::error!(agent = %agent_id, incident = %incident_id, "containment not recorded");
                    audit_unavailable("the containment could not be recorded in the audit log")
                } else {
                    e
                }
            })?
    };
    tracing::warn!(by = %actor, agent = %id, %incident, previous = %c.previous,
        mandates = c.mandates.len(), "agent contained");
    let event_id = ids.last().cloned().unwrap_or_default();
    let contained_seq = seq_of(&event_id)
        .ok_or_else(|| bundle_unavailable(format!("unexpected event id `{event_id}`")))?;
    let sealed = state.audit.seal().await.map_err(|err| {
        tracing::error!(error = %err, %incident, "audit log not sealed for an incident");
        audit_unavailable("the audit log could not be sealed for its bundle")
    })?;
    let bytes = {
        let (incident, id) = (incident.clone(), id.clone());
        crate::blocking(&state, move |s| {
            build_bundle(
                s,
                &incident,
                &id,
                &c.evidence,
                contained_seq,
                sealed,
                events,
            )
        })
        .await??
    };
    tracing::info!(%incident, agent = %id, bytes = bytes.len(), sealed, "incident bundle built");
    let mut res = (StatusCode::OK, bytes).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// `POST /v1/tokens/{jti}/revoke`: revokes one access token by its `jti` (the audit
/// log's `details.token_id`), for when the token string is not at hand. An unknown
/// `jti` is recorded all the same: the token may exist on another node's record.
pub(crate) async fn revoke_token(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(jti): ApiPath<String>,
    OptionalJson(body): OptionalJson<RevokeToken>,
) -> Result<Json<Value>, ApiError> {
    admin.require_write()?;
    let jti = TokenId::parse(&jti).map_err(|_| {
        ApiError::bad_request(
            "invalid_field",
            format!(
                "`{}` is not a token id (`{}` and 26 characters)",
                jti.chars().take(64).collect::<String>().escape_debug(),
                TokenId::PREFIX
            ),
        )
    })?;
    let reason = body.and_then(|b| b.reason);
    check_reason(reason.as_deref())?;
    let max = i64::from(state.config.max_token_lifetime_secs);
    let until = {
        let jti = jti.clone();
        state
            .act("token.revoked", &admin.actor(), move |s| {
                let now = s.clock.now();
                // No token of this server lives longer, so the entry can go after that.
                let until = now.plus_secs(max);
                s.store().revoke_token(jti.as_str(), until, now)?;
                let details = json!({"token_id": jti, "reason": reason, "by": "jti"});
                Ok((until, Recorded::details(details)))
            })
            .await?
    };
    tracing::info!(by = %admin.0.id, %jti, "access token revoked by id");
    Ok(Json(json!({"jti": jti, "revoked": true, "until": until})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_name_their_seq() {
        assert_eq!(seq_of("node-1:42"), Some(42));
        assert_eq!(seq_of("node-1:"), None);
        assert_eq!(seq_of("42"), None);
    }

    #[test]
    fn reasons_are_short_and_printable() {
        assert!(check_reason(None).is_ok());
        assert!(check_reason(Some(&"é".repeat(500))).is_ok());
        assert!(check_reason(Some(&"x".repeat(501))).is_err());
        assert!(check_reason(Some("a\nb")).is_err());
    }
}
