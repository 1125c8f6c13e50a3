//! The cross-node change feed: other processes' writes reach this process's [`LocalFeed`]
//! by PostgreSQL `LISTEN/NOTIFY`, a heartbeat through the same channel proves how
//! complete the feed is ([`Freshness`]), and the same connection holds the leader lock.
//!
//! # How a change travels
//!
//! Every write unit that touched a topic other nodes read ([`notified`]) sends, inside
//! its transaction, `pg_notify('mandate_changes', 'c <instance> <topic bits> <xid>')`
//! (lib.rs), where `xid` is the change's id (its transaction id). PostgreSQL delivers a notification only if its transaction commits, and
//! delivers notifications "in the order in which the transactions committed" (the
//! `NOTIFY` reference page). The listener ([`run`]) holds one connection outside the
//! pool that `LISTEN`s on the channel; for each notification from another instance it
//! publishes the topics to the local feed, where the node's follower wakes and refreshes.
//! Its own notifications are skipped: its writes were published locally at commit.
//!
//! # How freshness is proven
//!
//! Every `heartbeat` the listener sends `pg_notify('mandate_changes', 'h <instance> <n>')`
//! on its own connection and notes when. A session receives its own notifications, and in
//! commit order: when heartbeat `n` comes back, every change committed before it was sent
//! has already been received and published. The proof is then (`sent`, the feed's
//! sequence number now): `Freshness::Proven`. The node compares its age with
//! `cluster.max_staleness` and whether its snapshot covers the sequence number.
//! Heartbeat numbers go on across reconnections, so a heartbeat of a lost connection
//! that arrives late proves nothing (`INVARIANT (a heartbeat proves its own session)`).
//!
//! INVARIANT (lost feed is unproven): whenever the listening connection is not known to
//! be up (before the first `LISTEN`, after any error on it, while reconnecting) the proof
//! is [`Freshness::Unproven`], set before anything else happens on the loss. A proof is
//! only ever replaced by a newer one.
//!
//! # Reconnecting
//!
//! A lost connection is retried with a bounded back-off. Once `LISTEN` is in force again
//! every topic is published ([`Topics::all`]): a node that may have missed notifications
//! reads everything again, then the first heartbeat proves it fresh.
//!
//! # Leadership
//!
//! Jobs that must run once run on the node holding a session advisory lock
//! ([`LEADER_LOCK`]), taken on the listening connection (tried on connect and at every
//! heartbeat while not held). It is released by PostgreSQL when the connection ends, for
//! whatever reason (the node stopped, was killed, or lost its network), and another
//! node takes it at its next heartbeat. `leads` is cleared on any loss before reconnecting.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mandate_store::{Freshness, LocalFeed, Topic, Topics};
use tokio_postgres::{AsyncMessage, NoTls};

/// The notification channel every node listens on.
pub(crate) const CHANNEL: &str = "mandate_changes";

/// The topics whose changes are announced to other nodes: all but the audit log (each
/// node writes its own), assertion `jti`s (checked by the database's unique key on
/// every request, never cached), the nodes' own records (heartbeats, read fresh by
/// `cluster status`), export cursors (each node moves its own log's) and last activity
/// (read fresh by the inventory, never cached).
pub(crate) fn notified() -> Topics {
    Topics::all().without(
        [
            Topic::Audit,
            Topic::AssertionReplay,
            Topic::Node,
            Topic::Export,
            Topic::Activity,
        ]
        .into_iter()
        .collect(),
    )
}

/// The session advisory lock whose holder leads (the bytes of `mandate:L`).
pub(crate) const LEADER_LOCK: i64 = 0x6d61_6e64_6174_654c;

/// The first wait before reconnecting a lost connection (the listener's, the
/// registration's), doubled after each failed attempt.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between two reconnection attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How many heartbeats may be outstanding before the connection is declared lost: a
/// heartbeat that did not come back after this many intervals is a connection that
/// no longer delivers.
const MAX_OUTSTANDING: usize = 4;

/// What the listener shares with the store.
#[derive(Debug)]
pub(crate) struct FeedShared {
    /// Random per store instance; written into every notification this instance sends,
    /// so its own are recognised.
    pub(crate) instance: String,
    state: Mutex<ListenState>,
    leads: AtomicBool,
    /// Set while this process registered its node id and does not hold the registration
    /// now (its connection was lost, nodes.rs): another process may be serving as this
    /// node, so this one proves nothing and leads nothing (`INVARIANT (one process per
    /// node id)`).
    unregistered: AtomicBool,
}

#[derive(Debug)]
struct ListenState {
    proof: Freshness,
    /// How long the last heartbeat took to come back.
    lag: Option<Duration>,
    /// Whether the listener was started.
    started: bool,
}

/// What the listener knows now, for `mandate cluster status`.
#[derive(Debug, Clone, Copy)]
pub struct FeedStatus {
    /// Whether the listener is running and its connection up.
    pub connected: bool,
    /// The round trip of the last heartbeat (how far notifications lag at least).
    pub lag: Option<Duration>,
    /// Whether this process holds the leader lock.
    pub leads: bool,
}

impl FeedShared {
    pub(crate) fn new(instance: String) -> Self {
        Self {
            instance,
            state: Mutex::new(ListenState {
                proof: Freshness::Unproven,
                lag: None,
                started: false,
            }),
            leads: AtomicBool::new(false),
            unregistered: AtomicBool::new(false),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ListenState> {
        // Plain values replaced whole under the lock: never half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn freshness(&self) -> Freshness {
        if self.unregistered.load(Ordering::Acquire) {
            return Freshness::Unproven;
        }
        self.state().proof
    }

    pub(crate) fn leads(&self) -> bool {
        self.leads.load(Ordering::Acquire) && !self.unregistered.load(Ordering::Acquire)
    }

    /// Records whether this process holds its node's registration (nodes.rs); while it
    /// does not, [`Self::freshness`] is unproven and [`Self::leads`] false.
    pub(crate) fn set_registered(&self, held: bool) {
        self.unregistered.store(!held, Ordering::Release);
    }

    pub(crate) fn status(&self) -> FeedStatus {
        let proof = self.freshness();
        let s = self.state();
        FeedStatus {
            connected: matches!(proof, Freshness::Proven { .. }),
            lag: s.lag,
            leads: self.leads(),
        }
    }

    /// Marks the listener started; false if it already was.
    pub(crate) fn start_once(&self) -> bool {
        let mut s = self.state();
        !std::mem::replace(&mut s.started, true)
    }

    /// `INVARIANT (lost feed is unproven)`: called first on every loss.
    fn lost(&self) {
        self.state().proof = Freshness::Unproven;
        self.leads.store(false, Ordering::Release);
    }

    fn proven(&self, at: Instant, seq: u64, lag: Duration) {
        let mut s = self.state();
        let newer = match s.proof {
            Freshness::Proven { at: old, .. } => at > old,
            _ => true,
        };
        if newer {
            s.proof = Freshness::Proven { at, seq, lag };
        }
        s.lag = Some(lag);
    }
}

/// The heartbeats this listener sent that have not come back, in order, numbered across
/// all its sessions.
#[derive(Debug, Default)]
struct Heartbeats {
    /// The number of the last heartbeat sent.
    last: u64,
    outstanding: VecDeque<(u64, Instant)>,
}

impl Heartbeats {
    /// A new listening session: nothing sent on it is outstanding.
    ///
    /// INVARIANT (a heartbeat proves its own session): numbers go on across sessions, so
    /// a lost session's heartbeat that the server still delivers later (its `NOTIFY`
    /// committed after the next session's `LISTEN`) is numbered below everything the new
    /// session sent, and [`Self::came_back`] passes it by.
    fn new_session(&mut self) {
        self.outstanding.clear();
    }

    /// Numbers a heartbeat sent at `at`.
    fn send(&mut self, at: Instant) -> u64 {
        self.last += 1;
        self.outstanding.push_back((self.last, at));
        self.last
    }

    /// How many did not come back yet.
    fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Heartbeat `n` of this instance came back: when it was sent, if it is outstanding.
    /// Every heartbeat before it came back before it, in order: they are done with.
    fn came_back(&mut self, n: u64) -> Option<Instant> {
        while let Some(&(m, sent)) = self.outstanding.front() {
            if m > n {
                break;
            }
            self.outstanding.pop_front();
            if m == n {
                return Some(sent);
            }
        }
        None
    }
}

/// A notification on [`CHANNEL`], read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Note<'a> {
    /// A committed change: the writer's instance and the topics it touched.
    Change { instance: &'a str, topics: Topics },
    /// A heartbeat: the sender's instance and its number.
    Heartbeat { instance: &'a str, n: u64 },
    /// Anything else on the channel (another version's format, a hand-sent `NOTIFY`): read
    /// as "something changed" by the caller, never ignored.
    Unknown,
}

/// The payload of a change notification (the transaction id is appended in SQL).
pub(crate) fn change_payload(instance: &str, topics: Topics) -> String {
    format!("c {instance} {}", topics.bits())
}

/// Reads a notification's payload.
pub(crate) fn parse(payload: &str) -> Note<'_> {
    let mut parts = payload.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("c"), Some(instance), Some(bits)) => match bits.parse::<u16>() {
            Ok(bits) => Note::Change {
                instance,
                topics: Topics::from_bits(bits),
            },
            Err(_) => Note::Unknown,
        },
        (Some("h"), Some(instance), Some(n)) if parts.next().is_none() => match n.parse() {
            Ok(n) => Note::Heartbeat { instance, n },
            Err(_) => Note::Unknown,
        },
        _ => Note::Unknown,
    }
}

/// What the connection's driver passes to the listener.
enum Event {
    Note(String),
    Lost(String),
}

/// The listener: runs until the store's runtime shuts down. See the module docs.
pub(crate) async fn run(
    config: tokio_postgres::Config,
    shared: Arc<FeedShared>,
    feed: Arc<LocalFeed>,
    heartbeat: Duration,
    target: String,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut beats = Heartbeats::default();
    loop {
        let mut listened = false;
        beats.new_session();
        let why = session(
            &config,
            &shared,
            &feed,
            heartbeat,
            &mut beats,
            &mut listened,
        )
        .await;
        shared.lost();
        tracing::warn!(
            store = %target,
            error = %why,
            "change feed lost: this node refuses decisions until it is back"
        );
        // A connection that got as far as listening was a good one: retry soon.
        if listened {
            backoff = FIRST_BACKOFF;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One listening connection, from connect to loss; returns why it was lost (it never
/// ends otherwise). Sets `listened` once `LISTEN` is in force.
async fn session(
    config: &tokio_postgres::Config,
    shared: &FeedShared,
    feed: &LocalFeed,
    heartbeat: Duration,
    beats: &mut Heartbeats,
    listened: &mut bool,
) -> String {
    match listen(config, shared, feed, heartbeat, beats, listened).await {
        Ok(never) => match never {},
        Err(why) => why,
    }
}

async fn listen(
    config: &tokio_postgres::Config,
    shared: &FeedShared,
    feed: &LocalFeed,
    heartbeat: Duration,
    beats: &mut Heartbeats,
    listened: &mut bool,
) -> Result<std::convert::Infallible, String> {
    let mut config = config.clone();
    // Named, so an operator sees it in `pg_stat_activity` (and a test can cut it).
    config.application_name("mandate-listen");
    let (client, mut connection) = tokio::time::timeout(heartbeat * 4, config.connect(NoTls))
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(|e| crate::pg_error(&e).to_string())?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(Event::Note(n.payload().to_owned())).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let _ = tx.send(Event::Lost(crate::pg_error(&e).to_string()));
                    return;
                }
                None => {
                    let _ = tx.send(Event::Lost("connection closed".into()));
                    return;
                }
            }
        }
    });
    // Ends the driver (and the connection) however this session ends.
    let _driver = AbortOnDrop(driver);
    // How long one statement on this connection may take before it counts as lost.
    let limit = heartbeat * 4;
    tokio::time::timeout(limit, client.batch_execute(&format!("LISTEN {CHANNEL}")))
        .await
        .map_err(|_| "LISTEN timed out".to_owned())?
        .map_err(|e| crate::pg_error(&e).to_string())?;
    *listened = true;
    // From here on every commit is notified to us: whatever we may have missed before
    // is read again by publishing every topic.
    feed.publish(Topics::all());
    let mut ticks = tokio::time::interval(heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(Event::Note(payload)) => match parse(&payload) {
                    Note::Change { instance, .. } if instance == shared.instance => {}
                    Note::Change { topics, .. } => {
                        feed.publish(topics);
                    }
                    Note::Heartbeat { instance, n } if instance == shared.instance => {
                        if let Some(sent) = beats.came_back(n) {
                            shared.proven(sent, feed.seq(), sent.elapsed());
                        }
                    }
                    Note::Heartbeat { .. } => {}
                    Note::Unknown => {
                        feed.publish(Topics::all());
                    }
                },
                Some(Event::Lost(why)) => return Err(why),
                None => return Err("connection driver ended".into()),
            },
            _ = ticks.tick() => {
                if beats.outstanding() >= MAX_OUTSTANDING {
                    return Err(format!("{MAX_OUTSTANDING} heartbeats did not come back"));
                }
                // The lock itself, not whether this node may lead now (`leads` is also
                // false while unregistered): a held session lock is not taken twice.
                if !shared.leads.load(Ordering::Acquire) {
                    let row = tokio::time::timeout(limit, client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]))
                        .await
                        .map_err(|_| "taking the leader lock timed out".to_owned())?
                        .map_err(|e| crate::pg_error(&e).to_string())?;
                    let got: bool = row.try_get(0).map_err(|e| crate::pg_error(&e).to_string())?;
                    if got {
                        tracing::info!("this node now leads the cluster's jobs");
                        shared.leads.store(true, Ordering::Release);
                    }
                }
                #[expect(
                    clippy::disallowed_methods,
                    reason = "monotonic time for a heartbeat's round trip, not the time of day"
                )]
                let sent = Instant::now();
                let n = beats.send(sent);
                let payload = format!("h {} {n}", shared.instance);
                tokio::time::timeout(limit, client.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]))
                    .await
                    .map_err(|_| "sending a heartbeat timed out".to_owned())?
                    .map_err(|e| crate::pg_error(&e).to_string())?;
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 21 review, atk3): heartbeats were numbered from 1 again in every
    /// listening session, so a heartbeat of a lost session that the server delivered
    /// late (its `NOTIFY` committed after the new session's `LISTEN`) was taken for the
    /// new session's heartbeat of the same number: a proof dated when the new one was
    /// sent, though the changes committed before then need not have arrived yet.
    #[test]
    #[expect(
        clippy::disallowed_methods,
        reason = "heartbeats are dated by monotonic instants"
    )]
    fn a_late_heartbeat_of_a_lost_session_proves_nothing_in_the_next() {
        let mut beats = Heartbeats::default();
        let old = beats.send(Instant::now());
        beats.new_session();
        let sent = Instant::now();
        let n = beats.send(sent);
        assert_eq!(
            beats.came_back(old),
            None,
            "the lost session's heartbeat proved"
        );
        assert_eq!(beats.came_back(n), Some(sent));
    }

    #[test]
    fn payloads_read_back() {
        let t: Topics = [Topic::Agents, Topic::Mandates].into_iter().collect();
        let p = change_payload("ab12", t) + " 7731";
        assert_eq!(
            parse(&p),
            Note::Change {
                instance: "ab12",
                topics: t
            }
        );
        assert_eq!(
            parse("h ab12 42"),
            Note::Heartbeat {
                instance: "ab12",
                n: 42
            }
        );
    }

    #[test]
    fn anything_else_is_unknown_and_unknown_bits_are_every_topic() {
        for p in [
            "",
            "x",
            "c",
            "c ab",
            "c ab notbits",
            "h ab",
            "h ab x",
            "h ab 1 2",
        ] {
            assert_eq!(parse(p), Note::Unknown, "{p:?}");
        }
        assert_eq!(
            parse("c ab 65535 1"),
            Note::Change {
                instance: "ab",
                topics: Topics::all()
            }
        );
    }

    #[test]
    fn audit_and_assertion_jtis_are_not_announced() {
        let n = notified();
        assert!(!n.contains(Topic::Audit));
        assert!(!n.contains(Topic::AssertionReplay));
        assert!(!n.contains(Topic::Node));
        for t in [
            Topic::Agents,
            Topic::Credentials,
            Topic::SigningKeys,
            Topic::Mandates,
        ] {
            assert!(n.contains(t));
        }
    }
}
