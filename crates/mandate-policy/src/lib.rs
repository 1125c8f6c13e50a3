//! Mandate's Cedar policies: the base schema, compiling operator schema fragments and
//! policies into a validated set, evaluating requests against it, and data-driven
//! policy tests.
//!
//! This is the only crate that names `cedar_policy`; the rest of Mandate sees
//! [`CompiledPolicies`], [`PolicyRequest`] and [`PolicyOutcome`]. It does no IO.
//!
//! # Schema
//!
//! [`BASE_SCHEMA`] declares Mandate's own types in the `Mandate` namespace. Operators
//! pass schema fragments to [`compile`]: their own namespaces for resource types, and
//! their actions declared by opening `namespace Mandate` again (Cedar merges a
//! namespace declared in several fragments; only a type or action declared twice is an
//! error):
//!
//! ```cedarschema
//! namespace Crm { entity Contact { team: String }; }
//! namespace Mandate {
//!   action "crm:read" in ["all"] appliesTo {
//!     principal: [Agent],
//!     resource: [Crm::Contact],
//!     context: { data_class: String, source_ip?: ipaddr },
//!   };
//! }
//! ```
//!
//! # Decisions
//!
//! Default deny; forbid beats permit (Cedar); and fail closed: an undeclared action, a
//! resource or context that does not fit the schema, or any policy whose evaluation
//! fails makes the answer a deny with the errors reported, even if a permit matched.
//!
//! The context and the resource attributes are open: top-level fields the schema does
//! not declare (for that action's context, or that resource type) are dropped before
//! Cedar sees them, since a validated policy cannot read them anyway. Declared fields
//! are checked against their declared types.
//!
//! # Approval
//!
//! A forbid annotated `@approval` means "not without a human": a request denied only
//! by such forbids, which the remaining policies allow, comes back with
//! [`PolicyOutcome::approval_required`] set (a mandate request is then held for an
//! approver). Errors still deny outright.

#![warn(missing_docs)]

mod compile;
mod direct;
mod evaluate;
mod index;
mod reach;
mod rego;
mod rego_test;
mod schema;
pub mod testfile;

pub use compile::{
    APPROVAL, BASE_SCHEMA_SOURCE, CompiledPolicies, POLICIES_SOURCE, PolicyError, compile,
};
pub use evaluate::{
    EntityRef, OnBehalf, PolicyOutcome, PolicyRequest, mandate_attributes, parsed_on_this_thread,
};
pub use reach::Reach;
pub use rego::{
    Budget, DATA_SOURCE, INLINE_CHECK_INTERVAL, INLINE_INPUT_BYTES, INLINE_TIME_LIMIT,
    MAX_LITERAL_NESTING, MAX_MODULE_BYTES, MAX_MODULES, MAX_NESTING, MAX_OPERATORS,
    MAX_SOURCE_BYTES, QUERY_TIME_LIMIT, RegoError, RegoModule, RegoPolicies, RegoSource,
    compile_rego,
};
pub use rego_test::{RegoTestOutcome, RegoTestReport, RegoTestResult, run_rego_tests};
pub use schema::{BASE_SCHEMA, RESERVED_CONTEXT};
pub use testfile::{TestFileError, TestReport, TestResult, run_tests};
