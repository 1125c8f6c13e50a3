//! Mandate's own Ed25519 signing keys, the key ring used to verify what they signed,
//! and the JWKS document that publishes them.

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{DecodingKey, EncodingKey};
use mandate_core::random::{Random, RandomError, random_bytes};
use mandate_core::time::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::b64;
use crate::jws::SigningAlg;

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The random source failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The key file is not a PKCS#8 Ed25519 private key.
    #[error("not a PKCS#8 PEM Ed25519 private key")]
    BadPem,
    /// A stored public key is not 32 bytes of a valid point.
    #[error("invalid stored public key for kid `{0}`")]
    BadPublic(String),
}

/// The key Mandate signs access tokens with.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    encoding: EncodingKey,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key, used as its `kid`.
fn ed25519_thumbprint(public: &[u8; 32]) -> String {
    let x = b64::encode(public);
    let input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    b64::encode(&Sha256::digest(input.as_bytes()))
}

impl SigningKey {
    /// A fresh key from the random source.
    pub fn generate(random: &dyn Random) -> Result<Self, KeyError> {
        let seed: [u8; 32] = random_bytes(random)?;
        Self::from_key(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Reads a PKCS#8 PEM private key (the key file's format).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|_| KeyError::BadPem)?;
        Self::from_key(key)
    }

    fn from_key(key: ed25519_dalek::SigningKey) -> Result<Self, KeyError> {
        let der = key.to_pkcs8_der().map_err(|_| KeyError::BadPem)?;
        let kid = ed25519_thumbprint(key.verifying_key().as_bytes());
        Ok(Self {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            key,
            kid,
        })
    }

    /// The PKCS#8 PEM text for the key file. Handle as a secret.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|z| z.to_string())
            .map_err(|_| KeyError::BadPem)
    }

    /// The key id (RFC 7638 thumbprint of the public key).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The 32-byte public key.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The public JWK (`alg` `EdDSA`): what an agent registers for `private_key_jwt`.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = ed25519_jwk(&b64::encode(&self.public_bytes()), &self.kid);
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("alg".to_owned(), json!(crate::jws::EDDSA));
        }
        jwk
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn dalek(&self) -> &ed25519_dalek::SigningKey {
        &self.key
    }
}

/// A public key whose signatures Mandate still accepts (and publishes in its JWKS).
#[derive(Clone)]
pub struct PublishedKey {
    kid: String,
    jwk: Value,
    decoding: DecodingKey,
    /// For a retired key, the instant its publication ends: from then on it verifies
    /// nothing and is not in the JWKS. `None` for the current key.
    until: Option<Timestamp>,
}

impl std::fmt::Debug for PublishedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The public JWK of an Ed25519 key (`x` base64url) without its `alg`: whoever
/// publishes it names the algorithm it signs under.
fn ed25519_jwk(x: &str, kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig"})
}

impl PublishedKey {
    /// Builds from the stored 32-byte public key, checking it and its kid.
    pub fn from_public_bytes(kid: &str, public: &[u8]) -> Result<Self, KeyError> {
        let bad = || KeyError::BadPublic(kid.to_owned());
        let arr: [u8; 32] = public.try_into().map_err(|_| bad())?;
        ed25519_dalek::VerifyingKey::from_bytes(&arr).map_err(|_| bad())?;
        if ed25519_thumbprint(&arr) != kid {
            return Err(bad());
        }
        let x = b64::encode(&arr);
        let decoding = DecodingKey::from_ed_components(&x).map_err(|_| bad())?;
        // `alg` is added by `KeyRing::jwks`: the name the ring signs with.
        let jwk = ed25519_jwk(&x, kid);
        Ok(Self {
            kid: kid.to_owned(),
            jwk,
            decoding,
            until: None,
        })
    }

    /// The same key, published (and trusted) only before `until`.
    #[must_use]
    pub fn until(mut self, until: Timestamp) -> Self {
        self.until = Some(until);
        self
    }

    fn live_at(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|t| now < t)
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// The current signing key plus every public key still published.
///
/// INVARIANT (key ring): the current key's public half is among `published`, so a token
/// just signed always verifies.
///
/// INVARIANT (keys are a function of time): which keys verify, and which the JWKS
/// lists, is decided at each call from its `now` and each retired key's `until`, not
/// when the ring was built: a retired key stops verifying the instant its publication
/// ends, whether or not anything rebuilt the ring.
///
/// INVARIANT (JWKS `alg`): every published key is listed with the `alg` name new tokens
/// are signed under ([`KeyRing::signing_alg`]). Tokens signed under the other name
/// before a change of that setting still verify here (access.rs accepts both).
#[derive(Debug)]
pub struct KeyRing {
    current: SigningKey,
    published: Vec<PublishedKey>,
    alg: SigningAlg,
}

impl KeyRing {
    /// A ring from the current key and the other keys still published (the current
    /// key is added if missing).
    pub fn new(current: SigningKey, others: Vec<PublishedKey>) -> Result<Self, KeyError> {
        let mut published: Vec<PublishedKey> = others
            .into_iter()
            .filter(|k| k.kid != current.kid)
            .collect();
        published.insert(
            0,
            PublishedKey::from_public_bytes(&current.kid, &current.public_bytes())?,
        );
        Ok(Self {
            current,
            published,
            alg: SigningAlg::default(),
        })
    }

    /// The same ring, signing (and publishing its keys) under the `alg` name `alg`.
    #[must_use]
    pub fn signing_as(mut self, alg: SigningAlg) -> Self {
        self.alg = alg;
        self
    }

    /// The `alg` name new tokens are signed under.
    pub fn signing_alg(&self) -> SigningAlg {
        self.alg
    }

    /// The key new tokens are signed with.
    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    /// The verification key for `kid` and when it stops verifying (`None`: the current
    /// key), if it is published at `now`.
    pub fn decoding_key(
        &self,
        kid: &str,
        now: Timestamp,
    ) -> Option<(&DecodingKey, Option<Timestamp>)> {
        self.published
            .iter()
            .find(|k| k.kid == kid && k.live_at(now))
            .map(|k| (&k.decoding, k.until))
    }

    /// The JWKS document (RFC 7517 §5) at `now`: the keys published then.
    pub fn jwks(&self, now: Timestamp) -> Value {
        let alg = self.alg.name();
        let keys: Vec<Value> = self
            .published
            .iter()
            .filter(|k| k.live_at(now))
            .map(|k| {
                let mut jwk = k.jwk.clone();
                if let Some(obj) = jwk.as_object_mut() {
                    obj.insert("alg".to_owned(), json!(alg));
                }
                jwk
            })
            .collect();
        json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mandate_core::random::OsRandom;

    #[test]
    fn pem_round_trip_keeps_kid() {
        let k = SigningKey::generate(&OsRandom).unwrap();
        let pem = k.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.kid(), k.kid());
        assert!(SigningKey::from_pkcs8_pem("garbage").is_err());
    }

    #[test]
    fn published_key_checks_kid() {
        let k = SigningKey::generate(&OsRandom).unwrap();
        assert!(PublishedKey::from_public_bytes(k.kid(), &k.public_bytes()).is_ok());
        assert!(PublishedKey::from_public_bytes("other", &k.public_bytes()).is_err());
        assert!(PublishedKey::from_public_bytes(k.kid(), &[0u8; 31]).is_err());
    }
}
