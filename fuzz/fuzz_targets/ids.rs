//! The id and enum parsers on arbitrary UTF-8: never panic; an accepted id prints back
//! to exactly its input and survives a JSON round trip; at most one id kind accepts it.
#![no_main]

use std::fmt::Display;
use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use mandate_core::admin::Role;
use mandate_core::agent::AgentStatus;
use mandate_core::credential::CredentialKind;
use mandate_core::id::{AdminTokenId, AgentId, CredentialId, TokenId};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Checks one id kind on `s`; returns whether it was accepted.
fn check<T, E>(s: &str, parse: fn(&str) -> Result<T, E>) -> bool
where
    T: Display + FromStr + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let by_fromstr = s.parse::<T>().ok();
    // A JSON string holding `s` must be accepted exactly when `s` is.
    let as_json = serde_json::to_string(s).unwrap_or_default();
    let by_serde = serde_json::from_str::<T>(&as_json).ok();
    let Ok(id) = parse(s) else {
        assert!(by_fromstr.is_none() && by_serde.is_none(), "{s:?}");
        return false;
    };
    assert_eq!(id.to_string(), s);
    assert_eq!(by_fromstr.as_ref(), Some(&id));
    assert_eq!(by_serde.as_ref(), Some(&id));
    let json = serde_json::to_string(&id).unwrap_or_default();
    assert_eq!(json, as_json);
    assert_eq!(serde_json::from_str::<T>(&json).ok(), Some(id));
    true
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let accepted = [
        check(s, AgentId::parse),
        check(s, CredentialId::parse),
        check(s, AdminTokenId::parse),
        check(s, TokenId::parse),
    ];
    assert!(
        accepted.iter().filter(|a| **a).count() <= 1,
        "{s:?} is several kinds of id"
    );

    if let Some(v) = AgentStatus::parse(s) {
        assert_eq!(v.as_str(), s);
        assert_eq!(v.to_string(), s);
    }
    if let Some(v) = CredentialKind::parse(s) {
        assert_eq!(v.as_str(), s);
    }
    if let Some(v) = Role::parse(s) {
        assert_eq!(v.as_str(), s);
    }
});
