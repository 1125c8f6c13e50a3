//! `tracestate_of` (mandate_core::trace) on arbitrary UTF-8 split into header values:
//! never panics; what it carries on is a valid list (`INVARIANT (tracestate bounded)`):
//! at most 32 members and 4096 bytes, no key twice, and read again it is itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_core::trace::{TRACESTATE_MAX, TRACESTATE_MEMBERS, tracestate_of};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // A newline separates header values (a header value never holds one).
    let Some(out) = tracestate_of(s.split('\n')) else {
        return;
    };
    assert!(out.len() <= TRACESTATE_MAX, "{s:?}");
    let members: Vec<&str> = out.split(',').collect();
    assert!(members.len() <= TRACESTATE_MEMBERS, "{s:?}");
    let mut keys: Vec<&str> = members
        .iter()
        .map(|m| m.split_once('=').map_or("", |(k, _)| k))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), members.len(), "{s:?} -> {out:?}");
    assert!(keys.iter().all(|k| !k.is_empty()), "{s:?} -> {out:?}");
    assert_eq!(tracestate_of([out.as_str()]).as_deref(), Some(out.as_str()));
});
