//! RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value, so that
//! hashes and signatures over JSON do not depend on who serialized it or how.
//!
//! Members are sorted by the UTF-16 code units of their names, there is no whitespace,
//! strings escape only `"`, `\` and control characters, and numbers are written as
//! ECMAScript's `Number.prototype.toString` writes them.
//!
//! One deliberate difference from RFC 8785: an integer that `serde_json` holds as an
//! `i64`/`u64` is written exactly (RFC 8785 would round it through an IEEE double first).
//! The two agree for every integer of magnitude up to 2^53; beyond that JCS would change
//! the number, and an audit record must not.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{Number, Value};

/// The RFC 8785 canonical form of `v`, as UTF-8 bytes.
pub fn canonical_json(v: &Value) -> Vec<u8> {
    let mut out = String::new();
    write_canonical_json(&mut out, v);
    out.into_bytes()
}

/// Appends the RFC 8785 canonical form of `v` to `out` (the same bytes as
/// [`canonical_json`], written into a buffer the caller may reuse).
pub fn write_canonical_json(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

/// How many members an object may have to be sorted on the stack.
const STACK_MEMBERS: usize = 16;

fn write_object(out: &mut String, map: &serde_json::Map<String, Value>) {
    // RFC 8785 §3.2.3: sort by UTF-16 code units, not by UTF-8 bytes or chars
    // (they differ for characters above U+FFFF against U+E000..U+FFFF). Small objects
    // (all of an event's) are sorted on the stack; one already in order is not copied.
    let sorted = map
        .keys()
        .zip(map.keys().skip(1))
        .all(|(a, b)| utf16_cmp(a, b) == Ordering::Less);
    if sorted {
        write_members(out, map.iter());
    } else if map.len() <= STACK_MEMBERS {
        let mut members: [Option<(&String, &Value)>; STACK_MEMBERS] = [None; STACK_MEMBERS];
        for (slot, member) in members.iter_mut().zip(map.iter()) {
            *slot = Some(member);
        }
        let members = members.get_mut(..map.len()).unwrap_or_default();
        members.sort_unstable_by(|a, b| match (a, b) {
            (Some((a, _)), Some((b, _))) => utf16_cmp(a, b),
            _ => Ordering::Equal,
        });
        write_members(out, members.iter().flatten().copied());
    } else {
        let mut members: Vec<(&String, &Value)> = map.iter().collect();
        members.sort_unstable_by(|(a, _), (b, _)| utf16_cmp(a, b));
        write_members(out, members.into_iter());
    }
}

fn write_members<'a>(out: &mut String, members: impl Iterator<Item = (&'a String, &'a Value)>) {
    out.push('{');
    for (i, (name, value)) in members.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, name);
        out.push(':');
        write_canonical_json(out, value);
    }
    out.push('}');
}

/// Compares two strings by their UTF-16 code units (RFC 8785 §3.2.3).
///
/// UTF-8 byte order is code point order, and UTF-16 order differs from it only between a
/// character above U+FFFF (lead byte `F0`..`F4`) and one in U+E000..U+FFFF (lead byte
/// `EE` or `EF`). So where the first differing bytes are both below `EE` the bytes
/// decide; only otherwise are the strings re-encoded.
fn utf16_cmp(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).find(|(p, q)| p != q) {
        None => x.len().cmp(&y.len()),
        Some((&p, &q)) if p < 0xEE && q < 0xEE => p.cmp(&q),
        Some(_) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

/// RFC 8785 §3.2.2.2: escape `"`, `\` and U+0000..U+001F only; everything else is
/// written as its UTF-8 bytes.
///
/// Works on bytes: the bytes to escape are ASCII, and no byte of a multi-byte UTF-8
/// sequence is, so the runs between them are copied whole (and start and end on
/// character boundaries).
pub(crate) fn write_string(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push('"');
    let mut run = 0;
    // Eight bytes at a time: a word with nothing to escape (the common case) is skipped
    // whole; one with something is looked at byte by byte.
    let mut i = 0;
    while let Some(word) = bytes.get(i..i + 8) {
        // Always eight bytes; the fallback would only send the word the slow way.
        let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        if needs_escape(word) {
            for j in i..i + 8 {
                escape_byte(out, s, j, &mut run);
            }
        }
        i += 8;
    }
    // The last few bytes, padded to a word with bytes that need no escape.
    let mut last = [b'a'; 8];
    for (to, from) in last.iter_mut().zip(bytes.get(i..).unwrap_or_default()) {
        *to = *from;
    }
    if needs_escape(u64::from_le_bytes(last)) {
        for j in i..bytes.len() {
            escape_byte(out, s, j, &mut run);
        }
    }
    out.push_str(s.get(run..).unwrap_or_default());
    out.push('"');
}

/// Whether any of the eight bytes of `word` is `"`, `\` or below 0x20 (exact: these
/// are the "has a zero byte" and "has a byte less than n" word tricks, without false
/// positives or negatives for the yes/no answer).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    let has_control = word.wrapping_sub(ONES * 0x20) & !word & HIGH != 0;
    has_control
        || has_zero(word ^ (ONES * u64::from(b'"')))
        || has_zero(word ^ (ONES * u64::from(b'\\')))
}

/// Escapes byte `i` of `s` if it must be, first copying the unescaped run before it.
fn escape_byte(out: &mut String, s: &str, i: usize, run: &mut usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let Some(&b) = s.as_bytes().get(i) else {
        return;
    };
    let escape = match b {
        b'"' => "\\\"",
        b'\\' => "\\\\",
        0x08 => "\\b",
        b'\t' => "\\t",
        b'\n' => "\\n",
        0x0c => "\\f",
        b'\r' => "\\r",
        0x00..=0x1f => "",
        _ => return,
    };
    out.push_str(s.get(*run..i).unwrap_or_default());
    if escape.is_empty() {
        let hex = |nibble: u8| char::from(HEX.get(usize::from(nibble)).copied().unwrap_or(b'0'));
        out.push_str("\\u00");
        out.push(hex(b >> 4));
        out.push(hex(b & 0x0f));
    } else {
        out.push_str(escape);
    }
    *run = i + 1;
}

/// Appends the canonical text of a number.
pub(crate) fn write_number(out: &mut String, n: &Number) {
    // Writing to a `String` cannot fail.
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else {
        out.push_str(&number(n));
    }
}

/// The canonical text of a number (the verifier's scan checks numbers against it).
pub(crate) fn number(n: &Number) -> String {
    if let Some(u) = n.as_u64() {
        u.to_string()
    } else if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(f) = n.as_f64() {
        es_number(f)
    } else {
        // Not reachable without serde_json's `arbitrary_precision`; its text is the best
        // available answer then.
        n.to_string()
    }
}

/// ECMAScript `Number::toString(x)` (ECMA-262 §6.1.6.1.20) for a finite double.
///
/// The digits come from `serde_json`'s float formatting (Ryū): the shortest digit string
/// that round-trips, the closest one when several are that short, the even one on a tie —
/// the `s`, `k`, `n` of the ECMAScript algorithm. (Rust's own `{}` and `{:e}` round ties
/// up: 1424953923781206.25 prints as `…206.3`, where ECMAScript says `…206.2`.) Only the
/// layout rules are applied here.
fn es_number(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned(); // also -0
    }
    let Some(number) = Number::from_f64(x.abs()) else {
        return "null".to_owned(); // JSON.stringify's answer; serde_json cannot hold these
    };
    let sign = if x < 0.0 { "-" } else { "" };
    let text = number.to_string();
    let Some((digits, n)) = decimal_digits(&text) else {
        return format!("{sign}{text}");
    };
    let k = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    // x = 0.digits × 10^n = digits × 10^(n − k)
    let body = if k <= n && n <= 21 {
        let zeros = usize::try_from(n - k).unwrap_or(0);
        format!("{digits}{}", "0".repeat(zeros))
    } else if 0 < n && n <= 21 {
        let split = usize::try_from(n).unwrap_or(0);
        let (int, frac) = digits.split_at_checked(split).unwrap_or((&digits, ""));
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        let zeros = usize::try_from(-n).unwrap_or(0);
        format!("0.{}{digits}", "0".repeat(zeros))
    } else {
        let e = n - 1;
        let e_sign = if e < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at_checked(1).unwrap_or((&digits, ""));
        if rest.is_empty() {
            format!("{first}e{e_sign}{}", e.abs())
        } else {
            format!("{first}.{rest}e{e_sign}{}", e.abs())
        }
    };
    format!("{sign}{body}")
}

/// Reads a positive decimal such as `123.45`, `0.001`, `1e21` or `1.5e-7` as its
/// significant digits (no leading or trailing zeros) and `n` with value `0.digits × 10^n`.
fn decimal_digits(text: &str) -> Option<(String, i64)> {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !(int.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let all = format!("{int}{frac}");
    let significant = all.trim_start_matches('0');
    let leading = i64::try_from(all.len() - significant.len()).ok()?;
    let digits = significant.trim_end_matches('0');
    if digits.is_empty() {
        return None;
    }
    let n = i64::try_from(int.len()).ok()? + exponent - leading;
    Some((digits.to_owned(), n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::arb_json;
    use proptest::prelude::*;
    use serde_json::json;

    fn canon(text: &str) -> String {
        let v: Value = serde_json::from_str(text).unwrap();
        String::from_utf8(canonical_json(&v)).unwrap()
    }

    // RFC 8785 §3.2.2 (the combined example).
    #[test]
    fn rfc8785_main_example() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        assert_eq!(
            canon(input),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    // RFC 8785 §3.2.3 (sorting by UTF-16 code units).
    #[test]
    fn rfc8785_sorting_example() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        assert_eq!(
            canon(input),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
             \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
    }

    // RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical text.
    #[test]
    fn rfc8785_appendix_b_numbers() {
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for &(bits, want) in cases {
            let f = f64::from_bits(bits);
            assert_eq!(es_number(f), want, "{bits:016x}");
            let v = Value::Number(Number::from_f64(f).unwrap());
            assert_eq!(canonical_json(&v), want.as_bytes(), "{bits:016x}");
        }
    }

    #[test]
    fn integers_and_layout() {
        let v = json!({"b": [1, -2, 18446744073709551615u64, i64::MIN, 1.0, 0.5, 1e-7, 123e-20],
                       "a": {"z": null, "": {}}, "c": []});
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"a":{"":{},"z":null},"b":[1,-2,18446744073709551615,-9223372036854775808,1,0.5,1e-7,1.23e-18],"c":[]}"#
        );
    }

    #[test]
    fn needs_escape_is_exact() {
        for b in 0..=u8::MAX {
            let want = b < 0x20 || b == b'"' || b == b'\\';
            for at in 0..8 {
                for fill in [b'a', 0x80, 0xff, 0x21, 0x5d] {
                    let mut word = [fill; 8];
                    word[at] = b;
                    assert_eq!(
                        needs_escape(u64::from_le_bytes(word)),
                        want,
                        "{b:#x} at {at}"
                    );
                }
            }
        }
    }

    #[test]
    fn string_escapes() {
        let s: String = (0u8..0x20)
            .map(char::from)
            .chain("\"\\/\u{7f}\u{2028}é".chars())
            .collect();
        let out = String::from_utf8(canonical_json(&Value::String(s))).unwrap();
        assert_eq!(
            out,
            "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\
             \\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\
             \\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\\"\\\\/\u{7f}\u{2028}é\""
        );
    }

    proptest! {
        // The canonical form is JSON that parses back to a value with the same canonical
        // form: the verifier re-canonicalizes what the server exported.
        #[test]
        fn canonical_is_a_fixed_point(v in arb_json()) {
            let once = canonical_json(&v);
            let parsed: Value = serde_json::from_slice(&once).unwrap();
            prop_assert_eq!(canonical_json(&parsed), once);
        }

        // Floats keep their value through the canonical text, and the digits are the
        // shortest that do (Rust's `{:e}` is shortest too; it differs only on ties).
        #[test]
        fn floats_round_trip(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
            let text = es_number(f);
            let back: f64 = text.parse().unwrap();
            prop_assert!(back == f, "{} -> {} -> {}", f, text, back);
            if f != 0.0 {
                let (ours, _) = decimal_digits(text.trim_start_matches('-')).unwrap();
                let (rusts, _) = decimal_digits(&format!("{:e}", f.abs())).unwrap();
                prop_assert_eq!(ours.len(), rusts.len());
            }
            let parsed: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(parsed.as_f64(), Some(if f == 0.0 { 0.0 } else { f }));
        }

        // serde_json escapes strings exactly as RFC 8785 does, so it can check ours.
        #[test]
        fn strings_as_serde_json_writes_them(
            s in any::<String>(),
            t in "[\"\\\\\u{0}-\u{1f}a-z\u{7f}é]{0,12}",
        ) {
            for s in [s, t] {
                let ours = canonical_json(&Value::String(s.clone()));
                prop_assert_eq!(ours, serde_json::to_vec(&s).unwrap());
            }
        }

        // Any serialization of a value has the same canonical form.
        #[test]
        fn serializer_independent(v in arb_json()) {
            let pretty: Value = serde_json::from_str(&serde_json::to_string_pretty(&v).unwrap()).unwrap();
            prop_assert_eq!(canonical_json(&pretty), canonical_json(&v));
        }
    }
}
