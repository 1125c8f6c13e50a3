//! Offline verification of an exported log: with only the export and the node's public
//! key, recompute every leaf and root and check every checkpoint, so that any changed,
//! dropped, reordered or inserted event is found.
//!
//! # Export format
//!
//! JSON Lines: UTF-8, one record per line, each line ending in `\n` (the last line's
//! `\n` may be missing). Each line is the RFC 8785 canonical JSON of one of
//!
//! - `{"event":<AuditEvent>}` — the event in its canonical form (see
//!   [`AuditEvent`]), as [`event_line`] writes it;
//! - `{"checkpoint":"<signed checkpoint text>"}` — as [`checkpoint_line`] writes it.
//!
//! Byte-exact lines are required, not merely equivalent JSON: a line is accepted only if
//! re-encoding what it parses to gives the same bytes, so every byte of an export is
//! covered by a hash or a signature. (For event lines this is checked in one pass over
//! the line, without re-encoding; see `scan`.)
//!
//! # What a valid export is
//!
//! - Events are one node's log from its beginning: `seq` 0, 1, 2, … without gaps, all
//!   naming the same node — except that a restored node's log goes on under a new name
//!   from an epoch event ([`crate::epoch`]) naming the previous node and its size; from
//!   there on events and checkpoints name the new node.
//! - A checkpoint verifies with the key, names the node of the events before it, covers exactly the events
//!   before it (`size` = their number) and its root is their Merkle root. So a checkpoint
//!   is written right after the last event it covers.
//! - Checkpoint times never decrease, and a checkpoint never repeats the previous one
//!   (same size and time).
//! - The export ends with a checkpoint, which therefore covers every event.
//!
//! # Limits
//!
//! An export cut right after one of its checkpoints is a valid, shorter log, and a
//! checkpoint in the middle may be left out without hiding any event: both are exports
//! the node could have produced. To detect a tail cut at a checkpoint, compare the
//! report with a checkpoint obtained elsewhere (a SIEM, an earlier export), or pass it
//! to [`verify_export_against`].

mod scan;

use std::io::BufRead;

use ed25519_dalek::VerifyingKey;
use mandate_core::time::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::canonical::canonical_json;
use crate::checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
use crate::event::{AuditEvent, NodeName};
use crate::merkle::{Frontier, Hash};
use scan::{Scanned, Scanners};

/// How many lines the verifier reads before it scans them.
#[derive(Clone, Copy)]
struct Batch {
    /// At most this many lines.
    lines: usize,
    /// No more lines once they hold this many bytes.
    bytes: usize,
}

/// Large enough that starting the scan's threads costs little, small enough to keep in
/// the cache.
const BATCH: Batch = Batch {
    lines: 16_384,
    bytes: 8 << 20,
};

/// The export line of an event (without the trailing `\n`).
pub fn event_line(event: &AuditEvent) -> String {
    record_line("event", event.to_json())
}

/// The export line of a signed checkpoint (without the trailing `\n`).
pub fn checkpoint_line(checkpoint: &SignedCheckpoint) -> String {
    record_line("checkpoint", Value::String(checkpoint.text.clone()))
}

fn record_line(tag: &str, value: Value) -> String {
    let mut m = Map::new();
    m.insert(tag.to_owned(), value);
    // Canonical JSON of a `Value` is UTF-8 by construction.
    String::from_utf8_lossy(&canonical_json(&Value::Object(m))).into_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
enum Record {
    #[serde(rename = "event")]
    Event(Box<AuditEvent>),
    #[serde(rename = "checkpoint")]
    Checkpoint(String),
}

/// What a verified export contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The node whose log it is.
    pub node: NodeName,
    /// Number of events.
    pub events: u64,
    /// Number of checkpoints.
    pub checkpoints: u64,
    /// Merkle root over all events (the last checkpoint's root).
    pub root: Hash,
    /// The last checkpoint's time.
    pub time: Timestamp,
}

/// Why an export did not verify, and on which line (1-based; for a failure found at the
/// end, the number of the last line).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {failure}")]
pub struct VerifyError {
    /// The 1-based line of the export where it failed.
    pub line: u64,
    /// What failed there.
    pub failure: Failure,
}

/// The checks an export can fail.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Failure {
    /// The line could not be read (an IO error, or not UTF-8).
    #[error("cannot read line: {0}")]
    Read(String),
    /// The line is not an event or checkpoint record.
    #[error("not an event or checkpoint record: {0}")]
    Record(String),
    /// The line is a record, but not written byte for byte as the export format says.
    #[error("record is not in canonical form")]
    NotCanonical,
    /// An event out of sequence: dropped, inserted, duplicated or reordered events.
    #[error("event seq {got}, expected {want}")]
    Seq {
        /// The expected seq.
        want: u64,
        /// The seq found.
        got: u64,
    },
    /// A record names another node.
    #[error("node `{got}` differs from the log's node `{want}`")]
    Node {
        /// The log's node.
        want: String,
        /// The node named.
        got: String,
    },
    /// The checkpoint's text or signature is invalid.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint does not cover exactly the events before it.
    #[error("checkpoint size {size}, but {events} events precede it")]
    CheckpointSize {
        /// The checkpoint's size.
        size: u64,
        /// Events before it.
        events: u64,
    },
    /// The events before the checkpoint do not hash to its root.
    #[error("checkpoint root does not match the {size} events before it")]
    CheckpointRoot {
        /// The checkpoint's size.
        size: u64,
    },
    /// The checkpoint's time is before the previous checkpoint's.
    #[error("checkpoint time {time} is before the previous checkpoint's {previous}")]
    CheckpointTime {
        /// This checkpoint's time.
        time: Timestamp,
        /// The previous checkpoint's time.
        previous: Timestamp,
    },
    /// The checkpoint has the size and time of the one before it.
    #[error("checkpoint repeats the previous one")]
    CheckpointRepeated,
    /// The export does not end with a checkpoint of all its events: its tail is missing.
    #[error("export does not end with a checkpoint of all {events} events")]
    Unsealed {
        /// Events read.
        events: u64,
    },
    /// The export disagrees with a checkpoint the caller already holds.
    #[error("known checkpoint of size {size}: {reason}")]
    Known {
        /// The known checkpoint's size.
        size: u64,
        /// How they disagree.
        reason: &'static str,
    },
    /// The log has more events than a `u64` counts.
    #[error("log too large")]
    TooLarge,
}

/// Verifies an export (see the module documentation) against the node's public key.
pub fn verify_export(
    reader: impl BufRead,
    key: &VerifyingKey,
) -> Result<VerifyReport, VerifyError> {
    verify_export_against(reader, key, &[])
}

/// Like [`verify_export`], and also checks that the export contains the log each of
/// `known` describes: the same node, at least its size, and its root at its size. Pass
/// the latest checkpoint held outside the export to detect a tail cut at a checkpoint.
/// `known` are checkpoints whose signatures the caller has already checked.
///
/// Lines are read in batches of up to 16,384; a large batch is scanned on up to one
/// thread per CPU (at most 8), and then checked in order on the caller's thread.
pub fn verify_export_against(
    reader: impl BufRead,
    key: &VerifyingKey,
    known: &[Checkpoint],
) -> Result<VerifyReport, VerifyError> {
    verify_in_batches(reader, key, known, BATCH)
}

fn verify_in_batches(
    mut reader: impl BufRead,
    key: &VerifyingKey,
    known: &[Checkpoint],
    size: Batch,
) -> Result<VerifyReport, VerifyError> {
    let mut sorted: Vec<&Checkpoint> = known.iter().collect();
    sorted.sort_by_key(|k| k.size);
    let mut state = State {
        key,
        known: sorted.into_iter().peekable(),
        node: None,
        previous: Vec::new(),
        frontier: Frontier::new(),
        checkpoints: 0,
        last: None,
    };
    let mut scanners = Scanners::new(key);
    let mut line_no: u64 = 0;
    let mut batch = String::new();
    let mut ends: Vec<usize> = Vec::new();
    state
        .check_known()
        .map_err(|failure| VerifyError { line: 0, failure })?;
    loop {
        // Read whole lines, each with its `\n` if it has one.
        batch.clear();
        ends.clear();
        let (mut failed, mut eof) = (None, false);
        while ends.len() < size.lines && batch.len() < size.bytes {
            match reader.read_line(&mut batch) {
                Ok(0) => eof = true,
                Ok(_) => ends.push(batch.len()),
                Err(e) => failed = Some(e),
            }
            if eof || failed.is_some() {
                break;
            }
        }
        // A failed read may leave part of a line behind.
        batch.truncate(ends.last().copied().unwrap_or(0));
        let mut start = 0;
        let lines: Vec<&str> = ends
            .iter()
            .map(|&end| {
                let line = batch.get(start..end).unwrap_or_default();
                start = end;
                line.strip_suffix('\n').unwrap_or(line)
            })
            .collect();
        let mut scanned = scanners.scan(&lines).into_iter();
        for line in lines {
            line_no = line_no.saturating_add(1);
            // A line without a scan result gets the full check.
            state
                .line(line, scanned.next().flatten())
                .map_err(|failure| VerifyError {
                    line: line_no,
                    failure,
                })?;
        }
        if let Some(e) = failed {
            return Err(VerifyError {
                line: line_no.saturating_add(1),
                failure: Failure::Read(e.to_string()),
            });
        }
        if eof {
            break;
        }
    }
    state.finish(known).map_err(|failure| VerifyError {
        line: line_no,
        failure,
    })
}

struct State<'a, I: Iterator<Item = &'a Checkpoint>> {
    key: &'a VerifyingKey,
    known: std::iter::Peekable<I>,
    node: Option<NodeName>,
    /// The names the log went by before `node`, oldest first (one per restore).
    previous: Vec<NodeName>,
    // INVARIANT (chain): frontier holds leaf i = the leaf hash of event seq i, for every
    // event read so far; its root covers 0..size.
    frontier: Frontier,
    checkpoints: u64,
    /// The last checkpoint seen, and whether it is still the last record (no event since).
    last: Option<(Checkpoint, bool)>,
}

impl<'a, I: Iterator<Item = &'a Checkpoint>> State<'a, I> {
    /// Checks `line`, given what the scan found in it.
    fn line(&mut self, line: &str, scanned: Option<Scanned<'_>>) -> Result<(), Failure> {
        match scanned {
            // The fast path: an event line the scan vouches for, naming a valid node.
            // INVARIANT (chain): the scan accepts only an event's canonical bytes in an
            // event line, so the hash it returns is that event's leaf.
            Some(Scanned::Event(event)) => match &self.node {
                Some(node) if node.as_str() == event.node => {
                    return self.event(event.seq, None, event.leaf);
                }
                // Another node's name: only an epoch event may bring one (full check).
                Some(_) => {}
                None => {
                    if let Ok(node) = NodeName::new(event.node) {
                        return self.event(event.seq, Some(&node), event.leaf);
                    }
                }
            },
            Some(Scanned::Checkpoint(cp)) => return self.checkpoint(cp),
            None => {}
        }
        self.parsed_line(line)
    }

    /// The full check of a line: parse it, re-encode what it holds and compare. Every
    /// checkpoint line takes it, and every event line the scan declined, so the failure
    /// reported is the one this check finds.
    fn parsed_line(&mut self, line: &str) -> Result<(), Failure> {
        let record: Record =
            serde_json::from_str(line).map_err(|e| Failure::Record(e.to_string()))?;
        match record {
            Record::Event(event) => {
                if event_line(&event) != line {
                    return Err(Failure::NotCanonical);
                }
                if let Some(current) = &self.node
                    && event.seq == self.frontier.size()
                    && let Some(next) = crate::epoch::continues(&event, current)
                {
                    // A restore: the log goes on under the new name from this event.
                    self.previous.push(current.clone());
                    self.node = Some(next);
                }
                self.event(event.seq, Some(&event.node), event.leaf_hash())
            }
            Record::Checkpoint(text) => {
                let signed = SignedCheckpoint { text };
                if checkpoint_line(&signed) != line {
                    return Err(Failure::NotCanonical);
                }
                self.checkpoint(signed.verify(self.key)?)
            }
        }
    }

    fn same_node(&mut self, node: &NodeName) -> Result<(), Failure> {
        match &self.node {
            Some(want) if want != node => Err(Failure::Node {
                want: want.to_string(),
                got: node.to_string(),
            }),
            Some(_) => Ok(()),
            None => {
                self.node = Some(node.clone());
                Ok(())
            }
        }
    }

    /// Appends the event `seq` of `node` with leaf hash `leaf`; `node` is `None` when the
    /// caller has already found it to be the log's node.
    fn event(&mut self, seq: u64, node: Option<&NodeName>, leaf: Hash) -> Result<(), Failure> {
        let want = self.frontier.size();
        if seq != want {
            return Err(Failure::Seq { want, got: seq });
        }
        if let Some(node) = node {
            self.same_node(node)?;
        }
        self.frontier.push(leaf).map_err(|_| Failure::TooLarge)?;
        if let Some((_, sealed)) = &mut self.last {
            *sealed = false;
        }
        self.check_known()
    }

    /// Checks checkpoint `cp`, whose signature has been verified, against the log.
    fn checkpoint(&mut self, cp: Checkpoint) -> Result<(), Failure> {
        self.same_node(&cp.node)?;
        let events = self.frontier.size();
        if cp.size != events {
            return Err(Failure::CheckpointSize {
                size: cp.size,
                events,
            });
        }
        if cp.root != self.frontier.root() {
            return Err(Failure::CheckpointRoot { size: cp.size });
        }
        if let Some((previous, _)) = &self.last {
            if cp.time < previous.time {
                return Err(Failure::CheckpointTime {
                    time: cp.time,
                    previous: previous.time,
                });
            }
            if cp.time == previous.time && cp.size == previous.size {
                return Err(Failure::CheckpointRepeated);
            }
        }
        self.checkpoints = self.checkpoints.saturating_add(1);
        self.last = Some((cp, true));
        Ok(())
    }

    /// Checks the known checkpoints of the current size.
    fn check_known(&mut self) -> Result<(), Failure> {
        let size = self.frontier.size();
        while let Some(k) = self.known.next_if(|k| k.size <= size) {
            if self.node.as_ref().is_some_and(|n| *n != k.node) {
                return Err(Failure::Known {
                    size: k.size,
                    reason: "it names another node",
                });
            }
            if k.root != self.frontier.root() {
                return Err(Failure::Known {
                    size: k.size,
                    reason: "the export's root at its size differs",
                });
            }
        }
        Ok(())
    }

    fn finish(mut self, known: &[Checkpoint]) -> Result<VerifyReport, Failure> {
        let events = self.frontier.size();
        let Some((last, true)) = self.last.take() else {
            return Err(Failure::Unsealed { events });
        };
        if let Some(k) = self.known.next() {
            return Err(Failure::Known {
                size: k.size,
                reason: "the export is shorter",
            });
        }
        // Known checkpoints met before any record named the node are checked here.
        if let Some(k) = known
            .iter()
            .find(|k| k.node != last.node && !self.previous.contains(&k.node))
        {
            return Err(Failure::Known {
                size: k.size,
                reason: "it names another node",
            });
        }
        Ok(VerifyReport {
            node: last.node,
            events,
            checkpoints: self.checkpoints,
            root: last.root,
            time: last.time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    fn node() -> NodeName {
        NodeName::new("n1").unwrap()
    }

    fn event(seq: u64) -> AuditEvent {
        AuditEvent::new(
            seq,
            Timestamp::from_secs(100 + seq as i64),
            node(),
            "decision",
        )
    }

    fn checkpoint(f: &Frontier, t: i64) -> String {
        let cp = Checkpoint {
            node: node(),
            size: f.size(),
            root: f.root(),
            time: Timestamp::from_secs(t),
        };
        checkpoint_line(&cp.sign(&key()))
    }

    /// Three events, a checkpoint after the second and one at the end.
    fn export() -> Vec<String> {
        let mut f = Frontier::new();
        let mut lines = vec![];
        for seq in 0..3 {
            let e = event(seq);
            f.push(e.leaf_hash()).unwrap();
            lines.push(event_line(&e));
            if seq == 1 {
                lines.push(checkpoint(&f, 1000));
            }
        }
        lines.push(checkpoint(&f, 2000));
        lines
    }

    fn run(lines: &[String]) -> Result<VerifyReport, VerifyError> {
        let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        verify_export(text.as_bytes(), &key().verifying_key())
    }

    fn failure(lines: &[String]) -> (u64, Failure) {
        let e = run(lines).unwrap_err();
        (e.line, e.failure)
    }

    #[test]
    fn valid_export() {
        let report = run(&export()).unwrap();
        assert_eq!(report.node, node());
        assert_eq!((report.events, report.checkpoints), (3, 2));
        assert_eq!(report.time, Timestamp::from_secs(2000));
        let leaves: Vec<Hash> = (0..3).map(|s| event(s).leaf_hash()).collect();
        assert_eq!(report.root, crate::merkle::root(&leaves));
        // Without the final newline too.
        let text = export().join("\n");
        assert!(verify_export(text.as_bytes(), &key().verifying_key()).is_ok());
    }

    #[test]
    fn line_format() {
        let line = event_line(&event(0));
        assert_eq!(
            line,
            r#"{"event":{"kind":"decision","node":"n1","seq":0,"time":"1970-01-01T00:01:40Z"}}"#
        );
        let cp = checkpoint(&Frontier::new(), 5);
        assert!(cp.starts_with(r#"{"checkpoint":"mandate/n1\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n1970-01-01T00:00:05Z\n\n— mandate/n1 "#));
    }

    #[test]
    fn empty_log_with_a_checkpoint_verifies() {
        let report = run(&[checkpoint(&Frontier::new(), 1)]).unwrap();
        assert_eq!((report.events, report.checkpoints), (0, 1));
        assert_eq!(report.root, crate::merkle::empty_root());
    }

    #[test]
    fn failures_name_the_line() {
        assert_eq!(failure(&[]), (0, Failure::Unsealed { events: 0 }));
        let mut l = export();
        l.pop();
        assert_eq!(failure(&l), (4, Failure::Unsealed { events: 3 }));

        let mut l = export();
        l.remove(0);
        assert_eq!(failure(&l), (1, Failure::Seq { want: 0, got: 1 }));

        let mut l = export();
        l.insert(2, "".into());
        assert!(matches!(failure(&l), (3, Failure::Record(_))));

        let mut l = export();
        l[0] = l[0].replace(r#"{"event":{"#, r#"{"event":{"action":null,"#);
        assert_eq!(failure(&l), (1, Failure::NotCanonical));
        let mut l = export();
        l[0] = format!("{} ", l[0]);
        assert_eq!(failure(&l), (1, Failure::NotCanonical));
        let mut l = export();
        l[0] = l[0].replace('}', "}\r");
        assert!(matches!(
            failure(&l),
            (1, Failure::Record(_) | Failure::NotCanonical)
        ));

        let mut l = export();
        l[3] = l[3].replace("\"kind\":\"decision\"", "\"kind\":\"decisioN\"");
        assert_eq!(failure(&l), (5, Failure::CheckpointRoot { size: 3 }));

        // A checkpoint moved after another event.
        let mut l = export();
        let cp = l.remove(2);
        l.insert(3, cp);
        assert_eq!(
            failure(&l),
            (4, Failure::CheckpointSize { size: 2, events: 3 })
        );

        // Time going backwards, and a repeat.
        let mut l = export();
        l[4] = checkpoint(&frontier(3), 999);
        assert!(matches!(failure(&l), (5, Failure::CheckpointTime { .. })));
        let mut l = export();
        l.insert(3, l[2].clone());
        assert_eq!(failure(&l), (4, Failure::CheckpointRepeated));

        // Another key.
        let other = SigningKey::from_bytes(&[1; 32]);
        let text = export()
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        let e = verify_export(text.as_bytes(), &other.verifying_key()).unwrap_err();
        assert!(matches!(
            e.failure,
            Failure::Checkpoint(CheckpointError::KeyId { .. })
        ));
        assert!(
            e.to_string()
                .starts_with("line 3: checkpoint: checkpoint signed by key id")
        );

        // Another node's event.
        let mut l = export();
        let mut e = event(2);
        e.node = NodeName::new("n2").unwrap();
        l[3] = event_line(&e);
        assert_eq!(
            failure(&l),
            (
                4,
                Failure::Node {
                    want: "n1".into(),
                    got: "n2".into()
                }
            )
        );

        // Not UTF-8.
        let mut bytes = export().join("\n").into_bytes();
        bytes[10] = 0xff;
        let e = verify_export(bytes.as_slice(), &key().verifying_key()).unwrap_err();
        assert!(matches!(
            e,
            VerifyError {
                line: 1,
                failure: Failure::Read(_)
            }
        ));
    }

    /// A failure is reported at its line wherever the line falls in a batch, and a read
    /// failure only after the lines before it are checked; batches end at a number of
    /// lines (shared among threads: 1024 lines make two threads' worth) or of bytes.
    #[test]
    fn failures_across_batches() {
        // A checkpoint every 1000 events and at the end.
        let mut f = Frontier::new();
        let mut lines = vec![];
        for seq in 0..5000 {
            let e = event(seq);
            f.push(e.leaf_hash()).unwrap();
            lines.push(event_line(&e));
            if (seq + 1) % 1000 == 0 {
                lines.push(checkpoint(&f, 1000 + seq as i64));
            }
        }
        let vk = key().verifying_key();
        let text = |lines: &[String]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        for size in [
            Batch {
                lines: 1024,
                bytes: 1 << 20,
            },
            Batch {
                lines: usize::MAX,
                bytes: 40_000,
            },
        ] {
            let verify = |text: &[u8]| verify_in_batches(text, &vk, &[], size);
            let failure = |lines: &[String]| {
                let e = verify(text(lines).as_bytes()).unwrap_err();
                (e.line, e.failure)
            };
            let report = verify(text(&lines).as_bytes()).unwrap();
            assert_eq!((report.events, report.checkpoints), (5000, 5));

            for at in [
                0, 1, 468, 469, 470, 1022, 1023, 1024, 1025, 2047, 2048, 5003,
            ] {
                let mut l = lines.clone();
                l[at] = l[at].replace("\"kind\":\"decision\"", "\"kind\":\"decisioN\"");
                let next_checkpoint = (at / 1001 + 1) * 1001;
                let (line, why) = failure(&l);
                assert_eq!(line, next_checkpoint as u64, "{at}");
                assert!(matches!(why, Failure::CheckpointRoot { .. }), "{at}");

                let mut l = lines.clone();
                l.swap(at, at + 1);
                let (line, why) = failure(&l);
                assert_eq!(line, at as u64 + 1, "{at}");
                let out_of_order =
                    matches!(why, Failure::Seq { .. } | Failure::CheckpointSize { .. });
                assert!(out_of_order, "{at}");

                let mut l = lines.clone();
                let last = l[at].len() - 1;
                l[at].insert(last, ' ');
                assert_eq!(failure(&l), (at as u64 + 1, Failure::NotCanonical), "{at}");
            }

            // Not UTF-8 on a line.
            let bad_text = |lines: &[String], bad: usize| {
                let mut bytes = text(lines).into_bytes();
                let at = lines[..bad].iter().map(|l| l.len() + 1).sum::<usize>() + 10;
                bytes[at] = 0xff;
                bytes
            };
            for bad in [0, 469, 1023, 1024, 1025, 2999] {
                let e = verify(&bad_text(&lines, bad)).unwrap_err();
                assert_eq!(e.line, bad as u64 + 1, "{bad}");
                assert!(matches!(e.failure, Failure::Read(_)), "{bad}");
                if bad >= 2 {
                    let mut l = lines.clone();
                    l.swap(bad - 2, bad - 1);
                    let e = verify(&bad_text(&l, bad)).unwrap_err();
                    assert_eq!(e.line, bad as u64 - 1, "{bad}");
                }
            }
        }
    }

    fn frontier(n: u64) -> Frontier {
        let mut f = Frontier::new();
        for s in 0..n {
            f.push(event(s).leaf_hash()).unwrap();
        }
        f
    }

    #[test]
    fn known_checkpoints() {
        let cp = |n: u64| Checkpoint {
            node: node(),
            size: n,
            root: frontier(n).root(),
            time: Timestamp::from_secs(1),
        };
        let text = export()
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        let vk = key().verifying_key();
        let ok = [cp(0), cp(3), cp(1)];
        assert!(verify_export_against(text.as_bytes(), &vk, &ok).is_ok());

        // A tail cut right after the middle checkpoint verifies alone, not against the
        // final checkpoint.
        let cut = export()[..3]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        assert_eq!(verify_export(cut.as_bytes(), &vk).unwrap().events, 2);
        let e = verify_export_against(cut.as_bytes(), &vk, &[cp(3)]).unwrap_err();
        assert_eq!(
            e.failure,
            Failure::Known {
                size: 3,
                reason: "the export is shorter"
            }
        );

        let mut wrong = cp(2);
        wrong.root = cp(1).root;
        let e = verify_export_against(text.as_bytes(), &vk, &[wrong]).unwrap_err();
        assert_eq!(e.line, 2);
        let mut other = cp(1);
        other.node = NodeName::new("n2").unwrap();
        assert!(verify_export_against(text.as_bytes(), &vk, &[other]).is_err());
    }

    /// A restored log: `n1`'s events 0..3 (checkpoint at 2), then the epoch event of
    /// `n1.r01` at seq 3 and one more event, checkpointed under the new name.
    fn restored_export(epoch: AuditEvent) -> (Vec<String>, Checkpoint) {
        let mut f = Frontier::new();
        let mut lines = vec![];
        let mut old = None;
        for seq in 0..3 {
            let e = event(seq);
            f.push(e.leaf_hash()).unwrap();
            lines.push(event_line(&e));
            if seq == 1 {
                lines.push(checkpoint(&f, 1000));
                old = Some(Checkpoint {
                    node: node(),
                    size: 2,
                    root: f.root(),
                    time: Timestamp::from_secs(1000),
                });
            }
        }
        let new = NodeName::new("n1.r01").unwrap();
        let mut later = AuditEvent::new(4, Timestamp::from_secs(200), new.clone(), "decision");
        later.details = None;
        for e in [epoch, later] {
            f.push(e.leaf_hash()).unwrap();
            lines.push(event_line(&e));
        }
        let cp = Checkpoint {
            node: new,
            size: f.size(),
            root: f.root(),
            time: Timestamp::from_secs(3000),
        };
        lines.push(checkpoint_line(&cp.sign(&key())));
        (lines, old.unwrap())
    }

    fn epoch_event(previous: &str, size: u64) -> AuditEvent {
        let mut e = AuditEvent::new(
            3,
            Timestamp::from_secs(150),
            NodeName::new("n1.r01").unwrap(),
            crate::epoch::RESTORED_KIND,
        );
        e.details = Some(crate::epoch::restored_details(
            &NodeName::new(previous).unwrap(),
            size,
            None,
        ));
        e
    }

    #[test]
    fn a_restored_log_verifies_across_its_epochs() {
        let (lines, old) = restored_export(epoch_event("n1", 3));
        let report = run(&lines).unwrap();
        assert_eq!(report.node.as_str(), "n1.r01");
        assert_eq!((report.events, report.checkpoints), (5, 2));
        // The checkpoint the old node signed before the backup still holds.
        let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
        verify_export_against(text.as_bytes(), &key().verifying_key(), &[old]).unwrap();
    }

    #[test]
    fn a_new_name_without_a_valid_epoch_event_is_refused() {
        // A plain event under another name.
        let mut plain = epoch_event("n1", 3);
        plain.kind = "decision".into();
        let (lines, _) = restored_export(plain);
        assert!(matches!(failure(&lines).1, Failure::Node { .. }));
        // An epoch event naming another previous node, or another size.
        for bad in [epoch_event("n9", 3), epoch_event("n1", 2)] {
            let (lines, _) = restored_export(bad);
            assert!(matches!(failure(&lines).1, Failure::Node { .. }));
        }
    }
}
