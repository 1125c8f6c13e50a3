//! Which audit events a sink takes: by event kind (exact, or a `prefix.*` family, or
//! `*`) and by agent. An empty list takes everything of its dimension.

use mandate_audit::event::AuditEvent;
use serde::{Deserialize, Serialize};

/// A sink's filter, as configured (`kinds`, `agents` in `[[export.sinks]]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Event kinds taken: `decision`, `token.*` (every `token.` kind), `*`. Empty: all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Event kinds left out, even when `kinds` takes them (same patterns).
    #[serde(default)]
    pub exclude_kinds: Vec<String>,
    /// Agent ids taken (an event about no agent is then left out). Empty: all.
    #[serde(default)]
    pub agents: Vec<String>,
}

/// A pattern a filter cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid kind pattern `{0}`: use a kind (`decision`), a family (`token.*`) or `*`")]
pub struct FilterError(pub String);

impl Filter {
    /// Checks every pattern: a kind is letters, digits, `_` and `.`; a family ends in
    /// `.*`; `*` alone takes all. A `*` anywhere else is refused rather than read
    /// literally, so `token*` does not silently take nothing.
    pub fn check(&self) -> Result<(), FilterError> {
        for p in self.kinds.iter().chain(&self.exclude_kinds) {
            let stem = p.strip_suffix(".*").unwrap_or(p);
            let ok = p == "*"
                || (!stem.is_empty()
                    && stem
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                    && !stem.starts_with('.')
                    && !stem.ends_with('.'));
            if !ok {
                return Err(FilterError(p.clone()));
            }
        }
        Ok(())
    }

    /// Whether the sink takes `event`.
    pub fn takes(&self, event: &AuditEvent) -> bool {
        let kind = event.kind.as_str();
        if !self.kinds.is_empty() && !self.kinds.iter().any(|p| kind_matches(p, kind)) {
            return false;
        }
        if self.exclude_kinds.iter().any(|p| kind_matches(p, kind)) {
            return false;
        }
        self.agents.is_empty()
            || event
                .agent
                .as_deref()
                .is_some_and(|a| self.agents.iter().any(|x| x == a))
    }
}

/// `decision` matches only `decision`; `token.*` matches `token.issued` and
/// `token.refused.x` but not `token` or `tokens.x`; `*` matches every kind.
fn kind_matches(pattern: &str, kind: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.len() > prefix.len() && kind.starts_with(prefix),
        None => pattern == kind,
    }
}
