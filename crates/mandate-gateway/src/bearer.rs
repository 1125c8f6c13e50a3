//! The agent's bearer token, read one way by both gateways: `Authorization: Bearer
//! <token>` (RFC 6750 §2.1; the scheme is case-insensitive, RFC 9110 §11.1). The token
//! is never taken from the query or a form body.

use axum::http::{HeaderMap, header};

/// The bearer token of `headers` (`None`: no `Authorization: Bearer …` with a
/// non-empty token).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn only_a_bearer_token_is_read() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(v));
            h
        };
        assert_eq!(bearer(&with("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&with("bearer  abc ")), Some("abc"));
        for none in ["Basic abc", "Bearer", "Bearer  ", "Bearerabc"] {
            assert_eq!(bearer(&with(none)), None, "{none}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
