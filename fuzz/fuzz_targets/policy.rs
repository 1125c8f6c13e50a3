//! `mandate_policy::compile` on arbitrary schema fragment and policy text: never
//! panics, and a refusal always says why. Policies that compile against the CRM
//! example's schema are evaluated on fixed requests: that never panics, and the outcome
//! is sound (an allow has no errors and names its permits).
//!
//! Input: `<fragment>\xFF<policies>`, split at the first 0xFF byte, each read as lossy
//! UTF-8: the policies are compiled with that fragment. Without a 0xFF byte the input
//! is policy text, compiled with the CRM schema. (One compilation per run: Cedar's
//! schema parser is slow under the sanitizer.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_fuzz::{CRM_SCHEMA, crm_agents, sound_outcome};
use mandate_policy::{CompiledPolicies, PolicyError, PolicyRequest, compile};
use serde_json::{Value, json};

fn check(result: &Result<CompiledPolicies, Vec<PolicyError>>) -> Option<&CompiledPolicies> {
    match result {
        Ok(c) => {
            assert_eq!(c.policy_ids().len(), c.len());
            Some(c)
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without an error");
            None
        }
    }
}

fn evaluate(
    c: &CompiledPolicies,
    action: &str,
    resource_type: &str,
    attrs: &Value,
    context: &Value,
) {
    for principal in crm_agents().iter().take(2) {
        let outcome = c.evaluate(&PolicyRequest {
            principal,
            action,
            resource_type,
            resource_id: "r-1",
            resource_attributes: attrs,
            context,
            on_behalf: Default::default(),
        });
        sound_outcome(c, &outcome);
    }
}

fuzz_target!(|data: &[u8]| {
    match data
        .iter()
        .position(|b| *b == 0xFF)
        .map(|i| data.split_at(i))
    {
        Some((fragment, policies)) => {
            let fragment = String::from_utf8_lossy(fragment).into_owned();
            let policies = String::from_utf8_lossy(policies.get(1..).unwrap_or_default());
            if let Some(c) = check(&compile(&[fragment], &policies)) {
                evaluate(
                    c,
                    "crm:read",
                    "Crm::Contact",
                    &json!({"team": "sales"}),
                    &json!({}),
                );
            }
        }
        None => {
            let policies = String::from_utf8_lossy(data);
            if let Some(c) = check(&compile(&[CRM_SCHEMA.to_owned()], &policies)) {
                let internal = json!({"data_class": "internal", "source_ip": "10.1.2.3"});
                evaluate(
                    c,
                    "crm:read",
                    "Crm::Contact",
                    &json!({"team": "sales"}),
                    &internal,
                );
                evaluate(
                    c,
                    "crm:write",
                    "Crm::Contact",
                    &json!({"team": "sales", "region": "eu"}),
                    &internal,
                );
                evaluate(
                    c,
                    "crm:refund",
                    "Crm::Invoice",
                    &json!({"team": "sales", "amount": 100_000}),
                    &json!({"data_class": "financial", "amount": 2500, "refunded": i64::MAX}),
                );
            }
        }
    }
});
