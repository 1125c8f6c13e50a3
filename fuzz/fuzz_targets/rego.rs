//! `mandate_policy::compile_rego` and `RegoPolicies::query` on arbitrary module text and
//! input: compiling never panics and a refusal always says why, located in the module;
//! a compiled module answers every package path and the root without panicking, and the
//! root is always defined (an object).
//!
//! Input: `<module>\xFF<input JSON>`, split at the first 0xFF byte, each read as lossy
//! UTF-8; without a 0xFF byte the input is the module text and there is no input. The
//! module is tried as Rego v1 and, when that fails, as v0.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_policy::{RegoModule, RegoSource, compile_rego};
use serde_json::Value;

const ID: &str = "fuzz.rego";

fn run(source: &str, rego_v0: bool, input: Option<&Value>) -> bool {
    let src = RegoSource {
        modules: vec![RegoModule {
            id: ID.to_owned(),
            source: source.to_owned(),
            rego_v0,
        }],
        data: serde_json::Map::new(),
    };
    match compile_rego(&src) {
        Ok(policies) => {
            let root = policies.query("", input, 0);
            if let Ok(v) = &root {
                assert!(matches!(v, Some(Value::Object(_))), "root is {v:?}");
            }
            for package in policies.packages() {
                let _ = policies.query(&package, input, 0);
                let _ = policies.query(&format!("{package}/allow"), input, 0);
            }
            true
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without an error");
            for e in &errors {
                assert!(e.source == ID || e.source == "rego", "error from {}", e.source);
                assert!(!e.message.is_empty());
            }
            false
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (module, input) = match data.iter().position(|b| *b == 0xFF) {
        Some(i) => {
            let (m, rest) = data.split_at(i);
            let text = String::from_utf8_lossy(rest.get(1..).unwrap_or_default());
            (m, serde_json::from_str::<Value>(&text).ok())
        }
        None => (data, None),
    };
    let source = String::from_utf8_lossy(module);
    if !run(&source, false, input.as_ref()) {
        run(&source, true, input.as_ref());
    }
});
