//! What a gateway asks of Mandate: authenticate the agent's token, decide, and record —
//! the server implements it with the same decision path as `/v1/authorize`.

use std::future::Future;
use std::pin::Pin;

use mandate_core::random::OsRandom;
pub use mandate_core::trace::{NoSpans, RequestTrace, SpanSink, TraceId};
use serde_json::Value;

/// A boxed future (the trait is used as `dyn Authorizer`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One question from a gateway.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The agent's bearer token as presented (verified by the authorizer; never
    /// forwarded upstream).
    pub token: String,
    /// The resource URI the token must be issued for (its `aud`, RFC 8707): the
    /// gateway's own URL for the route or MCP endpoint.
    pub audience: String,
    /// The action, e.g. `crm:read` or `mcp:call_tool`.
    pub action: String,
    /// The resource's entity type, e.g. `Crm::Contact` or `Mcp::Tool`.
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: String,
    /// The resource's attributes (empty: none). At the HTTP gateway they come from the
    /// route's `resource_attributes`; what a template renders from the request is the
    /// caller's claim.
    pub resource_attributes: serde_json::Map<String, Value>,
    /// The request context (a JSON object), e.g. `{"tool_arguments": …}`.
    pub context: Value,
    /// The enforcement point and what it saw (route, method, path), for the record.
    pub via: Value,
    /// The W3C trace of the request (the caller's valid `traceparent`'s, or new), for
    /// the record.
    pub trace_id: Option<TraceId>,
}

/// The decision (allow, deny, approval required) and its deciding reason, as the
/// decision engine names them.
pub use mandate_core::decision::{Reason, Verdict};

/// The answer to an [`Ask`].
#[derive(Debug, Clone)]
pub struct Answer {
    /// The deciding reason: what the gateway matches on; the verdict follows from it
    /// ([`Answer::verdict`]).
    pub reason: Reason,
    /// What the decision adds to the reason (missing boundary grants, policy details),
    /// for the wire after the reason's code ([`Answer::reasons`]).
    pub details: Vec<String>,
    /// The audit event id of the decision (already durable when `Answer` is returned).
    pub decision_id: String,
    /// The agent the token named.
    pub agent: Option<String>,
}

impl Answer {
    /// Allow, deny or approval required: only `allowed_by_policy` allows.
    pub fn verdict(&self) -> Verdict {
        self.reason.verdict()
    }

    /// For the wire: the stable reason codes, the deciding one first, then the details.
    ///
    /// INVARIANT (reason first): the first entry is always `reason`'s code: it is built
    /// here from the typed reason, never stored beside it.
    pub fn reasons(&self) -> Vec<&str> {
        std::iter::once(self.reason.code())
            .chain(self.details.iter().map(String::as_str))
            .collect()
    }
}

/// Who may act with a token that verified for a gateway's audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The acting agent: the one the token was issued to and that authenticated to get
    /// it (`client_id`, which is `act.sub` for an exchanged token), whatever `sub`
    /// names. Sessions, streams and caps belong to it.
    pub agent: String,
    /// The token's `jti`.
    pub token_id: String,
    /// The token's `exp` (seconds since the epoch).
    pub expires_at: i64,
}

/// How the agent presented its token to a gateway (RFC 9449 §7): the scheme, the
/// `DPoP` header values and the request they must be proofs for.
#[derive(Debug, Clone)]
pub struct Presented<'a> {
    /// The token.
    pub token: &'a str,
    /// `Authorization: DPoP` (else `Bearer`).
    pub dpop: bool,
    /// Every `DPoP` header value.
    pub proofs: Vec<&'a str>,
    /// The request's method.
    pub method: &'a str,
    /// The request's URL as the agent reached it: the gateway's `public_url` and the
    /// path as sent.
    pub url: String,
    /// The DER leaf certificate of the client's TLS connection to the gateway, when it
    /// terminates TLS and the client presented one (`mandate_tls::server::Peer`): a
    /// certificate-bound token (RFC 8705) is accepted only with the certificate it is
    /// bound to.
    pub certificate: Option<&'a [u8]>,
}

/// A token refused for how it was presented (RFC 9449): 401 with a `DPoP` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopRefusal {
    /// The RFC 9449 / RFC 6750 error code (`invalid_token`, `invalid_dpop_proof`,
    /// `use_dpop_nonce`).
    pub error: &'static str,
    /// The stable reason (`dpop_htu`, `dpop_bound_token_as_bearer`, …).
    pub reason: &'static str,
    /// A fresh server nonce for `use_dpop_nonce`.
    pub nonce: Option<String>,
}

impl DpopRefusal {
    /// The `WWW-Authenticate` value (RFC 9449 §7.1).
    pub fn challenge(&self) -> String {
        format!(
            "DPoP error=\"{}\", error_description=\"{}\", algs=\"EdDSA Ed25519 ES256\"",
            self.error, self.reason
        )
    }
}

/// Why there is no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthzError {
    /// The token was presented the wrong way for its binding, or its DPoP proof is
    /// refused: answer 401 with [`DpopRefusal::challenge`].
    #[error("DPoP: {}", .0.reason)]
    Dpop(DpopRefusal),
    /// The token is missing, does not verify, has expired or is not for this audience:
    /// answer 401 with `WWW-Authenticate`.
    #[error("invalid token: {0}")]
    Unauthenticated(String),
    /// The token verifies and is for this audience, but its holder may not act now
    /// (the agent or one it acts for is suspended or decommissioned, the mandate has
    /// ended): answer 403 and open or forward nothing. The text is the reason code.
    #[error("refused: {0}")]
    Forbidden(String),
    /// The decision path or the audit log failed: answer 503 and forward nothing.
    #[error("authorization unavailable: {0}")]
    Unavailable(String),
}

/// Mandate's decision path, as a gateway sees it.
pub trait Authorizer: Send + Sync + 'static {
    /// Decides `ask` and records the decision durably before returning. Any error is
    /// an error, never an allow.
    fn authorize(&self, ask: Ask) -> BoxFuture<'_, Result<Answer, AuthzError>>;

    /// Authenticates `token` for `audience` without deciding anything: signature, type,
    /// issuer, window, audience, revocation and the whole holder chain (every agent
    /// active, the mandate live), against the current snapshot. Called before a request
    /// body is read, when a session or stream is opened, and again whenever
    /// [`Authorizer::changes`] fires while a stream is open.
    fn authenticate(&self, token: &str, audience: &str) -> Result<Principal, AuthzError>;

    /// [`Authorizer::authenticate`] for a token as the agent presented it, also holding
    /// it to its sender constraint (a DPoP-bound token only under `DPoP`, with a valid
    /// proof for this request). Every request a gateway receives is authenticated
    /// through here; `authenticate` alone re-checks a token already presented (an open
    /// stream's lease). The default knows no DPoP: it refuses the `DPoP` scheme and
    /// authenticates a `Bearer` token; Mandate's authorizer overrides it.
    fn authenticate_presented(
        &self,
        p: &Presented<'_>,
        audience: &str,
    ) -> Result<Principal, AuthzError> {
        if p.dpop {
            return Err(AuthzError::Unauthenticated(
                "DPoP is not supported by this authorizer".to_owned(),
            ));
        }
        self.authenticate(p.token, audience)
    }

    /// Fires whenever what decisions read may have changed (a new snapshot: a
    /// suspension, containment, revocation, policy change) or became unreadable (a
    /// stale snapshot). A gateway holding an open stream re-authenticates on each
    /// change and closes the stream when that fails.
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Decides without recording (for filtering what to show, e.g. `tools/list`; never
    /// for letting a request through).
    fn check(&self, ask: &Ask) -> Result<Verdict, AuthzError>;

    /// Records what became of a forwarded request (upstream status, latency), linked
    /// to its decision. Best effort: the decision was recorded before forwarding. The
    /// future owns what it needs, so a gateway can spawn it.
    fn record_result(&self, decision_id: String, result: Value) -> BoxFuture<'static, ()>;

    /// The authorization server's issuer URL (for RFC 9728 metadata).
    fn issuer(&self) -> String;

    /// The clear value of upstream secret `name` (stored encrypted by Mandate), to be
    /// injected into a forwarded request and nowhere else. `Ok(None)`: no such secret.
    fn secret(&self, name: &str) -> Result<Option<String>, AuthzError>;

    /// The W3C trace of a request that sent these `traceparent` and `tracestate`
    /// values: the caller's trace when valid, else a new one; `None` only when the random
    /// source fails (the request then goes on untraced). By default new traces are not
    /// sampled and ids come from the OS.
    fn trace(&self, traceparent: &[&str], tracestate: &[&str]) -> Option<RequestTrace> {
        RequestTrace::from_headers(traceparent, tracestate.iter().copied(), &OsRandom, |_| {
            false
        })
        .ok()
    }

    /// Where the gateway's spans go (by default nowhere).
    fn spans(&self) -> &dyn SpanSink {
        &NoSpans
    }
}
