//! Integration tests of mandate-audit: the Merkle verifiers against the public
//! transparency-dev test vectors, and property tests of export and incident-bundle
//! verification.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test loudly; test data is read by index"
)]

mod bundle;
mod export;
mod merkle_vectors;
