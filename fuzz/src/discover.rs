//! The check shared by the discovery targets (`discover_kubernetes`, `discover_aws`,
//! `discover_azure`, `discover_gcp`): `mandate_govern::discover::discover` over arbitrary
//! bytes never panics, and what it accepts keeps the documented bounds and order.
//!
//! Input: `s!<selector>\n<document>` reads the document with that selector (a selector
//! that does not parse ends the run); anything else is a document read with the empty
//! selector (everything).

use mandate_govern::discover::{MAX_ITEMS, MAX_LABELS, MAX_TEXT, Selector, Source, discover};
use mandate_govern::reconcile::reconcile;

/// Runs one input against `source`'s reader.
pub fn check(source: Source, data: &[u8]) {
    let (selector, doc) = match data.strip_prefix(b"s!") {
        Some(rest) => {
            let (sel, doc) = crate::split_line(rest);
            match Selector::parse(&String::from_utf8_lossy(sel)) {
                // A selector reads back as itself.
                Ok(s) => {
                    assert_eq!(Selector::parse(&s.to_string()).ok().as_ref(), Some(&s));
                    (s, doc)
                }
                Err(_) => return,
            }
        }
        None => (Selector::everything(), data),
    };
    let Ok(found) = discover(source, doc, &selector) else {
        return;
    };
    assert!(found.len() <= MAX_ITEMS);
    let ok_text = |s: &str, max: usize| s.len() <= max && !s.chars().any(char::is_control);
    for d in &found {
        assert_eq!(d.source, source);
        assert!(
            !d.kind.is_empty() && !d.name.is_empty() && !d.uid.is_empty(),
            "{d:?}"
        );
        assert!(d.labels.len() <= MAX_LABELS);
        assert!(
            selector.matches(&d.labels),
            "{d:?} does not match {selector}"
        );
        for t in [&d.kind, &d.scope, &d.name]
            .into_iter()
            .chain(&d.location)
            .chain(&d.owner)
            .chain(&d.agent_id)
            .chain(d.labels.keys())
            .chain(d.labels.values())
        {
            assert!(ok_text(t, MAX_TEXT), "{t:?}");
        }
        // A Kubernetes object without a uid is named `namespace/kind/name`.
        assert!(ok_text(&d.uid, 3 * MAX_TEXT + 2), "{:?}", d.uid);
    }
    // In order, each item once.
    assert!(found.windows(2).all(|w| match w {
        [a, b] => a < b,
        _ => true,
    }));
    // The same input gives the same answer.
    assert_eq!(discover(source, doc, &selector).ok().as_ref(), Some(&found));
    // With no agent registered, everything found is a shadow.
    let r = reconcile(&[], &found, &[source]);
    assert_eq!(r.shadows.len(), found.len());
    assert!(r.matched.is_empty() && r.ghosts.is_empty());
}
