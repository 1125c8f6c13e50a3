//! What the detector judges by: the learning period, thresholds, sensitive data classes
//! and the response to each severity.

use std::collections::BTreeSet;
use std::fmt;

use mandate_core::risk::Severity;
use serde::{Deserialize, Serialize};

/// What happens when an anomaly of some severity is found. Each includes the ones
/// before it: every anomaly is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// An audit event and an anomaly record, nothing more.
    Record,
    /// Also a signed webhook to the alert endpoint.
    Alert,
    /// Also: the agent's matching requests get `approval_required` until a human
    /// acknowledges or dismisses the anomaly.
    StepUp,
    /// Also: the agent is suspended at once (a human resumes it).
    Suspend,
}

impl Response {
    /// Its name in configuration and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Record => "record",
            Self::Alert => "alert",
            Self::StepUp => "step_up",
            Self::Suspend => "suspend",
        }
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Response {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Record, Self::Alert, Self::StepUp, Self::Suspend]
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown response `{s}` (record, alert, step_up, suspend)"))
    }
}

/// The response to each severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Responses {
    /// Score 1–39.
    pub low: Response,
    /// Score 40–69.
    pub medium: Response,
    /// Score 70–89.
    pub high: Response,
    /// Score 90–100.
    pub critical: Response,
}

impl Responses {
    /// The response to `severity`.
    pub fn to(&self, severity: Severity) -> Response {
        match severity {
            Severity::Low => self.low,
            Severity::Medium => self.medium,
            Severity::High => self.high,
            Severity::Critical => self.critical,
        }
    }
}

impl Default for Responses {
    /// Record low, alert on medium, step up on high, suspend on critical.
    fn default() -> Self {
        Self {
            low: Response::Record,
            medium: Response::Alert,
            high: Response::StepUp,
            critical: Response::Suspend,
        }
    }
}

/// The detector's settings. The defaults suit agents that run daily; the binary reads
/// them from `[detect]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    /// No anomaly is raised before an agent's first request is this old…
    pub learning_secs: i64,
    /// …and before it has made this many requests.
    pub learning_min_events: u64,
    /// Rate is counted in buckets of this many seconds.
    pub rate_bucket_secs: i64,
    /// A bucket is a spike above this many times the usual (active) bucket…
    pub rate_factor: f64,
    /// …and this many standard deviations above it…
    pub rate_sigmas: f64,
    /// …and at least this many requests.
    pub rate_min_count: u32,
    /// Denies are counted over this many seconds…
    pub deny_window_secs: i64,
    /// …and this many of them, at least half the window's decisions, are a burst.
    pub deny_min: u32,
    /// An hour of the day (UTC) that held less than this share of the agent's requests
    /// is outside its usual hours.
    pub usual_hour_share: f64,
    /// Data classes whose first touch is a high-severity anomaly (others: medium).
    pub sensitive_data_classes: BTreeSet<String>,
    /// A finding is not raised again for the same thing for this long (unless it grows
    /// more severe); an unheld novelty is learned when it passes.
    pub cooldown_secs: i64,
    /// What to do about each severity.
    pub responses: Responses,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            learning_secs: 7 * 86_400,
            learning_min_events: 200,
            rate_bucket_secs: 60,
            rate_factor: 5.0,
            rate_sigmas: 4.0,
            rate_min_count: 10,
            deny_window_secs: 60,
            deny_min: 5,
            usual_hour_share: 0.005,
            sensitive_data_classes: ["pii", "phi", "pci", "secret", "credentials"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            cooldown_secs: 3600,
            responses: Responses::default(),
        }
    }
}
