//! Last activity, gathered in memory and written in batches: when each agent last had a
//! decision and each credential last authenticated (the inventory's "last activity" and
//! "last used", issue 24).
//!
//! The decision path and the token endpoint only note a time here ([`Activity::saw`]:
//! a map insert under a short lock, no store call, no allocation for a subject already
//! noted); the sweeper writes what was noted every few seconds ([`flush`]) and once
//! more at shutdown. So a stored time lags the real one by at most the flush interval
//! (5 s), and a crash loses at most that much of it: the audit log, not this table, is
//! the record; this is the index the inventory reads instead of scanning the log.
//!
//! INVARIANT (activity is bounded): the map holds at most [`MAX_PENDING`] subjects
//! between flushes; a subject noted past that is dropped (counted in
//! `mandate_activity_dropped_total`) and its time comes with its next activity. Only
//! subjects the node knows are noted (an agent in the snapshot, a credential that just
//! authenticated), so what a caller sends cannot grow it.

use std::collections::HashMap;
use std::sync::Mutex;

use mandate_core::time::Timestamp;
use mandate_store::StoreError;
use mandate_store::prelude::*;

use crate::Node;

/// The most subjects noted between two flushes.
pub const MAX_PENDING: usize = 1_000_000;

/// Times noted since the last flush, by subject (`agt_…`, `crd_…`).
#[derive(Debug, Default)]
pub struct Activity {
    pending: Mutex<HashMap<String, i64>>,
}

impl Activity {
    /// Notes that `subject` was active at `at` (keeps the later of two times).
    pub fn saw(&self, subject: &str, at: Timestamp) {
        let Ok(mut m) = self.pending.lock() else {
            return;
        };
        if let Some(t) = m.get_mut(subject) {
            *t = (*t).max(at.secs());
            return;
        }
        if m.len() >= MAX_PENDING {
            drop(m);
            crate::metrics::activity_dropped();
            return;
        }
        m.insert(subject.to_owned(), at.secs());
    }

    /// Takes what was noted, leaving the map empty.
    fn take(&self) -> Vec<(String, Timestamp)> {
        let Ok(mut m) = self.pending.lock() else {
            return Vec::new();
        };
        std::mem::take(&mut *m)
            .into_iter()
            .map(|(s, t)| (s, Timestamp::from_secs(t)))
            .collect()
    }

    /// Puts back a batch that could not be written, so the next flush tries again.
    fn restore(&self, rows: Vec<(String, Timestamp)>) {
        for (s, t) in rows {
            self.saw(&s, t);
        }
    }
}

/// Writes what was noted since the last flush; on failure keeps it for the next one.
/// Returns how many subjects were written.
pub fn flush(node: &Node) -> Result<usize, StoreError> {
    let rows = node.activity.take();
    if rows.is_empty() {
        return Ok(0);
    }
    match node.store().record_activity(&rows) {
        Ok(()) => Ok(rows.len()),
        Err(e) => {
            node.activity.restore(rows);
            Err(e)
        }
    }
}
