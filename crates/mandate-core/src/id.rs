//! Prefixed ULID identifiers (`agt_01J…`): sortable by creation time, unguessable.
//!
//! INVARIANT (ids): a value of an id type always holds its prefix followed by 26
//! uppercase Crockford base32 characters whose first is `0`..=`7` (128 bits).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::clock::Clock;
use crate::random::{Random, RandomError, random_bytes};

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A ULID: 48-bit millisecond timestamp then 80 random bits, as 26 base32 characters.
pub fn new_ulid(clock: &dyn Clock, random: &dyn Random) -> Result<String, RandomError> {
    let rand: [u8; 10] = random_bytes(random)?;
    let ms = u128::from(u64::try_from(clock.now_millis()).unwrap_or(0) & 0xFFFF_FFFF_FFFF);
    let value = rand.iter().fold(ms, |acc, b| (acc << 8) | u128::from(*b));
    Ok(encode_ulid(value))
}

fn encode_ulid(value: u128) -> String {
    (0..26)
        .rev()
        .map(|i| {
            let idx = usize::try_from((value >> (i * 5)) & 0x1F).unwrap_or(0);
            char::from(CROCKFORD.get(idx).copied().unwrap_or(b'0'))
        })
        .collect()
}

fn is_ulid(s: &str) -> bool {
    s.len() == 26
        && s.bytes().all(|b| CROCKFORD.contains(&b))
        && s.as_bytes()
            .first()
            .is_some_and(|b| (b'0'..=b'7').contains(b))
}

/// A string that is not a valid id of the expected kind.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {kind} id `{value}`")]
pub struct IdError {
    kind: &'static str,
    value: String,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id.
            pub fn generate(clock: &dyn Clock, random: &dyn Random) -> Result<Self, RandomError> {
                Ok(Self(format!("{}{}", $prefix, new_ulid(clock, random)?)))
            }

            /// Checks and wraps an id read from outside.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                match s.strip_prefix($prefix) {
                    Some(rest) if is_ulid(rest) => Ok(Self(s.to_owned())),
                    _ => Err(IdError { kind: $kind, value: s.chars().take(64).collect() }),
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// An agent: `agt_` + ULID. Doubles as the agent's OAuth `client_id`.
    AgentId, "agt_", "agent"
);
prefixed_id!(
    /// A credential of an agent: `crd_` + ULID.
    CredentialId, "crd_", "credential"
);
prefixed_id!(
    /// An admin token's public handle: `adm_` + ULID (never the secret itself).
    AdminTokenId, "adm_", "admin token"
);
prefixed_id!(
    /// An access token's `jti`: `tok_` + ULID.
    TokenId, "tok_", "token"
);
prefixed_id!(
    /// A mandate (a task-scoped grant): `mdt_` + ULID.
    MandateId, "mdt_", "mandate"
);
prefixed_id!(
    /// An anomaly the detector raised: `anm_` + ULID.
    AnomalyId, "anm_", "anomaly"
);
prefixed_id!(
    /// An incident: one `contain` of an agent and the bundle it wrote, `inc_` + ULID.
    IncidentId, "inc_", "incident"
);
prefixed_id!(
    /// An access review campaign (issue 24): `rev_` + ULID.
    ReviewId, "rev_", "review"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use proptest::prelude::*;

    struct Fixed(u8);
    impl Random for Fixed {
        fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
            buf.fill(self.0);
            Ok(())
        }
    }

    #[test]
    fn ulid_layout() {
        let id = AgentId::generate(&ManualClock::at_millis(0), &Fixed(0)).unwrap();
        assert_eq!(id.as_str(), "agt_00000000000000000000000000");
        let id = AgentId::generate(&ManualClock::at_millis(1), &Fixed(0xFF)).unwrap();
        assert_eq!(id.as_str(), "agt_0000000001ZZZZZZZZZZZZZZZZ");
        assert!(
            AgentId::parse("agt_8ZZZZZZZZZZZZZZZZZZZZZZZZZ").is_err(),
            "over 128 bits"
        );
        assert!(AgentId::parse("crd_00000000000000000000000000").is_err());
        assert!(AgentId::parse("agt_0000000000000000000000000I").is_err());
    }

    proptest! {
        #[test]
        fn generated_ids_parse(ms in 0i64..(1 << 48), byte in any::<u8>()) {
            let id = CredentialId::generate(&ManualClock::at_millis(ms), &Fixed(byte)).unwrap();
            prop_assert_eq!(CredentialId::parse(id.as_str()), Ok(id.clone()));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = AgentId::parse(&s);
        }
    }
}
