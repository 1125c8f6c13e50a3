//! When a name the request sends is, to some upstream, a name the decision read:
//! equal but for case, or the read name with array or object syntax after it.
//!
//! Case-insensitive binders are common — ASP.NET Core's model binding, Jackson with
//! `ACCEPT_CASE_INSENSITIVE_PROPERTIES`, Go's `encoding/json`, many form readers — so
//! `?id=mine&ID=victim` or `{"amount":1,"Amount":1e6}` carries a second copy of the
//! read name that such an upstream may take. The gateway refuses it rather than guess
//! which copy is bound.
//!
//! # Which names are one name
//!
//! A name a template reads is ASCII (`HttpConfig::validate`), so what matters is which
//! sent names an upstream could take for an ASCII one. Names are compared after
//! [`fold`]: each character upper-cased and then lower-cased (Rust's full mappings).
//! That is ASCII case folding, and beyond ASCII it reaches an ASCII letter from:
//!
//! - U+017F LONG S (`s`) and U+212A KELVIN SIGN (`k`): the only code points outside
//!   ASCII whose *simple* case folding (Unicode `CaseFolding.txt`, status C and S) is
//!   an ASCII letter — what Go's `encoding/json` (`bytes.EqualFold`) and any reader
//!   folding one code point at a time bind, so `{"ta\u017fk":…}` is `task` to Go;
//! - U+0131 DOTLESS I (`i`): upper-cased it is `I`, which is how Java's
//!   `equalsIgnoreCase` and .NET's `OrdinalIgnoreCase` compare;
//! - U+00DF `ß` and the ligatures U+FB00–FB06 (`ff`, `fi`, `fl`, `ffi`, `ffl`, `st`):
//!   their *full* case folding (`CaseFolding.txt` status F; Python's `casefold`, ICU)
//!   is ASCII.
//!
//! The rule asked for is the first line (ASCII folding, `ſ`→`s`, `K`→`k`); the fold
//! here is that and more, on purpose: being stricter than an upstream only refuses more.
//!
//! # PHP's rewriting of names
//!
//! PHP files a parameter under a rewritten name ([`php`]): leading spaces dropped, and
//! ` `, `.` and an unclosed `[` turned into `_`. To a PHP upstream `?id=c1&%20id=secret`
//! is `id=secret`, and `user.id` is `user_id` (adversarial pass 2 after issue 18). Two
//! names are one when they fold equal as sent *or* as PHP files them.
//!
//! # Array and object syntax
//!
//! `qs` (Express), PHP, Rails and Rack read `id[]=x`, `id[0]=x`, `id[k]=x` — and `qs`
//! with `allowDots`, `id.k=x` — as more of `id`: `?id=c1&id[]=secret` is decided on
//! `c1` and read upstream as `["c1","secret"]`. A sent name that is a read one followed
//! by `[` or `.` is therefore another copy of it ([`nests_under`]). For the same reason
//! a name's *base* — what comes before its first `[` or `.` ([`base`]) — is what is
//! compared with the names the gateway refuses outright (`access_token`, `_method`).

/// How the sent names clash with a read one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clash<'a> {
    /// The read name is sent more than once (counting every spelling).
    Repeated,
    /// Sent once, but spelled otherwise than the name read.
    OtherCase(&'a str),
    /// A sent name is the read one with array or object syntax after it (`id[]`,
    /// `id[0]`, `id.x`).
    Nested(&'a str),
}

/// `name` as the comparisons here see it: each character upper-cased, then
/// lower-cased (see the module doc for what that reaches).
pub fn fold(name: &str) -> String {
    if name.is_ascii() {
        return name.to_ascii_lowercase();
    }
    name.chars()
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .collect()
}

/// `name` as PHP files it in `$_GET`/`$_POST` (`php_register_variable_ex`): leading
/// spaces dropped, then — before a `[` that a `]` closes, which starts array syntax —
/// every ` `, `.` and unclosed `[` turned into `_`. So `%20id`, `user.id`, `user id`
/// (also `user+id`) and `user[id` are `id` and `user_id` to a PHP upstream.
pub fn php(name: &str) -> String {
    let name = name.trim_start_matches(' ');
    let array = name
        .find('[')
        .filter(|&at| name.get(at..).is_some_and(|rest| rest.contains(']')));
    let (head, tail) = name.split_at(array.unwrap_or(name.len()));
    head.chars()
        .map(|c| if matches!(c, ' ' | '.' | '[') { '_' } else { c })
        .chain(tail.chars())
        .collect()
}

/// Whether `a` and `b` are one name to a case-insensitive reader, or to PHP ([`php`]).
pub fn same_name(a: &str, b: &str) -> bool {
    folded_equal(a, b) || folded_equal(&php(a), &php(b))
}

fn folded_equal(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    fold(a) == fold(b)
}

/// Whether `sent` is, to some upstream, the name `refused` (`access_token`, `_method`):
/// its [`base`] is, as sent or as PHP files it.
pub fn is_refused(sent: &str, refused: &str) -> bool {
    same_name(base(sent), refused) || same_name(base(&php(sent)), refused)
}

/// What comes before the first `[` or `.` of `name` (all of it when it has neither).
pub fn base(name: &str) -> &str {
    name.split(['[', '.']).next().unwrap_or(name)
}

/// Whether `sent` is `read` (folded) followed by `[` or `.`: array or object syntax
/// that `qs`, PHP or Rails read as more of `read`.
pub fn nests_under(read: &str, sent: &str) -> bool {
    let nests = |read: &str, sent: &str| {
        fold(sent)
            .strip_prefix(&fold(read))
            .is_some_and(|rest| rest.starts_with(['[', '.']))
    };
    nests(read, sent) || nests(&php(read), &php(sent))
}

/// How `sent` clashes with `read`, if it does: `None` when `read` is sent at most once,
/// then spelled exactly so, and no sent name nests under it.
pub fn clash<'a>(read: &str, sent: impl IntoIterator<Item = &'a str>) -> Option<Clash<'a>> {
    let mut found = None;
    for s in sent {
        if same_name(read, s) {
            if found.is_some() {
                return Some(Clash::Repeated);
            }
            found = Some(s);
        } else if nests_under(read, s) {
            return Some(Clash::Nested(s));
        }
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
        assert!(same_name("task", "ta\u{17F}k"));
        assert!(same_name("id", "\u{131}d"));
        assert!(!same_name("id", "idx"));
        assert_eq!(clash("id", ["id", "x"]), None);
        assert_eq!(clash("id", ["x"]), None);
        assert_eq!(clash("id", ["id", "ID"]), Some(Clash::Repeated));
        assert_eq!(clash("id", ["id", "id"]), Some(Clash::Repeated));
        assert_eq!(clash("id", ["Id"]), Some(Clash::OtherCase("Id")));
        assert_eq!(
            clash("task", ["ta\u{17F}k"]),
            Some(Clash::OtherCase("ta\u{17F}k"))
        );
        assert_eq!(
            clash("k", ["k", "\u{212A}"]),
            Some(Clash::Repeated),
            "the Kelvin sign is `k`"
        );
    }

    /// Adversarial pass 2: PHP files `%20id` as `id` and `user.id`, `user id`,
    /// `user[id` as `user_id`, so each is another copy of the read name.
    #[test]
    fn names_php_rewrites_into_a_read_one_clash() {
        for (read, sent) in [
            ("id", " id"),
            ("user_id", "user.id"),
            ("user_id", "user id"),
            ("user_id", "user[id"),
            ("user_id", " user_id"),
        ] {
            assert!(same_name(read, sent), "{read} ~ {sent}");
            assert_eq!(clash(read, [read, sent]), Some(Clash::Repeated), "{sent}");
        }
        assert!(nests_under("id", " id[]"));
        assert_eq!(php("a[b]c.d"), "a[b]c.d", "array syntax is kept");
        assert!(!same_name("user_id", "userid"));
        assert!(is_refused(" _method", "_method"));
        assert!(is_refused("access.token", "access_token"));
        assert!(is_refused(" access_token[x]", "access_token"));
    }

    /// Issue 18 follow-up 6 (2): `?id=c1&id[]=secret` is `id=["c1","secret"]` to `qs`,
    /// PHP and Rails.
    #[test]
    fn array_and_object_syntax_under_a_read_name_clashes() {
        for sent in [
            "id[]",
            "id[0]",
            "id[x]",
            "id.x",
            "ID[]",
            "\u{131}d.x",
            "id[",
        ] {
            assert_eq!(
                clash("id", ["id", sent]),
                Some(Clash::Nested(sent)),
                "{sent}"
            );
            assert_eq!(clash("id", [sent]), Some(Clash::Nested(sent)), "{sent}");
        }
        for unrelated in ["idx[]", "i[d]", "x.id", "ids"] {
            assert_eq!(clash("id", ["id", unrelated]), None, "{unrelated}");
        }
        assert_eq!(base("access_token[]"), "access_token");
        assert_eq!(base("a.b[c]"), "a");
        assert_eq!(base("plain"), "plain");
    }
}
