//! `SignedCheckpoint::verify` against the fixed audit key: never panics; what it
//! accepts is exactly the text signing that checkpoint gives (one text per checkpoint);
//! a signed checkpoint verifies to itself, and no single changed byte of it verifies.
//!
//! Input: `s!<bytes>` signs a checkpoint built from the bytes (node name, size, root,
//! time), then overwrites one byte of its text; anything else (UTF-8) is verified as a
//! checkpoint's text.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use mandate_audit::checkpoint::{Checkpoint, SignedCheckpoint};
use mandate_core::time::Timestamp;
use mandate_fuzz::{audit_key, mode, node_name};

fn round_trip(data: &[u8]) -> Result<()> {
    let key = audit_key();
    let vk = key.verifying_key();
    let mut u = Unstructured::new(data);
    let cp = Checkpoint {
        node: node_name(u.arbitrary()?),
        size: u.arbitrary()?,
        root: u.arbitrary()?,
        time: Timestamp::from_secs(u.arbitrary()?),
    };
    let signed = cp.sign(key);
    assert_eq!(signed.verify(&vk), Ok(cp.clone()), "{}", signed.text);

    let mut bytes = signed.text.clone().into_bytes();
    let at = u.choose_index(bytes.len())?;
    let byte: u8 = u.arbitrary()?;
    if let Some(b) = bytes.get_mut(at) {
        *b = byte;
    }
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(());
    };
    let got = SignedCheckpoint { text: text.clone() }.verify(&vk);
    if text == signed.text {
        assert_eq!(got, Ok(cp));
    } else {
        assert!(
            got.is_err(),
            "byte {at} set to {byte:#04x} still verifies: {text:?}"
        );
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    match mode(data) {
        Some((b's', rest)) => {
            let _ = round_trip(rest);
        }
        _ => {
            let Ok(text) = std::str::from_utf8(data) else {
                return;
            };
            let key = audit_key();
            let signed = SignedCheckpoint {
                text: text.to_owned(),
            };
            if let Ok(cp) = signed.verify(&key.verifying_key()) {
                assert_eq!(cp.sign(key), signed, "accepted a second text for {cp:?}");
            }
        }
    }
});
