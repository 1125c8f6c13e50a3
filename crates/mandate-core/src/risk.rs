//! Risk: how far a request strays from its agent's learned behaviour, as the anomaly
//! detector scores it and as policies see it (`context.risk`).
//!
//! A score is 0–100. Severities are bands of it, so configuration ("step up on high")
//! and policies (`context.risk.score >= 75`, `context.risk.level == "high"`) agree.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How serious an anomaly is: a band of its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Score 1–39: worth recording.
    Low,
    /// Score 40–69: worth a look.
    Medium,
    /// Score 70–89: a human should confirm before it goes on.
    High,
    /// Score 90–100: stop it.
    Critical,
}

impl Severity {
    /// Every severity, least first.
    pub const ALL: [Self; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    /// The band `score` falls in; `None` for 0 (nothing unusual).
    pub fn of_score(score: u8) -> Option<Self> {
        match score {
            0 => None,
            1..=39 => Some(Self::Low),
            40..=69 => Some(Self::Medium),
            70..=89 => Some(Self::High),
            _ => Some(Self::Critical),
        }
    }

    /// The lowest score of the band.
    pub fn floor(self) -> u8 {
        match self {
            Self::Low => 1,
            Self::Medium => 40,
            Self::High => 70,
            Self::Critical => 90,
        }
    }

    /// Its name: `low`, `medium`, `high` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown severity `{s}` (low, medium, high, critical)"))
    }
}

/// The risk of one request, as policies see it in `context.risk`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Risk {
    /// 0 (nothing unusual) to 100: the highest score of the request's anomalies and of
    /// the agent's open step-up holds.
    pub score: u8,
    /// The kinds of anomaly behind the score (`new_resource_type`, `rate_spike`, …),
    /// sorted, without repeats.
    #[serde(default)]
    pub anomalies: Vec<String>,
    /// An open step-up hold matches this request: it needs a human's approval.
    #[serde(default)]
    pub step_up: bool,
}

impl Risk {
    /// `none`, or the severity of the score.
    pub fn level(&self) -> &'static str {
        Severity::of_score(self.score).map_or("none", Severity::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_every_score_in_order() {
        let mut last = None;
        for s in 0..=u8::MAX {
            let sev = Severity::of_score(s.min(100));
            assert!(sev >= last, "severity never falls as the score rises");
            if let Some(v) = sev {
                assert!(s >= v.floor());
            }
            last = sev;
        }
        assert_eq!(Severity::of_score(0), None);
        assert_eq!(Severity::of_score(70), Some(Severity::High));
        assert_eq!("critical".parse(), Ok(Severity::Critical));
        assert!("severe".parse::<Severity>().is_err());
    }

    #[test]
    fn level_names_the_band() {
        let r = Risk {
            score: 75,
            ..Risk::default()
        };
        assert_eq!(r.level(), "high");
        assert_eq!(Risk::default().level(), "none");
    }
}
