//! Credentials: how an agent proves it is itself (client secrets, registered public keys,
//! certificates of a client CA naming it).
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
    /// A registered public JWK (`private_key_jwt`, RFC 7523); with an `x5c` member, also
    /// its self-signed certificate (`self_signed_tls_client_auth`, RFC 8705 §2.2).
    PublicKey,
    /// A name the client certificate must carry in its subjectAltName, the certificate
    /// chaining to the node's client CA (`tls_client_auth`, RFC 8705 §2.1).
    TlsClientAuth,
}

impl CredentialKind {
    /// The kind as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecret => "client_secret",
            Self::PublicKey => "public_key",
            Self::TlsClientAuth => "tls_client_auth",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret" => Some(Self::ClientSecret),
            "public_key" => Some(Self::PublicKey),
            "tls_client_auth" => Some(Self::TlsClientAuth),
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
    /// For `tls_client_auth`: the subjectAltName the client certificate must carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_name: Option<CertName>,
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

/// A subjectAltName a `tls_client_auth` credential expects in a client certificate
/// (RFC 8705 §2.1.2: the metadata `tls_client_auth_san_dns`, `_san_uri`, `_san_ip`).
///
/// The subject DN (`tls_client_auth_subject_dn`) and `_san_email` are not supported: a DN
/// compared as an RFC 4514 string has several spellings for one name (attribute order,
/// escaping, case), and certificate names for software are SANs (SPIFFE IDs are URIs).
/// Stored and shown as `dns:NAME`, `uri:URI` or `ip:ADDRESS` ([`CertName::stored`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertName {
    /// A dNSName, compared case-insensitively (ASCII) and literally.
    Dns(String),
    /// A uniformResourceIdentifier, compared exactly.
    Uri(String),
    /// An iPAddress.
    Ip(std::net::IpAddr),
}

impl CertName {
    /// The RFC 8705 metadata names, in the order [`CertName::from_metadata`] reads them.
    pub const METADATA: [&'static str; 3] = [
        "tls_client_auth_san_dns",
        "tls_client_auth_san_uri",
        "tls_client_auth_san_ip",
    ];

    /// The name given as RFC 8705 metadata `key` (one of [`CertName::METADATA`]) with
    /// value `v`; `Err` says why it is not one (empty, too long, control characters, not
    /// an address, not an absolute URI).
    pub fn from_metadata(key: &str, v: &str) -> Result<Self, String> {
        if v.is_empty() || v.len() > 255 || v.chars().any(|c| c.is_control() || c == ' ') {
            return Err(format!(
                "{key} must be 1 to 255 characters without spaces or control characters"
            ));
        }
        match key {
            "tls_client_auth_san_dns" => Ok(Self::Dns(v.to_owned())),
            "tls_client_auth_san_uri" if crate::uri::is_absolute_uri(v) => {
                Ok(Self::Uri(v.to_owned()))
            }
            "tls_client_auth_san_uri" => Err(format!("{key} must be an absolute URI")),
            "tls_client_auth_san_ip" => v
                .parse()
                .map(Self::Ip)
                .map_err(|_| format!("{key} must be an IPv4 or IPv6 address")),
            _ => Err(format!("{key} is not a tls_client_auth name")),
        }
    }

    /// The RFC 8705 metadata name and value of this name.
    pub fn metadata(&self) -> (&'static str, String) {
        match self {
            Self::Dns(d) => (Self::METADATA[0], d.clone()),
            Self::Uri(u) => (Self::METADATA[1], u.clone()),
            Self::Ip(ip) => (Self::METADATA[2], ip.to_string()),
        }
    }

    /// As stored: `dns:NAME`, `uri:URI`, `ip:ADDRESS`.
    pub fn stored(&self) -> String {
        match self {
            Self::Dns(d) => format!("dns:{d}"),
            Self::Uri(u) => format!("uri:{u}"),
            Self::Ip(ip) => format!("ip:{ip}"),
        }
    }

    /// Parses [`CertName::stored`]'s form.
    pub fn parse_stored(s: &str) -> Option<Self> {
        let (kind, v) = s.split_once(':')?;
        let key = match kind {
            "dns" => Self::METADATA[0],
            "uri" => Self::METADATA[1],
            "ip" => Self::METADATA[2],
            _ => return None,
        };
        Self::from_metadata(key, v).ok()
    }
}

impl Serialize for CertName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.stored())
    }
}

#[cfg(test)]
mod tests {
    use super::CertName;

    #[test]
    fn cert_names_round_trip_and_refuse_what_is_not_a_name() {
        for (k, v) in [
            ("tls_client_auth_san_dns", "agent.example.com"),
            ("tls_client_auth_san_uri", "spiffe://example.org/agent/crm"),
            ("tls_client_auth_san_ip", "10.0.0.7"),
            ("tls_client_auth_san_ip", "::1"),
        ] {
            let n = CertName::from_metadata(k, v).unwrap();
            assert_eq!(n.metadata(), (k, v.to_owned()));
            assert_eq!(CertName::parse_stored(&n.stored()), Some(n));
        }
        for (k, v) in [
            ("tls_client_auth_san_dns", ""),
            ("tls_client_auth_san_dns", "a b"),
            ("tls_client_auth_san_dns", "a\nb"),
            ("tls_client_auth_san_uri", "not a uri"),
            ("tls_client_auth_san_uri", "relative/path"),
            ("tls_client_auth_san_ip", "10.0.0.300"),
            ("tls_client_auth_subject_dn", "CN=x"),
        ] {
            assert!(CertName::from_metadata(k, v).is_err(), "{k}={v}");
        }
        assert_eq!(CertName::parse_stored("email:a@b"), None);
        assert_eq!(CertName::parse_stored("dns"), None);
    }
}
