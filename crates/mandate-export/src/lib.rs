//! What Mandate's audit events look like to a SIEM: one record per audit event, in the
//! format a sink is configured for ([`Format`]: Mandate's own JSON Lines, OCSF 1.x, or
//! ECS for Elasticsearch/OpenSearch), the RFC 5424 syslog message that carries one
//! ([`syslog`]), and which events a sink takes ([`Filter`]).
//!
//! Pure: no IO. Delivery (cursors, retries, the transports) is `mandate-service`'s
//! `export` and, for the HTTP sinks, `mandate-http`'s `export_http`.
//!
//! Every record names its event by the stable id `"{node}:{seq}"`
//! ([`mandate_audit::event::event_id`]): delivery is at least once, so a receiver
//! de-duplicates by it, and an analyst asks Mandate for the event's Merkle proof by it.

pub mod ecs;
mod facts;
pub mod filter;
pub mod ocsf;
pub mod syslog;

use mandate_audit::event::AuditEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use facts::{Outcome, outcome};
pub use filter::{Filter, FilterError};

/// The shape of the records a sink sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Mandate's own event ([`AuditEvent::to_json`]) with two members added: `id` (the
    /// stable event id) and, when known, `owner` (the agent's accountable owner).
    /// Without those two it is the canonical event whose hash is the Merkle leaf.
    #[default]
    Jsonl,
    /// OCSF 1.x, in the class that fits the event ([`ocsf`]).
    Ocsf,
    /// Elastic Common Schema field names, for `_bulk` ([`ecs`]).
    Ecs,
}

impl Format {
    /// The configuration name: `jsonl`, `ocsf`, `ecs`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Ocsf => "ocsf",
            Self::Ecs => "ecs",
        }
    }
}

/// What Mandate knows about an event at export time that the event does not carry.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The accountable owner of the event's agent, as the node knows it now (an event
    /// records who acted, not who owned the agent then).
    pub owner: Option<&'a str>,
}

/// The record of `event` in `format`.
pub fn record(format: Format, event: &AuditEvent, cx: &Context<'_>) -> Value {
    match format {
        Format::Jsonl => jsonl(event, cx),
        Format::Ocsf => ocsf::record(event, cx),
        Format::Ecs => ecs::document(event, cx),
    }
}

/// Mandate's own JSON of `event`, with `id` and `owner` added.
fn jsonl(event: &AuditEvent, cx: &Context<'_>) -> Value {
    let mut v = event.to_json();
    if let Value::Object(m) = &mut v {
        m.insert("id".into(), event.id().into());
        if let Some(o) = cx.owner {
            m.insert("owner".into(), o.into());
        }
    }
    v
}

/// `value` as one line of JSON with every non-ASCII character escaped (`\uXXXX`), so the
/// line is ASCII: a syslog MSG without a BOM (RFC 5424 `MSG-ANY`), a JSON Lines line
/// whatever the reader's encoding. Any JSON parser reads back the same value.
pub fn ascii_json(value: &Value) -> String {
    let text = value.to_string();
    if text.is_ascii() {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}
