//! `TraceParent::parse` (mandate_core::trace) on arbitrary UTF-8: never panics; what it
//! accepts has non-zero ids, writes back as a version-00 header that parses to the same
//! ids, and a version-00 input is its own canonical form (flags masked to `sampled`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_core::trace::TraceParent;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = TraceParent::parse(s) else { return };
    assert!(s.is_ascii() && s.len() >= 55, "{s:?}");
    assert_ne!(p.trace_id.bytes(), [0u8; 16], "{s:?}");
    assert_ne!(p.parent_id.bytes(), [0u8; 8], "{s:?}");
    let header = p.header();
    assert_eq!(header.len(), 55);
    let again = TraceParent::parse(&header).unwrap_or_else(|e| panic!("{s:?} -> {header:?}: {e}"));
    assert_eq!((again.trace_id, again.parent_id), (p.trace_id, p.parent_id));
    assert_eq!(again.flags, p.flags & 1);
    if s.starts_with("00-") {
        assert_eq!(s.len(), 55, "{s:?}");
        assert_eq!(&header[..53], &s[..53], "{s:?}");
    }
});
