//! W3C Trace Context on the API: every request gets its trace ([`RequestTrace`], in
//! its extensions) from a valid `traceparent`, or a new one; handlers record its trace
//! id in the audit event; and when OTLP export is on ([`crate::otlp`]), one server span
//! per request goes to the exporter. A bad `traceparent` is never an error: it starts a
//! new trace, as the recommendation says.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{Extensions, HeaderMap};
use axum::response::Response;
use mandate_core::clock::Clock;
use mandate_core::random::Random;
use mandate_core::trace::{
    AttrValue, RequestTrace, Span, SpanKind, SpanSink, TRACEPARENT, TRACESTATE, TraceId,
};

/// The trace id of the request whose extensions these are.
pub(crate) fn trace_id(ext: &Extensions) -> Option<TraceId> {
    ext.get::<RequestTrace>().map(|t| t.trace_id)
}

/// What a handler tells the request's span: the decision and the agent.
#[derive(Debug, Clone)]
pub(crate) struct Noted {
    decision: &'static str,
    agent: Option<String>,
}

/// Notes the decision (and agent) on `res` for the request's span.
pub(crate) fn note(res: &mut Response, decision: &'static str, agent: Option<String>) {
    res.extensions_mut().insert(Noted { decision, agent });
}

/// The trace of a request with `headers`: the caller's valid `traceparent`, or new.
pub(crate) fn of_headers(
    headers: &HeaderMap,
    random: &dyn Random,
    sink: &dyn SpanSink,
) -> Option<RequestTrace> {
    let values = |name: &str| -> Option<Vec<&str>> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().ok())
            .collect()
    };
    // A value that is not visible ASCII is no valid header: two values read as invalid.
    let parent = values(TRACEPARENT).unwrap_or_else(|| vec!["", ""]);
    let state = values(TRACESTATE).unwrap_or_default();
    RequestTrace::from_headers(&parent, state, random, |t| sink.sample_new(t)).ok()
}

/// The layer that gives each API request its trace and span.
#[derive(Clone)]
pub(crate) struct TraceLayer {
    pub(crate) random: Arc<dyn Random>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`TraceLayer`].
#[derive(Clone)]
pub(crate) struct Traced<S> {
    inner: S,
    layer: TraceLayer,
}

impl<S> tower::Service<Request> for Traced<S>
where
    S: tower::Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let sink = crate::otlp::sink();
        let trace = of_headers(req.headers(), self.layer.random.as_ref(), sink);
        let Some(trace) = trace else {
            return Box::pin(self.inner.call(req));
        };
        req.extensions_mut().insert(trace.clone());
        if !(trace.sampled && sink.enabled()) {
            return Box::pin(self.inner.call(req));
        }
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let start_unix_nanos = u64::try_from(self.layer.clock.now_millis())
            .unwrap_or(0)
            .saturating_mul(1_000_000);
        #[expect(
            clippy::disallowed_methods,
            reason = "span length, a latency measurement like the access log's timer"
        )]
        let started = std::time::Instant::now();
        let res = self.inner.call(req);
        Box::pin(async move {
            let res = res.await?;
            let status = res.status();
            let mut attributes = vec![
                ("http.request.method", AttrValue::Str(method.clone())),
                ("url.path", AttrValue::Str(path)),
                (
                    "http.response.status_code",
                    AttrValue::Int(i64::from(status.as_u16())),
                ),
            ];
            if let Some(n) = res.extensions().get::<Noted>() {
                attributes.push(("mandate.decision", AttrValue::Str(n.decision.into())));
                if let Some(a) = &n.agent {
                    attributes.push(("mandate.agent", AttrValue::Str(a.clone())));
                }
            }
            let length = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            sink.record(Span {
                trace_id: trace.trace_id,
                span_id: trace.span_id,
                parent: trace.parent,
                name: method,
                kind: SpanKind::Server,
                start_unix_nanos,
                end_unix_nanos: start_unix_nanos.saturating_add(length),
                attributes,
                error: status.is_server_error(),
                trace_state: trace.tracestate,
            });
            Ok(res)
        })
    }
}
