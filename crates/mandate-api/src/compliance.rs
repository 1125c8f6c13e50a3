//! The compliance report's wire types (`GET /v1/reports/compliance`, issue 24): a
//! framework's controls mapped to numbers this node can prove, each with its source.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::formats::Timestamp;

/// The checkpoint a report was built on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ComplianceCheckpoint {
    /// Events it covers.
    pub size: u64,
    /// When it was signed.
    #[schema(value_type = Timestamp)]
    pub time: String,
    /// The signed note, as `mandate audit verify` reads it.
    pub text: String,
}

/// One control and the evidence behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ComplianceControl {
    /// The framework's identifier (`GOVERN 1.6`, `Art. 12(1)`).
    pub id: String,
    /// What it asks, in Mandate's words (docs/compliance.md cites the text).
    pub requirement: String,
    /// `evidenced`, `attention` (the evidence shows a gap, named in `note`) or
    /// `no_activity` (nothing happened in the window to evidence it).
    pub status: String,
    /// Why, when not plainly evidenced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The names of the evidence items it rests on (keys of `evidence`).
    pub evidence: Vec<String>,
}

/// One number (or list), with how to recompute it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ComplianceEvidence {
    /// The value: a count, a time, a number of seconds or days, or a list.
    #[schema(value_type = Value)]
    pub value: Value,
    /// Where it comes from: the registry, or which audit events.
    pub source: String,
}

/// `GET /v1/reports/compliance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ComplianceReport {
    /// `nist-ai-rmf` or `eu-ai-act`.
    pub framework: String,
    /// Its title.
    pub title: String,
    /// When it was built.
    #[schema(value_type = Timestamp)]
    pub generated_at: String,
    /// The node whose audit log it reads.
    pub node: String,
    /// The start of the window the log's numbers cover.
    #[schema(value_type = Timestamp)]
    pub since: String,
    /// The end of the window (the report's time).
    #[schema(value_type = Timestamp)]
    pub until: String,
    /// The latest signed checkpoint (always sent; `null` before the first).
    pub checkpoint: Option<ComplianceCheckpoint>,
    /// Whether the log verified from its first event to that checkpoint (every event
    /// re-hashed, the root recomputed, the signature checked).
    pub log_verified: bool,
    /// Why it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_problem: Option<String>,
    /// The framework's controls, in its order.
    pub controls: Vec<ComplianceControl>,
    /// Every number, by name.
    pub evidence: BTreeMap<String, ComplianceEvidence>,
    /// What Mandate cannot evidence for this framework.
    pub not_evidenced: Vec<String>,
}
