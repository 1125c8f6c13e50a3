//! Writes the seed corpora (`corpus/<target>/seed-*`) from the fixtures, so the seed
//! tokens carry valid signatures of the fixed keys. Run from `fuzz/`:
//! `cargo +nightly run --example seeds`.

use std::fs;
use std::path::Path;

use mandate_fuzz::{CLIENT_ID, ED25519_KID, ISSUER, NOW_SECS, TOKEN_ENDPOINT, client_keys, ring};
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
    Ok(())
}
