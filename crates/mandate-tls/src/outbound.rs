//! The rule on plain-HTTP targets, applied to every configured outbound URL at config
//! load (webhooks, gateway and MCP upstreams, export sinks, IdP JWKS and discovery).
//!
//! INVARIANT (no plain HTTP off the machine): [`check_url`] refuses an `http://` target
//! whose host is not loopback (`127.0.0.0/8`, `::1`, `localhost`) unless that target's
//! `allow_http` says so. It reads the URL's scheme and host only (a small reader, so
//! this crate needs no URL library); a URL the HTTP client later cannot parse fails
//! there, closed.

use std::net::IpAddr;

/// Whether `host` (as a URL carries it, IPv6 in brackets or not) is this machine:
/// `localhost`, `127.0.0.0/8`, `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The scheme (lowercased) and host of an absolute `scheme://[userinfo@]host[:port]…`
/// URL.
fn scheme_host(url: &str) -> Option<(String, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        let end = host_port.find(']')?;
        host_port.get(..=end)?
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    Some((scheme.to_ascii_lowercase(), host))
}

/// Checks an outbound URL of the config key `key`: an absolute `https://` URL, or an
/// `http://` one to loopback, or to anywhere when `allow_http` (the key named
/// `allow_key`) is set. The error names the key and the host, never the rest of the URL
/// (a query string may hold a secret).
pub fn check_url(key: &str, allow_key: &str, url: &str, allow_http: bool) -> Result<(), String> {
    // A URL parser drops tabs and line breaks and reads `\` as `/`: either could make
    // it see another host than the one read here, so neither passes.
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return Err(format!(
            "`{key}` holds a space, a control character or a backslash"
        ));
    }
    let Some((scheme, host)) = scheme_host(url) else {
        return Err(format!(
            "`{key}` is not an absolute http:// or https:// URL"
        ));
    };
    if host.is_empty() {
        return Err(format!("`{key}` names no host"));
    }
    match scheme.as_str() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback_host(host) => Ok(()),
        "http" => Err(format!(
            "`{key}`: plain `http://` to `{host}` is refused (not loopback): use https://, \
             or set `{allow_key} = true` to send it unencrypted"
        )),
        other => Err(format!("`{key}`: scheme `{other}` is not http or https")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_plain_http() {
        for h in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.9.9.9",
            "[::1]",
            "::1",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "10.0.0.1",
            "example.com",
            "localhost.example.com",
            "[::2]",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
        assert!(check_url("k", "a", "https://idp.example.com/jwks", false).is_ok());
        assert!(check_url("k", "a", "HTTPS://idp.example.com", false).is_ok());
        assert!(check_url("k", "a", "http://127.0.0.1:9/x", false).is_ok());
        assert!(check_url("k", "a", "http://localhost/x", false).is_ok());
        assert!(check_url("k", "a", "http://[::1]:9/x", false).is_ok());
        assert!(check_url("k", "a", "http://hooks.example.com/x", true).is_ok());
        // A user-info part cannot pass for the host.
        assert!(check_url("k", "a", "http://127.0.0.1@evil.example/x", false).is_err());
        assert!(check_url("k", "a", "http://evil.example#@127.0.0.1/", false).is_err());
        let e = check_url(
            "k",
            "k_allow",
            "http://hooks.example.com/x?sig=s3cret",
            false,
        )
        .unwrap_err();
        assert!(
            e.contains("`hooks.example.com`") && e.contains("`k_allow = true`"),
            "{e}"
        );
        assert!(!e.contains("s3cret"), "{e}");
        assert!(check_url("k", "a", "ftp://x/y", true).is_err());
        assert!(check_url("k", "a", "/relative", true).is_err());
        assert!(check_url("k", "a", "http:///x", true).is_err());
        assert!(check_url("k", "a", "http://evil.example\\@127.0.0.1/", false).is_err());
        assert!(check_url("k", "a", "http://127.0.0.1\t@evil.example/", false).is_err());
    }
}
