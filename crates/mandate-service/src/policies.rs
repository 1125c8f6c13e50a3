//! The policy sets' use cases, whatever edge asks: add a version (compiled against the
//! schema first: an invalid one is refused with every problem located, and nothing
//! changes), validate without saving, list, show, activate and roll back. Versions are
//! immutable; activating one governs the very next decision (`INVARIANT (one write
//! path)`). A refusal is a [`PolicyError`].
//!
//! A version holds Cedar (policies, schema fragments) and Rego (modules, base `data`):
//! both are compiled whenever either is, and a version is refused when either part
//! does not compile. OPA's Policy API edits one Rego module at a time
//! ([`put_module`], [`delete_module`]): each makes a new version from the active one
//! with that module changed and activates it, in one write unit.

use std::sync::Arc;

use mandate_policy::{CompiledPolicies, RegoModule, RegoSource};
use mandate_store::prelude::*;
use mandate_store::{PolicyVersionRow, StoreError};
use serde_json::json;

use crate::actor::Actor;
use crate::error::ServiceError;
pub use crate::node::rego_of;
use crate::node::{VersionError, compile_parts};
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
    /// A policy replay is already running on this node (`INVARIANT (one replay per
    /// node)`, replay.rs): the caller may retry when it ends.
    #[error("a policy replay is already running on this node")]
    ReplayRunning,
    /// The replay's caller hung up, so the job stopped: nobody reads this.
    #[error("the replay was abandoned by its caller")]
    Abandoned,
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
    /// Rego modules and the base `data` document.
    pub rego: RegoSource,
}

/// A version's Rego part as stored (`""`: none).
fn rego_json(rego: &RegoSource) -> Result<String, PolicyError> {
    if rego.is_empty() {
        return Ok(String::new());
    }
    serde_json::to_string(rego).map_err(|e| PolicyError::Invalid {
        field: "rego_modules",
        why: e.to_string(),
    })
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
    compile_parts(&source.schema_fragments, &source.policies, &source.rego)
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
            &rego_json(&source.rego)?,
            &source.note,
            s.clock.now(),
            &by,
        )?;
        let policy_ids = c.policy_ids();
        let modules: Vec<&str> = source.rego.modules.iter().map(|m| m.id.as_str()).collect();
        let details = if modules.is_empty() {
            json!({"version": version, "policy_ids": policy_ids})
        } else {
            json!({"version": version, "policy_ids": policy_ids, "rego_modules": modules})
        };
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

/// A change OPA's Policy API made: the new version, activated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleChange {
    /// The version made and activated.
    pub version: i64,
    /// The version active before, if any (its Cedar part and other modules carried over).
    pub previous: Option<i64>,
}

/// Why OPA's Policy API changed nothing, beyond [`PolicyError`].
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// No module with that id in the active version.
    #[error("no policy module `{0}` in the active version")]
    UnknownModule(String),
    /// The policy use case refused.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

impl From<StoreError> for ModuleError {
    fn from(e: StoreError) -> Self {
        Self::Policy(PolicyError::Store(e))
    }
}

impl From<ServiceError> for ModuleError {
    fn from(e: ServiceError) -> Self {
        Self::Policy(PolicyError::Service(e))
    }
}

/// The Rego modules of the active version (none when no version is active).
pub async fn active_modules(node: &Arc<Node>) -> Result<Vec<RegoModule>, PolicyError> {
    node.blocking(|s| -> Result<_, PolicyError> {
        let Some(v) = s.store().policy_activation_state()?.0 else {
            return Ok(Vec::new());
        };
        let row = s
            .store()
            .policy_version(v)?
            .ok_or(PolicyError::UnknownVersion(v))?;
        Ok(rego_of(&row).map_err(PolicyError::Rejected)?.modules)
    })
    .await
    .map_err(ServiceError::from)?
}

/// OPA's `PUT /v1/policies/{id}`: a new version made of the active one with module `id`
/// added or replaced by `source` (Rego v1), compiled, stored and activated in one write
/// unit, as `actor` (`policy.module_put`). Refused, changing nothing, when the result
/// does not compile.
pub async fn put_module(
    node: &Arc<Node>,
    actor: &Actor,
    id: String,
    source: String,
) -> Result<ModuleChange, ModuleError> {
    change_module(node, actor, "policy.module_put", id, Some(source)).await
}

/// OPA's `DELETE /v1/policies/{id}`: a new version made of the active one without module
/// `id`, activated, as `actor` (`policy.module_deleted`); [`ModuleError::UnknownModule`]
/// when the active version has no such module.
pub async fn delete_module(
    node: &Arc<Node>,
    actor: &Actor,
    id: String,
) -> Result<ModuleChange, ModuleError> {
    change_module(node, actor, "policy.module_deleted", id, None).await
}

async fn change_module(
    node: &Arc<Node>,
    actor: &Actor,
    kind: &'static str,
    id: String,
    put: Option<String>,
) -> Result<ModuleChange, ModuleError> {
    // An id is printed by `mandate policy list/show` and in notes and errors: a control
    // character (a newline, NUL, an ANSI escape) would forge lines on an operator's
    // terminal.
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return Err(PolicyError::Invalid {
            field: "id",
            why: "a policy module id is 1-256 bytes without control characters".into(),
        }
        .into());
    }
    let by = actor.name();
    node.perform(kind, actor, move |s| {
        let now = s.clock.now();
        // One unit: the active version read, the new one written and activated, so two
        // concurrent edits cannot both start from the same active version and lose one.
        let change = s.store().write(|r| -> Result<ModuleChange, ModuleError> {
            let (previous, _) = r.policy_activation_state()?;
            let base = match previous {
                Some(v) => Some(r.policy_version(v)?.ok_or(PolicyError::UnknownVersion(v))?),
                None => None,
            };
            let (policies, fragments) = base
                .as_ref()
                .map(|b| (b.policies.clone(), b.fragments.clone()))
                .unwrap_or_default();
            let mut rego = match &base {
                Some(b) => rego_of(b).map_err(PolicyError::Rejected)?,
                None => RegoSource::default(),
            };
            let at = rego.modules.iter().position(|m| m.id == id);
            match (&put, at) {
                (Some(src), Some(i)) => {
                    if let Some(m) = rego.modules.get_mut(i) {
                        *m = RegoModule {
                            id: id.clone(),
                            source: src.clone(),
                            rego_v0: false,
                        };
                    }
                }
                (Some(src), None) => rego.modules.push(RegoModule {
                    id: id.clone(),
                    source: src.clone(),
                    rego_v0: false,
                }),
                (None, Some(i)) => {
                    rego.modules.remove(i);
                }
                (None, None) => return Err(ModuleError::UnknownModule(id.clone())),
            }
            let note = match &put {
                Some(_) => format!("OPA Policy API: put module {id}"),
                None => format!("OPA Policy API: delete module {id}"),
            };
            let source = PolicySource {
                policies,
                schema_fragments: fragments,
                note,
                rego,
            };
            compile(&source)?;
            let version = r.insert_policy_version(
                &source.policies,
                &source.schema_fragments,
                &rego_json(&source.rego)?,
                &source.note,
                now,
                &by,
            )?;
            r.activate_policy_version(version, now, &by)?;
            Ok(ModuleChange { version, previous })
        })?;
        let details = json!({"module": id, "version": change.version, "previous": change.previous});
        Ok::<_, ModuleError>((change, Recorded::details(details)))
    })
    .await
}
