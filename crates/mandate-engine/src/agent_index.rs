//! The snapshot's agents by id, each held once and shared between snapshots.
//!
//! A node keeps every agent in memory and rebuilds its snapshot after every write, so
//! the index is built to be cheap to rebuild: its table holds only a pointer per agent
//! (the id is read from the agent, never copied into a key), and an agent that did not
//! change is the same allocation in the old and the new snapshot. A rebuild allocates
//! the table and the agents that changed, nothing per unchanged agent.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use mandate_core::agent::Agent;
use mandate_core::id::AgentId;

/// Agents by id (at most one per id).
#[derive(Clone, Default)]
pub struct AgentIndex(HashSet<ById>);

/// An agent hashed and compared by its id alone, so the set can be searched by id.
#[derive(Clone)]
struct ById(Arc<Agent>);

// `Borrow` requires `ById` and `AgentId` to hash and compare alike: both by the id.
impl Borrow<AgentId> for ById {
    fn borrow(&self) -> &AgentId {
        &self.0.id
    }
}

impl Hash for ById {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl AgentIndex {
    /// An empty index with room for `n` agents.
    pub fn with_capacity(n: usize) -> Self {
        Self(HashSet::with_capacity(n))
    }

    /// The agent with this id.
    pub fn get(&self, id: &AgentId) -> Option<&Agent> {
        self.0.get(id).map(|a| &*a.0)
    }

    /// The agent with this id, as shared with other snapshots.
    pub fn get_shared(&self, id: &AgentId) -> Option<&Arc<Agent>> {
        self.0.get(id).map(|a| &a.0)
    }

    /// Whether an agent has this id.
    pub fn contains_key(&self, id: &AgentId) -> bool {
        self.0.contains(id)
    }

    /// How many agents there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every agent, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Agent> {
        self.0.iter().map(|a| &*a.0)
    }

    /// Adds `agent`, replacing any agent with its id; returns the one replaced.
    pub fn insert(&mut self, agent: impl Into<Arc<Agent>>) -> Option<Arc<Agent>> {
        self.0.replace(ById(agent.into())).map(|a| a.0)
    }
}

impl<A: Into<Arc<Agent>>> FromIterator<A> for AgentIndex {
    fn from_iter<I: IntoIterator<Item = A>>(agents: I) -> Self {
        let mut index = Self::default();
        for a in agents {
            index.insert(a);
        }
        index
    }
}

impl std::fmt::Debug for AgentIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentIndex")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mandate_core::agent::{AgentName, AgentStatus, Boundary, Labels, Owner, Purpose};
    use mandate_core::time::Timestamp;

    fn agent(i: usize) -> Agent {
        Agent {
            id: AgentId::parse(&format!("agt_01JA{i:022}")).unwrap(),
            name: AgentName::try_from(format!("agent-{i}")).unwrap(),
            owner: Owner::try_from("alice@example.com".to_owned()).unwrap(),
            purpose: Purpose::default(),
            labels: Labels::default(),
            boundary: Boundary::default(),
            status: AgentStatus::Active,
            status_reason: None,
            created_at: Timestamp::from_secs(0),
            updated_at: Timestamp::from_secs(0),
        }
    }

    #[test]
    fn finds_by_id_and_replaces_by_id() {
        let mut index: AgentIndex = (0..3).map(agent).collect();
        assert_eq!(index.len(), 3);
        assert_eq!(index.get(&agent(1).id), Some(&agent(1)));
        assert!(index.contains_key(&agent(2).id) && !index.contains_key(&agent(3).id));
        let mut changed = agent(1);
        changed.status = AgentStatus::Suspended;
        let replaced = index.insert(changed.clone());
        assert_eq!(replaced.as_deref(), Some(&agent(1)));
        assert_eq!(index.len(), 3);
        assert_eq!(index.get(&agent(1).id), Some(&changed));
        let mut ids: Vec<_> = index.values().map(|a| a.id.clone()).collect();
        ids.sort();
        assert_eq!(ids, [agent(0).id, agent(1).id, agent(2).id]);
    }

    #[test]
    fn shares_rather_than_copies() {
        let shared = Arc::new(agent(0));
        let a: AgentIndex = [Arc::clone(&shared)].into_iter().collect();
        let b: AgentIndex = [Arc::clone(a.get_shared(&shared.id).unwrap())]
            .into_iter()
            .collect();
        assert!(Arc::ptr_eq(b.get_shared(&shared.id).unwrap(), &shared));
        assert_eq!(Arc::strong_count(&shared), 3);
    }
}
