//! Compact JWS (RFC 7515 §7.1) reading and Ed25519 signing, with the RFC 9864 algorithm
//! name `Ed25519` beside RFC 8037's `EdDSA`.
//!
//! `jsonwebtoken` knows only `EdDSA`: its header parser refuses `"alg": "Ed25519"` and its
//! encoder cannot write it. So every JWS Mandate verifies is split and its header read
//! here, and every JWS Mandate signs is assembled here; the cryptography stays in the
//! libraries (`jsonwebtoken::crypto::verify` checks signatures, `ed25519-dalek` makes
//! them, and checks those of the Ed25519 keys a `PublicJwk` (jwk.rs) holds already
//! decompressed: [`check_ed25519`], the call `jsonwebtoken` would make). Claims are read
//! from the very payload bytes whose signature was checked.
//!
//! INVARIANT (one curve behind two names): in this crate `Algorithm::EdDSA` only ever
//! verifies with an OKP `Ed25519` key — registered keys (`jwk.rs`), trusted issuers' keys
//! (`user.rs`) and Mandate's own keys (`keys.rs`) refuse every other OKP curve — so
//! `Ed25519`, which RFC 9864 §2.2 defines as EdDSA over Ed25519, is verified by the same
//! verifier, against the same keys, as `EdDSA`. Neither name reaches an RSA, EC or HMAC key.

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::b64;

/// The JWS algorithm name of EdDSA over Ed25519 in RFC 8037 (polymorphic, deprecated for
/// JOSE by RFC 9864 but what most libraries know).
pub const EDDSA: &str = "EdDSA";
/// The fully-specified name of the same algorithm (RFC 9864 §2.2).
pub const ED25519: &str = "Ed25519";

/// Which name Mandate's own tokens carry in their `alg` header and JWKS. Both name the
/// same signature (EdDSA over Ed25519); Mandate verifies either whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningAlg {
    /// `EdDSA` (RFC 8037): the default, because PyJWT 2.15, Rust `jsonwebtoken` 11 and
    /// go-jose 4 verify only this name.
    #[default]
    EdDsa,
    /// `Ed25519` (RFC 9864): for verifiers that follow RFC 9864 (joserfc warns on
    /// `EdDSA`; jose 6 and openid-client accept both).
    Ed25519,
}

impl SigningAlg {
    /// The `alg` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => EDDSA,
            Self::Ed25519 => ED25519,
        }
    }

    /// From its `alg` value (exact spelling).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            EDDSA => Some(Self::EdDsa),
            ED25519 => Some(Self::Ed25519),
            _ => None,
        }
    }
}

/// A compact JWS split into its parts, the header decoded. Nothing in it is trusted
/// until its signature has verified.
#[derive(Debug)]
pub(crate) struct Compact<'a> {
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`, as presented.
    pub signing_input: &'a str,
    /// The protected header, a JSON object.
    pub header: Map<String, Value>,
    /// The payload bytes (decoded from the presented segment).
    pub payload: Vec<u8>,
    /// The signature segment, still base64url.
    pub signature: &'a str,
}

impl Compact<'_> {
    /// The header's `alg`, as the verifier for it: `Ed25519` becomes `EdDSA` (see the
    /// module invariant), every other name is parsed as `jsonwebtoken` spells it.
    /// `None` for a missing, non-string or unknown `alg` (and for `none`).
    pub fn alg(&self) -> Option<Algorithm> {
        verifier_alg(self.header.get("alg")?.as_str()?)
    }

    /// The header's `kid`: `Ok(None)` when absent, `Err` when not a string.
    pub fn kid(&self) -> Result<Option<&str>, ()> {
        match self.header.get("kid") {
            None => Ok(None),
            Some(Value::String(k)) => Ok(Some(k)),
            Some(_) => Err(()),
        }
    }

    /// Whether the header names critical extensions. RFC 7515 §4.1.11: none is
    /// understood here, so a JWS with any must be refused.
    pub fn has_crit(&self) -> bool {
        self.header.contains_key("crit")
    }

    /// Whether the signature verifies with `key` under `alg`; `Err` when the signature
    /// segment or the key is unusable for `alg` (not the same as a wrong signature).
    pub fn verify(&self, key: &DecodingKey, alg: Algorithm) -> Result<bool, ()> {
        check(self.signature, self.signing_input.as_bytes(), key, alg)
    }
}

/// The signature check of every JWS Mandate verifies with a `DecodingKey` — its own
/// tokens, trusted issuers' user tokens, Security Event Tokens, P-256 client assertions
/// and DPoP proofs — and of the Wycheproof vectors (`tests/wycheproof`, `user.rs`),
/// which prove it refuses every invalid EdDSA and ECDSA P-256 signature they hold and
/// accepts every valid one. (An Ed25519 `PublicJwk` (jwk.rs) — a client's
/// registered key, a DPoP proof's key — goes through [`check_ed25519`], under the same
/// vectors.) `signature` is the base64url segment; `Err` when it or the key is unusable
/// for `alg`.
pub(crate) fn check(
    signature: &str,
    message: &[u8],
    key: &DecodingKey,
    alg: Algorithm,
) -> Result<bool, ()> {
    jsonwebtoken::crypto::verify(signature, message, key, alg).map_err(|_| ())
}

/// [`check`] for `EdDSA` with an Ed25519 point already decompressed (a
/// `PublicJwk` (jwk.rs)'s): the very call `jsonwebtoken`'s `rust_crypto` EdDSA
/// verifier makes — the signature segment base64url-decoded without padding (`Err`
/// otherwise), `Signature::from_slice` (a wrong length is `Ok(false)`), then
/// `VerifyingKey::verify` (RFC 8032 with a canonical `s`) — without decompressing the
/// key again from its bytes. Wycheproof's EdDSA vectors run through it
/// (`tests/wycheproof`, `PublicJwk::verifies`).
pub(crate) fn check_ed25519(
    signature: &str,
    message: &[u8],
    key: &ed25519_dalek::VerifyingKey,
) -> Result<bool, ()> {
    use ed25519_dalek::Verifier as _;
    let raw = b64::decode(signature).ok_or(())?;
    Ok(ed25519_dalek::Signature::from_slice(&raw).is_ok_and(|s| key.verify(message, &s).is_ok()))
}

/// The verifier for a JWS `alg` name: `Ed25519` is `EdDSA`'s (see the module invariant),
/// every other name as `jsonwebtoken` spells it; `None` for an unknown name or `none`.
pub(crate) fn verifier_alg(name: &str) -> Option<Algorithm> {
    match name {
        ED25519 => Some(Algorithm::EdDSA),
        other => other.parse().ok(),
    }
}

/// Splits a compact JWS: exactly three segments, a header that is a JSON object without
/// duplicate members ([`UniqueObject`]) and a base64url payload. `None` otherwise.
pub(crate) fn split(token: &str) -> Option<Compact<'_>> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header, payload) = signing_input.split_once('.')?;
    if payload.contains('.') {
        return None;
    }
    Some(Compact {
        signing_input,
        header: header_object(header)?,
        payload: b64::decode(payload)?,
        signature,
    })
}

/// A base64url header segment decoded as a JSON object without duplicate members
/// ([`UniqueObject`]); `None` otherwise. Every JWS header Mandate reads goes through
/// here (`split`, and user tokens in `user.rs`).
pub(crate) fn header_object(segment: &str) -> Option<Map<String, Value>> {
    let UniqueObject(header) = serde_json::from_slice(&b64::decode(segment)?).ok()?;
    Some(header)
}

/// A JSON object whose members are unique.
///
/// RFC 7515 §4 lets a parser either refuse duplicate header members or keep the last;
/// Mandate refuses them (as `jsonwebtoken::decode_header` did), so no two readers of
/// one header can disagree on its `alg`, `kid` or `crit`.
struct UniqueObject(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for UniqueObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Map<String, Value>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object without duplicate members")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<Self::Value, A::Error> {
                let mut members = Map::new();
                while let Some(name) = access.next_key::<String>()? {
                    let value: Value = access.next_value()?;
                    if members.contains_key(&name) {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate member `{name}`"
                        )));
                    }
                    members.insert(name, value);
                }
                Ok(members)
            }
        }
        d.deserialize_map(Members).map(UniqueObject)
    }
}

/// Signs `claims` as a compact JWS with an Ed25519 key, under `header` (which must name
/// `alg` `EdDSA` or `Ed25519`; the caller builds it).
pub(crate) fn sign_ed25519(
    key: &ed25519_dalek::SigningKey,
    header: &Value,
    claims: &impl Serialize,
) -> Result<String, serde_json::Error> {
    use ed25519_dalek::Signer as _;
    let mut out = b64::encode(&serde_json::to_vec(header)?);
    out.push('.');
    out.push_str(&b64::encode(&serde_json::to_vec(claims)?));
    let signature = key.sign(out.as_bytes());
    out.push('.');
    out.push_str(&b64::encode(&signature.to_bytes()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> (ed25519_dalek::SigningKey, DecodingKey) {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let dk =
            DecodingKey::from_ed_components(&b64::encode(sk.verifying_key().as_bytes())).unwrap();
        (sk, dk)
    }

    #[test]
    fn both_names_sign_and_verify_with_the_same_key() {
        let (sk, dk) = key();
        for name in [EDDSA, ED25519] {
            let t = sign_ed25519(&sk, &json!({"alg": name}), &json!({"a": 1})).unwrap();
            let c = split(&t).unwrap();
            assert_eq!(c.alg(), Some(Algorithm::EdDSA), "{name}");
            assert_eq!(c.header["alg"], name);
            assert_eq!(c.verify(&dk, Algorithm::EdDSA), Ok(true));
            assert_eq!(c.payload, br#"{"a":1}"#);
        }
    }

    #[test]
    fn an_ed25519_signature_never_verifies_with_another_key_type() {
        let (sk, _) = key();
        let t = sign_ed25519(&sk, &json!({"alg": ED25519}), &json!({})).unwrap();
        let c = split(&t).unwrap();
        let hmac = DecodingKey::from_secret(b"k");
        assert_ne!(c.verify(&hmac, Algorithm::EdDSA), Ok(true));
        assert_ne!(c.verify(&hmac, Algorithm::HS256), Ok(true));
    }

    #[test]
    fn refuses_what_is_not_a_compact_jws() {
        let h = b64::encode(br#"{"alg":"Ed25519"}"#);
        for t in [
            String::new(),
            "a.b".to_owned(),
            format!("{h}.e30.x.y"),
            format!("{}.e30.x", b64::encode(b"[1]")),
            format!("{h}.!!.x"),
        ] {
            assert!(split(&t).is_none(), "{t}");
        }
        // Review of issue 19: a header naming a member twice is refused, as
        // `jsonwebtoken::decode_header` did before this module read headers; reading the
        // last one silently would let two parsers disagree on `alg`, `kid` or `crit`.
        let (sk, dk) = key();
        for header in [
            r#"{"alg":"HS256","alg":"EdDSA"}"#,
            r#"{"alg":"EdDSA","kid":"a","kid":"b"}"#,
            r#"{"alg":"EdDSA","crit":["x"],"crit":null}"#,
        ] {
            let input = format!("{}.e30", b64::encode(header.as_bytes()));
            let sig = {
                use ed25519_dalek::Signer as _;
                b64::encode(&sk.sign(input.as_bytes()).to_bytes())
            };
            let t = format!("{input}.{sig}");
            assert!(split(&t).is_none(), "{header}");
        }
        let ok = sign_ed25519(&sk, &json!({"alg": EDDSA, "kid": "a"}), &json!({})).unwrap();
        assert_eq!(split(&ok).unwrap().verify(&dk, Algorithm::EdDSA), Ok(true));
        // Only canonical unpadded base64url: no padding, no `+`/`/`, no stray bits in
        // the last character (`e30` is `{}`; `e31` decodes to the same bytes).
        let ok = sign_ed25519(&sk, &json!({"alg": EDDSA}), &json!({})).unwrap();
        let (input, sig) = ok.rsplit_once('.').unwrap();
        let (h, _) = input.split_once('.').unwrap();
        assert!(sig.contains(['-', '_']), "{sig}");
        for t in [
            format!("{h}=.e30.{sig}"),
            format!("{h}.e30=.{sig}"),
            format!("{h}.e31.{sig}"),
            format!("{h}.e30.{}", sig.replace('-', "+").replace('_', "/")),
            format!("{ok}."),
        ] {
            assert!(
                split(&t).is_none_or(|c| c.verify(&dk, Algorithm::EdDSA) != Ok(true)),
                "{t}"
            );
        }
        let none = format!("{}.e30.", b64::encode(br#"{"alg":"none"}"#));
        let none = split(&none).unwrap();
        assert_eq!(none.alg(), None);
    }
}
