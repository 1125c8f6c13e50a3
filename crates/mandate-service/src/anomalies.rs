//! The anomalies' use cases, whatever edge asks: list and show what the detector
//! raised, a human's answer to it — acknowledge (it was real and is handled: the hold is
//! lifted, what it found is accepted) or dismiss (a false positive: the hold is lifted
//! and the baseline learns that this is normal) — and what an agent's baseline has
//! learned. A refusal is an [`AnomalyError`].

use std::sync::Arc;

use mandate_core::id::{AgentId, AnomalyId};
use mandate_detect::{Baseline, Kind};
use mandate_store::prelude::*;
use mandate_store::{AnomalyFilter, AnomalyRow, StoreError};
use serde_json::{Value, json};

use crate::actor::Actor;
use crate::error::ServiceError;
use crate::{Node, Recorded};

/// Why an anomaly use case changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum AnomalyError {
    /// No such anomaly.
    #[error("unknown anomaly `{0}`")]
    Unknown(AnomalyId),
    /// No such agent.
    #[error("unknown agent `{0}`")]
    UnknownAgent(AgentId),
    /// The anomaly was already answered (the store's message says how).
    #[error("{0}")]
    NotOpen(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node failed (the change unrecorded, a task lost).
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// One page of anomalies.
#[derive(Debug)]
pub struct AnomalyPage {
    /// The anomalies, newest first.
    pub items: Vec<AnomalyRow>,
    /// Where the next page starts, when this one is full (the last id shown).
    pub next_cursor: Option<AnomalyId>,
}

/// The anomalies matching `filter` before `cursor`, newest first, at most `limit`.
pub async fn list(
    node: &Arc<Node>,
    filter: AnomalyFilter,
    cursor: Option<AnomalyId>,
    limit: u32,
) -> Result<AnomalyPage, AnomalyError> {
    let items = node
        .blocking(move |s| s.store().list_anomalies(&filter, cursor.as_ref(), limit))
        .await
        .map_err(ServiceError::from)??;
    let next_cursor = (items.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| items.last().map(|a| a.id.clone()))
        .flatten();
    Ok(AnomalyPage { items, next_cursor })
}

/// Anomaly `id`.
pub async fn show(node: &Arc<Node>, id: AnomalyId) -> Result<AnomalyRow, AnomalyError> {
    let found = {
        let id = id.clone();
        node.blocking(move |s| s.store().get_anomaly(&id))
            .await
            .map_err(ServiceError::from)??
    };
    found.ok_or(AnomalyError::Unknown(id))
}

/// A human's answer to an open anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// It was real and is handled: the hold is lifted, what it found is accepted.
    Acknowledge,
    /// A false positive: the hold is lifted and the baseline learns it is normal.
    Dismiss,
}

impl Answer {
    /// The anomaly's status after it.
    pub fn status(self) -> &'static str {
        match self {
            Self::Acknowledge => "acknowledged",
            Self::Dismiss => "dismissed",
        }
    }

    /// Its audit event kind.
    fn event(self) -> &'static str {
        match self {
            Self::Acknowledge => "anomaly.acknowledged",
            Self::Dismiss => "anomaly.dismissed",
        }
    }
}

/// Answers open anomaly `id` as `actor`, with `comment` (`anomaly.acknowledged` or
/// `anomaly.dismissed`). One already answered is [`AnomalyError::NotOpen`].
pub async fn resolve(
    node: &Arc<Node>,
    actor: &Actor,
    id: AnomalyId,
    answer: Answer,
    comment: Option<String>,
) -> Result<AnomalyRow, AnomalyError> {
    let by = actor.name();
    let dismiss = answer == Answer::Dismiss;
    node.perform(answer.event(), actor, move |s| {
        let now = s.clock.now();
        let a = s
            .store()
            .resolve_anomaly(&id, answer.status(), &by, comment.as_deref(), now)
            .map_err(|e| match e {
                StoreError::Conflict(m) => AnomalyError::NotOpen(m),
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
    .await
}

/// What the detector learned of an agent.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentBaseline {
    /// Detection is off on this node.
    Disabled,
    /// Detection is on.
    Enabled {
        /// The baseline's summary (an empty baseline's, if it has seen nothing yet).
        summary: Value,
        /// Whether the detector holds the agent suspended.
        suspended_by_detector: bool,
    },
}

/// What the detector learned of agent `id` (which must exist in the store).
pub async fn baseline(node: &Arc<Node>, id: AgentId) -> Result<AgentBaseline, AnomalyError> {
    // The store, not the snapshot: an admin read that works while decisions are held.
    let known = {
        let id = id.clone();
        node.blocking(move |s| s.store().get_agent(&id))
            .await
            .map_err(ServiceError::from)??
    };
    if known.is_none() {
        return Err(AnomalyError::UnknownAgent(id));
    }
    let Some(d) = node.detector() else {
        return Ok(AgentBaseline::Disabled);
    };
    let now = node.clock.now().secs();
    let b = d.baseline(id.as_str()).unwrap_or_else(Baseline::new);
    Ok(AgentBaseline::Enabled {
        summary: b.summary(d.config(), now),
        suspended_by_detector: d.is_suspended(id.as_str()),
    })
}
