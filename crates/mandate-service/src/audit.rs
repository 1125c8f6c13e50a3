//! The audit writer: every event is appended to this node's log by one thread, many
//! concurrent events per transaction (group commit), and a caller learns its event id only
//! once the event is durable. Checkpoints are signed every N events or T seconds; one that
//! falls due is committed in the same transaction as the events that complete it.
//!
//! INVARIANT (durable before the answer): `record` resolves `Ok` only after the
//! transaction holding the event committed; on any store error every waiter of that batch
//! gets `Err`, the in-memory tree is not advanced, and the next batch retries the same seq.

use mandate_store::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use mandate_audit::checkpoint::Checkpoint;
use mandate_audit::event::{AuditEvent, NodeName, TimeText, event_id};
use mandate_audit::merkle::Frontier;
use mandate_core::clock::Clock;
use mandate_core::random::{Random, random_bytes};
use mandate_core::time::Timestamp;
use mandate_store::{AuditRow, CheckpointRow, Store, StoreError, keyfile};
use tokio::sync::oneshot;

/// When to sign a checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// After this many events since the last checkpoint…
    pub every_events: u64,
    /// …or this many seconds, whichever comes first (only if there are new events).
    pub every_secs: u64,
}

/// Why an event could not be recorded.
#[derive(Debug, thiserror::Error, Clone)]
pub enum AuditError {
    /// The store refused the write (disk full, locked, …).
    #[error("audit log write failed: {0}")]
    Write(String),
    /// The writer is gone or its queue is full.
    #[error("audit log unavailable")]
    Unavailable,
}

/// Where a recorded event's id (or the failure) goes.
type Reply = oneshot::Sender<Result<String, AuditError>>;

/// How long a lazy event may wait for company before it is written alone.
const LAZY_WAIT: Duration = Duration::from_millis(50);

enum Job {
    Event(Box<AuditEvent>, Reply),
    /// An event nobody waits for: written with the next batch, or after [`LAZY_WAIT`]
    /// of quiet, so it shares a flush instead of costing one.
    Lazy(Box<AuditEvent>),
    /// Sign a checkpoint over everything committed so far; reply with its size.
    Seal(oneshot::Sender<Result<u64, AuditError>>),
}

/// The handle handlers use; cheap to share.
pub struct AuditLog {
    tx: Mutex<Option<SyncSender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    node: NodeName,
    public: VerifyingKey,
    secrets_key: [u8; 32],
    /// Jobs sent and not yet taken by the writer (`mandate_audit_queue_depth`).
    queued: Arc<AtomicUsize>,
    /// The latest committed bodies (the export sinks read them).
    recent: Arc<Recent>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Opening the audit log failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditOpenError {
    /// Store or key file.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The key file is not a PKCS#8 Ed25519 key.
    #[error("audit signing key `{0}` is not a PKCS#8 PEM Ed25519 key")]
    Key(String),
    /// The node name is not usable.
    #[error("invalid node name: {0}")]
    Node(String),
    /// Randomness for a new key failed.
    #[error("random source failed: {0}")]
    Random(String),
    /// The stored log does not match its checkpoints.
    #[error("audit log is inconsistent: {0}")]
    Inconsistent(String),
}

/// The data dir's own record of how far this node has signed its log: `audit-signed`
/// beside the audit key, one line `NODE SIZE`, rewritten (write, then rename) after each
/// checkpoint the store committed.
///
/// INVARIANT (never behind what was signed): a node does not start on a store whose log
/// under its name is shorter than a checkpoint it signed — the store was restored from
/// a backup older than the node (PostgreSQL's `pg_restore` under the same node id, a
/// SQLite file copied back by hand), and going on would sign a second, different event
/// at a sequence number it signed before and a checkpoint contradicting one it published.
/// The mark is written only after the store committed the checkpoint, so it never runs
/// ahead of a store that kept what it acknowledged; it is not fsynced (a crash can only
/// leave it older, which refuses nothing). `mandate restore` renames the node, so the old
/// mark names another log and is passed over.
struct SignedMark {
    path: std::path::PathBuf,
}

impl SignedMark {
    fn beside(key_path: &Path) -> Self {
        Self {
            path: key_path.with_file_name("audit-signed"),
        }
    }

    /// The size this node (`node`) last recorded signing, if the file names it.
    fn read(&self, node: &NodeName) -> Result<Option<u64>, AuditOpenError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(AuditOpenError::Inconsistent(format!(
                    "cannot read {}: {e}",
                    self.path.display()
                )));
            }
        };
        let mut words = text.split_whitespace();
        let (Some(name), Some(size), None) = (words.next(), words.next(), words.next()) else {
            return Err(AuditOpenError::Inconsistent(format!(
                "{} is not `NODE SIZE`",
                self.path.display()
            )));
        };
        let size: u64 = size.parse().map_err(|_| {
            AuditOpenError::Inconsistent(format!("{}: `{size}` is not a size", self.path.display()))
        })?;
        Ok((name == node.as_str()).then_some(size))
    }

    /// Records that `node` signed a checkpoint over `size` events (best effort: a
    /// failure is logged; the checkpoint stands).
    fn record(&self, node: &NodeName, size: u64) {
        let tmp = self.path.with_extension("tmp");
        let written = std::fs::write(&tmp, format!("{node} {size}\n"))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            tracing::warn!(error = %e, path = %self.path.display(), "cannot record the signed audit size");
        }
    }
}

/// Loads this node's audit signing key (`key_path`, mode 0600), creating it on first start.
fn load_key(key_path: &Path, random: &dyn Random) -> Result<SigningKey, AuditOpenError> {
    if key_path.exists() {
        let pem = keyfile::read_private(key_path)?;
        return SigningKey::from_pkcs8_pem(&pem)
            .map_err(|_| AuditOpenError::Key(key_path.display().to_string()));
    }
    let seed: [u8; 32] = random_bytes(random).map_err(|e| AuditOpenError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|_| AuditOpenError::Key(key_path.display().to_string()))?;
    keyfile::write_private(key_path, &pem)?;
    Ok(key)
}

/// The text form of an audit public key: standard base64 of its 32 bytes, as
/// `mandate audit checkpoint` shows it and `mandate audit verify --public-key` takes it.
pub fn public_key_text(key: &VerifyingKey) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
}

struct Writer {
    store: Arc<dyn Store>,
    /// Shared with [`AuditLog`]: the writer takes one off for each job it receives.
    queued: Arc<AtomicUsize>,
    clock: Arc<dyn Clock>,
    node: NodeName,
    key: SigningKey,
    frontier: Frontier,
    policy: CheckpointPolicy,
    last_checkpoint_size: u64,
    last_checkpoint_ms: i64,
    /// Where each event's canonical JSON is written (reused, so it rarely grows).
    scratch: String,
    /// The batch's time as text, formatted once per batch rather than per event.
    times: TimeText,
    /// The latest committed bodies, for the export sinks (shared with [`AuditLog`]).
    recent: Arc<Recent>,
    /// After a restore: the epoch event still to be written, first of all, before any
    /// other event or checkpoint under the new name (`mandate_audit::epoch`).
    ///
    /// INVARIANT (epoch first): while this is `Some`, nothing is signed; it is cleared
    /// only once the event is committed, so a failed commit retries it at the same seq.
    epoch: Option<Box<AuditEvent>>,
    /// The data dir's record of the largest checkpoint this node signed ([`SignedMark`]).
    mark: SignedMark,
}

/// If the log's last event names a node other than `node` — the store was restored from
/// a backup and renamed (`mandate restore`) — the epoch event that must begin the log
/// under its new name; `None` otherwise.
fn epoch_after_restore(
    store: &dyn Store,
    node: &NodeName,
    size: u64,
    last: Option<&CheckpointRow>,
) -> Result<Option<Box<AuditEvent>>, AuditOpenError> {
    let Some(prev_seq) = size.checked_sub(1) else {
        return Ok(None);
    };
    let body = store
        .audit_bodies(prev_seq, size)?
        .pop()
        .ok_or_else(|| AuditOpenError::Inconsistent(format!("event {prev_seq} is missing")))?;
    let previous = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("node")?.as_str().map(str::to_owned))
        .and_then(|n| NodeName::new(&n).ok())
        .ok_or_else(|| {
            AuditOpenError::Inconsistent(format!("event {prev_seq} names no valid node"))
        })?;
    if previous == *node {
        return Ok(None);
    }
    let mut e = AuditEvent::new(
        size,
        Timestamp::from_secs(0),
        node.clone(),
        mandate_audit::epoch::RESTORED_KIND,
    );
    e.details = Some(mandate_audit::epoch::restored_details(
        &previous,
        size,
        last.map(|c| c.text.as_str()),
    ));
    tracing::warn!(previous = %previous, node = %node, size, "the audit log goes on under a new name after a restore");
    Ok(Some(Box::new(e)))
}

/// How many of the latest committed event bodies the log keeps in memory (a few MiB):
/// what export sinks read while they keep up, instead of the store.
pub const RECENT_EVENTS: usize = 16_384;

/// The latest committed event bodies of this node's log, in seq order: `bodies[i]` is
/// event `start + i`, and `start + bodies.len()` is the log's length. The writer appends
/// after each commit (so everything here is durable) and drops the oldest beyond
/// [`RECENT_EVENTS`]; after a failed append whose outcome it cannot know it empties it
/// (`INVARIANT (recent is committed)`: nothing here was not committed, and nothing
/// committed since `start` is missing).
#[derive(Debug, Default)]
pub struct Recent(Mutex<(u64, std::collections::VecDeque<String>)>);

impl Recent {
    fn push(&self, first_seq: u64, bodies: impl IntoIterator<Item = String>) {
        let mut g = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (start, q) = &mut *g;
        if *start + q.len() as u64 != first_seq {
            // Not contiguous (a resync moved the log): start again from here.
            q.clear();
            *start = first_seq;
        }
        q.extend(bodies);
        while q.len() > RECENT_EVENTS {
            q.pop_front();
            *start += 1;
        }
    }

    fn reset(&self, len: u64) {
        let mut g = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.0 = len;
        g.1.clear();
    }

    /// The bodies of events `from..` (at most `max`) if this holds `from` or `from` is
    /// the log's end (then empty: nothing new); `None` when `from` is older than what
    /// it holds (read the store).
    pub fn since(&self, from: u64, max: usize) -> Option<Vec<String>> {
        let g = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (start, q) = &*g;
        let end = *start + q.len() as u64;
        if from < *start || from > end {
            return None;
        }
        let skip = usize::try_from(from - *start).ok()?;
        Some(q.iter().skip(skip).take(max).cloned().collect())
    }
}

/// The most jobs committed in one transaction.
const MAX_BATCH: usize = 512;
/// Jobs waiting beyond this are refused at once (the request gets 503), so a stuck disk
/// cannot grow memory without bound.
const QUEUE: usize = 16_384;

impl AuditLog {
    /// Opens the log: the node name (created on first start), the signing key, and the
    /// Merkle frontier rebuilt from the stored leaves; starts the writer thread.
    pub fn open(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        random: &dyn Random,
        key_path: &Path,
        policy: CheckpointPolicy,
    ) -> Result<Self, AuditOpenError> {
        let name = store.node_name(&mut || {
            let suffix: [u8; 4] = random_bytes(random).unwrap_or([0; 4]);
            format!(
                "node-{}",
                suffix
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )
        })?;
        let node = NodeName::new(&name).map_err(|e| AuditOpenError::Node(e.to_string()))?;
        let key = load_key(key_path, random)?;
        // Named in the store, so an export of every node's log can name the key that
        // verifies this one; a node id whose log another key signs is refused here
        // (`INVARIANT (one key per log)`).
        store.set_audit_key(&public_key_text(&key.verifying_key()), clock.now())?;
        let size = store.audit_len()?;
        let mut frontier = Frontier::new();
        for leaf in store.audit_leaves(size)? {
            frontier
                .push(leaf)
                .map_err(|e| AuditOpenError::Inconsistent(e.to_string()))?;
        }
        let last = store.checkpoints()?.pop();
        if let Some(c) = &last
            && c.size > size
        {
            return Err(AuditOpenError::Inconsistent(format!(
                "checkpoint covers {} events but the log has {size}",
                c.size
            )));
        }
        let mark = SignedMark::beside(key_path);
        if let Some(signed) = mark.read(&node)?
            && signed > size
        {
            return Err(AuditOpenError::Inconsistent(format!(
                "this node signed a checkpoint over {signed} events of log `{node}`, and the \
                 store holds {size}: the store is older than this node (restored from a \
                 backup?). Going on would sign other events at sequence numbers it signed \
                 before. Start the node under a new node id (docs/running.md, \"Backup and \
                 restore\")"
            )));
        }
        let epoch = epoch_after_restore(store.as_ref(), &node, size, last.as_ref())?;
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let public = key.verifying_key();
        // The key gateway secrets were encrypted under before the store key (it seals
        // them now): read only to seal such a secret again (secrets.rs).
        let secrets_key: [u8; 32] = {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            h.update(b"mandate-gateway-secrets-v1");
            h.update(key.to_bytes());
            h.finalize().into()
        };
        let queued = Arc::new(AtomicUsize::new(0));
        let recent = Arc::new(Recent::default());
        recent.reset(size);
        let writer = Writer {
            store,
            queued: Arc::clone(&queued),
            last_checkpoint_ms: clock.now_millis(),
            clock,
            node: node.clone(),
            key,
            frontier,
            policy,
            last_checkpoint_size: last.map_or(0, |c| c.size),
            scratch: String::new(),
            times: TimeText::default(),
            recent: Arc::clone(&recent),
            epoch,
            mark,
        };
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| AuditOpenError::Inconsistent(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            node,
            public,
            secrets_key,
            queued,
            recent,
        })
    }

    /// The latest committed event bodies of this node's log ([`Recent`]).
    pub fn recent(&self) -> &Recent {
        &self.recent
    }

    /// Jobs waiting for the writer now (at most the queue's bound, 16384).
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// This node's name.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The key upstream secrets were encrypted under before the store key (derived from
    /// the audit key, never stored on its own): read only to seal such a secret again
    /// under the store key (secrets.rs).
    pub(crate) fn legacy_secrets_key(&self) -> [u8; 32] {
        self.secrets_key
    }

    /// The key that verifies this node's checkpoints.
    pub fn public_key(&self) -> VerifyingKey {
        self.public
    }

    fn send(&self, job: Job) -> Result<(), AuditError> {
        let guard = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tx = guard.as_ref().ok_or(AuditError::Unavailable)?;
        // Counted before it is sent, so the writer's decrement never comes first.
        self.queued.fetch_add(1, Ordering::Relaxed);
        tx.try_send(job).map_err(|e| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            match e {
                TrySendError::Full(_) | TrySendError::Disconnected(_) => AuditError::Unavailable,
            }
        })
    }

    /// Appends `draft` (its `seq`, `time` and `node` are assigned here) and returns the
    /// event id once it is durable.
    pub async fn record(&self, draft: AuditEvent) -> Result<String, AuditError> {
        self.enqueue(draft)?.await
    }

    /// Queues `draft` at once, which fixes its place in the log (events get their `seq`
    /// in the order they are queued), and returns what resolves to its event id once it
    /// is durable. For callers that must order their events with their own changes
    /// (`Node::perform` queues while it still holds its order lock).
    pub fn enqueue(
        &self,
        draft: AuditEvent,
    ) -> Result<impl Future<Output = Result<String, AuditError>> + Send + use<>, AuditError> {
        let (reply, wait) = oneshot::channel();
        self.send(Job::Event(Box::new(draft), reply))?;
        Ok(async move { wait.await.map_err(|_| AuditError::Unavailable)? })
    }

    /// Appends many events (one group commit when they arrive together).
    pub async fn record_all(&self, drafts: Vec<AuditEvent>) -> Vec<Result<String, AuditError>> {
        self.enqueue_all(drafts).await
    }

    /// Queues every draft at once, in order (their places in the log are fixed when
    /// this returns, as with [`AuditLog::enqueue`]), and returns what resolves to each
    /// one's event id, or its error, once durable.
    pub fn enqueue_all(
        &self,
        drafts: Vec<AuditEvent>,
    ) -> impl Future<Output = Vec<Result<String, AuditError>>> + Send + use<> {
        let mut waits = Vec::with_capacity(drafts.len());
        for d in drafts {
            let (reply, wait) = oneshot::channel();
            waits.push(self.send(Job::Event(Box::new(d), reply)).map(|()| wait));
        }
        async move {
            let mut out = Vec::with_capacity(waits.len());
            for w in waits {
                out.push(match w {
                    Ok(w) => w.await.unwrap_or(Err(AuditError::Unavailable)),
                    Err(e) => Err(e),
                });
            }
            out
        }
    }

    /// Appends `draft` without waiting for it: it is committed with the next batch of
    /// events (or after a short quiet spell), sharing its flush. For records nobody
    /// waits on (a forwarded request's upstream status). Dropped, with a log line, when
    /// the queue is full or the log closed.
    pub fn record_lazy(&self, draft: AuditEvent) {
        if self.send(Job::Lazy(Box::new(draft))).is_err() {
            tracing::warn!("lazy audit event dropped: the audit queue is full or closed");
        }
    }

    /// Signs a checkpoint over every event committed so far and returns its size.
    pub async fn seal(&self) -> Result<u64, AuditError> {
        let (reply, wait) = oneshot::channel();
        self.send(Job::Seal(reply))?;
        wait.await.map_err(|_| AuditError::Unavailable)?
    }

    /// Stops accepting events and waits until the writer has committed what was queued
    /// and sealed a final checkpoint.
    pub fn close(&self) {
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = handle
            && h.join().is_err()
        {
            tracing::error!("the audit writer panicked");
        }
    }
}

impl Writer {
    fn run(mut self, rx: Receiver<Job>) {
        if self.epoch.is_some() {
            // A restored log begins its new epoch at once (retried with the next batch
            // if this fails).
            self.commit(Vec::new());
        }
        let mut lazy: Vec<(Box<AuditEvent>, Option<Reply>)> = Vec::new();
        loop {
            let mut wait = self.until_checkpoint_due();
            if !lazy.is_empty() {
                wait = wait.min(LAZY_WAIT);
            }
            let first = match rx.recv_timeout(wait) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    if !lazy.is_empty() {
                        self.commit(std::mem::take(&mut lazy));
                    }
                    self.checkpoint_if_due();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    if !lazy.is_empty() {
                        self.commit(std::mem::take(&mut lazy));
                    }
                    let _ = self.checkpoint(true);
                    return;
                }
            };
            let mut events = Vec::new();
            let mut seals = Vec::new();
            let mut next = Some(first);
            let mut yielded = false;
            while let Some(job) = next.take() {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                match job {
                    Job::Event(e, r) => events.push((e, Some(r))),
                    Job::Lazy(e) => lazy.push((e, None)),
                    Job::Seal(r) => seals.push(r),
                }
                if events.len() + lazy.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                    // Under load (more than one event waiting), give the CPU once to
                    // whatever is runnable before committing: request handlers part-way
                    // through a decision finish and join this batch instead of paying
                    // for the next fsync. When nothing else is runnable — one request
                    // at a time — the yield returns at once, so this adds no wait.
                    if next.is_none() && !yielded && events.len() >= 2 {
                        yielded = true;
                        std::thread::yield_now();
                        next = rx.try_recv().ok();
                    }
                }
            }
            // Lazy events ride along with anything that is committed anyway (and are
            // always in before a seal, so a checkpoint covers them).
            if !events.is_empty() || !seals.is_empty() || lazy.len() >= MAX_BATCH {
                events.append(&mut lazy);
            }
            if !events.is_empty() {
                self.commit(events);
            }
            for r in seals {
                let _ = r.send(self.checkpoint(true).map(|()| self.frontier.size()));
            }
            self.checkpoint_if_due();
        }
    }

    fn commit(&mut self, mut batch: Vec<(Box<AuditEvent>, Option<Reply>)>) {
        let epoch = self.epoch.is_some();
        if let Some(e) = &self.epoch {
            batch.insert(0, (e.clone(), None));
        }
        let now = self.clock.now();
        let start = self.frontier.size();
        let mut rows = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for (i, (mut e, reply)) in batch.into_iter().enumerate() {
            e.seq = start + i as u64;
            e.time = now;
            if e.node != self.node {
                e.node = self.node.clone();
            }
            // INVARIANT (one encoding): the stored body and the leaf hash come from the
            // same canonical bytes, written once; the event is not needed after, so its
            // filter columns are moved into the row rather than cloned.
            self.scratch.clear();
            e.write_canonical_with(&mut self.scratch, &mut self.times);
            rows.push(AuditRow {
                seq: e.seq,
                time: now,
                kind: std::mem::take(&mut e.kind),
                agent: e.agent.take(),
                user: e.user.take(),
                decision: e.decision.take(),
                leaf: mandate_audit::merkle::leaf_hash(self.scratch.as_bytes()),
                body: self.scratch.as_str().to_owned(),
            });
            if let Some(r) = reply {
                replies.push((e.seq, r));
            }
        }
        // A checkpoint due once this batch is in is signed now and committed in the same
        // transaction: one fsync for both, instead of a second commit right after that
        // the next batch (and every request in it) would wait for.
        let seal = if self.checkpoint_due(rows.len() as u64) {
            self.seal_over(&rows, now)
        } else {
            None
        };
        #[expect(
            clippy::disallowed_methods,
            reason = "monotonic time for the commit latency metric, not the time of day"
        )]
        let started = Instant::now();
        let appended = self.store.append_audit(&rows, seal.as_ref());
        crate::metrics::audit_committed(rows.len(), appended.is_ok(), started.elapsed());
        match appended {
            Ok(()) => {
                if epoch {
                    self.epoch = None;
                }
                for r in &rows {
                    // A frontier overflow needs 2^64 events; treat it as a dead log.
                    if self.frontier.push(r.leaf).is_err() {
                        tracing::error!("audit frontier overflow");
                    }
                }
                if let Some(c) = &seal {
                    self.last_checkpoint_size = c.size;
                    self.last_checkpoint_ms = self.clock.now_millis();
                    self.mark.record(&self.node, c.size);
                }
                self.recent.push(start, rows.into_iter().map(|r| r.body));
                for (seq, reply) in replies {
                    let _ = reply.send(Ok(event_id(&self.node, seq)));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = rows.len(), "audit append failed; refusing the batch");
                for (_, reply) in replies {
                    let _ = reply.send(Err(AuditError::Write(e.to_string())));
                }
                self.resync();
            }
        }
    }

    /// After a failed append: takes the log's length, leaves and last checkpoint from the
    /// store again if they differ from what this writer holds.
    ///
    /// INVARIANT (frontier follows the store): a failed append may still have committed
    /// (a connection to a shared store lost after its COMMIT was sent: the outcome is
    /// unknown to the writer). Its events were refused to their requests, so nothing was
    /// acknowledged, but they are in the log; a writer that kept its old frontier would
    /// number the next batch from the old end and be refused (`out of order`) forever,
    /// answering 503 until restarted. If the store cannot be read now, the next failed
    /// append tries again.
    fn resync(&mut self) {
        let Ok(size) = self.store.audit_len() else {
            return;
        };
        // Whatever the failed append did, the bodies kept in memory end where the store
        // says the log ends (`INVARIANT (recent is committed)`).
        self.recent.reset(size);
        if size == self.frontier.size() {
            return;
        }
        let (Ok(leaves), Ok(mut checkpoints)) =
            (self.store.audit_leaves(size), self.store.checkpoints())
        else {
            return;
        };
        let mut frontier = Frontier::new();
        for leaf in leaves {
            if frontier.push(leaf).is_err() {
                tracing::error!("audit frontier overflow");
                return;
            }
        }
        tracing::warn!(
            from = self.frontier.size(),
            to = size,
            "the audit log holds events of a batch whose commit was not confirmed (refused to its requests); continuing after them"
        );
        self.frontier = frontier;
        if self.epoch.as_ref().is_some_and(|e| e.seq < size) {
            // The unconfirmed batch held the epoch event, and it is in.
            self.epoch = None;
        }
        if let Some(c) = checkpoints.pop() {
            self.last_checkpoint_size = c.size;
        }
    }

    fn until_checkpoint_due(&self) -> Duration {
        let every_ms =
            i64::try_from(self.policy.every_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let elapsed = self
            .clock
            .now_millis()
            .saturating_sub(self.last_checkpoint_ms);
        Duration::from_millis(
            u64::try_from(every_ms.saturating_sub(elapsed))
                .unwrap_or(0)
                .max(10),
        )
    }

    /// Whether a checkpoint is due once `more` events beyond the tree are in.
    fn checkpoint_due(&self, more: u64) -> bool {
        let pending = (self.frontier.size() + more).saturating_sub(self.last_checkpoint_size);
        let every_ms =
            i64::try_from(self.policy.every_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let elapsed = self
            .clock
            .now_millis()
            .saturating_sub(self.last_checkpoint_ms);
        pending > 0 && (pending >= self.policy.every_events || elapsed >= every_ms)
    }

    fn checkpoint_if_due(&mut self) {
        if self.checkpoint_due(0) {
            let _ = self.checkpoint(false);
        }
    }

    /// A signed checkpoint of the tree with `rows` appended (not yet committed).
    fn seal_over(&self, rows: &[AuditRow], time: Timestamp) -> Option<CheckpointRow> {
        let mut tree = self.frontier.clone();
        for r in rows {
            tree.push(r.leaf).ok()?;
        }
        Some(self.signed(&tree, time))
    }

    /// The signed checkpoint of `tree` at `time`.
    fn signed(&self, tree: &Frontier, time: Timestamp) -> CheckpointRow {
        let c = Checkpoint {
            node: self.node.clone(),
            size: tree.size(),
            root: tree.root(),
            time,
        };
        let signed = c.sign(&self.key);
        CheckpointRow {
            size: c.size,
            time: c.time,
            root: c.root,
            text: signed.text,
        }
    }

    /// Signs and stores a checkpoint of the current tree (`force`: even if nothing is new,
    /// unless one of this size exists).
    fn checkpoint(&mut self, force: bool) -> Result<(), AuditError> {
        if self.epoch.is_some() {
            // `INVARIANT (epoch first)`: the epoch event goes in before anything is signed.
            self.commit(Vec::new());
            if self.epoch.is_some() {
                return Err(AuditError::Write(
                    "the restore's epoch event is not written".into(),
                ));
            }
        }
        let size = self.frontier.size();
        if size == self.last_checkpoint_size && !force {
            return Ok(());
        }
        if size == self.last_checkpoint_size && size > 0 {
            self.last_checkpoint_ms = self.clock.now_millis();
            return Ok(());
        }
        let row = self.signed(&self.frontier, self.clock.now());
        match self.store.insert_checkpoint(&row) {
            Ok(()) => {
                self.last_checkpoint_size = size;
                self.last_checkpoint_ms = self.clock.now_millis();
                self.mark.record(&self.node, size);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "audit checkpoint write failed");
                Err(AuditError::Write(e.to_string()))
            }
        }
    }
}

/// Events read per page by [`walk`].
const WALK_PAGE: u32 = 5_000;

/// Calls `each` with every event `filter` keeps of this node's log, oldest first,
/// parsed (an event that does not parse is passed over), a page at a time. Generic over
/// the repository so it runs on a store or inside a unit of work (the inventory's).
pub(crate) fn walk<R: mandate_store::AuditRepo + ?Sized>(
    store: &R,
    filter: &mandate_store::AuditFilter,
    mut each: impl FnMut(&serde_json::Value),
) -> Result<(), mandate_store::StoreError> {
    let mut after = None;
    loop {
        let page = store.list_audit(filter, after, WALK_PAGE)?;
        for (seq, body) in &page {
            after = Some(*seq);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
                each(&v);
            }
        }
        if page.len() < WALK_PAGE as usize {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(r: std::ops::Range<u64>) -> Vec<String> {
        r.map(|i| format!("e{i}")).collect()
    }

    /// What the export sinks read from memory: exactly the committed events from `start`,
    /// the log's end as "nothing new", anything older as "read the store".
    #[test]
    fn recent_holds_the_latest_committed_bodies_in_order() {
        let r = Recent::default();
        r.reset(10);
        assert_eq!(r.since(10, 5), Some(Vec::new()), "at the end: nothing new");
        assert_eq!(r.since(9, 5), None, "older: the store");
        r.push(10, bodies(10..13));
        assert_eq!(r.since(10, 2), Some(bodies(10..12)));
        assert_eq!(r.since(12, 9), Some(bodies(12..13)));
        assert_eq!(r.since(13, 9), Some(Vec::new()));
        assert_eq!(r.since(14, 9), None, "past the end: the store decides");
        // Beyond the capacity, the oldest go.
        let n = RECENT_EVENTS as u64;
        r.push(13, bodies(13..13 + n));
        assert_eq!(r.since(12, 1), None, "the three oldest went");
        assert_eq!(r.since(13, 1), Some(bodies(13..14)));
        assert_eq!(r.since(13 + n, 1), Some(Vec::new()));
        // A push that does not continue the log starts again from it.
        r.push(500_000, bodies(500_000..500_002));
        assert_eq!(r.since(13, 1), None);
        assert_eq!(r.since(500_000, 9), Some(bodies(500_000..500_002)));
    }
}
