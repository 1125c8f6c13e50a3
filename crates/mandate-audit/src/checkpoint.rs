//! Checkpoints: a node's signed statement of its log's size and Merkle root at a moment,
//! in the C2SP `tlog-checkpoint` shape inside a C2SP `signed-note` with one Ed25519
//! signature (<https://c2sp.org/tlog-checkpoint>, <https://c2sp.org/signed-note>).
//!
//! ```text
//! mandate/<node>
//! <size>
//! <base64 root>
//! <time, YYYY-MM-DDTHH:MM:SSZ>
//!
//! — mandate/<node> <base64(key id[4] ‖ Ed25519 signature[64])>
//! ```
//!
//! The signature covers the four body lines (each ending in `\n`). The key name is the
//! origin; the key id is the first 4 bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`,
//! as Go's `golang.org/x/mod/sumdb/note` computes it, so standard note tooling can check
//! a checkpoint with the key from [`verifier_key`].
//!
//! Verification is strict: exactly that layout, one signature line, canonical decimal,
//! base64 and time, so a checkpoint has one text and any changed byte is refused.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use mandate_core::time::Timestamp;
use sha2::{Digest, Sha256};

use crate::b64;
use crate::event::NodeName;
use crate::merkle::Hash;

/// The note signature type byte for Ed25519.
const ED25519: u8 = 0x01;

/// The origin prefix: a checkpoint's origin is `mandate/<node>`.
const ORIGIN_PREFIX: &str = "mandate/";

/// The signature line's lead, an em dash and a space.
const SIG_LEAD: &str = "\u{2014} ";

/// The state of one node's log at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The node whose log this is.
    pub node: NodeName,
    /// Number of events in the log.
    pub size: u64,
    /// Merkle tree head over those events.
    pub root: Hash,
    /// When the checkpoint was made.
    pub time: Timestamp,
}

/// A checkpoint as signed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The signed note: body, blank line, signature line.
    pub text: String,
}

/// Why a signed checkpoint was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// The text is not a checkpoint note in the expected layout.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The signature line names a key other than the checkpoint's origin.
    #[error("checkpoint for `{origin}` is signed by key name `{name}`")]
    KeyName {
        /// The origin line.
        origin: String,
        /// The name on the signature line.
        name: String,
    },
    /// The signature was made by another key.
    #[error("checkpoint signed by key id `{got}`, expected `{want}`")]
    KeyId {
        /// Key id on the signature line (hex).
        got: String,
        /// Key id of the verifying key (hex).
        want: String,
    },
    /// The signature does not verify.
    #[error("invalid checkpoint signature")]
    BadSignature,
}

/// `mandate/<node>`: the checkpoint origin and the note key name.
pub fn origin(node: &NodeName) -> String {
    format!("{ORIGIN_PREFIX}{node}")
}

/// The signed-note key id of an Ed25519 key under `name`.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519]);
    h.update(key.as_bytes());
    let digest: Hash = h.finalize().into();
    let [a, b, c, d, ..] = digest;
    [a, b, c, d]
}

/// The node's key in signed-note verifier-key form,
/// `mandate/<node>+<hex key id>+<base64(0x01 ‖ public key)>`, for tools that check notes.
pub fn verifier_key(node: &NodeName, key: &VerifyingKey) -> String {
    let name = origin(node);
    let id = crate::hex::encode(&key_id(&name, key));
    let mut material = vec![ED25519];
    material.extend_from_slice(key.as_bytes());
    format!("{name}+{id}+{}", b64::encode(&material))
}

/// Signs `text` (non-empty lines, each ending in `\n`) as a signed note under `name`.
fn sign_note(text: &str, name: &str, key: &SigningKey) -> String {
    let signature = key.sign(text.as_bytes());
    let mut blob = key_id(name, &key.verifying_key()).to_vec();
    blob.extend_from_slice(&signature.to_bytes());
    format!("{text}\n{SIG_LEAD}{name} {}\n", b64::encode(&blob))
}

/// Opens a signed note with exactly one signature line: returns the text, the key name
/// and the signature, having checked the key id against `key`. The signature itself is
/// checked by the caller once it has checked the name.
fn open_note<'a>(
    note: &'a str,
    key: &VerifyingKey,
) -> Result<(&'a str, &'a str, Signature), CheckpointError> {
    let malformed = CheckpointError::Malformed;
    let split = note
        .rfind("\n\n")
        .ok_or(malformed("no blank line before the signature"))?;
    let (text, sig_part) = note.split_at_checked(split + 1).ok_or(malformed("split"))?;
    let sig_line = sig_part
        .strip_prefix('\n')
        .and_then(|s| s.strip_suffix('\n'))
        .ok_or(malformed("signature block does not end in a newline"))?;
    if sig_line.contains('\n') {
        return Err(malformed("more than one signature line"));
    }
    let (name, blob) = sig_line
        .strip_prefix(SIG_LEAD)
        .and_then(|s| s.split_once(' '))
        .ok_or(malformed("signature line is not `— <name> <signature>`"))?;
    let blob = b64::decode_canonical(blob).ok_or(malformed("signature is not base64"))?;
    let (id, signature) = blob
        .split_first_chunk::<4>()
        .ok_or(malformed("signature too short"))?;
    let signature =
        <[u8; 64]>::try_from(signature).map_err(|_| malformed("signature is not 4 + 64 bytes"))?;
    let want = key_id(name, key);
    if *id != want {
        return Err(CheckpointError::KeyId {
            got: crate::hex::encode(id),
            want: crate::hex::encode(&want),
        });
    }
    Ok((text, name, Signature::from_bytes(&signature)))
}

impl Checkpoint {
    /// The note body: origin, size, base64 root and time, each line ending in `\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n",
            origin(&self.node),
            self.size,
            b64::encode(&self.root),
            self.time
        )
    }

    /// Signs this checkpoint with the node's key.
    pub fn sign(&self, key: &SigningKey) -> SignedCheckpoint {
        SignedCheckpoint {
            text: sign_note(&self.body(), &origin(&self.node), key),
        }
    }
}

impl SignedCheckpoint {
    /// Checks the layout, key name, key id and signature, and returns the checkpoint.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Checkpoint, CheckpointError> {
        let malformed = CheckpointError::Malformed;
        let (body, name, signature) = open_note(&self.text, key)?;
        let lines = body
            .strip_suffix('\n')
            .ok_or(malformed("body does not end in a newline"))?;
        let [origin_line, size, root, time] = *lines.split('\n').collect::<Vec<_>>() else {
            return Err(malformed("body is not four lines"));
        };
        if name != origin_line {
            return Err(CheckpointError::KeyName {
                origin: origin_line.to_owned(),
                name: name.to_owned(),
            });
        }
        key.verify_strict(body.as_bytes(), &signature)
            .map_err(|_| CheckpointError::BadSignature)?;
        // Signed by the node's key, but still parsed strictly: one text per checkpoint.
        let node = origin_line
            .strip_prefix(ORIGIN_PREFIX)
            .and_then(|n| NodeName::new(n).ok())
            .ok_or(malformed("origin is not `mandate/<node>`"))?;
        let size = size
            .parse::<u64>()
            .ok()
            .filter(|n| n.to_string() == size)
            .ok_or(malformed("size is not a canonical decimal"))?;
        let root = b64::decode_canonical(root)
            .and_then(|r| Hash::try_from(r.as_slice()).ok())
            .ok_or(malformed("root is not 32 bytes of base64"))?;
        let time = Timestamp::parse(time)
            .ok()
            .filter(|t| t.to_string() == time)
            .ok_or(malformed("time is not `YYYY-MM-DDTHH:MM:SSZ`"))?;
        Ok(Checkpoint {
            node,
            size,
            root,
            time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            node: NodeName::new("node-1").unwrap(),
            size: 12,
            root: crate::merkle::leaf_hash(b"root"),
            time: Timestamp::from_secs(1_700_000_000),
        }
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn layout_and_round_trip() {
        let cp = checkpoint();
        let signed = cp.sign(&key(1));
        let (body, sig) = signed.text.split_once("\n\n").unwrap();
        assert_eq!(
            format!("{body}\n"),
            format!(
                "mandate/node-1\n12\n{}\n2023-11-14T22:13:20Z\n",
                b64::encode(&cp.root)
            )
        );
        assert!(sig.starts_with("— mandate/node-1 ") && sig.ends_with('\n'));
        assert_eq!(signed.verify(&key(1).verifying_key()), Ok(cp));
    }

    #[test]
    fn wrong_key_fails() {
        let signed = checkpoint().sign(&key(1));
        assert!(matches!(
            signed.verify(&key(2).verifying_key()),
            Err(CheckpointError::KeyId { .. })
        ));
    }

    #[test]
    fn any_changed_byte_fails() {
        let signed = checkpoint().sign(&key(1));
        let vk = key(1).verifying_key();
        let bytes = signed.text.as_bytes();
        for i in 0..bytes.len() {
            for delta in [1u8, 0x20, 0x80] {
                let mut b = bytes.to_vec();
                b[i] ^= delta;
                let Ok(text) = String::from_utf8(b) else {
                    continue; // not even text
                };
                assert!(
                    SignedCheckpoint { text }.verify(&vk).is_err(),
                    "byte {i} ^ {delta:#x} accepted"
                );
            }
        }
        // Removed or added bytes too.
        for i in 0..bytes.len() {
            let mut b = bytes.to_vec();
            b.remove(i);
            if let Ok(text) = String::from_utf8(b) {
                assert!(
                    SignedCheckpoint { text }.verify(&vk).is_err(),
                    "removed {i}"
                );
            }
        }
        for extra in ["\n", " ", "— mandate/node-1 AAAA\n"] {
            let text = format!("{}{extra}", signed.text);
            assert!(SignedCheckpoint { text }.verify(&vk).is_err(), "{extra:?}");
        }
    }

    #[test]
    fn non_canonical_fields_fail_even_when_signed() {
        let k = key(3);
        let name = "mandate/node-1";
        let root = b64::encode(&[0; 32]);
        for body in [
            format!("{name}\n012\n{root}\n2023-11-14T22:13:20Z\n"),
            format!("{name}\n+12\n{root}\n2023-11-14T22:13:20Z\n"),
            format!("{name}\n12\n{root}\n2023-11-14T22:13:20.0Z\n"),
            format!("{name}\n12\n{root}\n2023-11-14T23:13:20+01:00\n"),
            format!("{name}\n12\nAAAA\n2023-11-14T22:13:20Z\n"),
            format!("{name}\n12\n{root}\n"),
            format!("{name}\n12\n{root}\n2023-11-14T22:13:20Z\nextra\n"),
            "mandate/a b\n12\nAAAA\n2023-11-14T22:13:20Z\n".to_owned(),
            format!("other/node-1\n12\n{root}\n2023-11-14T22:13:20Z\n"),
        ] {
            let origin = body.split('\n').next().unwrap();
            let text = sign_note(&body, origin, &k);
            let got = SignedCheckpoint { text }.verify(&k.verifying_key());
            assert!(
                matches!(got, Err(CheckpointError::Malformed(_))),
                "{body:?}: {got:?}"
            );
        }
        // Signed under a name other than the origin.
        let body = format!("{name}\n12\n{root}\n2023-11-14T22:13:20Z\n");
        let text = sign_note(&body, "mandate/other", &k);
        assert!(matches!(
            SignedCheckpoint { text }.verify(&k.verifying_key()),
            Err(CheckpointError::KeyName { .. })
        ));
    }

    // The reference example of golang.org/x/mod/sumdb/note (note_test.go): the same key
    // and text must give the same signature line, byte for byte.
    #[test]
    fn matches_go_signed_note() {
        let skey = b64::decode_canonical("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz").unwrap();
        let (alg, seed) = skey.split_first().unwrap();
        assert_eq!(*alg, ED25519);
        let k = SigningKey::from_bytes(seed.try_into().unwrap());
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        assert_eq!(
            sign_note(text, "PeterNeumann", &k),
            format!(
                "{text}\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            )
        );
        let vkey = format!(
            "PeterNeumann+{}+{}",
            crate::hex::encode(&key_id("PeterNeumann", &k.verifying_key())),
            b64::encode(&[&[ED25519][..], k.verifying_key().as_bytes()].concat())
        );
        assert_eq!(
            vkey,
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        );
        let node = NodeName::new("n").unwrap();
        assert!(verifier_key(&node, &k.verifying_key()).starts_with("mandate/n+"));
    }
}
