//! Access tokens: issue (sign), verify, and a hit in the verified-token cache.
//!
//! The cache (`mandate_http::cache::VerifiedTokens`) is private to the server crate;
//! `cache_hit` times the same work on the same types — SHA-256 of the length-prefixed
//! token, a mutex, a lookup in a `HashMap<[u8; 32], AccessClaims>` holding 100,000
//! entries (the cache's bound), the expiry check and the clone of the claims.

#![expect(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;

use criterion::{Criterion, criterion_group, criterion_main};
use mandate_core::random::OsRandom;
use mandate_core::time::Timestamp;
use mandate_token::access::{AccessClaims, Audience, Expected, issue, verify};
use mandate_token::keys::{KeyRing, SigningKey};
use sha2::{Digest, Sha256};

const ISSUER: &str = "http://mandate.bench";
const NOW: i64 = 1_750_000_000;
const AGENT: &str = "agt_01JA0000000000000000000042";
const CACHE_ENTRIES: usize = 100_000;

fn claims(jti: &str) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.to_owned(),
        sub: AGENT.to_owned(),
        aud: Audience::One("https://crm.example.com/api".to_owned()),
        exp: NOW + 300,
        iat: NOW - 1,
        nbf: NOW - 1,
        jti: jti.to_owned(),
        client_id: AGENT.to_owned(),
        scope: Some("crm:read crm:write".to_owned()),
        act: None,
        mandate: None,
        parents: Vec::new(),
        cnf: None,
    }
}

/// `cache.rs`'s key: SHA-256 over each part's big-endian length and bytes.
fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// `VerifiedTokens::get`, step for step.
fn cache_get(
    map: &Mutex<HashMap<[u8; 32], AccessClaims>>,
    token: &str,
    now: Timestamp,
) -> Option<AccessClaims> {
    let key = digest(&[token.as_bytes()]);
    let map = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match map.get(&key) {
        Some(c) if now.secs() < c.exp => Some(c.clone()),
        _ => None,
    }
}

fn bench_tokens(c: &mut Criterion) {
    let ring = KeyRing::new(SigningKey::generate(&OsRandom).expect("key"), vec![]).expect("ring");
    let now = Timestamp::from_secs(NOW);
    let mine = claims("tok_01JC0000000000000000000001");
    let token = issue(ring.current(), &mine).expect("issue");
    let expected = Expected {
        issuer: ISSUER,
        max_lifetime_secs: 3600,
    };
    verify(&ring, &token, &expected, now).expect("the bench token verifies");

    let mut group = c.benchmark_group("token");
    group.bench_function("issue", |b| {
        b.iter(|| issue(black_box(ring.current()), black_box(&mine)));
    });
    group.bench_function("verify", |b| {
        b.iter(|| verify(black_box(&ring), black_box(&token), &expected, now));
    });

    let cache: HashMap<[u8; 32], AccessClaims> = (0..CACHE_ENTRIES - 1)
        .map(|i| {
            let c = claims(&format!("tok_01JD{i:022}"));
            (digest(&[format!("{token}{i}").as_bytes()]), c)
        })
        .chain([(digest(&[token.as_bytes()]), mine.clone())])
        .collect();
    let cache = Mutex::new(cache);
    assert!(cache_get(&cache, &token, now).is_some(), "a cache hit");
    group.bench_function("cache_hit", |b| {
        b.iter(|| cache_get(black_box(&cache), black_box(&token), now));
    });
    group.finish();
}

criterion_group!(benches, bench_tokens);
criterion_main!(benches);
