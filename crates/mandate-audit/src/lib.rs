//! The audit log: canonical event encoding, the RFC 9162 Merkle tree over it, signed
//! checkpoints, per-field redaction and offline verification of an exported log.
//!
//! This crate does no IO: events and checkpoints are values, time arrives as a
//! `Timestamp`, keys as `ed25519_dalek` keys, and an export is read from any `BufRead`.
//! Storing the log and its `Frontier` is the store's and the server's job.
//!
//! The chain, end to end: an [`event::AuditEvent`] has one canonical encoding
//! ([`canonical::canonical_json`], RFC 8785); its leaf hash is `SHA-256(0x00 ‖ bytes)`;
//! leaf `i` is event `seq = i` of one node's log; a [`checkpoint::Checkpoint`] signs the
//! log's size and Merkle root; [`verify::verify_export`] recomputes all of it from an
//! export and the node's public key. An incident [`bundle::verify_bundle`] does the same
//! for a few events of one agent, each with its inclusion proof.

#![warn(missing_docs)]

pub mod bundle;
pub mod canonical;
pub mod checkpoint;
pub mod epoch;
pub mod event;
pub mod merkle;
pub mod redact;
pub mod verify;

#[cfg(test)]
mod testgen;

mod b64 {
    //! Padded standard base64, the encoding of checkpoints and signed notes.
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    pub fn encode(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    /// Decodes canonical padded base64 only: the re-encoding must give back `s`.
    pub fn decode_canonical(s: &str) -> Option<Vec<u8>> {
        let bytes = STANDARD.decode(s).ok()?;
        (encode(&bytes) == s).then_some(bytes)
    }
}

mod hex {
    //! Lowercase hexadecimal.

    pub fn encode(bytes: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            for nibble in [b >> 4, b & 0x0f] {
                if let Some(&d) = DIGITS.get(usize::from(nibble)) {
                    out.push(char::from(d));
                }
            }
        }
        out
    }
}
