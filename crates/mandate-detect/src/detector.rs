//! One baseline per agent behind a lock, and the agents the detector has suspended, so
//! a suspension holds for the very next request even before the store has it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use mandate_core::time::Timestamp;

use crate::baseline::{Assessment, Baseline, Kind, Request};
use crate::config::DetectConfig;

/// The detector suspended this agent (the one named: the requester or a delegator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspended(pub String);

#[derive(Debug, Default)]
struct State {
    baseline: Baseline,
    /// INVARIANT (suspended): set under this lock when a finding's response is
    /// `suspend`, so every later request of the agent is refused; cleared only by
    /// [`Detector::resume`].
    suspended: bool,
    /// Changed since the caller last stored it.
    dirty: bool,
}

/// Every agent's baseline.
#[derive(Debug)]
pub struct Detector {
    cfg: DetectConfig,
    agents: RwLock<HashMap<String, Arc<Mutex<State>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Detector {
    /// A detector with no baselines.
    pub fn new(cfg: DetectConfig) -> Self {
        Self {
            cfg,
            agents: RwLock::new(HashMap::new()),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &DetectConfig {
        &self.cfg
    }

    /// Puts back a stored baseline (at start).
    pub fn load(&self, agent: &str, baseline: Baseline) {
        let state = State {
            baseline,
            suspended: false,
            dirty: false,
        };
        self.agents
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(agent.to_owned(), Arc::new(Mutex::new(state)));
    }

    fn get(&self, agent: &str) -> Option<Arc<Mutex<State>>> {
        self.agents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(agent)
            .cloned()
    }

    fn state(&self, agent: &str) -> Arc<Mutex<State>> {
        if let Some(s) = self.get(agent) {
            return s;
        }
        Arc::clone(
            self.agents
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(agent.to_owned())
                .or_default(),
        )
    }

    /// Judges and learns request `r` of `agent`. Refused when the detector suspended
    /// the agent or any agent that delegated to it; when this request's findings ask
    /// for suspension, the agent is suspended before this returns (and the assessment
    /// says so: the caller refuses this request too and writes the suspension).
    pub fn assess(&self, agent: &str, r: &Request<'_>) -> Result<Assessment, Suspended> {
        for a in r.chain {
            if self.is_suspended(a) {
                return Err(Suspended((*a).to_owned()));
            }
        }
        let state = self.state(agent);
        let mut s = lock(&state);
        if s.suspended {
            return Err(Suspended(agent.to_owned()));
        }
        let out = s.baseline.assess(&self.cfg, r);
        s.suspended |= out.suspend;
        s.dirty = true;
        Ok(out)
    }

    /// Learns the outcome of a request of `agent` decided at `at`.
    pub fn outcome(&self, agent: &str, at: Timestamp, denied: bool) -> Assessment {
        let state = self.state(agent);
        let mut s = lock(&state);
        let out = s.baseline.outcome(&self.cfg, at, denied);
        s.suspended |= out.suspend;
        s.dirty = true;
        out
    }

    /// Whether the detector suspended `agent`.
    pub fn is_suspended(&self, agent: &str) -> bool {
        self.get(agent).is_some_and(|s| lock(&s).suspended)
    }

    /// Marks `agent` suspended (e.g. a stored suspension by the detector at start).
    pub fn suspend(&self, agent: &str) {
        lock(&self.state(agent)).suspended = true;
    }

    /// A human resumed `agent`: the detector no longer refuses it.
    pub fn resume(&self, agent: &str) {
        if let Some(s) = self.get(agent) {
            lock(&s).suspended = false;
        }
    }

    /// A human acknowledged or dismissed anomaly `key` of `agent` (see
    /// [`Baseline::resolve`]).
    pub fn resolve(
        &self,
        agent: &str,
        key: &str,
        kind: Kind,
        observed: f64,
        teach: bool,
        now: i64,
    ) {
        let state = self.state(agent);
        let mut s = lock(&state);
        s.baseline.resolve(key, kind, observed, teach, now);
        s.dirty = true;
    }

    /// Puts back the hold of a stored open anomaly (see [`Baseline::ensure_hold`]).
    pub fn ensure_hold(
        &self,
        agent: &str,
        key: &str,
        kind: Kind,
        score: u8,
        observed: f64,
        raised: i64,
    ) {
        let state = self.state(agent);
        lock(&state)
            .baseline
            .ensure_hold(key, kind, score, observed, raised);
    }

    /// A copy of `agent`'s baseline.
    pub fn baseline(&self, agent: &str) -> Option<Baseline> {
        self.get(agent).map(|s| lock(&s).baseline.clone())
    }

    /// The baselines changed since the last call, to be stored.
    pub fn take_dirty(&self) -> Vec<(String, Baseline)> {
        let all: Vec<(String, Arc<Mutex<State>>)> = self
            .agents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        let mut out = Vec::new();
        for (agent, state) in all {
            let mut s = lock(&state);
            if s.dirty {
                s.dirty = false;
                out.push((agent, s.baseline.clone()));
            }
        }
        out
    }

    /// Puts baselines that could not be stored back on the dirty list.
    pub fn mark_dirty(&self, agent: &str) {
        if let Some(s) = self.get(agent) {
            lock(&s).dirty = true;
        }
    }
}
