//! Agents: a non-human identity with an accountable owner, a purpose, labels, a boundary
//! and a lifecycle status.
//!
//! Checked values (`AgentName`, `Owner`, `Labels`, `Boundary`) can only be built through
//! validating constructors, including when deserialized, so an invalid one cannot exist.
//!
//! A node keeps every agent in memory (the decision snapshot), so the text values are
//! stored compactly: boxed strings that never grow, labels packed into one allocation,
//! boundary vectors trimmed to their length.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::AgentId;
use crate::time::Timestamp;

/// A value that breaks a field's rule; the message names the rule.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid {field}: {message}")]
pub struct ValidationError {
    /// The field, as the API names it.
    pub field: &'static str,
    /// What is wrong, in lowercase.
    pub message: String,
}

pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field,
        message: message.into(),
    }
}

pub(crate) fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// An agent's display name: 1–64 of `A-Za-z0-9._-`, starting with a letter or digit;
/// unique among agents.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgentName(Box<str>);

impl TryFrom<String> for AgentName {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, ValidationError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if s.len() > 64 || !first_ok || !s.chars().all(ok_char) {
            return Err(invalid(
                "name",
                "must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit",
            ));
        }
        Ok(Self(s.into_boxed_str()))
    }
}

impl From<AgentName> for String {
    fn from(v: AgentName) -> String {
        v.0.into_string()
    }
}

impl AgentName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The accountable human: an email address or directory user name (1–254 printable
/// characters, no whitespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Owner(Box<str>);

impl TryFrom<String> for Owner {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, ValidationError> {
        if s.is_empty()
            || s.chars().count() > 254
            || !printable(&s)
            || s.chars().any(char::is_whitespace)
        {
            return Err(invalid(
                "owner",
                "must be a person's email or user name: 1-254 characters, no whitespace",
            ));
        }
        Ok(Self(s.into_boxed_str()))
    }
}

impl From<Owner> for String {
    fn from(v: Owner) -> String {
        v.0.into_string()
    }
}

impl Owner {
    /// The owner as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text saying what the agent is for (at most 1,000 characters, newlines allowed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Purpose(Box<str>);

impl TryFrom<String> for Purpose {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, ValidationError> {
        if s.chars().count() > 1000 || s.chars().any(|c| c.is_control() && c != '\n') {
            return Err(invalid(
                "purpose",
                "must be at most 1000 characters of text",
            ));
        }
        Ok(Self(s.into_boxed_str()))
    }
}

impl From<Purpose> for String {
    fn from(v: Purpose) -> String {
        v.0.into_string()
    }
}

impl Purpose {
    /// The purpose as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Key/value labels for inventory and filtering: at most 32; keys 1–63 of
/// `a-z0-9._/-` starting with a letter or digit; values at most 128 printable characters.
///
/// Serialized as a JSON object (`{"team":"sales"}`), keys in order.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>")]
pub struct Labels(
    /// Every key and value, each followed by a NUL, pairs sorted by key: one allocation
    /// instead of a B-tree node and two strings per label.
    ///
    /// INVARIANT (labels): keys are `a-z0-9._/-` and values printable, so neither holds
    /// a NUL; the text is `key\0value\0` repeated, keys unique and ascending. Two
    /// `Labels` are equal exactly when their maps are.
    Box<str>,
);

/// Checks a label key (also used by list filters).
pub fn check_label_key(k: &str) -> Result<(), ValidationError> {
    let ok_char = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '/' | '-')
    };
    let first_ok = k.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if k.len() > 63 || !first_ok || !k.chars().all(ok_char) {
        return Err(invalid(
            "labels",
            format!(
                "label key `{}` must be 1-63 characters of a-z 0-9 . _ / -",
                k.escape_debug()
            ),
        ));
    }
    Ok(())
}

impl TryFrom<BTreeMap<String, String>> for Labels {
    type Error = ValidationError;
    fn try_from(m: BTreeMap<String, String>) -> Result<Self, ValidationError> {
        if m.len() > 32 {
            return Err(invalid("labels", "at most 32 labels"));
        }
        for (k, v) in &m {
            check_label_key(k)?;
            if v.chars().count() > 128 || !printable(v) {
                return Err(invalid(
                    "labels",
                    format!("label `{k}` value must be at most 128 printable characters"),
                ));
            }
        }
        // INVARIANT (labels): checked above (a NUL is a control character, so not
        // printable); a `BTreeMap` iterates its unique keys in ascending order.
        let len = m.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
        let mut packed = String::with_capacity(len);
        for (k, v) in &m {
            packed.push_str(k);
            packed.push('\0');
            packed.push_str(v);
            packed.push('\0');
        }
        Ok(Self(packed.into_boxed_str()))
    }
}

impl From<Labels> for BTreeMap<String, String> {
    fn from(v: Labels) -> Self {
        v.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

impl Labels {
    /// The labels, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        // Relies on INVARIANT (labels): fields alternate key, value, each NUL-terminated.
        let mut fields = self.0.split_terminator('\0');
        std::iter::from_fn(move || Some((fields.next()?, fields.next()?)))
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Map<'a>(&'a Labels);
        impl fmt::Debug for Map<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map().entries(self.0.iter()).finish()
            }
        }
        f.debug_tuple("Labels").field(&Map(self)).finish()
    }
}

impl Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// One grant of a boundary: action patterns × resource patterns (with `*` globs),
/// optionally limited to data classes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Action patterns, e.g. `crm:read*`.
    pub actions: Vec<String>,
    /// Resource patterns, e.g. `crm:contact/*`.
    pub resources: Vec<String>,
    /// Data classes this grant covers; empty means none are named.
    #[serde(default)]
    pub data_classes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoundary {
    #[serde(default)]
    grants: Vec<Grant>,
    #[serde(default, deserialize_with = "crate::integer::optional")]
    max_token_lifetime_secs: Option<u32>,
    #[serde(default)]
    delegates: Vec<AgentId>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    require_dpop: bool,
}

/// The documented ceiling of an agent. The token service enforces the lifetime, scopes
/// (against grant action patterns) and audiences; the decision path enforces grants
/// (actions × resources × data classes). Delegates are stored for delegation (mandates).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawBoundary")]
pub struct Boundary {
    /// What the agent may ever do.
    pub grants: Vec<Grant>,
    /// The longest access-token lifetime this agent may hold, in seconds (1..=86400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_token_lifetime_secs: Option<u32>,
    /// Agents this one may delegate to.
    pub delegates: Vec<AgentId>,
    /// RFC 8707 resource URIs (with `*` globs) this agent may get tokens for; empty
    /// means only the server's default audience.
    pub audiences: Vec<String>,
    /// Every token this agent gets must be DPoP-bound (RFC 9449): the token endpoint
    /// refuses a request without a DPoP proof (`invalid_dpop_proof`,
    /// `dpop_required`). Absent from the stored form when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_dpop: bool,
}

/// The longest lifetime any boundary may allow: one day.
pub const MAX_BOUNDARY_LIFETIME_SECS: u32 = 86_400;

impl TryFrom<RawBoundary> for Boundary {
    type Error = ValidationError;
    fn try_from(r: RawBoundary) -> Result<Self, ValidationError> {
        if r.grants.len() > 256 || r.delegates.len() > 256 || r.audiences.len() > 256 {
            return Err(invalid(
                "boundary",
                "at most 256 grants, 256 delegates and 256 audiences",
            ));
        }
        if !r.audiences.iter().all(|p| pattern_ok(p)) {
            return Err(invalid(
                "boundary",
                "audiences must be 1-256 printable characters without whitespace",
            ));
        }
        check_grants("boundary", &r.grants)?;
        if let Some(l) = r.max_token_lifetime_secs
            && !(1..=MAX_BOUNDARY_LIFETIME_SECS).contains(&l)
        {
            return Err(invalid(
                "boundary",
                "max_token_lifetime_secs must be 1..=86400",
            ));
        }
        // A deserialized vector has room for four or more entries; a node holds every
        // boundary for as long as it runs, so trim them to their length.
        let mut grants = r.grants;
        for g in &mut grants {
            g.actions.shrink_to_fit();
            g.resources.shrink_to_fit();
            g.data_classes.shrink_to_fit();
        }
        grants.shrink_to_fit();
        let (mut delegates, mut audiences) = (r.delegates, r.audiences);
        delegates.shrink_to_fit();
        audiences.shrink_to_fit();
        Ok(Self {
            grants,
            max_token_lifetime_secs: r.max_token_lifetime_secs,
            delegates,
            audiences,
            require_dpop: r.require_dpop,
        })
    }
}

/// Whether a pattern (or an audience) is 1-256 printable characters without whitespace.
fn pattern_ok(p: &str) -> bool {
    !p.is_empty() && p.chars().count() <= 256 && printable(p) && !p.chars().any(char::is_whitespace)
}

/// Checks grants: each has actions and resources, and every pattern is well formed.
pub(crate) fn check_grants(field: &'static str, grants: &[Grant]) -> Result<(), ValidationError> {
    for g in grants {
        if g.actions.is_empty() || g.resources.is_empty() {
            return Err(invalid(field, "each grant needs actions and resources"));
        }
        if !g
            .actions
            .iter()
            .chain(&g.resources)
            .chain(&g.data_classes)
            .all(|p| pattern_ok(p))
        {
            return Err(invalid(
                field,
                "patterns must be 1-256 printable characters without whitespace",
            ));
        }
    }
    Ok(())
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (including
/// none) and every other character matches itself. Greedy with one-star backtracking:
/// O(|pattern|·|text|) at worst, never exponential.
///
/// It works on bytes, which gives the same answer as working on characters: UTF-8 is
/// self-synchronising, so after a `*` a pattern's next literal (an ASCII byte or a lead
/// byte) never equals a continuation byte, and a match can only resume at a character
/// boundary of the text (the test `glob_on_bytes_is_glob_on_chars` checks it).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    glob_units(pattern.as_bytes(), text.as_bytes(), b'*')
}

/// The matcher behind [`glob_match`], over any unit (bytes there; characters in the test
/// that holds the two to the same answers).
fn glob_units<T: PartialEq>(p: &[T], t: &[T], any: T) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where the last `*` was, and the text position it is currently absorbing up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(c) if *c == any => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if Some(c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == any))
}

impl Boundary {
    /// Whether an OAuth scope token lies inside the boundary: some grant's action
    /// pattern matches it.
    ///
    /// INVARIANT (ceiling): a boundary without grants allows no scope at all.
    pub fn allows_scope(&self, scope: &str) -> bool {
        self.grants
            .iter()
            .flat_map(|g| &g.actions)
            .any(|a| glob_match(a, scope))
    }

    /// Whether a token may name `aud` (an RFC 8707 resource) as its audience.
    ///
    /// INVARIANT (ceiling): an agent gets tokens only for audiences its boundary lists,
    /// or for the server's default audience.
    pub fn allows_audience(&self, aud: &str) -> bool {
        self.audiences.iter().any(|p| glob_match(p, aud))
    }
}

/// Where an agent is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// May authenticate and act.
    Active,
    /// Temporarily stopped; reversible with resume.
    Suspended,
    /// Retired for good; its credentials and tokens never work again.
    Decommissioned,
}

impl AgentStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Decommissioned => "decommissioned",
        }
    }

    /// Parses a stored or filter value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            "decommissioned" => Some(Self::Decommissioned),
            _ => None,
        }
    }

    /// Whether moving from `self` to `to` is allowed.
    ///
    /// INVARIANT (lifecycle): `decommissioned` is final; suspend and resume only move
    /// between `active` and `suspended`.
    pub fn can_become(self, to: AgentStatus) -> bool {
        matches!(
            (self, to),
            (Self::Active, Self::Suspended)
                | (Self::Suspended, Self::Active)
                | (Self::Active | Self::Suspended, Self::Decommissioned)
        )
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An agent as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    /// `agt_…`; also the OAuth `client_id`.
    pub id: AgentId,
    /// Unique display name.
    pub name: AgentName,
    /// The accountable human.
    pub owner: Owner,
    /// What it is for.
    pub purpose: Purpose,
    /// Inventory labels.
    pub labels: Labels,
    /// Its ceiling: the most it may ever do or hold, whatever its mandates and tokens say.
    pub boundary: Boundary,
    /// Lifecycle status.
    pub status: AgentStatus,
    /// Why the status last changed, if a reason was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {

    /// The same matcher over characters: the reference for the byte version.
    fn glob_on_chars(pattern: &str, text: &str) -> bool {
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
        glob_units(&p, &t, '*')
    }

    /// Strings over a few one- to four-byte characters and `*`.
    fn glob_text(max: usize) -> impl Strategy<Value = String> {
        let chars = vec!['a', 'b', '*', 'é', '€', '😀', '/'];
        proptest::collection::vec(proptest::sample::select(chars), 0..max)
            .prop_map(|v| v.into_iter().collect())
    }

    /// A pattern and a text made to fit it (each `*` filled with some text), then
    /// sometimes cut short: random pairs almost never match, so they would not tell the
    /// two versions apart.
    fn glob_pair() -> impl Strategy<Value = (String, String)> {
        let part = (glob_text(3), any::<bool>(), glob_text(4));
        (proptest::collection::vec(part, 0..4), 0usize..3).prop_map(|(parts, cut)| {
            let (mut pattern, mut text) = (String::new(), String::new());
            for (literal, star, filler) in parts {
                let literal = literal.replace('*', "");
                pattern.push_str(&literal);
                text.push_str(&literal);
                if star {
                    pattern.push('*');
                    text.push_str(&filler);
                }
            }
            let keep = text.chars().count().saturating_sub(cut);
            (pattern, text.chars().take(keep).collect())
        })
    }

    proptest! {
        #[test]
        fn glob_on_bytes_is_glob_on_chars(
            (pattern, text) in glob_pair(),
            (other, random) in (glob_text(8), glob_text(10)),
        ) {
            prop_assert_eq!(glob_match(&pattern, &text), glob_on_chars(&pattern, &text));
            prop_assert_eq!(glob_match(&other, &random), glob_on_chars(&other, &random));
        }
    }

    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Labels::try_from(m).unwrap()
    }

    #[test]
    fn labels_keep_the_map_format() {
        let l = labels(&[("team", "sales"), ("env", ""), ("a/b.c_d-1", "x=y, z ✓")]);
        assert_eq!(
            l.iter().collect::<Vec<_>>(),
            [("a/b.c_d-1", "x=y, z ✓"), ("env", ""), ("team", "sales")]
        );
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(json, r#"{"a/b.c_d-1":"x=y, z ✓","env":"","team":"sales"}"#);
        assert_eq!(serde_json::from_str::<Labels>(&json).unwrap(), l);
        assert_eq!(
            format!("{l:?}"),
            r#"Labels({"a/b.c_d-1": "x=y, z ✓", "env": "", "team": "sales"})"#
        );
        assert_eq!(Labels::default().iter().count(), 0);
        assert_eq!(serde_json::to_string(&Labels::default()).unwrap(), "{}");
        assert_eq!(labels(&[]), Labels::default());
        assert_ne!(labels(&[("a", "b")]), labels(&[("a", "c")]));
        assert_ne!(labels(&[("a", "")]), labels(&[]));
        for bad in [r#"{"Team":"x"}"#, r#"{"team":"a\u0000b"}"#, r#"{"":"x"}"#] {
            assert!(serde_json::from_str::<Labels>(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn labels_round_trip(
            m in proptest::collection::btree_map("[a-z0-9][a-z0-9._/-]{0,10}", "\\PC{0,12}", 0..8)
        ) {
            let l = Labels::try_from(m.clone()).unwrap();
            let pairs: Vec<(&str, &str)> = m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(l.iter().collect::<Vec<_>>(), pairs);
            prop_assert_eq!(serde_json::to_string(&l).unwrap(), serde_json::to_string(&m).unwrap());
            prop_assert_eq!(BTreeMap::from(l), m);
        }
    }

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("crm:read", "crm:read", true),
            ("crm:*", "crm:read", true),
            ("crm:*", "crm:", true),
            ("*", "", true),
            ("crm:*:x", "crm:a:b:x", true),
            ("crm:*:x", "crm:a:b:y", false),
            ("crm:read", "crm:reads", false),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYbZ", false),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
        let b: Boundary =
            serde_json::from_str(r#"{"grants":[{"actions":["crm:read*"],"resources":["*"]}]}"#)
                .unwrap();
        assert!(b.allows_scope("crm:read") && b.allows_scope("crm:read.notes"));
        assert!(!b.allows_scope("crm:write"));
        assert!(!Boundary::default().allows_scope("anything"));
        let b: Boundary =
            serde_json::from_str(r#"{"audiences":["https://crm.example.com/*"]}"#).unwrap();
        assert!(b.allows_audience("https://crm.example.com/v1"));
        assert!(!b.allows_audience("https://evil.example.com/"));
        assert!(!Boundary::default().allows_audience("https://crm.example.com/v1"));
    }

    #[test]
    fn lifecycle() {
        use AgentStatus::*;
        assert!(Active.can_become(Suspended));
        assert!(Suspended.can_become(Active));
        assert!(Suspended.can_become(Decommissioned));
        for to in [Active, Suspended, Decommissioned] {
            assert!(!Decommissioned.can_become(to));
        }
        assert!(!Active.can_become(Active));
    }

    #[test]
    fn checked_values() {
        assert!(AgentName::try_from("billing-bot.v2".to_owned()).is_ok());
        assert!(AgentName::try_from("-bad".to_owned()).is_err());
        assert!(AgentName::try_from(String::new()).is_err());
        assert!(Owner::try_from("alice@example.com".to_owned()).is_ok());
        assert!(Owner::try_from("alice smith".to_owned()).is_err());
        let b: Result<Boundary, _> = serde_json::from_str(r#"{"max_token_lifetime_secs": 0}"#);
        assert!(b.is_err());
        let b: Result<Boundary, _> = serde_json::from_str(r#"{"bogus": 1}"#);
        assert!(b.is_err());
        let b: Boundary = serde_json::from_str(
            r#"{"grants":[{"actions":["crm:read"],"resources":["crm:contact/*"]}],"max_token_lifetime_secs":600}"#,
        )
        .unwrap();
        assert_eq!(b.max_token_lifetime_secs, Some(600));
    }

    #[test]
    fn deserialized_boundaries_are_trimmed() {
        let b: Boundary = serde_json::from_str(
            r#"{"grants":[{"actions":["a"],"resources":["r"],"data_classes":["d"]}],
                "audiences":["https://x/*"]}"#,
        )
        .unwrap();
        let g = &b.grants[0];
        assert_eq!(b.grants.capacity(), 1);
        assert_eq!(b.audiences.capacity(), 1);
        assert_eq!(
            [
                g.actions.capacity(),
                g.resources.capacity(),
                g.data_classes.capacity()
            ],
            [1, 1, 1]
        );
    }
}
