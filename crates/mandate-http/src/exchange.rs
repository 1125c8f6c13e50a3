//! RFC 8693 token exchange at `/oauth/token`, for mandates and delegation.
//!
//! - **Mandate token**: the agent (always authenticated as a client; an `actor_token`,
//!   if given, must be its own plain token issued for Mandate) presents the user's token as `subject_token` (or its own token,
//!   for a mandate with no user) and gets an access token with `sub` = the user,
//!   `act.sub` = the agent, a `mandate` claim, scope within the mandate's, and a lifetime
//!   within the mandate's (and the user token's).
//! - **Delegation**: agent B presents a mandate token it received from agent A as
//!   `subject_token` and gets its own: `act` = {B, act: A's `act`}, scope the
//!   intersection of what it asks and what the parent had (asking for more is
//!   `invalid_scope`), the parent recorded in `parents`. B must be in A's boundary
//!   `delegates`, and the chain may not grow past the configured depth.
//!
//! Errors follow RFC 8693 §2.2.2: `invalid_request` for a missing, invalid or
//! unacceptable token; `invalid_target` for an audience or resource outside the
//! boundary; `invalid_scope`; plus `invalid_grant` when the mandate is not active or not
//! this agent's, and `unauthorized_client` when the delegating agent may not delegate to
//! the caller. Only access tokens are issued.
//!
//! The handler here checks the parameters' syntax and the client's credentials, calls
//! `mandate_service::exchange::exchange` (where the rules above are kept) and maps its
//! [`ExchangeError`].

use std::sync::Arc;

use axum::Json;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use mandate_core::id::MandateId;
use mandate_service::exchange::{self, Ask, ExchangeError};
use mandate_service::tokens;
use serde_json::json;

use crate::Node;
use crate::error::OAuthError;
use crate::oauth::{Params, check_resource, check_scope, client_auth, no_store};

/// The grant type (RFC 8693 §2.1).
pub(crate) const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";

impl From<ExchangeError> for OAuthError {
    /// Each refusal with the RFC 8693 §2.2.2 code [`ExchangeError::code`] names and its
    /// message; the refusals shared with the other grants as oauth.rs maps them.
    fn from(e: ExchangeError) -> Self {
        use ExchangeError as E;
        match e {
            E::Token(e) => e.into(),
            E::ClientRequired => Self::invalid_client(e.to_string()),
            E::MandateNotApplicable | E::NoMandate | E::ParentMandateInactive | E::NoTimeLeft => {
                Self::invalid_grant(e.to_string())
            }
            E::NotADelegate { .. } => Self::unauthorized_client(e.to_string()),
            E::Scope(_) => Self::invalid_scope(e.to_string()),
            E::ActorTokenInvalid(_)
            | E::ActorTokenNotForMandate
            | E::ActorTokenInactive(_)
            | E::ActorTokenMandateBound
            | E::ActorTokenOfAnotherClient
            | E::ActorTokenBound
            | E::SubjectTokenBound
            | E::CertificateBound
            | E::SubjectTokenInvalid(_)
            | E::SubjectTokenInactive(_)
            | E::NotDelegable
            | E::SubjectTokenRefused(_)
            | E::SeveralMandates
            | E::SubjectNotMandateBound
            | E::SelfDelegation
            | E::DepthLimit(_) => Self::invalid_request(e.to_string()),
        }
    }
}

fn parse<'p>(p: &'p Params) -> Result<Ask<'p>, OAuthError> {
    let bad = |m: &str| OAuthError::invalid_request(m);
    let subject = p
        .get("subject_token")
        .ok_or_else(|| bad("subject_token is required"))?;
    match p.get("subject_token_type") {
        None => return Err(bad("subject_token_type is required")),
        Some(ACCESS_TOKEN | JWT | ID_TOKEN) => {}
        Some(t) => {
            return Err(OAuthError::invalid_request(format!(
                "unsupported subject_token_type `{}`",
                t.escape_debug()
            )));
        }
    }
    let actor = p.get("actor_token");
    match (actor, p.get("actor_token_type")) {
        (None, None) | (Some(_), Some(ACCESS_TOKEN | JWT)) => {}
        (Some(_), None) => return Err(bad("actor_token_type is required with actor_token")),
        (None, Some(_)) => return Err(bad("actor_token_type without actor_token")),
        (Some(_), Some(t)) => {
            return Err(OAuthError::invalid_request(format!(
                "unsupported actor_token_type `{}`",
                t.escape_debug()
            )));
        }
    }
    if let Some(t) = p.get("requested_token_type")
        && t != ACCESS_TOKEN
        && t != JWT
    {
        return Err(OAuthError::invalid_request(format!(
            "requested_token_type `{}` is not issued here: only access tokens",
            t.escape_debug()
        )));
    }
    let scope = p.get("scope").map(check_scope).transpose()?;
    let resources = p.all("resource");
    for r in &resources {
        check_resource(r)?;
    }
    let mut targets = p.all("audience");
    if targets.iter().any(|a| a.is_empty() || a.len() > 1024) {
        return Err(OAuthError::invalid_target(
            "audience must be 1-1024 characters",
        ));
    }
    targets.extend(resources);
    if targets.len() > 8 {
        return Err(OAuthError::invalid_target(
            "at most 8 audience and resource parameters",
        ));
    }
    let mandate = p
        .get("mandate")
        .map(|m| MandateId::parse(m).map_err(|_| bad("mandate is not a mandate id")))
        .transpose()?;
    Ok(Ask {
        subject,
        actor,
        scope,
        targets,
        mandate,
        proofs: Vec::new(),
    })
}

/// `POST /oauth/token` with `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`.
pub(crate) async fn exchange(
    state: &Arc<Node>,
    headers: &HeaderMap,
    p: &Params,
) -> Result<Response, OAuthError> {
    let mut ask = parse(p)?;
    ask.proofs = crate::dpop::token_request_proofs(headers)?;
    let form_client_id = p.get("client_id");
    // A request whose credentials cannot be read is refused, and recorded, like one whose
    // credentials do not authenticate.
    let auth = match client_auth(headers, p) {
        Ok(a) => a,
        Err(e) => {
            tokens::record_refusal(state, form_client_id.map(str::to_owned), e.error(), None).await;
            return Err(e);
        }
    };
    let done = exchange::exchange(state, auth, form_client_id, &ask)
        .await
        .map_err(|e| match e {
            ExchangeError::Token(t) => crate::oauth::token_refusal(state, t),
            other => other.into(),
        })?;
    Ok(no_store(
        Json(json!({
            "access_token": done.token,
            "issued_token_type": ACCESS_TOKEN,
            "token_type": if done.bound { "DPoP" } else { "Bearer" },
            "expires_in": done.expires_in,
            "scope": done.scope,
        }))
        .into_response(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::tests::answer;
    use mandate_core::decision::Reason;
    use mandate_core::id::AgentId;
    use mandate_core::mandate::NarrowError;
    use mandate_service::tokens::TokenError;
    use mandate_token::access::VerifyError;
    use mandate_token::user::UserTokenError;

    /// Every refusal answers with the status, code and text the handler gave before the
    /// use case moved to mandate-service, and `token.refused` records the code answered.
    #[tokio::test]
    async fn exchange_errors_answer_as_they_did() {
        use ExchangeError as E;
        let (a, b) = (
            AgentId::parse("agt_01JA0000000000000000000000").unwrap(),
            AgentId::parse("agt_01JA0000000000000000000001").unwrap(),
        );
        let bad = |d: &str| (400, "invalid_request", d.to_owned());
        let cases = [
            (
                E::Token(TokenError::AuthenticationFailed),
                (
                    401,
                    "invalid_client",
                    "client authentication failed".to_owned(),
                ),
            ),
            (
                E::ClientRequired,
                (
                    401,
                    "invalid_client",
                    "token exchange requires client authentication (client_secret_basic, \
                     client_secret_post or private_key_jwt)"
                        .to_owned(),
                ),
            ),
            (
                E::ActorTokenInvalid(VerifyError::Expired),
                bad("actor_token is invalid: expired"),
            ),
            (
                E::ActorTokenNotForMandate,
                bad("actor_token is not issued for Mandate"),
            ),
            (
                E::ActorTokenInactive(Reason::TokenRevoked),
                bad("actor_token is not active: token_revoked"),
            ),
            (
                E::ActorTokenMandateBound,
                bad("actor_token must be the agent's own client-credentials token"),
            ),
            (
                E::ActorTokenOfAnotherClient,
                bad("actor_token belongs to another client"),
            ),
            (
                E::SubjectTokenInvalid(VerifyError::Signature),
                bad("subject_token is invalid: bad signature"),
            ),
            (
                E::SubjectTokenInactive(Reason::TokenRevoked),
                bad("subject_token is not active: token_revoked"),
            ),
            (
                E::NotDelegable,
                bad("only a mandate-bound token can be delegated"),
            ),
            (
                E::SubjectTokenRefused(UserTokenError::Malformed),
                bad("subject_token refused: malformed user token"),
            ),
            (
                E::MandateNotApplicable,
                (
                    400,
                    "invalid_grant",
                    "the mandate is not active, or not this agent's for this subject".to_owned(),
                ),
            ),
            (
                E::NoMandate,
                (
                    400,
                    "invalid_grant",
                    "no active mandate of this agent for this subject".to_owned(),
                ),
            ),
            (
                E::SeveralMandates,
                bad("several active mandates match: name one with the `mandate` parameter"),
            ),
            (
                E::ParentMandateInactive,
                (
                    400,
                    "invalid_grant",
                    "the parent token's mandate is not active".to_owned(),
                ),
            ),
            (
                E::SubjectNotMandateBound,
                bad("subject_token is not mandate-bound"),
            ),
            (E::SelfDelegation, bad("an agent cannot delegate to itself")),
            (
                E::NotADelegate {
                    from: a.clone(),
                    to: b.clone(),
                },
                (
                    400,
                    "unauthorized_client",
                    format!(
                        "agent {a} may not delegate to agent {b} (not among its boundary's delegates)"
                    ),
                ),
            ),
            (E::DepthLimit(3), bad("delegation depth limit (3) reached")),
            (
                E::Scope(NarrowError::Wider("crm:write".into())),
                (
                    400,
                    "invalid_scope",
                    "scope `crm:write` is not within the parent token's scope".to_owned(),
                ),
            ),
            (
                E::NoTimeLeft,
                (
                    400,
                    "invalid_grant",
                    "the mandate has no time left".to_owned(),
                ),
            ),
        ];
        for (e, (status, error, description)) in cases {
            let code = e.code();
            let got = answer(OAuthError::from(e)).await;
            assert_eq!(got, (status, error.to_owned(), description));
            assert_eq!(code, error, "recorded as answered");
        }
    }
}
