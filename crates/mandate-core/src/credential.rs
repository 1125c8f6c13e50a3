//! Credentials: how an agent proves it is itself (client secrets, registered public keys).
//!
//! The secret material never appears in these types: a client secret exists in clear
//! only in the one response that creates it, and is stored as an Argon2id hash.

use serde::{Deserialize, Serialize};

use crate::id::{AgentId, CredentialId};
use crate::time::Timestamp;

/// The kind of a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A 256-bit random secret (`client_secret_basic` / `client_secret_post`).
    ClientSecret,
    /// A registered public JWK (`private_key_jwt`, RFC 7523).
    PublicKey,
}

impl CredentialKind {
    /// The kind as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecret => "client_secret",
            Self::PublicKey => "public_key",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret" => Some(Self::ClientSecret),
            "public_key" => Some(Self::PublicKey),
            _ => None,
        }
    }
}

/// A credential's metadata, safe to show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Credential {
    /// `crd_…`.
    pub id: CredentialId,
    /// The agent it belongs to.
    pub agent_id: AgentId,
    /// Secret or public key (`type` on the wire, as in the create request).
    #[serde(rename = "type")]
    pub kind: CredentialKind,
    /// For public keys: the registered JWK (public parameters only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_jwk: Option<serde_json::Value>,
    /// For public keys: the RFC 7638 thumbprint, used as the key's `kid` when none is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working (set by rotation's overlap window or at creation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// When it was revoked outright.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
    /// The credential that replaced this one, if it was rotated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<CredentialId>,
}

impl Credential {
    /// Whether the credential authenticates at `now`.
    ///
    /// INVARIANT (overlap): a rotated credential works until `expires_at` and never after.
    pub fn usable_at(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }

    /// `active`, `expiring`, `expired` or `revoked` at `now`.
    pub fn state_at(&self, now: Timestamp) -> &'static str {
        match (self.revoked_at, self.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(e)) if now >= e => "expired",
            (None, Some(_)) => "expiring",
            (None, None) => "active",
        }
    }
}
