//! Public JWKs that agents register for `private_key_jwt`: Ed25519 (`OKP`) and P-256 (`EC`).
//!
//! INVARIANT (registered keys): a [`PublicJwk`] holds only public parameters of a valid
//! key (the Ed25519 point decodes; the P-256 point is on the curve), so verifying with
//! it cannot fail for a reason other than a bad signature.
//!
//! INVARIANT (decompressed once): an Ed25519 key keeps the point [`PublicJwk::parse`]
//! decompressed to validate it, and verifies with that point ([`crate::jws::check_ed25519`]);
//! it is never decoded from `x` a second time (a DPoP proof's key arrives with every
//! request, and the decompression is a tenth of an Ed25519 verification).

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::b64;

/// Why a JWK was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwkError {
    /// Not a JSON object with the required members.
    #[error("jwk must be an object with kty, crv and x (and y for EC)")]
    Shape,
    /// A key type or curve Mandate does not accept.
    #[error("unsupported key: only kty `OKP` crv `Ed25519` and kty `EC` crv `P-256` are accepted")]
    Unsupported,
    /// Private parameters were sent.
    #[error("jwk contains private key material (`{0}`); register the public key only")]
    Private(String),
    /// The coordinates do not decode to a valid public key.
    #[error("jwk coordinates are not a valid {0} public key")]
    BadKey(&'static str),
    /// `alg` or `use` does not fit the key.
    #[error("jwk `{0}` does not match the key type")]
    Mismatch(&'static str),
    /// `kid` is unusable.
    #[error("jwk kid must be 1-128 printable characters")]
    Kid,
}

/// A validated public key for verifying client assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicJwk {
    normalized: Value,
    thumbprint: String,
    alg: Algorithm,
    /// The decompressed point when `alg` is `EdDSA` (`None` for a P-256 key).
    ed25519: Option<ed25519_dalek::VerifyingKey>,
}

/// The Ed25519 point of a public key's 32 bytes, `None` when they do not decode or
/// the point is of small order: such a point verifies forged signatures under lenient
/// verification (the identity key accepts R = identity, s = 0).
fn ed25519_point(bytes: &[u8; 32]) -> Option<ed25519_dalek::VerifyingKey> {
    ed25519_dalek::VerifyingKey::from_bytes(bytes)
        .ok()
        .filter(|vk| !vk.is_weak())
}

/// Ed25519 points decoded lately, by their 32 bytes: a DPoP client signs every proof
/// with one key, whose point then need not be decompressed again for every request (a
/// tenth of an Ed25519 verification). One per node (`mandate_service::dpop`).
///
/// INVARIANT (points memo): an entry is [`ed25519_point`] of the very 32 bytes it is
/// keyed by — a memo of a pure function of its whole input, so a hit is the point a
/// decoding would give, and nothing a client sends can make it another; a key that does
/// not decode or is of small order is never kept (it is refused each time); at most
/// [`Ed25519Points::MAX`] entries (all forgotten when full), so a client making up
/// keys costs that much memory at most.
#[derive(Default)]
pub struct Ed25519Points {
    map: Mutex<HashMap<[u8; 32], ed25519_dalek::VerifyingKey>>,
}

impl std::fmt::Debug for Ed25519Points {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Points")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Ed25519Points {
    /// The most points kept.
    pub const MAX: usize = 4096;

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], ed25519_dalek::VerifyingKey>> {
        // A memo holds no invariant a panic could break half-way: keep using it.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`ed25519_point`] of `bytes`, from the memo when it holds it.
    fn point(&self, bytes: &[u8; 32]) -> Option<ed25519_dalek::VerifyingKey> {
        if let Some(vk) = self.lock().get(bytes) {
            return Some(*vk);
        }
        // Decoded outside the lock: another request's lookup need not wait for it.
        let vk = ed25519_point(bytes)?;
        let mut map = self.lock();
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(*bytes, vk);
        Some(vk)
    }

    /// How many points are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn str_member<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

fn coord(m: &Map<String, Value>, k: &str, what: &'static str) -> Result<Vec<u8>, JwkError> {
    let raw = str_member(m, k).ok_or(JwkError::Shape)?;
    let bytes = b64::decode(raw).ok_or(JwkError::BadKey(what))?;
    if bytes.len() != 32 {
        return Err(JwkError::BadKey(what));
    }
    Ok(bytes)
}

impl PublicJwk {
    /// Validates a JWK sent by a client and keeps only its public parameters
    /// (plus `kid`, `alg` and `use` when given).
    pub fn parse(v: &Value) -> Result<Self, JwkError> {
        Self::parse_with(v, None)
    }

    /// [`PublicJwk::parse`], an Ed25519 point taken from `points` when it was decoded
    /// before (a DPoP proof's key, the DPoP proof check). The same key, the same
    /// refusals.
    pub(crate) fn parse_with(v: &Value, points: Option<&Ed25519Points>) -> Result<Self, JwkError> {
        let m = v.as_object().ok_or(JwkError::Shape)?;
        if let Some(p) = PRIVATE_MEMBERS.iter().find(|p| m.contains_key(**p)) {
            return Err(JwkError::Private((*p).to_owned()));
        }
        let kty = str_member(m, "kty").ok_or(JwkError::Shape)?;
        let crv = str_member(m, "crv").ok_or(JwkError::Shape)?;
        let (normalized, thumb_input, alg, ed25519) = match (kty, crv) {
            ("OKP", "Ed25519") => {
                let x = coord(m, "x", "Ed25519")?;
                let arr: [u8; 32] = x
                    .as_slice()
                    .try_into()
                    .map_err(|_| JwkError::BadKey("Ed25519"))?;
                let vk = match points {
                    Some(memo) => memo.point(&arr),
                    None => ed25519_point(&arr),
                }
                .ok_or(JwkError::BadKey("Ed25519"))?;
                let x = b64::encode(&x);
                // RFC 7638 §3.2: required members, lexicographic order, no whitespace.
                let thumb = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
                (
                    json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
                    thumb,
                    Algorithm::EdDSA,
                    Some(vk),
                )
            }
            ("EC", "P-256") => {
                let x = coord(m, "x", "P-256")?;
                let y = coord(m, "y", "P-256")?;
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(0x04);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| JwkError::BadKey("P-256"))?;
                let (x, y) = (b64::encode(&x), b64::encode(&y));
                let thumb = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
                (
                    json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
                    thumb,
                    Algorithm::ES256,
                    None,
                )
            }
            _ => return Err(JwkError::Unsupported),
        };
        let Value::Object(mut normalized) = normalized else {
            return Err(JwkError::Shape);
        };
        if let Some(a) = m.get("alg") {
            // An OKP Ed25519 key may say RFC 8037 `EdDSA` or RFC 9864 `Ed25519`; either
            // way it verifies both names (`jws.rs`, one curve behind two names).
            let fits = match (alg, a.as_str()) {
                (Algorithm::EdDSA, Some(name)) => crate::jws::SigningAlg::parse(name).is_some(),
                (_, name) => name == Some("ES256"),
            };
            if !fits {
                return Err(JwkError::Mismatch("alg"));
            }
            normalized.insert("alg".into(), a.clone());
        }
        if let Some(u) = m.get("use") {
            if u.as_str() != Some("sig") {
                return Err(JwkError::Mismatch("use"));
            }
            normalized.insert("use".into(), json!("sig"));
        }
        if let Some(k) = m.get("kid") {
            let k = k.as_str().ok_or(JwkError::Kid)?;
            if k.is_empty() || k.len() > 128 || k.chars().any(char::is_control) {
                return Err(JwkError::Kid);
            }
            normalized.insert("kid".into(), json!(k));
        }
        let thumbprint = b64::encode(&Sha256::digest(thumb_input.as_bytes()));
        Ok(Self {
            normalized: Value::Object(normalized),
            thumbprint,
            alg,
            ed25519,
        })
    }

    /// The stored form: public parameters plus `kid`/`alg`/`use` if given.
    pub fn to_value(&self) -> Value {
        self.normalized.clone()
    }

    /// The RFC 7638 SHA-256 thumbprint (base64url).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The `kid` the client gave, if any.
    pub fn kid(&self) -> Option<&str> {
        self.normalized.get("kid").and_then(Value::as_str)
    }

    /// The only signature algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Whether `signature` (raw bytes: Ed25519's 64, or ES256's `r || s`, RFC 7518
    /// §3.4) over `message` verifies with this key, by the same check as a signed client
    /// assertion's ([`crate::jws`]). For detached signatures and the Wycheproof vectors.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.check(&crate::b64::encode(signature), message) == Ok(true)
    }

    /// Whether the base64url `signature` over `message` verifies with this key: an
    /// Ed25519 key with the point decoded when it was parsed ([`crate::jws::check_ed25519`],
    /// `INVARIANT (decompressed once)`), a P-256 key by [`crate::jws::check`]. `Err` when
    /// the signature segment is not base64url (or the key is unusable).
    pub(crate) fn check(&self, signature: &str, message: &[u8]) -> Result<bool, ()> {
        match &self.ed25519 {
            Some(vk) => crate::jws::check_ed25519(signature, message, vk),
            None => {
                let key = self.decoding_key().ok_or(())?;
                crate::jws::check(signature, message, &key, self.alg)
            }
        }
    }

    pub(crate) fn decoding_key(&self) -> Option<DecodingKey> {
        let x = self.normalized.get("x")?.as_str()?;
        match self.alg {
            Algorithm::EdDSA => DecodingKey::from_ed_components(x).ok(),
            _ => DecodingKey::from_ec_components(x, self.normalized.get("y")?.as_str()?).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8037_thumbprint() {
        // RFC 8037 Appendix A.3: the thumbprint of the Appendix A.2 key.
        let jwk = json!({"kty":"OKP","crv":"Ed25519",
            "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let k = PublicJwk::parse(&jwk).unwrap();
        assert_eq!(
            k.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    /// Regression (security review M1): small-order Ed25519 keys let anyone forge a
    /// `private_key_jwt` assertion (identity key, R = identity, s = 0).
    #[test]
    fn small_order_ed25519_keys_are_refused() {
        let small_order = [
            "0100000000000000000000000000000000000000000000000000000000000000",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0000000000000000000000000000000000000000000000000000000000000080",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        ];
        for hex in small_order {
            let bytes: Vec<u8> = (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(&bytes)});
            assert_eq!(
                PublicJwk::parse(&jwk),
                Err(JwkError::BadKey("Ed25519")),
                "{hex}"
            );
        }
    }

    /// INVARIANT (points memo): the memo gives the key `parse` gives, keeps no key it
    /// refuses (small order included) and never holds more than its bound.
    #[test]
    fn the_points_memo_changes_no_key_and_stays_bounded() {
        let memo = Ed25519Points::default();
        let jwk = |bytes: &[u8]| json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(bytes)});
        let good = jwk(ed25519_dalek::SigningKey::from_bytes(&[3; 32])
            .verifying_key()
            .as_bytes());
        for _ in 0..2 {
            assert_eq!(
                PublicJwk::parse_with(&good, Some(&memo)),
                PublicJwk::parse(&good)
            );
        }
        assert_eq!(memo.len(), 1);
        // The identity (small order), and bytes that are no point (y = 2 has no x).
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert!(ed25519_dalek::VerifyingKey::from_bytes(&not_a_point).is_err());
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for bad in [identity, not_a_point] {
            for _ in 0..2 {
                assert_eq!(
                    PublicJwk::parse_with(&jwk(&bad), Some(&memo)),
                    Err(JwkError::BadKey("Ed25519"))
                );
            }
        }
        assert_eq!(memo.len(), 1);
        let mut most = 0;
        for i in 0..=Ed25519Points::MAX as u32 {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_be_bytes());
            let vk = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
            let k = PublicJwk::parse_with(&jwk(vk.as_bytes()), Some(&memo)).unwrap();
            assert!(k.verifies(b"m", &{
                use ed25519_dalek::Signer as _;
                ed25519_dalek::SigningKey::from_bytes(&seed)
                    .sign(b"m")
                    .to_bytes()
            }));
            most = most.max(memo.len());
        }
        assert_eq!(most, Ed25519Points::MAX);
        assert!(memo.len() <= Ed25519Points::MAX);
    }

    #[test]
    fn refusals() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let cases = [
            (json!("nope"), JwkError::Shape),
            (json!({"kty":"RSA","crv":"x","x":x}), JwkError::Unsupported),
            (
                json!({"kty":"OKP","crv":"Ed25519","x":x,"d":x}),
                JwkError::Private("d".into()),
            ),
            (
                json!({"kty":"OKP","crv":"Ed25519","x":"AAAA"}),
                JwkError::BadKey("Ed25519"),
            ),
            (
                json!({"kty":"OKP","crv":"Ed25519","x":x,"alg":"ES256"}),
                JwkError::Mismatch("alg"),
            ),
            (
                json!({"kty":"EC","crv":"P-256","x":x,"y":x}),
                JwkError::BadKey("P-256"),
            ),
            (
                json!({"kty":"OKP","crv":"Ed25519","x":x,"alg":"ed25519"}),
                JwkError::Mismatch("alg"),
            ),
        ];
        for alg in ["EdDSA", "Ed25519"] {
            let k = PublicJwk::parse(&json!({"kty":"OKP","crv":"Ed25519","x":x,"alg":alg}));
            assert_eq!(k.map(|k| k.algorithm()), Ok(Algorithm::EdDSA), "{alg}");
        }
        for (v, want) in cases {
            assert_eq!(PublicJwk::parse(&v), Err(want), "{v}");
        }
    }
}
