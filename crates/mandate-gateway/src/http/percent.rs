//! Percent-escapes (RFC 3986 §2.1), read one way by the path and the query: a `%` and
//! exactly two hex digits, of either case — anything else is no escape, and the
//! reader refuses it.

/// The byte the escape after a `%` stands for, taking its two digits from `rest`;
/// `None` when they are not two hex digits.
pub fn unescape(rest: &mut impl Iterator<Item = u8>) -> Option<u8> {
    let high = hex(rest.next()?)?;
    let low = hex(rest.next()?)?;
    Some((high << 4) | low)
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hex_digits_or_nothing() {
        for (digits, byte) in [("2f", 0x2f), ("2F", 0x2f), ("00", 0), ("ff", 0xff)] {
            assert_eq!(unescape(&mut digits.bytes()), Some(byte), "{digits}");
        }
        for bad in ["", "2", "g0", "0g", "+1", " 1"] {
            assert_eq!(unescape(&mut bad.bytes()), None, "{bad}");
        }
        let mut rest = "41x".bytes();
        assert_eq!(unescape(&mut rest), Some(b'A'));
        assert_eq!(rest.next(), Some(b'x'), "only two digits are taken");
    }
}
