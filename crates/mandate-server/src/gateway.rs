//! The gateways' door into the decision path: [`GatewayAuthorizer`] implements
//! `mandate_gateway::authz::Authorizer` with the same decision function, detector and
//! audit log as `/v1/authorize`; and the upstream secrets the gateways inject, kept
//! encrypted at rest (ChaCha20-Poly1305, the key derived from the node's audit key,
//! the secret's name as associated data) and never returned by any API
//! (`/v1/gateway/secrets`: set, list names, delete).

use mandate_store::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use mandate_gateway::authz::{
    Answer, Ask, Authorizer, AuthzError, BoxFuture, Principal as Acting, Verdict,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::authorize::{Question, decide_question, record_decision, verified_claims};
use crate::decide::{Principal, Reason, Resource, TokenAudience};
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, ApiPath};
use crate::write_path::Recorded;

/// The decision path for the gateways.
#[derive(Debug, Clone)]
pub struct GatewayAuthorizer {
    state: Arc<AppState>,
}

impl GatewayAuthorizer {
    /// Over `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

/// Decrypted secrets, loaded at start and kept in step with every change.
#[derive(Default)]
pub(crate) struct SecretCache(RwLock<HashMap<String, String>>);

impl std::fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretCache(<redacted>)")
    }
}

fn cipher(state: &AppState) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&state.audit.secrets_key().into())
}

/// Decrypts every stored secret into the cache (at start). A secret that does not
/// decrypt (another node's key, a damaged row) is left out and logged by name.
pub(crate) fn load_secrets(state: &AppState) -> Result<(), ApiError> {
    let c = cipher(state);
    let mut map = HashMap::new();
    for row in state.store().secrets()? {
        let nonce: Option<[u8; 12]> = row.nonce.as_slice().try_into().ok();
        let clear = nonce.and_then(|n| {
            c.decrypt(
                &Nonce::from(n),
                Payload {
                    msg: &row.ciphertext,
                    aad: row.name.as_bytes(),
                },
            )
            .ok()
        });
        match clear.and_then(|b| String::from_utf8(b).ok()) {
            Some(v) => {
                map.insert(row.name, v);
            }
            None => tracing::error!(name = %row.name, "gateway secret does not decrypt; ignored"),
        }
    }
    *state
        .secrets
        .0
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = map;
    Ok(())
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
    state: &AppState,
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

/// The resource attributes a gateway supplies, as `/v1/authorize` takes them (none:
/// null).
fn attributes_of(ask: &Ask) -> Value {
    if ask.resource_attributes.is_empty() {
        Value::Null
    } else {
        Value::Object(ask.resource_attributes.clone())
    }
}

impl Authorizer for GatewayAuthorizer {
    fn authorize(&self, ask: Ask) -> BoxFuture<'_, Result<Answer, AuthzError>> {
        Box::pin(async move {
            let state = &self.state;
            let snapshot = state.snapshot().map_err(unavailable)?;
            let now = state.clock.now();
            let claims = verified_for(state, &snapshot, &ask.token, &ask.audience, now)?;
            let resource = Resource {
                type_name: ask.resource_type.clone(),
                id: ask.resource_id.clone(),
                attributes: attributes_of(&ask),
            };
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
                    actor: None,
                    via: Some(ask.via.clone()),
                    // Checked above already (a 401, nothing recorded); stated again so the
                    // decision path holds it by itself.
                    audience: TokenAudience::Resource(&ask.audience),
                },
            );
            // INVARIANT (gateway fail closed): the decision is durable before anything
            // is forwarded; if it cannot be recorded there is no answer.
            let id = record_decision(state, event, seen, None)
                .await
                .map_err(|e| AuthzError::Unavailable(e.code().to_owned()))?;
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
        if let Some(d) = state.detector.as_ref()
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

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.state.snapshot_changes()
    }

    fn check(&self, ask: &Ask) -> Result<Verdict, AuthzError> {
        let state = &self.state;
        let snapshot = state.snapshot().map_err(unavailable)?;
        let now = state.clock.now();
        let claims = verified_for(state, &snapshot, &ask.token, &ask.audience, now)?;
        let resource = Resource {
            type_name: ask.resource_type.clone(),
            id: ask.resource_id.clone(),
            attributes: attributes_of(ask),
        };
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
        Ok(self
            .state
            .secrets
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned())
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSecret {
    value: String,
}

/// `PUT /v1/gateway/secrets/{name}`: stores (or replaces) an upstream secret, encrypted.
/// The value is never returned, logged or recorded; only the name is.
pub(crate) async fn put_secret(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<NewSecret>,
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
    let nonce: [u8; 12] =
        mandate_core::random::random_bytes(state.random.as_ref()).map_err(ApiError::internal)?;
    let ct = cipher(&state)
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: value.as_bytes(),
                aad: name.as_bytes(),
            },
        )
        .map_err(|_| ApiError::internal("secret encryption failed"))?;
    let key = name.clone();
    state
        .act("gateway.secret_set", &admin.actor(), move |s| {
            s.store().put_secret(&key, &nonce, &ct, s.clock.now())?;
            s.secrets
                .0
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key, value);
            Ok(((), Recorded::details(json!({"name": name}))))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/gateway/secrets`: names and times only.
pub(crate) async fn list_secrets(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    let rows = crate::blocking(&state, |s| s.store().secrets()).await??;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|r| json!({"name": r.name, "created_at": r.created_at, "updated_at": r.updated_at}))
        .collect();
    Ok(Json(json!({"items": items})))
}

/// `DELETE /v1/gateway/secrets/{name}`.
pub(crate) async fn delete_secret(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    admin.require_write()?;
    check_name(&name)?;
    let key = name.clone();
    state
        .act("gateway.secret_deleted", &admin.actor(), move |s| {
            let existed = s.store().delete_secret(&key)?;
            s.secrets
                .0
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&key);
            if !existed {
                // Nothing changed, so nothing is recorded.
                return Err(ApiError::not_found("unknown secret"));
            }
            Ok(((), Recorded::details(json!({"name": name}))))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
