//! One agent's learned behaviour, and the judgement of a request against it.
//!
//! Learned: the actions, resource types, data classes and delegating agents it uses
//! (first and last seen, count), its deepest delegation, its requests per hour of the
//! day (UTC), its request rate (an exponentially weighted mean and variance of the
//! requests in each active bucket), and its deny ratio with a window of recent
//! decisions. Nothing is judged during the learning period.
//!
//! A finding is raised once per thing (its *key*: `action:crm:export`, `rate`, …) and
//! stays *pending* for the cooldown: while pending it is not raised again (unless its
//! severity grows), it counts in the risk of matching requests, and a step-up hold on
//! it turns them into `approval_required`. Something new that was found is not learned
//! until a human acknowledges or dismisses it, or its cooldown passes without a hold.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use mandate_core::risk::{Risk, Severity};
use mandate_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{DetectConfig, Response};

/// The most entries one learned set keeps; the least recently seen is forgotten first.
const MAX_KNOWN: usize = 1024;
/// The most findings one agent keeps pending.
const MAX_PENDING: usize = 256;
/// The most decisions the deny window holds.
const MAX_RECENT: usize = 512;
/// Rate spikes are judged only once this many buckets were learned.
const MIN_RATE_BUCKETS: u64 = 30;

/// What kind of anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An action the agent never used.
    NewAction,
    /// A resource type the agent never touched.
    NewResourceType,
    /// A data class the agent never touched (high severity when sensitive).
    NewDataClass,
    /// Far more requests in a bucket than usual.
    RateSpike,
    /// A request in an hour of the day the agent is not active in.
    OffHours,
    /// Many denies in a short window: probing.
    DenyBurst,
    /// Delegated by an agent that never delegated to it, or deeper than ever.
    UnusualDelegation,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Self; 7] = [
        Self::NewAction,
        Self::NewResourceType,
        Self::NewDataClass,
        Self::RateSpike,
        Self::OffHours,
        Self::DenyBurst,
        Self::UnusualDelegation,
    ];

    /// Its name in the API, the audit log and `context.risk.anomalies`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewAction => "new_action",
            Self::NewResourceType => "new_resource_type",
            Self::NewDataClass => "new_data_class",
            Self::RateSpike => "rate_spike",
            Self::OffHours => "off_hours",
            Self::DenyBurst => "deny_burst",
            Self::UnusualDelegation => "unusual_delegation",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown anomaly kind `{s}`"))
    }
}

/// What the detector sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The action (`crm:read`).
    pub action: &'a str,
    /// The resource's entity type (`Crm::Contact`).
    pub resource_type: &'a str,
    /// The context's `data_class`, when it has one.
    pub data_class: Option<&'a str>,
    /// The agents that delegated to this one, nearest first (empty unless delegated).
    pub chain: &'a [&'a str],
    /// When.
    pub at: Timestamp,
}

/// An anomaly just raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What kind.
    pub kind: Kind,
    /// What it is about (`resource_type:Db::Customer`, `rate`); one pending finding per key.
    pub key: String,
    /// 1–100.
    pub score: u8,
    /// The band of the score.
    pub severity: Severity,
    /// What the configuration says to do, already applied to the detector's state
    /// (hold, suspension); alerts and the records are the caller's to make.
    pub response: Response,
    /// In plain language, for a human.
    pub explanation: String,
    /// The numbers behind it.
    pub details: Value,
    /// The measure that tripped it (see [`Pending::observed`]); a dismissal passes it
    /// back to [`Baseline::resolve`].
    pub observed: f64,
}

/// A finding still in force: not raised again for its key until its cooldown passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// What kind.
    pub kind: Kind,
    /// Its latest score.
    pub score: u8,
    /// When it was raised (or last grew more severe), seconds since the epoch.
    pub raised: i64,
    /// Matching requests need a human's approval until it is acknowledged or dismissed.
    pub hold: bool,
    /// The measure that tripped it (requests in the bucket, denies in the window,
    /// delegation depth), which a dismissal teaches as normal.
    pub observed: f64,
}

/// First and last use of something, and how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// First use, seconds since the epoch.
    pub first: i64,
    /// Last use.
    pub last: i64,
    /// Uses.
    pub count: u64,
}

/// Requests per bucket: an exponentially weighted mean and variance over the buckets
/// that held requests (idle time is not "normal zero traffic"), and the open bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Rate {
    mean: f64,
    var: f64,
    buckets: u64,
    current_start: i64,
    current: u32,
}

/// What dismissals taught.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Taught {
    /// Bucket counts up to this are not spikes.
    rate_floor: f64,
    /// Deny bursts up to this many are not probing.
    deny_floor: u32,
    /// Hours (bit h = hour h UTC) that are usual whatever the history says.
    hours_ok: u32,
}

/// One agent's learned behaviour (serialisable: the server stores it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// First request seen, seconds since the epoch.
    pub first_seen: i64,
    /// Latest request seen.
    pub last_seen: i64,
    /// Requests seen.
    pub events: u64,
    actions: BTreeMap<String, Seen>,
    resource_types: BTreeMap<String, Seen>,
    data_classes: BTreeMap<String, Seen>,
    delegators: BTreeMap<String, Seen>,
    max_depth: u32,
    hours: [u64; 24],
    rate: Rate,
    deny_ratio: f64,
    decisions: u64,
    recent: VecDeque<(i64, bool)>,
    taught: Taught,
    pending: BTreeMap<String, Pending>,
}

/// What [`Baseline::assess`] or [`Baseline::outcome`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assessment {
    /// The request's risk (`context.risk`); empty from `outcome`.
    pub risk: Risk,
    /// Anomalies raised by this request.
    pub findings: Vec<Finding>,
    /// One of them asks for the agent's suspension.
    pub suspend: bool,
}

fn hour(secs: i64) -> usize {
    usize::try_from(secs.rem_euclid(86_400) / 3600).unwrap_or(0)
}

fn days(secs: i64) -> String {
    let d = secs / 86_400;
    if d == 1 {
        "1 day".to_owned()
    } else {
        format!("{d} days")
    }
}

/// Whether pending `key` concerns request `r`: novelty keys concern requests with the
/// same feature; the rest (rate, hours, denies, depth) concern all the agent's requests.
fn concerns(key: &str, r: &Request<'_>) -> bool {
    match key.split_once(':') {
        Some(("action", a)) => a == r.action,
        Some(("resource_type", t)) => t == r.resource_type,
        Some(("data_class", d)) => Some(d) == r.data_class,
        Some(("delegator", a)) => r.chain.contains(&a),
        _ => true,
    }
}

/// Records a use of `value` in `map`, forgetting the least recently seen entry when full.
fn learn(map: &mut BTreeMap<String, Seen>, value: &str, now: i64) {
    if let Some(s) = map.get_mut(value) {
        s.last = now;
        s.count = s.count.saturating_add(1);
        return;
    }
    if map.len() >= MAX_KNOWN
        && let Some(oldest) = map
            .iter()
            .min_by_key(|(_, s)| s.last)
            .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
    map.insert(
        value.to_owned(),
        Seen {
            first: now,
            last: now,
            count: 1,
        },
    );
}

/// A candidate finding (its response and severity are set when it is raised).
struct Candidate {
    kind: Kind,
    key: String,
    score: u8,
    observed: f64,
    explanation: String,
    details: Value,
}

impl Baseline {
    /// An empty baseline; learning starts with the first request.
    pub fn new() -> Self {
        Self {
            first_seen: 0,
            last_seen: 0,
            events: 0,
            actions: BTreeMap::new(),
            resource_types: BTreeMap::new(),
            data_classes: BTreeMap::new(),
            delegators: BTreeMap::new(),
            max_depth: 0,
            hours: [0; 24],
            rate: Rate::default(),
            deny_ratio: 0.0,
            decisions: 0,
            recent: VecDeque::new(),
            taught: Taught::default(),
            pending: BTreeMap::new(),
        }
    }

    /// Whether it is still learning at `now` (no anomaly is raised while it is).
    pub fn learning(&self, cfg: &DetectConfig, now: i64) -> bool {
        self.events == 0
            || now.saturating_sub(self.first_seen) < cfg.learning_secs
            || self.events < cfg.learning_min_events
    }

    /// The findings still in force, by key.
    pub fn pending(&self) -> &BTreeMap<String, Pending> {
        &self.pending
    }

    /// Judges request `r` and learns it: returns its risk and the anomalies it raised,
    /// with their responses applied (holds are set here; suspension is the caller's).
    pub fn assess(&mut self, cfg: &DetectConfig, r: &Request<'_>) -> Assessment {
        let now = r.at.secs();
        if self.events == 0 {
            self.first_seen = now;
        }
        self.expire(cfg, now);
        let judging = !self.learning(cfg, now);
        let history = days(now.saturating_sub(self.first_seen));
        let mut found = Vec::new();

        self.count_rate(cfg, now);
        if judging && let Some(c) = self.rate_spike(cfg) {
            found.push(c);
        }

        let h = hour(now);
        if judging && self.taught.hours_ok & (1 << h) == 0 {
            let in_hour = self.hours.get(h).copied().unwrap_or(0);
            #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
            let share = in_hour as f64 / self.events.max(1) as f64;
            if share < cfg.usual_hour_share {
                found.push(Candidate {
                    kind: Kind::OffHours,
                    key: format!("hours:{h:02}"),
                    score: 45,
                    observed: share,
                    explanation: format!(
                        "activity at {h:02}:00 UTC, an hour that held {:.1}% of its {} \
                         requests in {history} of history",
                        share * 100.0,
                        self.events
                    ),
                    details: json!({"hour": h, "share": share, "requests": self.events}),
                });
            }
        }
        if let Some(slot) = self.hours.get_mut(h) {
            *slot = slot.saturating_add(1);
        }

        let novel = |map: &BTreeMap<String, Seen>, v: &str| !map.contains_key(v);
        if judging && novel(&self.actions, r.action) {
            found.push(Candidate {
                kind: Kind::NewAction,
                key: format!("action:{}", r.action),
                score: 50,
                observed: 0.0,
                explanation: format!("first use of action `{}` in {history} of history", r.action),
                details: json!({"action": r.action, "known_actions": self.actions.len()}),
            });
        } else {
            learn(&mut self.actions, r.action, now);
        }
        if judging && novel(&self.resource_types, r.resource_type) {
            found.push(Candidate {
                kind: Kind::NewResourceType,
                key: format!("resource_type:{}", r.resource_type),
                score: 70,
                observed: 0.0,
                explanation: format!(
                    "first access to resource type `{}` in {history} of history",
                    r.resource_type
                ),
                details: json!({"resource_type": r.resource_type}),
            });
        } else {
            learn(&mut self.resource_types, r.resource_type, now);
        }
        if let Some(dc) = r.data_class {
            if judging && novel(&self.data_classes, dc) {
                let sensitive = cfg.sensitive_data_classes.contains(dc);
                found.push(Candidate {
                    kind: Kind::NewDataClass,
                    key: format!("data_class:{dc}"),
                    score: if sensitive { 85 } else { 45 },
                    observed: 0.0,
                    explanation: format!(
                        "first touch of {}data class `{dc}` in {history} of history",
                        if sensitive { "sensitive " } else { "" }
                    ),
                    details: json!({"data_class": dc, "sensitive": sensitive}),
                });
            } else {
                learn(&mut self.data_classes, dc, now);
            }
        }
        if let Some(by) = r.chain.first() {
            if judging && novel(&self.delegators, by) {
                found.push(Candidate {
                    kind: Kind::UnusualDelegation,
                    key: format!("delegator:{by}"),
                    score: 60,
                    observed: 0.0,
                    explanation: format!(
                        "first request delegated by agent `{by}` in {history} of history"
                    ),
                    details: json!({"delegator": by, "depth": r.chain.len()}),
                });
            } else {
                learn(&mut self.delegators, by, now);
            }
        }
        let depth = u32::try_from(r.chain.len()).unwrap_or(u32::MAX);
        if judging && depth > self.max_depth {
            found.push(Candidate {
                kind: Kind::UnusualDelegation,
                key: "delegation_depth".to_owned(),
                score: 65,
                observed: f64::from(depth),
                explanation: format!(
                    "delegation depth {depth}, never above {} in {history} of history",
                    self.max_depth
                ),
                details: json!({"depth": depth, "usual_max": self.max_depth}),
            });
        } else {
            self.max_depth = self.max_depth.max(depth);
        }

        self.events = self.events.saturating_add(1);
        self.last_seen = now;
        let mut out = Assessment::default();
        for c in found {
            if let Some(f) = self.raise(cfg, c, now) {
                out.suspend |= f.response == Response::Suspend;
                out.findings.push(f);
            }
        }
        out.risk = self.risk(r);
        out
    }

    /// Learns a decision's outcome (denied or not) at `at` and raises a probing burst.
    pub fn outcome(&mut self, cfg: &DetectConfig, at: Timestamp, denied: bool) -> Assessment {
        let now = at.secs();
        let judging = !self.learning(cfg, now);
        let usual = self.deny_ratio;
        self.decisions = self.decisions.saturating_add(1);
        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let alpha = (1.0 / self.decisions as f64).max(0.01);
        self.deny_ratio += alpha * (f64::from(u8::from(denied)) - self.deny_ratio);
        self.recent.push_back((now, denied));
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| *t <= now - cfg.deny_window_secs)
            || self.recent.len() > MAX_RECENT
        {
            self.recent.pop_front();
        }
        let mut out = Assessment::default();
        if !judging || !denied {
            return out;
        }
        let denies = u32::try_from(self.recent.iter().filter(|(_, d)| *d).count()).unwrap_or(0);
        let window = u32::try_from(self.recent.len()).unwrap_or(u32::MAX);
        let floor = cfg.deny_min.max(self.taught.deny_floor.saturating_add(1));
        let share = f64::from(denies) / f64::from(window.max(1));
        if denies >= floor && denies.saturating_mul(2) >= window && share > 3.0 * usual {
            let over = denies.saturating_sub(cfg.deny_min);
            let score =
                u8::try_from(over.saturating_mul(5).saturating_add(75).min(99)).unwrap_or(99);
            let c = Candidate {
                kind: Kind::DenyBurst,
                key: "deny_burst".to_owned(),
                score,
                observed: f64::from(denies),
                explanation: format!(
                    "{denies} of its last {window} requests in {} s were denied (usual deny \
                     rate {:.1}%)",
                    cfg.deny_window_secs,
                    usual * 100.0
                ),
                details: json!({"denies": denies, "window": window, "usual_deny_ratio": usual}),
            };
            if let Some(f) = self.raise(cfg, c, now) {
                out.suspend |= f.response == Response::Suspend;
                out.findings.push(f);
            }
        }
        out
    }

    /// A human acknowledged (`teach` false) or dismissed (`teach` true) the anomaly
    /// `key` of `kind`: its hold is lifted and what it found is learned; a dismissal
    /// also teaches that `observed` (a rate, a deny count, an hour) is normal.
    pub fn resolve(&mut self, key: &str, kind: Kind, observed: f64, teach: bool, now: i64) {
        self.pending.remove(key);
        self.learn_key(key, kind, observed, now);
        if !teach {
            return;
        }
        match kind {
            Kind::RateSpike => self.taught.rate_floor = self.taught.rate_floor.max(observed),
            Kind::DenyBurst => {
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "a deny count, clamped"
                )]
                let n = observed.clamp(0.0, f64::from(u32::MAX)) as u32;
                self.taught.deny_floor = self.taught.deny_floor.max(n);
            }
            Kind::OffHours => {
                if let Some(h) = key
                    .strip_prefix("hours:")
                    .and_then(|h| h.parse::<u32>().ok())
                    .filter(|h| *h < 24)
                {
                    self.taught.hours_ok |= 1 << h;
                }
            }
            _ => {}
        }
    }

    /// Puts back a hold a stored, still open anomaly asked for (after a restart that
    /// lost the latest baseline).
    pub fn ensure_hold(&mut self, key: &str, kind: Kind, score: u8, observed: f64, raised: i64) {
        let p = self.pending.entry(key.to_owned()).or_insert(Pending {
            kind,
            score,
            raised,
            hold: true,
            observed,
        });
        p.hold = true;
    }

    /// A summary for people: what is learned, and what is pending.
    pub fn summary(&self, cfg: &DetectConfig, now: i64) -> Value {
        let learning = self.learning(cfg, now);
        json!({
            "first_seen": (self.events > 0).then(|| Timestamp::from_secs(self.first_seen)),
            "last_seen": (self.events > 0).then(|| Timestamp::from_secs(self.last_seen)),
            "requests": self.events,
            "learning": learning,
            "learning_until": (self.events > 0)
                .then(|| Timestamp::from_secs(self.first_seen.saturating_add(cfg.learning_secs))),
            "learning_min_requests": cfg.learning_min_events,
            "actions": self.actions,
            "resource_types": self.resource_types,
            "data_classes": self.data_classes,
            "delegated_by": self.delegators,
            "max_delegation_depth": self.max_depth,
            "requests_by_hour_utc": self.hours,
            "rate": {
                "bucket_secs": cfg.rate_bucket_secs,
                "mean": self.rate.mean,
                "stddev": self.rate.var.sqrt(),
                "buckets": self.rate.buckets,
                "spike_above": self.rate_threshold(cfg),
            },
            "deny_ratio": self.deny_ratio,
            "taught": {
                "rate_floor": self.taught.rate_floor,
                "deny_floor": self.taught.deny_floor,
                "usual_hours_utc": (0..24).filter(|h| self.taught.hours_ok & (1 << h) != 0).collect::<Vec<u32>>(),
            },
            "pending": self.pending,
        })
    }

    fn count_rate(&mut self, cfg: &DetectConfig, now: i64) {
        let width = cfg.rate_bucket_secs.max(1);
        let start = now - now.rem_euclid(width);
        if self.rate.current > 0 && start != self.rate.current_start {
            let mut c = f64::from(self.rate.current);
            // A spike teaches no more than the threshold: a sustained attack is not
            // learned as the new normal.
            if self.rate.buckets >= MIN_RATE_BUCKETS {
                c = c.min(self.rate_threshold(cfg));
            }
            self.rate.buckets = self.rate.buckets.saturating_add(1);
            if self.rate.buckets == 1 {
                self.rate.mean = c;
                self.rate.var = 0.0;
            } else {
                #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
                let alpha = (1.0 / self.rate.buckets as f64).max(0.05);
                let diff = c - self.rate.mean;
                let inc = alpha * diff;
                self.rate.mean += inc;
                self.rate.var = (1.0 - alpha) * (self.rate.var + diff * inc);
            }
            self.rate.current = 0;
        }
        self.rate.current_start = start;
        self.rate.current = self.rate.current.saturating_add(1);
    }

    /// A bucket holding more than this many requests is a spike.
    fn rate_threshold(&self, cfg: &DetectConfig) -> f64 {
        (self.rate.mean * cfg.rate_factor)
            .max(self.rate.mean + cfg.rate_sigmas * self.rate.var.sqrt())
            .max(f64::from(cfg.rate_min_count))
            .max(self.taught.rate_floor)
    }

    fn rate_spike(&self, cfg: &DetectConfig) -> Option<Candidate> {
        if self.rate.buckets < MIN_RATE_BUCKETS {
            return None;
        }
        let count = f64::from(self.rate.current);
        let limit = self.rate_threshold(cfg);
        if count <= limit {
            return None;
        }
        let ratio = count / self.rate.mean.max(f64::MIN_POSITIVE);
        let raw = 70.0 + 12.5 * (ratio / cfg.rate_factor).log2();
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "clamped to 40..=99"
        )]
        let score = raw.clamp(40.0, 99.0) as u8;
        Some(Candidate {
            kind: Kind::RateSpike,
            key: "rate".to_owned(),
            score,
            observed: count,
            explanation: format!(
                "{} requests in the current {} s against a usual {:.1} ({ratio:.1}×)",
                self.rate.current, cfg.rate_bucket_secs, self.rate.mean
            ),
            details: json!({
                "count": self.rate.current,
                "usual": self.rate.mean,
                "stddev": self.rate.var.sqrt(),
                "ratio": ratio,
                "threshold": limit,
            }),
        })
    }

    /// Raises `c` unless the same key is pending at the same or a higher severity.
    fn raise(&mut self, cfg: &DetectConfig, c: Candidate, now: i64) -> Option<Finding> {
        let severity = Severity::of_score(c.score)?;
        let response = cfg.responses.to(severity);
        let hold = response >= Response::StepUp;
        match self.pending.get_mut(&c.key) {
            Some(p) if Severity::of_score(p.score) >= Some(severity) => return None,
            Some(p) => {
                p.score = c.score;
                p.raised = now;
                p.hold |= hold;
                p.observed = c.observed;
            }
            None => {
                if self.pending.len() >= MAX_PENDING {
                    return None;
                }
                self.pending.insert(
                    c.key.clone(),
                    Pending {
                        kind: c.kind,
                        score: c.score,
                        raised: now,
                        hold,
                        observed: c.observed,
                    },
                );
            }
        }
        Some(Finding {
            kind: c.kind,
            key: c.key,
            score: c.score,
            severity,
            response,
            explanation: c.explanation,
            details: c.details,
            observed: c.observed,
        })
    }

    /// Drops findings whose cooldown passed without a hold, learning what they found.
    fn expire(&mut self, cfg: &DetectConfig, now: i64) {
        let done: Vec<(String, Kind, f64)> = self
            .pending
            .iter()
            .filter(|(_, p)| !p.hold && now.saturating_sub(p.raised) >= cfg.cooldown_secs)
            .map(|(k, p)| (k.clone(), p.kind, p.observed))
            .collect();
        for (key, kind, observed) in done {
            self.pending.remove(&key);
            self.learn_key(&key, kind, observed, now);
        }
    }

    /// Learns the novelty a finding's key names (no-op for rate, hours and denies).
    fn learn_key(&mut self, key: &str, kind: Kind, observed: f64, now: i64) {
        let Some((prefix, value)) = key.split_once(':') else {
            if kind == Kind::UnusualDelegation {
                #[expect(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "a depth, clamped"
                )]
                let d = observed.clamp(0.0, 64.0) as u32;
                self.max_depth = self.max_depth.max(d);
            }
            return;
        };
        let map = match prefix {
            "action" => &mut self.actions,
            "resource_type" => &mut self.resource_types,
            "data_class" => &mut self.data_classes,
            "delegator" => &mut self.delegators,
            _ => return,
        };
        learn(map, value, now);
    }

    /// The risk of `r`: the highest score of the pending findings that concern it,
    /// plus 5 for each further kind among them.
    fn risk(&self, r: &Request<'_>) -> Risk {
        let mut kinds = BTreeSet::new();
        let mut top = 0u8;
        let mut step_up = false;
        for (key, p) in &self.pending {
            if concerns(key, r) {
                top = top.max(p.score);
                kinds.insert(p.kind.as_str());
                step_up |= p.hold;
            }
        }
        let extra = u8::try_from(kinds.len().saturating_sub(1).saturating_mul(5)).unwrap_or(100);
        Risk {
            score: top.saturating_add(extra).min(100),
            anomalies: kinds.into_iter().map(str::to_owned).collect(),
            step_up,
        }
    }
}

impl Default for Baseline {
    fn default() -> Self {
        Self::new()
    }
}
