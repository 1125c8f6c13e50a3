//! Generic conveniences over any [`Store`]: units of work that return a value or the
//! caller's own error, and read-modify-write of one agent or mandate with a closure that
//! refuses with the caller's error type. Written once here, so every backend has them.

use mandate_core::agent::Agent;
use mandate_core::id::{AgentId, MandateId};
use mandate_core::mandate::Mandate;
use mandate_core::time::Timestamp;

use crate::StoreError;
use crate::feed::Topic;
use crate::repo::{AgentRepo, MandateRepo, Repos, Store, ran_twice, run};

/// Runs `f` with the caller's error type `E`: an `Err(E)` from `f` rolls the unit back
/// (as [`StoreError::Refused`] to the backend) and comes back as itself.
fn run_as<S: Store + ?Sized, T, E: From<StoreError>>(
    store: &S,
    writes: bool,
    f: impl FnOnce(&dyn Repos) -> Result<T, E>,
) -> Result<T, E> {
    let mut refused: Option<E> = None;
    let got = run(store, writes, |r| {
        f(r).map_err(|e| {
            refused = Some(e);
            StoreError::Refused
        })
    });
    settle(got, refused)
}

/// Conveniences every [`Store`] has.
pub trait StoreExt: Store {
    /// Runs `f` in one read unit and returns its value.
    fn read<T>(
        &self,
        f: impl FnOnce(&dyn Repos) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        run(self, false, f)
    }

    /// Runs `f` as one write unit (all its writes or none) and returns its value; an
    /// error from `f`, of the caller's type, rolls it back and is returned as is.
    fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&dyn Repos) -> Result<T, E>,
    ) -> Result<T, E> {
        run_as(self, true, f)
    }

    /// Reads, changes and writes back one agent in a single unit (see
    /// [`AgentRepo::update_agent`]). `change` may refuse with its own error, in which
    /// case nothing is written.
    fn modify_agent<E: From<StoreError>>(
        &self,
        id: &AgentId,
        now: Timestamp,
        change: impl FnOnce(&mut Agent) -> Result<(), E>,
    ) -> Result<Agent, E> {
        modify_agent(self, id, now, false, change)
    }

    /// [`StoreExt::modify_agent`], and in the same unit sets the agent's token cutoff to
    /// `now` (every token issued so far dies), so no failure can leave the change made
    /// but the tokens alive.
    fn modify_agent_revoking_tokens<E: From<StoreError>>(
        &self,
        id: &AgentId,
        now: Timestamp,
        change: impl FnOnce(&mut Agent) -> Result<(), E>,
    ) -> Result<Agent, E> {
        modify_agent(self, id, now, true, change)
    }

    /// Reads, changes and writes back one mandate in a single unit (see
    /// [`MandateRepo::update_mandate`]); `change` may refuse with its own error.
    fn modify_mandate<E: From<StoreError>>(
        &self,
        id: &MandateId,
        change: impl FnOnce(&mut Mandate) -> Result<(), E>,
    ) -> Result<Mandate, E> {
        modify_mandate(self, id, false, |m: (&mut Mandate, Option<&str>)| {
            change(m.0)
        })
    }

    /// [`StoreExt::modify_mandate`], with `change` also given the owner of the mandate's
    /// agent (`None` if no such agent), read in the same unit: for a check that depends
    /// on who owns the agent (self-approval, an owner revoking).
    fn modify_mandate_with_owner<E: From<StoreError>>(
        &self,
        id: &MandateId,
        change: impl FnOnce(&mut Mandate, Option<&str>) -> Result<(), E>,
    ) -> Result<Mandate, E> {
        modify_mandate(self, id, true, |m: (&mut Mandate, Option<&str>)| {
            change(m.0, m.1)
        })
    }

    /// A number that changes whenever a change to any credential commits (the change
    /// feed's [`Topic::Credentials`] sequence): a caller that read an agent's credentials
    /// and found one usable may rely on that finding, until its own expiry, for as long
    /// as this number is unchanged. Read it *before* reading the credentials.
    fn credentials_generation(&self) -> u64 {
        self.topic_seq(Topic::Credentials)
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

fn modify_agent<S: Store + ?Sized, E: From<StoreError>>(
    store: &S,
    id: &AgentId,
    now: Timestamp,
    revoke_tokens: bool,
    change: impl FnOnce(&mut Agent) -> Result<(), E>,
) -> Result<Agent, E> {
    let mut refused = None;
    let got = {
        let mut change = Some(change);
        let refused = &mut refused;
        let mut adapted = move |a: &mut Agent| {
            let c = change.take().ok_or_else(ran_twice)?;
            c(a).map_err(|e| {
                *refused = Some(e);
                StoreError::Refused
            })
        };
        store.update_agent(id, now, revoke_tokens, &mut adapted)
    };
    settle(got, refused)
}

fn modify_mandate<S: Store + ?Sized, E: From<StoreError>>(
    store: &S,
    id: &MandateId,
    with_owner: bool,
    change: impl for<'a, 'b> FnOnce((&'a mut Mandate, Option<&'b str>)) -> Result<(), E>,
) -> Result<Mandate, E> {
    let mut refused = None;
    let got = {
        let mut change = Some(change);
        let refused = &mut refused;
        let mut adapted = move |m: &mut Mandate, owner: Option<&str>| {
            let c = change.take().ok_or_else(ran_twice)?;
            c((m, owner)).map_err(|e| {
                *refused = Some(e);
                StoreError::Refused
            })
        };
        store.update_mandate(id, with_owner, &mut adapted)
    };
    settle(got, refused)
}

/// The outcome of a unit whose closure may have refused with the caller's error: that
/// error if it did (the unit then rolled back), else the store's own outcome.
fn settle<T, E: From<StoreError>>(got: Result<T, StoreError>, refused: Option<E>) -> Result<T, E> {
    match (got, refused) {
        (_, Some(e)) => Err(e),
        (got, None) => got.map_err(E::from),
    }
}
