//! Per-field redaction of an event's `context` (prompts, tool arguments…) before it is
//! logged: each top-level field is kept, dropped or replaced by a keyed hash — never
//! silently, because the redacted field stays visible with a marker in its place.
//!
//! INVARIANT (named fields at any depth): a field named by a rule is redacted wherever it
//! is, inside kept objects and arrays too (a Rego input nests what a flat context holds
//! at the top); the default rule applies to top-level fields only.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::canonical::canonical_json;
use crate::hex;

/// What happens to one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Logged in full.
    Keep,
    /// Replaced by [`DROPPED`].
    Drop,
    /// Replaced by `"hmac-sha256:<hex>"`, the HMAC-SHA256 of the value's RFC 8785
    /// canonical JSON under the redaction key: equal values stay correlatable, the value
    /// itself cannot be recovered without the key.
    Hash,
}

/// The marker a dropped field's value becomes.
pub const DROPPED: &str = "[dropped]";

/// The prefix of a hashed field's value.
pub const HASH_PREFIX: &str = "hmac-sha256:";

/// Redaction rules for the top-level fields of a context object.
pub struct Redactor {
    rules: BTreeMap<String, Rule>,
    default: Rule,
    key: [u8; 32],
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("rules", &self.rules)
            .field("default", &self.default)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// Rules per field name, the rule for every other field, and the HMAC key (a secret:
    /// whoever holds it can test guesses of hashed values).
    pub fn new(rules: BTreeMap<String, Rule>, default: Rule, key: [u8; 32]) -> Self {
        Self {
            rules,
            default,
            key,
        }
    }

    /// The rule for field `name`.
    pub fn rule(&self, name: &str) -> Rule {
        self.rules.get(name).copied().unwrap_or(self.default)
    }

    /// The redacted context. An object has each top-level field treated by its rule;
    /// any other value (a context should be an object) is treated as a whole by the
    /// default rule. Inside what is kept, fields named by a rule get that rule at any
    /// depth (`INVARIANT (named fields at any depth)`).
    pub fn apply(&self, context: &Value) -> Value {
        match context {
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(name, value)| (name.clone(), self.redact(self.rule(name), value)))
                    .collect::<Map<_, _>>(),
            ),
            other => self.redact(self.default, other),
        }
    }

    /// `value` with every field a rule names redacted by it, at any depth; other fields
    /// kept (and searched).
    fn nested(&self, value: &Value) -> Value {
        match value {
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(name, v)| {
                        let v = match self.rules.get(name) {
                            Some(rule) => self.redact(*rule, v),
                            None => self.nested(v),
                        };
                        (name.clone(), v)
                    })
                    .collect::<Map<_, _>>(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.nested(v)).collect()),
            other => other.clone(),
        }
    }

    fn redact(&self, rule: Rule, value: &Value) -> Value {
        match rule {
            Rule::Keep => self.nested(value),
            Rule::Drop => Value::String(DROPPED.to_owned()),
            Rule::Hash => Value::String(format!("{HASH_PREFIX}{}", self.hmac(value))),
        }
    }

    fn hmac(&self, value: &Value) -> String {
        // HMAC accepts keys of any length, so this never takes the fallback.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(&canonical_json(value));
        hex::encode(&mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redactor(default: Rule) -> Redactor {
        let rules = BTreeMap::from([
            ("prompt".to_owned(), Rule::Drop),
            ("args".to_owned(), Rule::Hash),
            ("tool".to_owned(), Rule::Keep),
        ]);
        Redactor::new(rules, default, [0x0b; 32])
    }

    #[test]
    fn rules_apply_per_field() {
        let r = redactor(Rule::Drop);
        let out = r.apply(&json!({
            "prompt": "secret plans", "args": {"b": 1, "a": 2}, "tool": "grep", "other": 5
        }));
        let args = out["args"].as_str().unwrap();
        assert!(args.starts_with(HASH_PREFIX) && args.len() == HASH_PREFIX.len() + 64);
        assert_eq!(
            out,
            json!({"prompt": "[dropped]", "args": args, "tool": "grep", "other": "[dropped]"})
        );
        // The hash covers the canonical form: member order does not matter.
        let again = r.apply(&json!({"args": {"a": 2, "b": 1}}));
        assert_eq!(again["args"], out["args"]);
        // Different values, different hashes.
        assert_ne!(r.apply(&json!({"args": 1}))["args"], out["args"]);
    }

    #[test]
    fn named_fields_are_redacted_at_any_depth_and_the_default_only_at_the_top() {
        let r = redactor(Rule::Keep);
        let out = r.apply(&json!({
            "n": {"prompt": "deep secret", "list": [{"prompt": "in a list"}, 1]},
            "other": {"x": 1},
            "tool": {"prompt": "under a kept field"}
        }));
        assert_eq!(
            out,
            json!({
                "n": {"prompt": "[dropped]", "list": [{"prompt": "[dropped]"}, 1]},
                "other": {"x": 1},
                "tool": {"prompt": "[dropped]"}
            })
        );
        let args = r.apply(&json!({"a": {"args": [1]}}));
        assert!(args["a"]["args"].as_str().unwrap().starts_with(HASH_PREFIX));
    }

    #[test]
    fn default_rule_and_non_objects() {
        assert_eq!(
            redactor(Rule::Keep).apply(&json!({"x": 1})),
            json!({"x": 1})
        );
        assert_eq!(
            redactor(Rule::Drop).apply(&json!([1, 2])),
            json!("[dropped]")
        );
        assert_eq!(redactor(Rule::Keep).apply(&json!("s")), json!("s"));
    }

    // RFC 4231 test case 2 ("Jefe"), checked through our framing: the HMAC input is the
    // canonical JSON, so a JSON string whose canonical form is the RFC's data.
    #[test]
    fn hmac_is_hmac_sha256() {
        let data = "what do ya want for nothing?";
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(data.as_bytes());
        assert_eq!(
            hex::encode(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let r = Redactor::new(BTreeMap::new(), Rule::Hash, [0x0b; 32]);
        let mut mac = Hmac::<Sha256>::new_from_slice(&[0x0b; 32]).unwrap();
        mac.update(b"\"hi\"");
        let want = format!("{HASH_PREFIX}{}", hex::encode(&mac.finalize().into_bytes()));
        assert_eq!(r.apply(&json!({"k": "hi"})), json!({ "k": want }));
    }

    #[test]
    fn debug_hides_the_key() {
        let text = format!("{:?}", redactor(Rule::Keep));
        assert!(!text.contains("11, 11"), "{text}");
    }
}
