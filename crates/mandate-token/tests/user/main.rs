//! User tokens from trusted issuers, through the public API: the dev issuer, RS256/PS256
//! with the fixed test-only RSA key in `tests/data/user/`, ES256 with a fixed P-256 key,
//! every refusal of `TrustedIssuers::verify` and of `TrustedIssuer::new`.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test loudly"
)]

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mandate_core::mandate::UserRef;
use mandate_core::random::OsRandom;
use mandate_core::time::Timestamp;
use mandate_token::keys::SigningKey;
use mandate_token::user::{
    ClaimNames, DevUserIssuer, LEEWAY_SECS, MAX_TOKEN_BYTES, TrustedIssuer, TrustedIssuers,
    UserConfigError, UserTokenError,
};
use p256::pkcs8::EncodePrivateKey as _;
use proptest::prelude::*;
use serde_json::{Value, json};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

// ---- fixtures ----

/// Test-only RSA key (see `tests/data/user/README.md`).
const RSA_PEM: &str = include_str!("../data/user/test-only-rsa-2048.pem");
const RSA_JWKS: &str = include_str!("../data/user/test-only-rsa-2048.jwks.json");
const RSA_KID: &str = "test-only-rsa-1";

const RSA_ISS: &str = "https://idp.example.com";
const EC_ISS: &str = "https://ec.idp.example.com/realms/corp";
const DEV_ISS: &str = "http://127.0.0.1:8080/dev-users";
const AUD: &str = "https://mandate.example.com";
const NOW_SECS: i64 = 1_700_000_000;

fn now() -> Timestamp {
    Timestamp::from_secs(NOW_SECS)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCS#1 DER inside the PEM (jsonwebtoken is built without its PEM feature).
fn rsa_key() -> EncodingKey {
    let body: String = RSA_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    EncodingKey::from_rsa_der(&STANDARD.decode(body).unwrap())
}

/// A fixed P-256 key (any scalar below the group order is one).
fn ec_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[0x22; 32]).unwrap()
}

fn ec_jwk(kid: Option<&str>) -> Value {
    let point = ec_key().verifying_key().to_encoded_point(false);
    let mut jwk = json!({"kty": "EC", "crv": "P-256",
        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())});
    if let Some(kid) = kid {
        jwk["kid"] = json!(kid);
    }
    jwk
}

fn ec_encoding() -> EncodingKey {
    EncodingKey::from_ec_der(ec_key().to_pkcs8_der().unwrap().as_bytes())
}

/// The test key's JWK, as the JWKS file has it.
fn rsa_jwk() -> Value {
    serde_json::from_str::<Value>(RSA_JWKS).unwrap()["keys"][0].clone()
}

fn algs(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn rsa_issuer(names: &[&str]) -> TrustedIssuer {
    TrustedIssuer::new(RSA_ISS, AUD, RSA_JWKS, &algs(names), ClaimNames::default()).unwrap()
}

fn ec_issuer() -> TrustedIssuer {
    let jwks = json!({"keys": [ec_jwk(None)]}).to_string();
    TrustedIssuer::new(EC_ISS, AUD, &jwks, &algs(&["ES256"]), ClaimNames::default()).unwrap()
}

fn dev() -> DevUserIssuer {
    DevUserIssuer::new(
        SigningKey::generate(&OsRandom).unwrap(),
        DEV_ISS.to_owned(),
        AUD.to_owned(),
    )
}

/// The RSA issuer (default algorithms) and the ES256-only issuer.
fn issuers() -> TrustedIssuers {
    TrustedIssuers::new(vec![rsa_issuer(&[]), ec_issuer()]).unwrap()
}

/// Good claims from `iss`.
fn claims(iss: &str) -> Value {
    json!({
        "iss": iss,
        "aud": AUD,
        "sub": "alice",
        "email": "alice@example.com",
        "groups": ["eng", "ops"],
        "iat": NOW_SECS,
        "nbf": NOW_SECS,
        "exp": NOW_SECS + 300,
        "jti": "j-1",
    })
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    c[k] = v;
    c
}

fn without(mut c: Value, k: &str) -> Value {
    c.as_object_mut().unwrap().remove(k);
    c
}

fn header(alg: Algorithm, kid: Option<&str>) -> Header {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    h
}

fn sign_rs(c: &Value) -> String {
    jsonwebtoken::encode(&header(Algorithm::RS256, Some(RSA_KID)), c, &rsa_key()).unwrap()
}

fn sign_es(c: &Value) -> String {
    jsonwebtoken::encode(&header(Algorithm::ES256, None), c, &ec_encoding()).unwrap()
}

/// A compact JWS of exactly this header and payload, with `sig` as the signature.
fn raw_jws(header: &Value, payload: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        b64(sig)
    )
}

fn alice(iss: &str) -> UserRef {
    UserRef {
        issuer: iss.to_owned(),
        sub: "alice".to_owned(),
        email: Some("alice@example.com".to_owned()),
        groups: vec!["eng".to_owned(), "ops".to_owned()],
    }
}

// ---- accepted ----

#[test]
fn dev_issuer_round_trip() {
    let dev = dev();
    let set = TrustedIssuers::new(vec![dev.trusted().unwrap()]).unwrap();
    let groups = vec!["eng".to_owned(), "ops".to_owned()];
    let t = dev
        .issue(
            "alice",
            Some("alice@example.com"),
            &groups,
            600,
            "j-7",
            now(),
        )
        .unwrap();
    let v = set.verify(&t, now()).unwrap();
    assert_eq!(v.user, alice(DEV_ISS));
    assert_eq!(v.expires_at, Timestamp::from_secs(NOW_SECS + 600));
    assert_eq!(v.token_id.as_deref(), Some("j-7"));
    // The header is what the issuer promises.
    let h = jsonwebtoken::decode_header(&t).unwrap();
    assert_eq!((h.alg, h.typ.as_deref()), (Algorithm::EdDSA, Some("JWT")));
    assert!(h.kid.is_some());
    // Without email and groups; valid to the last second, not after.
    let t = dev.issue("bob", None, &[], 60, "j-8", now()).unwrap();
    let at = |s| Timestamp::from_secs(NOW_SECS + s);
    let v = set.verify(&t, at(59)).unwrap();
    assert_eq!((v.user.email, v.user.groups.len()), (None, 0));
    assert_eq!(set.verify(&t, at(60)), Err(UserTokenError::Expired));
    // Another dev key with the same issuer name is not trusted.
    let other = self::dev()
        .issue("alice", None, &[], 60, "j-9", now())
        .unwrap();
    assert_eq!(set.verify(&other, now()), Err(UserTokenError::UnknownKey));
}

#[test]
fn dev_issuer_refuses_what_would_not_verify() {
    let dev = dev();
    let bad = |r: Result<String, UserTokenError>| matches!(r, Err(UserTokenError::Claims(_)));
    assert!(bad(dev.issue("", None, &[], 60, "j", now())));
    assert!(bad(dev.issue(&"a".repeat(257), None, &[], 60, "j", now())));
    assert!(bad(dev.issue("alice", Some(""), &[], 60, "j", now())));
    assert!(bad(dev.issue(
        "alice",
        None,
        &["".to_owned()],
        60,
        "j",
        now()
    )));
    let many: Vec<String> = std::iter::repeat_n("g".to_owned(), 257).collect();
    assert!(bad(dev.issue("alice", None, &many, 60, "j", now())));
    assert!(bad(dev.issue("alice", None, &[], 0, "j", now())));
    assert!(bad(dev.issue("alice", None, &[], 60, "", now())));
    assert!(bad(dev.issue("al\nice", None, &[], 60, "j", now())));
}

#[test]
fn rs256_with_the_test_rsa_key() {
    let set = issuers();
    let v = set.verify(&sign_rs(&claims(RSA_ISS)), now()).unwrap();
    assert_eq!(v.user, alice(RSA_ISS));
    assert_eq!(v.expires_at, Timestamp::from_secs(NOW_SECS + 300));
    assert_eq!(v.token_id.as_deref(), Some("j-1"));
    // `aud` as an array, `groups` as one string, no `jti`, no `kid` (one RSA key).
    let c = with(claims(RSA_ISS), "aud", json!(["https://other", AUD]));
    let c = without(with(c, "groups", json!("eng")), "jti");
    let t = jsonwebtoken::encode(&header(Algorithm::RS256, None), &c, &rsa_key()).unwrap();
    let v = set.verify(&t, now()).unwrap();
    assert_eq!(v.user.groups, vec!["eng".to_owned()]);
    assert_eq!(v.token_id, None);
}

#[test]
fn ps256_when_allowed() {
    let c = claims(RSA_ISS);
    let t = jsonwebtoken::encode(&header(Algorithm::PS256, Some(RSA_KID)), &c, &rsa_key()).unwrap();
    let only_rs = TrustedIssuers::new(vec![rsa_issuer(&["RS256"])]).unwrap();
    assert_eq!(only_rs.verify(&t, now()), Err(UserTokenError::Algorithm));
    // The test JWKS declares `alg: RS256`, which binds its key to RS256 alone.
    let pinned = TrustedIssuers::new(vec![rsa_issuer(&["RS256", "PS256"])]).unwrap();
    assert_eq!(pinned.verify(&t, now()), Err(UserTokenError::Algorithm));
    let jwk = without(rsa_jwk(), "alg");
    let jwks = json!({ "keys": [jwk] }).to_string();
    let both = TrustedIssuer::new(
        RSA_ISS,
        AUD,
        &jwks,
        &algs(&["RS256", "PS256"]),
        ClaimNames::default(),
    )
    .unwrap();
    let both = TrustedIssuers::new(vec![both]).unwrap();
    assert_eq!(both.verify(&t, now()).unwrap().user, alice(RSA_ISS));
    let rs = sign_rs(&claims(RSA_ISS));
    assert!(both.verify(&rs, now()).is_ok());
}

#[test]
fn es256_with_a_p256_key() {
    let set = issuers();
    let v = set.verify(&sign_es(&claims(EC_ISS)), now()).unwrap();
    assert_eq!(v.user, alice(EC_ISS));
    // The same key with a kid, selected by it.
    let jwks = json!({"keys": [ec_jwk(Some("ec-1"))]}).to_string();
    let t = TrustedIssuer::new(EC_ISS, AUD, &jwks, &[], ClaimNames::default()).unwrap();
    let set = TrustedIssuers::new(vec![t]).unwrap();
    let tok = jsonwebtoken::encode(
        &header(Algorithm::ES256, Some("ec-1")),
        &claims(EC_ISS),
        &ec_encoding(),
    )
    .unwrap();
    assert_eq!(set.verify(&tok, now()).unwrap().user, alice(EC_ISS));
}

/// Issue 19: RFC 9864's `Ed25519` is EdDSA over Ed25519, so an issuer that signs (and
/// publishes its JWK) under that name is trusted like one that says `EdDSA`, with either
/// name on the allow-list; the name never reaches a key of another type.
#[test]
fn ed25519_alg_name_rfc_9864() {
    use ed25519_dalek::Signer as _;
    const ED_ISS: &str = "https://ed.idp.example.com";
    let sk = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let x = b64(sk.verifying_key().as_bytes());
    let sign = |alg: &str, kid: &str| {
        let h = json!({"alg": alg, "kid": kid, "typ": "JWT"});
        let input = format!(
            "{}.{}",
            b64(h.to_string().as_bytes()),
            b64(claims(ED_ISS).to_string().as_bytes())
        );
        format!("{input}.{}", b64(&sk.sign(input.as_bytes()).to_bytes()))
    };
    for (jwk_alg, allowed) in [
        (Some("Ed25519"), &["Ed25519"][..]),
        (Some("EdDSA"), &["EdDSA"][..]),
        (None, &[][..]),
        (Some("Ed25519"), &["EdDSA", "RS256"][..]),
    ] {
        let mut jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "ed-1"});
        if let Some(a) = jwk_alg {
            jwk["alg"] = json!(a);
        }
        let jwks = json!({ "keys": [jwk] }).to_string();
        let issuer = TrustedIssuer::new(ED_ISS, AUD, &jwks, &algs(allowed), ClaimNames::default())
            .unwrap_or_else(|e| panic!("{jwk_alg:?} {allowed:?}: {e}"));
        let set = TrustedIssuers::new(vec![issuer, rsa_issuer(&[])]).unwrap();
        for alg in ["Ed25519", "EdDSA"] {
            let got = set.verify(&sign(alg, "ed-1"), now());
            assert_eq!(
                got.map(|v| v.user),
                Ok(alice(ED_ISS)),
                "{jwk_alg:?} {allowed:?} {alg}"
            );
        }
    }
    // The RSA issuer's key never verifies an `Ed25519` header.
    let set = TrustedIssuers::new(vec![rsa_issuer(&[])]).unwrap();
    let forged = raw_jws(
        &json!({"alg": "Ed25519", "kid": RSA_KID}),
        &claims(RSA_ISS),
        &[0; 64],
    );
    assert_eq!(set.verify(&forged, now()), Err(UserTokenError::Algorithm));
    // A JWK that says `Ed25519` must be an Ed25519 key.
    let rsa_as_ed = RSA_JWKS.replace("\"RS256\"", "\"Ed25519\"");
    assert!(rsa_as_ed.contains("Ed25519"));
    let err = TrustedIssuer::new(RSA_ISS, AUD, &rsa_as_ed, &[], ClaimNames::default());
    assert!(err.unwrap_err().to_string().contains("does not fit"));
}

/// Attack on issue 20: a user-token header naming a member twice (`alg`, `kid`,
/// `crit`) is refused as Mandate's own tokens and client assertions refuse it
/// (`jws::split`); reading the last member would let two parsers of one header disagree.
#[test]
fn duplicate_header_members_are_refused() {
    use ed25519_dalek::Signer as _;
    const ED_ISS: &str = "https://ed.idp.example.com";
    let sk = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519",
        "x": b64(sk.verifying_key().as_bytes()), "kid": "ed-1"}]})
    .to_string();
    let issuer =
        TrustedIssuer::new(ED_ISS, AUD, &jwks, &algs(&["EdDSA"]), ClaimNames::default()).unwrap();
    let set = TrustedIssuers::new(vec![issuer]).unwrap();
    let sign = |header: &str| {
        let input = format!(
            "{}.{}",
            b64(header.as_bytes()),
            b64(claims(ED_ISS).to_string().as_bytes())
        );
        format!("{input}.{}", b64(&sk.sign(input.as_bytes()).to_bytes()))
    };
    assert!(
        set.verify(&sign(r#"{"alg":"EdDSA","kid":"ed-1"}"#), now())
            .is_ok()
    );
    for header in [
        r#"{"alg":"RS256","alg":"EdDSA","kid":"ed-1"}"#,
        r#"{"alg":"Ed25519","alg":"EdDSA","kid":"ed-1"}"#,
        r#"{"alg":"EdDSA","kid":"other","kid":"ed-1"}"#,
    ] {
        assert_eq!(
            set.verify(&sign(header), now()),
            Err(UserTokenError::Malformed),
            "{header}"
        );
    }
}

#[test]
fn claim_names_are_configurable() {
    let names = ClaimNames {
        user: "oid".to_owned(),
        groups: "roles".to_owned(),
        email: "upn".to_owned(),
    };
    let t = TrustedIssuer::new(RSA_ISS, AUD, RSA_JWKS, &[], names).unwrap();
    let set = TrustedIssuers::new(vec![t]).unwrap();
    let c = json!({"iss": RSA_ISS, "aud": AUD, "exp": NOW_SECS + 60, "sub": "ignored",
        "oid": "00000000-1111", "roles": ["admin"], "upn": "alice@corp.example"});
    let v = set.verify(&sign_rs(&c), now()).unwrap();
    assert_eq!(
        v.user,
        UserRef {
            issuer: RSA_ISS.to_owned(),
            sub: "00000000-1111".to_owned(),
            email: Some("alice@corp.example".to_owned()),
            groups: vec!["admin".to_owned()],
        }
    );
}

#[test]
fn unverified_email_is_dropped() {
    let set = issuers();
    for flag in [json!(false), json!("false")] {
        let c = with(claims(RSA_ISS), "email_verified", flag);
        assert_eq!(set.verify(&sign_rs(&c), now()).unwrap().user.email, None);
    }
    let c = with(claims(RSA_ISS), "email_verified", json!(true));
    assert!(
        set.verify(&sign_rs(&c), now())
            .unwrap()
            .user
            .email
            .is_some()
    );
}

#[test]
fn time_window_edges() {
    let set = issuers();
    let at = |s| Timestamp::from_secs(NOW_SECS + s);
    let t = sign_rs(&claims(RSA_ISS));
    assert!(set.verify(&t, at(299)).is_ok());
    // No leeway on `exp`.
    assert_eq!(set.verify(&t, at(300)), Err(UserTokenError::Expired));
    // `nbf` and `iat` may be up to LEEWAY_SECS ahead of Mandate's clock.
    for claim in ["nbf", "iat"] {
        let ok = sign_rs(&with(claims(RSA_ISS), claim, json!(NOW_SECS + LEEWAY_SECS)));
        assert!(set.verify(&ok, now()).is_ok(), "{claim}");
        let early = sign_rs(&with(
            claims(RSA_ISS),
            claim,
            json!(NOW_SECS + LEEWAY_SECS + 1),
        ));
        assert_eq!(
            set.verify(&early, now()),
            Err(UserTokenError::NotYetValid),
            "{claim}"
        );
    }
    // Fractional NumericDates are read, truncated.
    let frac = sign_rs(&with(claims(RSA_ISS), "exp", json!(NOW_SECS as f64 + 0.5)));
    assert_eq!(set.verify(&frac, now()), Err(UserTokenError::Expired));
}

// ---- refused ----

#[test]
fn wrong_issuer() {
    let set = issuers();
    let t = sign_rs(&with(claims(RSA_ISS), "iss", json!("https://evil.example")));
    assert_eq!(set.verify(&t, now()), Err(UserTokenError::UntrustedIssuer));
    let t = sign_rs(&without(claims(RSA_ISS), "iss"));
    assert_eq!(set.verify(&t, now()), Err(UserTokenError::UntrustedIssuer));
    // A prefix or a trailing slash is another issuer.
    let t = sign_rs(&with(claims(RSA_ISS), "iss", json!(format!("{RSA_ISS}/"))));
    assert_eq!(set.verify(&t, now()), Err(UserTokenError::UntrustedIssuer));
    assert_eq!(
        TrustedIssuers::default().verify(&sign_rs(&claims(RSA_ISS)), now()),
        Err(UserTokenError::UntrustedIssuer)
    );
    // The dev issuer's key cannot speak for the company IdP.
    let dev = DevUserIssuer::new(
        SigningKey::generate(&OsRandom).unwrap(),
        RSA_ISS.to_owned(),
        AUD.to_owned(),
    );
    let t = dev.issue("alice", None, &[], 60, "j", now()).unwrap();
    assert_eq!(set.verify(&t, now()), Err(UserTokenError::UnknownKey));
}

#[test]
fn wrong_audience() {
    let set = issuers();
    for aud in [
        json!("https://other.example"),
        json!(["https://other.example"]),
        json!([]),
        json!(42),
        json!(format!("{AUD}/")),
    ] {
        let t = sign_rs(&with(claims(RSA_ISS), "aud", aud.clone()));
        assert_eq!(
            set.verify(&t, now()),
            Err(UserTokenError::Audience),
            "{aud}"
        );
    }
    let t = sign_rs(&without(claims(RSA_ISS), "aud"));
    assert_eq!(set.verify(&t, now()), Err(UserTokenError::Audience));
}

#[test]
fn expired_or_without_exp() {
    let set = issuers();
    let t = sign_rs(&with(claims(RSA_ISS), "exp", json!(NOW_SECS - 1)));
    assert_eq!(set.verify(&t, now()), Err(UserTokenError::Expired));
    let t = sign_rs(&without(claims(RSA_ISS), "exp"));
    assert!(matches!(
        set.verify(&t, now()),
        Err(UserTokenError::Claims(_))
    ));
    let t = sign_rs(&with(claims(RSA_ISS), "exp", json!("soon")));
    assert!(matches!(
        set.verify(&t, now()),
        Err(UserTokenError::Claims(_))
    ));
}

#[test]
fn not_yet_valid() {
    let set = issuers();
    let t = sign_rs(&with(claims(RSA_ISS), "nbf", json!(NOW_SECS + 3600)));
    assert_eq!(set.verify(&t, now()), Err(UserTokenError::NotYetValid));
}

#[test]
fn algorithm_not_allowed_for_the_issuer() {
    // The EC issuer allows only ES256: an RS256 token naming it is refused before any key.
    let set = issuers();
    let t = sign_rs(&claims(EC_ISS));
    assert_eq!(set.verify(&t, now()), Err(UserTokenError::Algorithm));
    // A kid naming an RSA key with an ES256 header: the key's type does not fit.
    let jwks = json!({"keys": [
        rsa_jwk(),
        ec_jwk(Some("ec-1")),
    ]})
    .to_string();
    let both = TrustedIssuer::new(RSA_ISS, AUD, &jwks, &[], ClaimNames::default()).unwrap();
    let set = TrustedIssuers::new(vec![both]).unwrap();
    let t = jsonwebtoken::encode(
        &header(Algorithm::ES256, Some(RSA_KID)),
        &claims(RSA_ISS),
        &ec_encoding(),
    )
    .unwrap();
    assert_eq!(set.verify(&t, now()), Err(UserTokenError::Algorithm));
}

/// Algorithm confusion: an HS256 token whose HMAC secret is the issuer's public key
/// (as JWKS text, as the PEM-less modulus, as the JWK's `n` text) must never verify.
#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let set = issuers();
    let jwks: Value = serde_json::from_str(RSA_JWKS).unwrap();
    let n = jwks["keys"][0]["n"].as_str().unwrap().to_owned();
    let n_bytes = URL_SAFE_NO_PAD.decode(&n).unwrap();
    for secret in [RSA_JWKS.as_bytes(), n.as_bytes(), &n_bytes] {
        for kid in [Some(RSA_KID), None] {
            let t = jsonwebtoken::encode(
                &header(Algorithm::HS256, kid),
                &claims(RSA_ISS),
                &EncodingKey::from_secret(secret),
            )
            .unwrap();
            assert_eq!(set.verify(&t, now()), Err(UserTokenError::Algorithm));
        }
    }
    // The same against the dev issuer's Ed25519 key.
    let dev = dev();
    let set = TrustedIssuers::new(vec![dev.trusted().unwrap()]).unwrap();
    let good = dev.issue("alice", None, &[], 60, "j", now()).unwrap();
    let kid = jsonwebtoken::decode_header(&good).unwrap().kid;
    let t = jsonwebtoken::encode(
        &header(Algorithm::HS256, kid.as_deref()),
        &claims(DEV_ISS),
        &EncodingKey::from_secret(b"any public bytes"),
    )
    .unwrap();
    assert_eq!(set.verify(&t, now()), Err(UserTokenError::Algorithm));
}

#[test]
fn alg_none_is_refused() {
    let set = issuers();
    for alg in ["none", "None", "NONE", ""] {
        for sig in [&b""[..], b"x"] {
            let t = raw_jws(&json!({"alg": alg, "typ": "JWT"}), &claims(RSA_ISS), sig);
            assert_eq!(
                set.verify(&t, now()),
                Err(UserTokenError::Algorithm),
                "{alg}"
            );
        }
    }
    // No `alg` at all.
    let t = raw_jws(
        &json!({"typ": "JWT", "kid": RSA_KID}),
        &claims(RSA_ISS),
        b"",
    );
    assert_eq!(set.verify(&t, now()), Err(UserTokenError::Algorithm));
}

#[test]
fn unknown_kid() {
    let set = issuers();
    let t = jsonwebtoken::encode(
        &header(Algorithm::RS256, Some("rotated-away")),
        &claims(RSA_ISS),
        &rsa_key(),
    )
    .unwrap();
    assert_eq!(set.verify(&t, now()), Err(UserTokenError::UnknownKey));
    // The EC key has no kid, so a token naming one finds nothing.
    let t = jsonwebtoken::encode(
        &header(Algorithm::ES256, Some("ec-1")),
        &claims(EC_ISS),
        &ec_encoding(),
    )
    .unwrap();
    assert_eq!(set.verify(&t, now()), Err(UserTokenError::UnknownKey));
}

#[test]
fn no_kid_needs_exactly_one_fitting_key() {
    let jwks = json!({"keys": [ec_jwk(Some("ec-1")), {
        "kty": "EC", "crv": "P-256", "kid": "ec-2",
        // RFC 7515 Appendix A.3's key: another valid P-256 point.
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    }]})
    .to_string();
    let t = TrustedIssuer::new(EC_ISS, AUD, &jwks, &[], ClaimNames::default()).unwrap();
    let set = TrustedIssuers::new(vec![t]).unwrap();
    assert_eq!(
        set.verify(&sign_es(&claims(EC_ISS)), now()),
        Err(UserTokenError::UnknownKey)
    );
}

#[test]
fn tampered_payload() {
    let set = issuers();
    for t in [sign_rs(&claims(RSA_ISS)), sign_es(&claims(EC_ISS))] {
        let parts: Vec<&str> = t.split('.').collect();
        let payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let forged = with(payload, "sub", json!("mallory"));
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(forged.to_string().as_bytes()),
            parts[2]
        );
        assert_eq!(set.verify(&forged, now()), Err(UserTokenError::Signature));
        // A signature that is not base64url, or a flipped one.
        let garbled = format!("{}.{}.!!!", parts[0], parts[1]);
        assert_eq!(set.verify(&garbled, now()), Err(UserTokenError::Malformed));
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[0] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
        assert_eq!(set.verify(&flipped, now()), Err(UserTokenError::Signature));
    }
}

#[test]
fn groups_of_the_wrong_type() {
    let set = issuers();
    for groups in [
        json!(42),
        json!({"eng": true}),
        json!([1, 2]),
        json!(["eng", null]),
        json!(["eng", ["nested"]]),
        json!(vec!["g"; 257]),
        json!(["a".repeat(257)]),
        json!([""]),
        json!(["line\nbreak"]),
        json!(""),
    ] {
        let t = sign_rs(&with(claims(RSA_ISS), "groups", groups.clone()));
        assert!(
            matches!(set.verify(&t, now()), Err(UserTokenError::Claims(_))),
            "{groups}"
        );
    }
    // At the limits: accepted.
    // (Not both at once: 64 KiB of groups is past MAX_TOKEN_BYTES.)
    let many: Vec<String> = (0..256).map(|i| format!("g{i}")).collect();
    let t = sign_rs(&with(claims(RSA_ISS), "groups", json!(many)));
    assert_eq!(set.verify(&t, now()).unwrap().user.groups, many);
    let t = sign_rs(&with(claims(RSA_ISS), "groups", json!(["g".repeat(256)])));
    assert!(set.verify(&t, now()).is_ok());
    let t = sign_rs(&without(claims(RSA_ISS), "groups"));
    assert!(set.verify(&t, now()).unwrap().user.groups.is_empty());
}

#[test]
fn missing_or_bad_sub() {
    let set = issuers();
    let t = sign_rs(&without(claims(RSA_ISS), "sub"));
    assert!(matches!(
        set.verify(&t, now()),
        Err(UserTokenError::Claims(_))
    ));
    for sub in [
        json!(""),
        json!(42),
        json!(null),
        json!(["alice"]),
        json!("a".repeat(257)),
    ] {
        let t = sign_rs(&with(claims(RSA_ISS), "sub", sub.clone()));
        assert!(
            matches!(set.verify(&t, now()), Err(UserTokenError::Claims(_))),
            "{sub}"
        );
    }
    // 256 characters (not bytes) is the limit.
    let t = sign_rs(&with(claims(RSA_ISS), "sub", json!("é".repeat(256))));
    assert!(set.verify(&t, now()).is_ok());
    for (claim, v) in [("email", json!(42)), ("jti", json!(7))] {
        let t = sign_rs(&with(claims(RSA_ISS), claim, v));
        assert!(
            matches!(set.verify(&t, now()), Err(UserTokenError::Claims(_))),
            "{claim}"
        );
    }
}

#[test]
fn malformed_tokens() {
    let set = issuers();
    let good = sign_rs(&claims(RSA_ISS));
    let too_big = format!("{good}{}", "A".repeat(MAX_TOKEN_BYTES));
    let crit = raw_jws(
        &json!({"alg": "RS256", "kid": RSA_KID, "crit": ["exp"]}),
        &claims(RSA_ISS),
        b"sig",
    );
    for t in [
        "",
        "a.b",
        "a.b.c.d",
        "a.b.c",
        &format!("{good}.extra"),
        &too_big,
        &crit,
        &raw_jws(&json!(["alg"]), &claims(RSA_ISS), b""),
        &raw_jws(&json!({"alg": "RS256"}), &json!("just a string"), b""),
    ] {
        assert_eq!(
            set.verify(t, now()),
            Err(UserTokenError::Malformed),
            "{t:.60}"
        );
    }
}

#[test]
fn error_messages_never_echo_the_token() {
    let set = issuers();
    let secretish = "s3cr3t-looking-subject";
    let c = with(claims(RSA_ISS), "sub", json!(secretish));
    let cases = [
        sign_rs(&with(c.clone(), "groups", json!(42))),
        sign_rs(&with(c.clone(), "aud", json!(secretish))),
        sign_rs(&with(c.clone(), "email", json!(secretish.repeat(20)))),
        sign_rs(&with(c.clone(), "iss", json!(secretish))),
        raw_jws(&json!({"alg": secretish}), &c, b""),
    ];
    for t in cases {
        let msg = set.verify(&t, now()).unwrap_err().to_string();
        assert!(!msg.contains(secretish) && !msg.contains(&t), "{msg}");
        assert!(msg.len() < 120, "{msg}");
    }
}

// ---- configuration ----

fn config(jwks: &str, names: &[&str]) -> Result<TrustedIssuer, UserConfigError> {
    TrustedIssuer::new(RSA_ISS, AUD, jwks, &algs(names), ClaimNames::default())
}

fn key_error(r: Result<TrustedIssuer, UserConfigError>) -> String {
    match r {
        Err(UserConfigError::Key { reason, .. }) => reason,
        other => format!("not a key error: {other:?}"),
    }
}

#[test]
fn configuration_refusals() {
    let one = |jwk: Value| json!({"keys": [jwk]}).to_string();
    let rsa_jwk = rsa_jwk();
    // Algorithms: never HMAC, never none, never unknown.
    for name in ["HS256", "HS384", "HS512", "none", "RS1", "es256", "ES512"] {
        assert!(
            matches!(
                config(RSA_JWKS, &[name]),
                Err(UserConfigError::Algorithm { .. })
            ),
            "{name}"
        );
    }
    // Issuer and audience.
    for iss in [
        "idp.example.com",
        "ftp://idp.example.com",
        "https://x#f",
        "https://",
        "https:///path",
        "http://?q",
        "urn:x:y",
        "",
    ] {
        let r = TrustedIssuer::new(iss, AUD, RSA_JWKS, &[], ClaimNames::default());
        assert!(matches!(r, Err(UserConfigError::Issuer(_))), "{iss}");
    }
    let r = TrustedIssuer::new(RSA_ISS, "", RSA_JWKS, &[], ClaimNames::default());
    assert!(matches!(r, Err(UserConfigError::Audience(_))));
    let names = ClaimNames {
        user: String::new(),
        ..ClaimNames::default()
    };
    let r = TrustedIssuer::new(RSA_ISS, AUD, RSA_JWKS, &[], names);
    assert_eq!(r.unwrap_err(), UserConfigError::ClaimName("user"));
    // Documents.
    for jwks in ["", "{", "[]", r#"{"keys": {}}"#, r#"{"keys": []}"#] {
        assert!(
            matches!(config(jwks, &[]), Err(UserConfigError::Jwks(_))),
            "{jwks}"
        );
    }
    // Keys.
    let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut small_n = vec![0x80u8];
    small_n.extend([0u8; 126]);
    small_n.push(1);
    let p384 = json!({"kty": "EC", "crv": "P-384",
        // The P-384 base point: a valid public key.
        "x": "qofKIr6LBTeOscce8yCtdG4dO2KLp5uYWfdB4IJUKjhVAvJdv1UpbDpUXjhydgq3",
        "y": "NhfeSpYmLG9dnpi_kpLcKfj0Hb0omhR86doxE7XwuMAKYLHOHX6BnXpDHXyQ6g5f"});
    let mut bad_p384 = p384.clone();
    bad_p384["y"] = json!("NhfeSpYmLG9dnpi_kpLcKfj0Hb0omhR86doxE7XwuMAKYLHOHX6BnXpDHXyQ6g5g");
    let cases: Vec<(Value, &[&str], &str)> = vec![
        (json!("nope"), &[], "not a JSON object"),
        (
            json!({"kty": "oct", "k": "c2VjcmV0"}),
            &[],
            "private key material",
        ),
        (
            json!({"kty": "oct", "kid": "h"}),
            &[],
            "unsupported key type `oct`",
        ),
        (with(rsa_jwk.clone(), "kid", json!(5)), &[], "not a JWK"),
        (
            with(rsa_jwk.clone(), "d", json!("AQAB")),
            &[],
            "private key material",
        ),
        (
            rsa_jwk.clone(),
            &["ES256"],
            "cannot serve any allowed algorithm",
        ),
        (
            ec_jwk(None),
            &["RS256"],
            "cannot serve any allowed algorithm",
        ),
        (
            with(rsa_jwk.clone(), "alg", json!("ES256")),
            &[],
            "does not fit",
        ),
        (
            with(rsa_jwk.clone(), "alg", json!("RS384")),
            &[],
            "cannot serve",
        ),
        (
            with(rsa_jwk.clone(), "n", json!(b64(&small_n))),
            &[],
            "1024 bits",
        ),
        (
            with(rsa_jwk.clone(), "e", json!("Aw==")),
            &[],
            "not base64url",
        ),
        (with(rsa_jwk.clone(), "e", json!("AQ")), &[], "exponent"),
        (with(rsa_jwk.clone(), "e", json!("AAE")), &[], "exponent"),
        (with(rsa_jwk.clone(), "e", json!("Ag")), &[], "exponent"),
        (
            with(ec_jwk(None), "y", json!(x)),
            &[],
            "not a valid P-256 point",
        ),
        (with(ec_jwk(None), "x", json!("AAAA")), &[], "not 32"),
        (
            json!({"kty": "EC", "crv": "P-521", "x": x, "y": x}),
            &[],
            "unsupported EC curve",
        ),
        (bad_p384, &["ES384"], "not a valid EC P-384 public key"),
        (
            json!({"kty": "OKP", "crv": "X25519", "x": x}),
            &[],
            "unsupported key type `OKP`",
        ),
        (
            // The identity point: small order.
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&identity)}),
            &[],
            "weak",
        ),
        (
            json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
            &[],
            "not 32",
        ),
        (json!({"kty": "XYZ"}), &[], "unsupported key type `XYZ`"),
    ];
    for (jwk, names, want) in cases {
        let got = key_error(config(&one(jwk.clone()), names));
        assert!(got.contains(want), "{jwk}: {got}");
    }
    // The valid P-384 key is accepted when ES384 is allowed.
    assert!(config(&one(p384), &["ES384"]).is_ok());
    // Duplicate kids, duplicate issuers.
    let twice = json!({"keys": [rsa_jwk.clone(), rsa_jwk]}).to_string();
    assert!(key_error(config(&twice, &[])).contains("duplicate kid"));
    assert_eq!(
        TrustedIssuers::new(vec![rsa_issuer(&[]), rsa_issuer(&["RS256"])]).unwrap_err(),
        UserConfigError::DuplicateIssuer(RSA_ISS.to_owned())
    );
}

#[test]
fn encryption_keys_are_skipped() {
    let rsa_jwk = rsa_jwk();
    let enc = |k: &str, v: Value| with(with(rsa_jwk.clone(), "kid", json!("enc")), k, v);
    let jwks = json!({"keys": [
        enc("use", json!("enc")),
        without(enc("alg", json!("RSA-OAEP")), "use"),
        without(enc("key_ops", json!(["encrypt"])), "use"),
        rsa_jwk.clone(),
    ]})
    .to_string();
    let t = config(&jwks, &[]).unwrap();
    assert!(format!("{t:?}").contains(RSA_KID));
    let set = TrustedIssuers::new(vec![t]).unwrap();
    assert!(set.verify(&sign_rs(&claims(RSA_ISS)), now()).is_ok());
    // Only encryption keys: nothing to verify with.
    let only = json!({"keys": [enc("use", json!("enc"))]}).to_string();
    assert!(matches!(config(&only, &[]), Err(UserConfigError::Jwks(_))));
}

#[test]
fn accessors_and_emptiness() {
    let t = rsa_issuer(&[]);
    assert_eq!((t.issuer(), t.audience()), (RSA_ISS, AUD));
    assert!(TrustedIssuers::default().is_empty());
    let set = issuers();
    assert!(!set.is_empty());
    assert_eq!(set.get(EC_ISS).map(TrustedIssuer::issuer), Some(EC_ISS));
}

// ---- properties ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn garbage_never_panics(s in "\\PC{0,300}") {
        let _ = issuers().verify(&s, now());
    }

    #[test]
    fn garbage_segments_never_panic(
        h in proptest::collection::vec(any::<u8>(), 0..80),
        p in proptest::collection::vec(any::<u8>(), 0..200),
        sig in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let t = format!("{}.{}.{}", b64(&h), b64(&p), b64(&sig));
        let _ = issuers().verify(&t, now());
    }

    #[test]
    fn signed_garbage_claims_never_panic(
        alg in prop_oneof![Just("RS256"), Just("ES256"), Just("EdDSA"), Just("HS256"), Just("none")],
        payload in "\\PC{0,200}",
    ) {
        // A JSON object around fuzzed members, validly signed: only claim checks decide.
        let c = json!({"iss": RSA_ISS, "aud": AUD, "exp": NOW_SECS + 5, "x": payload});
        let h = json!({"alg": alg, "kid": RSA_KID});
        let _ = issuers().verify(&raw_jws(&h, &c, payload.as_bytes()), now());
        prop_assert!(issuers().verify(&sign_rs(&c), now()).is_err());
    }

    #[test]
    fn dev_round_trip(
        sub in "[^\\p{Cc}]{1,256}",
        email in proptest::option::of("[a-z]{1,20}@[a-z]{1,20}\\.example"),
        groups in proptest::collection::vec("[^\\p{Cc}]{1,40}", 0..8),
        lifetime in 1u32..100_000,
    ) {
        let dev = dev();
        let set = TrustedIssuers::new(vec![dev.trusted().unwrap()]).unwrap();
        let t = dev.issue(&sub, email.as_deref(), &groups, lifetime, "j", now()).unwrap();
        let v = set.verify(&t, now()).unwrap();
        prop_assert_eq!(v.user, UserRef { issuer: DEV_ISS.to_owned(), sub, email, groups });
        prop_assert_eq!(v.expires_at.secs(), NOW_SECS + i64::from(lifetime));
    }
}
