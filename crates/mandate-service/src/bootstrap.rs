//! The admin bootstrap token: created and printed once at first start, or supplied by
//! the operator (`MANDATE_BOOTSTRAP_TOKEN` / a token file) for automated deployments.
//! Either way only its SHA-256 digest is stored.

use mandate_core::admin::{AdminToken, Role};
use mandate_core::clock::Clock;
use mandate_core::id::AdminTokenId;
use mandate_core::random::Random;
use mandate_store::prelude::*;
use mandate_store::{Store, StoreError};
use mandate_token::secret::{self, Secret};

/// What happened to the bootstrap token at this start.
pub enum Bootstrap {
    /// First start: a new token, to be printed once.
    Created(Secret),
    /// The operator supplied it; its digest now stands.
    Supplied,
    /// It exists from an earlier start and is not shown again.
    Existing,
}

/// The shortest supplied bootstrap token accepted.
pub const MIN_SUPPLIED_LEN: usize = 24;

/// Makes sure a bootstrap token exists.
pub fn ensure(
    store: &dyn Store,
    supplied: Option<Secret>,
    clock: &dyn Clock,
    random: &dyn Random,
) -> Result<Bootstrap, StoreError> {
    let record = || -> Result<AdminToken, StoreError> {
        Ok(AdminToken {
            id: AdminTokenId::generate(clock, random)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            name: "bootstrap".into(),
            role: Role::Admin,
            bootstrap: true,
            created_at: clock.now(),
            revoked_at: None,
        })
    };
    if let Some(token) = supplied {
        store.set_bootstrap_digest(&record()?, &secret::admin_token_digest(token.expose()))?;
        return Ok(Bootstrap::Supplied);
    }
    if store.has_bootstrap()? {
        return Ok(Bootstrap::Existing);
    }
    let token = secret::new_admin_token(random).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    store.set_bootstrap_digest(&record()?, &secret::admin_token_digest(token.expose()))?;
    Ok(Bootstrap::Created(token))
}
