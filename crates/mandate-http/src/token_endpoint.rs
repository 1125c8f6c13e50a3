//! `POST /oauth/token`: reads the form once and routes it by `grant_type` — token
//! exchange (RFC 8693) to `exchange.rs`, everything else to `oauth.rs` (client
//! credentials, and the refusal of unknown grants). Routing here, above both, keeps the
//! two modules from calling each other.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::Request;
use axum::response::Response;

use crate::Node;
use crate::error::OAuthError;
use crate::oauth::Params;
use crate::throttle::Outcome;

/// `POST /oauth/token`.
pub(crate) async fn token(
    State(state): State<Arc<Node>>,
    req: Request<Body>,
) -> Result<Response, OAuthError> {
    let answer = route(&state, req).await;
    // Counted here, once per refused request, so a request refused before any client
    // was looked up (a malformed form, an unknown grant) is counted as well.
    if let Err(e) = &answer {
        mandate_service::metrics::token_refused(e.error());
    }
    answer
}

/// Refused with 429 `slow_down` before any secret is checked while the client claimed,
/// from this source, or this source, is backed off (throttle.rs); every `invalid_client`
/// answer is a failure there, every token a success.
async fn route(state: &Arc<Node>, req: Request<Body>) -> Result<Response, OAuthError> {
    // RFC 8705 §3: the client certificate of the connection, which the token is bound to.
    let certificate =
        crate::dpop::presented_certificate(req.extensions().get::<crate::conn::Peer>());
    let (headers, p) = Params::read(state, req).await?;
    let claimed = crate::oauth::claimed_client(&headers, &p);
    if let Some(g) = &p.1 {
        g.check_client(claimed.as_deref())?;
    }
    let answer = if p.get("grant_type") == Some(crate::exchange::GRANT) {
        crate::exchange::exchange(state, &headers, &p).await
    } else {
        crate::oauth::client_credentials(state, &headers, &p, certificate).await
    };
    if let Some(g) = &p.1 {
        g.client_outcome(claimed.as_deref(), Outcome::of(&answer));
    }
    answer
}
