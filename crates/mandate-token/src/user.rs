//! Trusted human identity: OIDC ID tokens and JWT access tokens from the operator's
//! identity providers ("trusted issuers"), verified and mapped to a
//! [`UserRef`], plus a local Ed25519 issuer for development and tests.
//!
//! An operator configures each issuer with its `iss`, the audience Mandate must appear
//! in, its JWK Set (the caller reads the file; this module gets the text) and an
//! algorithm allow-list. Only asymmetric algorithms exist here: a shared HMAC secret
//! would let anyone who can verify a token also mint one, and `none` is no signature.
//!
//! `alg` `Ed25519` (RFC 9864) is EdDSA over Ed25519, so it is accepted wherever `EdDSA`
//! is (header, allow-list, a JWK's `alg`) and verified by the same verifier against the
//! same OKP Ed25519 keys (`jws.rs`, one curve behind two names).
//!
//! Verification, in order: size (≤ [`MAX_TOKEN_BYTES`]); a header that is a JSON object
//! without duplicate members and without `crit`; the unverified `iss` picks
//! the issuer; the header `alg` must be on its allow-list; the header `kid` picks the
//! key (without a `kid`, only when exactly one key fits `alg`), and the key's type must
//! fit `alg`; the signature; then, from the verified claims, `iss`, `aud`, the time
//! window and the user claims. Keys come only from the configured JWKS: header `jwk`,
//! `jku` and `x5u` are never followed. The signature is checked by `jsonwebtoken`'s
//! verifier over the `header.payload` bytes as presented, and the claims are read from
//! those same bytes. User, group, email and `jti` values must be 1 to
//! [`MAX_CLAIM_CHARS`] characters without control characters (they end up in audit
//! records and policy entities); an email the token marks `email_verified: false` is
//! dropped.
//!
//! Time is Mandate's clock (the `now` parameter), never the library's: `exp` is
//! required and has no leeway (`now < exp`); `nbf` and `iat` may lie up to
//! [`LEEWAY_SECS`] in the future (clock skew between the issuer and Mandate).

use std::collections::HashMap;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use std::sync::{Arc, OnceLock, RwLock};

use jsonwebtoken::{Algorithm, DecodingKey, Header};
use mandate_core::mandate::UserRef;
use mandate_core::time::Timestamp;
use mandate_core::uri::is_absolute_uri;
use serde_json::{Map, Value, json};

use crate::b64;
use crate::keys::SigningKey;

/// The largest user token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// How far in the future `nbf` and `iat` may lie (clock skew), in seconds. `exp` has
/// no leeway.
pub const LEEWAY_SECS: i64 = 60;
/// The longest user id, group, email or `jti`, in characters.
pub const MAX_CLAIM_CHARS: usize = 256;
/// The most groups a token may list.
pub const MAX_GROUPS: usize = 256;
/// The allow-list used when an issuer is configured without one.
pub const DEFAULT_ALGORITHMS: [&str; 3] = ["RS256", "ES256", "EdDSA"];
/// The RSA modulus sizes accepted, in bits.
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;
/// Private JWK members (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
/// Every algorithm a trusted issuer may be allowed, by name.
const ACCEPTED: [(&str, Algorithm); 10] = [
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
    ("Ed25519", Algorithm::EdDSA),
];

/// Which claims carry what. Default: user `sub`, groups `groups`, email `email`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// The claim naming the user (a non-empty string).
    pub user: String,
    /// The claim listing their groups (an array of strings, or one string).
    pub groups: String,
    /// The claim carrying their email (a string).
    pub email: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            user: "sub".to_owned(),
            groups: "groups".to_owned(),
            email: "email".to_owned(),
        }
    }
}

/// Why a trusted issuer could not be configured. The values named are the operator's
/// configuration, never a token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserConfigError {
    /// The issuer is not an absolute `https`/`http` URI.
    #[error("user-token issuer `{0}` must be an absolute https or http URI")]
    Issuer(String),
    /// The audience is empty.
    #[error("user-token audience for issuer `{0}` must not be empty")]
    Audience(String),
    /// An algorithm that is unknown, symmetric or `none`.
    #[error("algorithm `{name}` is not accepted for user tokens: {why}")]
    Algorithm {
        /// The name as configured.
        name: String,
        /// Why not.
        why: &'static str,
    },
    /// A claim name is empty.
    #[error("the {0} claim name must not be empty")]
    ClaimName(&'static str),
    /// The JWKS document as a whole is unusable.
    #[error("user-token JWKS: {0}")]
    Jwks(String),
    /// One key of the JWKS is unusable.
    #[error("user-token JWKS `keys[{index}]`: {reason}")]
    Key {
        /// Its position in `keys`.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Two trusted issuers with the same `iss`.
    #[error("user-token issuer `{0}` is configured twice")]
    DuplicateIssuer(String),
}

/// Why a user token was refused (or, for [`DevUserIssuer::issue`], not issued).
/// Messages are short and never echo the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserTokenError {
    /// Too large, not a compact JWS, or a header/payload that is not a JSON object.
    #[error("malformed user token")]
    Malformed,
    /// `iss` missing or not a configured trusted issuer.
    #[error("user token issuer is not trusted")]
    UntrustedIssuer,
    /// `alg` not on the issuer's allow-list, or not fitting the key `kid` names.
    #[error("user token algorithm not allowed")]
    Algorithm,
    /// No key, or more than one, of the issuer's JWKS fits the header.
    #[error("no trusted key matches the user token")]
    UnknownKey,
    /// The signature does not verify.
    #[error("user token signature does not verify")]
    Signature,
    /// `aud` does not contain the configured audience.
    #[error("user token is for another audience")]
    Audience,
    /// `now` is at or past `exp`.
    #[error("user token expired")]
    Expired,
    /// `nbf` or `iat` lies more than [`LEEWAY_SECS`] in the future.
    #[error("user token not yet valid")]
    NotYetValid,
    /// A required claim is missing, or a claim has the wrong type or size. The text
    /// names the claim, never its value.
    #[error("user token claims: {0}")]
    Claims(String),
    /// The user's sessions were revoked (their IdP said so, a Shared Signal) after this
    /// token was issued, or it says nothing of when it was issued.
    #[error("the user's sessions were revoked after this token was issued")]
    SessionsRevoked,
    /// The issuer's keys are fetched (`jwks_uri`) and none are usable now: none has
    /// arrived yet, or the last good ones are older than `jwks_max_stale_secs`.
    #[error("the user token issuer's keys are unavailable (its JWKS could not be fetched)")]
    KeysUnavailable,
}

/// A user token that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser {
    /// Who it names. `issuer` is the trusted issuer, `sub` the user claim's value. The
    /// email is dropped when the token says `email_verified: false`.
    pub user: UserRef,
    /// Its `exp`: from then on the token is refused.
    pub expires_at: Timestamp,
    /// Its `jti`, if it has one.
    pub token_id: Option<String>,
    /// Its `iat`, if it has one: a token issued before the user's sessions were revoked
    /// (a Shared Signal) is refused by the node (`Snapshot::user_token_revoked`).
    pub issued_at: Option<Timestamp>,
}

/// The key types a JWK may have here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    /// The algorithms a key of this kind verifies.
    fn algorithms(self) -> &'static [Algorithm] {
        match self {
            Self::Rsa => &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            Self::P256 => &[Algorithm::ES256],
            Self::P384 => &[Algorithm::ES384],
            Self::Ed25519 => &[Algorithm::EdDSA],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Rsa => "RSA",
            Self::P256 => "EC P-256",
            Self::P384 => "EC P-384",
            Self::Ed25519 => "OKP Ed25519",
        }
    }
}

/// One verification key of a trusted issuer.
///
/// INVARIANT (trusted keys): `decoding` holds a checked public key (RSA of 2048–4096
/// bits with a sane exponent, an on-curve EC point, a non-weak Ed25519 point) and
/// `algorithms` is non-empty, inside both `kind.algorithms()` and the issuer's
/// allow-list, so no asymmetric key is ever used as an HMAC secret.
#[derive(Clone)]
struct IssuerKey {
    kid: Option<String>,
    kind: KeyKind,
    algorithms: Vec<Algorithm>,
    decoding: DecodingKey,
}

/// Where an issuer's keys are: configured once (a `jwks_file`), or fetched and swapped
/// in by a fetcher (`jwks_uri`).
#[derive(Clone)]
enum Keys {
    Fixed(Arc<[IssuerKey]>),
    Fetched(Arc<KeyCell>),
}

/// The keys of an issuer whose JWK Set is fetched: the fetcher (in `mandate-http`,
/// which does the IO) installs each good set with the time it may serve until; every
/// verification reads the cell.
///
/// INVARIANT (bounded stale keys): keys are used only while `now < usable_until`; the
/// fetcher sets `usable_until` to the due time of the next refresh plus the allowed
/// staleness, so an IdP that stays unreachable (or answers garbage) ends in refusal
/// ([`UserTokenError::KeysUnavailable`]) even if the fetcher itself stops. No keys yet:
/// refusal too (fail closed).
pub struct KeyCell {
    algorithms: Vec<Algorithm>,
    state: RwLock<(Arc<[IssuerKey]>, Timestamp)>,
    /// Told when a token names a key the cell does not hold (the fetcher rate-limits).
    on_unknown_key: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for KeyCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (keys, until) = self.status();
        f.debug_struct("KeyCell")
            .field("keys", &keys)
            .field("usable_until", &until)
            .finish_non_exhaustive()
    }
}

impl KeyCell {
    /// Installs the JWK Set `jwks_json` (checked as a `jwks_file` is), usable until
    /// `usable_until`; an unusable set changes nothing and is the error. The number of
    /// signature keys installed.
    pub fn install(
        &self,
        jwks_json: &str,
        usable_until: Timestamp,
    ) -> Result<usize, UserConfigError> {
        let keys = parse_jwks(jwks_json, &self.algorithms)?;
        let n = keys.len();
        let mut st = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *st = (keys.into(), usable_until);
        Ok(n)
    }

    /// How many keys the cell holds, and until when they may be used.
    pub fn status(&self) -> (usize, Timestamp) {
        let st = self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (st.0.len(), st.1)
    }

    /// Sets what is told when a token names a key the cell does not hold (once; a
    /// second call changes nothing). It must not block: it runs on the verifying path.
    pub fn on_unknown_key(&self, f: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_unknown_key.set(f);
    }

    /// The keys usable at `now`.
    fn usable(&self, now: Timestamp) -> Result<Arc<[IssuerKey]>, UserTokenError> {
        let st = self
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if st.0.is_empty() || now.secs() >= st.1.secs() {
            return Err(UserTokenError::KeysUnavailable);
        }
        Ok(Arc::clone(&st.0))
    }
}

/// One trusted issuer of user tokens.
#[derive(Clone)]
pub struct TrustedIssuer {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    keys: Keys,
    claims: ClaimNames,
}

impl std::fmt::Debug for TrustedIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fixed = match &self.keys {
            Keys::Fixed(k) => Arc::clone(k),
            Keys::Fetched(_) => Arc::from(Vec::new()),
        };
        let keys: Vec<(Option<&str>, &str)> = fixed
            .iter()
            .map(|k| (k.kid.as_deref(), k.kind.name()))
            .collect();
        f.debug_struct("TrustedIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("algorithms", &self.algorithms)
            .field("keys", &keys)
            .field("claims", &self.claims)
            .finish()
    }
}

/// The allow-list from configured names (empty: [`DEFAULT_ALGORITHMS`]).
fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, UserConfigError> {
    let defaults: Vec<String> = DEFAULT_ALGORITHMS.iter().map(|a| (*a).to_owned()).collect();
    let names = if names.is_empty() { &defaults } else { names };
    let mut out = Vec::new();
    for name in names {
        let refuse = |why| UserConfigError::Algorithm {
            name: name.clone(),
            why,
        };
        let alg = match ACCEPTED.iter().find(|(n, _)| n == name) {
            Some((_, alg)) => *alg,
            None if name.eq_ignore_ascii_case("none") => {
                return Err(refuse("unsigned tokens are never accepted"));
            }
            None if name.starts_with("HS") => {
                return Err(refuse(
                    "HMAC uses a shared secret, so whoever can verify a token can forge one",
                ));
            }
            None => {
                return Err(refuse(
                    "unknown (accepted: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, Ed25519)",
                ));
            }
        };
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    Ok(out)
}

/// Whether a JWK declares itself for something other than verifying signatures
/// (identity providers publish their encryption keys in the same JWKS).
fn is_encryption_key(jwk: &Jwk) -> bool {
    let c = &jwk.common;
    matches!(
        c.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) || c
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
        || matches!(
            c.key_algorithm,
            Some(KeyAlgorithm::RSA1_5 | KeyAlgorithm::RSA_OAEP | KeyAlgorithm::RSA_OAEP_256)
        )
}

/// Decodes a base64url coordinate of exactly `len` bytes.
fn fixed_coord(s: &str, name: &str, len: usize) -> Result<Vec<u8>, String> {
    b64::decode(s)
        .filter(|b| b.len() == len)
        .ok_or_else(|| format!("`{name}` is not {len} base64url-encoded bytes"))
}

/// Unsigned big-endian bytes without their leading zeros.
fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    b.get(start..).unwrap_or_default()
}

/// Checks RSA public parameters: modulus size and parity, exponent range and parity
/// (the bounds the `rsa` crate enforces, so a key accepted here is usable there).
fn check_rsa(n: &str, e: &str) -> Result<(), String> {
    let n = b64::decode(n).ok_or("`n` is not base64url")?;
    let e = b64::decode(e).ok_or("`e` is not base64url")?;
    let n = strip_zeros(&n);
    let bits = n.first().map_or(0, |top| {
        (n.len() - 1) * 8 + (8 - usize::try_from(top.leading_zeros()).unwrap_or(8))
    });
    if !RSA_BITS.contains(&bits) {
        return Err(format!(
            "RSA modulus of {bits} bits (accepted: {} to {})",
            RSA_BITS.start(),
            RSA_BITS.end()
        ));
    }
    if n.last().is_some_and(|b| b % 2 == 0) {
        return Err("RSA modulus is even".to_owned());
    }
    let e = strip_zeros(&e);
    let value = if e.len() <= 8 {
        e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    } else {
        u64::MAX
    };
    if value < 3 || value % 2 == 0 || value > (1 << 33) - 1 {
        return Err("RSA exponent must be odd, at least 3 and below 2^33".to_owned());
    }
    Ok(())
}

/// Checks the public parameters of one JWK and names its kind.
fn key_kind(jwk: &Jwk, raw: &Map<String, Value>) -> Result<KeyKind, String> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(p) => check_rsa(&p.n, &p.e).map(|()| KeyKind::Rsa),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => {
                let mut sec1 = vec![0x04];
                sec1.extend(fixed_coord(&p.x, "x", 32)?);
                sec1.extend(fixed_coord(&p.y, "y", 32)?);
                p256::PublicKey::from_sec1_bytes(&sec1)
                    .map_err(|_| "not a valid P-256 point".to_owned())?;
                Ok(KeyKind::P256)
            }
            EllipticCurve::P384 => {
                fixed_coord(&p.x, "x", 48)?;
                fixed_coord(&p.y, "y", 48)?;
                // The point is checked below, by the verifier that will use it.
                Ok(KeyKind::P384)
            }
            _ => Err("unsupported EC curve (accepted: P-256, P-384)".to_owned()),
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            // Exactly 32: the library's EdDSA verifier slices `[..32]` (a shorter key
            // would panic there, a longer one be silently truncated).
            let x = fixed_coord(&p.x, "x", 32)?;
            let arr: [u8; 32] = x
                .as_slice()
                .try_into()
                .map_err(|_| "`x` is not 32 bytes".to_owned())?;
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&arr)
                .map_err(|_| "not a valid Ed25519 point".to_owned())?;
            // A small-order point verifies forged signatures under the library's
            // lenient verification (see jwk.rs).
            if vk.is_weak() {
                return Err("weak (small-order) Ed25519 key".to_owned());
            }
            Ok(KeyKind::Ed25519)
        }
        AlgorithmParameters::OctetKey(_) => {
            Err("symmetric (`oct`) keys are never accepted".to_owned())
        }
        _ => {
            let kty = raw.get("kty").and_then(Value::as_str).unwrap_or("?");
            let crv = raw.get("crv").and_then(Value::as_str).unwrap_or("-");
            Err(format!(
                "unsupported key type `{kty}` curve `{crv}` (accepted: RSA, EC P-256, EC P-384, OKP Ed25519)"
            ))
        }
    }
}

/// Reads one JWK; `Ok(None)` for an encryption key, which is skipped.
fn parse_key(
    index: usize,
    raw: &Value,
    allowed: &[Algorithm],
) -> Result<Option<IssuerKey>, UserConfigError> {
    let err = |reason: String| UserConfigError::Key { index, reason };
    let obj = raw
        .as_object()
        .ok_or_else(|| err("not a JSON object".to_owned()))?;
    if let Some(p) = PRIVATE_MEMBERS.iter().find(|p| obj.contains_key(**p)) {
        return Err(err(format!(
            "contains private key material (`{p}`); configure the public keys only"
        )));
    }
    // The library knows RFC 9864's `Ed25519` only as an unknown `alg`; it is EdDSA's
    // fully-specified name, so read it as `EdDSA` (the curve is checked below).
    let mut raw = raw.clone();
    if let Some(alg) = raw.get_mut("alg").filter(|a| *a == crate::jws::ED25519) {
        *alg = json!(crate::jws::EDDSA);
    }
    let jwk: Jwk = serde_json::from_value(raw)
        .map_err(|_| err("not a JWK (RFC 7517 §4) with the members its kty requires".into()))?;
    if is_encryption_key(&jwk) {
        return Ok(None);
    }
    let kind = key_kind(&jwk, obj).map_err(err)?;
    let mut algorithms: Vec<Algorithm> = kind
        .algorithms()
        .iter()
        .copied()
        .filter(|a| allowed.contains(a))
        .collect();
    if let Some(declared) = jwk.common.key_algorithm {
        let alg = Algorithm::try_from(declared)
            .ok()
            .filter(|a| kind.algorithms().contains(a))
            .ok_or_else(|| {
                err(format!(
                    "`alg` `{declared}` does not fit a {} key",
                    kind.name()
                ))
            })?;
        algorithms.retain(|a| *a == alg);
    }
    if algorithms.is_empty() {
        return Err(err(format!(
            "a {} key{} cannot serve any allowed algorithm",
            kind.name(),
            jwk.common
                .key_algorithm
                .map(|a| format!(" for `{a}`"))
                .unwrap_or_default()
        )));
    }
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| err("unusable key".to_owned()))?;
    // The verifiers parse the key when they are built; one that cannot be built now
    // would fail every token later. (An empty signature never verifies.)
    for alg in &algorithms {
        jsonwebtoken::crypto::verify("", b"", &decoding, *alg)
            .map_err(|_| err(format!("not a valid {} public key", kind.name())))?;
    }
    Ok(Some(IssuerKey {
        kid: jwk.common.key_id.clone(),
        kind,
        algorithms,
        decoding,
    }))
}

/// Reads a JWK Set document, keeping its signature keys.
fn parse_jwks(text: &str, allowed: &[Algorithm]) -> Result<Vec<IssuerKey>, UserConfigError> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|_| UserConfigError::Jwks("not a JSON document".to_owned()))?;
    let list = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| UserConfigError::Jwks("no `keys` array (RFC 7517 §5)".to_owned()))?;
    let mut keys: Vec<IssuerKey> = Vec::new();
    for (index, raw) in list.iter().enumerate() {
        let Some(key) = parse_key(index, raw, allowed)? else {
            continue;
        };
        if let Some(kid) = &key.kid
            && keys.iter().any(|k| k.kid.as_ref() == Some(kid))
        {
            return Err(UserConfigError::Key {
                index,
                reason: format!("duplicate kid `{kid}`"),
            });
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(UserConfigError::Jwks("no signature keys".to_owned()));
    }
    Ok(keys)
}

impl TrustedIssuer {
    /// A trusted issuer: its `iss`, the audience Mandate must appear in, its JWK Set
    /// (RFC 7517 §5) text and its algorithm allow-list (empty: [`DEFAULT_ALGORITHMS`]).
    ///
    /// Refused: HS*, `none` and unknown algorithm names; a JWKS without signature keys;
    /// private key material; a key that is invalid, weak, symmetric, of an unsupported
    /// type, or whose type (and `alg`, when given) fits no allowed algorithm; duplicate
    /// `kid`s; an issuer that is not an absolute https/http URI; an empty audience.
    /// Keys declared for encryption (`use: enc`, `key_ops` without `verify`, an RSA
    /// encryption `alg`) are skipped.
    pub fn new(
        issuer: &str,
        audience: &str,
        jwks_json: &str,
        algorithms: &[String],
        claims: ClaimNames,
    ) -> Result<Self, UserConfigError> {
        let mut t = Self::fetched(issuer, audience, algorithms, claims)?;
        t.keys = Keys::Fixed(parse_jwks(jwks_json, &t.algorithms)?.into());
        Ok(t)
    }

    /// A trusted issuer whose keys are fetched: checked as [`TrustedIssuer::new`] but for
    /// the JWKS; it holds no key (its tokens are refused) until its [`KeyCell`] is given
    /// some.
    pub fn fetched(
        issuer: &str,
        audience: &str,
        algorithms: &[String],
        claims: ClaimNames,
    ) -> Result<Self, UserConfigError> {
        let web_ok = issuer.split_once("://").is_some_and(|(scheme, rest)| {
            (scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http"))
                && rest
                    .split(['/', '?'])
                    .next()
                    .is_some_and(|host| !host.is_empty())
        });
        if !web_ok || !is_absolute_uri(issuer) {
            return Err(UserConfigError::Issuer(issuer.to_owned()));
        }
        if audience.is_empty() {
            return Err(UserConfigError::Audience(issuer.to_owned()));
        }
        for (what, name) in [
            ("user", &claims.user),
            ("groups", &claims.groups),
            ("email", &claims.email),
        ] {
            if name.is_empty() {
                return Err(UserConfigError::ClaimName(what));
            }
        }
        let algorithms = parse_algorithms(algorithms)?;
        let cell = KeyCell {
            algorithms: algorithms.clone(),
            state: RwLock::new((Arc::from(Vec::new()), Timestamp::from_secs(0))),
            on_unknown_key: OnceLock::new(),
        };
        Ok(Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            algorithms,
            keys: Keys::Fetched(Arc::new(cell)),
            claims,
        })
    }

    /// The cell its fetched keys go in; `None` for configured keys.
    pub fn key_cell(&self) -> Option<Arc<KeyCell>> {
        match &self.keys {
            Keys::Fixed(_) => None,
            Keys::Fetched(c) => Some(Arc::clone(c)),
        }
    }

    /// Its `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audience its tokens must name.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The key a token with this header is verified with, of `keys`.
    fn select_key<'k>(
        &self,
        keys: &'k [IssuerKey],
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<&'k IssuerKey, UserTokenError> {
        if !self.algorithms.contains(&alg) {
            return Err(UserTokenError::Algorithm);
        }
        match kid {
            Some(kid) => {
                let key = keys
                    .iter()
                    .find(|k| k.kid.as_deref() == Some(kid))
                    .ok_or(UserTokenError::UnknownKey)?;
                if key.algorithms.contains(&alg) {
                    Ok(key)
                } else {
                    Err(UserTokenError::Algorithm)
                }
            }
            None => {
                let mut fitting = keys.iter().filter(|k| k.algorithms.contains(&alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Ok(key),
                    _ => Err(UserTokenError::UnknownKey),
                }
            }
        }
    }

    /// Verifies the signature of `signing_input` (`header.payload` as presented) and
    /// then the claims, which were read from those same payload bytes.
    fn verify(
        &self,
        signing_input: &str,
        signature: &str,
        header: &Map<String, Value>,
        claims: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<VerifiedUser, UserTokenError> {
        self.verify_signature(signing_input, signature, header, now)?;
        self.check_claims(claims, now)
    }

    /// The signature of `signing_input` (`header.payload` as presented) alone, by the
    /// key and algorithm `header` names from this issuer's JWKS and allow-list: for a
    /// user token, then its claims; for a Security Event Token (`set.rs`), whose claims
    /// follow other rules, those.
    pub(crate) fn verify_signature(
        &self,
        signing_input: &str,
        signature: &str,
        header: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<(), UserTokenError> {
        // `none` and unknown names do not parse; HS* is never on an allow-list;
        // `Ed25519` is read as `EdDSA`.
        let alg: Algorithm = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(crate::jws::verifier_alg)
            .ok_or(UserTokenError::Algorithm)?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => return Err(UserTokenError::Malformed),
        };
        let keys = match &self.keys {
            Keys::Fixed(k) => Arc::clone(k),
            Keys::Fetched(cell) => cell.usable(now)?,
        };
        let key = match self.select_key(&keys, alg, kid) {
            Err(UserTokenError::UnknownKey) => {
                // The IdP may have rotated: its fetcher looks again (rate-limited there).
                if let Keys::Fetched(cell) = &self.keys
                    && let Some(tell) = cell.on_unknown_key.get()
                {
                    tell();
                }
                return Err(UserTokenError::UnknownKey);
            }
            r => r?,
        };
        // The library's signature check alone: its claim checks (time by the system
        // clock, and `sub`/`aud`/`iss` of fixed names) do not apply here; every claim
        // is checked below, time against Mandate's clock.
        let valid = crate::jws::check(signature, signing_input.as_bytes(), &key.decoding, alg)
            .map_err(|()| UserTokenError::Malformed)?;
        if !valid {
            return Err(UserTokenError::Signature);
        }
        Ok(())
    }

    /// The checks on verified claims.
    fn check_claims(
        &self,
        c: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<VerifiedUser, UserTokenError> {
        if c.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(UserTokenError::UntrustedIssuer);
        }
        let aud_ok = match c.get("aud") {
            Some(Value::String(a)) => *a == self.audience,
            Some(Value::Array(list)) => list
                .iter()
                .any(|a| a.as_str() == Some(self.audience.as_str())),
            _ => false,
        };
        if !aud_ok {
            return Err(UserTokenError::Audience);
        }
        let now_s = now.secs();
        let exp = numeric_date(c, "exp")?
            .ok_or_else(|| UserTokenError::Claims("`exp` is required".to_owned()))?;
        if now_s >= exp {
            return Err(UserTokenError::Expired);
        }
        for name in ["nbf", "iat"] {
            if numeric_date(c, name)?.is_some_and(|t| t > now_s.saturating_add(LEEWAY_SECS)) {
                return Err(UserTokenError::NotYetValid);
            }
        }
        let names = &self.claims;
        let sub = match c.get(&names.user) {
            Some(Value::String(s)) => checked_text(s, &names.user)?,
            _ => {
                return Err(UserTokenError::Claims(format!(
                    "`{}` must be a string naming the user",
                    names.user
                )));
            }
        };
        let groups = match c.get(&names.groups) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(g)) => vec![checked_text(g, &names.groups)?],
            Some(Value::Array(list)) if list.len() <= MAX_GROUPS => list
                .iter()
                .map(|g| match g {
                    Value::String(g) => checked_text(g, &names.groups),
                    _ => Err(groups_error(&names.groups)),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(groups_error(&names.groups)),
        };
        let email = match c.get(&names.email) {
            None | Some(Value::Null) => None,
            Some(Value::String(e)) => Some(checked_text(e, &names.email)?),
            Some(_) => {
                return Err(UserTokenError::Claims(format!(
                    "`{}` must be a string",
                    names.email
                )));
            }
        };
        // OIDC Core §5.1: an email the issuer has not verified is not an identity.
        let unverified = matches!(c.get("email_verified"), Some(Value::Bool(false)))
            || c.get("email_verified").and_then(Value::as_str) == Some("false");
        let email = email.filter(|_| !unverified);
        let token_id = match c.get("jti") {
            None | Some(Value::Null) => None,
            Some(Value::String(j)) => Some(checked_text(j, "jti")?),
            Some(_) => return Err(UserTokenError::Claims("`jti` must be a string".to_owned())),
        };
        Ok(VerifiedUser {
            user: UserRef {
                issuer: self.issuer.clone(),
                sub,
                email,
                groups,
            },
            expires_at: Timestamp::from_secs(exp),
            token_id,
            issued_at: numeric_date(c, "iat")?.map(Timestamp::from_secs),
        })
    }
}

fn groups_error(name: &str) -> UserTokenError {
    UserTokenError::Claims(format!(
        "`{name}` must be a string or an array of at most {MAX_GROUPS} strings"
    ))
}

/// A claim value used as an identity: 1 to [`MAX_CLAIM_CHARS`] characters, no control
/// characters (they end up in audit records and policy entities).
fn checked_text(value: &str, claim: &str) -> Result<String, UserTokenError> {
    let len = value.chars().count();
    if len == 0 || len > MAX_CLAIM_CHARS || value.chars().any(char::is_control) {
        return Err(UserTokenError::Claims(format!(
            "`{claim}` must be 1 to {MAX_CLAIM_CHARS} characters without control characters"
        )));
    }
    Ok(value.to_owned())
}

/// An optional RFC 7519 NumericDate claim (fractions truncated towards the past).
pub(crate) fn numeric_date(
    c: &Map<String, Value>,
    name: &str,
) -> Result<Option<i64>, UserTokenError> {
    let bad = || UserTokenError::Claims(format!("`{name}` must be a number of seconds"));
    match c.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite())
                    // `as` saturates; a NumericDate beyond i64 is past any real time.
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// A compact JWS segment decoded as a JSON object.
pub(crate) fn json_segment(segment: &str) -> Option<Map<String, Value>> {
    serde_json::from_slice(&b64::decode(segment)?).ok()
}

/// Every trusted issuer, looked up by `iss`.
#[derive(Debug, Clone, Default)]
pub struct TrustedIssuers {
    by_iss: HashMap<String, TrustedIssuer>,
}

impl TrustedIssuers {
    /// The set; the same `iss` twice is an error.
    pub fn new(list: Vec<TrustedIssuer>) -> Result<Self, UserConfigError> {
        let mut by_iss = HashMap::with_capacity(list.len());
        for t in list {
            if by_iss.contains_key(&t.issuer) {
                return Err(UserConfigError::DuplicateIssuer(t.issuer));
            }
            by_iss.insert(t.issuer.clone(), t);
        }
        Ok(Self { by_iss })
    }

    /// Whether no issuer is trusted (every user token is then refused).
    pub fn is_empty(&self) -> bool {
        self.by_iss.is_empty()
    }

    /// Every issuer, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &TrustedIssuer> {
        self.by_iss.values()
    }

    /// The issuer configured for `iss`.
    pub fn get(&self, iss: &str) -> Option<&TrustedIssuer> {
        self.by_iss.get(iss)
    }

    /// Verifies a user token at `now` (see the module documentation for the checks
    /// and their order).
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<VerifiedUser, UserTokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(UserTokenError::Malformed);
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(UserTokenError::Malformed)?;
        let (header, payload) = signing_input
            .split_once('.')
            .filter(|(_, p)| !p.contains('.'))
            .ok_or(UserTokenError::Malformed)?;
        // Duplicate members refused, as for every JWS header Mandate reads (`jws.rs`).
        let header = crate::jws::header_object(header).ok_or(UserTokenError::Malformed)?;
        // RFC 7515 §4.1.11: no extension is understood here, so none may be critical.
        if header.contains_key("crit") {
            return Err(UserTokenError::Malformed);
        }
        // Not yet verified: `iss` only picks whose keys to verify with, and every claim
        // is checked once the signature over these very bytes has verified.
        let claims = json_segment(payload).ok_or(UserTokenError::Malformed)?;
        let issuer = claims
            .get("iss")
            .and_then(Value::as_str)
            .and_then(|iss| self.by_iss.get(iss))
            .ok_or(UserTokenError::UntrustedIssuer)?;
        issuer.verify(signing_input, signature, &header, &claims, now)
    }
}

/// A local Ed25519 user-token issuer for walkthroughs and tests. Off unless an
/// operator enables it: whoever holds its key can be any user.
#[derive(Debug)]
pub struct DevUserIssuer {
    key: SigningKey,
    issuer: String,
    audience: String,
}

impl DevUserIssuer {
    /// An issuer signing with `key` as `issuer`, for `audience`.
    pub fn new(key: SigningKey, issuer: String, audience: String) -> Self {
        Self {
            key,
            issuer,
            audience,
        }
    }

    /// Its `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs a user token (`typ: JWT`, EdDSA, the key's `kid`) for `sub`, valid from
    /// `now` for `lifetime_secs`. The values must pass the checks [`TrustedIssuers::verify`]
    /// applies, so that every token issued verifies; otherwise `Claims`.
    pub fn issue(
        &self,
        sub: &str,
        email: Option<&str>,
        groups: &[String],
        lifetime_secs: u32,
        jti: &str,
        now: Timestamp,
    ) -> Result<String, UserTokenError> {
        let sub = checked_text(sub, "sub")?;
        if groups.len() > MAX_GROUPS {
            return Err(groups_error("groups"));
        }
        for g in groups {
            checked_text(g, "groups")?;
        }
        if let Some(e) = email {
            checked_text(e, "email")?;
        }
        checked_text(jti, "jti")?;
        if lifetime_secs == 0 {
            return Err(UserTokenError::Claims(
                "lifetime must be at least one second".to_owned(),
            ));
        }
        let iat = now.secs();
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "groups": groups,
            "iat": iat,
            "nbf": iat,
            "exp": iat.saturating_add(i64::from(lifetime_secs)),
            "jti": jti,
        });
        if let (Some(e), Some(obj)) = (email, claims.as_object_mut()) {
            obj.insert("email".to_owned(), json!(e));
        }
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.key.kid().to_owned());
        jsonwebtoken::encode(&header, &claims, self.key.encoding_key())
            .map_err(|_| UserTokenError::Claims("could not sign the token".to_owned()))
    }

    /// The trusted issuer that accepts its tokens (EdDSA only, default claim names).
    pub fn trusted(&self) -> Result<TrustedIssuer, UserConfigError> {
        let jwks = json!({"keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64::encode(&self.key.public_bytes()),
            "kid": self.key.kid(),
            "alg": "EdDSA",
            "use": "sig",
        }]});
        TrustedIssuer::new(
            &self.issuer,
            &self.audience,
            &jwks.to_string(),
            &["EdDSA".to_owned()],
            ClaimNames::default(),
        )
    }
}

/// The vector runner of `tests/wycheproof`, for the unit test below.
#[cfg(test)]
#[path = "../tests/wycheproof/vectors.rs"]
mod wycheproof_vectors;

#[cfg(test)]
mod tests {
    use super::*;

    use super::wycheproof_vectors as wycheproof;

    /// Wycheproof's Ed25519 and ECDSA P-256 vectors through a trusted issuer's key
    /// intake (its JWKS, `parse_jwks`, as `TrustedIssuer::new` reads it) and the one
    /// signature check (`jws::check`, as `verify_signature` calls it): every invalid
    /// signature refused, every valid one accepted.
    #[test]
    fn wycheproof_vectors_through_issuer_keys() {
        let as_issuer_key = |jwk: &Value, msg: &[u8], sig: &[u8]| {
            let mut jwk = jwk.clone();
            if let Some(m) = jwk.as_object_mut() {
                m.remove("kid");
            }
            let allowed = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];
            let keys = parse_jwks(&json!({ "keys": [jwk] }).to_string(), &allowed)
                .map_err(|e| e.to_string())?;
            let key = keys.first().ok_or("no key")?;
            let alg = *key.algorithms.first().ok_or("no algorithm")?;
            Ok(crate::jws::check(&crate::b64::encode(sig), msg, &key.decoding, alg) == Ok(true))
        };
        for (file, alg, n) in [wycheproof::ED25519, wycheproof::ECDSA_P256] {
            wycheproof::assert_all_right(file, &wycheproof::run(file, alg, n, as_issuer_key));
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn algorithm_allow_list() {
        assert_eq!(
            parse_algorithms(&[]).unwrap(),
            vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
        );
        assert_eq!(
            parse_algorithms(&names(&["PS256", "ES384", "PS256"])).unwrap(),
            vec![Algorithm::PS256, Algorithm::ES384]
        );
        for (name, why) in [
            ("HS256", "HMAC"),
            ("none", "unsigned"),
            ("ES512", "unknown"),
        ] {
            let err = parse_algorithms(&names(&["RS256", name])).unwrap_err();
            assert!(err.to_string().contains(why), "{name}: {err}");
        }
    }

    /// An RSA modulus of `bits` bits (odd), with `pad` leading zero bytes.
    fn modulus(bits: usize, pad: usize) -> String {
        let mut n = vec![0u8; pad + bits.div_ceil(8)];
        n[pad] = 1 << ((bits - 1) % 8);
        *n.last_mut().unwrap() |= 1;
        b64::encode(&n)
    }

    #[test]
    fn rsa_parameters() {
        let e = "AQAB";
        assert!(check_rsa(&modulus(2048, 0), e).is_ok());
        assert!(check_rsa(&modulus(2048, 1), e).is_ok(), "leading zero byte");
        assert!(check_rsa(&modulus(4096, 0), e).is_ok());
        assert!(
            check_rsa(&modulus(3072, 0), "AAEAAQ").is_ok(),
            "e with a zero byte"
        );
        for bits in [0, 1, 1024, 2047, 4097] {
            let n = if bits == 0 {
                String::new()
            } else {
                modulus(bits, 0)
            };
            let err = check_rsa(&n, e).unwrap_err();
            assert!(err.contains(&format!("{bits} bits")), "{bits}: {err}");
        }
        let mut even = b64::decode(&modulus(2048, 0)).unwrap();
        *even.last_mut().unwrap() = 2;
        assert!(
            check_rsa(&b64::encode(&even), e)
                .unwrap_err()
                .contains("even")
        );
        // e = 1, 2, 2^33 + 1 and 2^64 + 1 are out.
        for e in [
            &[1u8][..],
            &[2],
            &[2, 0, 0, 0, 1],
            &[1, 0, 0, 0, 0, 0, 0, 0, 1],
        ] {
            assert!(
                check_rsa(&modulus(2048, 0), &b64::encode(e)).is_err(),
                "{e:?}"
            );
        }
    }

    #[test]
    fn numeric_dates() {
        let c = |v: Value| json!({ "exp": v }).as_object().cloned().unwrap();
        assert_eq!(numeric_date(&c(json!(5)), "exp"), Ok(Some(5)));
        assert_eq!(numeric_date(&c(json!(5.9)), "exp"), Ok(Some(5)));
        assert_eq!(numeric_date(&c(json!(-0.5)), "exp"), Ok(Some(-1)));
        assert_eq!(numeric_date(&c(json!(1e300)), "exp"), Ok(Some(i64::MAX)));
        assert_eq!(numeric_date(&c(json!(5)), "nbf"), Ok(None));
        assert!(numeric_date(&c(json!("5")), "exp").is_err());
        assert!(numeric_date(&c(json!(null)), "exp").is_err());
    }
}
