//! The gateways' door into the decision path: [`GatewayAuthorizer`] implements
//! `mandate_gateway::authz::Authorizer` with the same decision function, detector and
//! audit log as `/v1/authorize` (`mandate_service::decisions`); and the API of the
//! upstream secrets the gateways inject (`/v1/gateway/secrets`: set, list names,
//! delete), kept by the node (`mandate_service::secrets`) and never returned.
//!
//! The adapter is here, not in the service layer, because the `Authorizer` port is
//! mandate-gateway's and that crate speaks HTTP (hyper); everything it calls is the
//! service's.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mandate_api as api;
use mandate_core::trace::{RequestTrace, SpanSink};
use mandate_gateway::authz::{
    Answer, Ask, Authorizer, AuthzError, BoxFuture, DpopRefusal, Presented, Principal as Acting,
    Verdict,
};
use serde_json::{Value, json};

use crate::Node;
use crate::decide::{Principal, Reason, Resource, TokenAudience};
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, ApiPath};
use mandate_service::decisions::{Question, decide_question, record_decision, verified_claims};
use mandate_service::metrics::Surface;
use mandate_service::secrets::SecretError;

/// The decision path for the gateways.
#[derive(Debug, Clone)]
pub struct GatewayAuthorizer {
    state: Arc<Node>,
}

impl GatewayAuthorizer {
    /// Over `state`.
    pub fn new(state: Arc<Node>) -> Self {
        Self { state }
    }
}

fn denied_token(reason: Reason) -> bool {
    matches!(reason, Reason::InvalidToken | Reason::TokenRevoked)
}

/// A stale snapshot: 503, nothing forwarded.
fn unavailable(e: crate::error::StaleSnapshot) -> AuthzError {
    AuthzError::Unavailable(e.to_string())
}

/// The claims of `token` if it verifies and was issued for the gateway resource
/// `audience` (RFC 8707 / MCP authorization: a token is only good for the resource it
/// was issued for); otherwise `Unauthenticated`, before anything is decided or recorded.
fn verified_for(
    state: &Node,
    snapshot: &crate::decide::Snapshot,
    token: &str,
    audience: &str,
    now: mandate_core::time::Timestamp,
) -> Result<Arc<mandate_token::access::AccessClaims>, AuthzError> {
    let claims = verified_claims(state, snapshot, token, now)
        .ok_or_else(|| AuthzError::Unauthenticated("the token does not verify".into()))?;
    if !TokenAudience::Resource(audience).accepts(snapshot, &claims) {
        return Err(AuthzError::Unauthenticated(format!(
            "the token is not issued for `{audience}`"
        )));
    }
    Ok(claims)
}

/// The resource a gateway asks about, as `/v1/authorize` takes it (attributes: none is
/// null).
fn resource_of(ask: &Ask) -> Resource {
    Resource {
        type_name: ask.resource_type.clone(),
        id: ask.resource_id.clone(),
        attributes: if ask.resource_attributes.is_empty() {
            Value::Null
        } else {
            Value::Object(ask.resource_attributes.clone())
        },
    }
}

impl Authorizer for GatewayAuthorizer {
    fn trace(&self, traceparent: &[&str], tracestate: &[&str]) -> Option<RequestTrace> {
        let sink = crate::otlp::sink();
        RequestTrace::from_headers(
            traceparent,
            tracestate.iter().copied(),
            self.state.random.as_ref(),
            |t| sink.sample_new(t),
        )
        .ok()
    }

    fn spans(&self) -> &dyn SpanSink {
        crate::otlp::sink()
    }

    fn authorize(&self, ask: Ask) -> BoxFuture<'_, Result<Answer, AuthzError>> {
        Box::pin(async move {
            let state = &self.state;
            let snapshot = state.snapshot().map_err(unavailable)?;
            let now = state.clock.now();
            let claims = verified_for(state, &snapshot, &ask.token, &ask.audience, now)?;
            let resource = resource_of(&ask);
            let context = if ask.context.is_object() {
                ask.context.clone()
            } else {
                json!({})
            };
            let (d, event, seen) = decide_question(
                state,
                &snapshot,
                now,
                Question {
                    principal: Principal::Verified(&claims),
                    action: &ask.action,
                    resource: &resource,
                    context: &context,
                    request_id: None,
                    trace_id: ask.trace_id,
                    actor: None,
                    via: Some(ask.via.clone()),
                    // Checked above already (a 401, nothing recorded); stated again so the
                    // decision path holds it by itself.
                    audience: TokenAudience::Resource(&ask.audience),
                },
            );
            // INVARIANT (gateway fail closed): the decision is durable before anything
            // is forwarded; if it cannot be recorded there is no answer.
            // Which gateway asked, as it says in `via` (mandate-gateway's http.rs, mcp.rs).
            let surface = match ask.via.get("gateway").and_then(Value::as_str) {
                Some("mcp") => Surface::GatewayMcp,
                _ => Surface::GatewayHttp,
            };
            let id = record_decision(state, surface, event, seen, None)
                .await
                .map_err(|e| AuthzError::Unavailable(ApiError::from(e).code().to_owned()))?;
            if denied_token(d.reason()) {
                return Err(AuthzError::Unauthenticated(d.reasons().join("; ")));
            }
            Ok(Answer {
                reason: d.reason(),
                agent: d.agent.as_ref().map(ToString::to_string),
                details: d.details,
                decision_id: id,
            })
        })
    }

    fn authenticate(&self, token: &str, audience: &str) -> Result<Acting, AuthzError> {
        let state = &self.state;
        let snapshot = state.snapshot().map_err(unavailable)?;
        let now = state.clock.now();
        let claims = verified_for(state, &snapshot, token, audience, now)?;
        // The anomaly detector's suspensions are in force before the snapshot has them.
        let holder = crate::decide::holder(&snapshot, &claims, now).map_err(|r| {
            if denied_token(r.reason) {
                AuthzError::Unauthenticated(r.reason.code().to_owned())
            } else {
                AuthzError::Forbidden(r.reason.code().to_owned())
            }
        })?;
        if let Some(d) = state.detector()
            && (d.is_suspended(holder.agent.id.as_str())
                || holder.chain.iter().any(|a| d.is_suspended(a.id.as_str())))
        {
            return Err(AuthzError::Forbidden(
                Reason::AgentSuspended.code().to_owned(),
            ));
        }
        Ok(Acting {
            agent: holder.agent.id.to_string(),
            token_id: claims.jti.clone(),
            expires_at: claims.exp,
        })
    }

    fn authenticate_presented(
        &self,
        p: &Presented<'_>,
        audience: &str,
    ) -> Result<Acting, AuthzError> {
        let state = &self.state;
        {
            let snapshot = state.snapshot().map_err(unavailable)?;
            let now = state.clock.now();
            let claims = verified_for(state, &snapshot, p.token, audience, now)?;
            // INVARIANT (bound to a certificate), mandate_service::dpop: the gateway
            // terminates TLS, so the certificate compared is the one the agent presented
            // to it.
            let certificate = p
                .certificate
                .map(mandate_token::access::certificate_thumbprint);
            // INVARIANT (bound stays bound), mandate_service::dpop: at the gateway the
            // proof names the gateway's own public URL.
            let presentation = mandate_service::dpop::Presentation {
                scheme: if p.dpop {
                    mandate_service::dpop::Scheme::Dpop
                } else {
                    mandate_service::dpop::Scheme::Bearer
                },
                proofs: &p.proofs,
                method: p.method,
                url: &p.url,
                certificate: certificate.as_deref(),
            };
            let surface = if audience.ends_with("/mcp") {
                "gateway:mcp"
            } else {
                "gateway:http"
            };
            mandate_service::dpop::check_sender(state, &claims, p.token, &presentation, surface)
                .map_err(|e| {
                    AuthzError::Dpop(DpopRefusal {
                        error: e.oauth_error(),
                        reason: e.code(),
                        nonce: match e {
                            mandate_service::dpop::SenderError::Proof(
                                mandate_token::dpop::DpopError::Nonce,
                            ) => state.dpop().nonce(now),
                            _ => None,
                        },
                    })
                })?;
        }
        self.authenticate(p.token, audience)
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.state.snapshot_changes()
    }

    fn check(&self, ask: &Ask) -> Result<Verdict, AuthzError> {
        let state = &self.state;
        let snapshot = state.snapshot().map_err(unavailable)?;
        let now = state.clock.now();
        let claims = verified_for(state, &snapshot, &ask.token, &ask.audience, now)?;
        let resource = resource_of(ask);
        // A look, not an action: no record and no learning by the detector.
        let d = crate::decide::decide(
            &snapshot,
            &crate::decide::DecisionRequest {
                principal: Principal::Verified(&claims),
                action: &ask.action,
                resource: &resource,
                context: &ask.context,
            },
            now,
        );
        if denied_token(d.reason()) {
            return Err(AuthzError::Unauthenticated(d.reasons().join("; ")));
        }
        Ok(d.verdict())
    }

    fn record_result(&self, decision_id: String, result: Value) -> BoxFuture<'static, ()> {
        let mut e = self.state.event("gateway.result");
        let mut details = json!({"decision_id": decision_id});
        if let (Some(d), Some(r)) = (details.as_object_mut(), result.as_object()) {
            d.extend(r.clone());
        }
        e.details = Some(details);
        // Nobody waits for it: it shares the next batch's flush.
        self.state.audit.record_lazy(e);
        Box::pin(async {})
    }

    fn issuer(&self) -> String {
        self.state.config.issuer.clone()
    }

    fn secret(&self, name: &str) -> Result<Option<String>, AuthzError> {
        Ok(self.state.secret(name))
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_field",
            "a secret name is 1-64 letters, digits, `-`, `_` or `.`",
        ))
    }
}

/// `PUT /v1/gateway/secrets/{name}`: stores (or replaces) an upstream secret, encrypted.
/// The value is never returned, logged or recorded; only the name is.
pub(crate) async fn put_secret(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<api::PutGatewaySecret>,
) -> Result<StatusCode, ApiError> {
    admin.require_write()?;
    check_name(&name)?;
    let value = body.value;
    if value.is_empty() || value.len() > 8192 || value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "a secret value is 1-8192 bytes of printable text (it goes into a header)",
        ));
    }
    state
        .put_secret(&admin.actor(), name, value)
        .await
        .map_err(|e| match e {
            SecretError::Service(e) => e.into(),
            other => ApiError::internal(other),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/gateway/secrets`: names and times only.
pub(crate) async fn list_secrets(
    State(state): State<Arc<Node>>,
    _admin: Admin,
) -> Result<Json<api::Items<api::GatewaySecret>>, ApiError> {
    let rows = crate::blocking(&state, |s| s.secret_rows()).await??;
    let items = rows
        .into_iter()
        .map(|r| api::GatewaySecret {
            name: r.name,
            created_at: r.created_at.to_string(),
            updated_at: r.updated_at.to_string(),
        })
        .collect();
    Ok(Json(api::Items { items }))
}

/// `DELETE /v1/gateway/secrets/{name}`.
pub(crate) async fn delete_secret(
    State(state): State<Arc<Node>>,
    admin: Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    admin.require_write()?;
    check_name(&name)?;
    state.delete_secret(&admin.actor(), name).await?;
    Ok(StatusCode::NO_CONTENT)
}
