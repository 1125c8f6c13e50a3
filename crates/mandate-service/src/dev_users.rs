//! The local development user issuer's one use case: an admin mints a user token for
//! walkthroughs and tests, so mandates can name a human without a real identity
//! provider. Off ([`DevTokenError::Disabled`]) unless the operator enabled it.

use std::sync::Arc;

use mandate_core::id::new_ulid;
use mandate_core::random::RandomError;
use mandate_token::user::UserTokenError;
use serde_json::json;

use crate::Node;
use crate::actor::Actor;
use crate::error::ServiceError;
use crate::write_path::Recorded;

/// The lifetime of a token asked for without one.
pub const DEFAULT_LIFETIME_SECS: u32 = 3600;
/// The longest lifetime a token may have.
pub const MAX_LIFETIME_SECS: u32 = 86_400;
/// The most groups a dev token may list.
pub const MAX_GROUPS: usize = 64;

/// Why no token was issued.
#[derive(Debug, thiserror::Error)]
pub enum DevTokenError {
    /// The operator did not enable the development issuer.
    #[error("the development user issuer is not enabled on this server")]
    Disabled,
    /// The lifetime is outside 1..=[`MAX_LIFETIME_SECS`].
    #[error("lifetime_secs must be 1..={MAX_LIFETIME_SECS}")]
    Lifetime,
    /// More than [`MAX_GROUPS`] groups.
    #[error("at most {MAX_GROUPS} groups")]
    TooManyGroups,
    /// A claim fails the check verification would apply (the issuer's message).
    #[error(transparent)]
    Claims(UserTokenError),
    /// No token id could be made.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The node failed (the audit log).
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// What a development user token names.
#[derive(Debug)]
pub struct UserTokenRequest {
    /// The user's subject.
    pub sub: String,
    /// Their email, if any.
    pub email: Option<String>,
    /// Their groups.
    pub groups: Vec<String>,
    /// How long it lives (default [`DEFAULT_LIFETIME_SECS`]).
    pub lifetime_secs: Option<u32>,
}

/// A token issued. Its `Debug` never shows the token.
pub struct IssuedUserToken {
    /// The signed token.
    pub token: String,
    /// The development issuer's `iss`.
    pub issuer: String,
    /// Its lifetime in seconds.
    pub expires_in: u32,
}

impl std::fmt::Debug for IssuedUserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedUserToken")
            .field("token", &"…")
            .field("issuer", &self.issuer)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Issues a user token from the development issuer on behalf of `actor` (an admin with
/// the write role; the edge checks the role). Nothing is stored: the act is the issuing,
/// recorded as `dev.user_token_issued` with the claims and the `jti`, never the token.
pub async fn issue_user_token(
    node: &Arc<Node>,
    actor: &Actor,
    req: UserTokenRequest,
) -> Result<IssuedUserToken, DevTokenError> {
    let Some(issuer) = node.config.dev_users.clone() else {
        return Err(DevTokenError::Disabled);
    };
    let lifetime = req.lifetime_secs.unwrap_or(DEFAULT_LIFETIME_SECS);
    if !(1..=MAX_LIFETIME_SECS).contains(&lifetime) {
        return Err(DevTokenError::Lifetime);
    }
    if req.groups.len() > MAX_GROUPS {
        return Err(DevTokenError::TooManyGroups);
    }
    let jti = new_ulid(node.clock.as_ref(), node.random.as_ref())?;
    // The issuer checks every claim as verification will (sub 1-256 characters, …).
    let token = issuer
        .issue(
            &req.sub,
            req.email.as_deref(),
            &req.groups,
            lifetime,
            &jti,
            node.clock.now(),
        )
        .map_err(DevTokenError::Claims)?;
    tracing::info!(by = %actor, sub = %req.sub, "dev user token issued");
    // Never the token itself.
    let details = json!({"sub": req.sub, "email": req.email, "groups": req.groups,
        "jti": jti, "expires_in": lifetime});
    node.perform("dev.user_token_issued", actor, move |_| {
        Ok::<_, DevTokenError>(((), Recorded::details(details)))
    })
    .await?;
    Ok(IssuedUserToken {
        token,
        issuer: issuer.issuer().to_owned(),
        expires_in: lifetime,
    })
}
