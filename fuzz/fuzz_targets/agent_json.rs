//! The checked agent values deserialized from arbitrary JSON bytes: errors are fine,
//! panics are not; whatever is accepted serializes to JSON that reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mandate_core::agent::{AgentName, Boundary, Grant, Labels, Owner, Purpose};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let json = serde_json::to_vec(&v).unwrap_or_default();
    let back = serde_json::from_slice::<T>(&json);
    assert_eq!(
        back.as_ref().ok(),
        Some(&v),
        "{} -> {back:?}",
        String::from_utf8_lossy(&json)
    );
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Boundary>(data);
    round_trip::<Grant>(data);
    round_trip::<Labels>(data);
    round_trip::<AgentName>(data);
    round_trip::<Owner>(data);
    round_trip::<Purpose>(data);
});
