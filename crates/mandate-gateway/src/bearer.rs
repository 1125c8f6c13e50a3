//! The agent's bearer token, read one way by both gateways: `Authorization: Bearer
//! <token>` (RFC 6750 §2.1; the scheme is case-insensitive, RFC 9110 §11.1). The token
//! is never taken from the query or a form body. DPoP-bound tokens come as
//! `Authorization: DPoP <token>` with a `DPoP` proof header ([`agent_token`]).

use axum::http::{HeaderMap, header};

/// The agent's token under `Authorization: Bearer` or `Authorization: DPoP` (RFC 9449
/// §7.1), and whether it is the latter.
pub fn agent_token(headers: &HeaderMap) -> Option<(&str, bool)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Some((token, false))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Some((token, true))
    } else {
        None
    }
}

/// Every `DPoP` header value (one that is not text counts as an empty proof).
pub fn dpop_proofs(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all("dpop")
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn tok(h: &HeaderMap) -> Option<&str> {
        agent_token(h).filter(|(_, dpop)| !dpop).map(|(t, _)| t)
    }

    #[test]
    fn only_a_bearer_token_is_read() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(v));
            h
        };
        assert_eq!(tok(&with("Bearer abc")), Some("abc"));
        assert_eq!(tok(&with("bearer  abc ")), Some("abc"));
        for none in ["Basic abc", "Bearer", "Bearer  ", "Bearerabc"] {
            assert_eq!(tok(&with(none)), None, "{none}");
        }
        assert_eq!(tok(&HeaderMap::new()), None);
    }
}
