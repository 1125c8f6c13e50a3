//! `canonical::canonical_json` on any JSON value: never panics; its output is JSON
//! whose canonical form is itself (the verifier re-canonicalizes what a node exported),
//! and it does not depend on how the value was serialized.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_audit::canonical::canonical_json;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let once = canonical_json(&v);
    let text = String::from_utf8_lossy(&once);
    let parsed = serde_json::from_slice::<Value>(&once);
    assert!(
        parsed.is_ok(),
        "canonical output is not JSON: {parsed:?}: {text}"
    );
    let Ok(parsed) = parsed else { return };
    assert_eq!(canonical_json(&parsed), once, "not a fixed point: {text}");
    for other in [serde_json::to_vec(&v), serde_json::to_vec_pretty(&v)] {
        let Ok(other) = other else { continue };
        let shown = String::from_utf8_lossy(&other);
        let reparsed = serde_json::from_slice::<Value>(&other);
        assert!(
            reparsed.is_ok(),
            "serde_json cannot read its own output: {shown}"
        );
        let Ok(reparsed) = reparsed else { return };
        assert_eq!(
            canonical_json(&reparsed),
            once,
            "depends on the serialization: {shown}"
        );
    }
});
