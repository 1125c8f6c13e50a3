//! When a name the request sends is, to some upstream, a name the decision read:
//! equal but for case.
//!
//! Case-insensitive binders are common — ASP.NET Core's model binding, Jackson with
//! `ACCEPT_CASE_INSENSITIVE_PROPERTIES`, many form readers — so `?id=mine&ID=victim`
//! or `{"amount":1,"Amount":1e6}` carries a second copy of the read name that such an
//! upstream may take. The gateway refuses it rather than guess which copy is bound.
//!
//! Names are compared as Java's `equalsIgnoreCase` compares them: character by
//! character, upper-cased and then lower-cased. For ASCII that is ASCII case folding;
//! beyond it, U+212A KELVIN SIGN is `k` and U+017F LONG S is `s`, as they are to
//! Java's and .NET's case-insensitive comparisons. Being stricter than an upstream
//! only refuses more.

/// How the sent names clash with a read one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clash<'a> {
    /// The read name is sent more than once (counting every spelling).
    Repeated,
    /// Sent once, but spelled otherwise than the name read.
    OtherCase(&'a str),
}

/// Whether `a` and `b` are one name to a case-insensitive reader.
pub fn same_name(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    let fold = |s: &str| {
        s.chars()
            .flat_map(char::to_uppercase)
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    fold(a) == fold(b)
}

/// How `sent` clashes with `read`, if it does: `None` when `read` is sent at most once
/// and then spelled exactly so.
pub fn clash<'a>(read: &str, sent: impl IntoIterator<Item = &'a str>) -> Option<Clash<'a>> {
    let mut found = None;
    for s in sent.into_iter().filter(|s| same_name(read, s)) {
        if found.is_some() {
            return Some(Clash::Repeated);
        }
        found = Some(s);
    }
    found.filter(|s| *s != read).map(Clash::OtherCase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_equal_but_for_case_clash() {
        assert!(same_name("id", "ID"));
        assert!(same_name("kind", "\u{212A}ind"));
        assert!(same_name("sid", "\u{17F}id"));
        assert!(!same_name("id", "idx"));
        assert_eq!(clash("id", ["id", "x"]), None);
        assert_eq!(clash("id", ["x"]), None);
        assert_eq!(clash("id", ["id", "ID"]), Some(Clash::Repeated));
        assert_eq!(clash("id", ["id", "id"]), Some(Clash::Repeated));
        assert_eq!(clash("id", ["Id"]), Some(Clash::OtherCase("Id")));
    }
}
