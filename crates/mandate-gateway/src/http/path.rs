//! The one canonical form of a request path: what the HTTP gateway matches a route on,
//! decides on, records, and forwards — computed once, from the path as sent.
//!
//! A gateway that decides on one reading of a path and forwards another can be walked
//! past its own decision (`/crm/contacts/%2e%2e/%2e%2e/billing/…` decided as a CRM
//! contact, received upstream as a billing call). So the path is read exactly once,
//! here, into a [`CanonicalPath`]; a route is picked on it ([`CanonicalPath::route`]),
//! which yields a [`RoutedPath`], the only thing the forwarder can build an upstream
//! path from ([`RoutedPath::upstream_path`]). Neither type can be built any other way.
//!
//! # The canonical form
//!
//! 1. The path (without its query) is split on `/`. Each segment is checked raw — only
//!    RFC 3986 `pchar`s: unreserved characters, sub-delims, `:`, `@` and `%XX`
//!    escapes; a raw `\`, space, `"`, `{`, non-ASCII byte … is refused — then
//!    percent-decoded exactly once into UTF-8 text.
//! 2. Dot segments are removed as RFC 3986 §5.2.4 removes them, after decoding, so
//!    `%2e%2e`, `.%2e` and `%2E%2E` are `..` and `%2e` is `.`. A final `.` or `..`
//!    leaves a trailing slash (`/a/b/..` is `/a/`).
//! 3. The route is the longest configured prefix of the resulting segments.
//!
//! Refused, as [`PathError`] (the gateway answers 400 `ambiguous_path` and decides
//! nothing), because two honest readers could take the path to mean two things:
//!
//! - an encoded `/` (`%2F`): one segment to us, two to an upstream that decodes first;
//! - `\`, raw or `%5C`: a separator to some servers (IIS, anything on Windows);
//! - NUL and every other control character (C0, DEL, C1), raw or encoded: C strings
//!   end at NUL, logs and headers split at CR/LF;
//! - a `%` not followed by two hex digits, and bytes that do not decode to UTF-8;
//! - empty segments (`//`): merged by some servers, kept by others;
//! - a `..` that would climb above `/` (RFC 3986 says ignore it; we do not guess);
//! - a path whose dot segments change its route or climb into its route's prefix
//!   (`/crm/../billing/x`, `/crm/x/../../crm/y`, `/crm/admin/../x` when `/crm/admin`
//!   is a route): read without dot-segment removal it names another route, or it
//!   leaves the prefix whose credential it would carry.
//!
//! # Trailing slash
//!
//! Kept as sent: `/crm/contacts/` is forwarded as `{upstream}/contacts/`, `/crm/contacts`
//! as `{upstream}/contacts` (APIs differ on whether the two are the same resource, so
//! the gateway does not merge them). `{path}` shows it (`contacts/`; at the route's root,
//! `/crm` and `/crm/` both give an empty `{path}`); `{path.N}` counts only the segments,
//! so both give `{path.0}` = `contacts`.
//!
//! # What the upstream receives
//!
//! The route's upstream base, then the decided segments below the prefix, each
//! re-encoded by one fixed encoder ([`encode_segment`]): unreserved characters and
//! `! $ & ' ( ) * , = : @` as they are, every other character (`%`, `;`, `+`, space,
//! `?`, `#`, non-ASCII …) as `%XX` escapes of its UTF-8 bytes, upper-case hex. So the
//! upstream's path is a function of the decided segments alone: `/crm/contacts/%73ecret`
//! and `/crm/contacts/secret` are both decided and forwarded as `contacts/secret`, and
//! `%252e%252e` is the text `%2e%2e`, forwarded as `%252e%252e` (decoded once, never
//! twice). `;` is always escaped, so a servlet container's path parameters
//! (`secret;x`) cannot make the upstream read a shorter name than the one decided.
//! Canonicalizing the upstream form again gives the same segments (a fixed point;
//! property-tested and fuzzed).
//!
//! Not handled here: an upstream that applies Unicode compatibility normalisation
//! (NFKC) or case folding to paths can still read `／` as `/` or `SECRET` as `secret`;
//! such an upstream needs policies written for that, or should not sit behind the gateway.

use std::fmt::Write as _;

use super::percent;

/// Why a path is refused (the gateway's 400 `ambiguous_path`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/` (an asterisk-form or empty request target).
    #[error("the path does not start with `/`")]
    NotAbsolute,
    /// A character that a URI path may not hold unencoded.
    #[error("the path holds `{0}` unencoded, which a URI path may not")]
    RawCharacter(char),
    /// `%` not followed by two hex digits.
    #[error("the path holds a `%` that is not followed by two hex digits")]
    InvalidEscape,
    /// The decoded bytes are not UTF-8.
    #[error("the path does not decode to UTF-8")]
    NotUtf8,
    /// `%2F`: a `/` inside a segment.
    #[error("the path holds an encoded `/` (`%2F`)")]
    EncodedSlash,
    /// `\`, raw or `%5C`.
    #[error("the path holds a `\\`")]
    Backslash,
    /// NUL or another control character.
    #[error("the path holds a control character")]
    ControlCharacter,
    /// `//`.
    #[error("the path holds an empty segment (`//`)")]
    EmptySegment,
    /// A `..` with nothing left to remove.
    #[error("the path's `..` segments climb above `/`")]
    AboveRoot,
    /// Dot segments change the route or climb into its prefix.
    #[error("the path's dot segments leave or change its route")]
    LeavesRoute,
}

/// A request path in its one canonical form: decoded segments, dot segments removed.
/// Built only by [`CanonicalPath::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath {
    /// The segments after dot-segment removal, decoded; none empty, none `.` or `..`,
    /// none holding `/`, `\` or a control character.
    segments: Vec<String>,
    /// Whether the path ends with `/` (or with a dot segment, RFC 3986 §5.2.4).
    trailing_slash: bool,
    /// The segments as sent, decoded, dot segments still in (how a reader that does
    /// not remove dot segments would route the path).
    literal: Vec<String>,
    /// The fewest segments left right after a `..` removed one (`None`: no `..`).
    low_water: Option<usize>,
    /// The path as sent, for the record only.
    raw: String,
}

impl CanonicalPath {
    /// Reads `raw` (a request target's path, still percent-encoded, without its query)
    /// into its canonical form, or says why it is ambiguous.
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
        let mut segments: Vec<String> = Vec::new();
        let mut literal = Vec::new();
        let mut low_water: Option<usize> = None;
        let mut trailing_slash = false;
        if !rest.is_empty() {
            let mut pieces = rest.split('/').peekable();
            while let Some(piece) = pieces.next() {
                let last = pieces.peek().is_none();
                if piece.is_empty() {
                    if last {
                        trailing_slash = true;
                        break;
                    }
                    return Err(PathError::EmptySegment);
                }
                let text = decode_segment(piece)?;
                match text.as_str() {
                    "." => trailing_slash = last,
                    ".." => {
                        if segments.pop().is_none() {
                            return Err(PathError::AboveRoot);
                        }
                        low_water =
                            Some(low_water.map_or(segments.len(), |l| l.min(segments.len())));
                        trailing_slash = last;
                    }
                    _ => {
                        segments.push(text.clone());
                        trailing_slash = false;
                    }
                }
                literal.push(text);
            }
        }
        // The root is `/`, however it was reached (`/`, `/a/..`).
        if segments.is_empty() {
            trailing_slash = false;
        }
        // INVARIANT (canonical path): no segment is empty, `.` or `..`, or holds `/`, `\`
        // or a control character; `decode_segment` refused the rest above.
        Ok(Self {
            segments,
            trailing_slash,
            literal,
            low_water,
            raw: raw.to_owned(),
        })
    }

    /// The decoded segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Whether the path ends with `/`.
    pub fn trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// The path in canonical form, re-encoded by [`encode_segment`]: what
    /// [`CanonicalPath::parse`] returns the same segments for.
    pub fn encoded(&self) -> String {
        if self.segments.is_empty() {
            return "/".to_owned();
        }
        encode_path(&self.segments, self.trailing_slash)
    }

    /// Picks the route: the longest of `prefixes` (each `/a/b`, checked by
    /// [`check_prefix`]) that the canonical segments start with, returning its index and
    /// the path below it. `Ok(None)`: no prefix matches. Refused
    /// ([`PathError::LeavesRoute`]) when the dot segments decide the route: read as
    /// sent, without removing them, the path names another route (or none), or a `..`
    /// removed a segment of the chosen prefix.
    pub fn route<'p>(
        self,
        prefixes: impl IntoIterator<Item = &'p str>,
    ) -> Result<Option<(usize, RoutedPath)>, PathError> {
        let mut canonical: Option<(usize, usize, &'p str)> = None;
        let mut literal: Option<(usize, usize)> = None;
        for (i, prefix) in prefixes.into_iter().enumerate() {
            let names: Vec<&str> = prefix_segments(prefix).collect();
            let n = names.len();
            if starts_with(&self.segments, &names) && canonical.is_none_or(|(_, m, _)| n > m) {
                canonical = Some((i, n, prefix));
            }
            if starts_with(&self.literal, &names) && literal.is_none_or(|(_, m)| n > m) {
                literal = Some((i, n));
            }
        }
        if canonical.map(|(i, _, _)| i) != literal.map(|(i, _)| i) {
            return Err(PathError::LeavesRoute);
        }
        let Some((index, depth, prefix)) = canonical else {
            return Ok(None);
        };
        if self.low_water.is_some_and(|l| l < depth) {
            return Err(PathError::LeavesRoute);
        }
        // INVARIANT (below the prefix): the route's prefix segments were never removed
        // by a `..`, and the rest is what follows them in the canonical path, so the
        // upstream path built from it stays below the route's upstream base.
        let rest = self.segments.get(depth..).unwrap_or_default().to_vec();
        Ok(Some((
            index,
            RoutedPath {
                prefix: prefix.to_owned(),
                rest,
                trailing_slash: self.trailing_slash,
                raw: self.raw,
            },
        )))
    }
}

/// A canonical path below the prefix of the route it was matched to. Built only by
/// [`CanonicalPath::route`]; the forwarder takes the upstream path from it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedPath {
    prefix: String,
    rest: Vec<String>,
    trailing_slash: bool,
    raw: String,
}

impl RoutedPath {
    /// The decoded segments below the prefix (`{path.N}`).
    pub fn segments(&self) -> &[String] {
        &self.rest
    }

    /// The decoded path below the prefix without its leading `/`, with a trailing `/`
    /// when the path has one below the prefix (`{path}`; empty at the route's root,
    /// `/crm` or `/crm/`). Unambiguous: no segment holds a `/`.
    pub fn text(&self) -> String {
        let mut s = self.rest.join("/");
        if self.trailing_slash && !self.rest.is_empty() {
            s.push('/');
        }
        s
    }

    /// What goes after the route's upstream base: `""`, `/` or `/seg/…[/]`, each
    /// segment re-encoded by [`encode_segment`].
    pub fn upstream_path(&self) -> String {
        encode_path(&self.rest, self.trailing_slash)
    }

    /// The whole canonical path, prefix included, as the gateway's own URL path (the
    /// record's `via.path`).
    pub fn canonical(&self) -> String {
        format!("{}{}", self.prefix, self.upstream_path())
    }

    /// The path exactly as sent (for the record; never forwarded).
    pub fn raw(&self) -> &str {
        &self.raw
    }
}

/// Whether `prefix` is a route prefix the canonical form can match: `/` then one or
/// more non-empty segments of unreserved characters, sub-delims, `:` and `@` (no `%`,
/// no `.` or `..` segment, no trailing `/`) — its own canonical form.
pub fn check_prefix(prefix: &str) -> bool {
    prefix.starts_with('/')
        && prefix_segments(prefix).all(|s| {
            !s.is_empty() && s != "." && s != ".." && s.bytes().all(|b| is_pchar(b) && b != b'%')
        })
}

/// One segment's text in the upstream form: unreserved characters (RFC 3986 §2.3) and
/// `! $ & ' ( ) * , = : @` kept, every other byte of the UTF-8 text as `%XX`.
pub fn encode_segment(text: &str, out: &mut String) {
    for b in text.bytes() {
        if is_unreserved(b) || b"!$&'()*,=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn encode_path(segments: &[String], trailing_slash: bool) -> String {
    let mut out = String::new();
    for s in segments {
        out.push('/');
        encode_segment(s, &mut out);
    }
    if trailing_slash {
        out.push('/');
    }
    out
}

fn prefix_segments(prefix: &str) -> std::str::Split<'_, char> {
    prefix.strip_prefix('/').unwrap_or(prefix).split('/')
}

fn starts_with(segments: &[String], names: &[&str]) -> bool {
    segments.len() >= names.len() && segments.iter().zip(names).all(|(s, n)| s == n)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `pchar`, with `%` standing for the start of an escape.
fn is_pchar(b: u8) -> bool {
    is_unreserved(b) || b"!$&'()*+,;=:@%".contains(&b)
}

/// Checks one raw segment and decodes it once.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut it = raw.bytes();
    while let Some(b) = it.next() {
        match b {
            b'%' => {
                let Some(byte) = percent::unescape(&mut it) else {
                    return Err(PathError::InvalidEscape);
                };
                bytes.push(byte);
            }
            b'\\' => return Err(PathError::Backslash),
            b if b.is_ascii_control() => return Err(PathError::ControlCharacter),
            b if is_pchar(b) => bytes.push(b),
            b if b.is_ascii() => return Err(PathError::RawCharacter(char::from(b))),
            _ => {
                let c = raw.chars().find(|c| !c.is_ascii()).unwrap_or('\u{fffd}');
                return Err(PathError::RawCharacter(c));
            }
        }
    }
    let text = String::from_utf8(bytes).map_err(|_| PathError::NotUtf8)?;
    for c in text.chars() {
        match c {
            '/' => return Err(PathError::EncodedSlash),
            '\\' => return Err(PathError::Backslash),
            c if c.is_control() => return Err(PathError::ControlCharacter),
            _ => {}
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(raw: &str, prefixes: &[&str]) -> Result<Option<(usize, String, String)>, PathError> {
        let p = CanonicalPath::parse(raw)?;
        Ok(p.route(prefixes.iter().copied())?
            .map(|(i, r)| (i, r.text(), r.upstream_path())))
    }

    #[test]
    fn dot_segments_are_removed_after_decoding() {
        for (raw, segs, slash) in [
            ("/a/b/../c", vec!["a", "c"], false),
            ("/a/%2e%2E/c", vec!["c"], false),
            ("/a/.%2e/c", vec!["c"], false),
            ("/a/%2e/c", vec!["a", "c"], false),
            ("/a/b/..", vec!["a"], true),
            ("/a/..", vec![], false),
            ("/a/b/.", vec!["a", "b"], true),
            ("/a/b/", vec!["a", "b"], true),
            ("/a/...", vec!["a", "..."], false),
            ("/", vec![], false),
        ] {
            let p = CanonicalPath::parse(raw).expect(raw);
            assert_eq!(p.segments(), segs.as_slice(), "{raw}");
            assert_eq!(p.trailing_slash(), slash, "{raw}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for (raw, e) in [
            ("a/b", PathError::NotAbsolute),
            ("/a%2Fb", PathError::EncodedSlash),
            ("/a%2fb", PathError::EncodedSlash),
            ("/a%5Cb", PathError::Backslash),
            ("/a\\b", PathError::Backslash),
            ("/a%00", PathError::ControlCharacter),
            ("/a%0d%0a", PathError::ControlCharacter),
            ("/a%C2%85", PathError::ControlCharacter),
            ("/a%zz", PathError::InvalidEscape),
            ("/a%2", PathError::InvalidEscape),
            ("/a%ff", PathError::NotUtf8),
            ("/a//b", PathError::EmptySegment),
            ("/a//", PathError::EmptySegment),
            ("//", PathError::EmptySegment),
            ("/..", PathError::AboveRoot),
            ("/a/../..", PathError::AboveRoot),
            ("/a b", PathError::RawCharacter(' ')),
            ("/caf\u{e9}", PathError::RawCharacter('\u{e9}')),
            ("/a{b}", PathError::RawCharacter('{')),
        ] {
            assert_eq!(CanonicalPath::parse(raw), Err(e), "{raw}");
        }
    }

    #[test]
    fn the_route_is_picked_on_the_canonical_path_and_dots_may_not_change_it() {
        let prefixes = ["/crm", "/billing", "/crm/admin"];
        assert_eq!(
            routed("/crm/contacts/x/../secret", &prefixes),
            Ok(Some((
                0,
                "contacts/secret".into(),
                "/contacts/secret".into()
            )))
        );
        assert_eq!(
            routed("/crm/admin/x", &prefixes).map(|r| r.map(|(i, ..)| i)),
            Ok(Some(2))
        );
        for raw in [
            "/crm/../billing/x",
            "/crm/contacts/%2e%2e/%2e%2e/billing/invoices/i1",
            "/crm/x/../../crm/y",
            "/crm/admin/../x",
            "/crm/x/../admin/y",
            "/crm/..",
            "/./crm/x",
        ] {
            assert_eq!(routed(raw, &prefixes), Err(PathError::LeavesRoute), "{raw}");
        }
        assert_eq!(routed("/nowhere/x", &prefixes), Ok(None));
        assert_eq!(routed("/crmx", &prefixes), Ok(None));
        assert_eq!(
            routed("/crm", &prefixes),
            Ok(Some((0, String::new(), String::new())))
        );
        assert_eq!(
            routed("/crm/", &prefixes),
            Ok(Some((0, String::new(), "/".into())))
        );
    }

    #[test]
    fn the_upstream_form_is_one_fixed_encoding_and_a_fixed_point() {
        let r = |raw: &str| {
            CanonicalPath::parse(raw)
                .expect(raw)
                .route(["/p"])
                .expect(raw)
                .expect(raw)
                .1
        };
        assert_eq!(r("/p/%73ecret").upstream_path(), "/secret");
        assert_eq!(r("/p/a;b+c").upstream_path(), "/a%3Bb%2Bc");
        assert_eq!(r("/p/%252e%252e").text(), "%2e%2e");
        assert_eq!(r("/p/%252e%252e").upstream_path(), "/%252e%252e");
        assert_eq!(r("/p/caf%c3%a9").upstream_path(), "/caf%C3%A9");
        assert_eq!(r("/p/a:b@c!$&'()*,=").upstream_path(), "/a:b@c!$&'()*,=");
        assert_eq!(r("/p/%3F%23%20").upstream_path(), "/%3F%23%20");
        assert_eq!(r("/p/x/%2e%2e/y").canonical(), "/p/y");
        let p = CanonicalPath::parse("/p/a%20b/%2e/c%3b").expect("parses");
        let again = CanonicalPath::parse(&p.encoded()).expect("re-parses");
        assert_eq!(again.segments(), p.segments());
    }

    proptest::proptest! {
        /// Whatever is accepted reads back, re-encoded, to the same segments; a routed
        /// path is its prefix and then its own segments, and its upstream form reads
        /// back to exactly those (the fuzz target `gateway_path` checks the same on
        /// arbitrary input).
        #[test]
        fn the_canonical_form_is_a_fixed_point(
            raw in "(/|/|\\.|%|2e|2E|2f|5c|00|25|c3|a9|[a-f0-9]|crm|admin|;|\\\\|é|:|@|\\+|~)*"
        ) {
            let raw = format!("/{raw}");
            let Ok(p) = CanonicalPath::parse(&raw) else {
                return Ok(());
            };
            let again = CanonicalPath::parse(&p.encoded());
            proptest::prop_assert_eq!(again.as_ref().map(CanonicalPath::segments), Ok(p.segments()));
            let whole = p.segments().to_vec();
            if let Ok(Some((i, r))) = p.route(["/crm", "/crm/admin"]) {
                let depth = i + 1;
                proptest::prop_assert_eq!(whole.get(depth..), Some(r.segments()));
                let up = CanonicalPath::parse(&format!("/base{}", r.upstream_path()));
                proptest::prop_assert_eq!(
                    up.as_ref().map(|u| u.segments().get(1..).unwrap_or_default()),
                    Ok(r.segments())
                );
            }
        }
    }

    #[test]
    fn prefixes_must_be_canonical() {
        for ok in ["/crm", "/crm/admin", "/a-b_c~d"] {
            assert!(check_prefix(ok), "{ok}");
        }
        for bad in [
            "crm", "/", "/crm/", "/a//b", "/a/../b", "/%63rm", "/a b", "/./a",
        ] {
            assert!(!check_prefix(bad), "{bad}");
        }
    }
}
