//! The anomaly detector on the decision path. `mandate-detect` judges; this module
//! wires it in: it asks the detector for each request's risk, stores what it raised,
//! records it in the audit log with the decision, and carries out the responses
//! (suspension through the store, alerts through the signed webhook). Baselines are
//! written to the store every few seconds and put back at start.

use mandate_store::prelude::*;

use mandate_audit::event::AuditEvent;
use mandate_core::agent::{Agent, AgentStatus};
use mandate_core::id::{AgentId, AnomalyId};
use mandate_core::risk::Risk;
use mandate_core::time::Timestamp;
use mandate_detect::{Assessment, Baseline, Detector, Finding, Kind, Request, Response};
use mandate_store::AnomalyRow;
use serde_json::{Value, json};

use mandate_engine::decide::{DecisionRequest, Holder, Refusal};

use crate::Node;
use crate::actor::{Actor, System};
use crate::acts;
pub use crate::config::DetectSettings;

/// A finding about one agent, waiting to be stored and acted on.
#[derive(Debug)]
pub struct Raised {
    /// The agent it is about.
    pub agent: AgentId,
    /// What the detector found.
    pub finding: Finding,
}

/// What the detector made of one request: its findings and the outcome still to learn.
#[derive(Debug, Default)]
pub struct Observed {
    /// Asked, and did not refuse: the agent whose outcome to learn.
    assessed: Option<AgentId>,
    /// What it raised.
    pub raised: Vec<Raised>,
}

/// Builds the `assess` callback of [`mandate_engine::decide::decide_with`] for `req` at `now`;
/// what the detector found lands in `seen`.
pub fn assess<'a>(
    detector: Option<&'a Detector>,
    req: &'a DecisionRequest<'a>,
    now: Timestamp,
    seen: &'a mut Observed,
) -> impl FnOnce(&Holder<'_>) -> Result<Risk, Refusal> + 'a {
    move |h| {
        let Some(detector) = detector else {
            return Ok(Risk::default());
        };
        let chain: Vec<&str> = h.chain.iter().map(|a| a.id.as_str()).collect();
        let data_class = req.context.get("data_class").and_then(Value::as_str);
        let r = Request {
            action: req.action,
            resource_type: &req.resource.type_name,
            data_class,
            chain: &chain,
            at: now,
        };
        match detector.assess(h.agent.id.as_str(), &r) {
            Ok(Assessment {
                risk,
                findings,
                suspend,
            }) => {
                seen.raised
                    .extend(findings.into_iter().map(|finding| Raised {
                        agent: h.agent.id.clone(),
                        finding,
                    }));
                if suspend {
                    // INVARIANT (suspended): the request that tripped it is refused too.
                    return Err(Refusal::suspended_by_detector(&h.agent.id));
                }
                seen.assessed = Some(h.agent.id.clone());
                Ok(risk)
            }
            Err(s) => {
                let who = AgentId::parse(&s.0).unwrap_or_else(|_| h.agent.id.clone());
                Err(Refusal::suspended_by_detector(&who))
            }
        }
    }
}

/// Learns the decision's outcome (a deny counts; `approval_required` does not).
pub fn outcome(detector: Option<&Detector>, seen: &mut Observed, now: Timestamp, denied: bool) {
    let (Some(detector), Some(agent)) = (detector, seen.assessed.take()) else {
        return;
    };
    let out = detector.outcome(agent.as_str(), now, denied);
    seen.raised
        .extend(out.findings.into_iter().map(|finding| Raised {
            agent: agent.clone(),
            finding,
        }));
}

/// Why the detector's findings or baselines could not be stored. Not an HTTP error: the
/// decision path answers it as an internal error (and records no decision).
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// No anomaly id could be made (the OS random source failed).
    #[error("anomaly id: {0}")]
    Id(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] mandate_store::StoreError),
    /// A baseline did not encode.
    #[error("baseline encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Stores what was raised and carries out the responses: a suspension is written to the
/// store (and the snapshot refreshed) before this returns; alerts go out on their own
/// task. Returns the audit events to record with the decision: one `anomaly.detected`
/// per finding and one `agent.suspended` per suspension. Blocking; the caller runs it
/// under the act order and queues the events before releasing it
/// (`INVARIANT (act order)`, write_path.rs), so a suspension and an admin's act on the
/// same agent are logged in the order they were made.
pub fn respond(
    state: &Node,
    raised: Vec<Raised>,
    request_id: Option<&str>,
    trace_id: Option<mandate_core::trace::TraceId>,
) -> Result<Vec<AuditEvent>, DetectError> {
    if raised.is_empty() {
        return Ok(Vec::new());
    }
    let now = state.clock.now();
    let mut rows = Vec::with_capacity(raised.len());
    for r in &raised {
        let id = AnomalyId::generate(state.clock.as_ref(), state.random.as_ref())
            .map_err(|e| DetectError::Id(e.to_string()))?;
        rows.push(row(id, &r.agent, &r.finding, now));
    }
    let mut events = Vec::new();
    for (r, a) in raised.iter().zip(&rows) {
        let mut e = state.event("anomaly.detected");
        e.agent = Some(a.agent.to_string());
        e.request_id = request_id.map(str::to_owned);
        e.trace_id = trace_id;
        e.details = Some(json!({
            "anomaly": a.id,
            "kind": a.kind,
            "key": a.key,
            "score": a.score,
            "severity": a.severity,
            "response": a.response,
            "explanation": a.explanation,
            "details": a.details,
        }));
        events.push(e);
        if r.finding.response >= Response::Alert
            && let Some(hook) = &state.config.detect.alerts
        {
            state.send_webhook(hook, now.secs(), json!({"type": "anomaly", "anomaly": a}));
        }
    }
    let suspend: Vec<(AgentId, String, AnomalyId)> = raised
        .iter()
        .zip(&rows)
        .filter(|(r, _)| r.finding.response == Response::Suspend)
        .map(|(r, a)| (r.agent.clone(), r.finding.explanation.clone(), a.id.clone()))
        .collect();
    state.store().insert_anomalies(&rows)?;
    for r in &raised {
        crate::metrics::anomaly_raised(r.finding.severity.as_str());
    }
    let mut suspended: Vec<(Agent, AnomalyId)> = Vec::new();
    for (agent, why, anomaly) in suspend {
        let reason = format!("suspended by the anomaly detector: {why}");
        let reason: String = reason.chars().take(500).collect();
        let changed = acts::set_status(
            &state.store(),
            &agent,
            AgentStatus::Suspended,
            Some(reason),
            false,
            state.clock.now(),
        );
        match changed {
            Ok(a) => suspended.push((a, anomaly)),
            // Already suspended (or decommissioned): nothing of the detector's to do.
            Err(acts::ActError::InvalidTransition { .. }) => {}
            // The detector already refuses the agent in memory; the others are
            // still suspended, refreshed and recorded below.
            Err(e) => tracing::error!(
                agent = %agent,
                %anomaly,
                error = ?e,
                "the anomaly detector's suspension was not written"
            ),
        }
    }
    for (agent, anomaly) in suspended {
        tracing::warn!(agent = %agent.id, %anomaly, "agent suspended by the anomaly detector");
        let mut e = state.event("agent.suspended");
        e.actor = Some(Actor::System(System::Detector).name());
        e.agent = Some(agent.id.to_string());
        e.details = Some(json!({"reason": agent.status_reason, "anomaly": anomaly}));
        events.push(e);
    }
    Ok(events)
}

fn row(id: AnomalyId, agent: &AgentId, f: &Finding, now: Timestamp) -> AnomalyRow {
    let mut details = f.details.clone();
    if let Some(d) = details.as_object_mut() {
        d.insert("observed".into(), json!(f.observed));
    }
    AnomalyRow {
        id,
        agent: agent.clone(),
        at: now,
        kind: f.kind.as_str().to_owned(),
        key: f.key.clone(),
        score: f.score,
        severity: f.severity.as_str().to_owned(),
        response: f.response.as_str().to_owned(),
        explanation: f.explanation.clone(),
        details,
        status: "open".to_owned(),
        resolved_at: None,
        resolved_by: None,
        comment: None,
    }
}

/// Builds the detector from the settings and puts back the stored baselines and the
/// holds of open anomalies. `None` when detection is off.
pub fn open(
    settings: &DetectSettings,
    store: &dyn mandate_store::Store,
) -> Result<Option<Detector>, String> {
    if !settings.enabled {
        return Ok(None);
    }
    let d = Detector::new(settings.config.clone());
    for (agent, body) in store.baselines().map_err(|e| e.to_string())? {
        match serde_json::from_str::<Baseline>(&body) {
            Ok(b) => d.load(&agent, b),
            // A baseline from another version: learn again rather than refuse to start.
            Err(e) => tracing::warn!(%agent, error = %e, "stored baseline ignored"),
        }
    }
    for a in store.open_holds().map_err(|e| e.to_string())? {
        let Ok(kind) = a.kind.parse::<Kind>() else {
            continue;
        };
        let observed = a
            .details
            .get("observed")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        d.ensure_hold(
            a.agent.as_str(),
            &a.key,
            kind,
            a.score,
            observed,
            a.at.secs(),
        );
    }
    Ok(Some(d))
}

/// Writes the baselines that changed to the store. Blocking.
pub fn flush(state: &Node) -> Result<usize, DetectError> {
    let Some(d) = &state.detector else {
        return Ok(0);
    };
    let dirty = d.take_dirty();
    let mut rows = Vec::with_capacity(dirty.len());
    for (agent, b) in &dirty {
        rows.push((agent.clone(), serde_json::to_string(b)?));
    }
    if let Err(e) = state.store().save_baselines(&rows, state.clock.now()) {
        for (agent, _) in &dirty {
            d.mark_dirty(agent);
        }
        return Err(e.into());
    }
    Ok(rows.len())
}
