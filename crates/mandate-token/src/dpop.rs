//! DPoP proofs (RFC 9449): a client proves, request by request, that it holds the
//! private key a token is bound to (`cnf.jkt`, the RFC 7638 thumbprint of its public
//! key). This module reads and verifies one proof JWT against the request it came with
//! ([`verify`]), remembers the `jti`s it has seen ([`ReplayCache`]) and makes and checks
//! server nonces statelessly ([`NonceKey`]).
//!
//! What a proof must be (RFC 9449 §4.2–4.3), each fault a stable [`DpopError::code`]:
//! - a compact JWS, header `typ` `dpop+jwt`, no `crit`, `alg` asymmetric — `EdDSA`,
//!   `Ed25519` or `ES256` (never `none` nor an HMAC) — and `jwk` a public key of that
//!   algorithm's type (OKP Ed25519 or EC P-256; private members refused, `jwk.rs`);
//! - signed by that very key (the signature is checked before any claim is read);
//! - claims `jti` (1–256 bytes), `htm` equal to the request's method, `htu` equal to the
//!   request's URL without query and fragment, after scheme/host case and default-port
//!   normalization ([`normalize_htu`]), `iat` inside the [`Window`] around now;
//! - `ath` = base64url(SHA-256(access token)) whenever a token is presented with it,
//!   and absent-or-ignored when none is (the token endpoint);
//! - `nonce` a nonce of this server's when it requires one.
//!
//! The primitives are the libraries' (`jsonwebtoken::crypto::verify`, `sha2`, `hmac`);
//! nothing here is hand-rolled cryptography.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use mandate_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::b64;
use crate::jwk::{Ed25519Points, PublicJwk};
use crate::jws;
use crate::keys::SigningKey;

/// The `typ` header of a DPoP proof (RFC 9449 §4.2).
pub const PROOF_TYP: &str = "dpop+jwt";
/// The longest `jti` accepted, in bytes.
pub const MAX_JTI_BYTES: usize = 256;
/// The longest proof accepted, in bytes (a P-256 proof is ~600 bytes).
pub const MAX_PROOF_BYTES: usize = 4096;
/// The `alg` values a proof may use, as published in `dpop_signing_alg_values_supported`.
pub const SIGNING_ALGS: &[&str] = &["EdDSA", "Ed25519", "ES256"];

/// Why a proof was refused. [`DpopError::code`] is the stable reason (audit log,
/// `error_description`); [`DpopError::oauth_error`] the RFC 9449 error code.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq, Hash)]
pub enum DpopError {
    /// Not a compact JWS with JSON header and claims of the right shape, a `crit`
    /// header, a `jti` missing or over [`MAX_JTI_BYTES`], or over [`MAX_PROOF_BYTES`].
    #[error("malformed DPoP proof")]
    Malformed,
    /// `typ` is not `dpop+jwt`.
    #[error("DPoP proof typ must be dpop+jwt")]
    Type,
    /// `alg` is not EdDSA, Ed25519 or ES256.
    #[error("DPoP proof alg must be EdDSA, Ed25519 or ES256")]
    Algorithm,
    /// `jwk` missing, private, unsupported, invalid, or not of the `alg`'s key type.
    #[error("DPoP proof jwk must be a public Ed25519 or P-256 key fitting alg")]
    Key,
    /// The signature does not verify with the header's `jwk`.
    #[error("DPoP proof signature does not verify")]
    Signature,
    /// `htm` is not the request's method.
    #[error("DPoP proof htm is not the request method")]
    Method,
    /// `htu` is not the request's URL.
    #[error("DPoP proof htu is not the request URL")]
    Url,
    /// `iat` is older than the window allows.
    #[error("DPoP proof is too old (iat)")]
    Stale,
    /// `iat` is further in the future than the skew allows.
    #[error("DPoP proof iat is in the future")]
    Future,
    /// `ath` missing or not the hash of the presented token.
    #[error("DPoP proof ath does not match the access token")]
    Ath,
    /// The server requires a nonce and the proof has none, or one that is not (any
    /// longer) the server's: answered `use_dpop_nonce` with a fresh `DPoP-Nonce`.
    #[error("DPoP proof needs a current server nonce")]
    Nonce,
    /// This `jti` was seen before (with this key) within the window.
    #[error("DPoP proof replayed (jti seen before)")]
    Replayed,
    /// The replay cache is full: refused rather than forgetting (fail closed).
    #[error("DPoP replay cache full; retry shortly")]
    CacheFull,
    /// The proof's key is not the key the token is bound to.
    #[error("DPoP proof key is not the key the token is bound to")]
    WrongKey,
}

impl DpopError {
    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "dpop_malformed",
            Self::Type => "dpop_typ",
            Self::Algorithm => "dpop_alg",
            Self::Key => "dpop_jwk",
            Self::Signature => "dpop_signature",
            Self::Method => "dpop_htm",
            Self::Url => "dpop_htu",
            Self::Stale => "dpop_iat_stale",
            Self::Future => "dpop_iat_future",
            Self::Ath => "dpop_ath",
            Self::Nonce => "dpop_nonce",
            Self::Replayed => "dpop_replayed",
            Self::CacheFull => "dpop_cache_full",
            Self::WrongKey => "dpop_wrong_key",
        }
    }

    /// The RFC 9449 error code: `use_dpop_nonce` (§8, §9) for a missing or stale nonce,
    /// `invalid_dpop_proof` for every other fault of the proof.
    pub fn oauth_error(self) -> &'static str {
        match self {
            Self::Nonce => "use_dpop_nonce",
            _ => "invalid_dpop_proof",
        }
    }

    /// Every variant, for tests and documentation.
    pub const ALL: [Self; 14] = [
        Self::Malformed,
        Self::Type,
        Self::Algorithm,
        Self::Key,
        Self::Signature,
        Self::Method,
        Self::Url,
        Self::Stale,
        Self::Future,
        Self::Ath,
        Self::Nonce,
        Self::Replayed,
        Self::CacheFull,
        Self::WrongKey,
    ];
}

/// How far `iat` may lie from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// How old a proof may be, in seconds (`iat` at least now minus this).
    pub past_secs: i64,
    /// How far ahead of this server's clock a client's may run, in seconds.
    pub future_secs: i64,
}

impl Default for Window {
    /// 60 s past, 5 s future: a proof is made just before its request.
    fn default() -> Self {
        Self {
            past_secs: 60,
            future_secs: 5,
        }
    }
}

/// What the request a proof came with was.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The HTTP method, as sent (`POST`).
    pub method: &'a str,
    /// The request's URL as this server is reached (its public base URL + path).
    pub url: &'a str,
    /// The access token presented with the proof (`None` at the token endpoint).
    pub access_token: Option<&'a str>,
    /// The `iat` window.
    pub window: Window,
    /// The server's nonce key when it requires a nonce.
    pub nonce: Option<&'a NonceKey>,
    /// Now, by Mandate's clock.
    pub now: Timestamp,
    /// The node's memo of Ed25519 points, so a client's key is not decompressed anew
    /// for each of its proofs (`None`: decode every key; the same answers either way).
    pub points: Option<&'a Ed25519Points>,
}

/// A proof that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 thumbprint of its key: the token's `cnf.jkt`.
    pub jkt: String,
    /// Its `jti`, to be refused if seen again ([`ReplayCache`]).
    pub jti: String,
    /// Its `iat`.
    pub iat: i64,
}

/// The claims of a proof, as signed (also what [`sign`] writes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProofClaims {
    /// Unique per proof.
    pub jti: String,
    /// The HTTP method.
    pub htm: String,
    /// The HTTP URL, without query and fragment.
    pub htu: String,
    /// When made (seconds since the epoch).
    pub iat: i64,
    /// base64url(SHA-256(access token)), when a token goes with the proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ath: Option<String>,
    /// The server's nonce, when it asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// base64url(SHA-256(`token`)): the `ath` of a proof presented with `token`.
pub fn ath(token: &str) -> String {
    b64::encode(&Sha256::digest(token.as_bytes()))
}

/// Verifies `proof` for the request `e` describes. Replay is the caller's to check
/// ([`ReplayCache::admit`]) with the returned `jti` and `jkt`; so is the binding (the
/// returned `jkt` against the token's `cnf.jkt`).
pub fn verify(proof: &str, e: &Expect<'_>) -> Result<Proof, DpopError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(DpopError::Malformed);
    }
    let c = jws::split(proof).ok_or(DpopError::Malformed)?;
    if c.has_crit() || c.kid().is_err() {
        return Err(DpopError::Malformed);
    }
    let typ = c.header.get("typ").and_then(Value::as_str);
    if !typ.is_some_and(|t| t.eq_ignore_ascii_case(PROOF_TYP)) {
        return Err(DpopError::Type);
    }
    let alg = match c.alg() {
        Some(a @ (jsonwebtoken::Algorithm::EdDSA | jsonwebtoken::Algorithm::ES256)) => a,
        _ => return Err(DpopError::Algorithm),
    };
    let jwk = c
        .header
        .get("jwk")
        .ok_or(DpopError::Key)
        .and_then(|j| PublicJwk::parse_with(j, e.points).map_err(|_| DpopError::Key))?;
    // INVARIANT (no algorithm confusion): the key verifies only its own type's
    // algorithm (`jws.rs`): an Ed25519 key `EdDSA`/`Ed25519`, a P-256 key `ES256`.
    if jwk.algorithm() != alg {
        return Err(DpopError::Key);
    }
    // The key as `PublicJwk::parse` decompressed it (`INVARIANT (decompressed once)`).
    match jwk.check(c.signature, c.signing_input.as_bytes()) {
        Ok(true) => {}
        Ok(false) | Err(()) => return Err(DpopError::Signature),
    }
    // From here on the claims are the key holder's own.
    let claims: ProofClaims =
        serde_json::from_slice(&c.payload).map_err(|_| DpopError::Malformed)?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_BYTES {
        return Err(DpopError::Malformed);
    }
    if claims.htm != e.method {
        return Err(DpopError::Method);
    }
    match (normalize_htu(&claims.htu), normalize_htu(e.url)) {
        (Some(got), Some(want)) if got == want => {}
        _ => return Err(DpopError::Url),
    }
    let now = e.now.secs();
    if claims.iat < now.saturating_sub(e.window.past_secs) {
        return Err(DpopError::Stale);
    }
    if claims.iat > now.saturating_add(e.window.future_secs) {
        return Err(DpopError::Future);
    }
    if let Some(token) = e.access_token {
        // Not a secret comparison: `ath` hashes a token the presenter holds anyway.
        if claims.ath.as_deref() != Some(ath(token).as_str()) {
            return Err(DpopError::Ath);
        }
    }
    if let Some(key) = e.nonce
        && !claims
            .nonce
            .as_deref()
            .is_some_and(|n| key.accepts(n, e.now))
    {
        return Err(DpopError::Nonce);
    }
    Ok(Proof {
        jkt: jwk.thumbprint().to_owned(),
        jti: claims.jti,
        iat: claims.iat,
    })
}

/// Normalizes a `htu` (or a request URL) for comparison, per RFC 9449 §4.3: the query
/// and fragment dropped, then RFC 3986 §6.2.2 syntax-based normalization (scheme and
/// host lowercased, percent-encoding hex uppercased) and §6.2.3 scheme-based (the
/// default port dropped, an empty path `/`). Only `http` and `https`, without userinfo.
/// `None` when it is not such a URL.
pub fn normalize_htu(url: &str) -> Option<String> {
    let url = url.split(['#', '?']).next().unwrap_or_default();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty()
        || authority.contains('@')
        || !authority.bytes().all(|b| b.is_ascii_graphic())
        || !path.bytes().all(|b| b.is_ascii_graphic())
    {
        return None;
    }
    let mut authority = authority.to_ascii_lowercase();
    if authority.ends_with(default_port) {
        authority.truncate(authority.len() - default_port.len());
    }
    // Percent-encoding triplets uppercased (RFC 3986 §6.2.2.1).
    let mut norm_path = String::with_capacity(path.len());
    let mut chars = path.chars();
    while let Some(ch) = chars.next() {
        norm_path.push(ch);
        if ch == '%' {
            for _ in 0..2 {
                norm_path.push(chars.next()?.to_ascii_uppercase());
            }
        }
    }
    Some(format!("{scheme}://{authority}{norm_path}"))
}

/// Signs a DPoP proof with an Ed25519 key (`alg` `EdDSA`, its public JWK in the header):
/// the client side of [`verify`], for tests, benchmarks and the Rust client.
pub fn sign(key: &SigningKey, claims: &ProofClaims) -> Result<String, serde_json::Error> {
    let mut jwk = key.public_jwk();
    if let Some(o) = jwk.as_object_mut() {
        o.remove("kid");
    }
    let header = serde_json::json!({"typ": PROOF_TYP, "alg": jws::EDDSA, "jwk": jwk});
    jws::sign_ed25519(key.dalek(), &header, claims)
}

/// The RFC 7638 thumbprint of an Ed25519 signing key's public key: the `cnf.jkt` of
/// tokens bound to it.
pub fn thumbprint(key: &SigningKey) -> String {
    key.kid().to_owned()
}

/// The `jti`s of proofs seen lately on this node, each kept until its proof's `iat`
/// leaves the window (after which the `iat` check refuses it anyway).
///
/// INVARIANT (bounded, fail closed): never more than `capacity` entries; when full of
/// live entries, a new proof is refused ([`DpopError::CacheFull`]) rather than an
/// entry forgotten, so a flood can deny service but never open a replay.
///
/// Keys are SHA-256(jkt ‖ 0 ‖ jti): the same `jti` under two keys is two proofs.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    seen: Mutex<Seen>,
}

/// The remembered proofs, and the earliest time any of them may be forgotten.
///
/// INVARIANT (earliest): `earliest` is at most every entry's expiry, so while it is in
/// the future nothing can be forgotten and a full cache refuses without scanning its
/// entries (a scan under the lock for every refused proof let one busy client make
/// every other wait).
#[derive(Debug)]
struct Seen {
    proofs: HashMap<[u8; 32], i64>,
    earliest: i64,
}

impl ReplayCache {
    /// An empty cache holding at most `capacity` proofs.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: Mutex::new(Seen {
                proofs: HashMap::new(),
                earliest: i64::MAX,
            }),
        }
    }

    /// Records `proof` as seen until `iat + window.past_secs`; refuses it when seen
    /// before (and still remembered) or when the cache is full.
    pub fn admit(&self, proof: &Proof, window: Window, now: Timestamp) -> Result<(), DpopError> {
        let mut h = Sha256::new();
        h.update(proof.jkt.as_bytes());
        h.update([0]);
        h.update(proof.jti.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        let until = proof
            .iat
            .max(now.secs())
            .saturating_add(window.past_secs)
            .saturating_add(1);
        let now = now.secs();
        let mut seen = self.seen.lock().map_err(|_| DpopError::CacheFull)?;
        if seen.proofs.get(&key).is_some_and(|&u| u > now) {
            return Err(DpopError::Replayed);
        }
        if seen.proofs.len() >= self.capacity {
            if seen.earliest > now {
                return Err(DpopError::CacheFull);
            }
            seen.proofs.retain(|_, u| *u > now);
            seen.earliest = seen.proofs.values().copied().min().unwrap_or(i64::MAX);
            if seen.proofs.len() >= self.capacity {
                return Err(DpopError::CacheFull);
            }
        }
        seen.proofs.insert(key, until);
        seen.earliest = seen.earliest.min(until);
        Ok(())
    }

    /// How many proofs are remembered.
    pub fn len(&self) -> usize {
        self.seen.lock().map_or(0, |s| s.proofs.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Server nonces (RFC 9449 §8, §9) that every node sharing the key makes and accepts
/// without state: a nonce is a time slot and a truncated HMAC-SHA256 of it.
///
/// INVARIANT (nonce lifetime): a nonce is accepted during its slot and the next one,
/// so for between one and two `slot_secs`; [`NonceKey::current`] rotates it each slot.
pub struct NonceKey {
    key: [u8; 32],
    slot_secs: i64,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceKey")
            .field("slot_secs", &self.slot_secs)
            .finish_non_exhaustive()
    }
}

const NONCE_MAC_BYTES: usize = 16;

impl NonceKey {
    /// A nonce key (32 bytes, the same on every node) with slots of `slot_secs` (≥ 1).
    pub fn new(key: [u8; 32], slot_secs: i64) -> Self {
        Self {
            key,
            slot_secs: slot_secs.max(1),
        }
    }

    fn mac(&self, slot: i64) -> Option<Hmac<Sha256>> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).ok()?;
        m.update(b"mandate dpop nonce v1");
        m.update(&slot.to_be_bytes());
        Some(m)
    }

    fn slot(&self, now: Timestamp) -> i64 {
        now.secs().div_euclid(self.slot_secs)
    }

    /// The nonce of the current slot.
    pub fn current(&self, now: Timestamp) -> String {
        let slot = self.slot(now);
        let mut bytes = slot.to_be_bytes().to_vec();
        if let Some(m) = self.mac(slot) {
            bytes.extend_from_slice(
                m.finalize()
                    .into_bytes()
                    .get(..NONCE_MAC_BYTES)
                    .unwrap_or(&[]),
            );
        }
        b64::encode(&bytes)
    }

    /// Whether `nonce` is one of this key's, of the current or the previous slot.
    pub fn accepts(&self, nonce: &str, now: Timestamp) -> bool {
        if nonce.len() > 64 {
            return false;
        }
        let Some(bytes) = b64::decode(nonce) else {
            return false;
        };
        if bytes.len() != 8 + NONCE_MAC_BYTES {
            return false;
        }
        let (slot, tag) = bytes.split_at(8);
        let Ok(slot) = <[u8; 8]>::try_from(slot).map(i64::from_be_bytes) else {
            return false;
        };
        let current = self.slot(now);
        if slot != current && slot != current.saturating_sub(1) {
            return false;
        }
        self.mac(slot)
            .is_some_and(|m| m.verify_truncated_left(tag).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A proof signer of either type.
    enum Key {
        Ed(ed25519_dalek::SigningKey),
        P256(p256::ecdsa::SigningKey),
    }

    impl Key {
        fn jwk(&self) -> Value {
            match self {
                Self::Ed(k) => {
                    json!({"kty":"OKP","crv":"Ed25519","x": b64::encode(k.verifying_key().as_bytes())})
                }
                Self::P256(k) => {
                    let p = k.verifying_key().to_encoded_point(false);
                    json!({"kty":"EC","crv":"P-256","x": b64::encode(p.x().unwrap()), "y": b64::encode(p.y().unwrap())})
                }
            }
        }

        fn sign(&self, header: &Value, claims: &str) -> String {
            let input = format!(
                "{}.{}",
                b64::encode(header.to_string().as_bytes()),
                b64::encode(claims.as_bytes())
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

    /// Runs every case of `tests/data/dpop/cases.json` (its `about` says how).
    #[test]
    fn proof_table() {
        let doc: Value =
            serde_json::from_str(include_str!("../tests/data/dpop/cases.json")).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() > 40);
        let nonce_key = NonceKey::new([5; 32], 300);
        let points = Ed25519Points::default();
        let mut seen_errors = std::collections::HashSet::new();
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let signer = match case["signer"].as_str().unwrap_or("ed25519") {
                "ed25519" => Key::Ed(ed25519_dalek::SigningKey::from_bytes(&[7; 32])),
                "p256" => Key::P256(p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap()),
                other => panic!("{name}: signer {other}"),
            };
            let other = Key::Ed(ed25519_dalek::SigningKey::from_bytes(&[8; 32]));
            let now = Timestamp::from_secs(case["now"].as_i64().unwrap_or(1000));
            let mut claims = json!({"jti": "p1", "htm": "POST",
                "htu": "https://mandate.test/v1/authorize", "iat": 1000, "ath": ath("tok")});
            match case["nonce"].as_str() {
                Some("current") => claims["nonce"] = json!(nonce_key.current(now)),
                Some("previous_slot") => {
                    claims["nonce"] =
                        json!(nonce_key.current(Timestamp::from_secs(now.secs() - 300)));
                }
                Some("expired") => {
                    claims["nonce"] =
                        json!(nonce_key.current(Timestamp::from_secs(now.secs() - 600)));
                }
                _ => {}
            }
            for (k, v) in case["set"].as_object().into_iter().flatten() {
                claims[k] = if v == "$long" {
                    json!("j".repeat(257))
                } else {
                    v.clone()
                };
            }
            for k in case["remove"].as_array().into_iter().flatten() {
                claims.as_object_mut().unwrap().remove(k.as_str().unwrap());
            }
            let mut header = json!({"typ": PROOF_TYP, "alg": "EdDSA", "jwk": signer.jwk()});
            for (k, v) in case["header"].as_object().into_iter().flatten() {
                header[k] = match v.as_str() {
                    Some("$other_jwk") => other.jwk(),
                    Some("$private_jwk") => {
                        let mut j = signer.jwk();
                        j["d"] = json!(b64::encode(&[7; 32]));
                        j
                    }
                    _ => v.clone(),
                };
            }
            for k in case["remove_header"].as_array().into_iter().flatten() {
                header.as_object_mut().unwrap().remove(k.as_str().unwrap());
            }
            let raw_claims = case["raw_claims"]
                .as_str()
                .map_or_else(|| claims.to_string(), str::to_owned);
            let proof = case["raw"]
                .as_str()
                .map_or_else(|| signer.sign(&header, &raw_claims), str::to_owned);
            let req = &case["request"];
            let token = match req.get("token") {
                Some(Value::Null) => None,
                Some(t) => Some(t.as_str().unwrap()),
                None => Some("tok"),
            };
            let e = Expect {
                method: req["method"].as_str().unwrap_or("POST"),
                url: req["url"]
                    .as_str()
                    .unwrap_or("https://mandate.test/v1/authorize"),
                access_token: token,
                window: Window::default(),
                nonce: case["nonce"].is_string().then_some(&nonce_key),
                now,
                points: None,
            };
            let got = verify(&proof, &e);
            // The points memo changes no answer: the same with it, on a miss and a hit.
            for _ in 0..2 {
                let memo = Expect {
                    points: Some(&points),
                    ..e
                };
                assert_eq!(verify(&proof, &memo), got, "{name}: with the points memo");
            }
            match case["want"].as_str() {
                None => {
                    let p = got.unwrap_or_else(|e| panic!("{name}: {e:?}"));
                    assert_eq!(
                        p.jkt,
                        PublicJwk::parse(&signer.jwk()).unwrap().thumbprint(),
                        "{name}"
                    );
                }
                Some(want) => {
                    let err = got.expect_err(name);
                    assert_eq!(format!("{err:?}"), want, "{name}");
                    seen_errors.insert(err);
                }
            }
        }
        // Every fault a proof alone can have is in the table (replay, a full cache and
        // the wrong key need a cache or a token: tested below and at the edge).
        for e in DpopError::ALL {
            if !matches!(
                e,
                DpopError::Replayed | DpopError::CacheFull | DpopError::WrongKey
            ) {
                assert!(seen_errors.contains(&e), "no case for {e:?}");
            }
        }
    }

    #[test]
    fn codes_are_distinct_and_sign_round_trips() {
        let codes: std::collections::HashSet<_> = DpopError::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), DpopError::ALL.len());
        let key = SigningKey::generate(&mandate_core::random::OsRandom).unwrap();
        let now = Timestamp::from_secs(1000);
        let claims = ProofClaims {
            jti: "j".into(),
            htm: "GET".into(),
            htu: "http://gw.test/x".into(),
            iat: 1000,
            ath: Some(ath("t")),
            nonce: None,
        };
        let proof = sign(&key, &claims).unwrap();
        let e = Expect {
            method: "GET",
            url: "http://gw.test/x?q",
            access_token: Some("t"),
            window: Window::default(),
            nonce: None,
            now,
            points: None,
        };
        assert_eq!(verify(&proof, &e).unwrap().jkt, thumbprint(&key));
    }

    #[test]
    fn htu_normalization() {
        let same = [
            (
                "https://Mandate.Example:443/v1/authorize?x=1#f",
                "https://mandate.example/v1/authorize",
            ),
            ("HTTP://h:80", "http://h/"),
            ("http://h:8080/a%2fb", "http://h:8080/a%2Fb"),
        ];
        for (a, b) in same {
            assert_eq!(normalize_htu(a), normalize_htu(b), "{a}");
            assert!(normalize_htu(a).is_some());
        }
        for bad in [
            "ftp://h/",
            "https://u@h/",
            "https:///x",
            "nope",
            "http://h/%4",
            "http://h/ x",
        ] {
            assert_eq!(normalize_htu(bad), None, "{bad}");
        }
        assert_ne!(
            normalize_htu("https://h:8443/"),
            normalize_htu("https://h/")
        );
        assert_ne!(normalize_htu("https://h/A"), normalize_htu("https://h/a"));
    }

    #[test]
    fn nonces_rotate_and_verify_statelessly() {
        let a = NonceKey::new([7; 32], 60);
        let b = NonceKey::new([7; 32], 60);
        let other = NonceKey::new([8; 32], 60);
        let t = Timestamp::from_secs(1_800_000_000);
        let n = a.current(t);
        assert!(b.accepts(&n, t));
        assert!(b.accepts(&n, Timestamp::from_secs(t.secs() + 60)));
        assert!(!b.accepts(&n, Timestamp::from_secs(t.secs() + 120)));
        assert!(!other.accepts(&n, t));
        assert!(!a.accepts("", t));
        assert!(!a.accepts(&n[1..], t));
    }

    #[test]
    fn replay_cache_is_bounded_and_fails_closed() {
        let c = ReplayCache::new(2);
        let w = Window::default();
        let t = Timestamp::from_secs(1_800_000_000);
        let p = |jti: &str, jkt: &str| Proof {
            jkt: jkt.into(),
            jti: jti.into(),
            iat: t.secs(),
        };
        assert_eq!(c.admit(&p("a", "k"), w, t), Ok(()));
        assert_eq!(c.admit(&p("a", "k"), w, t), Err(DpopError::Replayed));
        assert_eq!(c.admit(&p("a", "k2"), w, t), Ok(()));
        assert_eq!(c.admit(&p("b", "k"), w, t), Err(DpopError::CacheFull));
        // Once the window has passed, entries are dropped to make room.
        let later = Timestamp::from_secs(t.secs() + w.past_secs + 2);
        assert_eq!(c.admit(&p("b", "k"), w, later), Ok(()));
        assert_eq!(c.len(), 1);
    }

    /// INVARIANT (earliest): entries expiring at different times are forgotten as each
    /// expires, no sooner and no later, whether or not the full cache scanned.
    #[test]
    fn a_full_replay_cache_frees_each_entry_when_it_expires() {
        let c = ReplayCache::new(2);
        let w = Window::default();
        let t0 = Timestamp::from_secs(1_800_000_000);
        let at = |s: i64| Timestamp::from_secs(t0.secs() + s);
        let p = |jti: &str, iat: Timestamp| Proof {
            jkt: "k".into(),
            jti: jti.into(),
            iat: iat.secs(),
        };
        assert_eq!(c.admit(&p("a", at(0)), w, at(0)), Ok(()));
        assert_eq!(c.admit(&p("b", at(10)), w, at(10)), Ok(()));
        // Full, nothing expired: refused (without a scan).
        assert_eq!(
            c.admit(&p("c", at(20)), w, at(20)),
            Err(DpopError::CacheFull)
        );
        // "a" expired, "b" not: "c" takes "a"'s place.
        let a_gone = at(w.past_secs + 2);
        assert_eq!(c.admit(&p("c", a_gone), w, a_gone), Ok(()));
        assert_eq!(c.len(), 2);
        // "b" and "c" live: refused; once "b" expired, admitted; "b" may come again.
        assert_eq!(
            c.admit(&p("d", a_gone), w, a_gone),
            Err(DpopError::CacheFull)
        );
        let b_gone = at(10 + w.past_secs + 2);
        assert_eq!(c.admit(&p("d", b_gone), w, b_gone), Ok(()));
        assert_eq!(
            c.admit(&p("c", b_gone), w, b_gone),
            Err(DpopError::Replayed)
        );
    }
}
