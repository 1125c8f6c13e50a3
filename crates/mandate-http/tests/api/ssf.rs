//! `POST /ssf/events` at the edge: a push refused before its body is read as a SET (its
//! media type, its size, not UTF-8) is answered with RFC 8935's `invalid_request` and
//! recorded as `ssf.refused`, as every refused SET is.

use super::*;

/// Regression (atk7): these refusals were answered but never recorded, though the
/// receiver's contract (docs/ssf.md) is that every SET is recorded before the answer.
#[tokio::test]
async fn pushes_refused_before_parsing_are_answered_and_recorded() {
    let env = Env::new();
    let cases: [(&str, Option<&str>, Vec<u8>); 4] = [
        ("no media type", None, b"a.b.c".to_vec()),
        ("JSON", Some("application/json"), b"a.b.c".to_vec()),
        (
            "over 64 KiB",
            Some("application/secevent+jwt"),
            vec![b'a'; 64 * 1024 + 1],
        ),
        (
            "not UTF-8",
            Some("application/secevent+jwt"),
            b"\xff\xfe.a.b".to_vec(),
        ),
    ];
    for (why, media, body) in &cases {
        let mut req = Request::builder().method(Method::POST).uri("/ssf/events");
        if let Some(m) = media {
            req = req.header(header::CONTENT_TYPE, *m);
        }
        let reply = env
            .send(req.body(Body::from(body.clone())).expect("request"))
            .await;
        reply.expect(400);
        assert_eq!(reply.json()["err"], "invalid_request", "{why}");
    }
    let refused = env
        .admin(Method::GET, "/v1/audit/events?kind=ssf.refused", None)
        .await;
    refused.expect(200);
    let items = refused.json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(items.len(), cases.len(), "{items:?}");
    assert!(
        items
            .iter()
            .all(|e| e["details"]["error"] == "invalid_request"),
        "{items:?}"
    );
}
