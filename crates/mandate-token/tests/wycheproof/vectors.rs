//! The Wycheproof vector runner shared by `tests/wycheproof/main.rs` (keys as clients
//! register them) and `src/user.rs`'s unit tests (keys as a trusted issuer's JWKS gives
//! them): walks a vector file (`tests/data/wycheproof/`, see its README), asks
//! `verifies(jwk, message, signature)` of each vector — `Err` when the key itself is
//! refused, which then verifies nothing — and collects every vector decided against its
//! `result`. The files hold no `acceptable` results; a new result kind fails the run
//! rather than being skipped.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The vectors' ECDSA P-256 file (SHA-256, P1363 `r || s`: JWS `ES256`'s form).
pub(crate) const ECDSA_P256: (&str, &str, usize) =
    ("ecdsa_secp256r1_sha256_p1363_test.json", "ECDSA", 262);
/// The vectors' Ed25519 file.
pub(crate) const ED25519: (&str, &str, usize) = ("ed25519_test.json", "EDDSA", 151);

/// Decodes a Wycheproof hex string.
fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).unwrap(), 16).unwrap())
        .collect()
}

/// The group's public key as a JWK: its `publicKeyJwk`, or — where the file gives none
/// (a few ECDSA groups) — one made from the affine coordinates `wx`/`wy`, each the
/// big-endian integer left-padded (or its sign byte stripped) to the curve's 32 bytes.
fn jwk_of(group: &Value) -> Value {
    if group["publicKeyJwk"].is_object() {
        return group["publicKeyJwk"].clone();
    }
    let key = &group["publicKey"];
    assert_eq!(key["curve"], "secp256r1", "only ECDSA groups lack a JWK");
    let coord = |name: &str| {
        let raw = hex(key[name].as_str().unwrap());
        let trimmed: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
        assert!(trimmed.len() <= 32, "{name} longer than 32 bytes");
        let mut out = vec![0_u8; 32 - trimmed.len()];
        out.extend_from_slice(&trimmed);
        URL_SAFE_NO_PAD.encode(out)
    };
    json!({"kty": "EC", "crv": "P-256", "x": coord("wx"), "y": coord("wy")})
}

/// What one vector file gave: how many vectors ran, and the ones Mandate got wrong.
pub(crate) struct Outcome {
    ran: usize,
    valid: usize,
    invalid: usize,
    wrong: Vec<String>,
}

pub(crate) fn run(
    file: &str,
    algorithm: &str,
    expected_tests: usize,
    verifies: impl Fn(&Value, &[u8], &[u8]) -> Result<bool, String>,
) -> Outcome {
    let path = format!(
        "{}/tests/data/wycheproof/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc["algorithm"], algorithm, "{file}");
    let mut out = Outcome {
        ran: 0,
        valid: 0,
        invalid: 0,
        wrong: Vec::new(),
    };
    for group in doc["testGroups"].as_array().expect("testGroups") {
        let jwk = jwk_of(group);
        for t in group["tests"].as_array().expect("tests") {
            let id = &t["tcId"];
            let expect_valid = match t["result"].as_str() {
                Some("valid") => true,
                Some("invalid") => false,
                other => panic!("{file} tcId {id}: unexpected result {other:?}"),
            };
            let msg = hex(t["msg"].as_str().unwrap());
            let sig = hex(t["sig"].as_str().unwrap());
            // A key Mandate refuses to take verifies nothing.
            let verdict = verifies(&jwk, &msg, &sig);
            let accepted = verdict == Ok(true);
            out.ran += 1;
            if expect_valid {
                out.valid += 1;
            } else {
                out.invalid += 1;
            }
            if accepted != expect_valid {
                out.wrong.push(format!(
                    "tcId {id} ({}; {}): expected {}, Mandate {} (key {})",
                    t["comment"],
                    t["flags"],
                    t["result"],
                    if accepted { "accepted" } else { "refused" },
                    match &verdict {
                        Ok(_) => "taken".to_owned(),
                        Err(e) => format!("refused: {e}"),
                    }
                ));
            }
        }
    }
    assert_eq!(
        out.ran, expected_tests,
        "{file}: every vector of the file ran"
    );
    assert_eq!(
        doc["numberOfTests"].as_u64(),
        u64::try_from(expected_tests).ok(),
        "{file}: numberOfTests"
    );
    out
}

pub(crate) fn assert_all_right(file: &str, out: &Outcome) {
    assert!(
        out.valid > 0 && out.invalid > 0,
        "{file}: both kinds present"
    );
    assert!(
        out.wrong.is_empty(),
        "{file}: {} of {} vectors decided wrongly:\n{}",
        out.wrong.len(),
        out.ran,
        out.wrong.join("\n")
    );
}
