//! DPoP (RFC 9449) at the edge: reading an agent's token under either authorization
//! scheme (`Bearer` or `DPoP`), the `DPoP` proof headers, the URL a proof must name
//! (this server's issuer URL + the request path), and answering a refusal with the
//! RFC 9449 §7.1 challenge. The rules themselves are `mandate_service::dpop`'s.

use axum::http::{HeaderMap, StatusCode, header};
use mandate_service::dpop::{Presentation, Scheme, SenderError, check_sender};
use mandate_token::access::AccessClaims;
use std::sync::Arc;

use crate::Node;
use crate::conn::Peer;
use crate::error::{ApiError, OAuthError};

/// The token of `Authorization: Bearer …` or `Authorization: DPoP …`, and which.
pub(crate) fn agent_token(headers: &HeaderMap) -> Option<(&str, Scheme)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Some((token, Scheme::Bearer))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Some((token, Scheme::Dpop))
    } else {
        None
    }
}

/// Every `DPoP` header value (a value that is not visible ASCII counts, as an empty
/// proof that will not verify, so two headers are never taken for one).
pub(crate) fn proofs(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all("dpop")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect()
}

/// The `x5t#S256` of the client certificate of the request's connection (RFC 8705
/// §3), `None` without one or without a known connection.
pub(crate) fn presented_certificate(peer: Option<&Peer>) -> Option<String> {
    peer.and_then(Peer::leaf)
        .map(mandate_token::access::certificate_thumbprint)
}

/// The URL a proof for a request to `path` on this server names: the issuer URL (the
/// public base URL) and the path.
pub(crate) fn own_url(state: &Node, path: &str) -> String {
    format!("{}{path}", state.config.issuer)
}

/// A refusal as the API answers it: 401, the RFC 9449 error code as `code`, the stable
/// reason as `reason`, a `DPoP` challenge and, for `use_dpop_nonce`, a fresh nonce.
pub(crate) fn refusal(state: &Node, e: SenderError) -> ApiError {
    let nonce = match e {
        SenderError::Proof(mandate_token::dpop::DpopError::Nonce) => {
            state.dpop().nonce(state.clock.now())
        }
        _ => None,
    };
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        e.oauth_error(),
        format!("{e} ({})", e.code()),
    )
    .with("reason", serde_json::json!(e.code()))
    .with_dpop_challenge(e.challenge(), nonce)
}

/// Checks how the agent's own token (`claims` verified) was presented on a request to
/// `path` with `method`; records (the path naming the surface) and answers a refusal.
pub(crate) fn check_own(
    state: &Node,
    headers: &HeaderMap,
    peer: Option<&Peer>,
    (method, path): (&str, &str),
    token: &str,
    scheme: Scheme,
    claims: &AccessClaims,
) -> Result<(), ApiError> {
    let proofs = proofs(headers);
    let url = own_url(state, path);
    let certificate = presented_certificate(peer);
    check_sender(
        state,
        claims,
        token,
        &Presentation {
            scheme,
            proofs: &proofs,
            method,
            url: &url,
            certificate: certificate.as_deref(),
        },
        path,
    )
    .map_err(|e| refusal(state, e))
}

/// [`check_own`] for a decision endpoint's agent caller (`caller` in authorize.rs):
/// the token's claims, verified here and held to their binding — what the decision is
/// then made with (`INVARIANT (decided as checked)`, authorize.rs). `None`: the token
/// does not verify, left to `refuse_unverified` and the decision. `at` is the request's
/// method and path, `None` on a surface without DPoP (a bound token is refused there).
pub(crate) fn check_caller(
    state: &Node,
    headers: &HeaderMap,
    peer: Option<&Peer>,
    token: &str,
    scheme: Scheme,
    at: Option<(&str, &str)>,
) -> Result<Option<Arc<AccessClaims>>, ApiError> {
    let snapshot = state.snapshot()?;
    let now = state.clock.now();
    let Some(claims) = mandate_service::decisions::verified_claims(state, &snapshot, token, now)
    else {
        return Ok(None);
    };
    let checked = match at {
        Some((method, path)) => {
            check_own(state, headers, peer, (method, path), token, scheme, &claims)
        }
        None => check_sender(
            state,
            &claims,
            token,
            &Presentation {
                scheme,
                proofs: &[],
                method: "",
                url: "",
                certificate: presented_certificate(peer).as_deref(),
            },
            "/v1/data",
        )
        .map_err(|e| refusal(state, e)),
    };
    checked.map(|()| Some(claims))
}

/// A proof an enforcement point passes on in a `/v1/authorize` body with the agent's
/// token: the proof and the request it was made for (`INVARIANT (bound stays bound)`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Forwarded {
    /// The `DPoP` header the agent sent to the enforcement point.
    pub(crate) proof: String,
    /// The method of the agent's request.
    pub(crate) htm: String,
    /// The URL of the agent's request, as the enforcement point is reached.
    pub(crate) htu: String,
}

/// Checks a token an enforcement point passes on (`claims` verified): an unbound token
/// needs nothing; a bound one needs `forwarded`, checked as if the agent had called.
pub(crate) fn check_forwarded(
    state: &Node,
    token: &str,
    claims: &AccessClaims,
    forwarded: Option<&Forwarded>,
    surface: &str,
) -> Result<(), ApiError> {
    let (scheme, proofs, method, url) = match forwarded {
        Some(f) if claims.jkt().is_some() => (
            Scheme::Dpop,
            vec![f.proof.as_str()],
            f.htm.as_str(),
            f.htu.as_str(),
        ),
        _ => (Scheme::Bearer, Vec::new(), "", ""),
    };
    check_sender(
        state,
        claims,
        token,
        // No connection of the agent's here: a certificate-bound token is refused.
        &Presentation {
            scheme,
            proofs: &proofs,
            method,
            url,
            certificate: None,
        },
        surface,
    )
    .map_err(|e| refusal(state, e))
}

/// The `DPoP` header values of a token request, refusing a value that is not text.
pub(crate) fn token_request_proofs(headers: &HeaderMap) -> Result<Vec<&str>, OAuthError> {
    headers
        .get_all("dpop")
        .iter()
        .map(|v| {
            v.to_str()
                .map_err(|_| OAuthError::dpop("invalid_dpop_proof", "malformed DPoP header", None))
        })
        .collect()
}
