//! An open stream's hold on the token that opened it, for both gateways. A stream (the
//! MCP gateway's standalone `GET /mcp` stream and `tools/call` responses, the HTTP
//! gateway's upstream response bodies) lives only while that token still authenticates
//! as the agent that opened it: the stream checks it before relaying each message or
//! chunk ([`Access::check`]), and waits on [`Lease::ended`], which re-checks whenever
//! the authorizer's snapshot changes (a suspension, containment, revocation, or the
//! snapshot going stale), every [`RECHECK`] besides (a mandate that runs out by time
//! fires no change), and resolves at once when the MCP session ends or the token
//! reaches its `exp` (a timer on the authorizer's clock, [`expiry`]: not up to a
//! [`RECHECK`] later). It authenticates, it does not decide: a policy change re-checks
//! the token, not the call or request the stream carries (see the `mcp` and `http`
//! module docs).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mandate_core::clock::Clock;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::authz::{Authorizer, AuthzError};

/// How often an open stream re-checks its token when nothing has changed: a token's or
/// mandate's end by time is seen within this.
pub const RECHECK: Duration = Duration::from_secs(1);

/// What a stream needs to re-check its token: a synchronous look at the current
/// snapshot.
#[derive(Clone)]
pub struct Access {
    authz: Arc<dyn Authorizer>,
    token: String,
    audience: String,
    agent: String,
}

impl Access {
    /// `token` for `audience`, held by the acting agent `agent`.
    pub fn new(authz: Arc<dyn Authorizer>, token: &str, audience: &str, agent: &str) -> Self {
        Self {
            authz,
            token: token.to_owned(),
            audience: audience.to_owned(),
            agent: agent.to_owned(),
        }
    }

    /// Whether the token still authenticates, now, as the agent that opened the stream.
    pub fn check(&self) -> Result<(), AuthzError> {
        let p = self.authz.authenticate(&self.token, &self.audience)?;
        if p.agent == self.agent {
            Ok(())
        } else {
            Err(AuthzError::Unauthenticated(
                "the token no longer names the agent that opened the stream".into(),
            ))
        }
    }
}

/// Why a stream must end.
#[derive(Debug, Clone)]
pub enum End {
    /// The token no longer authenticates, its holder may not act, or nothing can be
    /// checked: the error a new request would get.
    Access(AuthzError),
    /// The session ended (DELETE, or evicted).
    SessionClosed,
}

/// The change feed, watched from the moment it was taken. A [`Lease`] is built from
/// one taken *before* the check its stream was opened on (`authenticate` for `GET
/// /mcp`, `authorize` for a `tools/call`, which then waits for the upstream's answer),
/// so a change in between — a revocation while the call was sent upstream — is seen as
/// soon as the lease is, not at the next [`RECHECK`].
pub struct Watch(watch::Receiver<u64>);

impl Watch {
    /// Starts watching `authz`'s changes.
    pub fn start(authz: &dyn Authorizer) -> Self {
        let mut changes = authz.changes();
        // INVARIANT (stream lease): changes before this point are covered by the check
        // the caller makes next; every change after it reaches the lease.
        changes.mark_unchanged();
        Self(changes)
    }
}

/// When a token stops being valid, as a timer: its `exp` (seconds since the epoch,
/// valid while the clock reads less), read on `clock` — the clock the authorizer
/// verifies tokens with. `None`: too far ahead for a timer.
pub fn expiry(expires_at: i64, clock: &dyn Clock) -> Option<Instant> {
    let left = expires_at
        .saturating_mul(1000)
        .saturating_sub(clock.now_millis());
    let left = Duration::from_millis(u64::try_from(left).unwrap_or(0));
    Instant::now().checked_add(left)
}

/// An open stream's watch over its [`Access`].
pub struct Lease {
    access: Access,
    /// `None` once the authorizer's side is gone (then the periodic check remains).
    changes: Option<watch::Receiver<u64>>,
    tick: tokio::time::Interval,
    /// The MCP session's end (`None`: the stream belongs to no session).
    closed: Option<watch::Receiver<bool>>,
    /// Fires at the token's `exp`.
    expiry: Option<Pin<Box<Sleep>>>,
}

impl Lease {
    /// Watches `access` for a stream of the session whose end `closed` reports (`None`:
    /// of no session), seeing every change since `since` was taken (before the check the
    /// stream was opened on), until `expiry` (the token's `exp`, see [`expiry`]) at the
    /// latest.
    pub fn new(
        access: Access,
        closed: Option<watch::Receiver<bool>>,
        since: Watch,
        expiry: Option<Instant>,
    ) -> Self {
        let Watch(changes) = since;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            access,
            changes: Some(changes),
            tick,
            closed,
            expiry: expiry.map(|at| Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// The check to make before relaying each message.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Resolves when the stream must end. Cancel-safe: it can be one branch of a
    /// `select!` in a loop without missing a change.
    pub async fn ended(&mut self) -> End {
        loop {
            let changes = &mut self.changes;
            let changed = async {
                match changes.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let closed = &mut self.closed;
            let session_closed = async {
                match closed.as_mut() {
                    // An error: the session itself is gone, which ends it too.
                    Some(rx) => {
                        let _ = rx.wait_for(|c| *c).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let expiry = &mut self.expiry;
            let expired = async {
                match expiry.as_mut() {
                    Some(at) => at.as_mut().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // INVARIANT (stream lease): a stream ends at its token's `exp` by this
                // timer, not a re-check later.
                () = expired => {
                    return End::Access(AuthzError::Unauthenticated(
                        "the token has expired".into(),
                    ));
                }
                ok = changed => {
                    if !ok {
                        self.changes = None;
                    }
                }
                _ = self.tick.tick() => {}
                () = session_closed => return End::SessionClosed,
            }
            // INVARIANT (stream lease): no open stream outlives its token's validity;
            // every snapshot change, and every RECHECK, re-authenticates it.
            if let Err(e) = self.access.check() {
                return End::Access(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mandate_core::clock::ManualClock;

    #[tokio::test]
    async fn a_tokens_expiry_is_its_exp_on_the_authorizers_clock() {
        let clock = ManualClock::at_millis(10_500);
        let before = Instant::now();
        // Valid while the clock reads less than 12 s: 1.5 s from now.
        let at = expiry(12, &clock).unwrap();
        let after = Instant::now();
        let left = Duration::from_millis(1500);
        assert!(before + left <= at && at <= after + left);
        // Already past: now.
        for past in [10, i64::MIN] {
            let at = expiry(past, &clock).unwrap();
            assert!(before <= at && at <= Instant::now());
        }
    }
}
