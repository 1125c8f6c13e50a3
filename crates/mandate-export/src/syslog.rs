//! RFC 5424 syslog messages carrying one record each, and their framing: octet counting
//! on a stream (RFC 6587 §3.4.1, as RFC 5425 requires over TLS), one message per
//! datagram over UDP (RFC 5426).
//!
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG`, with
//! - PRI from the sink's facility and the event's [`severity`];
//! - TIMESTAMP the event's time (UTC, `Z`), HOSTNAME the node, APP-NAME `mandate`,
//!   PROCID `-`;
//! - MSGID the event kind (`decision`, `token.refused`: at most 32 printable ASCII
//!   characters, as the RFC allows; `-` otherwise);
//! - STRUCTURED-DATA `-` (Mandate has no IANA enterprise number to name an SD-ID with;
//!   the record carries the event id);
//! - MSG the record as ASCII-only JSON ([`crate::ascii_json`]), so it is `MSG-ANY` and
//!   needs no BOM.

use mandate_audit::event::AuditEvent;
use serde::{Deserialize, Serialize};

/// The APP-NAME of every message.
pub const APP_NAME: &str = "mandate";

/// A syslog facility (RFC 5424 §6.2.1), by its conventional name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    /// 4: security/authorization messages.
    Auth,
    /// 10: security/authorization messages (private). The default: where most
    /// collectors route authorization records.
    #[default]
    Authpriv,
    /// 13: log audit.
    Audit,
    /// 16–23: local use 0–7.
    Local0,
    /// local use 1.
    Local1,
    /// local use 2.
    Local2,
    /// local use 3.
    Local3,
    /// local use 4.
    Local4,
    /// local use 5.
    Local5,
    /// local use 6.
    Local6,
    /// local use 7.
    Local7,
}

impl Facility {
    /// The facility's number.
    pub fn code(self) -> u8 {
        match self {
            Self::Auth => 4,
            Self::Authpriv => 10,
            Self::Audit => 13,
            Self::Local0 => 16,
            Self::Local1 => 17,
            Self::Local2 => 18,
            Self::Local3 => 19,
            Self::Local4 => 20,
            Self::Local5 => 21,
            Self::Local6 => 22,
            Self::Local7 => 23,
        }
    }
}

/// The syslog severity (RFC 5424 §6.2.1: 0 emergency … 7 debug) of `event`: an anomaly by
/// its severity (critical 2, high 3, medium 4, low 5); a refused token, a suspension, a
/// decommissioning or a revocation 4 (warning); a denial 5 (notice); anything else 6
/// (informational).
pub fn severity(event: &AuditEvent) -> u8 {
    let kind = event.kind.as_str();
    if kind == "anomaly.detected" {
        let s = event
            .details
            .as_ref()
            .and_then(|d| d.get("severity"))
            .and_then(|s| s.as_str());
        return match s {
            Some("critical") => 2,
            Some("high") => 3,
            Some("medium") => 4,
            _ => 5,
        };
    }
    if matches!(
        kind,
        "token.refused"
            | "agent.suspended"
            | "agent.decommissioned"
            | "token.revoked"
            | "mandate.revoked"
            | "credential.revoked"
    ) {
        return 4;
    }
    if event.decision.as_deref() == Some("deny") {
        return 5;
    }
    6
}

/// The RFC 5424 message of `event` carrying `msg` (a record as ASCII JSON).
pub fn message(event: &AuditEvent, facility: Facility, msg: &str) -> String {
    let pri = u16::from(facility.code()) * 8 + u16::from(severity(event));
    let kind = event.kind.as_str();
    let msgid = if (1..=32).contains(&kind.len()) && kind.bytes().all(|b| (33..=126).contains(&b)) {
        kind
    } else {
        "-"
    };
    format!(
        "<{pri}>1 {} {} {APP_NAME} - {msgid} - {msg}",
        event.time, event.node
    )
}

/// `message` framed for a stream by octet counting: `"{len} {message}"` (RFC 6587
/// §3.4.1), so a message may hold any byte, a newline included.
pub fn octet_counted(message: &str) -> String {
    format!("{} {message}", message.len())
}
