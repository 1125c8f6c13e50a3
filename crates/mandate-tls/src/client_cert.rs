//! Client certificates checked in the application layer: RFC 8705 §2.1
//! (`tls_client_auth`, PKI mutual TLS).
//!
//! The listeners accept any client certificate chain whose leaf key the client holds
//! (`server::ClientAuth::Optional`, `mandate_http::conn::Peer`), so that one listener
//! serves self-signed certificates (RFC 8705 §2.2, compared by thumbprint) and
//! certificates of a CA alike. Whoever relies on a chain as a CA-issued identity calls
//! [`verify_client_chain`] first: rustls' own path builder (`rustls-webpki`), with the
//! same signature algorithms as the TLS layer (`ring`), and the client-authentication
//! extended key usage (required if the leaf names usages at all).
//!
//! INVARIANT (a chain proves nothing until verified): a chain is a client identity only
//! after [`verify_client_chain`] returned `Ok` for it at the current time, against the
//! CA bundle configured for this purpose — never against the system's roots (a public
//! CA cannot stand in for a private one), and the names compared ([`Verified::has_name`])
//! are those of the verified leaf alone.

use std::net::IpAddr;
use std::path::Path;

use rustls::pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use crate::TlsError;

/// The CA certificates client chains are verified against (`client_ca_file`).
#[derive(Debug, Clone)]
pub struct ClientCa {
    anchors: Vec<TrustAnchor<'static>>,
}

impl ClientCa {
    /// The CAs of the PEM bundle at `path` (setting `key`); every certificate must be
    /// usable as a trust anchor (none is silently left out), and there must be one.
    pub fn load(key: &'static str, path: &Path) -> Result<Self, TlsError> {
        let certs = crate::certificates(key, path)?;
        Self::from_certificates(&certs).map_err(|what| TlsError::Pem {
            key,
            path: path.to_owned(),
            what,
        })
    }

    /// The CAs of `certs` (DER); an error names the first certificate that is not a
    /// usable CA certificate.
    ///
    /// INVARIANT (an anchor is a CA): every anchor is a certificate whose
    /// basicConstraints say `cA` TRUE (RFC 5280 §4.2.1.9: a conforming CA certificate
    /// carries it). `webpki::anchor_from_trusted_cert` takes any certificate, and a
    /// client's own certificate taken as an anchor would let the holder of its key issue
    /// certificates of any name.
    pub fn from_certificates(certs: &[CertificateDer<'_>]) -> Result<Self, String> {
        if certs.is_empty() {
            return Err("holds no CA certificate".to_owned());
        }
        let anchors = certs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                match says_ca(c) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(format!(
                            "certificate {} is not a CA certificate (no basicConstraints \
                             with cA TRUE): a client's own certificate cannot be a client CA",
                            i + 1
                        ));
                    }
                    Err(e) => {
                        return Err(format!(
                            "certificate {} is not a usable CA certificate ({e})",
                            i + 1
                        ));
                    }
                }
                webpki::anchor_from_trusted_cert(c)
                    .map(|a| a.to_owned())
                    .map_err(|e| {
                        format!("certificate {} is not a usable CA certificate ({e})", i + 1)
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { anchors })
    }
}

/// Whether certificate `cert` says it is a CA: its basicConstraints extension
/// (2.5.29.19) with `cA` TRUE (RFC 5280 §4.1, §4.2.1.9). Reads the TBS certificate's
/// fields up to its extensions and nothing else (no signature, no dates).
fn says_ca(cert: &CertificateDer<'_>) -> der::Result<bool> {
    use der::asn1::{AnyRef, OctetStringRef};
    use der::{Decode as _, Reader as _, SliceReader, Tag, TagNumber, Tagged as _};
    const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    let explicit = |number| Tag::ContextSpecific {
        constructed: true,
        number,
    };
    /// Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }:
    /// whether it is basicConstraints saying `cA` TRUE.
    fn extension<'a, R: der::Reader<'a>>(ext: &mut R) -> der::Result<bool> {
        let id = AnyRef::decode(ext)?;
        if ext.peek_tag()? == Tag::Boolean {
            bool::decode(ext)?;
        }
        let value = OctetStringRef::decode(ext)?;
        if id.tag() != Tag::ObjectIdentifier || id.value() != BASIC_CONSTRAINTS {
            return Ok(false);
        }
        // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLen OPTIONAL }.
        let mut bc = SliceReader::new(value.as_bytes())?;
        let ca = bc.sequence(|c| {
            let ca = !c.is_finished() && c.peek_tag()? == Tag::Boolean && bool::decode(c)?;
            let rest = c.remaining_len();
            c.read_slice(rest)?;
            Ok(ca)
        })?;
        bc.finish(ca)
    }
    let mut reader = SliceReader::new(cert.as_ref())?;
    let ca = reader.sequence(|certificate| {
        let ca = certificate.sequence(|tbs| {
            if tbs.peek_tag()? == explicit(TagNumber::N0) {
                AnyRef::decode(tbs)?; // version
            }
            // serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
            for _ in 0..6 {
                AnyRef::decode(tbs)?;
            }
            let mut ca = false;
            // issuerUniqueID [1], subjectUniqueID [2], extensions [3]
            while !tbs.is_finished() {
                let field = AnyRef::decode(tbs)?;
                if field.tag() != explicit(TagNumber::N3) {
                    continue;
                }
                let mut list = SliceReader::new(field.value())?;
                let found = list.sequence(|exts| {
                    let mut found = false;
                    while !exts.is_finished() {
                        found |= exts.sequence(extension)?;
                    }
                    Ok(found)
                })?;
                ca = list.finish(found)?;
            }
            Ok(ca)
        })?;
        let rest = certificate.remaining_len();
        certificate.read_slice(rest)?;
        Ok(ca)
    })?;
    reader.finish(ca)
}

/// Why a client chain is not an identity. Each has a stable [`ChainError::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// No certificate was presented.
    #[error("no client certificate was presented")]
    Missing,
    /// A certificate does not parse.
    #[error("the client certificate does not parse")]
    Malformed,
    /// The leaf (or a certificate of its chain) is past its `notAfter`.
    #[error("the client certificate has expired")]
    Expired,
    /// The leaf (or a certificate of its chain) is before its `notBefore`.
    #[error("the client certificate is not valid yet")]
    NotValidYet,
    /// No path leads from the leaf to a configured CA (another CA, self-signed, a bad
    /// signature).
    #[error("the client certificate does not chain to the configured client CA")]
    Untrusted,
    /// The leaf's extended key usage excludes client authentication.
    #[error("the client certificate is not for client authentication")]
    WrongUsage,
    /// Any other reason the path is refused (constraints, unsupported algorithm, …).
    #[error("the client certificate chain is invalid")]
    Invalid,
}

impl ChainError {
    /// The stable reason code (audit log, `error_description`).
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "client_certificate_missing",
            Self::Malformed => "client_certificate_malformed",
            Self::Expired => "client_certificate_expired",
            Self::NotValidYet => "client_certificate_not_yet_valid",
            Self::Untrusted => "client_certificate_untrusted",
            Self::WrongUsage => "client_certificate_wrong_usage",
            Self::Invalid => "client_certificate_invalid",
        }
    }
}

/// A chain [`verify_client_chain`] accepted: its leaf, whose names may be compared.
pub struct Verified<'a> {
    leaf: EndEntityCert<'a>,
}

impl std::fmt::Debug for Verified<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified").finish_non_exhaustive()
    }
}

/// A name a `tls_client_auth` credential expects in the leaf's subjectAltName
/// (RFC 8705 §2.1.2: `tls_client_auth_san_dns`, `_san_uri`, `_san_ip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SanName<'n> {
    /// A dNSName entry, compared case-insensitively and literally (a wildcard entry
    /// matches only the same wildcard text).
    Dns(&'n str),
    /// A uniformResourceIdentifier entry, compared exactly.
    Uri(&'n str),
    /// An iPAddress entry.
    Ip(IpAddr),
}

impl Verified<'_> {
    /// Whether the verified leaf carries `name` in its subjectAltName (never its
    /// subject common name).
    pub fn has_name(&self, name: &SanName<'_>) -> bool {
        leaf_has_name(&self.leaf, name)
    }
}

fn leaf_has_name(leaf: &EndEntityCert<'_>, name: &SanName<'_>) -> bool {
    match name {
        SanName::Dns(d) => leaf.valid_dns_names().any(|n| n.eq_ignore_ascii_case(d)),
        SanName::Uri(u) => leaf.valid_uri_names().any(|n| n == *u),
        SanName::Ip(ip) => leaf
            .verify_is_valid_for_subject_name(&ServerName::IpAddress((*ip).into()))
            .is_ok(),
    }
}

/// Whether certificate `der` carries `name` in its subjectAltName, as
/// [`Verified::has_name`] compares — WITHOUT verifying anything: not an identity
/// (`INVARIANT (a chain proves nothing until verified)`), only for refusing to register
/// one certificate on two agents. `false` when it does not parse.
pub fn would_carry_name(der: &[u8], name: &SanName<'_>) -> bool {
    let der = CertificateDer::from(der);
    EndEntityCert::try_from(&der).is_ok_and(|leaf| leaf_has_name(&leaf, name))
}

/// Verifies a client `chain` (leaf first, as presented in the handshake) against `ca`
/// at `now`: a path from the leaf through the presented intermediates to one of the
/// CAs, every certificate within its validity period, signatures with the algorithms
/// of the TLS layer, the client-authentication usage. No revocation check (no CRLs are
/// configured); see docs/tokens.md.
pub fn verify_client_chain<'a>(
    ca: &ClientCa,
    chain: &'a [CertificateDer<'a>],
    now: UnixTime,
) -> Result<Verified<'a>, ChainError> {
    let (leaf, intermediates) = chain.split_first().ok_or(ChainError::Missing)?;
    let leaf = EndEntityCert::try_from(leaf).map_err(|_| ChainError::Malformed)?;
    let algs = crate::provider().signature_verification_algorithms.all;
    leaf.verify_for_usage(
        algs,
        &ca.anchors,
        intermediates,
        now,
        KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(|e| match e {
        webpki::Error::CertExpired { .. } => ChainError::Expired,
        webpki::Error::CertNotValidYet { .. } => ChainError::NotValidYet,
        webpki::Error::UnknownIssuer
        | webpki::Error::InvalidSignatureForPublicKey
        | webpki::Error::CaUsedAsEndEntity => ChainError::Untrusted,
        #[expect(deprecated, reason = "webpki still returns the old variant in places")]
        webpki::Error::RequiredEkuNotFound | webpki::Error::RequiredEkuNotFoundContext(_) => {
            ChainError::WrongUsage
        }
        webpki::Error::BadDer | webpki::Error::BadDerTime | webpki::Error::TrailingData(_) => {
            ChainError::Malformed
        }
        _ => ChainError::Invalid,
    })?;
    Ok(Verified { leaf })
}

/// The SubjectPublicKeyInfo (DER, outer SEQUENCE included) of certificate `der`;
/// `Malformed` when it is not a certificate webpki parses. Nothing else is checked
/// (dates, signature, usages): for comparing a registered self-signed certificate's key
/// with the JWK registered beside it (RFC 7517 §4.7).
pub fn certificate_spki(der: &[u8]) -> Result<Vec<u8>, ChainError> {
    let der = CertificateDer::from(der);
    let cert = EndEntityCert::try_from(&der).map_err(|_| ChainError::Malformed)?;
    Ok(cert.subject_public_key_info().as_ref().to_vec())
}
