//! Mandate as a Shared Signals transmitter with streams its receivers manage (SSF 1.0 §8,
//! issue 23): a receiver creates, reads, updates, replaces and deletes streams, pauses or
//! disables them, leaves agents out of them and asks for a verification event; each
//! stream delivers CAEP SETs about agents by push (RFC 8935) or poll (RFC 8936).
//!
//! # Streams
//!
//! A stream is a store row (`SsfStreamRepo`); every change is one act through the one
//! write path ([`Node::perform`]), recorded as `ssf.stream.created`, `.updated`,
//! `.deleted`, `.status_updated`, `.subject_added`, `.subject_removed` or
//! `.verification`. Its subjects are every agent (`default_subjects` `ALL`) but those a
//! receiver removed.
//!
//! # Delivery
//!
//! Each node runs, for each stream not paused, one export loop (`export.rs`: its own
//! stored cursor over this node's log, in order, at least once, with back-off) whose
//! transport is [`StreamTransport`]: it makes the SETs of the events the stream takes and
//! hands them to a [`SetSender`]: the push sender of the HTTP edge, or [`QueueSets`],
//! which queues them in the store for polling. [`spawn`] watches the streams and starts,
//! restarts (after a change) and stops (paused, deleted) these loops, so a stream made at
//! run time delivers without a restart.
//!
//! - A stream takes events of this node's log recorded at or after its creation (the
//!   second), and the verification events asked for it.
//! - `paused`: its loop stops and its cursor stays: events are held, and delivered once
//!   it is enabled again. `disabled`: its loop runs and sends nothing: events are dropped.
//! - In a cluster every node runs every stream's loop over its own log (each log is
//!   delivered once per stream); a poll stream's queue is shared through the store, so a
//!   receiver polls any node.
//!
//! INVARIANT (acked once): see mandate-store `SsfStreamRepo`: a SET's `jti` is its
//! event's id, queued once per stream; once acknowledged it is never returned again.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mandate_audit::event::AuditEvent;
use mandate_core::id::AgentId;
use mandate_core::time::Timestamp;
use mandate_export::ssf::{CREDENTIAL_CHANGE, SESSION_REVOKED};
use mandate_store::prelude::*;
use mandate_store::{SsfStreamRow, Topic};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::actor::Actor;
use crate::error::ServiceError;
use crate::export::{Item, SendError, Sending, SinkConfig, SinkKind, Transport};
use crate::{Node, Recorded};

/// SSF's verification event type.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
/// Push delivery (RFC 8935).
pub const PUSH: &str = "urn:ietf:rfc:8935";
/// Poll delivery (RFC 8936).
pub const POLL: &str = "urn:ietf:rfc:8936";
/// The event types a stream can deliver (`events_supported`); a verification event is
/// delivered whatever a stream asks for.
pub const EVENTS_SUPPORTED: [&str; 2] = [SESSION_REVOKED, CREDENTIAL_CHANGE];
/// The audit event a verification request records; the stream's loop turns it into the
/// verification SET.
pub const VERIFICATION_KIND: &str = "ssf.stream.verification";
/// The most SETs one poll answer holds (and the number when `maxEvents` is absent).
pub const MAX_POLL_EVENTS: u32 = 1000;
/// The most `jti`s one poll may acknowledge (`ack` and `setErrs` together).
pub const MAX_ACKS: usize = 10_000;
/// The longest a long poll (`returnImmediately: false`) waits for a SET.
pub const LONG_POLL: Duration = Duration::from_secs(15);
/// The most long polls on one node that look for SETs while they wait; the others wait
/// their whole time and look once at its end (`INVARIANT (long polls are bounded)`).
pub const MAX_LONG_POLLS: usize = 64;
/// How often a waiting long poll looks at the store even when the change feed says
/// nothing changed (a lost notification; a deleted stream).
const LONG_POLL_RECHECK: Duration = Duration::from_secs(1);
/// The prefix of a stream's export loop's name (its cursor's key, and its line in
/// `mandate export status`); `:` is not allowed in a configured sink's name.
pub const LOOP_PREFIX: &str = "ssf-stream:";
/// How often a node looks for changed streams.
const WATCH: Duration = Duration::from_millis(200);

/// A stream's status (SSF 1.0 §8.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Events are delivered.
    Enabled,
    /// Events are held, and delivered once enabled again.
    Paused,
    /// Events are dropped.
    Disabled,
}

impl Status {
    /// Its name on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Paused => "paused",
            Self::Disabled => "disabled",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enabled" => Some(Self::Enabled),
            "paused" => Some(Self::Paused),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// How a stream delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Delivery {
    /// Pushed to the receiver's `endpoint_url` (RFC 8935).
    Push {
        /// The receiver's push endpoint.
        endpoint_url: String,
    },
    /// Polled by the receiver at the stream's poll endpoint (RFC 8936).
    Poll,
}

impl Delivery {
    /// Its method URN.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Push { .. } => PUSH,
            Self::Poll => POLL,
        }
    }
}

/// What the store keeps of a stream as JSON (its id, status and times are columns).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    aud: String,
    events_requested: Vec<String>,
    delivery: Delivery,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    status_reason: Option<String>,
    /// Agents a receiver removed from the stream.
    #[serde(default)]
    excluded: Vec<String>,
}

/// One stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// Its id (`sst_` and a ULID).
    pub id: String,
    /// Its status.
    pub status: Status,
    /// Why its status was last set, if the receiver said.
    pub status_reason: Option<String>,
    /// The `aud` of its SETs.
    pub aud: String,
    /// The event types the receiver asked for.
    pub events_requested: Vec<String>,
    /// How it delivers.
    pub delivery: Delivery,
    /// The receiver's description.
    pub description: Option<String>,
    /// Agents removed from it (`remove_subject`), by id.
    pub excluded: Vec<String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl Stream {
    /// The event types it delivers: those asked for that Mandate transmits.
    pub fn events_delivered(&self) -> Vec<String> {
        EVENTS_SUPPORTED
            .iter()
            .filter(|t| self.events_requested.iter().any(|r| r == *t))
            .map(|t| (*t).to_owned())
            .collect()
    }

    fn from_row(row: &SsfStreamRow) -> Result<Self, StoreError> {
        let stored: Stored = serde_json::from_str(&row.config)
            .map_err(|e| StoreError::Corrupt(format!("stream `{}`: {e}", row.id)))?;
        let status = Status::parse(&row.status).ok_or_else(|| {
            StoreError::Corrupt(format!("stream `{}`: status `{}`", row.id, row.status))
        })?;
        Ok(Self {
            id: row.id.clone(),
            status,
            status_reason: stored.status_reason,
            aud: stored.aud,
            events_requested: stored.events_requested,
            delivery: stored.delivery,
            description: stored.description,
            excluded: stored.excluded,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    fn to_row(&self) -> SsfStreamRow {
        let stored = Stored {
            aud: self.aud.clone(),
            events_requested: self.events_requested.clone(),
            delivery: self.delivery.clone(),
            description: self.description.clone(),
            status_reason: self.status_reason.clone(),
            excluded: self.excluded.clone(),
        };
        SsfStreamRow {
            id: self.id.clone(),
            status: self.status.as_str().to_owned(),
            // A struct of strings always serializes.
            config: serde_json::to_string(&stored).unwrap_or_default(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// What its audit events say of it.
    fn details(&self) -> Value {
        json!({
            "stream": self.id,
            "status": self.status.as_str(),
            "delivery": self.delivery.method(),
            // Without its query: a receiver may carry a token there, and the log keeps
            // no secret.
            "endpoint_url": match &self.delivery {
                Delivery::Push { endpoint_url } => endpoint_url.split(['?', '#']).next(),
                Delivery::Poll => None,
            },
            "aud": self.aud,
            "events_requested": self.events_requested,
        })
    }
}

/// What a receiver sends to make, change or replace a stream (its receiver-supplied
/// properties; `None`: not given).
#[derive(Debug, Clone, Default)]
pub struct StreamInput {
    /// `delivery.method`, and `delivery.endpoint_url` if given.
    pub delivery: Option<(String, Option<String>)>,
    /// `events_requested`.
    pub events_requested: Option<Vec<String>>,
    /// `description`.
    pub description: Option<String>,
    /// `aud` (default: the push endpoint's origin; a poll stream's own id).
    pub aud: Option<String>,
}

/// Why a stream request was refused.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The request breaks a rule (400); nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// No such stream (404).
    #[error("unknown stream `{0}`")]
    NotFound(String),
    /// The OS random source failed (a stream id could not be made).
    #[error(transparent)]
    Random(#[from] mandate_core::random::RandomError),
    /// The node failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for StreamError {
    fn from(e: StoreError) -> Self {
        Self::Service(e.into())
    }
}

impl From<tokio::task::JoinError> for StreamError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Service(e.into())
    }
}

fn invalid(msg: impl Into<String>) -> StreamError {
    StreamError::Invalid(msg.into())
}

/// `https://host:port` of an `http(s)` URL, or why it is not one.
fn origin(url: &str) -> Result<String, StreamError> {
    let bad = || {
        invalid(format!(
            "`delivery.endpoint_url` `{}` is not an http or https URL",
            url.escape_debug()
        ))
    };
    if url.len() > 2048 || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad());
    }
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme, "http" | "https") {
        return Err(bad());
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.contains('@') {
        // Credentials in a URL end up in the audit log and the stream's answers.
        return Err(invalid(
            "`delivery.endpoint_url` must hold no credentials (`user:password@`)",
        ));
    }
    if host.is_empty() || host.starts_with(':') {
        return Err(bad());
    }
    // INVARIANT (no plain HTTP off the machine), mandate-tls's outbound.rs: a receiver
    // sets this URL at run time, and Security Event Tokens must not cross a network in
    // the clear; plain `http://` is for loopback only (a receiver on the same host).
    mandate_tls::check_url("delivery.endpoint_url", "", url, false).map_err(|_| {
        invalid(
            "`delivery.endpoint_url` must be https:// (plain http:// goes to loopback only: \
             Security Event Tokens never cross a network unencrypted)",
        )
    })?;
    Ok(format!("{scheme}://{host}"))
}

fn check_text(name: &str, v: &str, max: usize) -> Result<(), StreamError> {
    if v.is_empty() || v.chars().count() > max || v.contains('\0') {
        return Err(invalid(format!("`{name}` must be 1 to {max} characters")));
    }
    Ok(())
}

/// Applies `input` to `stream` (a new one, or a copy of the stored one: `existing`),
/// checking every value; `whole`: a replacement (what is not given is reset). `poll_url`
/// is the stream's poll endpoint, the one `endpoint_url` a poll stream may name.
fn apply(
    stream: &mut Stream,
    input: StreamInput,
    whole: bool,
    existing: bool,
    poll_url: &str,
) -> Result<(), StreamError> {
    match input.delivery {
        Some((method, endpoint_url)) => {
            let delivery = match method.as_str() {
                PUSH => {
                    let url = endpoint_url
                        .ok_or_else(|| invalid("push delivery needs `delivery.endpoint_url`"))?;
                    origin(&url)?;
                    Delivery::Push { endpoint_url: url }
                }
                POLL => {
                    if endpoint_url.is_some_and(|u| u != poll_url) {
                        return Err(invalid(
                            "a poll stream's `delivery.endpoint_url` is Mandate's to set",
                        ));
                    }
                    Delivery::Poll
                }
                other => {
                    return Err(invalid(format!(
                        "unsupported delivery method `{}` (`{PUSH}` or `{POLL}`)",
                        other.escape_debug()
                    )));
                }
            };
            if existing && delivery.method() != stream.delivery.method() {
                return Err(invalid(
                    "a stream's delivery method cannot change; make a new stream",
                ));
            }
            stream.delivery = delivery;
        }
        None if whole => return Err(invalid("`delivery` is required")),
        None => {}
    }
    match input.events_requested {
        Some(events) => {
            if events.len() > 32 {
                return Err(invalid("`events_requested` holds at most 32 event types"));
            }
            for e in &events {
                check_text("events_requested", e, 256)?;
            }
            stream.events_requested = events;
        }
        None if whole => {
            stream.events_requested = EVENTS_SUPPORTED.iter().map(|s| (*s).to_owned()).collect();
        }
        None => {}
    }
    match input.description {
        Some(d) => {
            check_text("description", &d, 1024)?;
            stream.description = Some(d);
        }
        None if whole => stream.description = None,
        None => {}
    }
    match input.aud {
        Some(a) => {
            check_text("aud", &a, 512)?;
            stream.aud = a;
        }
        None if whole || stream.aud.is_empty() => {
            stream.aud = match &stream.delivery {
                Delivery::Push { endpoint_url } => origin(endpoint_url)?,
                Delivery::Poll => stream.id.clone(),
            };
        }
        None => {}
    }
    Ok(())
}

/// The poll endpoint of stream `id` under `issuer`.
pub fn poll_url(issuer: &str, id: &str) -> String {
    format!("{issuer}/ssf/poll/{id}")
}

fn read_stream(s: &Node, id: &str) -> Result<Stream, StreamError> {
    match s.store().ssf_stream(id)? {
        Some(row) => Ok(Stream::from_row(&row)?),
        None => Err(StreamError::NotFound(id.to_owned())),
    }
}

impl Node {
    /// Makes a stream (SSF 1.0 §8.1.1.1), recorded as `ssf.stream.created` by `actor`.
    /// It starts enabled, with every agent as its subject, and takes events recorded from
    /// now on.
    pub async fn create_stream(
        self: &Arc<Self>,
        actor: &Actor,
        input: StreamInput,
    ) -> Result<Stream, StreamError> {
        let id = format!(
            "sst_{}",
            mandate_core::id::new_ulid(self.clock.as_ref(), self.random.as_ref())?
        );
        let now = self.clock.now();
        let mut stream = Stream {
            id,
            status: Status::Enabled,
            status_reason: None,
            aud: String::new(),
            events_requested: Vec::new(),
            delivery: Delivery::Poll,
            description: None,
            excluded: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        let url = poll_url(&self.config.issuer, &stream.id);
        apply(&mut stream, input, true, false, &url)?;
        let log = self.audit.node().to_string();
        self.perform("ssf.stream.created", actor, move |s| {
            let row = stream.to_row();
            let name = format!("{LOOP_PREFIX}{}", stream.id);
            s.store().write(|r| {
                r.insert_ssf_stream(&row)?;
                // This node's loop starts at the log's end: nothing before it is the
                // stream's (other nodes skip what came before by its time).
                let len = r.audit_len()?;
                r.advance_export_cursor(&name, &log, len, now)
            })?;
            let details = stream.details();
            Ok::<_, StreamError>((stream, Recorded::details(details)))
        })
        .await
    }

    /// One stream.
    pub async fn stream(self: &Arc<Self>, id: String) -> Result<Stream, StreamError> {
        self.blocking(move |s| read_stream(s, &id)).await?
    }

    /// Every stream, in id order.
    pub async fn streams(self: &Arc<Self>) -> Result<Vec<Stream>, StreamError> {
        self.blocking(|s| {
            s.store()
                .ssf_streams()?
                .iter()
                .map(|r| Stream::from_row(r).map_err(StreamError::from))
                .collect()
        })
        .await?
    }

    /// Changes a stream: `input` patched over it (PATCH, §8.1.1.3) or replacing its
    /// receiver-supplied properties (`whole`, PUT, §8.1.1.4); recorded as
    /// `ssf.stream.updated`.
    pub async fn update_stream(
        self: &Arc<Self>,
        actor: &Actor,
        id: String,
        input: StreamInput,
        whole: bool,
    ) -> Result<Stream, StreamError> {
        let issuer = self.config.issuer.clone();
        self.change_stream("ssf.stream.updated", actor, id, move |stream| {
            let url = poll_url(&issuer, &stream.id);
            apply(stream, input, whole, true, &url)?;
            Ok(json!({"replaced": whole}))
        })
        .await
    }

    /// Sets a stream's status (§8.1.2.2), recorded as `ssf.stream.status_updated`.
    pub async fn set_stream_status(
        self: &Arc<Self>,
        actor: &Actor,
        id: String,
        status: Status,
        reason: Option<String>,
    ) -> Result<Stream, StreamError> {
        if let Some(r) = &reason {
            check_text("reason", r, 1024)?;
        }
        self.change_stream("ssf.stream.status_updated", actor, id, move |stream| {
            stream.status = status;
            stream.status_reason = reason;
            Ok(Value::Null)
        })
        .await
    }

    /// Adds an agent back to a stream's subjects (§8.1.3.2): recorded as
    /// `ssf.stream.subject_added`. Every agent is a subject unless removed.
    pub async fn add_stream_subject(
        self: &Arc<Self>,
        actor: &Actor,
        id: String,
        subject: &Value,
    ) -> Result<(), StreamError> {
        let agent = self.subject_agent(subject)?;
        self.change_stream("ssf.stream.subject_added", actor, id, move |stream| {
            stream.excluded.retain(|a| a != &agent);
            Ok(json!({"subject": agent}))
        })
        .await
        .map(drop)
    }

    /// Removes an agent from a stream's subjects (§8.1.3.3): no SET about it is sent
    /// on this stream; recorded as `ssf.stream.subject_removed`.
    pub async fn remove_stream_subject(
        self: &Arc<Self>,
        actor: &Actor,
        id: String,
        subject: &Value,
    ) -> Result<(), StreamError> {
        let agent = self.subject_agent(subject)?;
        self.change_stream("ssf.stream.subject_removed", actor, id, move |stream| {
            if !stream.excluded.contains(&agent) {
                if stream.excluded.len() >= 10_000 {
                    return Err(invalid("a stream leaves out at most 10000 agents"));
                }
                stream.excluded.push(agent.clone());
            }
            Ok(json!({"subject": agent}))
        })
        .await
        .map(drop)
    }

    /// The agent a subject names: `iss_sub` with Mandate's issuer, or `opaque`, whose
    /// `sub`/`id` is an agent id (as Mandate's SETs and tokens name agents).
    fn subject_agent(&self, subject: &Value) -> Result<String, StreamError> {
        let field = |k: &str| subject.get(k).and_then(Value::as_str);
        let id = match field("format") {
            Some("iss_sub") if field("iss") == Some(self.config.issuer.as_str()) => field("sub"),
            Some("iss_sub") => {
                return Err(invalid(
                    "an `iss_sub` subject's `iss` must be Mandate's issuer",
                ));
            }
            Some("opaque") => field("id"),
            _ => {
                return Err(invalid(
                    "a subject is `{\"format\": \"iss_sub\", \"iss\": <Mandate's issuer>, \
                     \"sub\": <agent id>}` or `{\"format\": \"opaque\", \"id\": <agent id>}`",
                ));
            }
        };
        let id = id.ok_or_else(|| invalid("the subject names no agent id"))?;
        AgentId::parse(id)
            .map(|a| a.to_string())
            .map_err(|_| invalid(format!("`{}` is not an agent id", id.escape_debug())))
    }

    /// Deletes a stream and its poll queue (§8.1.1.5), recorded as `ssf.stream.deleted`;
    /// its loops stop.
    pub async fn delete_stream(
        self: &Arc<Self>,
        actor: &Actor,
        id: String,
    ) -> Result<(), StreamError> {
        self.perform("ssf.stream.deleted", actor, move |s| {
            if !s.store().delete_ssf_stream(&id)? {
                return Err(StreamError::NotFound(id));
            }
            Ok(((), Recorded::details(json!({"stream": id}))))
        })
        .await
    }

    /// Asks for a verification event on a stream (§8.1.4.2): recorded as
    /// `ssf.stream.verification` with the receiver's `state`, which the stream's loop
    /// delivers as an SSF `verification` SET (on a paused stream, once it is enabled; on
    /// a disabled one, never).
    pub async fn verify_stream(
        self: &Arc<Self>,
        actor: &Actor,
        id: String,
        state: Option<String>,
    ) -> Result<(), StreamError> {
        if let Some(st) = &state {
            check_text("state", st, 1024)?;
        }
        self.perform(VERIFICATION_KIND, actor, move |s| {
            read_stream(s, &id)?;
            Ok(((), Recorded::details(json!({"stream": id, "state": state}))))
        })
        .await
    }

    /// Reads stream `id`, lets `change` change it (its answer: the event's extra
    /// details), writes it back in the same unit, and records `kind`.
    async fn change_stream(
        self: &Arc<Self>,
        kind: &'static str,
        actor: &Actor,
        id: String,
        change: impl FnOnce(&mut Stream) -> Result<Value, StreamError> + Send + 'static,
    ) -> Result<Stream, StreamError> {
        self.perform(kind, actor, move |s| {
            let now = s.clock.now();
            let (stream, extra) = s.store().write(|r| {
                let row = r
                    .ssf_stream(&id)?
                    .ok_or_else(|| StreamError::NotFound(id.clone()))?;
                let mut stream = Stream::from_row(&row)?;
                let extra = change(&mut stream)?;
                stream.updated_at = now;
                // Compare-and-set: a change another node made since the read is a
                // `Conflict` (409), never silently overwritten.
                r.update_ssf_stream(&row, &stream.to_row())?;
                Ok::<_, StreamError>((stream, extra))
            })?;
            let mut details = stream.details();
            if let (Value::Object(d), Value::Object(e)) = (&mut details, extra) {
                d.extend(e);
            }
            Ok((stream, Recorded::details(details)))
        })
        .await
    }

    /// A receiver's poll of stream `id` (RFC 8936 §2.4): acknowledges `ack` and the
    /// `jti`s of `set_errs` (unknown ones ignored), then answers the stream's oldest
    /// unacknowledged SETs, at most `max_events` (default and at most
    /// [`MAX_POLL_EVENTS`]; 0: none), and whether more wait. Unless `return_immediately`,
    /// waits up to `wait` for a first SET. Polls are deliveries, not acts: not audited
    /// (a `set_errs` entry is logged).
    pub async fn poll_stream(
        self: &Arc<Self>,
        id: String,
        req: PollRequest,
        wait: Duration,
    ) -> Result<PollAnswer, StreamError> {
        let max = req.max_events.unwrap_or(MAX_POLL_EVENTS);
        if max > MAX_POLL_EVENTS {
            return Err(invalid(format!("`maxEvents` is at most {MAX_POLL_EVENTS}")));
        }
        let mut acks = req.ack;
        acks.extend(req.set_errs.keys().cloned());
        if acks.len() > MAX_ACKS {
            return Err(invalid(format!(
                "at most {MAX_ACKS} `jti`s may be acknowledged at once"
            )));
        }
        if acks.iter().any(|j| j.is_empty() || j.len() > 256) {
            return Err(invalid("a `jti` is 1 to 256 bytes"));
        }
        let sid = id.clone();
        self.blocking(move |s| {
            let stream = read_stream(s, &sid)?;
            if stream.delivery != Delivery::Poll {
                return Err(StreamError::NotFound(sid));
            }
            Ok(())
        })
        .await??;
        for (jti, e) in &req.set_errs {
            tracing::warn!(
                stream = %id,
                jti = %jti.escape_debug(),
                err = %e.err.escape_debug(),
                "an SSF receiver reported a SET it could not process"
            );
        }
        if !acks.is_empty() {
            let (sid, now) = (id.clone(), self.clock.now());
            self.blocking(move |s| s.store().ack_ssf_sets(&sid, &acks, now))
                .await??;
        }
        // INVARIANT (long polls are bounded): a long poll ends when its `wait` is over
        // (a timer, not a count of store reads, so a slow store cannot stretch it), and
        // waiting costs the store almost nothing: a waiter reads the queue again only
        // when the store's change feed says the queue may have changed (queued SETs,
        // acks and stream changes touch `Topic::Export`) or once a second, and only
        // [`MAX_LONG_POLLS`] waiters at once do even that; the rest read once, at the
        // end of their wait. So many concurrent long polls neither peg the CPU nor
        // starve other requests of the store (adversarial pass 9: 1,500 long polls read
        // the store 30,000 times a second and stretched to 26 s).
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        let mut seen = self.db.topic_seq(Topic::Export);
        let (sets, more) = self.sets_to_poll(&id, max).await?;
        if !sets.is_empty() || max == 0 || req.return_immediately || wait.is_zero() {
            return Ok(PollAnswer { sets, more });
        }
        let Ok(_looking) = self.ssf_long_polls.try_acquire() else {
            (&mut deadline).await;
            let (sets, more) = self.sets_to_poll(&id, max).await?;
            return Ok(PollAnswer { sets, more });
        };
        let mut since_read = Duration::ZERO;
        loop {
            tokio::select! {
                () = &mut deadline => {
                    let (sets, more) = self.sets_to_poll(&id, max).await?;
                    return Ok(PollAnswer { sets, more });
                }
                () = tokio::time::sleep(crate::export::POLL) => {}
            }
            since_read += crate::export::POLL;
            let now_seq = self.db.topic_seq(Topic::Export);
            if now_seq == seen && since_read < LONG_POLL_RECHECK {
                continue;
            }
            seen = now_seq;
            since_read = Duration::ZERO;
            let (sets, more) = self.sets_to_poll(&id, max).await?;
            if !sets.is_empty() {
                return Ok(PollAnswer { sets, more });
            }
        }
    }

    /// Stream `id`'s oldest unacknowledged SETs, at most `max`, and whether more wait; a
    /// stream deleted meanwhile is [`StreamError::NotFound`] (a poll waiting on it ends).
    async fn sets_to_poll(
        self: &Arc<Self>,
        id: &str,
        max: u32,
    ) -> Result<(Vec<(String, String)>, bool), StreamError> {
        let sid = id.to_owned();
        self.blocking(move |s| {
            let found = s.store().ssf_sets_to_poll(&sid, max)?;
            if found.0.is_empty() && s.store().ssf_stream(&sid)?.is_none() {
                return Err(StreamError::NotFound(sid));
            }
            Ok(found)
        })
        .await?
    }
}

/// A poll request's members (RFC 8936 §2.4).
#[derive(Debug, Clone, Default)]
pub struct PollRequest {
    /// `maxEvents`.
    pub max_events: Option<u32>,
    /// `returnImmediately`.
    pub return_immediately: bool,
    /// `ack`.
    pub ack: Vec<String>,
    /// `setErrs`: `jti` → its error.
    pub set_errs: BTreeMap<String, SetErr>,
}

/// One `setErrs` entry.
#[derive(Debug, Clone, Default)]
pub struct SetErr {
    /// The RFC 8935 §2.3 code.
    pub err: String,
    /// For humans.
    pub description: String,
}

/// A poll's answer: `(jti, SET)` in the order queued, and `moreAvailable`.
#[derive(Debug, Clone)]
pub struct PollAnswer {
    /// The SETs.
    pub sets: Vec<(String, String)>,
    /// Whether more wait.
    pub more: bool,
}

/// What [`StreamTransport::send`] returns; a `SetSender`'s `send`.
pub type SetSending<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// Hands a stream's signed SETs (`(jti, SET)`, in order) to its receiver: `Ok` once it
/// has them all (pushed and accepted; queued).
pub trait SetSender: Send {
    /// Sends `sets`.
    fn send<'a>(&'a mut self, sets: &'a [(String, String)]) -> SetSending<'a>;
}

/// Makes a push stream's [`SetSender`] (the HTTP edge's: the service speaks no HTTP).
pub trait PushSenders: Send + Sync {
    /// The sender for `stream`, whose delivery is push; an error says why not.
    fn sender(&self, stream: &Stream) -> Result<Box<dyn SetSender>, String>;
}

/// A poll stream's sender: queues the SETs in the store for the receiver to poll.
struct QueueSets {
    node: Arc<Node>,
    stream: String,
}

impl SetSender for QueueSets {
    fn send<'a>(&'a mut self, sets: &'a [(String, String)]) -> SetSending<'a> {
        Box::pin(async move {
            let (id, sets) = (self.stream.clone(), sets.to_vec());
            match self
                .node
                .blocking(move |s| s.store().queue_ssf_sets(&id, &sets))
                .await
            {
                Ok(Ok(())) => Ok(()),
                // Deleted meanwhile: there is no one to deliver to; its loop is stopped.
                Ok(Err(StoreError::NotFound(_))) => Ok(()),
                Ok(Err(e)) => Err(SendError::new(format!("queueing SETs: {e}"))),
                Err(e) => Err(SendError::new(format!("queueing SETs: {e}"))),
            }
        })
    }
}

/// The claims of the SET `event` makes on `stream`, issued by `issuer` at `now_secs`;
/// `None` when the stream does not take it.
pub fn stream_claims(
    stream: &Stream,
    event: &AuditEvent,
    issuer: &str,
    now_secs: i64,
) -> Option<Value> {
    if event.time < stream.created_at {
        return None;
    }
    if event.kind == VERIFICATION_KIND {
        let details = event.details.as_ref()?;
        if details.get("stream").and_then(Value::as_str) != Some(stream.id.as_str()) {
            return None;
        }
        let mut body = json!({});
        if let (Some(state), Value::Object(m)) =
            (details.get("state").and_then(Value::as_str), &mut body)
        {
            m.insert("state".into(), state.into());
        }
        return Some(json!({
            "iss": issuer,
            "aud": stream.aud,
            "jti": event.id(),
            "iat": now_secs,
            "sub_id": {"format": "opaque", "id": stream.id},
            "events": { VERIFICATION: body },
        }));
    }
    if event
        .agent
        .as_ref()
        .is_some_and(|a| stream.excluded.contains(a))
    {
        return None;
    }
    let claims = mandate_export::ssf::set_claims(event, issuer, &stream.aud, now_secs)?;
    let delivered = stream.events_delivered();
    let event_type = claims.get("events")?.as_object()?.keys().next()?.clone();
    delivered.contains(&event_type).then_some(claims)
}

/// A stream's version as its loop was started with it: a changed status or
/// configuration is another version.
fn version(row: &SsfStreamRow) -> String {
    format!("{}|{}", row.status, row.config)
}

/// A stream's transport for the export loop: the SETs its events make, signed, handed
/// to its [`SetSender`]; a disabled stream's are dropped.
///
/// INVARIANT (delivered as the stream is now): before each batch the transport reads
/// its stream again; if the stream changed since its loop started (paused, disabled,
/// enabled, a subject or event type removed), the batch is not sent but held, and the
/// loop is restarted with the stream as it is (from its stored cursor): no event is
/// delivered, or dropped, under a configuration the receiver already changed. A
/// deleted stream's batch is dropped.
pub struct StreamTransport {
    node: Arc<Node>,
    stream: Stream,
    version: String,
    sender: Box<dyn SetSender>,
}

impl Transport for StreamTransport {
    fn send<'a>(&'a mut self, batch: &'a [Item]) -> Sending<'a> {
        Box::pin(async move {
            let id = self.stream.id.clone();
            match self.node.blocking(move |s| s.store().ssf_stream(&id)).await {
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(row))) if version(&row) == self.version => {}
                Ok(Ok(Some(_))) => {
                    return Err(SendError::new(
                        "the stream changed; its delivery restarts with the change",
                    ));
                }
                Ok(Err(e)) => return Err(SendError::new(format!("reading the stream: {e}"))),
                Err(e) => return Err(SendError::new(format!("reading the stream: {e}"))),
            }
            if self.stream.status == Status::Disabled {
                return Ok(());
            }
            let now = self.node.clock.now().secs();
            let ring = self.node.keys.ring();
            let mut sets = Vec::new();
            for item in batch {
                let Some(claims) =
                    stream_claims(&self.stream, &item.event, &self.node.config.issuer, now)
                else {
                    continue;
                };
                let set = mandate_token::set::sign_set(ring.current(), ring.signing_alg(), &claims)
                    .map_err(|e| SendError::new(format!("signing a SET: {e}")))?;
                sets.push((item.event.id(), set));
            }
            if sets.is_empty() {
                return Ok(());
            }
            self.sender.send(&sets).await
        })
    }
}

/// The export loop's configuration of `stream`: the kinds that make a SET, and
/// verification requests. Read as a `[[export.sinks]]` table is (every other setting
/// at its default), so a setting sinks gain later needs nothing here.
fn loop_config(stream: &Stream) -> Result<SinkConfig, String> {
    let mut kinds: Vec<String> = mandate_export::ssf::KINDS
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    kinds.push(VERIFICATION_KIND.to_owned());
    serde_json::from_value(json!({
        "name": format!("{LOOP_PREFIX}{}", stream.id),
        "type": SinkKind::Ssf.name(),
        "kinds": kinds,
        "batch_max_events": 100,
    }))
    .map_err(|e| format!("a stream's loop configuration: {e}"))
}

/// Starts the task that keeps one export loop running per stream not paused on this
/// node (see the module docs): it looks for changed streams every 200 ms, (re)starts
/// the loop of a new or changed stream and stops that of a paused or deleted one.
pub fn spawn(node: &Arc<Node>, push: Arc<dyn PushSenders>) {
    let node = Arc::clone(node);
    tokio::spawn(async move {
        // Stream id → (its row's status and configuration, its loop).
        let mut running: HashMap<String, (String, tokio::task::AbortHandle)> = HashMap::new();
        let mut seen: Option<u64> = None;
        // Rounds since the last full read: every 25 (5 s), whatever the feed says.
        let mut rounds = 0u32;
        loop {
            let seq = node.db.topic_seq(Topic::Export);
            rounds += 1;
            if seen != Some(seq) || rounds >= 25 {
                match node.blocking(|s| s.store().ssf_streams()).await {
                    Ok(Ok(rows)) => {
                        seen = Some(seq);
                        rounds = 0;
                        reconcile(&node, push.as_ref(), &rows, &mut running);
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "reading SSF streams failed"),
                    Err(e) => tracing::warn!(error = %e, "reading SSF streams failed"),
                }
            }
            tokio::time::sleep(WATCH).await;
        }
    });
}

/// Makes the running loops those of `rows`.
fn reconcile(
    node: &Arc<Node>,
    push: &dyn PushSenders,
    rows: &[SsfStreamRow],
    running: &mut HashMap<String, (String, tokio::task::AbortHandle)>,
) {
    let mut wanted: HashMap<&str, String> = HashMap::new();
    for row in rows {
        if row.status != Status::Paused.as_str() {
            wanted.insert(&row.id, version(row));
        }
    }
    running.retain(|id, (version, handle)| {
        let keep = wanted.get(id.as_str()) == Some(version);
        if !keep {
            handle.abort();
            crate::export::forget(node, &format!("{LOOP_PREFIX}{id}"));
        }
        keep
    });
    for row in rows {
        let Some(version) = wanted.get(row.id.as_str()) else {
            continue;
        };
        if running.contains_key(&row.id) {
            continue;
        }
        let stream = match Stream::from_row(row) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(stream = %row.id, error = %e, "an SSF stream does not read");
                continue;
            }
        };
        let sender: Box<dyn SetSender> = match &stream.delivery {
            Delivery::Poll => Box::new(QueueSets {
                node: Arc::clone(node),
                stream: stream.id.clone(),
            }),
            Delivery::Push { .. } => match push.sender(&stream) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(stream = %row.id, error = %e, "an SSF push stream cannot start");
                    continue;
                }
            },
        };
        let cfg = match loop_config(&stream) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(stream = %row.id, error = %e, "an SSF stream cannot start");
                continue;
            }
        };
        let transport = StreamTransport {
            node: Arc::clone(node),
            stream,
            version: version.clone(),
            sender,
        };
        let handle = crate::export::spawn_one(node, cfg, Box::new(transport));
        running.insert(row.id.clone(), (version.clone(), handle));
    }
}
