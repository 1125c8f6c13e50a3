//! The conformance kit: what every backend must do, as checks over a fresh [`Store`].
//! A backend's test suite expands [`crate::conformance_tests!`] with a function that
//! opens a fresh, empty store; each check becomes one test (`agents::…`, `seam::…`), so
//! a failure names the rule and the backend. [`CHECKS`] lists the same checks as data.
//!
//! Every check is `pub fn name(store: &dyn Store)` and panics when the store breaks the
//! rule its doc line states: these are tests, living in the library so every backend
//! runs the same ones.

#![expect(
    clippy::unwrap_used,
    reason = "the kit's helpers are test code: a setup failure fails the check loudly"
)]

pub mod agents;
pub mod anomalies;
pub mod audit;
pub mod mandates;
pub mod reviews;
pub mod seam;
pub mod tokens;

use std::collections::BTreeMap;

use mandate_core::admin::{AdminToken, Role};
use mandate_core::agent::{Agent, AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
use mandate_core::clock::ManualClock;
use mandate_core::credential::{Credential, CredentialKind};
use mandate_core::id::{AdminTokenId, AgentId, CredentialId};
use mandate_core::random::OsRandom;
use mandate_core::time::Timestamp;
use serde_json::json;

use crate::prelude::*;

/// One check: panics if `store` breaks its rule.
pub type Check = fn(&dyn Store);

/// Every check, by `module::name` (the test's path under the macro's expansion), in the
/// order the macro expands them. Built from the same list as [`crate::conformance_tests!`],
/// so the two cannot disagree.
pub const CHECKS: &[(&str, Check)] = crate::conformance_tests!(@list list_const ());

/// Opens a fresh store with `open`, runs `check` on it, then drops the store before its
/// guard (a temporary directory outlives the database in it).
pub fn run<G>(open: impl FnOnce() -> (G, Box<dyn Store>), check: Check) {
    let (guard, store) = open();
    check(&*store);
    drop(store);
    drop(guard);
}

/// Expands to one `#[test]` per conformance check, each against a fresh store from
/// `open`: `mandate_store::conformance_tests!(open);` with
/// `fn open() -> (Guard, Box<dyn Store>)`, the guard kept alive for the test (e.g. the
/// `TempDir` the database lives in). The tests are `agents::…`, `mandates::…`, `seam::…`
/// and so on, one module per kit module; expand it once per test crate (or module).
///
/// The `@…` arms are the macro's own plumbing: the one list of checks, and the two
/// things built from it (these tests and [`conformance::CHECKS`](crate::conformance::CHECKS)).
#[macro_export]
macro_rules! conformance_tests {
    // The one list of checks. A new check is added here and nowhere else.
    (@list $mode:ident $args:tt) => {
        $crate::conformance_tests! {@$mode $args
            agents {
                insert_get_and_unknown_agent,
                agent_names_are_unique,
                list_filters_by_owner_status_and_label,
                list_pages_with_a_cursor,
                for_each_agent_streams_every_agent_in_id_order,
                modify_agent_changes_fields_and_refuses_taken_names,
                decommission_revokes_every_credential_in_the_same_transaction,
                a_decommissioned_agent_gets_no_new_credential,
                a_refusing_change_writes_nothing,
                credentials_round_trip_oldest_first,
                every_credential_change_moves_the_generation_and_reads_do_not,
                rotation_limits_the_old_credential_and_links_the_new,
                rotation_refuses_unusable_replaced_and_mismatched_credentials,
                revoke_credential_is_scoped_to_its_agent,
                for_each_credential_streams_every_credential_in_id_order,
                a_tls_client_auth_credential_keeps_its_name,
                activity_only_moves_later,
            }
            tokens {
                assertion_jtis_refuse_replays_and_expire,
                revoked_tokens_are_remembered_until_they_expire,
                admin_tokens_are_found_by_digest_until_revoked,
                set_bootstrap_digest_replaces_the_previous_bootstrap,
                adding_a_signing_key_retires_the_previous_one,
                a_signing_key_replaces_only_the_key_its_caller_saw,
                a_key_from_before_gets_its_sealed_half_once,
                the_store_key_check_is_claimed_once,
                user_session_cutoffs_only_move_later,
            }
            audit {
                an_agents_recent_audit_events_and_a_checkpoint_by_size,
                a_group_commit_carries_its_checkpoint,
                a_checkpoint_that_does_not_end_the_batch_writes_nothing,
                batches_of_any_size_append_every_row_once,
                a_nodes_log_is_read_by_its_name_with_its_one_key,
                policy_versions_round_trip_and_activate,
                export_cursors_only_advance,
                ssf_streams_and_their_poll_queue,
                audit_filters_list_and_count_alike,
            }
            mandates {
                every_field_round_trips,
                an_unknown_agent_or_a_taken_id_is_refused,
                list_filters_by_agent_status_and_user_sub,
                list_pages_with_a_cursor,
                modify_writes_the_change_back,
                a_change_with_the_owner_sees_the_owner_at_the_time_of_the_write,
                a_refusing_change_writes_nothing,
                a_change_may_not_move_a_mandate,
                active_and_lapsed_agree_with_status_at_on_the_boundary_second,
                mandates_of_agent_are_its_unfinished_ones,
            }
            anomalies {
                anomalies_are_listed_resolved_once_and_holds_found,
                baselines_are_replaced_and_only_for_known_agents,
            }
            reviews {
                reviews_and_items_round_trip,
                an_item_is_decided_once_and_a_campaign_completes_once,
                overdue_items_escalate_once,
            }
            seam {
                a_failing_write_unit_writes_nothing,
                write_returns_the_callers_own_error,
                a_write_in_a_read_unit_is_refused_and_writes_nothing,
                two_writes_in_one_unit_both_commit,
                a_write_unit_publishes_the_topics_it_touched,
                reads_publish_nothing,
                a_wait_with_no_change_times_out_empty,
                a_write_wakes_a_waiter_on_another_thread,
                decommissioning_publishes_credentials,
                update_mandate_refuses_a_new_id_or_agent,
            }
        }
    };
    (@tests ($open:expr) $($module:ident { $($check:ident),* $(,)? })*) => {
        fn __conformance_run(check: $crate::conformance::Check) {
            $crate::conformance::run($open, check);
        }
        $(
            mod $module {
                $(
                    #[test]
                    fn $check() {
                        super::__conformance_run($crate::conformance::$module::$check);
                    }
                )*
            }
        )*
    };
    (@list_const () $($module:ident { $($check:ident),* $(,)? })*) => {
        &[$($((
            concat!(stringify!($module), "::", stringify!($check)),
            $crate::conformance::$module::$check as $crate::conformance::Check,
        ),)*)*]
    };
    ($open:expr $(,)?) => {
        $crate::conformance_tests!(@list tests ($open));
    };
}

/// 2023-11-14T22:13:20Z, the base time of every check.
pub const T0: i64 = 1_700_000_000;

/// `T0 + secs`.
pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs(T0 + secs)
}

/// An id created at `T0 + ms` milliseconds, so ids sort in the order checks make them.
pub fn agent_id(ms: i64) -> AgentId {
    AgentId::generate(&ManualClock::at_millis(T0 * 1000 + ms), &OsRandom).unwrap()
}

/// A credential id created at `T0 + ms` milliseconds.
pub fn credential_id(ms: i64) -> CredentialId {
    CredentialId::generate(&ManualClock::at_millis(T0 * 1000 + ms), &OsRandom).unwrap()
}

/// An admin token id created at `T0 + ms` milliseconds.
pub fn admin_id(ms: i64) -> AdminTokenId {
    AdminTokenId::generate(&ManualClock::at_millis(T0 * 1000 + ms), &OsRandom).unwrap()
}

/// An active agent `name` of `owner` with `labels`, its id made at `T0 + ms`.
pub fn agent(ms: i64, name: &str, owner: &str, labels: &[(&str, &str)]) -> Agent {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Agent {
        id: agent_id(ms),
        name: AgentName::try_from(name.to_owned()).unwrap(),
        owner: Owner::try_from(owner.to_owned()).unwrap(),
        purpose: Purpose::try_from(format!("test agent {name}")).unwrap(),
        labels: Labels::try_from(labels).unwrap(),
        boundary: Boundary::default(),
        status: AgentStatus::Active,
        status_reason: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

pub(crate) fn secret_credential(ms: i64, agent: &AgentId) -> Credential {
    Credential {
        id: credential_id(ms),
        agent_id: agent.clone(),
        kind: CredentialKind::ClientSecret,
        public_jwk: None,
        key_id: None,
        cert_name: None,
        created_at: at(0),
        expires_at: None,
        revoked_at: None,
        replaced_by: None,
    }
}

pub(crate) fn key_credential(ms: i64, agent: &AgentId) -> Credential {
    Credential {
        kind: CredentialKind::PublicKey,
        public_jwk: Some(
            json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
        ),
        key_id: Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k".into()),
        cert_name: None,
        ..secret_credential(ms, agent)
    }
}

pub(crate) fn admin_token(ms: i64, name: &str, role: Role, bootstrap: bool) -> AdminToken {
    AdminToken {
        id: admin_id(ms),
        name: name.into(),
        role,
        bootstrap,
        created_at: at(0),
        revoked_at: None,
    }
}

pub(crate) fn names(agents: &[Agent]) -> Vec<&str> {
    agents.iter().map(|a| a.name.as_str()).collect()
}

pub(crate) fn credential(store: &dyn Store, agent: &AgentId, id: &CredentialId) -> Credential {
    store
        .credentials(agent)
        .unwrap()
        .into_iter()
        .find(|c| c.credential.id == *id)
        .unwrap()
        .credential
}

pub(crate) fn assert_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::Conflict(_))),
        "expected Conflict, got {r:?}"
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::CHECKS;

    // The macro and `CHECKS` expand the same list; this pins that the list has no
    // duplicate (a duplicate would be two tests of one name, a compile error only in the
    // backend's crate) and that every kit module is in it.
    #[test]
    fn the_list_of_checks_is_unique_and_covers_every_module() {
        let names: BTreeSet<&str> = CHECKS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), CHECKS.len(), "a check is listed twice");
        let modules: BTreeSet<&str> = names.iter().filter_map(|n| n.split("::").next()).collect();
        assert_eq!(
            modules.into_iter().collect::<Vec<_>>(),
            [
                "agents",
                "anomalies",
                "audit",
                "mandates",
                "reviews",
                "seam",
                "tokens"
            ]
        );
    }
}
