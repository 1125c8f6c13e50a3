//! The one rule for "an absolute URI without a fragment" (RFC 3986 §4.3), used for
//! RFC 8707 resources and configured audiences alike.

/// Whether `v` is an absolute URI (a scheme, a colon, something after it) without a
/// fragment, whitespace or control characters, and at most 2048 bytes.
pub fn is_absolute_uri(v: &str) -> bool {
    let scheme_ok = v.split_once(':').is_some_and(|(s, rest)| {
        !rest.is_empty()
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    scheme_ok
        && !v.contains('#')
        && v.len() <= 2048
        && !v.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::is_absolute_uri;

    #[test]
    fn absolute_uris() {
        for ok in [
            "https://api.example.com/v1",
            "urn:example:thing",
            "http://x",
        ] {
            assert!(is_absolute_uri(ok), "{ok}");
        }
        for bad in [
            "/relative",
            "https://x#frag",
            "noscheme",
            "1http://x",
            "https://x y",
            "x:",
        ] {
            assert!(!is_absolute_uri(bad), "{bad}");
        }
    }
}
