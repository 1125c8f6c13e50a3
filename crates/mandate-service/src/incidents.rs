//! The kill switch's incident levers as use cases: contain an agent (suspend it, kill
//! every token it holds or handed on, end its mandates, record it, seal the audit log and
//! build the incident bundle for forensics), and revoke one token by its `jti`.
//!
//! Containment is in force for every decision made after its change commits: the store
//! changes and the snapshot refresh happen before anything else, and a failure after
//! them (audit, seal, bundle) is reported without undoing them.

use mandate_store::prelude::*;
use std::sync::Arc;

use mandate_audit::bundle::{self, BundleEvent, CONTAINED_KIND, NewBundle};
use mandate_audit::checkpoint::SignedCheckpoint;
use mandate_audit::merkle;
use mandate_core::agent::{Agent, AgentStatus};
use mandate_core::id::{AdminTokenId, AgentId, IncidentId, TokenId};
use mandate_core::mandate::{Mandate, MandateStatus};
use mandate_core::time::Timestamp;
use serde_json::{Map, Value, json};

use crate::Node;
use crate::actor::Actor;
use crate::acts;
use crate::error::ServiceError;
use crate::write_path::Recorded;

/// Why a containment did not answer with a bundle. Every variant after
/// [`IncidentError::Service`] reports a containment that stands.
#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    /// No incident id could be made (the OS random source failed); nothing changed.
    #[error("incident id: {0}")]
    Id(String),
    /// The containment was refused or failed (unknown agent, the store), or, when it is
    /// [`ServiceError::AuditUnavailable`], made but not recorded.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The evidence did not encode.
    #[error("evidence encoding: {0}")]
    Encode(String),
    /// Contained and recorded, but the audit log could not be sealed for the bundle.
    #[error("the audit log could not be sealed for its bundle")]
    NotSealed,
    /// Contained and recorded, but the bundle could not be built (the cause).
    #[error("incident bundle not built: {0}")]
    Bundle(String),
}

impl IncidentError {
    fn bundle(cause: impl std::fmt::Display) -> Self {
        Self::Bundle(cause.to_string())
    }
}

/// What [`Node::contain`] did.
#[derive(Debug)]
pub struct Containment {
    /// The incident's id.
    pub incident: IncidentId,
    /// The agent's status before.
    pub previous: AgentStatus,
    /// How many mandates it ended.
    pub mandates_revoked: usize,
    /// The incident bundle (`mandate_audit::bundle`), verified.
    pub bundle: Vec<u8>,
}

impl Node {
    /// `contain`: cuts off every token issued to agent `id` so far (and so every token
    /// delegated from one), suspends it, ends its pending and active mandates, records
    /// each ended mandate and then `incident.contained` by admin `actor`, seals the audit
    /// log, and returns the incident bundle holding the agent's last `events` events
    /// (1..=10000, checked by the caller) and the evidence. An agent already suspended
    /// gets the cutoff; a decommissioned one gets a bundle.
    pub async fn contain(
        self: &Arc<Self>,
        actor: &AdminTokenId,
        id: &AgentId,
        reason: Option<String>,
        events: u32,
    ) -> Result<Containment, IncidentError> {
        let incident = IncidentId::generate(self.clock.as_ref(), self.random.as_ref())
            .map_err(|e| IncidentError::Id(e.to_string()))?;
        // INVARIANT (act order): the containment's change and its records (the mandates
        // it ended, then `incident.contained`) are one batch under the acts' order lock,
        // so no other act's record lands between them out of order (a decommission
        // racing a containment was recorded on the wrong side of it without it).
        let (c, ids) = {
            let (id, incident, reason, actor) =
                (id.clone(), incident.clone(), reason.clone(), actor.clone());
            self.act_batch("containment", move |s| {
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
                Ok::<_, IncidentError>((c, drafts))
            })
            .await?
        };
        tracing::warn!(by = %actor, agent = %id, %incident, previous = %c.previous,
            mandates = c.mandates.len(), "agent contained");
        let event_id = ids.last().cloned().unwrap_or_default();
        let contained_seq = seq_of(&event_id)
            .ok_or_else(|| IncidentError::bundle(format!("unexpected event id `{event_id}`")))?;
        let sealed = self.audit.seal().await.map_err(|err| {
            tracing::error!(error = %err, %incident, "audit log not sealed for an incident");
            IncidentError::NotSealed
        })?;
        let (previous, mandates_revoked) = (c.previous, c.mandates.len());
        let bytes = {
            let (incident, id) = (incident.clone(), id.clone());
            self.blocking(move |s| {
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
            .await
            .map_err(ServiceError::from)??
        };
        tracing::info!(%incident, agent = %id, bytes = bytes.len(), sealed, "incident bundle built");
        Ok(Containment {
            incident,
            previous,
            mandates_revoked,
            bundle: bytes,
        })
    }

    /// Revokes one access token by its `jti` (the audit log's `details.token_id`) until
    /// no token of this server issued now could still live, and records `token.revoked`
    /// by `actor`. An unknown `jti` is recorded all the same: the token may exist on
    /// another node's record. Returns until when the revocation is kept.
    pub async fn revoke_token_id(
        self: &Arc<Self>,
        actor: &Actor,
        jti: TokenId,
        reason: Option<String>,
    ) -> Result<Timestamp, ServiceError> {
        let max = i64::from(self.config.max_token_lifetime_secs);
        self.perform("token.revoked", actor, move |s| {
            let now = s.clock.now();
            // No token of this server lives longer, so the entry can go after that.
            let until = now.plus_secs(max);
            s.store().revoke_token(jti.as_str(), until, now)?;
            let details = json!({"token_id": jti, "reason": reason, "by": "jti"});
            Ok::<_, ServiceError>((until, Recorded::details(details)))
        })
        .await
    }
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
) -> Result<Contained, IncidentError> {
    let now = s.clock.now();
    let changed = change(s, id, incident, reason, actor, now);
    let (agent, previous, mandates) = changed?;

    let (active, _) = s
        .store()
        .policy_activation_state()
        .map_err(ServiceError::from)?;
    let policies = match active {
        None => Value::Null,
        Some(v) => match s.store().policy_version(v).map_err(ServiceError::from)? {
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
) -> Result<Changed, IncidentError> {
    let reason = reason.map_or_else(|| format!("contained ({incident})"), str::to_owned);
    let (agent, previous) =
        acts::contain(&s.store(), id, reason, now).map_err(ServiceError::from)?;
    let mut mandates = Vec::new();
    let mut failed = None;
    for m in s
        .store()
        .mandates_of_agent(id)
        .map_err(ServiceError::from)?
    {
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
        Some(e) => Err(ServiceError::from(e).into()),
        None => Ok((agent, previous, mandates)),
    }
}

fn to_value(v: &impl serde::Serialize) -> Result<Value, IncidentError> {
    serde_json::to_value(v).map_err(|e| IncidentError::Encode(e.to_string()))
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
) -> Result<Vec<u8>, IncidentError> {
    if contained_seq >= sealed {
        return Err(IncidentError::bundle(format!(
            "event {contained_seq} is not in the sealed tree of {sealed}"
        )));
    }
    // The agent's last `events` events up to and including the containment, so the
    // `incident.contained` event is always among them.
    let rows = s
        .store()
        .recent_audit_of_agent(agent.as_str(), contained_seq + 1, events)
        .map_err(IncidentError::bundle)?;
    let checkpoint = s
        .store()
        .checkpoint_of_size(sealed)
        .map_err(IncidentError::bundle)?
        .ok_or_else(|| IncidentError::bundle(format!("no stored checkpoint of size {sealed}")))?;
    let leaves = s
        .store()
        .audit_leaves(sealed)
        .map_err(IncidentError::bundle)?;
    let seqs: Vec<u64> = rows.iter().map(|(seq, _)| *seq).collect();
    let proofs = merkle::inclusion_proofs(&leaves, &seqs).map_err(IncidentError::bundle)?;
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
    .map_err(IncidentError::bundle)?;
    // What is handed out for forensics must be what `mandate audit verify` accepts.
    bundle::verify_bundle(&bytes, &s.audit.public_key()).map_err(IncidentError::bundle)?;
    Ok(bytes)
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
}
