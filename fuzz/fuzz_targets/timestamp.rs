//! `Timestamp::parse` on arbitrary UTF-8: never panics, and what parses prints back to
//! text that parses to the same instant.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_core::time::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = Timestamp::parse(s) else { return };
    let text = t.to_string();
    assert_eq!(Timestamp::parse(&text), Ok(t), "{s:?} -> {text}");
    assert_eq!(
        Timestamp::from_secs(t.secs()),
        t,
        "parsed values are in range"
    );
    // The canonical form is a fixed point, and serde agrees with Display/parse.
    assert_eq!(
        Timestamp::parse(&text).map(|u| u.to_string()),
        Ok(text.clone())
    );
    let json = serde_json::to_string(&t).unwrap_or_default();
    assert_eq!(json, format!("\"{text}\""));
    assert_eq!(serde_json::from_str::<Timestamp>(&json).ok(), Some(t));
});
