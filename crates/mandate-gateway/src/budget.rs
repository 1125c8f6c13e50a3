//! One budget, shared by both gateways, for the bytes they hold in memory from request
//! bodies.
//!
//! A body is buffered whole when the HTTP gateway reads its fields (a template reads
//! `{body.…}`) and for every MCP message; each is held to `gateway.max_body_bytes`, but
//! without a bound across requests, a hundred concurrent 10 MB bodies on one token
//! held a gigabyte. So before a byte of a body is read, its size is reserved here —
//! the declared `Content-Length`, or the per-body limit when the length is not
//! declared (chunked) — and the reservation is released when the request is done with
//! the bytes. When the reservation does not fit, the request is answered at once with
//! 503 `busy`, `Retry-After` and `Connection: close` (its body unread) rather than
//! waiting for room: a queue of waiting bodies would be memory too, and a slow client
//! could hold its place.
//!
//! Bodies relayed to an upstream as they arrive (the HTTP gateway's, when no template
//! reads them) are not buffered and not counted: they move under backpressure, a
//! chunk at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The default budget (`gateway.max_buffered_bytes`): 256 MiB.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 256 * 1024 * 1024;

/// The bytes both gateways may hold from request bodies at once. Clones share one
/// budget.
#[derive(Debug, Clone)]
pub struct BodyBudget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: AtomicUsize,
}

impl BodyBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self(Arc::new(Inner {
            limit,
            used: AtomicUsize::new(0),
        }))
    }

    /// Reserves `bytes`, or `None` when they do not fit now.
    pub fn reserve(&self, bytes: usize) -> Option<Reservation> {
        let inner = &self.0;
        // INVARIANT (body budget): `used` never exceeds `limit`; every byte added here
        // is taken away by the reservation's drop.
        inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|total| *total <= inner.limit)
            })
            .ok()
            .map(|_| Reservation {
                budget: self.clone(),
                bytes,
            })
    }

    /// The bytes reserved now.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Acquire)
    }
}

/// Bytes held from a [`BodyBudget`] until this is dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: BodyBudget,
    bytes: usize,
}

impl Reservation {
    /// How many bytes it holds: the most the body it was made for may buffer.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.0.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_the_budget_and_are_returned_on_drop() {
        let b = BodyBudget::new(100);
        let one = b.reserve(60).expect("fits");
        assert_eq!(one.bytes(), 60);
        assert!(b.reserve(41).is_none(), "over the budget");
        let two = b.reserve(40).expect("fits exactly");
        assert_eq!(b.used(), 100);
        assert!(b.reserve(1).is_none());
        assert!(b.reserve(0).is_some(), "nothing always fits");
        drop(one);
        assert_eq!(b.used(), 40);
        assert!(b.clone().reserve(60).is_some(), "clones share the budget");
        drop(two);
        assert_eq!(b.used(), 0);
        assert!(b.reserve(usize::MAX).is_none());
    }
}
