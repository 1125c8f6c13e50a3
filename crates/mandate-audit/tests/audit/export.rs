//! Property tests of export verification: an untouched export of a random log verifies,
//! and every kind of tampering with its events is detected.

use ed25519_dalek::{SigningKey, VerifyingKey};
use mandate_audit::checkpoint::Checkpoint;
use mandate_audit::event::{AuditEvent, NodeName};
use mandate_audit::merkle::Frontier;
use mandate_audit::verify::{
    VerifyError, VerifyReport, checkpoint_line, event_line, verify_export, verify_export_against,
};
use mandate_core::time::Timestamp;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn vk() -> VerifyingKey {
    key().verifying_key()
}

fn node() -> NodeName {
    NodeName::new("node-a").unwrap()
}

/// The content of one event, apart from its seq.
#[derive(Debug, Clone)]
struct Content {
    kind: &'static str,
    agent: Option<String>,
    decision: Option<&'static str>,
    context: Option<Value>,
    reasons: Vec<String>,
    secs: i64,
}

fn arb_content() -> impl Strategy<Value = Content> {
    let context = prop_oneof![
        Just(None),
        (any::<String>(), any::<f64>(), any::<i64>(), "\\PC{0,20}").prop_map(|(s, f, i, t)| {
            let f = if f.is_finite() { json!(f) } else { Value::Null };
            Some(json!({"prompt": s, "score": f, "n": i, "tool": t, "nested": {"b": [1, null]}}))
        }),
    ];
    (
        prop::sample::select(vec![
            "decision",
            "token.issued",
            "token.refused",
            "credential.added",
            "agent.suspended",
        ]),
        prop::option::of("agt_[0-9A-Z]{4}"),
        prop::option::of(prop::sample::select(vec!["allow", "deny"])),
        context,
        prop::collection::vec("\\PC{0,10}", 0..3),
        0i64..2_000_000_000,
    )
        .prop_map(|(kind, agent, decision, context, reasons, secs)| Content {
            kind,
            agent,
            decision,
            context,
            reasons,
            secs,
        })
}

fn make_event(seq: u64, c: &Content) -> AuditEvent {
    let mut e = AuditEvent::new(seq, Timestamp::from_secs(c.secs), node(), c.kind);
    e.agent = c.agent.clone();
    e.decision = c.decision.map(str::to_owned);
    e.context = c.context.clone();
    e.reasons = c.reasons.clone();
    e
}

/// A random log as export lines, and for each line whether it is a checkpoint.
#[derive(Debug, Clone)]
struct Export {
    lines: Vec<String>,
    is_checkpoint: Vec<bool>,
    events: Vec<AuditEvent>,
    last: Checkpoint,
}

impl Export {
    fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }

    fn event_lines(&self) -> Vec<usize> {
        (0..self.lines.len())
            .filter(|&i| !self.is_checkpoint[i])
            .collect()
    }
}

fn arb_export() -> impl Strategy<Value = Export> {
    (
        prop::collection::vec((arb_content(), prop::bool::weighted(0.2)), 1..60),
        any::<bool>(),
    )
        .prop_map(|(events, leading)| build(&events, leading))
}

fn build(contents: &[(Content, bool)], leading_checkpoint: bool) -> Export {
    let mut f = Frontier::new();
    let mut lines = vec![];
    let mut is_checkpoint = vec![];
    let mut events = vec![];
    let mut time = 1_000;
    let mut checkpoint = |f: &Frontier, lines: &mut Vec<String>, is_cp: &mut Vec<bool>| {
        time += 10;
        let cp = Checkpoint {
            node: node(),
            size: f.size(),
            root: f.root(),
            time: Timestamp::from_secs(time),
        };
        lines.push(checkpoint_line(&cp.sign(&key())));
        is_cp.push(true);
        cp
    };
    let mut last = None;
    if leading_checkpoint {
        last = Some(checkpoint(&f, &mut lines, &mut is_checkpoint));
    }
    for (seq, (content, cp_after)) in contents.iter().enumerate() {
        let e = make_event(seq as u64, content);
        f.push(e.leaf_hash()).unwrap();
        lines.push(event_line(&e));
        is_checkpoint.push(false);
        events.push(e);
        if *cp_after {
            last = Some(checkpoint(&f, &mut lines, &mut is_checkpoint));
        }
    }
    if !is_checkpoint.last().unwrap() {
        last = Some(checkpoint(&f, &mut lines, &mut is_checkpoint));
    }
    Export {
        lines,
        is_checkpoint,
        events,
        last: last.unwrap(),
    }
}

fn verify_text(text: &[u8]) -> Result<VerifyReport, VerifyError> {
    verify_export(text, &vk())
}

fn verify_lines(lines: &[String]) -> Result<VerifyReport, VerifyError> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    verify_text(text.as_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn untouched_export_verifies(x in arb_export()) {
        let report = verify_text(x.text().as_bytes()).unwrap();
        prop_assert_eq!(report.events, x.events.len() as u64);
        prop_assert_eq!(report.checkpoints, x.is_checkpoint.iter().filter(|c| **c).count() as u64);
        prop_assert_eq!(&report.node, &node());
        prop_assert_eq!(report.root, x.last.root);
        prop_assert!(verify_export_against(x.text().as_bytes(), &vk(), std::slice::from_ref(&x.last)).is_ok());
    }

    #[test]
    fn flipped_byte_in_an_event_fails(x in arb_export(), line in any::<Index>(),
                                      at in any::<Index>(), mask in 1u8..=255) {
        let events = x.event_lines();
        let i = events[line.index(events.len())];
        let mut bytes = x.lines[i].clone().into_bytes();
        let at = at.index(bytes.len());
        bytes[at] ^= mask;
        let mut text = vec![];
        for (j, l) in x.lines.iter().enumerate() {
            text.extend_from_slice(if j == i { &bytes } else { l.as_bytes() });
            text.push(b'\n');
        }
        prop_assert!(verify_text(&text).is_err(), "line {} byte {} ^ {:#x}", i, at, mask);
    }

    #[test]
    fn flipped_byte_anywhere_fails(x in arb_export(), at in any::<Index>(), mask in 1u8..=255) {
        let mut text = x.text().into_bytes();
        let at = at.index(text.len() - 1); // the final newline aside
        text[at] ^= mask;
        prop_assert!(verify_text(&text).is_err(), "byte {} ^ {:#x}", at, mask);
    }

    #[test]
    fn changed_event_value_fails(x in arb_export(), which in any::<Index>(), other in arb_content()) {
        let k = which.index(x.events.len());
        let mut forged = make_event(k as u64, &other);
        forged.kind = "forged".into();
        let i = x.event_lines()[k];
        let mut lines = x.lines.clone();
        lines[i] = event_line(&forged);
        prop_assert!(verify_lines(&lines).is_err());
    }

    #[test]
    fn dropped_event_or_final_checkpoint_fails(x in arb_export(), which in any::<Index>()) {
        let i = which.index(x.lines.len());
        let mut lines = x.lines.clone();
        lines.remove(i);
        let result = verify_lines(&lines);
        if x.is_checkpoint[i] && i + 1 < x.lines.len() {
            // An intermediate checkpoint carries no event: the log without it is one the
            // node could have exported. Its events are still all checked.
            let report = result.unwrap();
            prop_assert_eq!(report.events, x.events.len() as u64);
        } else {
            prop_assert!(result.is_err(), "dropped line {}", i + 1);
        }
    }

    #[test]
    fn duplicated_line_fails(x in arb_export(), which in any::<Index>(), to in any::<Index>()) {
        let i = which.index(x.lines.len());
        let to = to.index(x.lines.len() + 1);
        let mut lines = x.lines.clone();
        lines.insert(to, x.lines[i].clone());
        prop_assert!(verify_lines(&lines).is_err(), "line {} copied to {}", i + 1, to + 1);
    }

    #[test]
    fn forged_event_line_fails(x in arb_export(), content in arb_content(),
                               seq in any::<Index>(), to in any::<Index>()) {
        let seq = seq.index(x.events.len() + 1) as u64;
        let mut forged = make_event(seq, &content);
        forged.kind = "forged".into();
        let to = to.index(x.lines.len() + 1);
        let mut lines = x.lines.clone();
        lines.insert(to, event_line(&forged));
        prop_assert!(verify_lines(&lines).is_err(), "seq {} at line {}", seq, to + 1);
    }

    #[test]
    fn swapped_events_fail(x in arb_export(), a in any::<Index>(), b in any::<Index>()) {
        let events = x.event_lines();
        prop_assume!(events.len() >= 2);
        let (a, b) = (events[a.index(events.len())], events[b.index(events.len())]);
        prop_assume!(a != b);
        let mut lines = x.lines.clone();
        lines.swap(a, b);
        prop_assert!(verify_lines(&lines).is_err());
    }

    #[test]
    fn truncation_is_detected(x in arb_export(), keep in any::<Index>()) {
        let keep = keep.index(x.lines.len()); // lines kept: 0..len-1
        let lines = &x.lines[..keep];
        let result = verify_lines(lines);
        if keep > 0 && x.is_checkpoint[keep - 1] {
            // A cut right after a checkpoint is a valid shorter log; only a checkpoint
            // held outside the export reveals it.
            let report = result.unwrap();
            prop_assert!(report.events <= x.events.len() as u64);
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let against = verify_export_against(text.as_bytes(), &vk(), std::slice::from_ref(&x.last));
            prop_assert!(against.is_err());
        } else {
            prop_assert!(result.is_err(), "kept {} of {} lines", keep, x.lines.len());
        }
    }

    #[test]
    fn byte_truncation_is_detected(x in arb_export(), at in any::<Index>()) {
        let text = x.text();
        let at = at.index(text.len()); // bytes kept: 0..len-1
        let cut = &text.as_bytes()[..at];
        // Where the cut is on a checkpoint line's end, with or without its newline, a
        // shorter log remains.
        let mut end = 0;
        let mut at_checkpoint_end = false;
        for (l, is_cp) in x.lines.iter().zip(&x.is_checkpoint) {
            end += l.len();
            if *is_cp && (at == end || at == end + 1) {
                at_checkpoint_end = true;
            }
            end += 1;
        }
        let result = verify_text(cut);
        // Only the final newline gone: nothing is lost (the format lets the last line's
        // `\n` be missing), so even the last checkpoint still matches.
        let only_final_newline = at + 1 == text.len();
        if only_final_newline {
            prop_assert!(verify_export_against(cut, &vk(), std::slice::from_ref(&x.last)).is_ok());
        } else if at_checkpoint_end {
            prop_assert!(result.is_ok());
            prop_assert!(verify_export_against(cut, &vk(), std::slice::from_ref(&x.last)).is_err());
        } else {
            prop_assert!(result.is_err(), "cut at byte {}", at);
        }
    }
}

#[test]
fn errors_name_the_line() {
    let contents: Vec<(Content, bool)> = (0..4)
        .map(|i| {
            (
                Content {
                    kind: "decision",
                    agent: None,
                    decision: Some("allow"),
                    context: None,
                    reasons: vec![],
                    secs: i,
                },
                false,
            )
        })
        .collect();
    let x = build(&contents, false);
    let mut lines = x.lines.clone();
    lines.swap(1, 2);
    let err = verify_lines(&lines).unwrap_err();
    assert_eq!(err.to_string(), "line 2: event seq 2, expected 1");
    let mut lines = x.lines.clone();
    lines.pop();
    let err = verify_lines(&lines).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 4: export does not end with a checkpoint of all 4 events"
    );
}
