//! What a node counts for Prometheus (`GET /metrics`, docs/metrics.md): every metric's
//! name, labels and meaning, and the calls that record them, through the `metrics`
//! facade. The recorder is the binary's (mandate-http renders it); with none installed
//! every call here does nothing, so tests and tools that never scrape pay nothing.
//!
//! INVARIANT (bounded labels): every label value is a `&'static str` of a closed set —
//! an enum's code ([`Surface`], `Verdict`, `Reason`, an RFC 6749 error code, a severity),
//! or an operator-chosen export sink name. Never an agent, user, token or request id:
//! each label value is a time series Prometheus keeps.

use std::time::Duration;

use mandate_audit::event::AuditEvent;
use mandate_core::decision::Reason;

use mandate_store::prelude::*;

use crate::Node;

/// `mandate_decisions_total{surface, outcome, reason}` (counter).
pub const DECISIONS: &str = "mandate_decisions_total";
/// `mandate_decision_duration_seconds` (histogram).
pub const DECISION_DURATION: &str = "mandate_decision_duration_seconds";
/// `mandate_tokens_issued_total{grant_type}` (counter).
pub const TOKENS_ISSUED: &str = "mandate_tokens_issued_total";
/// `mandate_tokens_refused_total{error}` (counter).
pub const TOKENS_REFUSED: &str = "mandate_tokens_refused_total";
/// Presentations of agent tokens refused for DPoP (`dpop.rs`), by reason.
pub const DPOP_REFUSED: &str = "mandate_dpop_refused_total";
/// Presentations of certificate-bound agent tokens (RFC 8705) refused, by reason.
pub const MTLS_REFUSED: &str = "mandate_mtls_refused_total";
/// `mandate_audit_queue_depth` (gauge, set at scrape time).
pub const AUDIT_QUEUE_DEPTH: &str = "mandate_audit_queue_depth";
/// `mandate_audit_commit_duration_seconds` (histogram).
pub const AUDIT_COMMIT_DURATION: &str = "mandate_audit_commit_duration_seconds";
/// `mandate_audit_events_total` (counter).
pub const AUDIT_EVENTS: &str = "mandate_audit_events_total";
/// `mandate_audit_commit_failures_total` (counter).
pub const AUDIT_COMMIT_FAILURES: &str = "mandate_audit_commit_failures_total";
/// `mandate_snapshot_age_seconds` (gauge, set at scrape time).
pub const SNAPSHOT_AGE: &str = "mandate_snapshot_age_seconds";
/// `mandate_snapshot_refreshes_total{outcome}` (counter).
pub const SNAPSHOT_REFRESHES: &str = "mandate_snapshot_refreshes_total";
/// `mandate_anomalies_total{severity}` (counter).
pub const ANOMALIES: &str = "mandate_anomalies_total";
/// `mandate_export_lag_events{sink}` (gauge, set at scrape time).
pub const EXPORT_LAG: &str = "mandate_export_lag_events";
/// `mandate_export_delivered_total{sink}` (counter, set at scrape time).
pub const EXPORT_DELIVERED: &str = "mandate_export_delivered_total";
/// `mandate_activity_dropped_total` (counter).
pub const ACTIVITY_DROPPED: &str = "mandate_activity_dropped_total";
/// `mandate_jwks_fetches_total{issuer, outcome}` (counter).
pub const JWKS_FETCHES: &str = "mandate_jwks_fetches_total";
/// `mandate_jwks_usable_seconds{issuer}` (gauge, set at scrape time).
pub const JWKS_USABLE: &str = "mandate_jwks_usable_seconds";
/// The outcomes of a JWKS fetch.
pub const JWKS_OUTCOMES: [&str; 4] = ["ok", "unreachable", "status", "invalid"];
/// `mandate_tls_reloads_total{outcome}` (counter).
pub const TLS_RELOADS: &str = "mandate_tls_reloads_total";
/// `mandate_throttled_total{reason}` (counter): requests refused 429 by the
/// failed-authentication back-off (mandate-http throttle.rs).
pub const THROTTLED: &str = "mandate_throttled_total";
/// `mandate_throttle_evictions_total` (counter).
pub const THROTTLE_EVICTIONS: &str = "mandate_throttle_evictions_total";
/// `mandate_body_timeouts_total` (counter).
pub const BODY_TIMEOUTS: &str = "mandate_body_timeouts_total";
/// `mandate_header_timeouts_total{listener}` (counter).
pub const HEADER_TIMEOUTS: &str = "mandate_header_timeouts_total";
/// `mandate_connections_queued_total{listener}` (counter).
pub const CONNECTIONS_QUEUED: &str = "mandate_connections_queued_total";

/// The reasons of [`THROTTLED`].
pub const THROTTLE_REASONS: [&str; 2] = ["client_auth", "admin_token"];
/// The listeners of [`HEADER_TIMEOUTS`] and [`CONNECTIONS_QUEUED`].
pub const LISTENERS: [&str; 4] = ["api", "gateway", "opa", "metrics"];

/// The histograms' bucket bounds in seconds: a decision takes tens of microseconds to
/// a few milliseconds with its group commit, a commit one fsync (about a millisecond on
/// a local disk, more on a shared store); the top buckets catch a stalled disk.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
];

/// Gives every metric its `# HELP` text, and the counters whose label sets are small
/// and closed a first sample of 0, so a scrape shows them (and `rate()` sees their first
/// increment) before anything happened; called once the recorder is installed.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    for g in ["client_credentials", "token_exchange"] {
        metrics::counter!(TOKENS_ISSUED, "grant_type" => g).increment(0);
    }
    for s in mandate_core::risk::Severity::ALL {
        metrics::counter!(ANOMALIES, "severity" => s.as_str()).increment(0);
    }
    metrics::counter!(AUDIT_EVENTS).increment(0);
    metrics::counter!(AUDIT_COMMIT_FAILURES).increment(0);
    metrics::counter!(ACTIVITY_DROPPED).increment(0);
    for o in ["ok", "failed"] {
        metrics::counter!(TLS_RELOADS, "outcome" => o).increment(0);
    }
    for r in THROTTLE_REASONS {
        metrics::counter!(THROTTLED, "reason" => r).increment(0);
    }
    for l in LISTENERS {
        metrics::counter!(HEADER_TIMEOUTS, "listener" => l).increment(0);
        metrics::counter!(CONNECTIONS_QUEUED, "listener" => l).increment(0);
    }
    metrics::counter!(THROTTLE_EVICTIONS).increment(0);
    metrics::counter!(BODY_TIMEOUTS).increment(0);
    describe_counter!(
        THROTTLED,
        "Requests refused 429 while their source (or client id from that source) was backed off after failed authentications, by reason (client_auth, admin_token)"
    );
    describe_counter!(
        THROTTLE_EVICTIONS,
        "Back-off entries dropped because the table was full (limits.auth_tracked_max)"
    );
    describe_counter!(
        BODY_TIMEOUTS,
        "API request bodies cut because they did not arrive whole within limits.body_read_timeout_secs (answered 408)"
    );
    describe_counter!(
        HEADER_TIMEOUTS,
        "Connections closed because a request head (or the TLS handshake) did not arrive within limits.header_read_timeout_secs, by listener"
    );
    describe_counter!(
        CONNECTIONS_QUEUED,
        "Connections that waited in the backlog because the listener had limits.max_connections open, by listener"
    );
    describe_counter!(
        TLS_RELOADS,
        "Reloads of a listener's TLS certificate and key (SIGHUP or a changed file), by outcome (ok, or failed: the previous one is still served)"
    );
    describe_counter!(
        ACTIVITY_DROPPED,
        "Last-activity notes dropped because a million subjects were waiting for the next flush"
    );
    describe_counter!(
        DECISIONS,
        "Decisions answered (recorded before the answer), by enforcement point, verdict and reason code"
    );
    describe_histogram!(
        DECISION_DURATION,
        Unit::Seconds,
        "POST /v1/authorize: from its request body in to its answer ready (decided and recorded)"
    );
    describe_counter!(TOKENS_ISSUED, "Access tokens issued, by grant type");
    describe_counter!(
        DPOP_REFUSED,
        "Agent tokens refused at a resource for their DPoP presentation, by reason code"
    );
    describe_counter!(
        MTLS_REFUSED,
        "Certificate-bound agent tokens refused at a resource for the connection's client certificate, by reason code"
    );
    describe_counter!(
        TOKENS_REFUSED,
        "Token requests refused (and recorded as token.refused), by RFC 6749 error code"
    );
    describe_gauge!(
        AUDIT_QUEUE_DEPTH,
        "Audit writer jobs queued and not yet taken (16384 refuses new events)"
    );
    describe_histogram!(
        AUDIT_COMMIT_DURATION,
        Unit::Seconds,
        "One group commit of the audit log: a store transaction and its fsync"
    );
    describe_counter!(AUDIT_EVENTS, "Audit events committed to this node's log");
    describe_counter!(
        AUDIT_COMMIT_FAILURES,
        "Audit group commits the store refused (their requests were refused)"
    );
    describe_gauge!(
        SNAPSHOT_AGE,
        Unit::Seconds,
        "Age of this node's proof that its decision snapshot is current (0 on a single node; +Inf before the first proof or after a failed refresh)"
    );
    describe_counter!(
        SNAPSHOT_REFRESHES,
        "Decision snapshot rebuilds, by outcome (ok or failed)"
    );
    describe_counter!(ANOMALIES, "Anomalies the detector raised, by severity");
    describe_gauge!(
        EXPORT_LAG,
        "Events of this node's log an export sink has not delivered yet"
    );
    describe_counter!(
        EXPORT_DELIVERED,
        "Events an export sink delivered since this node started"
    );
    describe_counter!(
        JWKS_FETCHES,
        "Fetches of a trusted issuer's JWKS (jwks_uri or discovery), by outcome: ok, unreachable, status (not 200), invalid (not a usable JWKS or discovery document)"
    );
    describe_gauge!(
        JWKS_USABLE,
        Unit::Seconds,
        "Seconds until a fetched issuer's keys stop being used (its next refresh due plus jwks_max_stale_secs); at or below 0 its tokens are refused"
    );
}

/// Gives a fetched issuer's counters their first samples (the issuer is the
/// operator's, a closed set).
pub fn jwks_source(issuer: &str) {
    for o in JWKS_OUTCOMES {
        metrics::counter!(JWKS_FETCHES, "issuer" => issuer.to_owned(), "outcome" => o).increment(0);
    }
}

/// Counts one JWKS fetch of `issuer` (an outcome of [`JWKS_OUTCOMES`]).
pub fn jwks_fetched(issuer: &str, outcome: &'static str) {
    metrics::counter!(JWKS_FETCHES, "issuer" => issuer.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// The enforcement point a decision was asked through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `POST /v1/authorize` and `/v1/authorize/batch`.
    Authorize,
    /// The AuthZEN evaluation endpoints.
    Authzen,
    /// The OPA-compatible Data API.
    Opa,
    /// The HTTP reverse-proxy gateway.
    GatewayHttp,
    /// The MCP gateway.
    GatewayMcp,
}

impl Surface {
    /// Its label value.
    pub fn code(self) -> &'static str {
        match self {
            Self::Authorize => "authorize",
            Self::Authzen => "authzen",
            Self::Opa => "opa",
            Self::GatewayHttp => "gateway_http",
            Self::GatewayMcp => "gateway_mcp",
        }
    }
}

/// A decision event's `(outcome, reason)` labels; `None` for an event that is not a
/// decision (kinds `decision` and `opa.decision` are; an AuthZEN search's is not). Read
/// back from the event as decisions.rs and opa.rs wrote it, through their closed sets
/// (`INVARIANT (bounded labels)`): a value outside them is `none`.
pub(crate) fn decision_labels(e: &AuditEvent) -> Option<(&'static str, &'static str)> {
    if e.kind != "decision" && e.kind != "opa.decision" {
        return None;
    }
    let outcome = match e.decision.as_deref() {
        Some("allow") => "allow",
        Some("deny") => "deny",
        Some("approval_required") => "approval_required",
        _ => "none",
    };
    let reason = match e.reasons.first().map(String::as_str) {
        Some("rego_error") => "rego_error",
        Some(code) => Reason::from_code(code).map_or("none", Reason::code),
        None => "none",
    };
    Some((outcome, reason))
}

/// Counts recorded decisions, each by its [`decision_labels`].
pub(crate) fn decisions_recorded(surface: Surface, labels: &[(&'static str, &'static str)]) {
    for &(outcome, reason) in labels {
        metrics::counter!(DECISIONS, "surface" => surface.code(), "outcome" => outcome, "reason" => reason)
            .increment(1);
    }
}

/// Observes one `/v1/authorize` answer's time, from its body in to its answer ready.
pub fn decision_timed(elapsed: Duration) {
    metrics::histogram!(DECISION_DURATION).record(elapsed.as_secs_f64());
}

/// The grant a token was issued under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grant {
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 8693.
    TokenExchange,
}

/// Counts an issued (and recorded) access token.
pub(crate) fn token_issued(grant: Grant) {
    let g = match grant {
        Grant::ClientCredentials => "client_credentials",
        Grant::TokenExchange => "token_exchange",
    };
    metrics::counter!(TOKENS_ISSUED, "grant_type" => g).increment(1);
}

/// Counts a last-activity note dropped (`INVARIANT (activity is bounded)`, activity.rs).
pub(crate) fn activity_dropped() {
    metrics::counter!(ACTIVITY_DROPPED).increment(1);
}

/// Counts a refused token request by its RFC 6749 error code (the token endpoint calls
/// it once per refused request, whatever refused it).
pub fn token_refused(error: &'static str) {
    metrics::counter!(TOKENS_REFUSED, "error" => error).increment(1);
}

/// Counts an agent token refused for its DPoP presentation, by stable reason code.
pub fn dpop_refused(reason: &'static str) {
    metrics::counter!(DPOP_REFUSED, "reason" => reason).increment(1);
}

/// Counts one certificate-bound token refused at a resource (RFC 8705), by reason.
pub fn mtls_refused(reason: &'static str) {
    metrics::counter!(MTLS_REFUSED, "reason" => reason).increment(1);
}

/// Counts one audit group commit: its events when it succeeded, and how long it took.
pub(crate) fn audit_committed(events: usize, ok: bool, took: Duration) {
    metrics::histogram!(AUDIT_COMMIT_DURATION).record(took.as_secs_f64());
    if ok {
        metrics::counter!(AUDIT_EVENTS).increment(u64::try_from(events).unwrap_or(u64::MAX));
    } else {
        metrics::counter!(AUDIT_COMMIT_FAILURES).increment(1);
    }
}

/// Counts a decision snapshot rebuild.
pub(crate) fn snapshot_refreshed(ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    metrics::counter!(SNAPSHOT_REFRESHES, "outcome" => outcome).increment(1);
}

/// Counts a reload of a listener's TLS certificate and key (the binary's listeners).
pub fn tls_reloaded(ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    metrics::counter!(TLS_RELOADS, "outcome" => outcome).increment(1);
}

/// Counts a request refused by the failed-authentication back-off; `reason` is one of
/// [`THROTTLE_REASONS`].
pub fn throttled(reason: &'static str) {
    metrics::counter!(THROTTLED, "reason" => reason).increment(1);
}

/// Counts a back-off entry evicted from a full table.
pub fn throttle_evicted() {
    metrics::counter!(THROTTLE_EVICTIONS).increment(1);
}

/// Counts a request body cut at its deadline.
pub fn body_timed_out() {
    metrics::counter!(BODY_TIMEOUTS).increment(1);
}

/// Counts a connection closed at its head deadline; `listener` one of [`LISTENERS`].
pub fn header_timed_out(listener: &'static str) {
    metrics::counter!(HEADER_TIMEOUTS, "listener" => listener).increment(1);
}

/// Counts a connection that had to wait for a free slot; `listener` one of [`LISTENERS`].
pub fn connection_queued(listener: &'static str) {
    metrics::counter!(CONNECTIONS_QUEUED, "listener" => listener).increment(1);
}

/// Counts an anomaly the detector raised (and stored).
pub(crate) fn anomaly_raised(severity: &'static str) {
    metrics::counter!(ANOMALIES, "severity" => severity).increment(1);
}

/// Sets the gauges that are read rather than counted, just before a scrape renders:
/// the audit queue's depth, the snapshot proof's age, each export sink's lag and
/// deliveries. Blocking (the log's length is read from the store, as `GET /v1/export`
/// does); a store error leaves the export gauges as the last scrape set them.
pub fn observe(node: &Node) {
    metrics::gauge!(AUDIT_QUEUE_DEPTH).set(node.audit.queue_depth() as f64);
    let age = if node.snapshot.is_stale() {
        f64::INFINITY
    } else if node.proof.is_local() {
        0.0
    } else {
        node.proof_age().map_or(f64::INFINITY, |a| a.as_secs_f64())
    };
    metrics::gauge!(SNAPSHOT_AGE).set(age);
    let now = node.clock.now().secs();
    for t in node.config.users.iter() {
        if let Some(cell) = t.key_cell() {
            let (keys, until) = cell.status();
            let left = if keys == 0 {
                0
            } else {
                until.secs().saturating_sub(now)
            };
            metrics::gauge!(JWKS_USABLE, "issuer" => t.issuer().to_owned()).set(left as f64);
        }
    }
    match node.db.audit_len() {
        Ok(len) => {
            for s in node.export.statuses(len) {
                metrics::gauge!(EXPORT_LAG, "sink" => s.name.clone()).set(s.lag as f64);
                metrics::counter!(EXPORT_DELIVERED, "sink" => s.name).absolute(s.delivered);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the audit log's length is unreadable"),
    }
}
