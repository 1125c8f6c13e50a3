//! `docs/openapi.json` is `mandate_api::openapi::render()`, byte for byte: the document
//! is generated from the wire types and the operations declared in `mandate_api::paths`,
//! never edited by hand. `MANDATE_BLESS=1 cargo nextest run -p mandate-api` rewrites the
//! file from the code.
//!
//! Beside the comparison, the document is checked for what it must say (so that a
//! generator that lost the operations or schemas would fail even when blessed) and
//! against `mandate-core`'s closed enums, whose serialisations its schemas list.

#![expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "the helpers read the document the tests check; a missing part fails the test"
)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use mandate_api::openapi;
use serde_json::Value;

const BLESS: &str = "MANDATE_BLESS=1 cargo nextest run -p mandate-api";

fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

/// The first line where two texts differ, for the failure message.
fn first_difference(checked_in: &str, generated: &str) -> String {
    let mut a = checked_in.lines();
    let mut b = generated.lines();
    for n in 1.. {
        match (a.next(), b.next()) {
            (None, None) => return "the texts differ only in line endings".to_owned(),
            (x, y) if x == y => {}
            (x, y) => {
                return format!("line {n}:\n  checked in: {x:?}\n  generated:  {y:?}");
            }
        }
    }
    unreachable!()
}

/// `Ok` when `checked_in` is the document the code generates, else why not.
fn compare(checked_in: &str, generated: &str) -> Result<(), String> {
    if checked_in == generated {
        return Ok(());
    }
    Err(format!(
        "docs/openapi.json is not the document the code generates ({});\n\
         regenerate it with `{BLESS}` and commit the file",
        first_difference(checked_in, generated)
    ))
}

#[test]
fn the_checked_in_document_is_the_generated_one() {
    let generated = openapi::render().expect("render the document");
    let path = spec_path();
    if std::env::var_os("MANDATE_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
        eprintln!("blessed: wrote {}", path.display());
        return;
    }
    let checked_in = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; create it with `{BLESS}`", path.display()));
    if let Err(e) = compare(&checked_in, &generated) {
        panic!("{e}");
    }
}

/// The comparison can fail: a document with one field renamed is refused, and the
/// message names the command that regenerates the file.
#[test]
fn a_renamed_field_is_caught() {
    let generated = openapi::render().expect("render the document");
    let needle = "\"data_classes\"";
    assert!(generated.contains(needle), "Grant names `data_classes`");
    let drifted = generated.replacen(needle, "\"data_class\"", 1);
    let err = compare(&drifted, &generated).unwrap_err();
    assert!(err.contains("data_class"), "{err}");
    assert!(err.contains(BLESS), "{err}");
    assert!(compare(&generated, &generated).is_ok());
}

fn document() -> Value {
    serde_json::from_str(&openapi::render().expect("render the document"))
        .expect("the rendered document is JSON")
}

/// Every route of `mandate serve` is described (mandate-http's `routes_test` checks
/// the set against `ROUTES`); here: each has an operation id, a tag and responses, and
/// the ids are unique.
#[test]
fn every_operation_is_complete() {
    let doc = document();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 49, "{} paths", paths.len());
    let mut ids = BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let at = format!("{method} {path}");
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{at}: no id"));
            assert!(ids.insert(id.to_owned()), "{at}: operation id `{id}` twice");
            assert!(
                op["tags"].as_array().is_some_and(|t| t.len() == 1),
                "{at}: tag"
            );
            assert!(op["summary"].is_string(), "{at}: summary");
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{at}: responses");
        }
    }
}

/// A known operation says what the hand-written description said: its request body,
/// statuses and the problem body of an error.
#[test]
fn a_known_operation_reads_as_documented() {
    let doc = document();
    let op = &doc["paths"]["/v1/agents"]["post"];
    assert_eq!(op["operationId"], "registerAgent");
    assert_eq!(
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/RegisterAgent"
    );
    let statuses: Vec<&str> = op["responses"]
        .as_object()
        .expect("responses")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        statuses,
        [
            "201", "400", "401", "403", "409", "413", "415", "429", "500", "503"
        ]
    );
    assert_eq!(
        op["responses"]["409"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    let token = &doc["paths"]["/oauth/token"]["post"];
    assert!(
        token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"].is_object()
    );
    assert_eq!(
        doc["components"]["schemas"]["Grant"]["required"],
        serde_json::json!(["actions", "resources"])
    );
}

/// The string values a schema's `enum` lists.
fn enum_values(doc: &Value, schema: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][schema]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("`{schema}` has an enum"))
        .iter()
        .map(|v| v.as_str().expect("a string value").to_owned())
        .collect()
}

/// The closed enums the schemas list are `mandate-core`'s, serialised. Each list of
/// variants is checked complete by a `match` that stops compiling when a variant is added.
#[test]
fn the_closed_enums_are_the_cores() {
    use mandate_api::{AgentStatus, CredentialKind, MandateStatus, Role};
    fn wire<T: serde::Serialize>(values: &[T]) -> BTreeSet<String> {
        values
            .iter()
            .map(|v| match serde_json::to_value(v) {
                Ok(Value::String(s)) => s,
                other => panic!("not a string: {other:?}"),
            })
            .collect()
    }
    let statuses = [
        AgentStatus::Active,
        AgentStatus::Suspended,
        AgentStatus::Decommissioned,
    ];
    for s in statuses {
        match s {
            AgentStatus::Active | AgentStatus::Suspended | AgentStatus::Decommissioned => {}
        }
    }
    let kinds = [
        CredentialKind::ClientSecret,
        CredentialKind::PublicKey,
        CredentialKind::TlsClientAuth,
    ];
    for k in kinds {
        match k {
            CredentialKind::ClientSecret
            | CredentialKind::PublicKey
            | CredentialKind::TlsClientAuth => {}
        }
    }
    let roles = [Role::Admin, Role::Auditor, Role::Approver, Role::Service];
    for r in roles {
        match r {
            Role::Admin | Role::Auditor | Role::Approver | Role::Service => {}
        }
    }
    let mandate_statuses = [
        MandateStatus::PendingApproval,
        MandateStatus::Active,
        MandateStatus::Denied,
        MandateStatus::Expired,
        MandateStatus::Revoked,
        MandateStatus::Completed,
    ];
    for s in mandate_statuses {
        match s {
            MandateStatus::PendingApproval
            | MandateStatus::Active
            | MandateStatus::Denied
            | MandateStatus::Expired
            | MandateStatus::Revoked
            | MandateStatus::Completed => {}
        }
    }
    let doc = document();
    assert_eq!(enum_values(&doc, "AgentStatus"), wire(&statuses));
    assert_eq!(enum_values(&doc, "CredentialKind"), wire(&kinds));
    assert_eq!(enum_values(&doc, "Role"), wire(&roles));
    assert_eq!(enum_values(&doc, "MandateStatus"), wire(&mandate_statuses));
    let codes = enum_values(&doc, "ErrorCode");
    assert!(
        codes.contains("snapshot_stale") && codes.len() > 30,
        "{codes:?}"
    );
}

/// A JSON value read with its objects' members in the order the text has them (a
/// `serde_json::Value` may sort them, depending on the build's features).
enum Ordered {
    Object(Vec<(String, Ordered)>),
    Array(Vec<Ordered>),
    Scalar,
}

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Scalar)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(x) = a.next_element()? {
                    items.push(x);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some(m) = a.next_entry()? {
                    members.push(m);
                }
                Ok(Ordered::Object(members))
            }
        }
        d.deserialize_any(V)
    }
}

/// The objects inside free JSON values (`example`, `examples`, `default`) whose keys are
/// not in sorted order, by where they are.
fn unsorted_free_json(text: &str) -> Vec<String> {
    fn walk(v: &Ordered, free: bool, at: &str, out: &mut Vec<String>) {
        match v {
            Ordered::Object(members) => {
                let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
                if free && !keys.is_sorted() {
                    out.push(format!("{at}: {keys:?}"));
                }
                for (k, child) in members {
                    let free = free || matches!(k.as_str(), "example" | "examples" | "default");
                    walk(child, free, &format!("{at}/{k}"), out);
                }
            }
            Ordered::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, free, &format!("{at}/{i}"), out);
                }
            }
            Ordered::Scalar => {}
        }
    }
    let doc: Ordered = serde_json::from_str(text).expect("the text is JSON");
    let mut out = Vec::new();
    walk(&doc, false, "", &mut out);
    out
}

/// INVARIANT (stable output): the document's free JSON is written with sorted keys, so
/// the file is the same whether or not the build enables serde_json's `preserve_order`.
#[test]
fn free_json_is_written_in_sorted_order() {
    let text = openapi::render().expect("render the document");
    let unsorted = unsorted_free_json(&text);
    assert!(
        unsorted.is_empty(),
        "write these objects' keys in sorted order: {unsorted:?}"
    );
    // The check can fail.
    let caught = unsorted_free_json(r#"{"a": {"example": {"team": 1, "env": 2}}}"#);
    assert_eq!(caught, ["/a/example: [\"team\", \"env\"]"]);
    assert!(unsorted_free_json(r#"{"properties": {"b": {}, "a": {}}}"#).is_empty());
}

/// Every schema object in `v`, with where it is.
fn visit<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(map) => {
            out.push((at.clone(), v));
            for (k, child) in map {
                visit(child, format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                visit(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// What schemathesis found wrong in the document (issue 25; the e2e test
/// `schemathesis_finds_nothing` runs it against a server), pinned here without it.
#[test]
fn the_document_says_what_the_server_sends_and_takes() {
    let doc = document();
    let mut all = Vec::new();
    visit(&doc, String::new(), &mut all);
    for (at, v) in &all {
        // A documented field of an inline type came out as `allOf: [T, {"type":
        // "object", "description": …}]`, which no string matches.
        if let Some(members) = v.get("allOf").and_then(Value::as_array) {
            for m in members {
                assert!(
                    !(m.get("type") == Some(&Value::from("object"))
                        && m.get("properties").is_none()
                        && m.get("description").is_some()),
                    "{at}: a description-only allOf member claims `object`: {m}"
                );
            }
        }
        // Every reference resolves (`PolicyActivated` did not).
        if let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let pointer = r.strip_prefix('#').expect("a local reference");
            assert!(
                doc.pointer(pointer).is_some(),
                "{at}: `{r}` resolves to nothing"
            );
        }
    }
    // An optional body is absent, not `null` (the server refuses a `null` body).
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if let Some(content) = op["requestBody"]["content"].as_object() {
                for (media, c) in content {
                    let one_of = c["schema"]["oneOf"].as_array();
                    assert!(
                        !one_of.is_some_and(|o| o.iter().any(|s| s["type"] == "null")),
                        "{method} {path} ({media}): the body may be `null`"
                    );
                }
            }
        }
    }
    // The metadata's lists are lists of names, not of lists.
    let meta = &doc["components"]["schemas"]["ServerMetadata"]["properties"];
    for member in [
        "token_endpoint_auth_methods_supported",
        "token_endpoint_auth_signing_alg_values_supported",
        "introspection_endpoint_auth_methods_supported",
    ] {
        assert!(
            meta[member]["items"].is_null(),
            "{member} is an array of arrays: {}",
            meta[member]
        );
    }
    // `GET /ssf/stream` without `stream_id` answers an array of streams.
    let streams = &doc["paths"]["/ssf/stream"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"];
    assert_eq!(streams["oneOf"][1]["type"], "array", "{streams}");
    // Free text refuses control characters but newlines and tabs, as the edge does.
    for (schema, member) in [
        ("AnomalyResolution", "comment"),
        ("ApprovalDecision", "comment"),
        ("RevokeMandate", "reason"),
    ] {
        let text = &doc["components"]["schemas"][schema]["properties"][member];
        assert!(text["pattern"].is_string(), "{schema}.{member}: {text}");
    }
    // Query values the server checks: a page of anomalies is at most 500 (the edge's
    // `MAX_PAGE`; the document said 1000), a framework and a report format are named.
    let query = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path}: no `{name}`"))["schema"]
            .clone()
    };
    assert_eq!(query("/v1/anomalies", "limit")["maximum"], 500);
    assert!(query("/v1/reports/compliance", "framework")["pattern"].is_string());
    assert!(query("/v1/reviews/{id}/report", "format")["pattern"].is_string());
    // A compliance control's evidence is a number, a time or a list: any JSON value.
    let evidence = &doc["components"]["schemas"]["ComplianceEvidence"]["properties"]["value"];
    assert!(evidence["type"].is_null(), "{evidence}");
    // An empty OAuth parameter counts as absent (RFC 6749 §3.1).
    let assertion_type =
        &doc["components"]["schemas"]["TokenActionRequest"]["properties"]["client_assertion_type"];
    assert_eq!(
        assertion_type["anyOf"][1]["maxLength"], 0,
        "{assertion_type}"
    );
}
