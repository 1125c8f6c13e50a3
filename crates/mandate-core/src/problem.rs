//! The one URI scheme of RFC 9457 problem types, shared by the admin API and both gateways.
//!
//! A problem's `type` is `urn:mandate:error:<code>`, its `code` the same stable code.
//! A URN, not an `https://` address: nothing is to be fetched from it (RFC 9457 §3.1.1
//! asks consumers not to dereference types automatically), and it cannot go stale the
//! way a documentation URL would. The codes are listed in `docs/openapi.json`.

/// What every problem type starts with.
pub const TYPE_PREFIX: &str = "urn:mandate:error:";

/// The problem type for `code`.
pub fn type_uri(code: &str) -> String {
    format!("{TYPE_PREFIX}{code}")
}
