//! The policy sets' use cases, whatever edge asks: add a version (compiled against the
//! schema first: an invalid one is refused with every problem located, and nothing
//! changes), validate without saving, list, show, activate and roll back. Versions are
//! immutable; activating one governs the very next decision (`INVARIANT (one write
//! path)`). A refusal is a [`PolicyError`].

use std::sync::Arc;

use mandate_policy::CompiledPolicies;
use mandate_store::prelude::*;
use mandate_store::{PolicyVersionRow, StoreError};
use serde_json::json;

use crate::actor::Actor;
use crate::error::ServiceError;
use crate::node::VersionError;
use crate::{Node, Recorded};

/// Why a policy use case changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A field breaks a rule (`why` says which, for the caller).
    #[error("invalid `{field}`: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The policies or schema fragments do not compile: every problem, located.
    #[error("{} problem(s) in the policy set", .0.len())]
    Rejected(Vec<mandate_policy::PolicyError>),
    /// No such policy version.
    #[error("unknown policy version `{0}`")]
    UnknownVersion(i64),
    /// A rollback with no version active before the current one.
    #[error("no earlier active version")]
    NothingToRollBack,
    /// The stored version no longer compiles (e.g. against a newer base schema); it is
    /// not activated.
    #[error("policy version {version} no longer compiles: {why}")]
    NoLongerCompiles {
        /// The version.
        version: i64,
        /// The compiler's messages, joined.
        why: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node failed (the change unrecorded, a task lost).
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// The longest note of a version, in characters.
pub const MAX_NOTE_CHARS: usize = 500;
/// The most schema fragments a version may have.
pub const MAX_FRAGMENTS: usize = 32;

/// A policy set as written: what a version is made of.
#[derive(Debug, Clone, Default)]
pub struct PolicySource {
    /// Cedar policies.
    pub policies: String,
    /// Operator schema fragments (Cedar schema syntax).
    pub schema_fragments: Vec<String>,
    /// What the version is for.
    pub note: String,
}

/// Compiles `source` against the schema, or says every problem
/// ([`PolicyError::Rejected`]).
pub fn compile(source: &PolicySource) -> Result<CompiledPolicies, PolicyError> {
    if source.note.chars().count() > MAX_NOTE_CHARS || source.schema_fragments.len() > MAX_FRAGMENTS
    {
        let field = if source.schema_fragments.len() > MAX_FRAGMENTS {
            "schema_fragments"
        } else {
            "note"
        };
        return Err(PolicyError::Invalid {
            field,
            why: format!(
                "note is at most {MAX_NOTE_CHARS} characters; at most {MAX_FRAGMENTS} schema fragments"
            ),
        });
    }
    mandate_policy::compile(&source.schema_fragments, &source.policies)
        .map_err(PolicyError::Rejected)
}

/// Compiles `source` without saving it (on a blocking thread); the ids of its policies.
pub async fn validate(source: PolicySource) -> Result<Vec<String>, PolicyError> {
    let compiled = tokio::task::spawn_blocking(move || compile(&source))
        .await
        .map_err(ServiceError::from)??;
    Ok(compiled.policy_ids())
}

/// A version just added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedVersion {
    /// Its number.
    pub version: i64,
    /// The ids of its policies.
    pub policy_ids: Vec<String>,
}

/// Adds `source` as a new immutable version, not yet active, as `actor`
/// (`policy.added`). One that does not compile is refused and nothing changes.
pub async fn add(
    node: &Arc<Node>,
    actor: &Actor,
    source: PolicySource,
) -> Result<AddedVersion, PolicyError> {
    let by = actor.name();
    node.perform("policy.added", actor, move |s| {
        let c = compile(&source)?;
        let version = s.store().insert_policy_version(
            &source.policies,
            &source.schema_fragments,
            &source.note,
            s.clock.now(),
            &by,
        )?;
        let policy_ids = c.policy_ids();
        let details = json!({"version": version, "policy_ids": policy_ids});
        let added = AddedVersion {
            version,
            policy_ids,
        };
        Ok::<_, PolicyError>((added, Recorded::details(details)))
    })
    .await
}

/// Every version, oldest first, and which is active.
#[derive(Debug)]
pub struct PolicyVersions {
    /// The versions.
    pub versions: Vec<PolicyVersionRow>,
    /// The active version, if any.
    pub active: Option<i64>,
}

/// Every policy version and the active one.
pub async fn list(node: &Arc<Node>) -> Result<PolicyVersions, PolicyError> {
    node.blocking(|s| -> Result<_, PolicyError> {
        Ok(PolicyVersions {
            versions: s.store().policy_versions()?,
            active: s.store().policy_activation_state()?.0,
        })
    })
    .await
    .map_err(ServiceError::from)?
}

/// Version `v` and the active version (if any).
pub async fn show(
    node: &Arc<Node>,
    v: i64,
) -> Result<(PolicyVersionRow, Option<i64>), PolicyError> {
    let (row, active) = node
        .blocking(move |s| -> Result<_, PolicyError> {
            Ok((
                s.store().policy_version(v)?,
                s.store().policy_activation_state()?.0,
            ))
        })
        .await
        .map_err(ServiceError::from)??;
    Ok((row.ok_or(PolicyError::UnknownVersion(v))?, active))
}

/// Which version to activate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// This one (`policy.activated`).
    Version(i64),
    /// The one active before the current one (`policy.rolled_back`).
    Previous,
}

/// An activation made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activation {
    /// The version active now.
    pub version: i64,
    /// The version active before, if any.
    pub previous: Option<i64>,
}

/// Makes `target` the active version, as `actor` (`policy.activated`, or
/// `policy.rolled_back` for [`Target::Previous`]); it governs the very next decision.
pub async fn activate(
    node: &Arc<Node>,
    actor: &Actor,
    target: Target,
) -> Result<Activation, PolicyError> {
    let kind = match target {
        Target::Version(_) => "policy.activated",
        Target::Previous => "policy.rolled_back",
    };
    let by = actor.name();
    node.perform(kind, actor, move |s| {
        let (active, previous) = s.store().policy_activation_state()?;
        let target = match target {
            Target::Version(v) => v,
            Target::Previous => previous.ok_or(PolicyError::NothingToRollBack)?,
        };
        // Versions were validated when written, but one may no longer compile (a
        // newer base schema): refuse it before it becomes active (409), so the
        // refresh below can only fail on the store, never on the version.
        s.compiled_version(target).map_err(|e| match e {
            VersionError::Store(e) => PolicyError::Store(e),
            VersionError::Missing => PolicyError::UnknownVersion(target),
            VersionError::DoesNotCompile(why) => PolicyError::NoLongerCompiles {
                version: target,
                why,
            },
        })?;
        s.store()
            .activate_policy_version(target, s.clock.now(), &by)?;
        let details = json!({"version": target, "previous": active});
        let activation = Activation {
            version: target,
            previous: active,
        };
        Ok::<_, PolicyError>((activation, Recorded::details(details)))
    })
    .await
}
