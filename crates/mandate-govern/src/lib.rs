//! Governance, the pure core of issue 24: what the inventory, discovery and access-review
//! use cases compute, given the facts the service reads for them.
//!
//! - [`discover`]: the JSON that `kubectl get pods -l app=ai-agent -A -o json`, AWS
//!   `resourcegroupstaggingapi get-resources`, Azure `az resource list` and GCP
//!   `gcloud asset search-all-resources --format=json` print, each read into one
//!   [`discover::Discovered`] shape and filtered by a [`discover::Selector`];
//! - [`reconcile`]: registered agents against what discovery found: matched, shadow
//!   (found, not registered), ghost (registered as discoverable, not found);
//! - [`suggest`]: an agent's boundary beside the allows it got in a window: unused grants
//!   and the narrowest boundary, cut from the existing grants, that still allows every
//!   one of them;
//! - [`findings`]: stable finding codes over one inventory row (dormant, stale or
//!   never-rotated credentials, wildcard boundary, owner missing or unknown).
//!
//! Pure: no IO, no store, no clock (`now` is passed in), no async. The use cases that
//! read the store and the decision log, the routes and the CLI are built on it later
//! (`docs/governance.md`).

pub mod discover;
pub mod findings;
pub mod reconcile;
pub mod suggest;
