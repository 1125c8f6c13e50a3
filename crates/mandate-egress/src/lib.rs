//! The one constructor of Mandate's HTTP clients (reqwest over `mandate-tls`), and the
//! rule on plain-HTTP targets (re-exported). A crate of its own so that `mandate-tls` (which the
//! service layer uses for syslog over TLS) stays free of an HTTP stack.
//!
//! INVARIANT (one HTTP client constructor): reqwest is built with rustls but no crypto
//! provider of its own (no aws-lc), so a `reqwest::Client` built without a
//! preconfigured rustls config would panic at `build()`. Every client of the workspace
//! is therefore made by [`builder`] or [`builder_of`], which hand reqwest this crate's
//! ring configuration (its roots, client identity and `server_name`);
//! `crates/mandate/tests/layers.rs` greps that no other constructor remains. Redirects
//! are not followed (a target's `https://` cannot be bounced to another host or to
//! plain HTTP); a caller that wants them says so.
//!
//! The plain-HTTP rule ([`check_url`], `INVARIANT (no plain HTTP off the machine)`) is
//! `mandate-tls`'s, re-exported here.

pub use mandate_tls::{Client, Settings, TlsError, check_url, is_loopback_host};

/// An HTTP client builder trusting what `settings` says, its files read now. A system
/// without root certificates is not an error here (an `https://` server is then
/// refused at its handshake): a client of loopback `http://` alone needs none.
pub fn builder(settings: &Settings) -> Result<reqwest::ClientBuilder, TlsError> {
    Ok(builder_of(&Client::new_lenient(settings)?))
}

/// An HTTP client builder over the built TLS client `tls`.
pub fn builder_of(tls: &Client) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(rustls::ClientConfig::clone(&tls.config()))
        .redirect(reqwest::redirect::Policy::none())
}

/// An HTTP client builder trusting the system's roots. Infallible: should the TLS
/// configuration not build, the builder's `build()` returns an error (reqwest's
/// "unknown TLS backend"), never a panic, and no client exists.
pub fn default_builder() -> reqwest::ClientBuilder {
    match builder(&Settings::default()) {
        Ok(b) => b,
        Err(_) => reqwest::Client::builder().tls_backend_preconfigured(()),
    }
}

/// `e` with its causes, `: `-joined: reqwest's own message leaves out why a connection
/// failed (an unknown issuer, a wrong name, a refused client certificate), which an
/// operator reading the log needs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
