//! The request's query, read once: the pairs the templates read are the pairs the
//! upstream receives, re-encoded by one fixed encoder.
//!
//! - Pairs are split on `&` (never `;`), then on the first `=`; `+` is a space and
//!   `%XX` an escape (`application/x-www-form-urlencoded`), decoded once into UTF-8.
//!   A `%` not followed by two hex digits, or bytes that are not UTF-8, are refused
//!   ([`QueryError::Malformed`], 400 `ambiguous_query`): the upstream's decoder might
//!   read them otherwise. So is a decoded name holding a control character (`NUL`,
//!   `DEL`, …: [`QueryError::ControlInName`], 400 `ambiguous_query`): readers written
//!   in C, or that trim, cut such a name short (`access_token%00`). Empty pieces
//!   (`a=1&&b=2`) carry nothing and are dropped.
//! - A parameter a template reads (`{query.NAME}`) must appear at most once, names
//!   compared as [`super::name`] compares them (ignoring case; `ſ` is `s`, `K` is `k`)
//!   ([`QueryError::Repeated`], 400 `ambiguous_query`): a decision on the first copy
//!   says nothing about an upstream that takes the last, or that binds `ID` as `id`.
//!   Sent once, it must be spelled as the template spells it
//!   ([`QueryError::OtherCase`]), and no other name may be it followed by `[` or `.`
//!   (`id[]`, `id[0]`, `id[x]`, `id.x`: [`QueryError::Nested`], 400 `ambiguous_query`)
//!   — `qs` (Express), PHP and Rails read `?id=c1&id[]=secret` as `["c1","secret"]`.
//! - A parameter whose base name ([`super::name::base`]: before its first `[` or `.`)
//!   is `access_token`, compared the same way, is refused ([`QueryError::TokenInQuery`],
//!   400 `token_in_query`): the agent's token comes in the `Authorization` header only
//!   (RFC 6750 §2.3 discourages the query; the route's RFC 9728 metadata says
//!   `bearer_methods_supported: ["header"]`), and a token in a URL ends up in logs —
//!   refusing says so, where stripping it would hide it. PHP's reading of `access.token`
//!   and `access token` as `access_token` is covered too.
//! - A parameter whose base name is `_method` is refused ([`QueryError::MethodOverride`],
//!   400 `ambiguous_request`): Express's `method-override`, Rails (`Rack::MethodOverride`)
//!   and Laravel take it for the request's method, which was decided from the request
//!   line.
//! - The upstream receives the pairs in order, each name and value encoded with every
//!   byte but the unreserved characters as `%XX` (a space is `%20`, a `+` is `%2B`, a
//!   `;` is `%3B`), `=` only where the pair had one. So whatever the upstream's decoder
//!   (form or RFC 3986, `;` as a separator or not), it reads the values the decision read.

use std::fmt::Write as _;

use super::name::{self, Clash};
use super::percent;

/// Why a query is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A bad `%` escape or bytes that are not UTF-8.
    #[error("the query holds a `%` not followed by two hex digits, or bytes that are not UTF-8")]
    Malformed,
    /// A parameter the route reads appears more than once (names compared ignoring
    /// case).
    #[error(
        "query parameter `{0}` is read by the route and appears more than once \
         (names compared ignoring case)"
    )]
    Repeated(String),
    /// A parameter the route reads is sent in another case.
    #[error("query parameter `{sent}` is `{read}`, which the route reads, in another case")]
    OtherCase {
        /// The name the route reads.
        read: String,
        /// The name sent.
        sent: String,
    },
    /// A parameter is a read one followed by `[` or `.`.
    #[error(
        "query parameter `{sent}` is more of `{read}`, which the route reads, to readers of \
         array and object syntax (`qs`, PHP, Rails)"
    )]
    Nested {
        /// The name the route reads.
        read: String,
        /// The name sent.
        sent: String,
    },
    /// A decoded name holds a control character.
    #[error("a query parameter's name holds a control character")]
    ControlInName,
    /// The query holds `access_token` (in any case, or with `[…]`/`.…` after it).
    #[error("the access token goes in the `Authorization` header, not in the query")]
    TokenInQuery,
    /// The query holds `_method`.
    #[error("query parameter `{0}` asks the upstream for another method than the one decided")]
    MethodOverride(String),
}

impl QueryError {
    /// The stable code the gateway answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed
            | Self::Repeated(_)
            | Self::OtherCase { .. }
            | Self::Nested { .. }
            | Self::ControlInName => "ambiguous_query",
            Self::TokenInQuery => "token_in_query",
            Self::MethodOverride(_) => "ambiguous_request",
        }
    }
}

/// A query read into decoded pairs. Built only by [`Query::parse`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Name, and value when the pair had an `=`.
    pairs: Vec<(String, Option<String>)>,
}

impl Query {
    /// Reads the raw query (after `?`, still encoded).
    pub fn parse(raw: Option<&str>) -> Result<Self, QueryError> {
        let mut pairs = Vec::new();
        for piece in raw.unwrap_or_default().split('&') {
            if piece.is_empty() {
                continue;
            }
            let (k, v) = match piece.split_once('=') {
                Some((k, v)) => (decode(k)?, Some(decode(v)?)),
                None => (decode(piece)?, None),
            };
            if is_access_token(&k) {
                return Err(QueryError::TokenInQuery);
            }
            if k.chars().any(char::is_control) {
                return Err(QueryError::ControlInName);
            }
            if name::is_refused(&k, "_method") {
                return Err(QueryError::MethodOverride(k));
            }
            pairs.push((k, v));
        }
        Ok(Self { pairs })
    }

    /// Refuses when one of `names` appears more than once, in another case, or with
    /// array or object syntax after it.
    pub fn check_read<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), QueryError> {
        for n in names {
            match name::clash(n, self.pairs.iter().map(|(k, _)| k.as_str())) {
                None => {}
                Some(Clash::Repeated) => return Err(QueryError::Repeated(n.to_owned())),
                Some(Clash::OtherCase(sent)) => {
                    return Err(QueryError::OtherCase {
                        read: n.to_owned(),
                        sent: sent.to_owned(),
                    });
                }
                Some(Clash::Nested(sent)) => {
                    return Err(QueryError::Nested {
                        read: n.to_owned(),
                        sent: sent.to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The value of `name` (`""` for a pair without `=`); `None` when absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_deref().unwrap_or_default())
    }

    /// What the upstream receives: `""` or `?` and the re-encoded pairs.
    pub fn upstream(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            encode(k, &mut out);
            if let Some(v) = v {
                out.push('=');
                encode(v, &mut out);
            }
        }
        out
    }
}

/// Whether a reader could take parameter `name` for `access_token`: its base name
/// ([`name::base`]) is `access_token` but for case, or PHP's mangling (a space or `.`
/// read as `_`) makes it so.
fn is_access_token(name: &str) -> bool {
    name::is_refused(name, "access_token")
}

fn encode(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn decode(s: &str) -> Result<String, QueryError> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let Some(byte) = percent::unescape(&mut it) else {
                    return Err(QueryError::Malformed);
                };
                out.push(byte);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded_once_and_reencoded_one_way() {
        let q = Query::parse(Some("q=a+b%20c&flag&x=%2B%3B&&n%61me=caf%C3%A9")).expect("ok");
        assert_eq!(q.get("q"), Some("a b c"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("x"), Some("+;"));
        assert_eq!(q.get("name"), Some("café"));
        assert_eq!(q.get("nope"), None);
        assert_eq!(q.upstream(), "?q=a%20b%20c&flag&x=%2B%3B&name=caf%C3%A9");
        assert_eq!(Query::parse(None).expect("ok").upstream(), "");
        assert_eq!(Query::parse(Some("")).expect("ok").upstream(), "");
        // `;` is no separator: one pair, whose value holds it.
        assert_eq!(
            Query::parse(Some("a=1;a=2")).expect("ok").get("a"),
            Some("1;a=2")
        );
    }

    #[test]
    fn bad_escapes_repeats_and_tokens_are_refused() {
        for raw in ["a=%zz", "a=%2", "a=%ff", "%e9=1"] {
            assert_eq!(Query::parse(Some(raw)), Err(QueryError::Malformed), "{raw}");
        }
        for raw in ["access_token=x", "a=1&access%5Ftoken=x", "access_token"] {
            assert_eq!(
                Query::parse(Some(raw)),
                Err(QueryError::TokenInQuery),
                "{raw}"
            );
        }
        // Issue 18 follow-up 6 (3): any spelling a reader takes for `access_token`.
        for raw in [
            "Access_Token=x",
            "ACCESS_TOKEN=x",
            "access_token[]=x",
            "access_token[0]=x",
            "access_token.x=x",
            "access.token=x",
            "access+token=x",
            "acce%C5%BFs_token=x",
        ] {
            assert_eq!(
                Query::parse(Some(raw)),
                Err(QueryError::TokenInQuery),
                "{raw}"
            );
        }
        for raw in ["access_token%00=x", "a%00=1", "a%7F", "a%0A=1", "a%C2%85=1"] {
            assert_eq!(
                Query::parse(Some(raw)),
                Err(QueryError::ControlInName),
                "{raw}"
            );
        }
        assert!(
            Query::parse(Some("a=%00%0A")).is_ok(),
            "values may hold them"
        );
        assert!(Query::parse(Some("access_tokens=1&my_access_token=2")).is_ok());
        let q = Query::parse(Some("id=1&other=2&other=3&%69d=4")).expect("ok");
        assert_eq!(
            q.check_read(["other"]),
            Err(QueryError::Repeated("other".into()))
        );
        assert_eq!(q.check_read(["id"]), Err(QueryError::Repeated("id".into())));
        let q = Query::parse(Some("id=1&other=2&other=3")).expect("ok");
        assert_eq!(q.check_read(["id"]), Ok(()));
        let q = Query::parse(Some("id=1&ID=2&Other=3")).expect("ok");
        assert_eq!(q.check_read(["id"]), Err(QueryError::Repeated("id".into())));
        assert_eq!(
            q.check_read(["other"]),
            Err(QueryError::OtherCase {
                read: "other".into(),
                sent: "Other".into()
            })
        );
    }

    /// Issue 18 follow-up 6 (2): array and object syntax under a read name, and
    /// `_method` anywhere.
    #[test]
    fn nested_copies_of_a_read_name_and_method_overrides_are_refused() {
        for raw in [
            "id=c1&id[]=x",
            "id=c1&id[0]=x",
            "id=c1&id[x]=x",
            "id=c1&id.x=x",
        ] {
            let q = Query::parse(Some(raw)).expect("parses");
            assert!(
                matches!(q.check_read(["id"]), Err(QueryError::Nested { .. })),
                "{raw}"
            );
            assert_eq!(q.check_read(["other"]), Ok(()), "{raw}");
        }
        for raw in [
            "_method=DELETE",
            "_METHOD=x",
            "_method[]=x",
            "a=1&%5Fmethod=x",
        ] {
            let e = Query::parse(Some(raw)).expect_err(raw);
            assert!(matches!(e, QueryError::MethodOverride(_)), "{raw}");
            assert_eq!(e.code(), "ambiguous_request");
        }
    }
}
