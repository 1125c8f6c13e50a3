//! Fixtures shared by the fuzz targets: fixed keys and a JWS signer.
//!
//! The keys are fixed (not drawn from the OS) so that a crash input reproduces exactly
//! on any machine, and so that seed tokens in `corpus/` carry valid signatures. The
//! signer lets a target sign a fuzzer-chosen header and payload, so the checks that run
//! after a signature verifies are fuzzed too, not only the parsing in front of them.
//!
//! Input convention of the token targets: `X!` in front picks mode `X` (see each
//! target's `//!` lines), anything else is a token as presented. No JWT starts that way,
//! `!` not being base64url, and the seeds stay readable text.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mandate_core::random::{Random, RandomError};
use mandate_core::time::Timestamp;
use mandate_token::jwk::PublicJwk;
use mandate_token::keys::{KeyRing, SigningKey};
use serde_json::json;

/// The issuer the access-token target verifies against.
pub const ISSUER: &str = "http://x";
/// The token endpoint: the other accepted client-assertion audience.
pub const TOKEN_ENDPOINT: &str = "http://x/oauth/token";
/// The client whose assertions the client-assertion target verifies.
pub const CLIENT_ID: &str = "agt_01J00000000000000000000000";
/// The registered Ed25519 key's `kid`; the P-256 key is registered without one (so it
/// is found by RFC 7638 thumbprint or by trying every key).
pub const ED25519_KID: &str = "ed-1";
/// "Now" for every verification: 2023-11-14T22:13:20Z.
pub const NOW_SECS: i64 = 1_700_000_000;

/// [`NOW_SECS`] as a timestamp.
pub fn now() -> Timestamp {
    Timestamp::from_secs(NOW_SECS)
}

/// RFC 8037 Appendix A.1's private key seed (`d`).
const ED25519_SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];
/// Any scalar below the P-256 group order is a private key.
const P256_SCALAR: [u8; 32] = [0x11; 32];
/// The bytes the "random" source yields for the access-token signing key.
const RING_SEED_BYTE: u8 = 0x42;

/// A random source that is not random: every byte is [`RING_SEED_BYTE`].
struct FixedRandom;

impl Random for FixedRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        buf.fill(RING_SEED_BYTE);
        Ok(())
    }
}

/// The mode and data of a token target's input: `X!data` is `Some((X, data))`.
pub fn mode(data: &[u8]) -> Option<(u8, &[u8])> {
    match data {
        [m, b'!', rest @ ..] => Some((*m, rest)),
        _ => None,
    }
}

/// `header\npayload` split at the first newline (no newline: all header).
pub fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (
            data.get(..i).unwrap_or_default(),
            data.get(i + 1..).unwrap_or_default(),
        ),
        None => (data, &[]),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A private key the fixtures sign with.
pub enum Signer {
    /// EdDSA over Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
    /// ES256.
    P256(p256::ecdsa::SigningKey),
}

impl Signer {
    /// A compact JWS of exactly these header and payload bytes.
    pub fn jws(&self, header: &[u8], payload: &[u8]) -> String {
        use p256::ecdsa::signature::Signer as _;
        let input = format!("{}.{}", b64(header), b64(payload));
        let sig = match self {
            Self::Ed25519(k) => k.sign(input.as_bytes()).to_bytes().to_vec(),
            Self::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign(input.as_bytes());
                s.to_bytes().to_vec()
            }
        };
        format!("{input}.{}", b64(&sig))
    }
}

/// Mandate's access-token key ring (one fixed Ed25519 key) and the same key for raw signing.
pub struct Ring {
    /// What `access::verify` checks against.
    pub ring: KeyRing,
    /// The ring's current key, to sign fuzzer-chosen tokens with.
    pub signer: Signer,
    /// The ring key's `kid`.
    pub kid: String,
}

/// The access-token fixture, built once per process.
#[expect(
    clippy::expect_used,
    reason = "fixture setup; a failure is a harness bug"
)]
pub fn ring() -> &'static Ring {
    static RING: OnceLock<Ring> = OnceLock::new();
    RING.get_or_init(|| {
        let current = SigningKey::generate(&FixedRandom).expect("fixed random cannot fail");
        let raw = ed25519_dalek::SigningKey::from_bytes(&[RING_SEED_BYTE; 32]);
        assert_eq!(
            raw.verifying_key().to_bytes(),
            current.public_bytes(),
            "same key"
        );
        let kid = current.kid().to_owned();
        let ring = KeyRing::new(current, vec![]).expect("a fresh key is valid");
        Ring {
            ring,
            signer: Signer::Ed25519(raw),
            kid,
        }
    })
}

/// One registered client key and its private half.
pub struct ClientKey {
    /// As registered (parsed by `PublicJwk::parse`).
    pub jwk: PublicJwk,
    /// The private half.
    pub signer: Signer,
}

/// The client-assertion fixture: an Ed25519 key (index 0, with `kid`) and a P-256 key
/// (index 1, without), both registered for [`CLIENT_ID`].
#[expect(
    clippy::expect_used,
    reason = "fixture setup; a failure is a harness bug"
)]
pub fn client_keys() -> &'static [ClientKey; 2] {
    static KEYS: OnceLock<[ClientKey; 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ed = ed25519_dalek::SigningKey::from_bytes(&ED25519_SEED);
        let ed_jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": ED25519_KID,
            "x": b64(ed.verifying_key().as_bytes())});
        let ec = p256::ecdsa::SigningKey::from_slice(&P256_SCALAR).expect("scalar in range");
        let point = ec.verifying_key().to_encoded_point(false);
        let ec_jwk = json!({"kty": "EC", "crv": "P-256",
            "x": b64(point.x().expect("uncompressed")), "y": b64(point.y().expect("uncompressed"))});
        [
            ClientKey { jwk: PublicJwk::parse(&ed_jwk).expect("valid"), signer: Signer::Ed25519(ed) },
            ClientKey { jwk: PublicJwk::parse(&ec_jwk).expect("valid"), signer: Signer::P256(ec) },
        ]
    })
}
