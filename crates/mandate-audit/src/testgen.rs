//! Test-only generators shared by this crate's property tests.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Arbitrary JSON: every number kind (`i64`, `u64`, finite `f64`), any strings and
/// strings dense in what canonical JSON escapes, nested up to 3 levels, objects of up to
/// 20 members (past the canonical writer's stack-sorted size) whose keys include ones
/// that sort differently by UTF-8 and by UTF-16 (U+E000…U+FFFF against U+10000…).
pub(crate) fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter_map("finite", Number::from_f64)
            .prop_map(Value::Number),
        any::<String>().prop_map(Value::String),
        "\\PC{0,12}".prop_map(Value::String),
        "[a-c\"\\\\\u{1}\n]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 48, 20, |inner| {
        let key = prop_oneof![
            any::<String>(),
            "[a-c\"\u{1}\n\u{e000}\u{ffff}\u{10000}]{0,3}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..20)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}
