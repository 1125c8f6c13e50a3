//! The HTTP gateway's path canonicalizer (`mandate_gateway::http::path`) on arbitrary
//! UTF-8: never panics; what it accepts is a fixed point (its re-encoded canonical form
//! reads back to the same segments); a routed path is its prefix's segments followed by
//! the segments below, and the upstream form of those reads back to exactly them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_gateway::http::path::CanonicalPath;

const PREFIXES: [&str; 3] = ["/crm", "/crm/admin", "/billing"];

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = CanonicalPath::parse(raw) else {
        return;
    };
    for s in path.segments() {
        assert!(
            !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\']),
            "{raw:?}: segment {s:?}"
        );
        assert!(!s.chars().any(char::is_control), "{raw:?}: segment {s:?}");
    }
    let encoded = path.encoded();
    let again = CanonicalPath::parse(&encoded)
        .unwrap_or_else(|e| panic!("{raw:?}: canonical form {encoded:?} refused: {e}"));
    assert_eq!(again.segments(), path.segments(), "{raw:?} -> {encoded:?}");
    assert_eq!(again.trailing_slash(), path.trailing_slash(), "{raw:?}");
    assert_eq!(again.encoded(), encoded, "{raw:?}");

    let segments = path.segments().to_vec();
    let Ok(Some((i, routed))) = path.route(PREFIXES) else {
        return;
    };
    let prefix = PREFIXES.get(i).copied().unwrap_or_default();
    let names: Vec<&str> = prefix.trim_start_matches('/').split('/').collect();
    let mut whole: Vec<&str> = names.clone();
    whole.extend(routed.segments().iter().map(String::as_str));
    assert_eq!(whole, segments, "{raw:?}: routed under {prefix}");
    let upstream = format!("/base{}", routed.upstream_path());
    let read = CanonicalPath::parse(&upstream)
        .unwrap_or_else(|e| panic!("{raw:?}: upstream form {upstream:?} refused: {e}"));
    let below = read.segments().get(1..).unwrap_or_default();
    assert_eq!(below, routed.segments(), "{raw:?} -> {upstream:?}");
    assert_eq!(routed.canonical(), format!("{prefix}{}", routed.upstream_path()));
});
