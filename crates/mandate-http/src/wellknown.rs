//! Public documents and probes: JWKS, RFC 8414 metadata, `/healthz`, `/readyz`, and the
//! access log (method, path, status, latency — never headers, queries or bodies), whose
//! layer also closes connections whose request body was left unread (`unread.rs`). The
//! documents are answered as mandate-api's types.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use mandate_api as api;

use crate::Node;
use crate::error::ApiError;

/// `GET /.well-known/jwks.json`: every key whose tokens may still be valid now.
pub(crate) async fn jwks(State(state): State<Arc<Node>>) -> Result<Response, ApiError> {
    let mut res = Json(jwk_set(state.keys.ring().jwks(state.clock.now()))?).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    Ok(res)
}

/// The key ring's JWK Set (which mandate-token builds as JSON: the JWK members are the
/// token crate's) read as the wire's [`api::JwkSet`]. `the_jwks_is_the_wire_type` checks
/// that nothing is lost on the way.
fn jwk_set(v: serde_json::Value) -> Result<api::JwkSet, ApiError> {
    serde_json::from_value(v).map_err(ApiError::internal)
}

/// The JWS `alg` values accepted for client assertions: `EdDSA` and its RFC 9864 name
/// `Ed25519` (both verify against OKP Ed25519 keys only), and `ES256` (P-256 keys).
const ASSERTION_ALGS: [&str; 3] = ["EdDSA", "Ed25519", "ES256"];

/// `GET /.well-known/oauth-authorization-server` (RFC 8414 §2).
///
/// `authorization_endpoint` is published although Mandate has no flow behind it
/// (`oauth::authorize` refuses every request, never redirecting): RFC 8414 makes it
/// REQUIRED unless no grant type uses it, and the MCP SDKs' metadata schemas (the
/// Python SDK's pydantic `OAuthMetadata`, the TypeScript SDK's zod `OAuthMetadataSchema`)
/// require it outright, so without it their client-credentials providers find no
/// usable metadata. `response_types_supported` is REQUIRED and is published as the
/// empty list: Mandate supports no response type, both SDK schemas accept `[]`, and
/// listing `code` would send authorization-code clients into a flow that cannot work.
/// There is no `/.well-known/openid-configuration`: Mandate issues no ID tokens and is
/// not an OpenID Provider (both SDKs try the RFC 8414 document first).
pub(crate) async fn metadata(State(state): State<Arc<Node>>) -> Json<api::ServerMetadata> {
    let iss = &state.config.issuer;
    let list = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let mut auth_methods = list(&[
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]);
    // RFC 8705 §2: only where a client can use them — the API listener asks for a
    // certificate (self-signed), and a client CA is configured (CA-issued).
    let certs = &state.config.client_certs;
    if certs.asked {
        if certs.ca.is_some() {
            auth_methods.push("tls_client_auth".into());
        }
        auth_methods.push("self_signed_tls_client_auth".into());
    }
    Json(api::ServerMetadata {
        issuer: iss.clone(),
        authorization_endpoint: format!("{iss}/oauth/authorize"),
        token_endpoint: state.config.token_endpoint(),
        jwks_uri: format!("{iss}/.well-known/jwks.json"),
        introspection_endpoint: format!("{iss}/oauth/introspect"),
        revocation_endpoint: format!("{iss}/oauth/revoke"),
        grant_types_supported: list(&[
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ]),
        response_types_supported: Vec::new(),
        token_endpoint_auth_methods_supported: auth_methods.clone(),
        token_endpoint_auth_signing_alg_values_supported: Some(list(&ASSERTION_ALGS)),
        revocation_endpoint_auth_methods_supported: Some(auth_methods.clone()),
        revocation_endpoint_auth_signing_alg_values_supported: Some(list(&ASSERTION_ALGS)),
        introspection_endpoint_auth_methods_supported: Some(auth_methods),
        introspection_endpoint_auth_signing_alg_values_supported: Some(list(&ASSERTION_ALGS)),
        dpop_signing_alg_values_supported: Some(list(mandate_token::dpop::SIGNING_ALGS)),
        tls_client_certificate_bound_access_tokens: Some(true),
    })
}

/// `GET /.well-known/ssf-configuration`: Mandate as a Shared Signals transmitter (push
/// to the receivers of its `ssf` export sinks, and streams receivers manage with an
/// admin token, by push or poll; see docs/ssf.md).
pub(crate) async fn ssf_configuration(
    State(state): State<Arc<Node>>,
) -> Json<api::SsfConfiguration> {
    let iss = &state.config.issuer;
    Json(api::SsfConfiguration {
        spec_version: "1_0".into(),
        issuer: iss.clone(),
        jwks_uri: format!("{iss}/.well-known/jwks.json"),
        delivery_methods_supported: vec![
            mandate_service::ssf_streams::PUSH.into(),
            mandate_service::ssf_streams::POLL.into(),
        ],
        configuration_endpoint: format!("{iss}/ssf/stream"),
        status_endpoint: format!("{iss}/ssf/status"),
        add_subject_endpoint: format!("{iss}/ssf/subjects/add"),
        remove_subject_endpoint: format!("{iss}/ssf/subjects/remove"),
        verification_endpoint: format!("{iss}/ssf/verify"),
        authorization_schemes: vec![api::AuthorizationScheme {
            spec_urn: "urn:ietf:rfc:6750".into(),
        }],
        default_subjects: "ALL".into(),
    })
}

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> Json<api::Liveness> {
    Json(api::Liveness {
        status: "ok".to_owned(),
    })
}

/// `GET /readyz`: the store answers and decisions are not held; 503 `not_ready`
/// otherwise, so a load balancer moves traffic off a node whose snapshot is stale.
pub(crate) async fn readyz(
    State(state): State<Arc<Node>>,
) -> Result<Json<api::Readiness>, ApiError> {
    if state.is_stale() {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "decisions are held: the decision snapshot could not be refreshed",
        ));
    }
    match crate::blocking(&state, |s| s.ping()).await {
        Ok(Ok(_)) => Ok(Json(api::Readiness {
            status: "ready".to_owned(),
        })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the store is not answering",
            ))
        }
        Err(e) => Err(e),
    }
}

/// The access log, one line per request: a layer around every route.
///
/// Hand-written rather than `axum::middleware::from_fn`, which clones the boxed route
/// service and builds a `Next` on every request; this wraps the route's own future.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AccessLogLayer;

impl<S> tower::Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog { inner }
    }
}

/// See [`AccessLogLayer`].
#[derive(Debug, Clone)]
pub(crate) struct AccessLog<S> {
    inner: S,
}

impl<S> tower::Service<Request> for AccessLog<S>
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

    fn call(&mut self, req: Request) -> Self::Future {
        let method = req.method().clone();
        // A `Uri` shares the request head's bytes: no copy of the path.
        let uri = req.uri().clone();
        #[expect(
            clippy::disallowed_methods,
            reason = "latency measurement, not wall-clock time"
        )]
        let start = std::time::Instant::now();
        let (req, body_ended) = crate::unread::track(req);
        let res = self.inner.call(req);
        Box::pin(async move {
            let mut res = res.await?;
            crate::unread::close_if_unread(&mut res, body_ended.as_deref());
            tracing::info!(%method, path = %uri.path(), status = res.status().as_u16(), micros = start.elapsed().as_micros(), "request");
            Ok(res)
        })
    }
}

#[cfg(test)]
mod tests {
    use mandate_core::random::OsRandom;
    use mandate_core::time::Timestamp;
    use mandate_token::keys::{KeyRing, SigningKey};

    use super::*;

    /// The key ring's JWK Set reads as the wire type and writes back the same, so a
    /// member the token crate adds is not dropped silently.
    #[test]
    fn the_jwks_is_the_wire_type() {
        let ring = KeyRing::new(SigningKey::generate(&OsRandom).unwrap(), vec![]).unwrap();
        let v = ring.jwks(Timestamp::from_secs(0));
        assert_eq!(v["keys"].as_array().map(Vec::len), Some(1));
        let wire = jwk_set(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(wire).unwrap(), v);
    }
}
