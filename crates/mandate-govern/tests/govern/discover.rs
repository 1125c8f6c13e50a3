//! Discovery: every case folder under `tests/data/discover/`, selectors, and the bounds
//! on untrusted input.

use std::fs;
use std::path::Path;

use mandate_govern::discover::{
    DiscoverError, MAX_INPUT_BYTES, MAX_ITEMS, MAX_LABELS, MAX_VALUES, Selector, Source, discover,
};
use serde_json::{Value, json};

fn run_case(dir: &Path) -> Value {
    let case: Value = serde_json::from_slice(&fs::read(dir.join("case.json")).unwrap()).unwrap();
    let source = Source::parse(case["source"].as_str().unwrap()).unwrap();
    let selector = Selector::parse(case["selector"].as_str().unwrap()).unwrap();
    let input = fs::read(dir.join("input.json")).unwrap();
    match discover(source, &input, &selector) {
        Ok(found) => serde_json::to_value(found).unwrap(),
        Err(e) => json!({"error": e.code()}),
    }
}

#[test]
fn every_documented_shape_reads_as_expected() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/discover");
    let bless = std::env::var_os("MANDATE_BLESS").is_some();
    let mut cases: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "cases missing under {}", root.display());
    let mut failed = Vec::new();
    for dir in cases {
        let got = run_case(&dir);
        let path = dir.join("expected.json");
        if bless {
            fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
            continue;
        }
        let want: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        if got != want {
            failed.push(format!(
                "{}: got\n{}",
                dir.display(),
                serde_json::to_string_pretty(&got).unwrap()
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

#[test]
fn kubectl_list_reads_owner_and_link_from_annotations_then_labels() {
    let input = fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/discover/kubectl_pods/input.json"),
    )
    .unwrap();
    let found = discover(Source::Kubernetes, &input, &Selector::kubernetes_default()).unwrap();
    // The `app=web` pod is not selected.
    let names: Vec<_> = found.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["support-agent-7d9f8b6c5-x2k4q", "scraper"]);
    assert_eq!(
        found[0].agent_id.as_deref(),
        Some("agt_01J00000000000000000000001")
    );
    assert_eq!(found[0].owner.as_deref(), Some("alice@example.com"));
    assert_eq!(found[0].scope, "agents");
    assert_eq!(found[1].owner.as_deref(), Some("bob"));
    assert_eq!(found[1].agent_id, None);
    // Annotations are not kept (the last-applied configuration is large).
    assert!(!found[0].labels.keys().any(|k| k.starts_with("kubectl.")));
}

#[test]
fn selectors_parse_and_match_like_kubernetes_equality_selectors() {
    let labels = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let l = labels(&[("app", "ai-agent"), ("team", "x")]);
    for (s, want) in [
        ("", true),
        ("app=ai-agent", true),
        ("app==ai-agent", true),
        ("app = ai-agent , team", true),
        ("app!=ai-agent", false),
        ("app!=web", true),
        ("team", true),
        ("!team", false),
        ("!owner", true),
        ("owner", false),
        ("app=web", false),
    ] {
        let sel = Selector::parse(s).unwrap();
        assert_eq!(sel.matches(&l), want, "{s}");
        // Display reads back to the same selector.
        assert_eq!(Selector::parse(&sel.to_string()).unwrap(), sel, "{s}");
    }
    for bad in [
        "=x",
        "a,,b",
        "!",
        "a b=c",
        "a= =b",
        "a=b=c",
        &"a,".repeat(17),
    ] {
        assert!(Selector::parse(bad).is_err(), "{bad:?} accepted");
    }
    assert_eq!(Selector::kubernetes_default().to_string(), "app=ai-agent");
}

#[test]
fn oversized_input_is_refused_before_it_is_parsed() {
    let big = vec![b' '; MAX_INPUT_BYTES + 1];
    for s in Source::ALL {
        assert_eq!(
            discover(s, &big, &Selector::everything()),
            Err(DiscoverError::TooLarge(MAX_INPUT_BYTES + 1))
        );
    }
}

#[test]
fn too_many_items_or_labels_are_refused() {
    let many: Vec<Value> = (0..=MAX_ITEMS).map(|_| json!(null)).collect();
    let doc = serde_json::to_vec(&many).unwrap();
    for s in [Source::Aws, Source::Azure, Source::Gcp] {
        assert_eq!(
            discover(s, &doc, &Selector::everything()),
            Err(DiscoverError::TooManyItems),
            "{s}"
        );
    }
    let k8s = serde_json::to_vec(&json!({"kind": "List", "items": many})).unwrap();
    assert_eq!(
        discover(Source::Kubernetes, &k8s, &Selector::everything()),
        Err(DiscoverError::TooManyItems)
    );
    let labels: serde_json::Map<String, Value> = (0..=MAX_LABELS)
        .map(|i| (format!("k{i}"), json!("v")))
        .collect();
    let pod = json!({"kind": "Pod", "metadata": {"name": "p", "labels": labels}});
    let e = discover(
        Source::Kubernetes,
        &serde_json::to_vec(&pod).unwrap(),
        &Selector::everything(),
    )
    .unwrap_err();
    assert_eq!(e.code(), "bad_shape");
    assert!(e.to_string().contains("metadata.labels"), "{e}");
}

#[test]
fn wrong_shapes_name_where() {
    for (source, doc, at) in [
        (Source::Kubernetes, json!([]), "$"),
        (Source::Kubernetes, json!({"kind": "Pod"}), "$.metadata"),
        (
            Source::Kubernetes,
            json!({"kind": "List", "items": [{"metadata": {"name": "a"}}]}),
            "items[0].kind",
        ),
        (
            Source::Aws,
            json!({"ResourceTagMappingList": [{"ResourceARN": "arn:aws:s3:::b", "Tags": [{"Value": "v"}]}]}),
            "Tags[0].Key",
        ),
        (
            Source::Azure,
            json!([{"id": "/subscriptions/s", "name": "n"}]),
            "[0].type",
        ),
        (
            Source::Azure,
            json!([{"id": "/subscriptions/s", "name": "n", "type": "t", "tags": ["a"]}]),
            "[0].tags",
        ),
        (Source::Gcp, json!({"results": 3}), "results"),
        (
            Source::Gcp,
            json!([{"name": "//x/y", "assetType": "t", "labels": {"a": "b\u{0}"}}]),
            "[0].labels.a",
        ),
    ] {
        let e = discover(
            source,
            &serde_json::to_vec(&doc).unwrap(),
            &Selector::everything(),
        )
        .unwrap_err();
        assert_eq!(e.code(), "bad_shape", "{doc}");
        assert!(e.to_string().contains(at), "{e} should name {at}");
    }
}

#[test]
fn an_empty_answer_is_no_items() {
    for (s, doc) in [
        (
            Source::Kubernetes,
            json!({"apiVersion": "v1", "kind": "List", "items": []}),
        ),
        (
            Source::Aws,
            json!({"ResourceTagMappingList": [], "PaginationToken": ""}),
        ),
        (Source::Azure, json!([])),
        (Source::Gcp, json!([])),
    ] {
        let got = discover(
            s,
            &serde_json::to_vec(&doc).unwrap(),
            &Selector::everything(),
        );
        assert_eq!(got, Ok(vec![]), "{s}");
    }
}

#[test]
fn arns_split_into_kind_scope_and_name() {
    use mandate_govern::discover::aws::Arn;
    for (arn, kind, account, name) in [
        (
            "arn:aws:lambda:us-east-1:123456789012:function:f",
            "lambda:function",
            "123456789012",
            "f",
        ),
        (
            "arn:aws:lambda:us-east-1:123456789012:function:f:7",
            "lambda:function",
            "123456789012",
            "f:7",
        ),
        ("arn:aws:ecs:eu-west-1:1:task/c/abc", "ecs:task", "1", "abc"),
        ("arn:aws:iam::1:role/p/q/r", "iam:role", "1", "r"),
        ("arn:aws:s3:::bucket", "s3", "", "bucket"),
        ("arn:aws-cn:sqs:cn-north-1:1:queue", "sqs", "1", "queue"),
    ] {
        let a = Arn::parse(arn).unwrap();
        assert_eq!(
            (a.kind().as_str(), a.account, a.name()),
            (kind, account, name),
            "{arn}"
        );
    }
    for bad in [
        "",
        "arn:aws",
        "arn:aws:::1:",
        "urn:aws:s3:::b",
        "arn:aws::r:1:x",
    ] {
        assert_eq!(Arn::parse(bad), None, "{bad}");
    }
}

/// Regression (atk11): the whole document was parsed into a tree before any count was
/// checked, so 64 MiB of `[0,0,0,…]` (33 million values, none an item of any source)
/// took 3.7 GB of a server's memory, per run, before it was refused `bad_shape`. Values
/// are now counted on the bytes first.
#[test]
fn a_document_of_too_many_values_is_refused_before_it_is_parsed() {
    let mut zeros = b"[0".to_vec();
    zeros.extend(b",0".repeat(MAX_VALUES));
    zeros.push(b']');
    assert!(zeros.len() <= MAX_INPUT_BYTES);
    let nested =
        serde_json::to_vec(&json!({"kind": "List", "items": [], "x": vec![json!({}); MAX_VALUES]}))
            .unwrap();
    for s in [Source::Kubernetes, Source::Aws, Source::Azure, Source::Gcp] {
        for doc in [&zeros, &nested] {
            let e = discover(s, doc, &Selector::everything()).unwrap_err();
            assert_eq!(e.code(), "too_many_values", "{s}");
            assert_eq!(e, DiscoverError::TooManyValues, "{s}");
        }
    }
    // Commas, brackets and braces inside strings are not values.
    let pod = json!({"kind": "Pod", "metadata": {"name": "p", "labels": {"app": "ai-agent"},
        "annotations": {"note": ",".repeat(MAX_VALUES + 1), "q": "\\\"[{,"}}});
    let found = discover(
        Source::Kubernetes,
        &serde_json::to_vec(&pod).unwrap(),
        &Selector::everything(),
    )
    .unwrap();
    assert_eq!(found.len(), 1);
}
