//! RFC 9068 JWT access tokens: issued with `typ: at+jwt`, Ed25519 signatures and a `kid`,
//! under the `alg` name the key ring is configured with (`EdDSA` or `Ed25519`, see
//! [`SigningAlg`]); verified against the key ring with Mandate's clock (never the
//! library's), under either name whatever the configuration says now, so changing it
//! never breaks a token issued before.

use jsonwebtoken::Algorithm;
use mandate_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::jws::{self, SigningAlg};
use crate::keys::{KeyRing, SigningKey};

/// One audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience, serialized as a string.
    One(String),
    /// Several audiences, serialized as an array.
    Many(Vec<String>),
}

impl Audience {
    /// From a list: one element becomes a plain string.
    pub fn from_list(mut list: Vec<String>) -> Option<Self> {
        match list.len() {
            0 => None,
            1 => list.pop().map(Self::One),
            _ => Some(Self::Many(list)),
        }
    }

    /// Whether `aud` is among the audiences.
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Self::One(a) => a == aud,
            Self::Many(v) => v.iter().any(|a| a == aud),
        }
    }
}

/// The claims of a Mandate access token (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The issuer (Mandate's issuer URL).
    pub iss: String,
    /// The subject: the agent id for client-credentials tokens.
    pub sub: String,
    /// Who the token is for (RFC 8707 `resource`, or the configured default).
    pub aud: Audience,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Unique token id (`tok_…`), the handle for revocation.
    pub jti: String,
    /// The OAuth client (the agent id).
    pub client_id: String,
    /// Granted scope, space-delimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// RFC 8693 §4.1: who is acting for `sub` — the agent holding the token, with the
    /// agents that delegated to it nested inside (`act.act.sub` delegated to `act.sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The mandate the token is bound to (`mdt_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandate: Option<String>,
    /// The tokens this one was exchanged from, nearest first: `parents[i]` was held by
    /// the actor `i + 1` levels down the `act` chain. Revoking any of them, or cutting
    /// off its agent's tokens, kills this one too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<ParentToken>,
    /// RFC 7800 confirmation: the DPoP key the token is bound to (RFC 9449 `jkt`), the
    /// client certificate it is bound to (RFC 8705 `x5t#S256`), or both. A DPoP-bound
    /// token is accepted only with a DPoP proof made with that key; a certificate-bound
    /// one only over a TLS connection whose client certificate has that thumbprint;
    /// one bound both ways only with both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim of a sender-constrained token (RFC 7800 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 9449 §6.1: the RFC 7638 SHA-256 thumbprint of the DPoP public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// RFC 8705 §3.1: the base64url SHA-256 of the DER client certificate
    /// ([`certificate_thumbprint`]).
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

impl Confirmation {
    /// The confirmation of the bindings given, `None` when there is none (a `cnf` is
    /// never written empty).
    pub fn of(jkt: Option<String>, x5t_s256: Option<String>) -> Option<Self> {
        (jkt.is_some() || x5t_s256.is_some()).then_some(Self { jkt, x5t_s256 })
    }
}

/// RFC 8705 §3.1 `x5t#S256`: the base64url (no padding) SHA-256 of a certificate's DER
/// encoding. Not secret: a certificate is public.
pub fn certificate_thumbprint(der: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
}

/// An RFC 8693 actor claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The acting party (an agent id).
    pub sub: String,
    /// Whoever acted before it, for a delegation chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

/// A token an exchanged token derives from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentToken {
    /// The parent's `jti`: revoking it revokes this token too.
    pub jti: String,
    /// The parent's `iat` (seconds since the epoch): a cut-off of its agent's tokens at or
    /// after this instant revokes this token too.
    pub iat: i64,
}

impl AccessClaims {
    /// The thumbprint of the DPoP key the token is bound to, if it is bound.
    pub fn jkt(&self) -> Option<&str> {
        self.cnf.as_ref().and_then(|c| c.jkt.as_deref())
    }

    /// The thumbprint of the client certificate the token is bound to (RFC 8705
    /// `cnf.x5t#S256`), if it is certificate-bound.
    pub fn x5t_s256(&self) -> Option<&str> {
        self.cnf.as_ref().and_then(|c| c.x5t_s256.as_deref())
    }

    /// The agents of the `act` chain, the current actor first; empty without `act`.
    pub fn actors(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut next = self.act.as_ref();
        while let Some(a) = next {
            out.push(a.sub.as_str());
            next = a.act.as_deref();
        }
        out
    }
}

/// The `typ` header of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Why a token was not issued.
#[derive(Debug, thiserror::Error)]
#[error("could not sign access token: {0}")]
pub struct IssueError(String);

/// Signs `claims` with `key`, `alg` `EdDSA`.
pub fn issue(key: &SigningKey, claims: &AccessClaims) -> Result<String, IssueError> {
    issue_as(key, SigningAlg::EdDsa, claims)
}

/// Signs `claims` with `key` under the `alg` name `alg` (the ring's
/// [`KeyRing::signing_alg`], which its JWKS publishes too).
pub fn issue_as(
    key: &SigningKey,
    alg: SigningAlg,
    claims: &AccessClaims,
) -> Result<String, IssueError> {
    let header = json!({"alg": alg.name(), "typ": ACCESS_TOKEN_TYP, "kid": key.kid()});
    jws::sign_ed25519(key.dalek(), &header, claims).map_err(|e| IssueError(e.to_string()))
}

/// Why a presented access token is not valid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// Not a well-formed JWS, or claims of the wrong shape.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not EdDSA/Ed25519 or `typ` is not `at+jwt`.
    #[error("wrong token type or algorithm")]
    WrongType,
    /// `kid` missing or not (any longer) published.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// Issued by someone else.
    #[error("wrong issuer")]
    Issuer,
    /// Past `exp`.
    #[error("expired")]
    Expired,
    /// Before `nbf`.
    #[error("not yet valid")]
    NotYetValid,
    /// Its lifetime is longer than any token Mandate issues, or `nbf` precedes `iat`.
    #[error("lifetime over the maximum")]
    Lifetime,
}

/// What a verifier expects of every access token, whatever it is used for.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The issuer tokens must name.
    pub issuer: &'a str,
    /// The longest lifetime (`exp - iat`) a token may have: `token.max_lifetime_secs`.
    pub max_lifetime_secs: i64,
}

/// A token that verified, and until when that verification holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The claims, with signature, issuer, lifetime and time checked; the audience is
    /// the caller's to check.
    pub claims: AccessClaims,
    /// The first instant (seconds since the epoch) at which it no longer verifies,
    /// whatever else happens: the earliest of its `exp` and the end of its signing
    /// key's publication. A cache of verified tokens must not hand it out from then on.
    pub valid_until: i64,
}

/// Verifies signature, header, issuer, lifetime and time window of an access token.
///
/// Audience is not checked here: the caller knows which audience it serves.
/// Revocation and agent status are the caller's to check too (they need the store).
pub fn verify(
    ring: &KeyRing,
    token: &str,
    expected: &Expected<'_>,
    now: Timestamp,
) -> Result<AccessClaims, VerifyError> {
    verify_bounded(ring, token, expected, now).map(|v| v.claims)
}

/// [`verify`], also saying until when the verification holds (for a cache).
pub fn verify_bounded(
    ring: &KeyRing,
    token: &str,
    expected: &Expected<'_>,
    now: Timestamp,
) -> Result<Verified, VerifyError> {
    let jwt = jws::split(token).ok_or(VerifyError::Malformed)?;
    // RFC 7515 §4.1.11: an extension the recipient does not understand must be
    // refused; Mandate's tokens use none.
    if jwt.has_crit() {
        return Err(VerifyError::Malformed);
    }
    let typ_ok = jwt
        .header
        .get("typ")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|t| {
            t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
        });
    // `EdDSA` or `Ed25519`, whichever the ring signs with now: a token issued before a
    // change of `token.signing_alg` keeps verifying.
    if jwt.alg() != Some(Algorithm::EdDSA) || !typ_ok {
        return Err(VerifyError::WrongType);
    }
    let kid = jwt
        .kid()
        .map_err(|()| VerifyError::Malformed)?
        .ok_or(VerifyError::UnknownKey)?;
    let (key, key_until) = ring.decoding_key(kid, now).ok_or(VerifyError::UnknownKey)?;
    // The signature alone; time is checked below against Mandate's clock, audience by
    // the caller.
    match jwt.verify(key, Algorithm::EdDSA) {
        Ok(true) => {}
        Ok(false) => return Err(VerifyError::Signature),
        Err(()) => return Err(VerifyError::Malformed),
    }
    let c: AccessClaims =
        serde_json::from_slice(&jwt.payload).map_err(|_| VerifyError::Malformed)?;
    if c.iss != expected.issuer {
        return Err(VerifyError::Issuer);
    }
    // INVARIANT (max lifetime): no token lives longer than `token.max_lifetime_secs`,
    // whoever signed it and however the configuration changed since.
    if c.exp.saturating_sub(c.iat) > expected.max_lifetime_secs || c.nbf < c.iat {
        return Err(VerifyError::Lifetime);
    }
    if now.secs() >= c.exp {
        return Err(VerifyError::Expired);
    }
    if now.secs() < c.nbf {
        return Err(VerifyError::NotYetValid);
    }
    let valid_until = key_until.map_or(c.exp, |t| c.exp.min(t.secs()));
    Ok(Verified {
        claims: c,
        valid_until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PublishedKey;
    use mandate_core::random::OsRandom;
    use proptest::prelude::*;

    const EX: Expected<'static> = Expected {
        issuer: "http://mandate.test",
        max_lifetime_secs: i64::MAX,
    };

    fn claims(exp: i64, scope: Option<String>) -> AccessClaims {
        AccessClaims {
            iss: "http://mandate.test".into(),
            sub: "agt_01J00000000000000000000000".into(),
            aud: Audience::One("https://api.example".into()),
            exp,
            iat: 1000,
            nbf: 1000,
            jti: "tok_01J00000000000000000000000".into(),
            client_id: "agt_01J00000000000000000000000".into(),
            scope,
            act: None,
            mandate: None,
            parents: Vec::new(),
            cnf: None,
        }
    }

    fn ring() -> KeyRing {
        KeyRing::new(SigningKey::generate(&OsRandom).unwrap(), vec![]).unwrap()
    }

    #[test]
    fn window_issuer_and_key() {
        let ring = ring();
        let t = issue(ring.current(), &claims(1300, None)).unwrap();
        let at = Timestamp::from_secs;
        assert!(verify(&ring, &t, &EX, at(1000)).is_ok());
        assert_eq!(
            verify(&ring, &t, &EX, at(999)),
            Err(VerifyError::NotYetValid)
        );
        assert_eq!(verify(&ring, &t, &EX, at(1300)), Err(VerifyError::Expired));
        assert_eq!(
            verify(
                &ring,
                &t,
                &Expected {
                    issuer: "http://other",
                    ..EX
                },
                at(1000)
            ),
            Err(VerifyError::Issuer)
        );
        let other = self::ring();
        assert_eq!(
            verify(&other, &t, &EX, at(1000)),
            Err(VerifyError::UnknownKey)
        );
        assert_eq!(
            verify(&ring, "a.b.c", &EX, at(1000)),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn a_retired_key_verifies_nothing_once_its_publication_ends() {
        let old = SigningKey::generate(&OsRandom).unwrap();
        let t = issue(&old, &claims(5000, None)).unwrap();
        let retired = PublishedKey::from_public_bytes(old.kid(), &old.public_bytes())
            .unwrap()
            .until(Timestamp::from_secs(2000));
        let ring = KeyRing::new(SigningKey::generate(&OsRandom).unwrap(), vec![retired]).unwrap();
        let v = verify_bounded(&ring, &t, &EX, Timestamp::from_secs(1999)).unwrap();
        assert_eq!(
            v.valid_until, 2000,
            "a cache must drop it when the key ends"
        );
        assert_eq!(
            verify(&ring, &t, &EX, Timestamp::from_secs(2000)),
            Err(VerifyError::UnknownKey)
        );
        let listed = |at| {
            ring.jwks(Timestamp::from_secs(at))["keys"]
                .as_array()
                .unwrap()
                .len()
        };
        assert_eq!((listed(1999), listed(2000)), (2, 1));
    }

    #[test]
    fn a_token_living_longer_than_the_maximum_is_refused() {
        let ring = ring();
        let t = issue(ring.current(), &claims(1000 + 3601, None)).unwrap();
        let ex = Expected {
            max_lifetime_secs: 3600,
            ..EX
        };
        let at = Timestamp::from_secs(1000);
        assert_eq!(verify(&ring, &t, &ex, at), Err(VerifyError::Lifetime));
        let t = issue(ring.current(), &claims(1000 + 3600, None)).unwrap();
        assert!(verify(&ring, &t, &ex, at).is_ok());
        let mut early = claims(2000, None);
        early.nbf = 999;
        let t = issue(ring.current(), &early).unwrap();
        assert_eq!(verify(&ring, &t, &ex, at), Err(VerifyError::Lifetime));
    }

    #[test]
    fn a_critical_header_extension_is_refused() {
        let ring = ring();
        let header = json!({"alg": "EdDSA", "typ": ACCESS_TOKEN_TYP,
            "kid": ring.current().kid(), "crit": ["exp"]});
        let t = jws::sign_ed25519(ring.current().dalek(), &header, &claims(1300, None)).unwrap();
        assert_eq!(
            verify(&ring, &t, &EX, Timestamp::from_secs(1000)),
            Err(VerifyError::Malformed)
        );
    }

    /// Issue 19: RFC 9864 names the same signature `Ed25519`. Both names verify whatever
    /// the ring signs with now (a change of `token.signing_alg` breaks no token issued
    /// before it), and only against the ring's Ed25519 keys.
    #[test]
    fn both_alg_names_verify_whatever_the_ring_signs_with() {
        let at = Timestamp::from_secs(1000);
        for ring_alg in [SigningAlg::EdDsa, SigningAlg::Ed25519] {
            let ring = ring().signing_as(ring_alg);
            let listed = ring.jwks(at);
            assert_eq!(listed["keys"][0]["alg"], ring_alg.name());
            for token_alg in [SigningAlg::EdDsa, SigningAlg::Ed25519] {
                let t = issue_as(ring.current(), token_alg, &claims(1300, None)).unwrap();
                let header = jws::split(&t).unwrap().header;
                assert_eq!(header["alg"], token_alg.name());
                assert!(
                    verify(&ring, &t, &EX, at).is_ok(),
                    "{ring_alg:?} {token_alg:?}"
                );
            }
        }
        for bad in ["ed25519", "ES256", "none", "HS256"] {
            let ring = ring();
            let header = json!({"alg": bad, "typ": ACCESS_TOKEN_TYP, "kid": ring.current().kid()});
            let t =
                jws::sign_ed25519(ring.current().dalek(), &header, &claims(1300, None)).unwrap();
            assert_eq!(
                verify(&ring, &t, &EX, at),
                Err(VerifyError::WrongType),
                "{bad}"
            );
        }
    }

    #[test]
    fn tampered_payload_fails_signature() {
        let ring = ring();
        let t = issue(ring.current(), &claims(1300, Some("read".into()))).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        let forged_claims = claims(1300, Some("admin".into()));
        let payload = crate::b64::encode(&serde_json::to_vec(&forged_claims).unwrap());
        let forged = format!("{}.{}.{}", parts[0], payload, parts[2]);
        assert_eq!(
            verify(&ring, &forged, &EX, Timestamp::from_secs(1000)),
            Err(VerifyError::Signature)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn round_trip(exp in 1001i64..10_000_000, scope in proptest::option::of("[a-z:]{1,20}( [a-z:]{1,20}){0,3}")) {
            let ring = ring();
            let c = claims(exp, scope);
            let t = issue(ring.current(), &c).unwrap();
            prop_assert_eq!(verify(&ring, &t, &EX, Timestamp::from_secs(1000)), Ok(c));
        }

        #[test]
        fn garbage_never_panics(s in "\\PC{0,200}") {
            let _ = verify(&ring(), &s, &EX, Timestamp::from_secs(1000));
        }
    }
}
