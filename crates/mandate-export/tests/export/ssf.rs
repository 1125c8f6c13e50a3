//! The SETs Mandate transmits, table-driven from `tests/data/ssf_cases.json`
//! (`[{"kind", "agent"?, "actor"?, "details"?, "event"?: type URI or null, "members"?:
//! {expected event members}}]`): which events transmit which CAEP event, about whom,
//! with which members; `jti` is always the event id.

use mandate_export::ssf::{KINDS, set_claims};
use serde::Deserialize;
use serde_json::Value;

use super::event;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    kind: String,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    details: Option<Value>,
    event: Option<String>,
    #[serde(default)]
    members: serde_json::Map<String, Value>,
}

#[test]
fn events_transmit_the_caep_event_they_should() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ssf_cases.json"),
    )
    .unwrap();
    let cases: Vec<Case> = serde_json::from_str(&text).unwrap();
    let mut wrong = Vec::new();
    for c in &cases {
        let mut e = event(&c.kind);
        e.agent = c.agent.clone();
        e.actor = c.actor.clone();
        e.details = c.details.clone();
        let got = set_claims(&e, "http://mandate.x", "https://rx.x", 1_800_000_000);
        match (&c.event, &got) {
            (None, None) => {}
            (Some(want), Some(set)) => {
                let events = set["events"].as_object().unwrap();
                if events.len() != 1 || !events.contains_key(want) {
                    wrong.push(format!("{}: events {events:?}", c.kind));
                    continue;
                }
                let body = &events[want];
                for (k, v) in &c.members {
                    if &body[k] != v {
                        wrong.push(format!("{}: `{k}` is {}, not {v}", c.kind, body[k]));
                    }
                }
                let checks = [
                    (set["jti"] == "n1:7", "jti is the event id"),
                    (set["iss"] == "http://mandate.x", "iss"),
                    (set["aud"] == "https://rx.x", "aud"),
                    (set["iat"] == 1_800_000_000, "iat"),
                    (set["sub_id"]["format"] == "iss_sub", "sub_id format"),
                    (set["sub_id"]["iss"] == "http://mandate.x", "sub_id iss"),
                    (
                        set["sub_id"]["sub"].as_str() == c.agent.as_deref(),
                        "sub_id sub",
                    ),
                    (body["event_timestamp"] == e.time.secs(), "event_timestamp"),
                ];
                for (ok, what) in checks {
                    if !ok {
                        wrong.push(format!("{}: {what}: {set}", c.kind));
                    }
                }
            }
            (want, got) => wrong.push(format!("{}: want {want:?}, got {got:?}", c.kind)),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Every kind a sink takes by default is in the table, transmitting.
    for k in KINDS {
        assert!(
            cases.iter().any(|c| c.kind == *k && c.event.is_some()),
            "{k} has no case"
        );
    }
}
