//! Evaluating requests against the CRM example's policies (compiled once), with
//! fuzzer-chosen action, resource type and id, principal, resource attributes and
//! context: never panics; the outcome is sound (an allow has no errors and names its
//! permits); and what the example's policies forbid is never allowed.
//!
//! Input: see [`CrmRequest`]: `<action><type><principal>` selector bytes, then the
//! fields not selected, the resource id, the attributes' JSON and the context's JSON,
//! one a line (the context is the rest).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_core::agent::AgentStatus;
use mandate_fuzz::{CrmRequest, crm, sound_outcome};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some(input) = CrmRequest::parse(data) else {
        return;
    };
    let policies = crm();
    let outcome = policies.evaluate(&input.request());
    sound_outcome(policies, &outcome);
    if !outcome.allowed {
        return;
    }
    // Only the permits' actions and resource types, only active agents, no secrets
    // without clearance, no refund over 500.00.
    let why = format!("allowed {input:?}: {outcome:?}");
    assert!(
        ["crm:read", "crm:write", "crm:refund"].contains(&input.action.as_str()),
        "{why}"
    );
    assert!(
        ["Crm::Contact", "Crm::Invoice"].contains(&input.resource_type.as_str()),
        "{why}"
    );
    assert_eq!(input.principal.status, AgentStatus::Active, "{why}");
    let cleared = input
        .principal
        .labels
        .iter()
        .any(|kv| kv == ("clearance", "secret"));
    let data_class = input.context.get("data_class").and_then(Value::as_str);
    assert!(cleared || data_class != Some("secret"), "{why}");
    if input.action == "crm:refund" {
        let amount = input.context.get("amount").and_then(Value::as_i64);
        assert!(amount.is_some_and(|a| a <= 50_000), "{why}");
    }
});
