//! Tokens and the cryptography around them: Mandate's Ed25519 signing keys and JWKS,
//! RFC 9068 access tokens, RFC 7523 client assertions, RFC 9449 DPoP proofs, user tokens from trusted
//! identity providers, and secret generation/hashing.
//!
//! This crate does no IO: keys arrive as bytes, time as a `Timestamp`, randomness
//! through `mandate_core::random::Random`. No cryptography is hand-rolled here; the
//! primitives come from `jsonwebtoken`, `ed25519-dalek`, `p256` and `argon2`.

#![warn(missing_docs)]

pub mod access;
pub mod assertion;
pub mod dpop;
pub mod jwk;
pub mod jws;
pub mod keys;
pub mod secret;
pub mod set;
pub mod user;

mod b64 {
    //! Unpadded base64url, the JOSE encoding.
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub fn encode(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(s: &str) -> Option<Vec<u8>> {
        URL_SAFE_NO_PAD.decode(s).ok()
    }
}
