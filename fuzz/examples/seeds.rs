//! Writes the seed corpora (`corpus/<target>/seed-*`) from the fixtures, so the seed
//! tokens carry valid signatures of the fixed keys. Run from `fuzz/`:
//! `cargo +nightly run --example seeds`.

use std::fs;
use std::path::Path;

use mandate_audit::bundle::verify_bundle;
use mandate_audit::checkpoint::Checkpoint;
use mandate_audit::event::AuditEvent;
use mandate_audit::verify::verify_export;
use mandate_core::time::Timestamp;
use mandate_fuzz::{
    BUNDLE_AGENT, CLIENT_ID, CRM_POLICIES, CRM_SCHEMA, CrmRequest, ED25519_KID, ExportBuilder,
    ISSUER, NOW_SECS, TOKEN_ENDPOINT, audit_key, client_keys, crm, incident_bundle, node_name,
    ring,
};
use mandate_token::access::{self, AccessClaims, Audience};
use serde_json::json;

fn write(target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(format!("seed-{name}")), bytes)
}

fn with_mode(mode: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![mode, b'!'];
    v.extend_from_slice(rest);
    v
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for (name, s) in [
        ("utc", "2023-11-14T22:13:20Z"),
        ("fraction-offset", "2023-11-14T23:13:20.123+01:00"),
        ("leap-day", "2024-02-29t00:00:00z"),
        ("space-negative-offset", "1999-12-31 23:59:59-05:30"),
        ("min", "0000-01-01T00:00:00Z"),
        ("max", "9999-12-31T23:59:59Z"),
    ] {
        write("timestamp", name, s.as_bytes())?;
    }

    for (name, s) in [
        ("agent", "agt_01J00000000000000000000000"),
        ("credential", "crd_7ZZZZZZZZZZZZZZZZZZZZZZZZZ"),
        ("admin-token", "adm_01HZY3M0K7Q9V2W4X6Y8Z0A1B2"),
        ("token", "tok_00000000000000000000000000"),
        ("status", "suspended"),
        ("kind", "public_key"),
        ("role", "auditor"),
    ] {
        write("ids", name, s.as_bytes())?;
    }

    let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    let keys = client_keys();
    for (name, v) in [
        (
            "rfc8037-ed25519",
            json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
        ),
        (
            "ed25519-all-members",
            json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA", "use": "sig"}),
        ),
        ("p256", keys[1].jwk.to_value()),
        (
            "private",
            json!({"kty": "OKP", "crv": "Ed25519", "x": x, "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}),
        ),
    ] {
        write("jwk", name, v.to_string().as_bytes())?;
    }

    let r = ring();
    let claims = AccessClaims {
        iss: ISSUER.into(),
        sub: CLIENT_ID.into(),
        aud: Audience::One("https://api.example".into()),
        exp: NOW_SECS + 300,
        iat: NOW_SECS,
        nbf: NOW_SECS,
        jti: "tok_01J00000000000000000000000".into(),
        client_id: CLIENT_ID.into(),
        scope: Some("crm:read crm:write".into()),
        act: None,
        mandate: None,
        parents: Vec::new(),
    };
    write(
        "access_token",
        "token",
        access::issue(r.ring.current(), &claims)?.as_bytes(),
    )?;
    let payload = serde_json::to_vec(&claims)?;
    write("access_token", "signed-claims", &with_mode(b's', &payload))?;
    let mut many = claims.clone();
    many.aud = Audience::Many(vec!["a".into(), "b".into()]);
    many.scope = None;
    write(
        "access_token",
        "signed-claims-many-aud",
        &with_mode(b's', &serde_json::to_vec(&many)?),
    )?;
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": r.kid}).to_string();
    let header_and_payload = [header.as_bytes(), b"\n", &payload].concat();
    write(
        "access_token",
        "header",
        &with_mode(b'h', &header_and_payload),
    )?;
    // RFC 9864's name for the same signature (`token.signing_alg = "Ed25519"`).
    let header = json!({"alg": "Ed25519", "typ": "at+jwt", "kid": r.kid}).to_string();
    let header_and_payload = [header.as_bytes(), b"\n", &payload].concat();
    write(
        "access_token",
        "header-ed25519",
        &with_mode(b'h', &header_and_payload),
    )?;

    let assertion = json!({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": TOKEN_ENDPOINT,
        "exp": NOW_SECS + 120, "iat": NOW_SECS, "jti": "j-1"});
    let assertion_bytes = assertion.to_string().into_bytes();
    let ed_header = json!({"alg": "EdDSA", "kid": ED25519_KID}).to_string();
    let ec_header = json!({"alg": "ES256", "typ": "JWT"}).to_string();
    write(
        "client_assertion",
        "ed25519-jws",
        keys[0]
            .signer
            .jws(ed_header.as_bytes(), &assertion_bytes)
            .as_bytes(),
    )?;
    let ed_named = json!({"alg": "Ed25519", "kid": ED25519_KID}).to_string();
    write(
        "client_assertion",
        "ed25519-named-jws",
        keys[0]
            .signer
            .jws(ed_named.as_bytes(), &assertion_bytes)
            .as_bytes(),
    )?;
    write(
        "client_assertion",
        "p256-jws",
        keys[1]
            .signer
            .jws(ec_header.as_bytes(), &assertion_bytes)
            .as_bytes(),
    )?;
    write(
        "client_assertion",
        "ed25519-claims",
        &with_mode(b'e', &assertion_bytes),
    )?;
    write(
        "client_assertion",
        "p256-claims",
        &with_mode(b'p', &assertion_bytes),
    )?;
    let thumb_header = json!({"alg": "ES256", "kid": keys[1].jwk.thumbprint()}).to_string();
    let many_aud = json!({"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": ["elsewhere", ISSUER],
        "exp": NOW_SECS + 600, "nbf": NOW_SECS - 10, "jti": "j-2"});
    write(
        "client_assertion",
        "p256-header",
        format!("P!{thumb_header}\n{many_aud}").as_bytes(),
    )?;
    write(
        "client_assertion",
        "ed25519-header",
        format!("E!{ed_header}\n{many_aud}").as_bytes(),
    )?;

    for (name, s) in [
        (
            "boundary",
            r#"{"grants":[{"actions":["crm:read*"],"resources":["crm:contact/*"],"data_classes":["pii"]}],"max_token_lifetime_secs":600,"delegates":["agt_01J00000000000000000000000"]}"#,
        ),
        ("boundary-empty", "{}"),
        ("labels", r#"{"team":"billing","env/stage":"prod"}"#),
        ("name", r#""billing-bot.v2""#),
        ("owner", r#""alice@example.com""#),
        ("purpose", r#""Reads CRM contacts\nnightly""#),
    ] {
        write("agent_json", name, s.as_bytes())?;
    }

    audit_seeds()?;
    bundle_seeds()?;
    gateway_path_seeds()?;
    traceparent_seeds()?;
    tracestate_seeds()?;
    rego_seeds()?;
    policy_seeds()
}

/// Rego modules from mandate-policy's table cases (`tests/data/rego*`), the
/// guidance's example with an input after 0xFF.
fn rego_seeds() -> std::io::Result<()> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/mandate-policy/tests/data");
    for (name, rel) in [
        ("semantics", "rego/semantics/rules.rego"),
        ("v0", "rego/v0_and_v1/old.v0.rego"),
        ("and-and", "rego_refused/and_and/authz.rego"),
    ] {
        write("rego", name, &fs::read(data.join(rel))?)?;
    }
    let mut authz = fs::read(data.join("rego/http_authz/authz.rego"))?;
    authz.push(0xFF);
    authz.extend_from_slice(
        br#"{"request_source": "internal_network", "agent": {"verified": true}, "action": "read"}"#,
    );
    write("rego", "http-authz", &authz)
}

/// Request paths for the HTTP gateway's canonicalizer: the issue 18 attack family.
fn gateway_path_seeds() -> std::io::Result<()> {
    for (name, s) in [
        ("plain", "/crm/contacts/c42"),
        ("dot-dot-encoded", "/crm/contacts/%2e%2e/%2e%2e/billing/invoices/i1"),
        ("dot-dot", "/crm/contacts/x/../secret"),
        ("dot-mixed", "/crm/contacts/.%2e/%2E%2E/./%2e/x"),
        ("encoded-letter", "/crm/contacts/%73ecret"),
        ("encoded-slash", "/crm/contacts/a%2Fb"),
        ("backslash", "/crm/contacts/..%5C..\\billing"),
        ("nul", "/crm/contacts/secret%00.json"),
        ("empty-segment", "/crm//contacts/"),
        ("trailing-slash", "/crm/admin/users/u1/"),
        ("unicode", "/crm/contacts/caf%C3%A9/%e2%80%ae"),
        ("percent", "/crm/contacts/%252e%252e/100%25"),
        ("path-parameter", "/crm/contacts/..;/secret;x=1"),
        ("sub-delims", "/crm/contacts/a:b@c!$&'()*+,=~"),
    ] {
        write("gateway_path", name, s.as_bytes())?;
    }
    Ok(())
}

/// `tracestate` values (mandate_core::trace, one header value a line): the
/// recommendation's example, whitespace and empty members across two values, 33 members,
/// and a duplicated key.
fn tracestate_seeds() -> std::io::Result<()> {
    let many: Vec<String> = (1..=33).map(|i| format!("bar{i:02}={i:02}")).collect();
    for (name, s) in [
        ("spec", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".to_owned()),
        ("ows", "foo=1 \t , \t bar=2,,\nbaz=3".to_owned()),
        ("members", many.join(",")),
        ("duplicate", "foo=1\nfoo=2".to_owned()),
    ] {
        write("tracestate", name, s.as_bytes())?;
    }
    Ok(())
}

/// `traceparent` values (mandate_core::trace): the recommendation's example, a future
/// version with more fields, the forbidden `ff` and all-zero forms, and a future version
/// with a NUL and non-ASCII after its flags (once accepted).
fn traceparent_seeds() -> std::io::Result<()> {
    for (name, s) in [
        ("spec", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("future", "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03-more"),
        ("ff", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("zero", "00-00000000000000000000000000000000-b7ad6b7169203331-01"),
        (
            "future-non-ascii",
            "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03-~\0\u{21a}",
        ),
    ] {
        write("traceparent", name, s.as_bytes())?;
    }
    Ok(())
}

/// Bytes for the structured modes (`s!`): a fixed pseudo-random stream.
fn stream(len: usize, mut x: u32) -> Vec<u8> {
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            x.to_be_bytes()[1]
        })
        .collect()
}

/// Writes a sealed export, having checked that it verifies.
fn export_seed(name: &str, export: &ExportBuilder) -> std::io::Result<()> {
    let bytes = export.bytes();
    assert_eq!(
        verify_export(&bytes[..], &audit_key().verifying_key()),
        Ok(export.report()),
        "seed {name}"
    );
    write("audit_export", name, &bytes)
}

fn audit_seeds() -> Result<(), Box<dyn std::error::Error>> {
    let node = node_name("node-1");
    let mut decision = AuditEvent::new(0, Timestamp::from_secs(NOW_SECS), node.clone(), "decision");
    decision.request_id = Some("req-1".into());
    decision.agent = Some(CLIENT_ID.into());
    decision.action = Some("crm:read".into());
    decision.resource = Some(json!({"type": "Crm::Contact", "id": "c-42"}));
    decision.context = Some(
        json!({"data_class": "internal", "amount": 2.5, "big": 1e300,
        "n": -7, "s": "é\u{2028}\"\\", "x": null}),
    );
    decision.decision = Some("allow".into());
    decision.policy_ids = vec!["team-reads-contacts".into()];
    decision.reasons = vec!["permit".into()];
    let mut issued = AuditEvent::new(
        0,
        Timestamp::from_secs(NOW_SECS + 1),
        node.clone(),
        "token.issued",
    );
    issued.details = Some(json!({"scope": ["crm:read"], "exp": NOW_SECS + 301}));
    let admin = AuditEvent::new(
        0,
        Timestamp::from_secs(NOW_SECS + 2),
        node.clone(),
        "agent.suspended",
    );

    let mut export = ExportBuilder::new(node.clone());
    export.event(decision.clone());
    export.event(issued.clone());
    export.checkpoint(5);
    export.event(admin.clone());
    export.seal();
    export_seed("three-events", &export)?;

    let mut export = ExportBuilder::new(node_name("eu-west.2"));
    export.checkpoint(0);
    export.event(issued);
    export.checkpoint(0);
    export_seed("empty-checkpoint-first", &export)?;

    let mut export = ExportBuilder::new(node.clone());
    export.seal();
    export_seed("empty-log", &export)?;

    for (name, len, x) in [("short", 24, 1), ("medium", 200, 2), ("long", 1200, 3)] {
        let mut bytes = b"s!".to_vec();
        bytes.extend(stream(len, x));
        write("audit_export", &format!("structured-{name}"), &bytes)?;
    }

    let cp = Checkpoint {
        node,
        size: 3,
        root: [7; 32],
        time: Timestamp::from_secs(NOW_SECS),
    };
    let signed = cp.sign(audit_key());
    assert_eq!(signed.verify(&audit_key().verifying_key()), Ok(cp));
    write("checkpoint", "signed", signed.text.as_bytes())?;
    let cp = Checkpoint {
        node: node_name("a"),
        size: u64::MAX,
        root: [0; 32],
        time: Timestamp::from_secs(0),
    };
    write(
        "checkpoint",
        "signed-extremes",
        cp.sign(audit_key()).text.as_bytes(),
    )?;
    for (name, len, x) in [("short", 8, 4), ("long", 120, 5)] {
        let mut bytes = b"s!".to_vec();
        bytes.extend(stream(len, x));
        write("checkpoint", &format!("structured-{name}"), &bytes)?;
    }

    for (name, s) in [
        (
            "rfc8785-main",
            r#"{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]}"#,
        ),
        (
            "rfc8785-sorting",
            r#"{"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\ud83d\ude00": 5, "\u0080": 6, "\u00f6": 7}"#,
        ),
        (
            "numbers",
            "[0, -0, -0.0, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 18446744073709551615, -9223372036854775808, 18446744073709551616, 9007199254740993, 1424953923781206.25]",
        ),
        (
            "nested",
            r#"{"a": {"b": [{"c": {}}, [], "", "\u0000\u001f\u007f"]}}"#,
        ),
    ] {
        write("canonical_json", name, s.as_bytes())?;
    }
    Ok(())
}

fn policy_seeds() -> Result<(), Box<dyn std::error::Error>> {
    // `(name, fragment, policies, compiles)`; no fragment: no 0xFF, the CRM schema.
    let own_schema = "namespace Docs { entity Folder; entity Doc in [Folder] { owner: String, tags: Set<String> }; }\n\
         namespace Mandate { action \"docs:read\" in [\"all\"] appliesTo { principal: [Agent], \
         resource: [Docs::Doc], context: { ip?: ipaddr, n: Long } }; }";
    for (name, fragment, policies, compiles) in [
        ("crm", Some(CRM_SCHEMA), CRM_POLICIES, true),
        ("crm-schema-only", Some(CRM_SCHEMA), "", true),
        ("crm-policies", None, CRM_POLICIES, true),
        (
            "crm-extensions",
            None,
            "@id(\"refund-in-office\")\npermit (principal in Mandate::Agent::\"a\", \
             action in [Mandate::Action::\"crm:refund\"], resource is Crm::Invoice)\n\
             when { context.amount <= resource.amount - context.refunded && context has source_ip && \
             context.source_ip.isInRange(ip(\"10.0.0.0/8\")) && decimal(\"1.50\").lessThan(decimal(\"2.0\")) && \
             [1, 2, 3].containsAny([context.amount]) && resource.team like \"sa*\" && \
             (if principal.hasTag(\"region\") then principal.getTag(\"region\") == \"eu\" else true) };",
            true,
        ),
        (
            "base-schema",
            Some(""),
            "@id(\"all\") permit (principal is Mandate::Agent, action, resource) \
             when { principal.status == \"active\" && principal.labels.contains(\"x=y\") };",
            true,
        ),
        (
            "own-namespace",
            Some(own_schema),
            "permit (principal, action == Mandate::Action::\"docs:read\", resource in Docs::Folder::\"f\") \
             when { resource.tags.contains(principal.name) && context.n < 10 } \
             unless { context has ip && context.ip.isLoopback() };\n\
             forbid (principal, action, resource) when { principal.hasTag(\"team\") && principal.getTag(\"team\") like \"ops*\" };",
            true,
        ),
        (
            "template-and-duplicate",
            Some(""),
            "@id(\"p\") permit (principal == ?principal, action, resource);\n\
             @id(\"p\") forbid (principal, action, resource);\n@id(\"\") permit (principal, action, resource);",
            false,
        ),
    ] {
        let got = mandate_policy::compile(&[fragment.unwrap_or(CRM_SCHEMA).to_owned()], policies);
        assert_eq!(got.is_ok(), compiles, "seed {name}: {:?}", got.err());
        let bytes = match fragment {
            Some(f) => [f.as_bytes(), &[0xFF], policies.as_bytes()].concat(),
            None => policies.as_bytes().to_vec(),
        };
        write("policy", name, &bytes)?;
    }

    // `(name, input, allowed)`: selectors `<action><type><principal>`, see the target.
    for (name, s, allowed) in [
        (
            "read-contact",
            "000c-42\n{\"team\":\"sales\"}\n{\"data_class\":\"internal\"}",
            true,
        ),
        (
            "read-secret-cleared",
            "002c-42\n{\"team\":\"sales\",\"region\":\"eu\"}\n{\"data_class\":\"secret\"}",
            true,
        ),
        (
            "write-from-office",
            "103c-42\n{\"team\":\"sales\"}\n{\"data_class\":\"internal\",\"source_ip\":\"10.1.2.3\"}",
            true,
        ),
        (
            "write-extn-ip",
            "103c-42\n{\"team\":\"sales\"}\n{\"data_class\":\"internal\",\"source_ip\":{\"__extn\":{\"fn\":\"ip\",\"arg\":\"10.0.0.0/8\"}}}",
            true,
        ),
        (
            "refund",
            "214inv-7\n{\"team\":\"sales\",\"amount\":100000}\n{\"data_class\":\"financial\",\"amount\":2500,\"refunded\":0}",
            true,
        ),
        (
            "refund-overflow",
            "214inv-7\n{\"team\":\"sales\",\"amount\":100000}\n{\"data_class\":\"financial\",\"amount\":1,\"refunded\":9223372036854775807}",
            false,
        ),
        (
            "suspended",
            "005c-42\n{\"team\":\"sales\"}\n{\"data_class\":\"internal\",\"extra\":{\"a\":[1]}}",
            false,
        ),
        (
            "arbitrary-action-and-type",
            "xx0crm:export\nCrm::Contact\nc-1\n\n",
            false,
        ),
        (
            "entity-escape",
            "000c-42\n{\"team\":{\"__entity\":{\"type\":\"Mandate::Agent\",\"id\":\"a\"}}}\n{\"data_class\":\"internal\"}",
            false,
        ),
    ] {
        let got = CrmRequest::parse(s.as_bytes()).map(|r| crm().evaluate(&r.request()));
        assert_eq!(
            got.as_ref().map(|o| o.allowed),
            Some(allowed),
            "seed {name}: {got:?}"
        );
        write("policy_request", name, s.as_bytes())?;
    }
    dpop_seeds()?;
    Ok(())
}

/// `dpop_proof`: a good proof's claims under either key (`e!`/`p!`, the second with a
/// `htu` that normalizes to the first's), one signed whole, an `alg: none` header and
/// an `htu` to normalize.
fn dpop_seeds() -> std::io::Result<()> {
    let ath = mandate_token::dpop::ath("token");
    let claims = |htu: &str| {
        json!({"jti": "j", "htm": "POST", "htu": htu, "iat": NOW_SECS, "ath": ath})
            .to_string()
            .into_bytes()
    };
    let good = claims("https://mandate.test/v1/authorize");
    write("dpop_proof", "ed25519", &with_mode(b'e', &good))?;
    write(
        "dpop_proof",
        "p256",
        &with_mode(b'p', &claims("https://Mandate.test:443/v1/authorize?x")),
    )?;
    let keys = client_keys();
    let mut jwk = keys[0].jwk.to_value();
    if let Some(o) = jwk.as_object_mut() {
        o.remove("kid");
    }
    let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk}).to_string();
    write(
        "dpop_proof",
        "ed25519-jws",
        keys[0].signer.jws(header.as_bytes(), &good).as_bytes(),
    )?;
    write("dpop_proof", "none", b"E!{\"typ\":\"dpop+jwt\",\"alg\":\"none\"}\n{}")?;
    write("dpop_proof", "htu", b"u!HTTPS://H:443/a%2fb?q#f")
}

fn bundle_seeds() -> Result<(), Box<dyn std::error::Error>> {
    let node = node_name("node-1");
    let event =
        |kind: &str, secs: i64| AuditEvent::new(0, Timestamp::from_secs(secs), node.clone(), kind);
    let mut decision = event("decision", NOW_SECS - 5);
    decision.action = Some("crm:read".into());
    decision.decision = Some("allow".into());
    decision.context = Some(json!({"amount": 2.5, "s": "é\u{2028}"}));
    let log = vec![
        (true, event("agent.registered", NOW_SECS - 60)),
        (false, event("token.issued", NOW_SECS - 30)),
        (true, event("token.issued", NOW_SECS - 20)),
        (true, decision),
        (false, event("decision", NOW_SECS - 4)),
    ];
    let evidence = json!({
        "agent": {"id": BUNDLE_AGENT, "name": "billing-bot", "status": "suspended"},
        "previous_status": "active",
        "mandates": [],
        "policies": {"version": 1, "policies": "permit (principal, action, resource);"},
        "reason": "seed",
    });
    let serde_json::Value::Object(evidence) = evidence else {
        return Err("evidence is an object".into());
    };
    let bytes = incident_bundle(&node, &log, 4, &evidence, 10).ok_or("bundle fixture")?;
    let report = verify_bundle(&bytes, &audit_key().verifying_key())?;
    assert_eq!(
        report.events, 4,
        "three of the agent's events and the containment"
    );
    write("bundle", "1", &bytes)?;
    for (name, len, x) in [("structured-short", 40, 4), ("structured-long", 600, 5)] {
        let mut bytes = b"s!".to_vec();
        bytes.extend(stream(len, x));
        write("bundle", name, &bytes)?;
    }

    // Discovery: each fixture's input (the documented output shapes), as is and behind
    // its case's selector (`s!<selector>\n`), in its source's target.
    let cases =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/mandate-govern/tests/data/discover");
    for entry in fs::read_dir(cases)? {
        let dir = entry?.path();
        let Ok(case) = fs::read(dir.join("case.json")) else {
            continue;
        };
        let case: serde_json::Value = serde_json::from_slice(&case)?;
        let (Some(source), Some(selector)) = (case["source"].as_str(), case["selector"].as_str())
        else {
            return Err(format!("{}: case.json names source and selector", dir.display()).into());
        };
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let input = fs::read(dir.join("input.json"))?;
        let target = format!("discover_{source}");
        write(&target, &name, &input)?;
        if !selector.is_empty() {
            let mut bytes = format!("s!{selector}\n").into_bytes();
            bytes.extend_from_slice(&input);
            write(&target, &format!("{name}-selector"), &bytes)?;
        }
    }
    Ok(())
}
