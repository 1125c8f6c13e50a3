//! Client authentication by TLS client certificate (RFC 8705 §2): what a credential must
//! hold to be one, and whether a presented chain is one of an agent's.
//!
//! Two kinds of credential authenticate a client that sends only its `client_id` over a
//! TLS connection on which it presented a certificate:
//!
//! - `self_signed_tls_client_auth` (§2.2): a `public_key` credential whose JWK carries
//!   `x5c`, exactly one certificate (base64 DER, RFC 7517 §4.7) whose key is the JWK's
//!   ([`registered_x5c`] refuses any other). The presented leaf must be that certificate,
//!   byte for byte. No CA, no dates: the credential's own expiry and revocation govern,
//!   and the TLS handshake proved the client holds the certificate's key.
//! - `tls_client_auth` (§2.1): a `tls_client_auth` credential naming one subjectAltName
//!   ([`CertName`]). The presented chain must verify against the node's client CA
//!   (`tls.client_ca_file`; `mandate_tls::client_cert::verify_client_chain`: path, dates,
//!   client-authentication usage) and its leaf must carry that name.
//!
//! INVARIANT (a certificate authenticates by a credential): a chain authenticates agent A
//! only if one of A's credentials usable now matches it as above — never by a name alone
//! without the CA's verification, never by a CA-verified chain without a credential of A
//! naming it.

use std::net::IpAddr;

use base64::Engine as _;
use mandate_core::credential::{CertName, Credential, CredentialKind};
use mandate_tls::client_cert::{self, ChainError, ClientCa, SanName};
use mandate_token::jwk::PublicJwk;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde_json::{Value, json};

/// The `x5c` of `jwk`, checked as the certificate a `self_signed_tls_client_auth` client
/// presents: `None` when `jwk` has no `x5c`; else exactly one certificate, in standard
/// base64 (RFC 7517 §4.7), that parses, whose public key is `key`'s. `Err` says why not.
pub fn registered_x5c(jwk: &Value, key: &PublicJwk) -> Result<Option<Value>, String> {
    let Some(x5c) = jwk.get("x5c") else {
        return Ok(None);
    };
    let [cert] = x5c.as_array().map(Vec::as_slice).unwrap_or_default() else {
        return Err(
            "x5c must be an array of exactly one certificate (the self-signed client certificate)"
                .into(),
        );
    };
    let der = cert
        .as_str()
        .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
        .ok_or("x5c[0] must be a base64 (not base64url) DER certificate")?;
    let spki = client_cert::certificate_spki(&der)
        .map_err(|_| "x5c[0] is not a certificate that parses".to_owned())?;
    if Some(spki) != jwk_spki(key) {
        return Err("the key of the x5c certificate is not the JWK's key".into());
    }
    Ok(Some(json!([cert])))
}

/// The DER SubjectPublicKeyInfo of `key` (RFC 8410 §4 for Ed25519, RFC 5480 §2 for
/// P-256 with an uncompressed point), as a certificate holding it encodes it.
fn jwk_spki(key: &PublicJwk) -> Option<Vec<u8>> {
    const ED25519: &[u8] = &[
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    const P256: &[u8] = &[
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
    ];
    let v = key.to_value();
    let coord = |k: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v.get(k)?.as_str()?)
            .ok()
    };
    match v.get("kty")?.as_str()? {
        "OKP" => Some([ED25519, &coord("x")?].concat()),
        "EC" => Some([P256, &coord("x")?, &coord("y")?].concat()),
        _ => None,
    }
}

/// The one subjectAltName of a `tls_client_auth` credential, from the RFC 8705 metadata
/// given (`names`: pairs of metadata name and value). `Err((field, why))`.
pub fn cert_name(names: &[(&'static str, String)]) -> Result<CertName, (&'static str, String)> {
    match names {
        [] => Err((
            "tls_client_auth_san_uri",
            "a tls_client_auth credential names exactly one of tls_client_auth_san_dns, \
             tls_client_auth_san_uri, tls_client_auth_san_ip"
                .into(),
        )),
        [(k, v)] => CertName::from_metadata(k, v).map_err(|why| (*k, why)),
        [_, (k, _), ..] => Err((
            k,
            "give exactly one of tls_client_auth_san_dns, tls_client_auth_san_uri, \
             tls_client_auth_san_ip"
                .into(),
        )),
    }
}

/// Which of `credentials` (an agent's, usable now) the presented `chain` (leaf first)
/// matches, if any: a registered self-signed certificate first (byte equality), then a
/// `tls_client_auth` name on a chain verified against `ca` at `now_secs`. `Err` only when
/// the chain had to be verified (no self-signed match, a client CA configured) and was
/// refused: the reason is the chain's alone (expired, untrusted, …), whoever the client.
pub fn matching<'c>(
    credentials: &[&'c Credential],
    chain: &[CertificateDer<'_>],
    ca: Option<&ClientCa>,
    now_secs: u64,
) -> Result<Option<&'c Credential>, ChainError> {
    let leaf = chain.first().ok_or(ChainError::Missing)?;
    // The leaf encoded once, compared with each stored `x5c[0]`: a stored one decoded
    // under the strict standard engine when registered (`registered_x5c`), so equal text
    // is equal DER.
    let leaf = base64::engine::general_purpose::STANDARD.encode(leaf);
    let self_signed = credentials
        .iter()
        .find(|c| registered_certificate(c) == Some(leaf.as_str()));
    if let Some(c) = self_signed {
        return Ok(Some(*c));
    }
    let Some(ca) = ca else {
        return Ok(None);
    };
    let verified = client_cert::verify_client_chain(
        ca,
        chain,
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(now_secs)),
    )?;
    Ok(credentials
        .iter()
        .find(|c| {
            c.kind == CredentialKind::TlsClientAuth
                && c.cert_name
                    .as_ref()
                    .is_some_and(|n| verified.has_name(&san(n)))
        })
        .copied())
}

/// Whether `c` authenticates by certificate: a `tls_client_auth` credential, or a public
/// key with a registered `x5c`.
pub fn is_certificate(c: &Credential) -> bool {
    registered_certificate(c).is_some() || c.cert_name.is_some()
}

/// Whether a certificate matching `a` would match `b` too: the same `tls_client_auth`
/// name, the same registered self-signed certificate, or a registered certificate that
/// carries the other's `tls_client_auth` name (a CA-issued certificate pinned as `x5c`).
pub fn same_certificate(a: &Credential, b: &Credential) -> bool {
    let pinned_named = |x: &Credential, n: &Credential| {
        let (Some(cert), Some(name)) = (registered_certificate(x), n.cert_name.as_ref()) else {
            return false;
        };
        base64::engine::general_purpose::STANDARD
            .decode(cert)
            .is_ok_and(|der| client_cert::would_carry_name(&der, &san(name)))
    };
    (a.cert_name.is_some() && a.cert_name == b.cert_name)
        || registered_certificate(a).is_some_and(|x| Some(x) == registered_certificate(b))
        || pinned_named(a, b)
        || pinned_named(b, a)
}

/// The registered self-signed certificate of a public-key credential (`x5c[0]`, as
/// stored).
fn registered_certificate(c: &Credential) -> Option<&str> {
    if c.kind != CredentialKind::PublicKey {
        return None;
    }
    c.public_jwk.as_ref()?.get("x5c")?.get(0)?.as_str()
}

fn san(n: &CertName) -> SanName<'_> {
    match n {
        CertName::Dns(d) => SanName::Dns(d),
        CertName::Uri(u) => SanName::Uri(u),
        CertName::Ip(ip) => SanName::Ip(IpAddr::clone(ip)),
    }
}
