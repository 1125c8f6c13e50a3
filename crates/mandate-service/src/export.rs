//! Export to SIEMs (issue 23): each `[[export.sinks]]` sink delivers this node's audit
//! log, in order, from its own stored cursor, through a [`Transport`] (file and syslog:
//! `export_io`; webhook, Splunk HEC, Elasticsearch: the HTTP edge).
//!
//! # Delivery
//!
//! - INVARIANT (nothing skipped): a sink's cursor moves past an event only after its
//!   transport accepted the batch holding it (or the sink's filter left it out). A batch
//!   that fails is sent again, whole, after a back-off (0.5 s doubling to 60 s), for as
//!   long as it takes: a receiver that keeps refusing stalls its sink (its lag grows and
//!   `mandate export status` says why); nothing is dropped to get past it.
//! - At least once: the cursor is stored at most every [`CURSOR_EVERY_MS`] (and when a
//!   sink catches up), so after a crash a sink sends again what it delivered since its
//!   last stored cursor. Every record carries its event's stable id (`node:seq`) for
//!   receivers to de-duplicate by.
//! - Decisions never wait for a sink: sinks run on their own tasks, read the committed
//!   log (what a decision wrote is durable before its answer) and write only their
//!   cursors, which touch `Topic::Export` and nothing a decision reads. Cursors are not
//!   written through the one write path (`write_path.rs`) for that reason, and are not
//!   audited: recording each delivery in the log being delivered would never end.
//! - Each node delivers its own log (a cluster's nodes each export theirs once).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mandate_audit::event::AuditEvent;
use mandate_core::id::AgentId;
use mandate_core::time::Timestamp;
use mandate_export::syslog::Facility;
use mandate_export::{Context, Filter, Format};
use mandate_store::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Node;

/// How long a sink waits, caught up, before it looks for new events again.
pub const POLL: Duration = Duration::from_millis(50);

/// A sink stores its cursor at most this often while it delivers (and whenever it
/// catches up): what a crash can make it send twice.
pub const CURSOR_EVERY_MS: i64 = 250;

/// The most events a sink sends in one batch unless configured (`batch_max_events`).
pub const DEFAULT_BATCH: usize = 500;

/// The first wait after a failed batch, doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The longest wait between two attempts at a batch.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Where a sink sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// JSON Lines to a local file, rotated by size.
    File,
    /// RFC 5424 syslog over TCP (octet counting) or UDP.
    Syslog,
    /// JSON Lines batches POSTed to a URL, HMAC-signed like Mandate's other webhooks.
    Webhook,
    /// Splunk's HTTP Event Collector.
    Splunk,
    /// Elasticsearch or OpenSearch `_bulk`.
    Elasticsearch,
    /// OpenID Shared Signals: a signed SET per event that other systems must hear of at
    /// once (an agent stopped, a mandate or token revoked, a credential changed), pushed
    /// to a receiver (RFC 8935).
    Ssf,
}

impl SinkKind {
    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Syslog => "syslog",
            Self::Webhook => "webhook",
            Self::Splunk => "splunk",
            Self::Elasticsearch => "elasticsearch",
            Self::Ssf => "ssf",
        }
    }
}

/// How a syslog sink reaches its receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    /// TCP with octet counting (RFC 6587 §3.4.1).
    #[default]
    Tcp,
    /// UDP, one message per datagram (RFC 5426): best effort, a lost datagram is lost.
    Udp,
    /// TLS with octet counting (RFC 5425 §4.3), port 6514 unless the address names one;
    /// trust and the client certificate from the sink's `ca_file`, `client_cert_file`,
    /// `client_key_file` and `server_name` (`mandate_tls`).
    Tls,
}

/// The settings of a syslog sink over TLS ([`SyslogTransport::Tls`]).
const TLS_KEYS: [&str; 4] = [
    "ca_file",
    "client_cert_file",
    "client_key_file",
    "server_name",
];

/// One `[[export.sinks]]` table of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Its name: 1 to 64 ASCII letters, digits, `_` or `-`; the key of its cursor, so
    /// renaming a sink starts it again from the log's first event.
    pub name: String,
    /// `file`, `syslog`, `webhook`, `splunk` or `elasticsearch`.
    #[serde(rename = "type")]
    pub kind: SinkKind,
    /// `jsonl`, `ocsf` or `ecs` (default: `ecs` for `elasticsearch`, `jsonl` otherwise).
    #[serde(default)]
    pub format: Option<Format>,
    /// Event kinds taken (`decision`, `token.*`, `*`); empty: all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Event kinds left out.
    #[serde(default)]
    pub exclude_kinds: Vec<String>,
    /// Agents taken; empty: all.
    #[serde(default)]
    pub agents: Vec<String>,
    /// The most events per batch (default 500, at most 10,000).
    #[serde(default)]
    pub batch_max_events: Option<usize>,
    /// `file`: the file written (its rotations are `<path>.1`, `<path>.2`, …).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `file`: rotate when the file would grow past this many bytes (default 100 MiB).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// `file`: how many rotated files to keep (default 5).
    #[serde(default)]
    pub keep: Option<u32>,
    /// `syslog`: the receiver's `host:port`.
    #[serde(default)]
    pub address: Option<String>,
    /// `syslog`: `tcp` (default), `tls` or `udp`.
    #[serde(default)]
    pub transport: Option<SyslogTransport>,
    /// `syslog` over `tls`: a PEM bundle of the CAs trusted instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// `syslog` over `tls`: the client certificate chain (PEM), for mutual TLS.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// `syslog` over `tls`: the client certificate's private key (PEM, mode 0600).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
    /// `syslog` over `tls`: the name the receiver's certificate must carry, if not the
    /// address's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// `syslog`: the facility (default `authpriv`).
    #[serde(default)]
    pub facility: Option<Facility>,
    /// HTTP sinks: the receiver's URL (the HEC or `_bulk` endpoint, the webhook).
    #[serde(default)]
    pub url: Option<String>,
    /// `webhook`: the file holding the HMAC secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// `splunk`, `elasticsearch`: the file holding the token (HEC token; Elasticsearch
    /// API key).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// `elasticsearch`: the index (default `mandate-audit`); `splunk`: the index, if
    /// not the token's default.
    #[serde(default)]
    pub index: Option<String>,
    /// `splunk`: wait for indexer acknowledgement before moving the cursor.
    #[serde(default)]
    pub ack: Option<bool>,
    /// `ssf`: the `aud` of the SETs (default: the receiver URL's origin).
    #[serde(default)]
    pub audience: Option<String>,
    /// HTTP sinks: plain `http://` to a host that is not loopback is allowed.
    #[serde(default)]
    pub allow_http: bool,
}

impl SinkConfig {
    /// The records' format.
    pub fn format(&self) -> Format {
        self.format.unwrap_or(match self.kind {
            SinkKind::Elasticsearch => Format::Ecs,
            _ => Format::Jsonl,
        })
    }

    /// The filter.
    pub fn filter(&self) -> Filter {
        // An `ssf` sink takes, unless told otherwise, the kinds that transmit a SET.
        let kinds = if self.kind == SinkKind::Ssf && self.kinds.is_empty() {
            mandate_export::ssf::KINDS
                .iter()
                .map(|k| (*k).to_owned())
                .collect()
        } else {
            self.kinds.clone()
        };
        Filter {
            kinds,
            exclude_kinds: self.exclude_kinds.clone(),
            agents: self.agents.clone(),
        }
    }

    /// The TLS client settings of the sink (all `None` when it sets none).
    pub fn tls(&self) -> mandate_tls::Settings {
        mandate_tls::Settings {
            ca_file: self.ca_file.clone(),
            client_cert_file: self.client_cert_file.clone(),
            client_key_file: self.client_key_file.clone(),
            server_name: self.server_name.clone(),
        }
    }

    /// The batch size.
    pub fn batch(&self) -> usize {
        self.batch_max_events.unwrap_or(DEFAULT_BATCH)
    }

    /// Every problem with this table, each naming the sink.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let name = &self.name;
        let ok_name = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok_name {
            out.push(format!(
                "export sink `{name}`: a name is 1 to 64 ASCII letters, digits, `_` or `-`"
            ));
        }
        if let Err(e) = self.filter().check() {
            out.push(format!("export sink `{name}`: {e}"));
        }
        if !(1..=10_000).contains(&self.batch()) {
            out.push(format!(
                "export sink `{name}`: `batch_max_events` must be 1 to 10000"
            ));
        }
        let given: [(&str, bool); 17] = [
            ("path", self.path.is_some()),
            ("max_bytes", self.max_bytes.is_some()),
            ("keep", self.keep.is_some()),
            ("address", self.address.is_some()),
            ("transport", self.transport.is_some()),
            ("facility", self.facility.is_some()),
            ("url", self.url.is_some()),
            ("secret_file", self.secret_file.is_some()),
            ("token_file", self.token_file.is_some()),
            ("index", self.index.is_some()),
            ("ack", self.ack.is_some()),
            ("audience", self.audience.is_some()),
            ("ca_file", self.ca_file.is_some()),
            ("client_cert_file", self.client_cert_file.is_some()),
            ("client_key_file", self.client_key_file.is_some()),
            ("server_name", self.server_name.is_some()),
            ("allow_http", self.allow_http),
        ];
        let (required, allowed): (&[&str], &[&str]) = match self.kind {
            SinkKind::File => (&["path"], &["path", "max_bytes", "keep"]),
            SinkKind::Syslog if self.transport == Some(SyslogTransport::Tls) => (
                &["address"],
                &[
                    "address",
                    "transport",
                    "facility",
                    "ca_file",
                    "client_cert_file",
                    "client_key_file",
                    "server_name",
                ],
            ),
            SinkKind::Syslog => (&["address"], &["address", "transport", "facility"]),
            SinkKind::Webhook => (&["url", "secret_file"], &["url", "secret_file"]),
            SinkKind::Splunk => (
                &["url", "token_file"],
                &["url", "token_file", "index", "ack"],
            ),
            SinkKind::Elasticsearch => (&["url"], &["url", "token_file", "index"]),
            SinkKind::Ssf => (&["url"], &["url", "token_file", "audience"]),
        };
        let http_sink = matches!(
            self.kind,
            SinkKind::Webhook | SinkKind::Splunk | SinkKind::Elasticsearch | SinkKind::Ssf
        );
        for (key, is_given) in given {
            // The TLS keys and `allow_http` are settings of every HTTP sink.
            let allowed_here = allowed.contains(&key)
                || (http_sink && (TLS_KEYS.contains(&key) || key == "allow_http"));
            if is_given && !allowed_here {
                let over = if self.kind == SinkKind::Syslog && TLS_KEYS.contains(&key) {
                    " (only over `transport = \"tls\"`)"
                } else {
                    ""
                };
                out.push(format!(
                    "export sink `{name}`: `{key}` is not a setting of a {} sink{over}",
                    self.kind.name()
                ));
            }
            if !is_given && required.contains(&key) {
                out.push(format!(
                    "export sink `{name}`: a {} sink needs `{key}`",
                    self.kind.name()
                ));
            }
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            out.push(format!(
                "export sink `{name}`: `client_cert_file` and `client_key_file` go together"
            ));
        }
        // INVARIANT (no plain HTTP off the machine), mandate-tls's `check_url`.
        if http_sink
            && let Some(url) = &self.url
            && let Err(e) = mandate_tls::check_url("url", "allow_http", url, self.allow_http)
        {
            out.push(format!("export sink `{name}`: {e}"));
        }
        if self.max_bytes == Some(0) {
            out.push(format!("export sink `{name}`: `max_bytes` must be above 0"));
        }
        out
    }
}

/// Checks a whole `[[export.sinks]]` list: each table, and that names are unique.
pub fn check_sinks(sinks: &[SinkConfig]) -> Vec<String> {
    let mut out: Vec<String> = sinks.iter().flat_map(SinkConfig::problems).collect();
    let mut seen = std::collections::BTreeSet::new();
    for s in sinks {
        if !seen.insert(s.name.as_str()) {
            out.push(format!(
                "export sink `{}`: two sinks have this name",
                s.name
            ));
        }
    }
    out
}

/// One event of a batch, with its record in the sink's format.
#[derive(Debug, Clone)]
pub struct Item {
    /// The event as logged.
    pub event: AuditEvent,
    /// Its record ([`mandate_export::record`]).
    pub record: Value,
    /// The record as one line of ASCII JSON ([`mandate_export::ascii_json`]), made with
    /// the record off the async workers: what the transports send.
    pub json: String,
}

impl Item {
    /// The item of `event` with its `record`.
    pub fn new(event: AuditEvent, record: Value) -> Self {
        let json = mandate_export::ascii_json(&record);
        Self {
            event,
            record,
            json,
        }
    }
}

/// A batch a transport could not deliver.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// What went wrong, for `mandate export status` (never holds a secret).
    pub message: String,
    /// The connection the previous batches went out on broke: they may not have
    /// arrived (a stream with no acknowledgement: syslog over TCP), so the sink sends
    /// them again with this one (at least once).
    pub resend_previous: bool,
}

impl SendError {
    /// A failed batch, to be sent again.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            resend_previous: false,
        }
    }
}

/// What a transport's `send` returns.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// Delivers batches to one receiver. `Ok` means the receiver accepted the whole batch
/// (written and flushed to the file; written to the syslog stream; a 2xx from an HTTP
/// receiver with no item refused): only then does the sink's cursor move past it.
pub trait Transport: Send {
    /// Sends `batch`, in order.
    fn send<'a>(&'a mut self, batch: &'a [Item]) -> Sending<'a>;

    /// Whether an `Ok` from [`Transport::send`] means the receiver has the batch
    /// (a file flushed to disk, an HTTP answer). A stream with no acknowledgement
    /// (syslog over TCP) answers `false`: its last batch may still be lost if the
    /// receiver dies now, so the sink's stored cursor stays at that batch's start (a
    /// restart sends it again) until a later batch goes out on the same connection.
    fn confirms(&self) -> bool {
        true
    }
}

/// What `mandate export status` shows of one sink.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkStatus {
    /// The sink's name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its records' format.
    pub format: String,
    /// The seq of the next event it sends (events below it are delivered or left out).
    pub next: u64,
    /// Events of this node's log it has not delivered yet.
    pub lag: u64,
    /// Events it delivered since this node started.
    pub delivered: u64,
    /// Failed attempts since its last delivery.
    pub failures: u32,
    /// The last failure, if it has not delivered since.
    pub last_error: Option<String>,
    /// When that was.
    pub last_error_at: Option<Timestamp>,
    /// When it last delivered a batch.
    pub last_delivered_at: Option<Timestamp>,
}

/// The node's sinks, as they run.
#[derive(Debug, Default)]
pub struct Board {
    sinks: Mutex<BTreeMap<String, SinkStatus>>,
}

impl Board {
    fn update(&self, name: &str, f: impl FnOnce(&mut SinkStatus)) {
        let mut sinks = self.sinks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = sinks.get_mut(name) {
            f(s);
        }
    }

    /// Every sink's status, by name, with its lag against a log of `len` events.
    pub fn statuses(&self, len: u64) -> Vec<SinkStatus> {
        let sinks = self.sinks.lock().unwrap_or_else(PoisonError::into_inner);
        sinks
            .values()
            .map(|s| SinkStatus {
                lag: len.saturating_sub(s.next),
                ..s.clone()
            })
            .collect()
    }
}

/// Starts one task per sink on the current runtime. `transports` holds each sink's
/// transport, in the order of `sinks`.
pub fn spawn(node: &Arc<Node>, sinks: Vec<(SinkConfig, Box<dyn Transport>)>) {
    for (cfg, transport) in sinks {
        spawn_one(node, cfg, transport);
    }
}

/// Starts one sink's task on the current runtime (a Shared Signals stream's loop,
/// `ssf_streams.rs`, as well as a configured sink); aborting it stops the sink, whose
/// stored cursor stays (at least once: a restart resends from there).
pub fn spawn_one(
    node: &Arc<Node>,
    cfg: SinkConfig,
    transport: Box<dyn Transport>,
) -> tokio::task::AbortHandle {
    {
        let mut board = node
            .export
            .sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        board.insert(
            cfg.name.clone(),
            SinkStatus {
                name: cfg.name.clone(),
                kind: cfg.kind.name().to_owned(),
                format: cfg.format().name().to_owned(),
                ..SinkStatus::default()
            },
        );
    }
    tokio::spawn(run(Arc::clone(node), cfg, transport)).abort_handle()
}

/// Takes a stopped sink off the status board.
pub fn forget(node: &Node, name: &str) {
    node.export
        .sinks
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(name);
}

/// A batch read from the log: the events `from..to`, those the filter takes as items.
struct Batch {
    from: u64,
    to: u64,
    items: Vec<Item>,
}

/// One sink's loop; never returns while the runtime runs.
async fn run(node: Arc<Node>, cfg: SinkConfig, mut transport: Box<dyn Transport>) {
    let name = cfg.name.clone();
    let log = node.audit.node().to_string();
    let filter = cfg.filter();
    let format = cfg.format();
    let batch_max = u64::try_from(cfg.batch()).unwrap_or(1);
    let mut backoff = FIRST_BACKOFF;
    let fail = |backoff: &mut Duration, message: String| {
        let now = node.clock.now();
        node.export.update(&name, |s| {
            s.failures = s.failures.saturating_add(1);
            s.last_error = Some(message);
            s.last_error_at = Some(now);
        });
        let wait = *backoff;
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        wait
    };
    // Where the stored cursor is.
    let mut next = loop {
        let (n, l) = (name.clone(), log.clone());
        match on_store(&node, move |s| s.db.export_cursor(&n, &l)).await {
            Ok(c) => break c,
            Err(e) => {
                let wait = fail(&mut backoff, format!("reading the cursor: {e}"));
                tokio::time::sleep(wait).await;
            }
        }
    };
    let mut stored = next;
    let mut stored_at = node.clock.now_millis();
    // The start of the batch before the last one sent, for a transport that asks for the
    // previous batches again (`SendError::resend_previous`).
    let mut previous_from = next;
    let mut pending: Option<Batch> = None;
    // A read of the batch that starts at `.0`, under way.
    let mut prefetched: Option<(u64, Reading)> = None;
    node.export.update(&name, |s| s.next = next);
    // What may be stored as delivered: everything sent, or for a transport that does
    // not confirm, everything before its last batch (see `Transport::confirms`).
    let confirms = transport.confirms();
    let safe_from = |next: u64, previous_from: u64| if confirms { next } else { previous_from };
    loop {
        let batch = match pending.take() {
            Some(b) => b,
            None => {
                let read = match prefetched.take() {
                    Some((from, job)) if from == next => job.await,
                    _ => {
                        read_batch(Arc::clone(&node), next, batch_max, filter.clone(), format).await
                    }
                };
                match read {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        if stored != safe_from(next, previous_from) {
                            stored =
                                persist(&node, &name, &log, safe_from(next, previous_from), stored)
                                    .await;
                            stored_at = node.clock.now_millis();
                        }
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                    Err(e) => {
                        let wait = fail(&mut backoff, e);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                }
            }
        };
        // The next batch is read and its records made on a blocking thread while this
        // one is sent: the two overlap (an OCSF record costs about what a fsync of its
        // share of a batch does).
        if prefetched.is_none() {
            let job = tokio::spawn(read_batch(
                Arc::clone(&node),
                batch.to,
                batch_max,
                filter.clone(),
                format,
            ));
            prefetched = Some((
                batch.to,
                Box::pin(async move {
                    job.await
                        .map_err(|e| format!("reading the log: {e}"))
                        .and_then(|r| r)
                }),
            ));
        }
        if !batch.items.is_empty() {
            match transport.send(&batch.items).await {
                Ok(()) => {}
                Err(e) => {
                    let wait = fail(&mut backoff, e.message.clone());
                    if e.resend_previous && previous_from < batch.from {
                        // Read again from the earlier batch's start; the stored cursor
                        // stays where it is until delivery passes it again.
                        next = previous_from;
                    } else {
                        pending = Some(batch);
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
        }
        backoff = FIRST_BACKOFF;
        let now = node.clock.now();
        let sent = batch.items.len() as u64;
        previous_from = batch.from;
        next = batch.to;
        node.export.update(&name, |s| {
            s.next = next;
            s.delivered = s.delivered.saturating_add(sent);
            s.failures = 0;
            s.last_error = None;
            s.last_delivered_at = Some(now);
        });
        if node.clock.now_millis().saturating_sub(stored_at) >= CURSOR_EVERY_MS {
            stored = persist(&node, &name, &log, safe_from(next, previous_from), stored).await;
            stored_at = node.clock.now_millis();
        }
    }
}

/// A batch being read (`read_batch`): `None` when the log holds nothing from there.
type Reading = Pin<Box<dyn Future<Output = Result<Option<Batch>, String>> + Send>>;

/// Reads the events from `from` (at most `batch_max`), parses them and makes the records
/// of those `filter` takes, on a blocking thread (an OCSF record is microseconds a
/// piece: a batch must not hold an async worker). `None`: the log ends at `from`. An
/// error names what failed; a body that does not parse is a corrupt log, never skipped.
async fn read_batch(
    node: Arc<Node>,
    from: u64,
    batch_max: u64,
    filter: Filter,
    format: Format,
) -> Result<Option<Batch>, String> {
    node.blocking(move |s| {
        // While a sink keeps up, its events are still in the audit writer's memory
        // (`audit::Recent`, committed ones only): read there, the store's connection is
        // left to the writer. A sink behind that reads the store.
        let max = usize::try_from(batch_max).unwrap_or(usize::MAX);
        let bodies = match s.audit.recent().since(from, max) {
            Some(b) if b.is_empty() => return Ok(None),
            Some(b) => b,
            None => {
                let len =
                    s.db.audit_len()
                        .map_err(|e| format!("reading the log: {e}"))?;
                if from >= len {
                    return Ok(None);
                }
                let to = len.min(from.saturating_add(batch_max));
                s.db.audit_bodies(from, to)
                    .map_err(|e| format!("reading the log: {e}"))?
            }
        };
        let items = items(s, &bodies, &filter, format)?;
        Ok(Some(Batch {
            from,
            to: from.saturating_add(bodies.len() as u64),
            items,
        }))
    })
    .await
    .map_err(|e| format!("reading the log: {e}"))?
}

/// Stores the cursor at `next` (if it is past `stored`); the cursor now stored. A
/// failure only delays it: the next store carries it, and until then a restart resends.
async fn persist(node: &Arc<Node>, name: &str, log: &str, next: u64, stored: u64) -> u64 {
    if next <= stored {
        return stored;
    }
    let (n, l) = (name.to_owned(), log.to_owned());
    let now = node.clock.now();
    match on_store(node, move |s| s.db.advance_export_cursor(&n, &l, next, now)).await {
        Ok(()) => next,
        Err(e) => {
            tracing::warn!(sink = name, error = %e, "storing an export cursor failed");
            stored
        }
    }
}

/// Runs `f` over the store on a blocking thread; its error, or the task's, as text.
async fn on_store<T: Send + 'static>(
    node: &Arc<Node>,
    f: impl FnOnce(&Node) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    match node.blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The items of `bodies` the filter takes, with their records; an error names a body
/// that is not an event.
fn items(
    node: &Node,
    bodies: &[String],
    filter: &Filter,
    format: Format,
) -> Result<Vec<Item>, String> {
    let snapshot = node.snapshot().ok();
    let mut out = Vec::with_capacity(bodies.len());
    for body in bodies {
        let event: AuditEvent = serde_json::from_str(body)
            .map_err(|e| format!("an audit event does not parse: {e}"))?;
        if !filter.takes(&event) {
            continue;
        }
        let owner = snapshot.as_ref().and_then(|s| {
            let id = AgentId::parse(event.agent.as_deref()?).ok()?;
            Some(s.agents.get(&id)?.owner.as_str().to_owned())
        });
        let record = mandate_export::record(
            format,
            &event,
            &Context {
                owner: owner.as_deref(),
            },
        );
        out.push(Item::new(event, record));
    }
    Ok(out)
}

/// This node's name, its log's length, and every sink's status (blocking: reads the
/// store).
pub fn status(node: &Node) -> Result<(String, u64, Vec<SinkStatus>), StoreError> {
    let len = node.db.audit_len()?;
    Ok((
        node.audit.node().to_string(),
        len,
        node.export.statuses(len),
    ))
}
