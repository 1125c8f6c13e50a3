//! Anomaly detection's wire types (`/v1/anomalies…`, `/v1/agents/{id}/baseline`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::formats::{
    AgentId, AnomalyId, AnomalyKind, AnomalyResponse, AnomalyStatus, Severity, Timestamp,
};

/// One anomaly the detector raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Anomaly {
    /// `anm_…`.
    #[schema(value_type = AnomalyId)]
    pub id: String,
    /// Whose behaviour (`agt_…`).
    #[schema(value_type = AgentId)]
    pub agent: String,
    /// When it was raised (RFC 3339).
    #[schema(value_type = Timestamp)]
    pub at: String,
    /// `new_action`, `rate_spike`, …
    #[schema(value_type = AnomalyKind)]
    pub kind: String,
    /// What it is about (`resource_type:Db::Customer`, `rate`, `hours:03`); one open
    /// finding per key and agent.
    pub key: String,
    /// 1–100.
    #[schema(minimum = 1, maximum = 100)]
    pub score: u8,
    /// `low`, `medium`, `high` or `critical`.
    #[schema(value_type = Severity)]
    pub severity: String,
    /// What the configuration did about it (`[detect.responses]`).
    #[schema(value_type = AnomalyResponse, inline)]
    pub response: String,
    /// In plain language.
    pub explanation: String,
    /// The numbers behind it (counts, usual rate, threshold, `observed`).
    #[schema(value_type = Object)]
    pub details: Value,
    /// `open`, `acknowledged` or `dismissed`.
    #[schema(value_type = AnomalyStatus, inline)]
    pub status: String,
    /// When a human resolved it (always sent, `null` while open).
    #[schema(value_type = Option<Timestamp>)]
    pub resolved_at: Option<String>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// Their comment.
    pub comment: Option<String>,
}

/// A page of anomalies, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnomalyPage {
    /// The anomalies of this page.
    pub items: Vec<Anomaly>,
    /// The `cursor` of the next page; `None` when this page is not full.
    #[schema(required)]
    pub next_cursor: Option<String>,
}

/// The body of acknowledge and dismiss.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
// The server reads this type: an unknown member is a 400 `unknown_field`.
#[serde(deny_unknown_fields)]
pub struct AnomalyResolution {
    /// What was done about it, or why it is a false positive: at most 2000 characters,
    /// no control characters but newlines and tabs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // The pattern: no `Cc` character but `\n` and `\t`, as the edge's `check_text`.
    #[schema(value_type = String, max_length = 2000, pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$")]
    pub comment: Option<String>,
}

/// What the detector learned of an agent: `{"agent", "enabled": false}` when detection
/// is off, else the summary beside them.
///
/// Its schema is built by hand: the summary is open to more members (the detector may
/// grow it), so the schema names the members clients rely on and allows any other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// `agt_…`.
    pub agent: String,
    /// Whether detection is on.
    pub enabled: bool,
    /// The summary, when detection is on.
    #[serde(flatten)]
    pub summary: Option<BaselineSummary>,
}

impl utoipa::PartialSchema for Baseline {
    fn schema() -> RefOr<Schema> {
        let boolean = || ObjectBuilder::new().schema_type(Type::Boolean);
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "What the detector learned of an agent; `{\"enabled\": false}` when detection is off.",
            ))
            .property("agent", AgentId::schema())
            .property("enabled", boolean())
            .property("learning", boolean())
            .property("requests", ObjectBuilder::new().schema_type(Type::Integer))
            .property("suspended_by_detector", boolean())
            .required("agent")
            .required("enabled")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}

impl utoipa::ToSchema for Baseline {}

/// The detector's summary of an agent. The members the CLI shows are typed; the rest
/// (which the detector may grow) is kept, as sent, in `more`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineSummary {
    /// Requests seen.
    pub requests: u64,
    /// The first request seen (RFC 3339); `None` before any.
    pub first_seen: Option<String>,
    /// Whether it is still learning.
    pub learning: bool,
    /// When learning ends (RFC 3339); `None` before any request.
    pub learning_until: Option<String>,
    /// Whether the detector has the agent suspended.
    pub suspended_by_detector: bool,
    /// Actions seen, by name.
    pub actions: BTreeMap<String, Seen>,
    /// Resource types seen, by name.
    pub resource_types: BTreeMap<String, Seen>,
    /// Data classes seen, by name.
    pub data_classes: BTreeMap<String, Seen>,
    /// Agents that delegated to it, by id.
    pub delegated_by: BTreeMap<String, Seen>,
    /// Its usual request rate.
    pub rate: Rate,
    /// The share of its requests denied (0–1).
    pub deny_ratio: f64,
    /// Findings still pending, by key.
    pub pending: BTreeMap<String, Pending>,
    /// The other members of the summary, as sent.
    #[serde(flatten)]
    pub more: Map<String, Value>,
}

/// How often something was seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    /// Times seen.
    pub count: u64,
    /// The other members (first and last seen), as sent.
    #[serde(flatten)]
    pub more: Map<String, Value>,
}

/// An agent's usual request rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Requests per bucket, on average.
    pub mean: f64,
    /// Their standard deviation.
    pub stddev: f64,
    /// The bucket's width in seconds.
    pub bucket_secs: u64,
    /// Over this many requests in a bucket is a spike.
    pub spike_above: f64,
    /// The other members, as sent.
    #[serde(flatten)]
    pub more: Map<String, Value>,
}

/// A finding not yet raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Its score so far.
    pub score: u8,
    /// Whether matching requests are held for approval.
    pub hold: bool,
    /// The other members, as sent.
    #[serde(flatten)]
    pub more: Map<String, Value>,
}
