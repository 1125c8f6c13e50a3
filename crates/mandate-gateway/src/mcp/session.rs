//! The gateway's MCP sessions: each belongs to the acting agent that opened it (the
//! agent the token was issued to and authenticated as, never the token's `sub`), each
//! holding the upstream sessions opened for it (lazily), what the upstreams listed, its
//! calls in flight and whether its standalone stream is open.
//!
//! Sessions live in memory (an MCP session is a transport conversation, not a record:
//! after a restart clients get 404 and, as the spec requires, initialize again). The
//! table is bounded: at most [`MAX_PER_AGENT`] sessions per acting agent (its own least
//! recently used goes first) and [`MAX_SESSIONS`] in all (then the least recently used
//! session of the agent holding the most goes, so an agent can evict another's session
//! only by holding no more than that agent). A session has at most one standalone
//! stream and [`MAX_CALLS`] calls in flight. A session unused for the idle timeout (no
//! request naming it, no open stream, no call in flight) is expired by the gateway's
//! sweep ([`Sessions::expire`]). Ending a session (DELETE, eviction or expiry) ends its
//! open streams.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::upstream::Conn;

/// Sessions one acting agent may hold at once.
pub const MAX_PER_AGENT: usize = 32;
/// Sessions in all.
pub const MAX_SESSIONS: usize = 4096;
/// Calls one session may have in flight (forwarded, response not yet ended).
pub const MAX_CALLS: usize = 16;

/// One gateway session.
#[derive(Debug)]
pub struct Session {
    /// The acting agent whose token opened it; only that agent may use it.
    pub agent: String,
    /// The protocol version negotiated with the client (and asked of upstreams).
    pub protocol_version: String,
    /// The upstream sessions, one slot per configured upstream; `None` until opened.
    /// An async lock, so that concurrent first requests open one session, not two.
    pub upstreams: BTreeMap<String, tokio::sync::Mutex<Option<Conn>>>,
    /// The tool names each upstream listed last (`tools/list`, or the check before a
    /// call).
    tools: Mutex<HashMap<String, HashSet<String>>>,
    /// Requests forwarded and not yet answered: JSON id → upstream (to route
    /// `notifications/cancelled`, and to bound them).
    in_flight: Mutex<HashMap<String, String>>,
    /// Whether the standalone (GET) stream is open.
    listening: AtomicBool,
    /// Set once the session has ended: its open streams end with it.
    closed: watch::Sender<bool>,
    /// The order of last use, for eviction.
    last_used: AtomicU64,
    /// When the session was last used: a request named it, or a stream or call ended.
    last_active: Mutex<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these leaves plain data behind: still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a call cannot be put in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// [`MAX_CALLS`] calls are in flight already.
    Full,
    /// A request with this id is in flight already (ids must be unique while in
    /// flight: cancellation is routed by them).
    Duplicate,
}

/// A call in flight: it leaves the session's count when dropped.
#[derive(Debug)]
pub struct InFlight {
    session: Arc<Session>,
    key: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.session.in_flight).remove(&self.key);
        self.session.touch();
    }
}

/// The session's standalone stream: the session may open another once this is dropped.
#[derive(Debug)]
pub struct Listening(Arc<Session>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.listening.store(false, Ordering::Release);
        self.0.touch();
    }
}

impl Session {
    /// Remembers what `server` lists.
    pub fn set_tools(&self, server: &str, names: HashSet<String>) {
        lock(&self.tools).insert(server.to_owned(), names);
    }

    /// Whether `server` listed `tool`; `None` if it has not been asked yet.
    pub fn has_tool(&self, server: &str, tool: &str) -> Option<bool> {
        lock(&self.tools).get(server).map(|t| t.contains(tool))
    }

    /// Puts request `id` in flight to `server`, if the session has room for it.
    pub fn start(self: &Arc<Self>, id: &Value, server: &str) -> Result<InFlight, Busy> {
        let key = id.to_string();
        let mut map = lock(&self.in_flight);
        if map.contains_key(&key) {
            return Err(Busy::Duplicate);
        }
        // INVARIANT (calls per session): at most MAX_CALLS entries, each held by the
        // InFlight guard of one forwarded call.
        if map.len() >= MAX_CALLS {
            return Err(Busy::Full);
        }
        map.insert(key.clone(), server.to_owned());
        Ok(InFlight {
            session: Arc::clone(self),
            key,
        })
    }

    /// The upstream request `id` was forwarded to, while it is in flight.
    pub fn in_flight(&self, id: &Value) -> Option<String> {
        lock(&self.in_flight).get(&id.to_string()).cloned()
    }

    /// Opens the standalone stream; `None` while one is open.
    pub fn listen(self: &Arc<Self>) -> Option<Listening> {
        // INVARIANT (one standalone stream): the flag is set here, by one caller at a
        // time, and cleared only when that caller's `Listening` is dropped.
        self.listening
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            .then(|| Listening(Arc::clone(self)))
    }

    /// Notes a use now.
    fn touch(&self) {
        *lock(&self.last_active) = Instant::now();
    }

    /// Whether the session has gone unused for `idle`: no open stream, no call in
    /// flight, and no request, stream end or call end for that long.
    fn idle_for(&self, idle: Duration) -> bool {
        !self.listening.load(Ordering::Acquire)
            && lock(&self.in_flight).is_empty()
            && lock(&self.last_active).elapsed() >= idle
    }

    /// Ends the session's open streams.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Sees the session end.
    pub fn closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }
}

/// The session table.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    clock: AtomicU64,
}

/// Removes from `map` the least recently used session among those `pick` accepts.
fn evict_oldest(
    map: &mut HashMap<String, Arc<Session>>,
    pick: impl Fn(&Session) -> bool,
) -> Option<Arc<Session>> {
    let oldest = map
        .iter()
        .filter(|(_, s)| pick(s))
        .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
        .map(|(k, _)| k.clone())?;
    map.remove(&oldest)
}

impl Sessions {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a session `id` for the acting agent `agent` with a slot per upstream in
    /// `servers`. Returns the sessions evicted to make room (already closed; their
    /// upstream sessions are for the caller to end).
    pub fn insert<'a>(
        &self,
        id: String,
        agent: &str,
        protocol_version: &str,
        servers: impl Iterator<Item = &'a str>,
    ) -> Vec<Arc<Session>> {
        let session = Arc::new(Session {
            agent: agent.to_owned(),
            protocol_version: protocol_version.to_owned(),
            upstreams: servers
                .map(|s| (s.to_owned(), tokio::sync::Mutex::new(None)))
                .collect(),
            tools: Mutex::default(),
            in_flight: Mutex::default(),
            listening: AtomicBool::new(false),
            closed: watch::Sender::new(false),
            last_used: AtomicU64::new(self.tick()),
            last_active: Mutex::new(Instant::now()),
        });
        let mut map = lock(&self.map);
        let mut evicted = Vec::new();
        // INVARIANT (caps per acting agent): an agent's sessions are counted, and
        // evicted for its own new ones, by the acting agent alone.
        while map.values().filter(|s| s.agent == agent).count() >= MAX_PER_AGENT {
            match evict_oldest(&mut map, |s| s.agent == agent) {
                Some(s) => evicted.push(s),
                None => break,
            }
        }
        while map.len() >= MAX_SESSIONS {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for s in map.values() {
                *counts.entry(s.agent.as_str()).or_default() += 1;
            }
            let Some(most) = counts
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(a, _)| a.to_owned())
            else {
                break;
            };
            match evict_oldest(&mut map, |s| s.agent == most) {
                Some(s) => evicted.push(s),
                None => break,
            }
        }
        map.insert(id, session);
        drop(map);
        for s in &evicted {
            s.close();
        }
        evicted
    }

    /// Session `id`, if it exists and belongs to the acting agent `agent`. Another
    /// agent's session is answered like an unknown one, so its existence is not
    /// revealed.
    pub fn get(&self, id: &str, agent: &str) -> Option<Arc<Session>> {
        let map = lock(&self.map);
        let s = map.get(id)?;
        // INVARIANT (session owner): only the acting agent that opened a session may
        // use it, whatever the token's `sub` says.
        if s.agent != agent {
            return None;
        }
        s.last_used.store(self.tick(), Ordering::Relaxed);
        // Under the table's lock, so an expiry sweep sees this use or ran before it.
        s.touch();
        Some(Arc::clone(s))
    }

    /// Removes the sessions unused for `idle` (see [`Session::idle_for`]), ending them.
    /// Returns them (their upstream sessions are for the caller to end).
    pub fn expire(&self, idle: Duration) -> Vec<Arc<Session>> {
        let mut map = lock(&self.map);
        let gone: Vec<String> = map
            .iter()
            .filter(|(_, s)| s.idle_for(idle))
            .map(|(k, _)| k.clone())
            .collect();
        let expired: Vec<Arc<Session>> = gone.iter().filter_map(|k| map.remove(k)).collect();
        drop(map);
        for s in &expired {
            s.close();
        }
        expired
    }

    /// Removes session `id` if it belongs to `agent`, ending its open streams.
    pub fn remove(&self, id: &str, agent: &str) -> Option<Arc<Session>> {
        let mut map = lock(&self.map);
        let removed = if map.get(id).is_some_and(|s| s.agent == agent) {
            map.remove(id)
        } else {
            None
        };
        drop(map);
        if let Some(s) = &removed {
            s.close();
        }
        removed
    }

    /// How many sessions there are.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_belong_to_their_agent_and_are_bounded() {
        let t = Sessions::default();
        assert!(
            t.insert("s1".into(), "a", "v", ["x"].into_iter())
                .is_empty()
        );
        assert!(t.get("s1", "a").is_some());
        assert!(t.get("s1", "b").is_none());
        assert!(t.remove("s1", "b").is_none());
        let s1 = t.remove("s1", "a").unwrap();
        assert!(*s1.closed().borrow(), "a removed session is closed");
        assert!(t.get("s1", "a").is_none());

        for i in 0..MAX_PER_AGENT {
            assert!(
                t.insert(format!("a{i}"), "a", "v", [].into_iter())
                    .is_empty()
            );
        }
        // a0 is used again, so a1 is now the least recently used.
        assert!(t.get("a0", "a").is_some());
        let gone = t.insert("new".into(), "a", "v", [].into_iter());
        assert_eq!(gone.len(), 1);
        assert!(*gone[0].closed().borrow(), "an evicted session is closed");
        assert!(t.get("a1", "a").is_none());
        assert!(t.get("a0", "a").is_some());
        assert_eq!(t.len(), MAX_PER_AGENT);
    }

    #[test]
    fn at_the_global_cap_the_agent_holding_the_most_gives_way() {
        let t = Sessions::default();
        // `big` fills the table but for one agent's single session…
        let mut agents = Vec::new();
        let mut n = 0;
        while n < MAX_SESSIONS - 1 {
            let agent = format!("big{}", n / MAX_PER_AGENT);
            t.insert(format!("s{n}"), &agent, "v", [].into_iter());
            agents.push(agent);
            n += 1;
        }
        t.insert("small".into(), "small", "v", [].into_iter());
        assert_eq!(t.len(), MAX_SESSIONS);
        // …and a newcomer's session evicts one of a full agent's, never `small`'s.
        let gone = t.insert("new".into(), "newcomer", "v", [].into_iter());
        assert_eq!(gone.len(), 1);
        assert!(gone[0].agent.starts_with("big"));
        assert!(t.get("small", "small").is_some());
    }

    #[test]
    fn calls_in_flight_and_the_standalone_stream_are_bounded() {
        let t = Sessions::default();
        t.insert("s".into(), "a", "v", [].into_iter());
        let s = t.get("s", "a").unwrap();
        let mut held = Vec::new();
        for i in 0..MAX_CALLS {
            held.push(s.start(&Value::from(i), "x").unwrap());
        }
        assert_eq!(s.start(&Value::from(99), "x").unwrap_err(), Busy::Full);
        held.pop();
        assert_eq!(s.start(&Value::from(0), "x").unwrap_err(), Busy::Duplicate);
        assert!(s.start(&Value::from(99), "x").is_ok());
        assert_eq!(s.in_flight(&Value::from(0)).as_deref(), Some("x"));

        let first = s.listen().unwrap();
        assert!(s.listen().is_none());
        drop(first);
        assert!(s.listen().is_some());
    }
}
