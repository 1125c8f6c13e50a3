//! Integer members of request bodies, read as JSON numbers: `5` and `5.0` alike (the
//! API's wire types and an agent's boundary read through here).
//!
//! RFC 8259 has one number type, and JSON Schema counts `5.0` as an `integer`; many
//! clients (JavaScript's numbers, Python's floats through `json.dumps`) write a whole
//! number with a fraction. serde's `u32` refuses any number written with one, so a
//! request the document allows was refused. These readers take a number whose value is
//! a whole number in the target's range, however it is written, and refuse every other
//! value exactly as before: a fraction (`5.5`), a negative number, one out of range.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// The largest integer an `f64` holds exactly (2^53): beyond it a float names no one
/// integer, so it is refused rather than rounded.
const EXACT_F64: f64 = 9_007_199_254_740_992.0;

struct Whole<T>(PhantomData<T>);

impl<T: TryFrom<u64>> Whole<T> {
    fn in_range<E: de::Error>(v: u64) -> Result<T, E> {
        T::try_from(v)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &"an integer in range"))
    }
}

impl<T: TryFrom<u64>> Visitor<'_> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Self::in_range(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        let v = u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))?;
        Self::in_range(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        // INVARIANT (whole numbers only): a value with a fraction, a negative one, or
        // one a float cannot hold exactly is refused; `5.0` reads as 5, nothing rounds.
        if v.fract() != 0.0 || !(0.0..=EXACT_F64).contains(&v) {
            return Err(E::invalid_value(de::Unexpected::Float(v), &self));
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a whole number in 0..=2^53, checked above"
        )]
        Self::in_range(v as u64)
    }
}

/// Reads a non-negative integer member, written with or without a zero fraction.
///
/// # Errors
///
/// A value that is not a number, has a fraction, or is out of `T`'s range.
pub fn whole<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(Whole(PhantomData))
}

/// [`whole`] for an optional member (`null` or absent: `None`, with `#[serde(default)]`).
///
/// # Errors
///
/// As [`whole`], for a value that is not `null`.
pub fn optional<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<Option<T>, D::Error> {
    struct Opt<T>(PhantomData<T>);
    impl<'de, T: TryFrom<u64>> Visitor<'de> for Opt<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative integer or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            whole(d).map(Some)
        }
    }
    d.deserialize_option(Opt(PhantomData))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::optional")]
        n: Option<u32>,
    }

    fn read(json: &str) -> Result<Option<u32>, String> {
        serde_json::from_str::<Body>(json)
            .map(|b| b.n)
            .map_err(|e| e.to_string())
    }

    /// Regression (issue 25, schemathesis `positive_data_acceptance`): `5.0` is an
    /// integer to RFC 8259 and JSON Schema, and was refused with "invalid type:
    /// floating point `5.0`, expected u32".
    #[test]
    fn a_whole_number_written_with_a_fraction_is_read() {
        assert_eq!(read(r#"{"n": 5.0}"#), Ok(Some(5)));
        assert_eq!(read(r#"{"n": 8618.0}"#), Ok(Some(8618)));
        assert_eq!(read(r#"{"n": 5}"#), Ok(Some(5)));
        assert_eq!(read(r#"{"n": 0}"#), Ok(Some(0)));
        assert_eq!(read(r#"{"n": 5e2}"#), Ok(Some(500)));
        assert_eq!(read(r#"{"n": 4294967295}"#), Ok(Some(u32::MAX)));
        assert_eq!(read(r#"{"n": null}"#), Ok(None));
        assert_eq!(read("{}"), Ok(None));
    }

    #[test]
    fn every_other_number_is_refused_as_before() {
        for bad in [
            r#"{"n": 5.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": -1.0}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": 4294967296.0}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": "5"}"#,
            r#"{"n": true}"#,
        ] {
            assert!(read(bad).is_err(), "{bad} was read");
        }
    }

    /// Regression (issue 25): `PATCH /v1/agents/{id}` refused a boundary whose
    /// `max_token_lifetime_secs` was `69821.0`.
    #[test]
    fn a_boundary_lifetime_written_with_a_fraction_is_read() {
        let b: crate::agent::Boundary =
            serde_json::from_str(r#"{"max_token_lifetime_secs": 600.0}"#).unwrap();
        assert_eq!(b.max_token_lifetime_secs, Some(600));
        assert!(
            serde_json::from_str::<crate::agent::Boundary>(r#"{"max_token_lifetime_secs": 0.5}"#)
                .is_err()
        );
    }
}
