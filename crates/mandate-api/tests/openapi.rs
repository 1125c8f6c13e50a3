//! The wire types against `docs/openapi.yaml`: for each type with a same-named schema
//! in `components/schemas`, the property names and which of them are required agree
//! (the type's side from its `utoipa::ToSchema` derive, so serde's renames and skips
//! count as the wire sees them).
//!
//! The YAML is read by a small reader of the one shape this needs (a schema's
//! top-level `required:` list and `properties:` names, as the hand-written file lays
//! them out), so the check needs no YAML crate. It can fail:
//! `a_renamed_field_is_caught` renames a field of `Grant` and sees the check refuse it.

use std::collections::BTreeSet;

use mandate_api as api;
use serde_json::Value;
use utoipa::PartialSchema;

const OPENAPI: &str = include_str!("../../../docs/openapi.yaml");

/// What a schema says of an object: its property names and the required ones.
#[derive(Debug, PartialEq)]
struct Shape {
    properties: BTreeSet<String>,
    required: BTreeSet<String>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The lines of `components/schemas/NAME` (without its own line), if it is there.
fn schema_block<'a>(yaml: &'a str, name: &str) -> Option<Vec<&'a str>> {
    let mut lines = yaml.lines().skip_while(|l| *l != "components:");
    lines.find(|l| *l == "  schemas:")?;
    let head = format!("    {name}:");
    lines.find(|l| l.trim_end() == head)?;
    Some(
        lines
            .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || indent(l) > 4)
            .filter(|l| !l.trim().is_empty())
            .collect(),
    )
}

/// The names of a flow list (`[a, b,\n c]`) starting in `first`, read on over `rest`.
fn flow_list<'a>(first: &str, rest: &mut impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    let mut text = first.to_owned();
    while !text.contains(']') {
        match rest.next() {
            Some(l) => text.push_str(l),
            None => break,
        }
    }
    text.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|s| s.trim().trim_matches('\'').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The shape `docs/openapi.yaml` gives schema `name`.
fn yaml_shape(name: &str) -> Option<Shape> {
    let block = schema_block(OPENAPI, name)?;
    let mut shape = Shape {
        properties: BTreeSet::new(),
        required: BTreeSet::new(),
    };
    let mut it = block.into_iter();
    let mut in_props = false;
    while let Some(l) = it.next() {
        let ind = indent(l);
        let t = l.trim();
        if ind == 6 {
            in_props = t == "properties:";
            if let Some(list) = t.strip_prefix("required:") {
                shape.required = flow_list(list, &mut it);
            }
        } else if in_props
            && ind == 8
            && let Some((key, _)) = t.split_once(':')
        {
            shape.properties.insert(key.to_owned());
        }
    }
    Some(shape)
}

/// The values of `enum:` (a block list) of schema `name`.
fn yaml_enum(name: &str) -> BTreeSet<String> {
    let block = schema_block(OPENAPI, name).unwrap_or_default();
    block
        .iter()
        .skip_while(|l| l.trim() != "enum:")
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("- "))
        .map(|l| l.trim().trim_start_matches("- ").to_owned())
        .collect()
}

/// The shape of a Rust type's derived schema.
fn rust_shape<T: PartialSchema>() -> Shape {
    let v = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
    let names = |k: &str| -> BTreeSet<String> {
        match v.get(k) {
            Some(Value::Object(m)) => m.keys().cloned().collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => BTreeSet::new(),
        }
    };
    Shape {
        properties: names("properties"),
        required: names("required"),
    }
}

/// `Ok` when the type and the schema of the same name agree.
fn check<T: PartialSchema>(name: &str) -> Result<(), String> {
    let Some(yaml) = yaml_shape(name) else {
        return Err(format!("no schema `{name}` in docs/openapi.yaml"));
    };
    let rust = rust_shape::<T>();
    if yaml == rust {
        return Ok(());
    }
    let diff = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> Vec<String> {
        a.symmetric_difference(b).cloned().collect()
    };
    Err(format!(
        "`{name}`: properties differ in {:?}, required differ in {:?}\n  yaml: {yaml:?}\n  rust: {rust:?}",
        diff(&yaml.properties, &rust.properties),
        diff(&yaml.required, &rust.required),
    ))
}

macro_rules! checks {
    ($($t:ident),* $(,)?) => {
        vec![$(check::<api::$t>(stringify!($t))),*]
    };
}

#[test]
fn every_wire_type_agrees_with_its_openapi_schema() {
    let results = checks![
        Problem,
        PolicyError,
        OAuthError,
        Grant,
        Boundary,
        Agent,
        AgentPage,
        RegisterAgent,
        UpdateAgent,
        StatusChange,
        Credential,
        NewCredential,
        CredentialCreated,
        RotateCredential,
        CredentialRotated,
        AdminToken,
        NewAdminToken,
        SigningKey,
        AuthorizeRequest,
        AuthorizeBatchRequest,
        DecisionResource,
        Decision,
        Anomaly,
        NewPolicies,
        PolicyVersionSummary,
        PolicyVersion,
        AuditEvent,
        LatestCheckpoint,
        UserRef,
        Mandate,
        NewMandate,
        MandatePage,
        AgentSummary,
        ApprovalPage,
        ApprovalDecision,
        RevokeMandate,
        NewDevUserToken,
        DevUserToken,
        ContainAgent,
        IncidentBundle,
        BundleEvent,
        RevokeTokenById,
        TokenRevoked,
    ];
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_error_codes_are_the_documented_ones() {
    let v = serde_json::to_value(api::ErrorCode::schema()).unwrap();
    let rust: BTreeSet<String> = v["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let yaml = yaml_enum("ErrorCode");
    assert!(yaml.len() > 30, "the reader found the list: {yaml:?}");
    assert_eq!(rust, yaml);
}

/// The check can fail: a `Grant` whose `data_classes` is renamed (`data_class`) is
/// refused, as is one that makes an optional field required.
#[test]
fn a_renamed_field_is_caught() {
    #[derive(serde::Serialize, utoipa::ToSchema)]
    struct Renamed {
        actions: Vec<String>,
        resources: Vec<String>,
        #[serde(default, rename = "data_class")]
        data_classes: Vec<String>,
    }
    #[derive(serde::Serialize, utoipa::ToSchema)]
    struct AllRequired {
        actions: Vec<String>,
        resources: Vec<String>,
        data_classes: Vec<String>,
    }
    assert!(check::<api::Grant>("Grant").is_ok());
    let err = check::<Renamed>("Grant").unwrap_err();
    assert!(err.contains("data_class"), "{err}");
    assert!(check::<AllRequired>("Grant").is_err());
    assert!(check::<api::Grant>("NoSuchSchema").is_err());
}

/// The reader reads a multi-line `required:` list (Mandate's spans three lines).
#[test]
fn the_reader_reads_what_the_file_says() {
    let m = yaml_shape("Mandate").unwrap();
    assert_eq!(m.required.len(), 18, "{m:?}");
    assert!(m.required.contains("ended_by") && m.properties.contains("scope"));
    let a = yaml_shape("Anomaly").unwrap();
    assert!(a.properties.contains("resolved_at"), "{a:?}");
}
