//! The administration's use cases, whatever edge asks: admin tokens (create, list,
//! revoke) and the token-signing keys (list the published ones, rotate, reload after
//! another node rotated). Each is one function over the node; the writes go through its
//! one write path ([`Node::perform`]) and record their audit events. A refusal is an
//! [`AdminError`].

use std::sync::Arc;

use mandate_core::admin::{AdminToken, Role};
use mandate_core::id::AdminTokenId;
use mandate_core::random::RandomError;
use mandate_core::time::Timestamp;
use mandate_store::prelude::*;
use mandate_store::{SigningKeyRow, StoreError};
use mandate_token::secret::{self, Secret};
use serde_json::json;

use crate::actor::Actor;
use crate::error::ServiceError;
use crate::keys::KeysError;
use crate::{Node, Recorded};

/// Why an administration use case changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A field breaks a rule (`why` says which, for the caller).
    #[error("invalid `{field}`: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The random source failed (an id or a token could not be made).
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The signing keys could not be rotated.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// The store failed (an unknown admin token is its `NotFound`).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node failed (the change unrecorded, a task lost).
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// The longest admin token name, in characters.
pub const MAX_TOKEN_NAME_CHARS: usize = 64;

/// Creates an admin token named `name` with `role`, as `actor` (`admin_token.created`).
/// The token itself is returned this once; only its digest is stored.
pub async fn create_token(
    node: &Arc<Node>,
    actor: &Actor,
    name: String,
    role: Role,
) -> Result<(AdminToken, Secret), AdminError> {
    if name.is_empty()
        || name.chars().count() > MAX_TOKEN_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(AdminError::Invalid {
            field: "name",
            why: format!("name must be 1-{MAX_TOKEN_NAME_CHARS} printable characters"),
        });
    }
    let by = actor.clone();
    node.perform("admin_token.created", actor, move |s| {
        let id = AdminTokenId::generate(s.clock.as_ref(), s.random.as_ref())?;
        let token = secret::new_admin_token(s.random.as_ref())?;
        let record = AdminToken {
            id,
            name,
            role,
            bootstrap: false,
            created_at: s.clock.now(),
            revoked_at: None,
        };
        s.store()
            .insert_admin_token(&record, &secret::admin_token_digest(token.expose()))?;
        tracing::info!(%by, id = %record.id, role = record.role.as_str(), "admin token created");
        let details = json!({"admin_token": record.id, "name": record.name, "role": record.role});
        Ok::<_, AdminError>(((record, token), Recorded::details(details)))
    })
    .await
}

/// Every admin token (never a token itself: only records).
pub async fn list_tokens(node: &Arc<Node>) -> Result<Vec<AdminToken>, AdminError> {
    Ok(node
        .blocking(|s| s.store().list_admin_tokens())
        .await
        .map_err(ServiceError::from)??)
}

/// Revokes admin token `id` now, as `actor` (`admin_token.revoked`).
pub async fn revoke_token(
    node: &Arc<Node>,
    actor: &Actor,
    id: AdminTokenId,
) -> Result<(), AdminError> {
    let by = actor.clone();
    node.perform("admin_token.revoked", actor, move |s| {
        s.store().revoke_admin_token(&id, s.clock.now())?;
        tracing::info!(%by, %id, "admin token revoked");
        Ok::<_, AdminError>(((), Recorded::details(json!({"admin_token": id}))))
    })
    .await
}

/// The signing keys still published now.
pub async fn list_keys(node: &Arc<Node>) -> Result<Vec<SigningKeyRow>, AdminError> {
    Ok(node
        .blocking(|s| s.store().published_signing_keys(s.clock.now()))
        .await
        .map_err(ServiceError::from)??)
}

/// A key rotation made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    /// The key that signs from now on.
    pub kid: String,
    /// The key that signed until now.
    pub retired_kid: String,
    /// Until when the retired key stays published.
    pub retired_published_until: Timestamp,
}

/// Rotates the signing key, as `actor` (`keys.rotated`): a new key signs from now on;
/// the old one stays published until every token it signed has expired.
pub async fn rotate_keys(node: &Arc<Node>, actor: &Actor) -> Result<KeyRotation, AdminError> {
    let by = actor.clone();
    node.perform("keys.rotated", actor, move |s| {
        let now = s.clock.now();
        // Tokens live at most max_token_lifetime_secs; a minute more covers clock skew.
        let publish = s.config.max_token_lifetime_secs.saturating_add(60);
        let (old, new) = s.keys.rotate(&s.store(), now, s.random.as_ref(), publish)?;
        tracing::info!(%by, %old, %new, "signing key rotated");
        // The ring is held outside the store: its owner refreshes the snapshot
        // (write_path.rs).
        s.refresh_after_write();
        let rotation = KeyRotation {
            kid: new,
            retired_kid: old,
            retired_published_until: now.plus_secs(i64::from(publish)),
        };
        let details = json!({"kid": rotation.kid, "retired_kid": rotation.retired_kid,
            "retired_published_until": rotation.retired_published_until});
        Ok::<_, AdminError>((rotation, Recorded::details(details)))
    })
    .await
}

/// Reads the signing keys from the store again, then rebuilds the snapshot (which holds
/// the ring): what the change feed calls when the signing keys changed on another node
/// (a rotation there), so this node signs with the new key and verifies its tokens.
/// Blocking. On an error the ring stays as it was (the caller logs it and tries again).
pub fn reload_keys(node: &Node) -> Result<(), KeysError> {
    node.keys.reload(&node.store(), node.clock.now())?;
    node.refresh_after_write();
    Ok(())
}
