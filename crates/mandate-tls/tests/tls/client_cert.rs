//! `verify_client_chain` (RFC 8705 §2.1 in the application layer): a chain of the
//! configured CA is accepted and its subjectAltNames compared; another CA, a
//! self-signed leaf, an expired or not-yet-valid leaf, a server-only leaf, no chain or
//! garbage are refused, each with its stable code.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mandate_tls::client_cert::{ChainError, ClientCa, SanName, verify_client_chain};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, UnixTime};

use super::{Ca, ca};

/// 2026-06-01, inside the default rcgen validity and the explicit ones below.
fn now() -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(1_780_272_000))
}

fn der(pem: &str) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject as _;
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// A client certificate signed by `ca` with SANs `dns`, `uri` and `127.0.0.7`.
fn client(ca: &Ca, years: (i32, i32), eku: ExtendedKeyUsagePurpose) -> CertificateDer<'static> {
    let mut p = CertificateParams::new(vec!["agent.example".to_owned()]).unwrap();
    p.subject_alt_names
        .push(SanType::URI("spiffe://example/agent".try_into().unwrap()));
    p.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7))));
    p.distinguished_name
        .push(DnType::CommonName, "not-a-san.example");
    p.not_before = rcgen::date_time_ymd(years.0, 1, 1);
    p.not_after = rcgen::date_time_ymd(years.1, 12, 31);
    p.extended_key_usages = vec![eku];
    let key = KeyPair::generate().unwrap();
    der(&p.signed_by(&key, &ca.issuer).unwrap().pem())
}

#[test]
fn a_chain_of_the_client_ca_is_verified_and_its_names_compared() {
    let good = ca("client ca");
    let anchors = ClientCa::from_certificates(&[der(&good.pem)]).unwrap();
    let chain = [client(
        &good,
        (2025, 2027),
        ExtendedKeyUsagePurpose::ClientAuth,
    )];
    let v = verify_client_chain(&anchors, &chain, now()).unwrap();
    assert!(v.has_name(&SanName::Dns("agent.example")));
    assert!(v.has_name(&SanName::Dns("AGENT.example")));
    assert!(v.has_name(&SanName::Uri("spiffe://example/agent")));
    assert!(v.has_name(&SanName::Ip(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7)))));
    // The subject CN is never a name; nor a near miss.
    for n in [
        SanName::Dns("not-a-san.example"),
        SanName::Dns("other.example"),
        SanName::Dns("*.example"),
        SanName::Uri("spiffe://example/agent/"),
        SanName::Ip(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 8))),
    ] {
        assert!(!v.has_name(&n), "{n:?}");
    }
}

#[test]
fn every_bad_chain_is_refused_with_its_code() {
    let good = ca("client ca");
    let other = ca("another ca");
    let anchors = ClientCa::from_certificates(&[der(&good.pem)]).unwrap();
    let self_signed = {
        let key = KeyPair::generate().unwrap();
        let p = CertificateParams::new(vec!["agent.example".to_owned()]).unwrap();
        der(&p.self_signed(&key).unwrap().pem())
    };
    let cases: Vec<(&str, Vec<CertificateDer<'static>>, ChainError)> = vec![
        ("no chain", vec![], ChainError::Missing),
        (
            "garbage",
            vec![CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])],
            ChainError::Malformed,
        ),
        (
            "another CA",
            vec![client(
                &other,
                (2025, 2027),
                ExtendedKeyUsagePurpose::ClientAuth,
            )],
            ChainError::Untrusted,
        ),
        ("self-signed", vec![self_signed], ChainError::Untrusted),
        ("the CA itself", vec![der(&good.pem)], ChainError::Untrusted),
        (
            "expired",
            vec![client(
                &good,
                (2020, 2025),
                ExtendedKeyUsagePurpose::ClientAuth,
            )],
            ChainError::Expired,
        ),
        (
            "not yet valid",
            vec![client(
                &good,
                (2027, 2028),
                ExtendedKeyUsagePurpose::ClientAuth,
            )],
            ChainError::NotValidYet,
        ),
        (
            "server-only usage",
            vec![client(
                &good,
                (2025, 2027),
                ExtendedKeyUsagePurpose::ServerAuth,
            )],
            ChainError::WrongUsage,
        ),
    ];
    for (case, chain, want) in cases {
        let got = verify_client_chain(&anchors, &chain, now())
            .map(|_| ())
            .unwrap_err();
        assert_eq!(got, want, "{case}");
        assert!(got.code().starts_with("client_certificate_"), "{case}");
    }
}

#[test]
fn a_client_ca_bundle_must_hold_usable_cas() {
    assert!(ClientCa::from_certificates(&[]).is_err());
    let e = ClientCa::from_certificates(&[CertificateDer::from(vec![1, 2, 3])]).unwrap_err();
    assert!(e.contains("certificate 1"), "{e}");
}
