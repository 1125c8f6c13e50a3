//! Rego, OPA's policy language, as a policy version's second language: the modules and
//! base `data` document a version holds. The Data API (`opa.listen`) answers from them;
//! `/v1/authorize` never reads them (Cedar decides there).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One Rego module as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegoModule {
    /// The file name or bundle path it came from, or the id given to OPA's Policy API;
    /// the `source` of its errors.
    pub id: String,
    /// The module's text.
    pub source: String,
    /// Parsed as Rego v0 (OPA 0.x, `--v0-compatible`) rather than v1.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rego_v0: bool,
}

/// A version's Rego part: its modules and its base `data` document. Stored as this
/// type's JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegoSource {
    /// The modules, in the order given; ids unique.
    #[serde(default)]
    pub modules: Vec<RegoModule>,
    /// The base document (`data`); an object.
    #[serde(default)]
    pub data: Map<String, Value>,
}

impl RegoSource {
    /// No modules and no data: the version has no Rego part.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty() && self.data.is_empty()
    }
}
