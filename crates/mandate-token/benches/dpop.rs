//! What a DPoP proof costs the server, against one Ed25519 verification measured in the
//! same run (issue 25: "server CPU added by a DPoP proof ≤ 1.3 × one Ed25519
//! verification").
//!
//! - `ed25519/verify`: the baseline, one `ed25519_dalek::VerifyingKey::verify` of a
//!   64-byte message with a key already decompressed;
//! - `ed25519/decompress`: `VerifyingKey::from_bytes` alone (the point decompression a
//!   key that arrives as bytes needs first);
//! - `dpop/verify`: `mandate_token::dpop::verify` of an Ed25519 proof with `ath`, as
//!   `POST /v1/authorize` calls it (`mandate_service::dpop`): a 60 s window, no nonce,
//!   the node's memo of Ed25519 points (which holds the client's key after its first
//!   proof, as on a node serving a client many requests);
//! - `dpop/verify_admit`: the same and the replay-cache admission the server does next
//!   (each iteration admits a new `jti`, so the cache grows as on a busy node);
//! - the parts of a proof check other than the signature: `dpop/ath` (SHA-256 of an
//!   access token), `dpop/htu` (one URL normalization), `dpop/jwk` (reading the
//!   header's JWK without the memo: decompression, small-order check, RFC 7638
//!   thumbprint).
//!
//! Run with `--bench` (as `cargo bench` does), it ends by timing `ed25519/verify` and
//! `dpop/verify_admit` in alternating blocks, so machine drift hits both sides alike,
//! and printing the ratio of their medians per block — the figure the target is read
//! on — and of their fastest blocks (noisier on a loaded machine: each side's fastest
//! block falls in a different quiet moment).
//! `cargo bench -p mandate-token --bench dpop -- ratio-only` runs only that.

#![expect(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group};
use ed25519_dalek::{Signer as _, Verifier as _};
use mandate_core::random::OsRandom;
use mandate_core::time::Timestamp;
use mandate_token::access::{AccessClaims, Audience, Confirmation, issue};
use mandate_token::dpop::{self, Expect, ProofClaims, ReplayCache, Window};
use mandate_token::jwk::{Ed25519Points, PublicJwk};
use mandate_token::keys::SigningKey;

const NOW: i64 = 1_750_000_000;
const URL: &str = "http://127.0.0.1:8089/v1/authorize";

/// A Mandate access token bound to `jkt`, as the token endpoint issues one.
fn bound_token(jkt: &str) -> String {
    let key = SigningKey::generate(&OsRandom).expect("key");
    let claims = AccessClaims {
        iss: "http://127.0.0.1:8089".to_owned(),
        sub: "agt_01JA0000000000000000000042".to_owned(),
        aud: Audience::One("http://127.0.0.1:8089".to_owned()),
        exp: NOW + 300,
        iat: NOW - 1,
        nbf: NOW - 1,
        jti: "tok_01JC0000000000000000000001".to_owned(),
        client_id: "agt_01JA0000000000000000000042".to_owned(),
        scope: Some("crm:read crm:write".to_owned()),
        act: None,
        mandate: None,
        parents: Vec::new(),
        cnf: Some(Confirmation {
            jkt: Some(jkt.to_owned()),
            x5t_s256: None,
        }),
    };
    issue(&key, &claims).expect("issue")
}

struct Fixture {
    vk: ed25519_dalek::VerifyingKey,
    vk_bytes: [u8; 32],
    msg: [u8; 64],
    sig: ed25519_dalek::Signature,
    token: String,
    proof: String,
    jwk: serde_json::Value,
    points: Ed25519Points,
}

fn fixture() -> Fixture {
    let client = SigningKey::generate(&OsRandom).expect("client key");
    let token = bound_token(&dpop::thumbprint(&client));
    let proof = dpop::sign(
        &client,
        &ProofClaims {
            jti: "0f6c1d7e-8a55-4f0e-9a35-5c1f4f1e8b2a".to_owned(),
            htm: "POST".to_owned(),
            htu: URL.to_owned(),
            iat: NOW,
            ath: Some(dpop::ath(&token)),
            nonce: None,
        },
    )
    .expect("sign");
    let raw = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let msg = [0x5a; 64];
    let mut jwk = client.public_jwk();
    if let Some(o) = jwk.as_object_mut() {
        o.remove("kid");
    }
    Fixture {
        vk: raw.verifying_key(),
        vk_bytes: raw.verifying_key().to_bytes(),
        msg,
        sig: raw.sign(&msg),
        token,
        proof,
        jwk,
        points: Ed25519Points::default(),
    }
}

/// What `mandate_service::dpop` passes: the node's points memo, which holds the
/// client's key after its first proof.
fn expect(f: &Fixture) -> Expect<'_> {
    Expect {
        method: "POST",
        url: URL,
        access_token: Some(&f.token),
        window: Window::default(),
        nonce: None,
        now: Timestamp::from_secs(NOW),
        points: Some(&f.points),
    }
}

/// One proof checked and admitted as `mandate_service::dpop` does, under a fresh `jti`
/// (`n`) so the cache admits it.
fn verify_admit(f: &Fixture, cache: &ReplayCache, n: u64) {
    let e = expect(f);
    let mut p = dpop::verify(black_box(&f.proof), &e).expect("the bench proof verifies");
    p.jti = n.to_string();
    cache
        .admit(&p, e.window, e.now)
        .expect("a fresh jti is admitted");
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    f.vk.verify(&f.msg, &f.sig).expect("baseline verifies");

    let mut g = c.benchmark_group("ed25519");
    g.bench_function("verify", |b| {
        b.iter(|| black_box(&f.vk).verify(black_box(&f.msg), black_box(&f.sig)));
    });
    g.bench_function("decompress", |b| {
        b.iter(|| ed25519_dalek::VerifyingKey::from_bytes(black_box(&f.vk_bytes)));
    });
    g.finish();

    let mut g = c.benchmark_group("dpop");
    g.bench_function("verify", |b| {
        let e = expect(&f);
        b.iter(|| dpop::verify(black_box(&f.proof), &e));
    });
    let cache = ReplayCache::new(usize::MAX);
    let mut n = 0u64;
    g.bench_function("verify_admit", |b| {
        b.iter(|| {
            n += 1;
            verify_admit(&f, &cache, n);
        });
    });
    g.bench_function("ath", |b| b.iter(|| dpop::ath(black_box(&f.token))));
    g.bench_function("htu", |b| b.iter(|| dpop::normalize_htu(black_box(URL))));
    g.bench_function("jwk", |b| b.iter(|| PublicJwk::parse(black_box(&f.jwk))));
    g.finish();
}

/// `ed25519/verify` and `dpop/verify_admit` in alternating blocks (the order flips each
/// round); prints each side's median and fastest per-call time and the ratios.
fn ratio() {
    const ROUNDS: usize = 31;
    const PER_BLOCK: u32 = 2_000;
    let f = fixture();
    let cache = ReplayCache::new(usize::MAX);
    let mut n = 0u64;
    let mut block = |dpop_side: bool| {
        #[expect(
            clippy::disallowed_methods,
            reason = "a benchmark's monotonic timer, not the time of day"
        )]
        let t = Instant::now();
        for _ in 0..PER_BLOCK {
            if dpop_side {
                n += 1;
                verify_admit(&f, &cache, n);
            } else {
                let _ = black_box(black_box(&f.vk).verify(black_box(&f.msg), black_box(&f.sig)));
            }
        }
        t.elapsed().as_secs_f64() * 1e6 / f64::from(PER_BLOCK)
    };
    let (mut ed, mut dp) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        if r % 2 == 0 {
            ed.push(block(false));
            dp.push(block(true));
        } else {
            dp.push(block(true));
            ed.push(block(false));
        }
    }
    ed.sort_by(f64::total_cmp);
    dp.sort_by(f64::total_cmp);
    let at = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(f64::NAN);
    let (ed_med, dp_med) = (at(&ed, ROUNDS / 2), at(&dp, ROUNDS / 2));
    let (ed_min, dp_min) = (at(&ed, 0), at(&dp, 0));
    println!(
        "ratio (dpop/verify_admit over ed25519/verify, {ROUNDS} alternating blocks of \
         {PER_BLOCK}): medians {dp_med:.2} / {ed_med:.2} µs = {:.3}; fastest blocks \
         {dp_min:.2} / {ed_min:.2} µs = {:.3}",
        dp_med / ed_med,
        dp_min / ed_min
    );
}

criterion_group!(benches, bench);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |a: &str| args.iter().any(|x| x == a);
    if has("ratio-only") {
        ratio();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    if has("--bench") {
        ratio();
    }
}
