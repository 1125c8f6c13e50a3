//! Discovery input: what Kubernetes and the three clouds' CLIs print about running
//! workloads, read into one [`Discovered`] shape so reconciliation need not know where
//! an agent was found.
//!
//! The input is untrusted (a file or stdin from whoever runs discovery, or a cluster's
//! answer): it is read with bounded size ([`MAX_INPUT_BYTES`]), item count
//! ([`MAX_ITEMS`]), values ([`MAX_VALUES`], before it is parsed, so the parsed tree is
//! bounded too), labels per item ([`MAX_LABELS`]) and text length ([`MAX_TEXT`]); a
//! document of the wrong shape is an error naming where ([`DiscoverError`]), never a
//! panic and never a partial answer. Members this reader does not use are ignored, as
//! the tools add fields between versions.
//!
//! Each source's shape, and where it is documented, is in its module:
//! [`kubernetes`], [`aws`], [`azure`], [`gcp`]; the fixtures under
//! `tests/data/discover/` are written from those documents.

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod kubernetes;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The largest input read, in bytes: 64 MiB, some 50,000 pods as `kubectl` prints them.
pub const MAX_INPUT_BYTES: usize = 64 << 20;
/// The most items (pods, service accounts, resources) one document may hold.
pub const MAX_ITEMS: usize = 100_000;
/// The most JSON values one document may hold (each container, array element and
/// object member counts one), checked by a scan of the bytes before anything is parsed:
/// one value per 8 bytes of a full [`MAX_INPUT_BYTES`]. The tools' output holds one per
/// 14–32 bytes (the fixtures, compact); a document of `[0,0,0,…]` holds one per 2, and
/// parsed whole, 64 MiB of it took 3.7 GB.
pub const MAX_VALUES: usize = MAX_INPUT_BYTES / 8;
/// The most labels (or tags) one item may carry (Kubernetes sets no limit; AWS allows 50
/// tags, Azure 50, GCP 64 labels).
pub const MAX_LABELS: usize = 256;
/// The longest text kept from an item (a name, uid, label key or value), in bytes. An
/// AWS ARN may reach 1011 characters; a Kubernetes label key 317. Annotations other than
/// the ones read ([`OWNER_KEYS`], [`LINK_KEYS`]) are not kept and so not bounded here.
pub const MAX_TEXT: usize = 2048;

/// The label, annotation or tag keys naming an item's accountable owner, first found
/// wins. `mandate-owner` is for Azure tags and GCP labels, whose keys cannot hold `/`.
pub const OWNER_KEYS: &[&str] = &["mandate.dev/owner", "mandate-owner", "owner"];
/// The keys linking an item to a registered agent (its `agt_…` id), first found wins.
/// `mandate-agent-id` is for Azure tags and GCP labels, whose keys cannot hold `/`.
pub const LINK_KEYS: &[&str] = &["mandate.dev/agent-id", "mandate-agent-id"];

/// Where an item was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A Kubernetes `List`, `PodList` or `ServiceAccountList` (or one object).
    Kubernetes,
    /// AWS Resource Groups Tagging API `get-resources`.
    Aws,
    /// Azure `az resource list`.
    Azure,
    /// GCP `gcloud asset search-all-resources --format=json`.
    Gcp,
}

impl Source {
    /// Every source, in their order.
    pub const ALL: [Source; 4] = [Self::Kubernetes, Self::Aws, Self::Azure, Self::Gcp];

    /// The stable name: `kubernetes`, `aws`, `azure`, `gcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kubernetes => "kubernetes",
            Self::Aws => "aws",
            Self::Azure => "azure",
            Self::Gcp => "gcp",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One workload found by discovery, whatever its source. Ordered by its fields in their
/// order (source, scope, kind, name, uid, …): the order of every discovery answer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Discovered {
    /// Where it was found.
    pub source: Source,
    /// Where it lives: the Kubernetes namespace, AWS account, Azure subscription, GCP
    /// project (`projects/{number}`); empty when the source does not say.
    pub scope: String,
    /// What it is: the Kubernetes `kind` (`Pod`, `ServiceAccount`), the AWS
    /// `service:resource-type` of its ARN (`lambda:function`), the Azure `type`
    /// (`Microsoft.Web/sites`), the GCP `assetType`.
    pub kind: String,
    /// Its name (Kubernetes `metadata.name`; the last part of an ARN; Azure `name`; GCP
    /// `displayName`, or the last segment of its resource name).
    pub name: String,
    /// The source's unique id: Kubernetes `metadata.uid` (or `namespace/kind/name`, at
    /// most `3 * MAX_TEXT + 2` bytes, when a dry-run object has none), the ARN, the Azure
    /// resource `id`, the GCP full resource `name`.
    pub uid: String,
    /// The region, location or zone, when the source names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Its labels (Kubernetes) or tags (clouds).
    pub labels: BTreeMap<String, String>,
    /// The accountable owner, from the first of [`OWNER_KEYS`] among its annotations,
    /// then its labels or tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The registered agent it says it is, from the first of [`LINK_KEYS`] among its
    /// annotations, then labels or tags; as written (reconciliation parses it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

/// Why a discovery document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoverError {
    /// Larger than [`MAX_INPUT_BYTES`].
    #[error("the input is {0} bytes; at most {MAX_INPUT_BYTES} are read")]
    TooLarge(usize),
    /// Not JSON (or nested deeper than the JSON reader allows).
    #[error("the input is not JSON: {0}")]
    NotJson(String),
    /// More than [`MAX_ITEMS`] items.
    #[error("the input holds more than {MAX_ITEMS} items")]
    TooManyItems,
    /// More than [`MAX_VALUES`] JSON values.
    #[error("the input holds more than {MAX_VALUES} JSON values")]
    TooManyValues,
    /// JSON, but not the shape the source prints; `at` is a path such as
    /// `items[3].metadata.labels`.
    #[error("`{at}`: {what}")]
    Shape {
        /// Where in the document.
        at: String,
        /// What is wrong there.
        what: String,
    },
}

impl DiscoverError {
    /// The stable code: `too_large`, `not_json`, `too_many_items`, `too_many_values`,
    /// `bad_shape`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::NotJson(_) => "not_json",
            Self::TooManyItems => "too_many_items",
            Self::TooManyValues => "too_many_values",
            Self::Shape { .. } => "bad_shape",
        }
    }
}

pub(crate) fn shape(at: impl Into<String>, what: impl Into<String>) -> DiscoverError {
    DiscoverError::Shape {
        at: at.into(),
        what: what.into(),
    }
}

/// Reads one source's document and returns the items the selector matches, in order
/// (source, scope, kind, name, uid, then the rest), an item found twice (as when two
/// pages of output overlap) kept once.
pub fn discover(
    source: Source,
    input: &[u8],
    selector: &Selector,
) -> Result<Vec<Discovered>, DiscoverError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(DiscoverError::TooLarge(input.len()));
    }
    if values_at_most(input) > MAX_VALUES {
        return Err(DiscoverError::TooManyValues);
    }
    // serde_json refuses nesting deeper than 128 levels, so a hostile document cannot
    // exhaust the stack.
    let doc: Value =
        serde_json::from_slice(input).map_err(|e| DiscoverError::NotJson(e.to_string()))?;
    let mut found = match source {
        Source::Kubernetes => kubernetes::read(&doc)?,
        Source::Aws => aws::read(&doc)?,
        Source::Azure => azure::read(&doc)?,
        Source::Gcp => gcp::read(&doc)?,
    };
    found.retain(|d| selector.matches(&d.labels));
    found.sort();
    found.dedup();
    Ok(found)
}

/// An upper bound on the JSON values `input` holds, without parsing it: one, plus each
/// `[`, `{` and `,` outside a string (every value but the first is a container or
/// follows a comma). Linear, no allocation.
fn values_at_most(input: &[u8]) -> usize {
    let (mut n, mut in_string, mut escaped) = (1usize, false, false);
    for &b in input {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' | b',' => n += 1,
                _ => {}
            }
        }
    }
    n
}

/// The items of a document that is either an array or an object holding one under
/// `member`, bounded by [`MAX_ITEMS`].
pub(crate) fn items<'a>(doc: &'a Value, member: &str) -> Result<&'a [Value], DiscoverError> {
    let list = match doc {
        Value::Array(a) => a,
        Value::Object(o) => match o.get(member) {
            Some(Value::Array(a)) => a,
            Some(Value::Null) | None => return Ok(&[]),
            Some(_) => return Err(shape(member, "not an array")),
        },
        _ => {
            return Err(shape(
                "$",
                format!("neither an array nor an object with `{member}`"),
            ));
        }
    };
    if list.len() > MAX_ITEMS {
        return Err(DiscoverError::TooManyItems);
    }
    Ok(list)
}

/// A bounded text member of `obj`: absent or `null` is `None`.
pub(crate) fn text(obj: &Value, member: &str, at: &str) -> Result<Option<String>, DiscoverError> {
    match obj.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => bounded(s, &format!("{at}.{member}")).map(Some),
        Some(_) => Err(shape(format!("{at}.{member}"), "not a string")),
    }
}

/// A text member that must be present and non-empty.
pub(crate) fn required(obj: &Value, member: &str, at: &str) -> Result<String, DiscoverError> {
    match text(obj, member, at)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(shape(format!("{at}.{member}"), "missing or empty")),
    }
}

/// `s` if it is at most [`MAX_TEXT`] bytes and holds no control character.
pub(crate) fn bounded(s: &str, at: &str) -> Result<String, DiscoverError> {
    if s.len() > MAX_TEXT {
        return Err(shape(at, format!("longer than {MAX_TEXT} bytes")));
    }
    if s.chars().any(char::is_control) {
        return Err(shape(at, "holds a control character"));
    }
    Ok(s.to_owned())
}

/// A `{"key": "value"}` map member (Kubernetes labels, Azure tags, GCP labels), bounded
/// by [`MAX_LABELS`]; absent or `null` is empty.
pub(crate) fn string_map(
    obj: &Value,
    member: &str,
    at: &str,
) -> Result<BTreeMap<String, String>, DiscoverError> {
    let at = format!("{at}.{member}");
    let m = match obj.get(member) {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(shape(at, "not an object")),
    };
    if m.len() > MAX_LABELS {
        return Err(shape(at, format!("more than {MAX_LABELS} entries")));
    }
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let Value::String(v) = v else {
            return Err(shape(format!("{at}.{k}"), "not a string"));
        };
        out.insert(bounded(k, &at)?, bounded(v, &format!("{at}.{k}"))?);
    }
    Ok(out)
}

/// The first of `keys` found in the maps, in the maps' order, with a non-empty value.
pub(crate) fn first_of(keys: &[&str], maps: &[&BTreeMap<String, String>]) -> Option<String> {
    maps.iter().find_map(|m| {
        keys.iter()
            .find_map(|k| m.get(*k).filter(|v| !v.trim().is_empty()).cloned())
    })
}

/// The most terms a selector may have.
pub const MAX_SELECTOR_TERMS: usize = 16;

/// A label (or tag) selector, Kubernetes' equality-based syntax: terms joined by `,`, all
/// of which must hold. `key=value` (or `key==value`), `key!=value` (the key absent or
/// another value), `key` (present), `!key` (absent). The empty selector matches
/// everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    Absent(String),
}

/// Why a selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("selector `{selector}`: {why}")]
pub struct SelectorError {
    selector: String,
    why: &'static str,
}

impl Selector {
    /// The default for Kubernetes, as the guidance writes it: `app=ai-agent`.
    pub fn kubernetes_default() -> Self {
        Self {
            terms: vec![Term::Eq("app".into(), "ai-agent".into())],
        }
    }

    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses `a=b,c!=d,e,!f` (spaces around terms and operators are ignored).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let err = |why| SelectorError {
            selector: s.chars().take(64).collect(),
            why,
        };
        if s.len() > 1024 {
            return Err(err("longer than 1024 bytes"));
        }
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self { terms });
        }
        for raw in s.split(',') {
            let t = raw.trim();
            let term = if let Some((k, v)) = t.split_once("!=") {
                Term::NotEq(
                    key(k).ok_or_else(|| err("a term has a bad key"))?,
                    value(v).ok_or_else(|| err("a term has a bad value"))?,
                )
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                Term::Eq(
                    key(k).ok_or_else(|| err("a term has a bad key"))?,
                    value(v).ok_or_else(|| err("a term has a bad value"))?,
                )
            } else if let Some(k) = t.strip_prefix('!') {
                Term::Absent(key(k).ok_or_else(|| err("a term has a bad key"))?)
            } else {
                Term::Exists(key(t).ok_or_else(|| err("a term has a bad key"))?)
            };
            terms.push(term);
            if terms.len() > MAX_SELECTOR_TERMS {
                return Err(err("more than 16 terms"));
            }
        }
        Ok(Self { terms })
    }

    /// Whether every term holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Eq(k, v) => labels.get(k) == Some(v),
            Term::NotEq(k, v) => labels.get(k) != Some(v),
            Term::Exists(k) => labels.contains_key(k),
            Term::Absent(k) => !labels.contains_key(k),
        })
    }
}

/// A selector key: non-empty, no whitespace, no operator character.
fn key(k: &str) -> Option<String> {
    let k = k.trim();
    let ok = !k.is_empty()
        && !k
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '=' | '!' | ','));
    ok.then(|| k.to_owned())
}

/// A selector value: possibly empty, no operator character, no control character (so
/// that a selector prints back to text that parses to it).
fn value(v: &str) -> Option<String> {
    let v = v.trim();
    let ok = !v
        .chars()
        .any(|c| c.is_control() || matches!(c, '=' | '!' | ','));
    ok.then(|| v.to_owned())
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match t {
                Term::Eq(k, v) => write!(f, "{k}={v}")?,
                Term::NotEq(k, v) => write!(f, "{k}!={v}")?,
                Term::Exists(k) => f.write_str(k)?,
                Term::Absent(k) => write!(f, "!{k}")?,
            }
        }
        Ok(())
    }
}
