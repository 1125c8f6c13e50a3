//! RFC 7523 §2.2 / §3 client assertions (`private_key_jwt`): a client proves itself by a
//! short-lived JWT signed with a key it registered.
//!
//! Replay (`jti` seen before) needs the store, so the caller records the returned `jti`
//! until its expiry and refuses it a second time.

use jsonwebtoken::{Algorithm, Validation};
use mandate_core::time::Timestamp;
use serde::Deserialize;

use crate::access::Audience;
use crate::b64;
use crate::jwk::PublicJwk;

/// Clock skew tolerated between the client and Mandate, in seconds.
pub const LEEWAY_SECS: i64 = 60;
/// The longest an assertion may live (`exp` beyond now), in seconds. Bounds how long
/// a `jti` must be remembered.
pub const MAX_LIFETIME_SECS: i64 = 600;

/// Why an assertion was refused. All of them map to `invalid_client` on the wire.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssertionError {
    /// Not a JWS with JSON claims of the expected shape.
    #[error("malformed client assertion")]
    Malformed,
    /// `alg` is not EdDSA or ES256.
    #[error("client assertion algorithm not allowed")]
    Algorithm,
    /// No registered key matches the header's `kid`/`alg`.
    #[error("no registered key matches the client assertion")]
    UnknownKey,
    /// No registered key verifies the signature.
    #[error("client assertion signature does not verify")]
    Signature,
    /// `iss` and `sub` are not both the client id.
    #[error("client assertion iss/sub must both be the client id")]
    Subject,
    /// `aud` does not name the token endpoint or the issuer.
    #[error("client assertion audience is not this server")]
    Audience,
    /// `exp` missing, past, or too far ahead; `nbf`/`iat` in the future.
    #[error("client assertion time window invalid")]
    Time,
    /// `jti` missing or unusable.
    #[error("client assertion needs a jti")]
    Jti,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

#[derive(Deserialize)]
struct SubjectOnly {
    sub: Option<String>,
    iss: Option<String>,
}

/// Reads the (unverified) `sub` of an assertion, to know whose keys to verify it with.
/// Nothing read here is trusted until [`verify`] succeeds.
pub fn peek_subject(assertion: &str) -> Result<String, AssertionError> {
    let payload = assertion
        .split('.')
        .nth(1)
        .ok_or(AssertionError::Malformed)?;
    let bytes = b64::decode(payload).ok_or(AssertionError::Malformed)?;
    let c: SubjectOnly = serde_json::from_slice(&bytes).map_err(|_| AssertionError::Malformed)?;
    c.sub.or(c.iss).ok_or(AssertionError::Subject)
}

/// A verified assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Its `jti`, to be recorded until `exp` and refused if seen again.
    pub jti: String,
    /// Its expiry.
    pub exp: Timestamp,
    /// Which of the given keys verified it.
    pub key_index: usize,
}

/// Verifies `assertion` for `client_id` against its registered `keys`, accepting any of
/// `audiences` (the token endpoint URL and the issuer).
pub fn verify(
    assertion: &str,
    client_id: &str,
    keys: &[&PublicJwk],
    audiences: &[&str],
    now: Timestamp,
) -> Result<Verified, AssertionError> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| AssertionError::Malformed)?;
    // RFC 7515 §4.1.11: no extension is understood, so any `crit` is refused.
    if header.crit.is_some() {
        return Err(AssertionError::Malformed);
    }
    if !matches!(header.alg, Algorithm::EdDSA | Algorithm::ES256) {
        return Err(AssertionError::Algorithm);
    }
    let candidates: Vec<(usize, &PublicJwk)> = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| k.algorithm() == header.alg)
        .filter(|(_, k)| match header.kid.as_deref() {
            Some(kid) => k.kid() == Some(kid) || k.thumbprint() == kid,
            None => true,
        })
        .map(|(i, k)| (i, *k))
        .collect();
    if candidates.is_empty() {
        return Err(AssertionError::UnknownKey);
    }
    let mut v = Validation::new(header.alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let mut verified = None;
    for (i, key) in candidates {
        let Some(dk) = key.decoding_key() else {
            continue;
        };
        match jsonwebtoken::decode::<Claims>(assertion, &dk, &v) {
            Ok(data) => {
                verified = Some((i, data.claims));
                break;
            }
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {}
            Err(_) => return Err(AssertionError::Malformed),
        }
    }
    let (key_index, c) = verified.ok_or(AssertionError::Signature)?;
    if c.iss.as_deref() != Some(client_id) || c.sub.as_deref() != Some(client_id) {
        return Err(AssertionError::Subject);
    }
    if !c
        .aud
        .is_some_and(|a| audiences.iter().any(|want| a.contains(want)))
    {
        return Err(AssertionError::Audience);
    }
    let now_s = now.secs();
    let exp = c.exp.ok_or(AssertionError::Time)?;
    // RFC 7523 §3 lets a server refuse an `exp` too far ahead, but common clients (authlib's
    // `PrivateKeyJWT`: an hour) ask for more than MAX_LIFETIME_SECS. With an `iat`, the
    // assertion is instead usable until `iat + MAX_LIFETIME_SECS` at the latest.
    let until = c
        .iat
        .map_or(exp, |iat| exp.min(iat.saturating_add(MAX_LIFETIME_SECS)));
    let future = |t: Option<i64>| t.is_some_and(|t| t > now_s + LEEWAY_SECS);
    if until.saturating_add(LEEWAY_SECS) <= now_s
        || until > now_s + MAX_LIFETIME_SECS + LEEWAY_SECS
        || future(c.nbf)
        || future(c.iat)
    {
        return Err(AssertionError::Time);
    }
    let jti = c
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(AssertionError::Jti)?;
    Ok(Verified {
        jti,
        exp: Timestamp::from_secs(until + LEEWAY_SECS),
        key_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const CLIENT: &str = "agt_01J00000000000000000000000";
    const AUD: &str = "http://mandate.test/oauth/token";

    fn keypair(seed: u8) -> (EncodingKey, PublicJwk) {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let der = sk.to_pkcs8_der().unwrap();
        let x = b64::encode(sk.verifying_key().as_bytes());
        let jwk = PublicJwk::parse(&json!({"kty":"OKP","crv":"Ed25519","x":x})).unwrap();
        (EncodingKey::from_ed_der(der.as_bytes()), jwk)
    }

    fn sign(key: &EncodingKey, claims: serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, key).unwrap()
    }

    fn good() -> serde_json::Value {
        json!({"iss": CLIENT, "sub": CLIENT, "aud": AUD, "exp": 1100, "iat": 1000, "jti": "j1"})
    }

    #[test]
    fn accepts_good_and_refuses_each_bad_claim() {
        let (ek, jwk) = keypair(7);
        let now = Timestamp::from_secs(1000);
        let check = |c: serde_json::Value| verify(&sign(&ek, c), CLIENT, &[&jwk], &[AUD], now);
        assert_eq!(check(good()).unwrap().jti, "j1");
        let with = |k: &str, v: serde_json::Value| {
            let mut c = good();
            c[k] = v;
            c
        };
        assert_eq!(
            check(with("iss", json!("agt_other"))),
            Err(AssertionError::Subject)
        );
        assert_eq!(
            check(with("aud", json!(["http://elsewhere"]))),
            Err(AssertionError::Audience)
        );
        assert_eq!(check(with("exp", json!(900))), Err(AssertionError::Time));
        let mut no_iat = with("exp", json!(5000));
        no_iat.as_object_mut().unwrap().remove("iat");
        assert_eq!(check(no_iat), Err(AssertionError::Time));
        // A far `exp` (authlib asks for an hour) is bounded by `iat` instead...
        let long = check(with("exp", json!(1000 + 3600))).unwrap();
        assert_eq!(long.exp.secs(), 1000 + MAX_LIFETIME_SECS + LEEWAY_SECS);
        // ...so it stops working MAX_LIFETIME_SECS (plus skew) after `iat`.
        let late = Timestamp::from_secs(1000 + MAX_LIFETIME_SECS + LEEWAY_SECS);
        let t = sign(&ek, with("exp", json!(1000 + 3600)));
        assert_eq!(
            verify(&t, CLIENT, &[&jwk], &[AUD], late),
            Err(AssertionError::Time)
        );
        assert_eq!(check(with("iat", json!(-5000))), Err(AssertionError::Time));
        assert_eq!(check(with("iat", json!(2000))), Err(AssertionError::Time));
        assert_eq!(check(with("nbf", json!(2000))), Err(AssertionError::Time));
        assert_eq!(check(with("jti", json!(""))), Err(AssertionError::Jti));
        let (other, _) = keypair(8);
        assert_eq!(
            verify(&sign(&other, good()), CLIENT, &[&jwk], &[AUD], now),
            Err(AssertionError::Signature)
        );
        assert_eq!(peek_subject(&sign(&ek, good())), Ok(CLIENT.to_owned()));
    }

    #[test]
    fn refuses_hmac_alg() {
        let (_, jwk) = keypair(7);
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &good(),
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        let now = Timestamp::from_secs(1000);
        assert_eq!(
            verify(&t, CLIENT, &[&jwk], &[AUD], now),
            Err(AssertionError::Algorithm)
        );
    }
}
