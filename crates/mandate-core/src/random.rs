//! The random source, behind a trait so tests can make it deterministic.

/// The OS random source failed; callers must fail closed.
#[derive(Debug, thiserror::Error)]
#[error("random source failed: {0}")]
pub struct RandomError(String);

/// Where secrets, keys, salts and identifiers get their randomness.
pub trait Random: Send + Sync {
    /// Fills `buf` with cryptographically secure random bytes.
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError>;
}

/// Fills `N` bytes from a `dyn Random`.
pub fn random_bytes<const N: usize>(random: &dyn Random) -> Result<[u8; N], RandomError> {
    let mut out = [0u8; N];
    random.fill(&mut out)?;
    Ok(out)
}

/// The operating system's CSPRNG (`getrandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(buf).map_err(|e| RandomError(e.to_string()))
    }
}
