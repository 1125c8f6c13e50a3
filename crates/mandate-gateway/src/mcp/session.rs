//! The gateway's MCP sessions: each bound to the agent that opened it, each holding
//! the upstream sessions opened for it (lazily) and what the upstreams listed.
//!
//! Sessions live in memory (an MCP session is a transport conversation, not a record:
//! after a restart clients get 404 and, as the spec requires, initialize again). The
//! table is bounded: at most [`MAX_PER_AGENT`] sessions per agent and [`MAX_SESSIONS`]
//! in all, the least recently used going first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

use super::upstream::Conn;

/// Sessions one agent may hold at once.
pub const MAX_PER_AGENT: usize = 32;
/// Sessions in all.
pub const MAX_SESSIONS: usize = 4096;

/// One gateway session.
#[derive(Debug)]
pub struct Session {
    /// The agent whose token opened it; only that agent may use it.
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
    /// `notifications/cancelled`).
    in_flight: Mutex<HashMap<String, String>>,
    last_used: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these leaves plain data behind: still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// Notes request `id` as forwarded to `server`.
    pub fn start(&self, id: &Value, server: &str) {
        lock(&self.in_flight).insert(id.to_string(), server.to_owned());
    }

    /// Notes request `id` as answered (or abandoned).
    pub fn finish(&self, id: &Value) {
        lock(&self.in_flight).remove(&id.to_string());
    }

    /// The upstream request `id` was forwarded to, while it is in flight.
    pub fn in_flight(&self, id: &Value) -> Option<String> {
        lock(&self.in_flight).get(&id.to_string()).cloned()
    }
}

/// The session table.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
    clock: AtomicU64,
}

impl Sessions {
    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a session `id` for `agent` with a slot per upstream in `servers`. Returns
    /// the sessions evicted to make room (their upstream sessions are for the caller to
    /// end).
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
            last_used: AtomicU64::new(self.tick()),
        });
        let mut map = lock(&self.map);
        let mut evicted = Vec::new();
        let mut evict_oldest = |map: &mut HashMap<String, Arc<Session>>, of_agent: bool| {
            let oldest = map
                .iter()
                .filter(|(_, s)| !of_agent || s.agent == agent)
                .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone());
            if let Some(s) = oldest.and_then(|k| map.remove(&k)) {
                evicted.push(s);
            }
        };
        while map.values().filter(|s| s.agent == agent).count() >= MAX_PER_AGENT {
            evict_oldest(&mut map, true);
        }
        while map.len() >= MAX_SESSIONS {
            evict_oldest(&mut map, false);
        }
        map.insert(id, session);
        evicted
    }

    /// Session `id`, if it exists and belongs to `agent`. Another agent's session is
    /// answered like an unknown one, so its existence is not revealed.
    pub fn get(&self, id: &str, agent: &str) -> Option<Arc<Session>> {
        let s = lock(&self.map).get(id).cloned()?;
        if s.agent != agent {
            return None;
        }
        s.last_used.store(self.tick(), Ordering::Relaxed);
        Some(s)
    }

    /// Removes session `id` if it belongs to `agent`.
    pub fn remove(&self, id: &str, agent: &str) -> Option<Arc<Session>> {
        let mut map = lock(&self.map);
        if map.get(id).is_some_and(|s| s.agent == agent) {
            map.remove(id)
        } else {
            None
        }
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
        assert!(t.remove("s1", "a").is_some());
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
        assert!(t.get("a1", "a").is_none());
        assert!(t.get("a0", "a").is_some());
        assert_eq!(t.len(), MAX_PER_AGENT);
    }
}
