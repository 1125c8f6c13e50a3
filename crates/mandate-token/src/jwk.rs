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
                let vk = ed25519_dalek::VerifyingKey::from_bytes(&arr)
                    .map_err(|_| JwkError::BadKey("Ed25519"))?;
                // A small-order point verifies forged signatures under lenient
                // verification (the identity key accepts R = identity, s = 0).
                if vk.is_weak() {
                    return Err(JwkError::BadKey("Ed25519"));
                }
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
