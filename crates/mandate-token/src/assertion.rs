//! RFC 7523 §2.2 / §3 client assertions (`private_key_jwt`): a client proves itself by a
//! short-lived JWT signed with a key it registered.
//!
//! Replay (`jti` seen before) needs the store, so the caller records the returned `jti`
//! until its expiry and refuses it a second time.
//!
//! What a refused client learns ([`AssertionError::description`], the wire
//! `error_description`), and why that is no oracle:
//! - Before any key is looked up, only the assertion itself is examined: its shape, `crit`,
//!   `alg` (`EdDSA`, `Ed25519` or `ES256`) and that it names a subject. The answer depends
//!   on nothing but the bytes sent, so it is described exactly ("malformed", "algorithm
//!   not supported"): anyone could compute it offline.
//! - Unknown client, no registered key fitting the header, and a signature that does not
//!   verify share one text, "client authentication failed" — the same as a wrong client
//!   secret — so no answer says whether a client id exists, has keys, or which `kid` it
//!   registered. (Response timing can still differ by a store read or a signature check;
//!   client and key ids name public things, so that is accepted: see the server's
//!   oauth.rs.)
//! - Every claim check (`iss`/`sub`, `aud`, the time window, `jti`, replay) runs only
//!   after a signature verified with one of the client's own keys, so its exact reason
//!   ("expired", "wrong audience", "already used") reaches only someone holding that
//!   key: the client itself, whom it helps fix its clock or configuration. Checking them
//!   before the key lookup would give the same answers, but would also let a stranger
//!   learn the server's clock skew window and accepted audiences for free; after the
//!   signature nothing is given away.

use jsonwebtoken::Algorithm;
use mandate_core::time::Timestamp;
use serde::Deserialize;

use crate::access::Audience;
use crate::jwk::PublicJwk;
use crate::jws;
use crate::keys::SigningKey;

/// Clock skew tolerated between the client and Mandate, in seconds.
pub const LEEWAY_SECS: i64 = 60;
/// The longest an assertion may live (`exp` beyond now), in seconds. Bounds how long
/// a `jti` must be remembered.
pub const MAX_LIFETIME_SECS: i64 = 600;
/// The longest `jti` accepted, in bytes.
pub const MAX_JTI_BYTES: usize = 256;

/// The text a client is given when it cannot be told more (see the module doc).
pub const AUTH_FAILED: &str = "client authentication failed";

/// Why an assertion was refused. All of them map to `invalid_client` on the wire, with
/// [`AssertionError::description`] as the `error_description`; the `Display` text is for
/// the server's log and may say more.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssertionError {
    /// Not a JWS with JSON claims of the expected shape, or a `crit` header.
    #[error("malformed client assertion")]
    Malformed,
    /// `alg` is not EdDSA, Ed25519 or ES256.
    #[error("client assertion algorithm not allowed")]
    Algorithm,
    /// No registered key matches the header's `kid`/`alg`.
    #[error("no registered key matches the client assertion")]
    UnknownKey,
    /// No registered key verifies the signature.
    #[error("client assertion signature does not verify")]
    Signature,
    /// `iss` and `sub` are not both the client id (or neither is there to name one).
    #[error("client assertion iss/sub must both be the client id")]
    Subject,
    /// `aud` does not name the token endpoint or the issuer.
    #[error("client assertion audience is not this server")]
    Audience,
    /// `exp` missing.
    #[error("client assertion has no exp")]
    NoExpiry,
    /// Past `exp` (or `iat` + [`MAX_LIFETIME_SECS`]), beyond the leeway.
    #[error("client assertion expired")]
    Expired,
    /// `nbf` or `iat` in the future, beyond the leeway.
    #[error("client assertion not yet valid")]
    NotYetValid,
    /// Without `iat`, an `exp` more than [`MAX_LIFETIME_SECS`] ahead.
    #[error("client assertion lives too long")]
    TooLongLived,
    /// `jti` missing or unusable.
    #[error("client assertion needs a jti")]
    Jti,
}

impl AssertionError {
    /// The `error_description` a client is given. Unknown key and bad signature say no
    /// more than an unknown client does (see the module doc).
    pub fn description(&self) -> &'static str {
        match self {
            Self::Malformed => {
                "client assertion is not a compact JWS with a JSON header and JSON claims (and no crit)"
            }
            Self::Algorithm => "client assertion alg must be EdDSA, Ed25519 or ES256",
            Self::UnknownKey | Self::Signature => AUTH_FAILED,
            Self::Subject => "client assertion iss and sub must both be the client id",
            Self::Audience => {
                "client assertion aud must name this server's issuer or its token endpoint"
            }
            Self::NoExpiry => "client assertion needs an exp",
            Self::Expired => {
                "client assertion expired (it is usable until exp, and at most 600 s after iat)"
            }
            Self::NotYetValid => "client assertion not yet valid (nbf or iat in the future)",
            Self::TooLongLived => {
                "client assertion lives too long: without iat, exp may be at most 600 s ahead"
            }
            Self::Jti => "client assertion needs a jti of 1 to 256 bytes",
        }
    }
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

/// What the client signs: RFC 7523 §3 claims for `client_id`, with `aud` the token
/// endpoint, issued at `iat` and good for `lifetime_secs`, with a fresh `jti`.
pub struct Claimed<'a> {
    /// The agent id: both `iss` and `sub`.
    pub client_id: &'a str,
    /// The token endpoint (or the issuer).
    pub audience: &'a str,
    /// When it is signed (Unix seconds).
    pub iat: i64,
    /// Seconds until `exp`; at most [`MAX_LIFETIME_SECS`] is accepted by [`verify`].
    pub lifetime_secs: i64,
    /// A value never used before (the server refuses a replayed one).
    pub jti: &'a str,
}

/// Signs a client assertion with an agent's own Ed25519 key (`alg` `EdDSA`, the key's
/// thumbprint as `kid`): the client side of [`verify`], for `mandate agent key`.
pub fn sign(key: &SigningKey, c: &Claimed<'_>) -> Result<String, serde_json::Error> {
    let header = serde_json::json!({"alg": jws::EDDSA, "typ": "JWT", "kid": key.kid()});
    let claims = serde_json::json!({"iss": c.client_id, "sub": c.client_id,
        "aud": c.audience, "iat": c.iat, "exp": c.iat.saturating_add(c.lifetime_secs),
        "jti": c.jti});
    jws::sign_ed25519(key.dalek(), &header, &claims)
}

/// Reads the (unverified) `sub` of an assertion, to know whose keys to verify it with,
/// after the checks that need no key (shape, `crit`, `alg`). Nothing read here is
/// trusted until [`verify`] succeeds.
pub fn peek_subject(assertion: &str) -> Result<String, AssertionError> {
    let c = jws::split(assertion).ok_or(AssertionError::Malformed)?;
    precheck(&c)?;
    let s: SubjectOnly =
        serde_json::from_slice(&c.payload).map_err(|_| AssertionError::Malformed)?;
    s.sub.or(s.iss).ok_or(AssertionError::Subject)
}

/// The checks that depend on the assertion alone: no `crit`, a string `kid` if any, and
/// an accepted `alg` (returned as its verifier).
fn precheck(c: &jws::Compact<'_>) -> Result<Algorithm, AssertionError> {
    if c.has_crit() || c.kid().is_err() {
        return Err(AssertionError::Malformed);
    }
    match c.alg() {
        Some(alg @ (Algorithm::EdDSA | Algorithm::ES256)) => Ok(alg),
        _ => Err(AssertionError::Algorithm),
    }
}

/// A verified assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Its `jti`, to be recorded until `exp` and refused if seen again.
    pub jti: String,
    /// Its `exp`: until then its `jti` must be remembered to refuse a replay.
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
    let c = jws::split(assertion).ok_or(AssertionError::Malformed)?;
    let alg = precheck(&c)?;
    let kid = c.kid().map_err(|()| AssertionError::Malformed)?;
    // INVARIANT (no algorithm confusion): a key verifies only the algorithm of its type
    // (`PublicJwk::algorithm`): EdDSA/Ed25519 an OKP Ed25519 key, ES256 a P-256 key.
    let candidates: Vec<(usize, &PublicJwk)> = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| k.algorithm() == alg)
        .filter(|(_, k)| match kid {
            Some(kid) => k.kid() == Some(kid) || k.thumbprint() == kid,
            None => true,
        })
        .map(|(i, k)| (i, *k))
        .collect();
    if candidates.is_empty() {
        return Err(AssertionError::UnknownKey);
    }
    let mut key_index = None;
    for (i, key) in candidates {
        // The key's own algorithm, which is `alg` (filtered above).
        match key.check(c.signature, c.signing_input.as_bytes()) {
            Ok(true) => {
                key_index = Some(i);
                break;
            }
            Ok(false) => {}
            // A signature segment that is not base64url, or of the wrong length.
            Err(()) => return Err(AssertionError::Signature),
        }
    }
    let key_index = key_index.ok_or(AssertionError::Signature)?;
    // From here on the claims are the signer's own (see the module doc).
    let c: Claims = serde_json::from_slice(&c.payload).map_err(|_| AssertionError::Malformed)?;
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
    let exp = c.exp.ok_or(AssertionError::NoExpiry)?;
    // RFC 7523 §3 lets a server refuse an `exp` too far ahead, but common clients (authlib's
    // `PrivateKeyJWT`: an hour) ask for more than MAX_LIFETIME_SECS. With an `iat`, the
    // assertion is instead usable until `iat + MAX_LIFETIME_SECS` at the latest.
    let until = c
        .iat
        .map_or(exp, |iat| exp.min(iat.saturating_add(MAX_LIFETIME_SECS)));
    let future = |t: Option<i64>| t.is_some_and(|t| t > now_s + LEEWAY_SECS);
    if future(c.nbf) || future(c.iat) {
        return Err(AssertionError::NotYetValid);
    }
    if until.saturating_add(LEEWAY_SECS) <= now_s {
        return Err(AssertionError::Expired);
    }
    if until > now_s + MAX_LIFETIME_SECS + LEEWAY_SECS {
        return Err(AssertionError::TooLongLived);
    }
    let jti = c
        .jti
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_BYTES)
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

    /// What `sign` makes, `verify` accepts with the key's own public JWK, once per `jti`
    /// and only for the agent it names.
    #[test]
    fn a_signed_assertion_verifies_with_the_keys_public_jwk() {
        let key = SigningKey::from_pkcs8_pem(
            &SigningKey::generate(&mandate_core::random::OsRandom)
                .unwrap()
                .to_pkcs8_pem()
                .unwrap(),
        )
        .unwrap();
        let jwk = PublicJwk::parse(&key.public_jwk()).unwrap();
        let now = 1_750_000_000;
        let claimed = Claimed {
            client_id: CLIENT,
            audience: AUD,
            iat: now,
            lifetime_secs: 60,
            jti: "j1",
        };
        let a = sign(&key, &claimed).unwrap();
        let v = verify(&a, CLIENT, &[&jwk], &[AUD], Timestamp::from_secs(now)).unwrap();
        assert_eq!((v.jti.as_str(), v.key_index), ("j1", 0));
        assert_eq!(
            verify(
                &a,
                "agt_01J00000000000000000000001",
                &[&jwk],
                &[AUD],
                Timestamp::from_secs(now)
            )
            .map(|_| ()),
            Err(AssertionError::Subject)
        );
    }
    use crate::b64;
    use serde_json::{Value, json};

    const CLIENT: &str = "agt_01J00000000000000000000000";
    const AUD: &str = "http://mandate.test/oauth/token";
    const ISSUER: &str = "http://mandate.test";

    /// A signing key of either type and its registered public JWK.
    enum Key {
        Ed(ed25519_dalek::SigningKey),
        P256(p256::ecdsa::SigningKey),
    }

    impl Key {
        fn ed(seed: u8) -> Self {
            Self::Ed(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
        }

        fn p256() -> Self {
            Self::P256(p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap())
        }

        fn jwk(&self) -> PublicJwk {
            let v = match self {
                Self::Ed(k) => {
                    json!({"kty":"OKP","crv":"Ed25519","x": b64::encode(k.verifying_key().as_bytes())})
                }
                Self::P256(k) => {
                    let p = k.verifying_key().to_encoded_point(false);
                    json!({"kty":"EC","crv":"P-256","x": b64::encode(p.x().unwrap()), "y": b64::encode(p.y().unwrap())})
                }
            };
            PublicJwk::parse(&v).unwrap()
        }

        /// Signs `header.claims` whatever `alg` the header names.
        fn sign(&self, header: &Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                b64::encode(header.to_string().as_bytes()),
                b64::encode(claims.to_string().as_bytes())
            );
            let sig = match self {
                Self::Ed(k) => {
                    use ed25519_dalek::Signer as _;
                    k.sign(input.as_bytes()).to_bytes().to_vec()
                }
                Self::P256(k) => {
                    use p256::ecdsa::signature::Signer as _;
                    let s: p256::ecdsa::Signature = k.sign(input.as_bytes());
                    s.to_bytes().to_vec()
                }
            };
            format!("{input}.{}", b64::encode(&sig))
        }
    }

    fn good() -> Value {
        json!({"iss": CLIENT, "sub": CLIENT, "aud": AUD, "exp": 1100, "iat": 1000, "jti": "j1"})
    }

    /// Runs every case of `tests/data/assertion/cases.json` (its `about` says how).
    #[test]
    fn refusal_table() {
        let doc: Value =
            serde_json::from_str(include_str!("../tests/data/assertion/cases.json")).unwrap();
        let registered = Key::ed(7);
        let thumbprint = registered.jwk().thumbprint().to_owned();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() > 20);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let mut claims = good();
            for (k, v) in case["set"].as_object().into_iter().flatten() {
                claims[k] = v.clone();
            }
            for k in case["remove"].as_array().into_iter().flatten() {
                claims.as_object_mut().unwrap().remove(k.as_str().unwrap());
            }
            let mut header = json!({"alg": "EdDSA", "typ": "JWT"});
            for (k, v) in case["header"].as_object().into_iter().flatten() {
                header[k] = if v == "$thumbprint" {
                    json!(thumbprint)
                } else {
                    v.clone()
                };
            }
            let signer = match case["signer"].as_str().unwrap_or("registered") {
                "registered" => Key::ed(7),
                "stranger" => Key::ed(8),
                "p256" => Key::p256(),
                other => panic!("{name}: signer {other}"),
            };
            let keys: Vec<PublicJwk> = match case["registered"].as_array() {
                None => vec![registered.jwk()],
                Some(list) => list
                    .iter()
                    .map(|k| match k.as_str().unwrap() {
                        "ed25519" => registered.jwk(),
                        "p256" => Key::p256().jwk(),
                        other => panic!("{name}: key {other}"),
                    })
                    .collect(),
            };
            let refs: Vec<&PublicJwk> = keys.iter().collect();
            let now = Timestamp::from_secs(case["now"].as_i64().unwrap_or(1000));
            let jwt = signer.sign(&header, &claims);
            let got = verify(&jwt, CLIENT, &refs, &[AUD, ISSUER], now);
            match case["want"].as_str() {
                None => assert!(got.is_ok(), "{name}: {got:?}"),
                Some(want) => {
                    let err = got.expect_err(name);
                    assert_eq!(format!("{err:?}"), want, "{name}");
                    if let Some(d) = case["description"].as_str() {
                        assert_eq!(err.description(), d, "{name}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_long_exp_is_bounded_by_iat_and_the_jti_is_kept_until_then() {
        let key = Key::ed(7);
        let mut c = good();
        c["exp"] = json!(1000 + 3600);
        let t = key.sign(&json!({"alg": "Ed25519"}), &c);
        let v = verify(
            &t,
            CLIENT,
            &[&key.jwk()],
            &[AUD],
            Timestamp::from_secs(1000),
        )
        .unwrap();
        assert_eq!(v.exp.secs(), 1000 + MAX_LIFETIME_SECS + LEEWAY_SECS);
        assert_eq!(v.jti, "j1");
    }

    #[test]
    fn peek_subject_checks_what_needs_no_key() {
        let key = Key::ed(7);
        assert_eq!(
            peek_subject(&key.sign(&json!({"alg": "Ed25519"}), &good())),
            Ok(CLIENT.to_owned())
        );
        assert_eq!(
            peek_subject(&key.sign(&json!({"alg": "HS256"}), &good())),
            Err(AssertionError::Algorithm)
        );
        assert_eq!(
            peek_subject(&key.sign(&json!({"alg": "EdDSA"}), &json!({"aud": AUD}))),
            Err(AssertionError::Subject)
        );
        assert_eq!(peek_subject("a.b.c"), Err(AssertionError::Malformed));
    }

    #[test]
    fn an_unknown_key_and_a_bad_signature_read_alike() {
        assert_eq!(
            AssertionError::UnknownKey.description(),
            AssertionError::Signature.description()
        );
        assert_eq!(AssertionError::Signature.description(), AUTH_FAILED);
    }
}
