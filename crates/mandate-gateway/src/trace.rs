//! W3C Trace Context at the gateways: the trace a request belongs to (the caller's
//! `traceparent` when valid, else a new trace), the `traceparent`/`tracestate` the
//! gateway sends its upstream, and the spans it hands the authorizer's sink.
//!
//! INVARIANT (trace headers are the gateway's): the client's `traceparent` and
//! `tracestate` never reach an upstream as sent; the gateway sets its own (same trace id,
//! its own span as parent, the caller's `tracestate` unchanged when its `traceparent`
//! was valid), once. They name a trace, never a method, target or credential, so they
//! cannot change what was decided (`INVARIANT (forward what was decided)`).

use std::time::Instant;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use mandate_core::clock::Clock;
use mandate_core::random::OsRandom;
use mandate_core::trace::{
    AttrValue, RequestTrace, Span, SpanId, SpanKind, SpanSink, TRACEPARENT, TRACESTATE,
};

use crate::authz::Authorizer;

/// The trace of a request with `headers`, as the authorizer starts it.
pub(crate) fn of_request(authz: &dyn Authorizer, headers: &HeaderMap) -> Option<RequestTrace> {
    let values = |name: &str| -> Option<Vec<&str>> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().ok())
            .collect()
    };
    // A value that is not visible ASCII cannot be a valid header of either kind.
    let parent = values(TRACEPARENT).unwrap_or_else(|| vec!["", ""]);
    let state = values(TRACESTATE).unwrap_or_default();
    authz.trace(&parent, &state)
}

/// Whether `name` is a trace header the gateway sets itself.
pub(crate) fn is_trace_header(name: &HeaderName) -> bool {
    name.as_str() == TRACEPARENT || name.as_str() == TRACESTATE
}

/// Sets the upstream's `traceparent` (child of `span`) and `tracestate`, replacing any
/// value already in `headers`.
pub(crate) fn set_upstream(headers: &mut HeaderMap, trace: &RequestTrace, span: SpanId) {
    headers.remove(TRACEPARENT);
    headers.remove(TRACESTATE);
    if let Ok(v) = HeaderValue::from_str(&trace.traceparent_for(span)) {
        headers.insert(HeaderName::from_static(TRACEPARENT), v);
    }
    if let Some(state) = &trace.tracestate
        && let Ok(v) = HeaderValue::from_str(state)
    {
        headers.insert(HeaderName::from_static(TRACESTATE), v);
    }
}

/// A span being timed: its wall-clock start (from the gateway's clock) and a monotonic
/// timer for its length.
pub(crate) struct Timer {
    start_unix_nanos: u64,
    started: Instant,
}

impl Timer {
    /// Starts timing now.
    pub(crate) fn start(clock: &dyn Clock) -> Self {
        #[expect(
            clippy::disallowed_methods,
            reason = "span length, a latency measurement like the access log's timer"
        )]
        let started = Instant::now();
        Self {
            start_unix_nanos: u64::try_from(clock.now_millis())
                .unwrap_or(0)
                .saturating_mul(1_000_000),
            started,
        }
    }

    /// The finished span, handed to `sink` when the trace is sampled.
    #[expect(clippy::too_many_arguments, reason = "one span's fields")]
    pub(crate) fn finish(
        &self,
        sink: &dyn SpanSink,
        trace: &RequestTrace,
        span_id: SpanId,
        parent: Option<SpanId>,
        kind: SpanKind,
        name: String,
        attributes: Vec<(&'static str, AttrValue)>,
        error: bool,
    ) {
        if !trace.sampled || !sink.enabled() {
            return;
        }
        let length = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        sink.record(Span {
            trace_id: trace.trace_id,
            span_id,
            parent,
            name,
            kind,
            start_unix_nanos: self.start_unix_nanos,
            end_unix_nanos: self.start_unix_nanos.saturating_add(length),
            attributes,
            error,
            trace_state: trace.tracestate.clone(),
        });
    }
}

/// A new span id for a call the gateway makes (the OS random source, like the trace's).
pub(crate) fn new_span() -> Option<SpanId> {
    SpanId::random(&OsRandom).ok()
}
