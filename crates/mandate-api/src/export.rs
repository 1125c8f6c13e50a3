//! `mandate export status`'s wire types (`GET /v1/export`): each SIEM export sink of the
//! answering node, how far it has delivered the node's audit log, and why it is stuck
//! if it is.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::formats::{NodeName, Timestamp};

/// The answering node's export sinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExportStatus {
    /// The node whose log the sinks deliver (each node delivers its own).
    #[schema(value_type = NodeName)]
    pub node: String,
    /// How many events its log holds.
    #[schema(minimum = 0)]
    pub log_length: u64,
    /// Every configured sink, by name.
    pub sinks: Vec<ExportSink>,
}

/// One sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExportSink {
    /// Its configured name (the key of its stored cursor).
    pub name: String,
    /// `file`, `syslog`, `webhook`, `splunk` or `elasticsearch`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `jsonl`, `ocsf` or `ecs`.
    pub format: String,
    /// The seq of the next event it sends: every event below it was accepted by its
    /// receiver or left out by its filter.
    #[schema(minimum = 0)]
    pub next: u64,
    /// Events of the log it has yet to deliver.
    #[schema(minimum = 0)]
    pub lag: u64,
    /// Events it delivered since the node started.
    #[schema(minimum = 0)]
    pub delivered: u64,
    /// Failed attempts since its last delivery (0 when it is healthy).
    #[schema(minimum = 0)]
    pub failures: u32,
    /// The last failure, while it has not delivered since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When that failure was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub last_error_at: Option<String>,
    /// When it last delivered a batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub last_delivered_at: Option<String>,
}
